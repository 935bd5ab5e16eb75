"""Release packaging of every bundle in tools/bundles.py at the test size, on the real sample data: model-zoo
checks, TorchScript/ONNX equal to eager on a real slice, zip layout and hashes, the index; then the zip served
from 127.0.0.1, downloaded with `monai.bundle download` and run in a fresh process outside the repository
(equal to the in-repo bundle's output); and the refusals: wrong hash, `../` and absolute members, interrupted
downloads, pickles that are not plain weights."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from bundle_utils import BUNDLES as BUNDLES_DIR
from bundle_utils import ROOT, source_files, workflow
from tools import release
from tools.bundles import BUNDLES, TEST_DATALIST, size_settings, training_overrides


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server(release_server):
    """(base URL, served folder) of the session's HTTP server on 127.0.0.1 (conftest.py)."""
    return release_server


@pytest.fixture(params=sorted(BUNDLES))
def built(request, release_build):
    """A test-size release of each bundle, built once per session and served by ``server`` (conftest.py)."""
    return release_build(request.param)


def _zip_member(result: dict, path: str) -> bytes:
    with zipfile.ZipFile(result["zip"]) as zf:
        return zf.read(f"{result['name']}/{path}")


# ------------------------------------------------------------------------------------------ the list of bundles


def test_every_bundle_folder_is_in_the_release_list():
    folders = {p.parent.parent.name for p in BUNDLES_DIR.glob("*/configs/metadata.json")}
    assert folders == set(BUNDLES), "add each bundle to tools/bundles.py: the release checks iterate over it"


def test_each_bundle_has_one_record_of_its_named_sizes():
    """tools/bundles.py is the one record: the paper's default read from train.json, the demo's length split as the
    demo trains, inference given only the settings it has, and the brain bundles' test size on the tests' subset."""
    assert all(set(spec["sizes"]) == {"default", "demo", "release", "test"} for spec in BUNDLES.values())
    assert size_settings("cyclegan", "default") == {"num_filters": 64, "num_res_blocks": 9, "disc_filters": 64,
                                                    "pixdim": [1.0, 1.0, 1.0], "roi_size": [256, 256]}
    assert size_settings("unit_gmm", "default")["roi_size"] == [64, 64]  # train.json's expression, evaluated
    assert size_settings("deform_gan", "default")["lg_kernel_size"] == 7
    assert size_settings("cyclegan", "test", "inference") == {"num_filters": 8, "num_res_blocks": 2,
                                                              "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]}
    assert training_overrides("cyclegan", "demo") == {"lambda_identity": 0.0, "source_augmentation": "@intensity_augmentation",
                                                      "iterations_per_epoch": 500, "n_epochs": 3, "n_epochs_decay": 1,
                                                      "val_interval": 4}
    assert training_overrides("unit_gmm", "demo", iterations=40)["iterations_per_epoch"] == 10
    assert training_overrides("medgan", "release") == BUNDLES["medgan"]["sizes"]["release"]["schedule"]
    # the brain bundles' test releases train and evaluate on the tests' subset, the CT bundle on its own datalist
    assert {b: spec["sizes"]["test"]["schedule"].get("datalist") for b, spec in BUNDLES.items()} == {
        "cyclegan": TEST_DATALIST, "medgan": TEST_DATALIST, "ae_gan": TEST_DATALIST, "unit_gmm": None, "deform_gan": TEST_DATALIST}


def test_torchscript_exports_are_scripted_unless_a_bundle_says_trace(monkeypatch):
    assert {name: release.torchscript_mode(name) for name in BUNDLES} == dict.fromkeys(BUNDLES, "script")
    monkeypatch.setitem(BUNDLES["cyclegan"], "torchscript", "trace")
    assert release.torchscript_mode("cyclegan") == "trace"
    monkeypatch.setitem(BUNDLES["cyclegan"], "torchscript", "compile")
    with pytest.raises(release.ReleaseError, match="must be one of"):
        release.torchscript_mode("cyclegan")


def test_versions_bump_from_metadata_and_index():
    assert release.next_version("0.1.0", []) == "0.1.1"
    assert release.next_version("0.1.0", ["0.1.1", "0.2.3", "0.1.10"]) == "0.2.4"
    with pytest.raises(release.ReleaseError, match="X.Y.Z"):
        release.parse_version("1.2")


# ------------------------------------------------------------------------------------------ the build


def test_released_metadata_describes_the_2_5d_input():
    """A release trained with 2.5D input (``context_slices`` k) says so in the metadata: the network's input has k
    times its channels, named by slice (what the export checks and ``verify_net_in_out`` build), its output still
    one; the patch size follows ``roi_size``."""
    from tools import release_staging

    meta = json.loads((BUNDLES_DIR / "medgan" / "configs/metadata.json").read_text(encoding="utf-8"))
    assert meta["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    update_metadata = release_staging.update_metadata
    released = update_metadata(meta, "9.9.9", "test", {"context_slices": 3, "roi_size": [96, 96]}, {})
    fmt = released["network_data_format"]
    assert fmt["inputs"]["image"]["num_channels"] == 3 and fmt["inputs"]["image"]["spatial_shape"] == [96, 96]
    assert all(t["num_channels"] == 1 for t in fmt["outputs"].values())
    assert fmt["inputs"]["image"]["channel_def"] == {"0": "T1w, slice -1", "1": "T1w, slice +0", "2": "T1w, slice +1"}
    built = workflow("medgan", ("inference",), context_slices=3, num_ublocks=2, gen_channels=[8, 16, 32])
    net = built.parser.get_parsed_content("network_def")
    assert net(torch.zeros(1, 3, 96, 96)).shape == (1, 1, 96, 96)
    # AE-GAN: the stack of 3 contrasts and 3 flags becomes 18 channels, each channel's 3 slices together; the
    # contrasts MONAI Label passes as files keep their one channel
    meta = json.loads((BUNDLES_DIR / "ae_gan" / "configs/metadata.json").read_text(encoding="utf-8"))
    inputs = update_metadata(meta, "9.9.9", "test", {"context_slices": 3}, {})["network_data_format"]["inputs"]
    assert inputs["image"]["num_channels"] == 18 and len(inputs["image"]["channel_def"]) == 18
    assert inputs["image"]["channel_def"]["4"] == "T1c (zero where missing), slice +0"
    assert inputs["image"]["channel_def"]["17"] == "FLAIR missing flag, slice +1"
    assert inputs["t1c"]["num_channels"] == 1 and inputs["flair"]["num_channels"] == 1
    built = workflow("ae_gan", ("inference",), context_slices=3, num_filters=4, num_res_blocks=1)
    assert built.parser.get_parsed_content("network_def")(torch.zeros(1, 18, 96, 96)).shape == (1, 1, 96, 96)


def test_release_zip_layout_hashes_and_index(built, server):
    name, version = built["name"], built["version"]
    url, served = server
    data = Path(built["zip"]).read_bytes()
    assert Path(built["zip"]).name == f"{name}_v{version}.zip"
    assert built["sha256"] == _sha256(data) and built["size"] == len(data)
    assert built["url"] == f"{url}/{name}_v{version}.zip"

    with zipfile.ZipFile(built["zip"]) as zf:
        names = set(zf.namelist())
    assert all(n.startswith(f"{name}/") for n in names)
    for required in ("configs/metadata.json", "configs/inference.json", "configs/train.json", "configs/evaluate.json",
                     "configs/logging.conf", "docs/README.md", "LICENSE", "large_files.yml", "common/__init__.py",
                     "models/model.pt", "models/model.ts", "models/model.onnx"):
        assert f"{name}/{required}" in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/checkpoints/" in n
                or n.startswith((f"{name}/eval/", f"{name}/logs/"))]
    assert {n for n in names if n.startswith(f"{name}/models/")} == {f"{name}/models/{f}" for f in release.WEIGHT_FILES}
    vendored = {n[len(name) + 1:] for n in names if n.startswith(f"{name}/common/")}
    assert vendored == source_files(ROOT / "common")

    # large_files.yml: model-zoo format, each weight's SHA-256 and its flat release asset beside the zip
    listing = yaml.safe_load(_zip_member(built, "large_files.yml"))["large_files"]
    assert [e["path"] for e in listing] == [f"models/{f}" for f in release.WEIGHT_FILES]
    for entry in listing:
        member = _zip_member(built, entry["path"])
        assert entry["hash_type"] == "sha256" and entry["hash_val"] == _sha256(member)
        asset = f"{name}_v{version}_{Path(entry['path']).name}"
        assert entry["url"] == f"{url}/{asset}" and (served / asset).read_bytes() == member

    # configs baked at the trained size; metadata bumped, with the metrics and the size
    settings = BUNDLES[name]["sizes"]["test"]["settings"]
    inference = json.loads(_zip_member(built, "configs/inference.json"))
    train = json.loads(_zip_member(built, "configs/train.json"))
    assert all(train[k] == v for k, v in settings.items())
    assert all(inference[k] == v for k, v in settings.items() if k in inference)
    meta = json.loads(_zip_member(built, "configs/metadata.json"))
    source_meta = json.loads((BUNDLES_DIR / name / "configs/metadata.json").read_text(encoding="utf-8"))
    assert meta["version"] == version == release.next_version(source_meta["version"], [])
    assert version in meta["changelog"] and set(source_meta["changelog"]) < set(meta["changelog"])
    assert meta["release"]["size"] == "test" and meta["release"]["settings"] == settings
    for k in BUNDLES[name]["metrics"]:
        assert np.isfinite(meta["eval_metrics"][k]) and meta["eval_metrics"][k] == built["metrics"][k]
    if "roi_size" in settings:
        assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == settings["roi_size"]
    readme = _zip_member(built, "docs/README.md").decode()
    assert "No released weights yet" not in readme and f"v{version}" in readme
    assert "quick-start demo" in readme  # the measured demo results above the release table stay
    assert f"{built['metrics'][BUNDLES[name]['metrics'][0]]:.4f}" in readme

    # TorchScript and ONNX equal to eager on the real slice; the index entry
    assert built["export_checks"]["torchscript_max_abs_diff"] <= 1e-4
    assert built["export_checks"]["onnx_max_abs_diff"] <= 1e-4
    index = json.loads(Path(built["index"]).read_text(encoding="utf-8"))
    entry = index[name][version]
    assert (entry["url"], entry["sha256"], entry["size"]) == (built["url"], built["sha256"], built["size"])
    assert entry["metrics"] == built["metrics"] and set(entry["assets"]) == {e["path"] for e in listing}
    if name in ("cyclegan", "medgan"):  # PSNR / SSIM / MAE inside the held-out brain mask, on 0..1 intensities
        assert 5 < entry["metrics"]["val_psnr"] < 40 and -1 < entry["metrics"]["val_ssim"] <= 1
        assert 0 < entry["metrics"]["val_mae"] < 1


def test_torchscript_is_scripted_and_carries_the_released_configs(built):
    extra = {"inference.json": "", "metadata.json": ""}
    model = torch.jit.load(io.BytesIO(_zip_member(built, "models/model.ts")), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == built["version"]
    assert json.loads(extra["inference.json"]) == json.loads(_zip_member(built, "configs/inference.json"))
    # scripted, not traced: the network's input check is compiled in and refuses a size it cannot take
    net_in = json.loads(extra["metadata.json"])["network_data_format"]["inputs"]["image"]
    shape = [1, int(net_in["num_channels"]), *(int(s) for s in net_in["spatial_shape"])]
    shape[-1] += 1
    with pytest.raises(torch.jit.Error, match="divisible|multiples"):
        model(torch.zeros(shape))


def test_release_refuses_existing_version_and_dirty_tree(built, data_dir, monkeypatch, tmp_path):
    args = dict(train=True, size="test", out=tmp_path, data_dir=data_dir, url_base="http://127.0.0.1:1", quiet=True)
    with pytest.raises(release.ReleaseError, match="already in the index"):
        release.build_release(built["name"], version=built["version"], index_path=built["index"], allow_dirty=True, **args)
    monkeypatch.setattr(release, "git_dirty", lambda paths: [f" M bundles/{built['name']}/configs/train.json"])
    with pytest.raises(release.ReleaseError, match="uncommitted changes"):
        release.build_release(built["name"], index_path=tmp_path / "index.json", **args)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_checkpoint_weights_are_the_network_entry_and_must_fit(built, tmp_path):
    spec = BUNDLES[built["name"]]
    weights = torch.load(io.BytesIO(_zip_member(built, "models/model.pt")), weights_only=True)
    training_ckpt = tmp_path / "checkpoint_20.pt"
    torch.save({spec["network_key"]: weights, "optimizer_G": {"state": {}, "param_groups": []}}, training_ckpt)
    loaded = release.load_weights(training_ckpt, spec["network_key"])
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[k], weights[k]) for k in weights)
    stage = release.stage_bundle(built["name"], tmp_path / "stage")  # the source's default (paper) size
    with pytest.raises(release.ReleaseError, match="do not fit network_def"):
        release._check_fits(stage, spec, loaded, "test")
    assert not list((stage / "models").iterdir())


def test_update_source_keeps_metadata_layout(tmp_path, monkeypatch):
    meta = tmp_path / "bundles/cyclegan/configs/metadata.json"
    meta.parent.mkdir(parents=True)
    original = (BUNDLES_DIR / "cyclegan/configs/metadata.json").read_text(encoding="utf-8")
    meta.write_text(original, encoding="utf-8")
    major, minor, patch = map(int, json.loads(original)["version"].split("."))
    version = f"{major}.{minor}.{patch + 1}"  # the next one: a version already in the changelog adds no line
    (tmp_path / "README.md").write_text(f"# x\n{release.RELEASES_BEGIN}\nold\n{release.RELEASES_END}\nrest\n", encoding="utf-8")
    monkeypatch.setattr(release, "ROOT", tmp_path)
    index = {"cyclegan": {version: {"url": f"https://x/cyclegan_v{version}.zip", "sha256": "ab" * 32, "size": 3 << 20,
                                    "metrics": {"val_psnr": 20.0, "val_ssim": 0.7, "val_mae": 0.05}, "size_name": "release"}}}
    release.update_source("cyclegan", version, f"release {version}: weights", index)
    updated = json.loads(meta.read_text(encoding="utf-8"))
    assert updated["version"] == version and list(updated["changelog"])[0] == version
    assert len(meta.read_text(encoding="utf-8").splitlines()) == len(original.splitlines()) + 1  # one changelog line added
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "old" not in readme and f"`cyclegan` | [{version}](https://x/cyclegan_v{version}.zip)" in readme and "rest" in readme


# ------------------------------------------------------------------------------------------ download end to end


def _clean_env(bundle: Path, home: Path) -> dict[str, str]:
    """No repository on the path: only the interpreter's own site-packages and the bundle."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(bundle),
            "PYTHONDONTWRITEBYTECODE": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "OMP_NUM_THREADS": "1"}  # one thread: tiny networks, and a shared machine


def test_download_with_monai_and_infer_outside_the_repo(built, server, data_dir, tmp_path):
    name, version = built["name"], built["version"]
    spec = BUNDLES[name]
    dl, home, out_dl, out_repo = (tmp_path / d for d in ("downloaded", "home", "out_downloaded", "out_repo"))
    home.mkdir()
    env = {**_clean_env(tmp_path, home), "PYTHONPATH": ""}
    cmd = [sys.executable, "-m", "monai.bundle", "download", "--name", name, "--version", version,
           "--url", built["url"], "--bundle_dir", str(dl), "--progress", "false"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    bundle = dl / name
    # MONAI's download takes no hash: check the archive it kept against the index, and the weights against
    # large_files.yml with MONAI's own large-file check (an existing file with a wrong hash raises)
    assert _sha256((dl / f"{name}.zip").read_bytes()) == built["sha256"]
    from monai.bundle import download_large_files

    download_large_files(bundle_path=str(bundle))

    sample = data_dir / spec["sample_input"]
    bundle_env = _clean_env(bundle, home)
    probe = subprocess.run([sys.executable, "-c", "import common, importlib.util as u; print(common.__file__); "
                            "print(u.find_spec('tools'), u.find_spec('tests'))"],
                           cwd=bundle, env=bundle_env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    common_file, not_found = probe.stdout.split("\n")[:2]
    assert Path(common_file).resolve().is_relative_to(bundle.resolve()) and not_found == "None None"
    extras = {k: str(data_dir / v) for k, v in spec.get("extra_inputs", {}).items()}  # e.g. Deform-GAN's moving image
    run = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", f"configs/{spec['inference']}.json",
                          f"--{spec['input_arg']}", str(sample), *[a for k, v in extras.items() for a in (f"--{k}", v)],
                          "--output_dir", str(out_dl)],
                         cwd=bundle, env=bundle_env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    # the in-repo bundle with the same weights (its default bundle_root layout: <root>/models/model.pt)
    repo_root = tmp_path / "repo_bundle_root"
    (repo_root / "models").mkdir(parents=True)
    (repo_root / "models/model.pt").write_bytes((bundle / "models/model.pt").read_bytes())
    settings = BUNDLES[name]["sizes"]["test"]["settings"]
    inference_keys = json.loads((BUNDLES_DIR / name / "configs" / f"{spec['inference']}.json").read_text(encoding="utf-8"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workflow(name, (spec["inference"],), "infer", bundle_root=str(repo_root), **{spec["input_arg"]: str(sample)},
                 **extras, output_dir=str(out_repo), **{k: v for k, v in settings.items() if k in inference_keys}).run()
    finally:
        torch.set_num_threads(threads)

    downloaded, in_repo = sorted(out_dl.glob("*.nii*")), sorted(out_repo.glob("*.nii*"))
    assert [p.name for p in downloaded] == [p.name for p in in_repo] and downloaded
    (result,) = out_dl.glob(spec.get("output_glob", "*.nii*"))  # the output that is the result (beside a field)
    src = nib.load(sample)
    assert nib.load(result).shape == src.shape
    for a, b in ((nib.load(x), nib.load(y)) for x, y in zip(downloaded, in_repo)):
        assert a.shape[:3] == src.shape
        np.testing.assert_allclose(a.affine, src.affine, atol=1e-6)
        np.testing.assert_allclose(b.affine, src.affine, atol=1e-6)
        va, vb = a.get_fdata(), b.get_fdata()
        assert np.isfinite(va).all() and va.std() > 0
        assert np.allclose(va, vb, atol=1e-5), np.abs(va - vb).max()


def test_safe_download_checks_hash_and_installs_atomically(built, server, tmp_path):
    name = built["name"]
    dest = tmp_path / "dest"
    with pytest.raises(release.ReleaseError, match="SHA-256 mismatch"):
        release.download(built["url"], "0" * 64, dest, name=name)
    assert list(dest.iterdir()) == []  # neither a bundle nor a temporary file left
    assert release.main(["download", "--url", built["url"], "--sha256", "f" * 64, "--dest", str(dest)]) == 1
    assert list(dest.iterdir()) == []

    bundle = release.download(built["url"], built["sha256"], dest, name=name)
    assert bundle == dest / name and sorted(p.name for p in dest.iterdir()) == [name]
    assert (bundle / "models/model.pt").read_bytes() == _zip_member(built, "models/model.pt")
    with pytest.raises(release.ReleaseError, match="exists already"):
        release.download(built["url"], built["sha256"], dest, name=name)

    # MONAI's hash-checked primitives (what `monai.bundle download` calls with hash_val=None) refuse too
    from monai.apps.utils import HashCheckError, download_url

    with pytest.raises(HashCheckError):
        download_url(built["url"], filepath=tmp_path / "monai" / f"{name}.zip", hash_val="0" * 64, hash_type="sha256",
                     progress=False)
    assert not (tmp_path / "monai").exists()


def test_safe_download_refuses_tampered_weights(built, server, tmp_path):
    """A zip whose own hash is right (e.g. published by mistake) but whose weights differ from large_files.yml."""
    url, served = server
    name = built["name"]
    tampered = served / f"tampered_{name}.zip"
    with zipfile.ZipFile(built["zip"]) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data + b"x" if info.filename.endswith("models/model.pt") else data)
    with pytest.raises(release.ReleaseError, match="large_files.yml"):
        release.download(f"{url}/{tampered.name}", _sha256(tampered.read_bytes()), tmp_path / "dest", name=name)
    assert list((tmp_path / "dest").iterdir()) == []


def _evil_zip(path: Path, bad_name: str, symlink: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("cyclegan/configs/metadata.json", "{}")  # good members first: extraction may have begun
        zf.writestr("cyclegan/LICENSE", "x")
        info = zipfile.ZipInfo(bad_name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd" if symlink else "evil")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "outside_folder"])
def test_unsafe_archive_members_are_refused(server, tmp_path, kind):
    url, served = server
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    bad = {"dotdot": "cyclegan/../../outside/evil.txt", "absolute": str(outside / "evil.txt"),
           "symlink": "cyclegan/models/link", "outside_folder": "other/evil.txt"}[kind]
    archive = served / f"evil_{kind}.zip"
    _evil_zip(archive, bad, symlink=kind == "symlink")
    zip_url, digest = f"{url}/{archive.name}", _sha256(archive.read_bytes())

    with pytest.raises(release.ReleaseError, match="refusing the archive"):
        release.download(zip_url, digest, target, name="cyclegan")
    assert list(target.iterdir()) == []  # ours writes nothing at all
    assert list(outside.iterdir()) == []

    if kind in ("dotdot", "absolute"):  # MONAI's download refuses these members too (after the good ones)
        from monai.bundle import download as monai_download

        with pytest.raises(ValueError, match="Unsafe path"):
            monai_download(name="cyclegan", url=zip_url, bundle_dir=str(tmp_path / "monai"), progress=False)
        assert list(outside.iterdir()) == []  # nothing written outside the target


@pytest.mark.parametrize("mode", ["truncated", "nolength"])
def test_interrupted_download_leaves_no_half_bundle(built, server, tmp_path, mode):
    url, _ = server
    name = built["name"]
    cut_url = f"{url}/{mode}/{Path(built['zip']).name}"
    with pytest.raises(release.ReleaseError, match="cut short" if mode == "truncated" else "SHA-256 mismatch"):
        release.download(cut_url, built["sha256"], tmp_path / "ours", name=name)
    assert list((tmp_path / "ours").iterdir()) == []

    from monai.bundle import download as monai_download

    with pytest.raises(Exception):  # ContentTooShortError with a Content-Length, BadZipFile without one
        monai_download(name=name, url=cut_url, bundle_dir=str(tmp_path / "monai"), progress=False)
    assert not (tmp_path / "monai" / name).exists()  # no half bundle (without a length MONAI keeps the cut zip)


# ------------------------------------------------------------------------------------------ weights_only


class _NotWeights:
    """Unpickling this would run code (touching a file): weights_only loading must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_weights_load_only_with_weights_only(built, tmp_path):
    weights = torch.load(io.BytesIO(_zip_member(built, "models/model.pt")), weights_only=True)
    assert weights and all(torch.is_tensor(v) for v in weights.values())

    marker = tmp_path / "code_ran"
    evil = tmp_path / "model.pt"
    torch.save({**weights, "payload": _NotWeights(marker)}, evil)
    with pytest.raises(release.ReleaseError, match="weights_only=True"):
        release.load_weights(evil, BUNDLES[built["name"]]["network_key"])

    # MONAI's CheckpointLoader (the bundles' configs load weights with it) and ignite's Checkpoint (ckpt_export)
    # both pass weights_only=True in MONAI 1.6.1 / ignite 0.5.5
    from ignite.engine import Engine
    from ignite.handlers import Checkpoint
    from monai.handlers import CheckpointLoader

    net = torch.nn.Linear(1, 1)
    with pytest.raises(Exception, match="Weights only load failed"):
        CheckpointLoader(load_path=str(evil), load_dict={"model": net})(Engine(lambda e, b: None))
    with pytest.raises(Exception, match="Weights only load failed"):
        Checkpoint.load_objects(to_load={"model": net}, checkpoint=str(evil))
    assert not marker.exists()


def test_github_source_finds_the_release_layout(built, server, tmp_path, monkeypatch):
    """`monai.bundle download --source github --repo OWNER/REPO/<tag>` fetches `<name>_v<version>.zip` from the
    release tag's assets: the name the release tool gives the zip (GitHub's host mapped to the local server)."""
    from monai.bundle import download as monai_download
    from monai.bundle import scripts

    name, version = built["name"], built["version"]
    url, _ = server
    real = scripts._get_git_release_url
    assert real("owner", "repo", "bundles", f"{name}_v{version}.zip") == \
        f"{release.github_url_base('owner/repo', 'bundles')}/{Path(built['zip']).name}"
    asked = []

    def local(repo_owner, repo_name, tag_name, filename):
        asked.append((repo_owner, repo_name, tag_name, filename))
        return f"{url}/{filename}"

    monkeypatch.setattr(scripts, "_get_git_release_url", local)
    monai_download(name=name, version=version, source="github", repo="owner/repo/bundles", bundle_dir=str(tmp_path),
                   progress=False)
    assert asked == [("owner", "repo", "bundles", f"{name}_v{version}.zip")]
    assert (tmp_path / name / "models/model.pt").read_bytes() == _zip_member(built, "models/model.pt")
