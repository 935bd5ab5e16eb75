"""The bundle commands as a user types them: the bundle's root follows its config file, missing weights are one
line, inference over a folder goes on past a bad file and says what failed, outputs are never half-written."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import BUNDLES, ROOT, TEST_SIZE, workflow

from common.bundle import _config_files_from_argv, bundle_root
from common.data import AtomicNibabelWriter

TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)


def _size_args(size: dict) -> list[str]:
    return [a for k, v in size.items() for a in (f"--{k}", json.dumps(v).replace(" ", ""))]


@pytest.mark.parametrize("argv, expected", [
    (["run", "--config_file", "bundles/cyclegan/configs/inference.json"], ["bundles/cyclegan/configs/inference.json"]),
    (["run", "--config_file=x/configs/a.json", "--k", "v"], ["x/configs/a.json"]),
    (["run", "--config_file", "['b/configs/train.json','b/configs/evaluate.json']"], ["b/configs/train.json", "b/configs/evaluate.json"]),
    (["run", "--config_file", "b/configs/train.json,b/configs/evaluate.json"], ["b/configs/train.json", "b/configs/evaluate.json"]),
    (["run", "--input", "x"], []),
])
def test_config_files_are_read_from_the_command_line(argv, expected):
    assert _config_files_from_argv(argv) == expected


def test_bundle_root_is_the_config_files_bundle(tmp_path, monkeypatch):
    assert bundle_root("cyclegan", ["run", "--config_file", "/opt/x/configs/inference.json"]) == "/opt/x"
    assert bundle_root("cyclegan", ["run", "--config_file", "x/inference.json"]) == "x"  # no configs/ folder
    monkeypatch.chdir(ROOT)
    assert bundle_root("cyclegan", ["pytest"]) == "bundles/cyclegan"  # no config on the command line (MONAI Label)
    monkeypatch.chdir(tmp_path)
    assert bundle_root("cyclegan", ["pytest"]) == "."


@pytest.mark.parametrize("bundle, weights_id, names", [
    ("cyclegan", "ckpt_path", ["inference"]),
    ("deform_gan", "ckpt_path", ["inference"]),
    ("medgan", "network_path", ["train", "evaluate"]),
])
def test_missing_weights_name_the_file_and_how_to_get_them(tmp_path, bundle, weights_id, names):
    files = [str(BUNDLES / bundle / "configs" / f"{n}.json") for n in names]
    result = _cli("--config_file", repr(files) if len(files) > 1 else files[0], "--bundle_root", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    message = result.stderr[result.stderr.index("error: no trained weights"):].strip().splitlines()
    weights = tmp_path / "models" / "model.pt"
    assert message[0] == f"error: no trained weights at '{weights}'. Either:"
    text = "\n".join(message)
    assert f"--config_file {BUNDLES / bundle / 'configs' / 'train.json'} --bundle_root {tmp_path} --dataset_dir data" in text
    assert f"python -m tools.demo {bundle}" in text and f"outputs/demo/bundles/{bundle}/configs/" in text
    assert "--ckpt_path FILE" in text


def test_the_training_command_the_missing_weights_message_prints_fixes_the_command(data_dir, tmp_path):
    """Pasted as printed (from a folder whose data/ is the sample data; at test size, two iterations), the training
    command writes the weights the failed inference command looked for, and that command then runs."""
    import os

    from bundle_utils import TRAIN_TEST_SIZE

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the repository's `common` from any folder

    def run(args):
        return subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)

    root = tmp_path / "my_cyclegan"
    inference = ["--config_file", str(BUNDLES / "cyclegan/configs/inference.json"), "--bundle_root", str(root),
                 "--input", str(data_dir / TCGA_T1), "--output_dir", str(tmp_path / "out"), *_size_args(TEST_SIZE)]
    failed = run(inference)
    assert failed.returncode == 1
    printed = next(line for line in failed.stderr.splitlines() if "monai.bundle run training" in line)
    command = printed.split("&&")[1].split()  # after `python -m tools.sample_data`, which would download
    assert command[:5] == ["python", "-m", "monai.bundle", "run", "training"]
    (tmp_path / "data").symlink_to(data_dir)
    trained = run([*command[4:], "--datalist", "data/datalists/brain_mri_test.json", *_size_args(TRAIN_TEST_SIZE),
                   "--iterations_per_epoch", "2", "--n_epochs", "1", "--n_epochs_decay", "0", "--val_interval", "5"])
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (root / "models" / "model.pt").is_file()
    again = run(inference)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "out" / "TCGA-DU-7294_t1_bet_normalized_synthetic_t2.nii.gz").is_file()


def _copy_bundle_with_weights(dest: Path) -> Path:
    """A self-contained CycleGAN bundle at the test size (configs + ``common`` + random weights), like the demo's."""
    shutil.copytree(BUNDLES / "cyclegan", dest, ignore=shutil.ignore_patterns("models", "eval", "logs"))
    shutil.copytree(ROOT / "common", dest / "common", ignore=shutil.ignore_patterns("__pycache__"))
    net = workflow("cyclegan", ("inference",), "infer", bundle_root=str(dest), **TEST_SIZE).parser.get_parsed_content("network_def")
    (dest / "models").mkdir()
    torch.save(net.state_dict(), dest / "models" / "model.pt")
    return dest


def test_copied_bundle_uses_its_own_root_and_a_folder_goes_on_past_a_bad_file(data_dir, tmp_path):
    bundle = _copy_bundle_with_weights(tmp_path / "my_cyclegan")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a_t1.nii.gz").symlink_to(data_dir / TCGA_T1)
    (inputs / "b_broken.nii.gz").write_text("not an image", encoding="utf-8")
    src = nib.load(data_dir / TCGA_T1)
    nib.save(nib.Nifti1Image(np.asarray(src.dataobj)[:, :, 70].astype(np.float32), src.affine), inputs / "c_slice.nii.gz")

    # typed from the repository root, which has its own bundles/cyclegan: the copy's models/ and eval/ are used
    result = _cli("--config_file", str(bundle / "configs" / "inference.json"), "--input", str(inputs), *_size_args(TEST_SIZE))
    assert result.returncode == 1, result.stderr[-3000:]
    out = bundle / "eval"
    assert sorted(p.name for p in out.iterdir()) == ["a_t1_synthetic_t2.nii.gz"]  # written, no partial files beside it
    assert nib.load(out / "a_t1_synthetic_t2.nii.gz").shape == src.shape
    log = result.stdout + result.stderr
    assert "[1/3]" in log and "a_t1_synthetic_t2.nii.gz" in log and "inference done: 1 of 3 inputs written" in log, log[-3000:]
    summary = result.stderr.strip().splitlines()[-3:]
    assert summary[0] == "inference failed for 2 input(s):"
    assert "b_broken.nii.gz: ImageFileError" in summary[1] and "not a gzip file" in summary[1]
    assert "c_slice.nii.gz" in summary[2] and "expected a 3D image" in summary[2]

    # typed from anywhere else: the copy carries `common`, on PYTHONPATH as the model card says
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
               "--input", str(inputs / "a_t1.nii.gz"), "--output_dir", "out", *_size_args(TEST_SIZE)]
    result = subprocess.run(env_cmd, cwd=elsewhere, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300,
                            env={"PYTHONPATH": str(bundle), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (elsewhere / "out" / "a_t1_synthetic_t2.nii.gz").is_file()


def test_atomic_writer_leaves_the_previous_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "out.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), target)
    before = target.read_bytes()

    def write_half_then_die(img, filename):
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of nib.save

    def writer():
        w = AtomicNibabelWriter()
        w.set_data_array(torch.zeros(1, 4, 4, 4), channel_dim=0)
        w.set_metadata({"affine": np.eye(4)})
        return w

    monkeypatch.setattr(nib, "save", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        writer().write(target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    monkeypatch.undo()
    writer().write(target)
    assert np.array_equal(nib.load(target).get_fdata(), np.zeros((4, 4, 4))) and oct(target.stat().st_mode)[-3:] != "600"


def test_training_logs_progress_with_eta_and_validation_panels_in_tensorboard(data_dir, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bundle_utils import TRAIN_TEST_SIZE

    wf = workflow("cyclegan", ("train",), dataset_dir=str(data_dir), bundle_root=str(tmp_path), iterations_per_epoch=3,
                  n_epochs=1, n_epochs_decay=1, val_interval=1, log_interval=2, **TRAIN_TEST_SIZE)
    wf.run()
    # the bundle's logging.conf sends the log to stdout
    out = capsys.readouterr().out
    assert "Engine run resuming" not in out  # a fresh run's log does not call it resumed
    lines = [line.split(" - INFO - ")[1] for line in out.splitlines() if " - common.engines.progress - " in line]
    assert [line.split(",")[0] for line in lines] == ["iteration 2/6 (33.3%)", "iteration 4/6 (66.7%)",
                                                      "iteration 6/6 (100.0%)", "iteration 6/6 (100.0%)"]
    assert re.fullmatch(r"iteration 2/6 \(33\.3%\), epoch 1/2, \d+\.\d\d s/it, elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d", lines[0])
    assert lines[-1].endswith("ETA 0:00:00")

    events = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0})
    events.Reload()
    tag = "panel/TCGA-DU-7294_t1_bet_normalized"
    assert tag in events.Tags()["images"]
    shown = events.Images(tag)
    assert [e.step for e in shown] == [1, 2]  # one panel per validation (after each epoch)
    # T1 | synthetic | real | error (+ its colour bar, 150 px), 4 rows; the axial tiles at least 256 px high
    assert shown[-1].height > 20 + 3 * 256 and shown[-1].width > 4 * 128 + 150


@pytest.mark.parametrize("bundle", ["cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"])
def test_multi_gpu_ranks_above_0_train_without_validating_or_logging(bundle, tmp_path, monkeypatch):
    """The trainer's handlers come from ``common.engines.training_handlers``, which keeps on ranks > 0 every handler
    but validation and logging, chosen by type (``handlers_for_rank``): the seeder (each rank its own stream from the
    user's seed), the schedules, the checkpoint saver and the config's extra handlers (MLflow's only on rank 0) stay.
    multi_gpu_train.json overrides no handler list and no seed."""
    import torch

    from common.engines import distributed, training_handlers

    train = json.loads((BUNDLES / bundle / "configs/train.json").read_text(encoding="utf-8"))
    multi = json.loads((BUNDLES / bundle / "configs/multi_gpu_train.json").read_text(encoding="utf-8"))
    assert train["train"]["trainer"]["handlers"].startswith("$common.engines.training_handlers(")
    assert "extra=@train#handlers" in train["train"]["trainer"]["handlers"] and train["train"]["handlers"] == []
    assert not any("handlers" in key for key in multi) and "seed" not in multi

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(net.parameters())
    args = dict(validator=None, network=net, checkpoint={"net": net, "optimizer": opt}, schedules={"G": torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0)},
                seed=5, resume_from=None, device="cpu", ckpt_dir=str(tmp_path), network_path=str(tmp_path / "model.pt"),
                tb_dir=str(tmp_path / "logs"), extra=[type("MLFlowHandler", (), {})()])  # a stand-in of MONAI's, by type name
    on_rank_0 = [type(h).__name__ for h in training_handlers(**args)]
    assert on_rank_0 == ["EpochSeeder", "LrScheduleHandler", "AtomicCheckpointSaver", "ValidationHandler", "ProgressLogger",
                         "StatsHandler", "TensorBoardStatsHandler", "MLFlowHandler"]
    monkeypatch.setattr(distributed, "process_rank", lambda: 1)
    on_rank_1 = [type(h).__name__ for h in training_handlers(**args)]
    assert on_rank_1 == ["EpochSeeder", "LrScheduleHandler", "AtomicCheckpointSaver"]


def test_each_rank_seeds_its_own_stream_from_the_users_seed():
    from common.engines import EpochSeeder

    seeds = {(s, r): EpochSeeder(s, rank=r).epoch_seed(3) for s in (5, 6) for r in (0, 1, 2)}
    assert len(set(seeds.values())) == 6  # every (seed, rank) its own stream
    assert seeds[(5, 0)] == EpochSeeder(5).epoch_seed(3)  # rank 0 is the single-process run's stream
    assert seeds[(5, 1)] == EpochSeeder(5, rank=1).epoch_seed(3)  # and the same seed gives it again


def test_progress_eta_follows_the_recent_pace_and_a_first_line_comes_early(monkeypatch, caplog):
    """A slow start (10 s for the first iteration, caching and warm-up) then 1 s per iteration: the ETA at 25 % is
    the recent pace times what is left, not the average since the start; the first line comes after 5 iterations."""
    import logging
    from types import SimpleNamespace

    from common.engines import progress

    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])
    logger = progress.ProgressLogger(interval=50, window=5, first=5)
    engine = SimpleNamespace(state=SimpleNamespace(iteration=0, epoch=1, max_epochs=4, epoch_length=100))
    logger._start(engine)
    logged = []
    with caplog.at_level(logging.INFO, logger="common.engines.progress"):
        for i in range(1, 101):
            clock["now"] += 10.0 if i == 1 else 1.0
            engine.state.iteration = i
            if logger._due(engine, i):
                logger._log(engine)
                logged.append(i)
    assert logged == [5, 50, 100]
    last = caplog.records[-1].getMessage()
    # window (5 samples back): from the start (t=0, it 0) still; 109 s for 100 iterations -> 1.09 s/it
    assert "iteration 100/400 (25.0%)" in last and "1.09 s/it" in last
    for i in range(101, 401):  # the start-up drops out of the window: the pace becomes the true 1 s/it
        clock["now"] += 1.0
        engine.state.iteration = i
        if logger._due(engine, i):
            logger._log(engine)
        if i == 300:
            assert caplog.records[-1].getMessage().endswith("1.00 s/it, elapsed 0:05:09, ETA 0:01:40")  # 100 left
    assert caplog.records[-1].getMessage().endswith("1.00 s/it, elapsed 0:06:49, ETA 0:00:00")


@pytest.mark.parametrize("bundle", ["medgan", "unit_gmm"])
def test_an_error_raised_on_purpose_is_one_line_with_status_1(bundle, tmp_path):
    """A missing --input through `python -m monai.bundle run`: the message naming the file, alone on stderr (no
    traceback through the config parser); COMMON_TRACEBACK=1 brings the traceback back."""
    import os
    import subprocess
    import sys

    import torch

    weights = tmp_path / "model.pt"
    torch.save({}, weights)  # present: the input is checked first
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", f"bundles/{bundle}/configs/inference.json",
           "--input", str(tmp_path / "my_scan.nii.gz"), "--ckpt_path", str(weights), "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.strip() and "parsing config_file" not in line]
    assert errors == [f"error: no input image found at '{tmp_path / 'my_scan.nii.gz'}' (give a NIfTI file, a DICOM "
                      f"series folder, a folder of them, or a glob)."]
    traced = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace",
                            env={**os.environ, "COMMON_TRACEBACK": "1"})
    assert traced.returncode == 1 and "Traceback (most recent call last)" in traced.stderr


@pytest.mark.parametrize("bundle", ["cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"])
def test_the_model_zoo_classic_command_trains_every_bundle(bundle, data_dir, tmp_path):
    """`python -m monai.bundle run training --meta_file ... --config_file ... --logging_file ...` (the model zoo's
    form): the run ID `training` runs what `run` runs, at the test size, and leaves the weights."""
    import subprocess
    import sys

    from tools.bundles import BUNDLES as SPECS
    from tools.release import _overrides

    size = SPECS[bundle]["sizes"]["test"]
    configs_dir = BUNDLES / bundle / "configs"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--meta_file", str(configs_dir / "metadata.json"),
           "--config_file", str(configs_dir / "train.json"), "--logging_file", str(configs_dir / "logging.conf"),
           "--dataset_dir", str(data_dir), "--bundle_root", str(tmp_path),
           *_overrides({**size["settings"], **size["schedule"], "iterations_per_epoch": 2})]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "iteration 4/4 (100.0%)" in result.stdout + result.stderr and (tmp_path / "models/model.pt").is_file()
