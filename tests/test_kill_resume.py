"""Nothing lost when a run dies: real training and inference killed with SIGKILL at random moments (checkpoint
writes included), then resumed; the newest checkpoint always loads, the resumed run ends with the same weights as an
uninterrupted one, and no truncated NIfTI is ever left under an output's name."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest
import torch
from bundle_utils import BUNDLES, ROOT, TEST_SIZE, TRAIN_TEST_SIZE
from tools.bundles import datalist_override
from test_bundle_commands import _copy_bundle_with_weights, _size_args

from common.engines import latest_checkpoint

TCGA_T1 = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"
# 6 epochs of 8 iterations (a checkpoint at the end of each epoch): 4 to 15 s of training at the test size
SCHEDULE = {"iterations_per_epoch": 8, "n_epochs": 4, "n_epochs_decay": 2, "val_interval": 100, "ckpt_interval": 1,
            "log_interval": 1}
TOTAL = 48
PROGRESS = re.compile(rf"iteration (\d+)/{TOTAL} ")  # logged after every iteration (log_interval 1)
WRITING = "common.data.writers - INFO - writing: "  # logged as each output's write begins (AtomicNibabelWriter)


def _train_cmd(data_dir, root: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / "cyclegan/configs/train.json"),
           "--dataset_dir", str(data_dir), "--bundle_root", str(root),
           "--datalist", datalist_override("cyclegan")["datalist"], *_size_args({**TRAIN_TEST_SIZE, **SCHEDULE})]
    return cmd + (["--resume", "true"] if resume else [])


def _start_and_kill(cmd: list[str], log: Path, started, delay: float) -> bool:
    """Starts ``cmd``, waits until ``started(log text)`` is true (its work has reached the chosen point), then
    ``delay`` seconds, then SIGKILL. True if it was killed, False if it had finished."""
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while proc.poll() is None and not started(log.read_text(encoding="utf-8")) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _reached(iteration: int):
    """True once the training log shows ``iteration`` done (ProgressLogger's ``iteration i/N`` line)."""
    return lambda text: any(int(i) >= iteration for i in PROGRESS.findall(text))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_training_killed_at_random_moments_resumes_to_the_uninterrupted_weights(data_dir, tmp_path):
    reference = tmp_path / "uninterrupted"
    done = subprocess.run(_train_cmd(data_dir, reference, resume=False), cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # kill points are drawn in training progress, not wall-clock time, so they land the same on a slow or a fast
    # machine: a random iteration, or (every other attempt) just after an epoch's last one, while its checkpoint is
    # being written
    root, rng, kills, resumed_from = tmp_path / "killed", random.Random(0), 0, []
    ckpt_dir = root / "models/checkpoints"
    per_epoch = SCHEDULE["iterations_per_epoch"]
    for attempt in range(6):
        newest = latest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() and any(ckpt_dir.glob("checkpoint_*.pt")) else None
        start = _weights(Path(newest))["trainer"]["iteration"] if newest else 0
        if start >= TOTAL - per_epoch:
            break
        target = rng.randint(start + 1, min(start + 2 * per_epoch, TOTAL - 1))  # within two epochs: >= 3 kills
        if attempt % 2 == 0:  # an epoch's end: the checkpoint save follows at once
            target = min(-(-target // per_epoch) * per_epoch, TOTAL - per_epoch)
        log = tmp_path / f"attempt{attempt}.log"
        if not _start_and_kill(_train_cmd(data_dir, root, newest is not None), log, _reached(target),
                               delay=rng.uniform(0.0, 0.2)):
            break
        kills += 1
        if newest:
            text = log.read_text(encoding="utf-8")
            resumed_from.append(int(re.search(r"Restored all variables from \S*checkpoint_(\d+)\.pt", text)[1]))
            # the newest checkpoint is what --resume took, and training went on from its next iteration
            assert resumed_from[-1] == start and int(PROGRESS.search(text)[1]) == start + 1
        # after every kill: each checkpoint under its final name loads whole
        for ckpt in ckpt_dir.glob("checkpoint_*.pt") if ckpt_dir.is_dir() else ():
            state = _weights(ckpt)
            assert state["trainer"]["iteration"] == int(ckpt.stem.split("_")[1]) and "optimizer_G" in state
    assert kills >= 3, "the runs ended before they could be killed: lengthen SCHEDULE"
    assert resumed_from and all(it % per_epoch == 0 for it in resumed_from)

    final = subprocess.run(_train_cmd(data_dir, root, resume=True), cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    last = _weights(Path(latest_checkpoint(ckpt_dir)))
    assert last["trainer"]["iteration"] == TOTAL and last["optimizer_G"]["state"][0]["step"] == TOTAL
    assert last["scheduler_G"]["last_epoch"] == TOTAL
    # the same weights, optimiser moments and image pools as the run never killed: every epoch's random draws
    # (samples, slices, flips, the pools' choices) depend only on (seed, epoch) and the checkpoint
    expected = _weights(Path(latest_checkpoint(reference / "models/checkpoints")))
    for name in ("G_A", "G_B", "D_A", "D_B"):
        for key, value in expected[name].items():
            assert torch.equal(last[name][key], value), f"{name}.{key} differs from the uninterrupted run"
    for key, value in expected["optimizer_G"]["state"][0].items():
        assert torch.equal(last["optimizer_G"]["state"][0][key], value)
    model, reference_model = _weights(root / "models/model.pt"), _weights(reference / "models/model.pt")
    assert all(torch.equal(model[k], reference_model[k]) for k in reference_model)


@pytest.mark.slow
def test_inference_killed_at_random_moments_leaves_only_whole_outputs(data_dir, tmp_path):
    bundle = _copy_bundle_with_weights(tmp_path / "bundle")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(12):
        (inputs / f"case{i:02d}_t1.nii.gz").symlink_to(data_dir / TCGA_T1)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs/inference.json"),
           "--input", str(inputs), "--output_dir", str(out), *_size_args(TEST_SIZE)]
    # kill points in output progress, not wall-clock time (a slow machine wrote nothing within seconds): during or
    # just after the write of a random output from the second on, so earlier outputs exist to be checked
    rng, kills, seen = random.Random(1), 0, 0
    for attempt in range(4):
        target = rng.randint(2, 8)
        kills += _start_and_kill(cmd, tmp_path / f"infer{attempt}.log", lambda text: text.count(WRITING) >= target,
                                 delay=rng.uniform(0.0, 0.3))
        for path in out.glob("[!.]*.nii.gz"):  # every file under a final name is whole (a truncated gzip fails here)
            assert nib.load(path).get_fdata().shape == (240, 240, 155), path
            seen += 1
    assert kills >= 3 and seen >= 1
    finished = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    # all written, and the hidden partial files of the killed runs cleared as their outputs were written again
    assert sorted(p.name for p in out.iterdir()) == [f"case{i:02d}_t1_synthetic_t2.nii.gz" for i in range(12)]
