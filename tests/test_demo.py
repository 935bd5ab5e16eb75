"""The demo's trained bundle folder: self-contained (common vendored), the demo's size baked into its configs."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigParser

from bundle_utils import BUNDLES
from tools import demo
from tools.bundles import BUNDLES as TOOL_BUNDLES
from tools.bundles import config_keys, size_settings
from tools.demo import DEMOS, write_servable_bundle


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_demo_bundle_fits_its_weights_and_replaces_an_older_one(tmp_path, name):
    size = size_settings(name, "demo")
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / name / "configs" / "inference.json"))
    parser.update({k: v for k, v in size.items() if k in config_keys(name, "inference")})
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    dest = tmp_path / "bundles"
    (dest / name).mkdir(parents=True)
    (dest / name / "stale.txt").write_text("an older demo run", encoding="utf-8")

    bundle = write_servable_bundle(name, tmp_path / "model.pt", dest, size)

    assert bundle == dest / name and [p.name for p in dest.iterdir()] == [name]
    assert not (bundle / "stale.txt").exists() and (bundle / "common" / "networks" / "__init__.py").is_file()
    inference = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    assert {k: inference[k] for k in config_keys(name, "inference") & set(size)} == {k: size[k] for k in config_keys(name, "inference") & set(size)}
    served_parser = ConfigParser()
    served_parser.read_config(str(bundle / "configs" / "inference.json"))
    served = served_parser.get_parsed_content("network_def")
    served.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))  # strict: the size fits
    # the served metadata describes the network as trained: its patch shape, and k channels per input under 2.5D
    source_image = json.loads((BUNDLES / name / "configs/metadata.json").read_text(encoding="utf-8"))["network_data_format"]["inputs"]["image"]
    image = json.loads((bundle / "configs/metadata.json").read_text(encoding="utf-8"))["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == source_image["num_channels"] * int(size.get("context_slices") or 1)
    assert image["spatial_shape"] == list(size["roi_size"])
    x = torch.randn(1, image["num_channels"], *size["roi_size"])
    net.eval(), served.eval()
    with torch.no_grad():
        assert torch.equal(served(x), net(x))


def test_the_echoed_command_can_be_pasted(monkeypatch, capsys):
    """Each step is printed with the interpreter that runs it (relative to the repository root where it is inside)."""
    import sys
    from pathlib import Path

    from tools import demo

    ran = []
    monkeypatch.setattr(demo.subprocess, "run", lambda cmd, **kw: ran.append((cmd, kw)))
    demo.run_bundle([demo.ROOT / "bundles/cyclegan/configs/train.json"], {"pixdim": [3.0, 3.0, 3.0], "dataset_dir": "data"})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    interpreter = Path(sys.executable)
    shown = str(interpreter.relative_to(demo.ROOT)) if interpreter.is_relative_to(demo.ROOT) else str(interpreter)
    assert line == (f"$ {shown} -m monai.bundle run --config_file bundles/cyclegan/configs/train.json "
                    '--pixdim "[3.0,3.0,3.0]" --dataset_dir data')
    assert ran[0][0][0] == sys.executable and ran[0][1]["cwd"] == demo.ROOT
    # MONAI's notice that configs run code is left out of the demo's output (the README says why they are trusted)
    assert "ignore:parsing config_file" in ran[0][1]["env"]["PYTHONWARNINGS"]
    configs = [demo.ROOT / "bundles/medgan/configs/train.json", demo.ROOT / "bundles/medgan/configs/evaluate.json"]
    demo.run_bundle(configs, {"source_augmentation": "@intensity_augmentation"})
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith(""" run --config_file "['bundles/medgan/configs/train.json','bundles/medgan/configs/evaluate.json']" """
                         "--source_augmentation @intensity_augmentation")


def test_the_printed_command_runs_in_a_shell_as_printed(tmp_path):
    """The quoting a person would type (a config list in double quotes) gives the bundle command the same words."""
    import subprocess

    words = ["['bundles/a.json','bundles/b.json']", "[3.0,3.0,3.0]", "@intensity_augmentation", "a b", "it's $HOME"]
    line = " ".join(demo.shell_word(w) for w in words)
    assert line.startswith('''"['bundles/a.json','bundles/b.json']" "[3.0,3.0,3.0]" @intensity_augmentation''')
    echoed = subprocess.run(["bash", "-c", f"printf '%s\\n' {line}"], capture_output=True, text=True, check=True)
    assert echoed.stdout.splitlines() == words


def test_help_names_the_command_and_a_python_without_the_stack_is_one_line(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        demo.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m tools.demo ")
    monkeypatch.setattr(demo, "STACK", ("torch", "a_package_nobody_has"))
    assert demo.main(["medgan"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import a_package_nobody_has" in err[0] and ".venv/bin/python -m tools.demo" in err[0]


def test_a_failing_bundle_command_ends_the_demo_with_one_line(monkeypatch, tmp_path, capsys):
    import subprocess

    def fail(cmd, **kwargs):
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(demo.subprocess, "run", fail)
    monkeypatch.setattr(demo.sample_data, "import_from", lambda *args, **kwargs: None)
    assert demo.main(["medgan", "--data-from", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the bundle command above stopped with exit status 1; its message is above it"]


@pytest.mark.parametrize("argv, seed", [([], 0), (["--seed", "3"], 3)])
def test_the_seed_reaches_the_training_only(monkeypatch, tmp_path, argv, seed):
    """``--seed`` is the training's seed (the model cards' seed rows); evaluation and inference take none."""
    from tools import demo

    calls = []

    def record(files, overrides):
        calls.append(({f.name for f in files}, overrides))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stop before the real evaluation

    monkeypatch.setattr(demo, "run_bundle", record)
    monkeypatch.setattr(demo.sample_data, "import_from", lambda *args, **kwargs: None)
    with pytest.raises(KeyboardInterrupt):
        demo.main(["medgan", "--data-from", str(tmp_path), "--output-dir", str(tmp_path / "out"), *argv])
    (train_files, train), (eval_files, evaluation) = calls
    demo_iterations = TOOL_BUNDLES["medgan"]["sizes"]["demo"]["iterations"]  # 3/4 constant, 1/4 decaying
    assert train_files == {"train.json"} and train["seed"] == seed
    assert (train["iterations_per_epoch"], train["n_epochs"], train["n_epochs_decay"]) == (demo_iterations // 4, 3, 1)
    assert eval_files == {"train.json", "evaluate.json"} and "seed" not in evaluation


def test_verdict_is_one_sentence_per_held_out_subject_against_the_better_baseline():
    row = lambda psnr, ncc, **lesion: {"psnr": psnr, "ssim": 0.5, "mae": 0.1, "ncc": ncc, **lesion}  # noqa: E731
    comparison = {"subjects": {
        "TCGA-DU-7294": {"model": row(15.4, 0.50), "linear": row(16.9, 0.44), "histogram": row(14.0, 0.30)},
        "OpenMS-patient26": {"model": row(19.0, 0.71, lesion_psnr=17.0, lesion_ncc=0.2),
                             "linear": row(17.5, 0.60, lesion_psnr=18.0, lesion_ncc=0.1),
                             "histogram": row(18.0, 0.65, lesion_psnr=16.0, lesion_ncc=0.3)}}}
    first, second = demo.verdicts(comparison)
    assert first == ("TCGA-DU-7294: the model is below the better baseline (the oracle line) by 1.50 dB PSNR "
                     "(15.40 against 16.90 dB; r +0.50 against +0.44).")
    assert second.startswith("OpenMS-patient26: the model is above the better baseline (histogram matching) by 1.00 dB")
    assert second.endswith("inside its lesions 17.00 dB, r +0.20 against 16.00 dB, r +0.30.")
