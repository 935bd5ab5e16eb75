"""The model zoo's CI rules on our bundles, laid out as the zoo holds them (``models/<name>/`` with ``common`` vendored,
stand-in weights from ``network_def``), at the default (papers') sizes, run from outside the repository so that only
the vendored ``common`` is importable. The rules follow Project-MONAI/model-zoo ``ci/verify_bundle.py`` at commit
dfae206d (full mode): necessary and preferred files, the version in the changelog, the metadata against its schema
(our shipped copy: no download here), ``verify_net_in_out`` and a scripted ``ckpt_export`` that loads back. Our own
check of the same rules; the zoo's scripts are not vendored."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tools.release import SCHEMA, stage_bundle


def _monai_bundle(bundle_dir, *args):
    env = {**os.environ, "PYTHONPATH": str(bundle_dir)}  # the zoo's convention: the bundle's folder on the path
    return subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=bundle_dir.parent, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("bundle", ["cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"])
def test_each_bundle_passes_the_model_zoos_checks_in_its_layout(tmp_path, bundle):
    models = tmp_path / "models"
    models.mkdir()
    staged = stage_bundle(bundle, models)
    meta_file, inference = staged / "configs/metadata.json", staged / "configs/inference.json"
    # stand-in weights, as the zoo's CI makes them (the bundle's network_def, saved as a state dict)
    script = ("import sys, torch; from monai.bundle import ConfigParser; p = ConfigParser(); "
              f"p.read_config({str(inference)!r}); p.read_meta({str(meta_file)!r}); p['bundle_root'] = {str(staged)!r}; "
              f"torch.save(p.get_parsed_content('network_def').state_dict(), {str(staged / 'models/model.pt')!r}); "
              "print(sys.modules['common'].__file__)")
    made = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(staged)},
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stdout.strip().endswith(str(staged / "common" / "__init__.py"))  # the vendored copy, not the repo's

    for necessary in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
        assert (staged / necessary).is_file(), necessary
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    assert meta["version"] in meta["changelog"]
    for args in (["verify_metadata", "--meta_file", str(meta_file), "--filepath", str(SCHEMA)],
                 ["verify_net_in_out", "--net_id", "network_def", "--meta_file", str(meta_file), "--config_file",
                  str(inference), "--bundle_root", str(staged)],
                 ["ckpt_export", "--net_id", "network_def", "--filepath", str(staged / "models/verify_model.ts"),
                  "--ckpt_file", str(staged / "models/model.pt"), "--meta_file", str(meta_file), "--config_file",
                  str(inference), "--bundle_root", str(staged)]):
        result = _monai_bundle(staged, *args)
        assert result.returncode == 0, (args[0], result.stderr[-3000:])
    # the exported module loads back and computes what the network does, on an input of the metadata's shape
    exported = torch.jit.load(str(staged / "models/verify_model.ts"))
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(inference))
    parser["bundle_root"] = str(staged)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(staged / "models/model.pt", weights_only=True))
    net_in = next(iter(meta["network_data_format"]["inputs"].values()))
    x = torch.rand(1, net_in["num_channels"], *net_in["spatial_shape"]) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net.eval()(x), rtol=1e-4, atol=1e-4)
