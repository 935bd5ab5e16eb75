"""Atomic checkpoints of a whole training state, the deployable weights, and finding the newest to resume."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from monai.handlers import CheckpointLoader

CHECKPOINT_PREFIX = "checkpoint"
ENGINE_KEY = "trainer"  # the engine's own state (iteration, epoch) is stored under this key
_ITERATION = re.compile(rf"^{CHECKPOINT_PREFIX}_(\d+)\.pt$")


class AtomicCheckpointSaver:
    """Saves ``save_dict`` (networks, optimisers, schedulers, ...) and the engine it is attached to (key
    ``"trainer"``) as ``checkpoint_<iteration>.pt``; ``ResumeCheckpointLoader`` restores all of it.

    MONAI's ``CheckpointSaver`` writes in place (``atomic=False``), so a crash mid-write can leave a broken
    file where a good one was; here every file is written to a temporary file and renamed. Saves every
    ``save_interval`` epochs (or iterations with ``epoch_level=False``) and when the run completes, keeping
    the newest ``n_saved``. With ``network``/``network_path`` it also writes the deployable network's
    ``state_dict`` (the model zoo's ``models/model.pt``) when the run completes. Under multi-GPU training
    attach it on every rank (ignite's checkpoints synchronise); only rank 0 writes.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        save_interval: int = 1,
        epoch_level: bool = True,
        n_saved: int | None = 2,
        network: torch.nn.Module | None = None,
        network_path: str | os.PathLike | None = None,
    ):
        if (network is None) != (network_path is None):
            raise ValueError("give both `network` and `network_path`, or neither.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.event = (Events.EPOCH_COMPLETED if epoch_level else Events.ITERATION_COMPLETED)(every=save_interval)
        self.n_saved = n_saved
        self.network = network
        self.network_path = None if network_path is None else Path(network_path)

    def attach(self, engine: Engine) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = Checkpoint(
            {**self.save_dict, ENGINE_KEY: engine},
            DiskSaver(str(self.save_dir), require_empty=False, atomic=True),
            filename_prefix=CHECKPOINT_PREFIX,
            filename_pattern="{filename_prefix}_{global_step}.{ext}",
            global_step_transform=lambda eng, _: eng.state.iteration,
            n_saved=self.n_saved,
        )
        engine.add_event_handler(self.event, checkpoint)
        engine.add_event_handler(Events.COMPLETED, self._save_final, checkpoint)

    def _save_final(self, engine: Engine, checkpoint: Checkpoint) -> None:
        if (
            checkpoint.last_checkpoint is None
            or _iteration_of(Path(str(checkpoint.last_checkpoint))) != engine.state.iteration
        ):
            checkpoint(engine)
        if self.network is not None:
            self.network_path.parent.mkdir(parents=True, exist_ok=True)
            saver = DiskSaver(str(self.network_path.parent), require_empty=False, atomic=True)
            saver(self.network.state_dict(), self.network_path.name)


class ResumeCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` that also restores the engine it is attached to, so training resumes at the
    saved iteration (a config cannot list the trainer among its own handlers' objects: that is circular)."""

    def attach(self, engine: Engine) -> None:
        self.load_dict = {**self.load_dict, ENGINE_KEY: engine}
        super().attach(engine)


def _iteration_of(path: Path) -> int | None:
    match = _ITERATION.match(path.name)
    return int(match.group(1)) if match else None


def latest_checkpoint(save_dir: str | os.PathLike) -> str:
    """Path of the ``checkpoint_<iteration>.pt`` with the highest iteration in ``save_dir``, for ``--resume``."""
    found = [(_iteration_of(p), p) for p in Path(save_dir).glob(f"{CHECKPOINT_PREFIX}_*.pt")]
    found = [(it, p) for it, p in found if it is not None]
    if not found:
        raise FileNotFoundError(f"cannot resume: no {CHECKPOINT_PREFIX}_<iteration>.pt in '{save_dir}'.")
    return str(max(found)[1])


def resume_path(resume: bool | str | None, save_dir: str | os.PathLike) -> str | None:
    """What ``--resume`` means: false/None -> start afresh (``None``); true -> the newest checkpoint in
    ``save_dir``; any other string -> that checkpoint file. The command line gives strings ("true", "false")."""
    if resume is None or resume is False or str(resume).strip().lower() in ("", "false", "0", "no"):
        return None
    if resume is True or str(resume).strip().lower() in ("true", "1", "yes"):
        return latest_checkpoint(save_dir)
    if not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint '{resume}' does not exist.")
    return str(resume)
