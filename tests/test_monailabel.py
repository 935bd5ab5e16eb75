"""The bundles served through MONAI Label (tools/monailabel/), end to end on real volumes.

A real server from the MONAI Label virtualenv (`python3.11 -m tools.monailabel setup`) on 127.0.0.1, serving:
a test-size CycleGAN release zip unpacked into a folder of downloaded bundles (as a user adds one), the same bundle
without weights, and a two-input bundle that stands for registration (its second image comes as an image id
parameter). Deselect with `-m "not monailabel"` where that virtualenv is not set up.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle_utils import ROOT
from tools import release
from tools.bundles import BUNDLES

pytestmark = pytest.mark.monailabel

VENV = Path(os.environ.get("MONAILABEL_VENV", ROOT / ".venv-monailabel"))
SUBJECT = "TCGA-DU-7294"
SERVED = sorted(BUNDLES)  # every bundle of the release list, served from its test-size release zip
STUDIES = {f"{SUBJECT}_{c}": f"brain_mri/{SUBJECT}/{SUBJECT}_{f}_bet_normalized.nii.gz"
           for c, f in (("t1", "t1"), ("t2", "t2"), ("flair", "fla"))}
STUDIES["example_ct_sm"] = "ct/example_ct_sm.nii.gz"  # a non-contrast CT in HU, for the CT bundle
# the study each bundle translates: its release's sample input (the MRI bundles' T1, the CT bundle's CT)
STUDY_OF = {name: next(i for i, rel in STUDIES.items() if rel == spec["sample_input"]) for name, spec in BUNDLES.items()}
# further inputs (Deform-GAN's moving image) as request parameters: image ids of the studies
EXTRA_STUDIES = {name: {k: next(i for i, rel in STUDIES.items() if rel == v) for k, v in spec.get("extra_inputs", {}).items()}
                 for name, spec in BUNDLES.items()}


def _difference_bundle(path: Path) -> None:
    """A bundle with two image inputs (``image`` and ``moving``, like a registration bundle's fixed and moving
    images): its network is a 1x1x1 convolution with weights (1, -1), so its output is image - moving."""
    (path / "configs").mkdir(parents=True)
    (path / "models").mkdir()
    image = {"type": "image", "format": "magnitude", "modality": "MR", "num_channels": 1, "spatial_shape": [-1, -1, -1],
             "dtype": "float32", "value_range": [], "is_patch_data": False, "channel_def": {"0": "image"}}
    meta = {"version": "0.0.1", "name": "difference", "description": "image - moving, voxel by voxel",
            "network_data_format": {"inputs": {"image": image, "moving": {**image, "channel_def": {"0": "moving"}}},
                                    "outputs": {"pred": {**image, "channel_def": {"0": "difference"}}}}}
    keys = ["image", "moving"]
    inference = {
        "imports": ["$import numpy", "$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 2, "out_channels": 1, "kernel_size": 1,
                        "bias": False},
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": keys, "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": keys},
            {"_target_": "ConcatItemsd", "keys": keys, "name": "image"}]},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "out", "output_dtype": "$numpy.float32",
             "resample": False}]},
    }
    (path / "configs/metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    (path / "configs/inference.json").write_text(json.dumps(inference), encoding="utf-8")
    torch.save({"weight": torch.tensor([1.0, -1.0]).reshape(1, 2, 1, 1, 1)}, path / "models/model.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, fields: dict[str, str] | None = None, files: dict[str, tuple[str, bytes]] | None = None,
             timeout: float = 300) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET (no fields/files) or a multipart POST."""
    data, headers = None, {}
    if fields is not None or files is not None:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in (fields or {}).items()]
        for k, (fname, content) in (files or {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{fname}"\r\n'
                         "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def _stop(proc: subprocess.Popen) -> None:
    """Ends the server and everything it started (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def folders(data_dir, release_build, tmp_path_factory):
    """Folders of a served session: downloaded bundles (the test-size release of every bundle in tools/bundles.py),
    studies (real volumes), a weightless bundle and a two-input bundle."""
    if not (VENV / "bin" / "monailabel").exists():
        pytest.fail(f"no MONAI Label virtualenv at {VENV}: run `python3.11 -m tools.monailabel setup` "
                    "(or deselect these tests with -m 'not monailabel').")
    work = tmp_path_factory.mktemp("monailabel")
    downloads, studies = work / "downloaded_bundles", work / "studies"
    studies.mkdir()
    for image_id, rel in STUDIES.items():
        shutil.copyfile(data_dir / rel, studies / f"{image_id}.nii.gz")
    for name in SERVED:
        with zipfile.ZipFile(release_build(name)["zip"]) as zf:
            release.check_archive(zf, name)
            zf.extractall(downloads)
    # the repository's bundle as a fresh clone has it: no weights
    shutil.copytree(ROOT / "bundles/cyclegan", downloads / "cyclegan_untrained",
                    ignore=shutil.ignore_patterns("models", "eval", "logs"))
    _difference_bundle(downloads / "difference")
    return {"work": work, "downloads": downloads, "studies": studies}


@pytest.fixture(scope="module")
def server(folders):
    """Base URL of `monailabel start_server --app tools/monailabel` as the README starts it (virtualenv's bin first
    on PATH, as after `activate`); stopped after the module, also when a test or the start fails."""
    port = _free_port()
    work = folders["work"]
    env = {**os.environ, "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(work),
           "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "PYTHONPATH": ""}
    cmd = ["monailabel", "start_server", "--app", "tools/monailabel", "--studies", str(folders["studies"]),
           "--conf", "models", "all", "--conf", "bundle_dirs", str(folders["downloads"]),
           "--host", "127.0.0.1", "--port", str(port)]
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}):\n{(work / 'server.log').read_text(encoding='utf-8')[-4000:]}")
            try:
                if _request(f"{url}/info/", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer in 180 s:\n{(work / 'server.log').read_text(encoding='utf-8')[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        _stop(proc)
        log.close()
    assert proc.poll() is not None


def _infer(url: str, model: str, image: str | None = None, params: dict | None = None,
           upload: tuple[str, bytes] | None = None) -> tuple[int, str, bytes]:
    query = {"output": "image", **({"image": image} if image else {})}
    return _request(f"{url}/infer/{model}?{urllib.parse.urlencode(query)}", fields={"params": json.dumps(params or {})},
                    files={"file": upload} if upload else None)


def _nifti(body: bytes, path: Path) -> nib.Nifti1Image:
    path.write_bytes(body)
    return nib.load(path)


def test_info_lists_served_and_unavailable_bundles(server, folders):
    status, _, body = _request(f"{server}/info/")
    assert status == 200
    info = json.loads(body)
    assert sorted(info["models"]) == sorted([*SERVED, "difference"])
    cyclegan = info["models"]["cyclegan"]
    assert (cyclegan["type"], cyclegan["dimension"], cyclegan["labels"], cyclegan["result"]) == ("others", 3, {}, "image")
    assert cyclegan["version"] == json.loads((folders["downloads"] / "cyclegan/configs/metadata.json").read_text(encoding="utf-8"))["version"]
    assert list(info["models"]["difference"]["inputs"]) == ["image", "moving"]
    reason = info["unavailable_models"]["cyclegan_untrained"]
    assert "no weights" in reason and str(folders["downloads"] / "cyclegan_untrained/models/model.pt") in reason
    assert info["bundle_dirs"] == [str(folders["downloads"]), str(ROOT / "bundles")]


@pytest.mark.parametrize("name", SERVED)
def test_synthesis_equals_the_bundles_own_inference(server, folders, tmp_path, name):
    source = folders["studies"] / f"{STUDY_OF[name]}.nii.gz"
    params = EXTRA_STUDIES[name]
    status, ctype, body = _infer(server, name, image=STUDY_OF[name], params=params)
    assert status == 200, body[:2000]
    served = _nifti(body, tmp_path / "served.nii.gz")

    # the downloaded bundle's inference.json, run as its README says, in this project's environment
    bundle = folders["downloads"] / name
    env = {**os.environ, "PYTHONPATH": str(bundle), "OMP_NUM_THREADS": "1"}
    extras = [a for k, v in params.items() for a in (f"--{k}", str(folders["studies"] / f"{v}.nii.gz"))]
    run = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
                          f"--{BUNDLES[name]['input_arg']}", str(source), *extras, "--output_dir", str(tmp_path / "own")],
                         cwd=bundle, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (own_file,) = (tmp_path / "own").glob(BUNDLES[name].get("output_glob", "*.nii.gz"))
    own, src = nib.load(own_file), nib.load(source)

    assert served.shape == own.shape == src.shape and len(src.shape) == 3 and min(src.shape) >= 30
    np.testing.assert_allclose(served.affine, src.affine, atol=1e-5)
    assert served.get_data_dtype() == own.get_data_dtype() == np.float32
    a, b = served.get_fdata(), own.get_fdata()
    assert np.isfinite(a).all() and a.std() > 0.01
    # the server runs torch 2.14.1, this environment torch 2.13.0: equal up to float rounding
    np.testing.assert_allclose(a, b, atol=1e-4)

    # the same volume uploaded as a file (what a viewer without access to the studies does) gives the same result
    status, _, body = _infer(server, name, upload=("t1.nii.gz", source.read_bytes()), params=params)
    assert status == 200, body[:2000]
    np.testing.assert_array_equal(_nifti(body, tmp_path / "uploaded.nii.gz").get_fdata(), a)


def test_corrupt_uploads_are_clear_errors(server, folders):
    real = (folders["studies"] / f"{SUBJECT}_t1.nii.gz").read_bytes()
    truncated = gzip.compress(gzip.decompress(real)[:5000])  # a NIfTI header and a few voxels of a 240x240x155 volume
    for name, content in (("noise.nii.gz", os.urandom(4096)), ("truncated.nii.gz", truncated)):
        status, ctype, body = _infer(server, "cyclegan", upload=(name, content))
        assert status == 422 and ctype.startswith("application/json"), (name, status, body[:500])
        detail = json.loads(body)["detail"]
        assert detail.startswith("model 'cyclegan' cannot use the input /") and ".nii.gz" in detail, detail
        assert "Traceback" not in detail and len(detail) < 1000, detail


def test_an_mr_image_sent_to_the_ct_bundle_is_a_clear_error(server):
    status, ctype, body = _infer(server, "unit_gmm", image=f"{SUBJECT}_t1")
    assert status == 422 and ctype.startswith("application/json"), (status, body[:500])
    detail = json.loads(body)["detail"]
    assert f"{SUBJECT}_t1.nii.gz" in detail and "not CT in Hounsfield units" in detail, detail


def test_unknown_models_and_images_are_clear_errors(server):
    status, _, body = _infer(server, "nosuch", image=f"{SUBJECT}_t1")
    assert status == 404
    assert json.loads(body)["detail"] == (f"no model 'nosuch'; this server serves {sorted([*SERVED, 'difference'])} "
                                          "(unavailable: ['cyclegan_untrained']).")
    status, _, body = _infer(server, "cyclegan_untrained", image=f"{SUBJECT}_t1")
    assert status == 503 and "is not available: no weights" in json.loads(body)["detail"]
    status, _, body = _infer(server, "cyclegan", image="nosuch")
    assert status == 404 and json.loads(body)["detail"] == "image: no image 'nosuch' in the studies folder."


def test_a_second_image_comes_as_an_image_id_parameter(server, folders, tmp_path):
    """The registration pattern: fixed image = the request's image, moving image = the id in a parameter."""
    status, _, body = _infer(server, "difference", image=f"{SUBJECT}_t1", params={"moving": f"{SUBJECT}_t2"})
    assert status == 200, body[:2000]
    out = _nifti(body, tmp_path / "difference.nii.gz")
    t1, t2 = (nib.load(folders["studies"] / f"{SUBJECT}_{c}.nii.gz") for c in ("t1", "t2"))
    assert out.shape == t1.shape
    np.testing.assert_allclose(out.affine, t1.affine, atol=1e-5)
    expected = t1.get_fdata(dtype=np.float32) - t2.get_fdata(dtype=np.float32)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(out.get_fdata(), expected, atol=1e-5)

    status, _, body = _infer(server, "difference", image=f"{SUBJECT}_t1")
    assert status == 422 and json.loads(body)["detail"] == ("model 'difference' needs the request parameter 'moving': "
                                                            "an image id.")
    status, _, body = _infer(server, "difference", image=f"{SUBJECT}_t1", params={"moving": "nosuch"})
    assert status == 404 and json.loads(body)["detail"] == "moving: no image 'nosuch' in the studies folder."


def test_further_contrasts_come_as_optional_image_id_parameters(server, folders, tmp_path):
    """AE-GAN: the request's image is its first input contrast (T1), FLAIR an image id in a parameter, T1c left out;
    the result equals the downloaded bundle's own inference on the same two contrasts, and differs from T1 alone."""
    info = json.loads(_request(f"{server}/info/")[2])["models"]["ae_gan"]["inputs"]
    assert info["flair"] == "request parameter 'flair': an image id (optional)"
    status, _, body = _infer(server, "ae_gan", image=f"{SUBJECT}_t1", params={"flair": f"{SUBJECT}_flair"})
    assert status == 200, body[:2000]
    served = _nifti(body, tmp_path / "served.nii.gz")
    bundle, studies = folders["downloads"] / "ae_gan", folders["studies"]
    env = {**os.environ, "PYTHONPATH": str(bundle), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
                          "--t1", str(studies / f"{SUBJECT}_t1.nii.gz"), "--flair", str(studies / f"{SUBJECT}_flair.nii.gz"),
                          "--output_dir", str(tmp_path / "own")], cwd=bundle, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (own_file,) = (tmp_path / "own").glob("*.nii.gz")
    np.testing.assert_allclose(served.get_fdata(), nib.load(own_file).get_fdata(), atol=1e-4)
    status, _, body = _infer(server, "ae_gan", image=f"{SUBJECT}_t1")
    assert status == 200, body[:2000]
    assert np.abs(_nifti(body, tmp_path / "t1_only.nii.gz").get_fdata() - served.get_fdata()).max() > 1e-3
    status, _, body = _infer(server, "ae_gan", image=f"{SUBJECT}_t1", params={"flair": "nosuch"})
    assert status == 404 and json.loads(body)["detail"] == "flair: no image 'nosuch' in the studies folder."
