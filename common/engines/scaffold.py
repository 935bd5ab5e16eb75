"""The training scaffolding every bundle shares, built from the bundle's own choices.

Each ``train.json`` used to spell out the same learning-rate schedules, checkpoint contents, sampler and nine trainer
handlers; these builders hold that wiring once, and a config calls them with what is its own (its networks and
optimisers, the network it deploys, its evaluator) and the run settings every bundle names alike (``seed``,
``ckpt_dir``, ``val_interval``, ...), which stay top-level values a user overrides on the command line.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.data import DataLoader
from monai.handlers import LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler
from torch import nn

from .checkpoint import AtomicCheckpointSaver, ResumeCheckpointLoader
from .distributed import handlers_for_rank
from .progress import ProgressLogger
from .schedules import LinearDecayLR
from .seeding import EpochSeeder


def linear_decay_schedules(
    optimizers: Mapping[str, torch.optim.Optimizer], n_epochs: int, n_epochs_decay: int, iterations_per_epoch: int
) -> dict[str, LinearDecayLR]:
    """One per-iteration ``LinearDecayLR`` per optimiser (same names): ``n_epochs`` constant, then ``n_epochs_decay``
    decaying linearly, each of ``iterations_per_epoch`` iterations (the papers' schedules, given in epochs)."""
    constant, decay = n_epochs * iterations_per_epoch, n_epochs_decay * iterations_per_epoch
    return {name: LinearDecayLR(opt, constant, decay) for name, opt in optimizers.items()}


def checkpoint_contents(
    networks: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    schedules: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """What a training checkpoint holds, under the keys it has always had: each network by name, then
    ``optimizer_<name>``, ``scheduler_<name>``, then ``extra`` (state a method's step carries across epochs, e.g.
    CycleGAN's image pools)."""
    contents: dict[str, Any] = dict(networks)
    contents.update({f"optimizer_{k}": v for k, v in optimizers.items()})
    contents.update({f"scheduler_{k}": v for k, v in schedules.items()})
    contents.update(extra)
    return contents


def epoch_loader(
    dataset, iterations_per_epoch: int, batch_size: int = 1, num_workers: int = 0, balance_by: str | None = None
) -> DataLoader:
    """A loader whose epoch is ``iterations_per_epoch`` batches drawn with replacement: the papers' epochs are counted
    in iterations, not in passes over a handful of volumes. Under torchrun every process draws its own
    ``iterations_per_epoch`` batches (``EpochSeeder`` seeds each rank's stream), so an epoch is that many iterations
    of the whole job and N times as many samples.

    ``balance_by`` names a datalist key (e.g. ``"pipeline"``): each value of it is then drawn equally often, its
    entries uniformly among themselves (``group_weights``), so that two subjects of one site weigh as much as
    fourteen of another. ``None`` draws every entry equally often."""
    num_samples = iterations_per_epoch * batch_size
    if balance_by is None:
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=num_samples)
    else:
        weights = group_weights(getattr(dataset, "data", dataset), balance_by)
        sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=num_samples, replacement=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)


def group_weights(entries: Sequence[Mapping], key: str) -> list[float]:
    """Sampling weights that give each value of ``entries[i][key]`` the same total: 1 / (entries with that value).
    An entry without the key is an error naming it (a datalist written before the key existed)."""
    missing = [e.get("subject", i) for i, e in enumerate(entries) if e.get(key) is None]
    if missing:
        raise ValueError(
            f"balance_by '{key}': the datalist entries {missing} have no '{key}'; give every entry one (the sample "
            f"data's datalists have 'pipeline' since 7 December 2026: run python -m tools.sample_data again)."
        )
    counts = Counter(entry[key] for entry in entries)
    return [1.0 / counts[entry[key]] for entry in entries]


def training_handlers(
    *,
    validator,
    network: nn.Module,
    checkpoint: Mapping[str, Any],
    schedules: Mapping[str, Any],
    seed: int,
    resume_from: str | os.PathLike | None,
    device: torch.device | str,
    ckpt_dir: str | os.PathLike,
    network_path: str | os.PathLike,
    tb_dir: str | os.PathLike,
    ckpt_interval: int = 1,
    val_interval: int = 1,
    log_interval: int = 50,
    extra: Sequence = (),
) -> list:
    """The trainer's handlers, in the order they run, for this process's rank (``handlers_for_rank``: ranks > 0 of a
    torchrun job skip validation and logging):

    per-epoch seeding from ``seed``; resuming ``checkpoint`` from ``resume_from`` (none when it is None); each of
    ``schedules`` stepped per iteration; atomic checkpoints of ``checkpoint`` every ``ckpt_interval`` epochs into
    ``ckpt_dir`` (the newest two) and ``network``'s weights to ``network_path`` at the end; ``validator`` every
    ``val_interval`` epochs; progress with ETA, the step's losses in the log every ``log_interval`` iterations and
    in TensorBoard under ``tb_dir``; then ``extra``, the config's ``train#handlers`` list (where MONAI's ``--tracking
    mlflow`` appends its handler, and a user can add others).
    """
    handlers: list = [EpochSeeder(seed=seed)]
    if resume_from is not None:
        handlers.append(
            ResumeCheckpointLoader(load_path=str(resume_from), load_dict=dict(checkpoint), map_location=device)
        )
    handlers += [LrScheduleHandler(s, epoch_level=False, print_lr=False) for s in schedules.values()]
    handlers += [
        AtomicCheckpointSaver(
            ckpt_dir, checkpoint, save_interval=ckpt_interval, n_saved=2, network=network, network_path=network_path
        ),
        ValidationHandler(interval=val_interval, validator=validator, epoch_level=True),
        ProgressLogger(interval=log_interval),
        StatsHandler(
            tag_name="train",
            output_transform=lambda x: x,
            iteration_log=lambda engine, _: engine.state.iteration % log_interval == 0,
        ),
        TensorBoardStatsHandler(log_dir=str(tb_dir), tag_name="train", output_transform=lambda x: x),
    ]
    return handlers_for_rank(handlers + list(extra))


def validation_handlers(tb_dir: str | os.PathLike, extra: Sequence = (), before: Sequence = ()) -> list:
    """The evaluator's handlers: ``before`` (handlers that must see each output first), the metrics in the log and
    in TensorBoard under ``tb_dir`` once per validation, then ``extra``, the config's ``validate#handlers`` list
    (panels, reports; MONAI's ``--tracking`` appends there)."""
    logs = [StatsHandler(iteration_log=False), TensorBoardStatsHandler(log_dir=str(tb_dir), iteration_log=False)]
    return [*before, *logs, *extra]
