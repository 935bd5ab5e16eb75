"""Per-epoch seeding: an epoch's random draws depend only on (seed, epoch), so a resumed run repeats the
uninterrupted one exactly."""

from __future__ import annotations

import random

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd

from .distributed import process_rank


class EpochSeeder:
    """Trainer handler: at the start of every epoch, seeds Python's, NumPy's and torch's generators and the data
    loader's random transforms from ``(seed, epoch, rank)``.

    Without it the random streams run on from the start of the process: a run resumed from a checkpoint (saved at
    the end of an epoch) would draw other samples, crops and augmentations than the uninterrupted run did. State
    that carries across epochs on purpose (e.g. CycleGAN's image pool and its generator) is in the checkpoint.

    Under multi-process training each rank (``rank``, default torch.distributed's) draws its own stream from the
    user's ``seed``: the ranks see different samples (identical draws would make DistributedDataParallel average
    identical gradients), and the same ``seed`` gives the same streams again. Rank 0, and a single process, seed
    from ``(seed, epoch)`` alone, as a single-process run always has.
    """

    def __init__(self, seed: int = 0, rank: int | None = None):
        self.seed, self.rank = int(seed), rank

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def epoch_seed(self, epoch: int) -> int:
        """The 32-bit seed of ``epoch`` on this rank."""
        rank = process_rank() if self.rank is None else int(self.rank)
        entropy = [self.seed, epoch] if rank == 0 else [self.seed, epoch, rank]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __call__(self, engine: Engine) -> None:
        seed = self.epoch_seed(engine.state.epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        loader = engine.data_loader
        set_rnd(getattr(loader, "dataset", loader), seed)  # the transforms' own RandomStates (MONAI's Randomizable)
