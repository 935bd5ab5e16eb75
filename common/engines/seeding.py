"""Per-epoch seeding: an epoch's random draws depend only on (seed, epoch), so a resumed run repeats the
uninterrupted one exactly."""

from __future__ import annotations

import random

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd


class EpochSeeder:
    """Trainer handler: at the start of every epoch, seeds Python's, NumPy's and torch's generators and the data
    loader's random transforms from ``(seed, epoch)``.

    Without it the random streams run on from the start of the process: a run resumed from a checkpoint (saved at
    the end of an epoch) would draw other samples, crops and augmentations than the uninterrupted run did. State
    that carries across epochs on purpose (e.g. CycleGAN's image pool and its generator) is in the checkpoint.
    Under multi-GPU training give each rank its own ``seed``.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        seed = int(np.random.SeedSequence([self.seed, engine.state.epoch]).generate_state(1)[0])  # 32-bit
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        loader = engine.data_loader
        set_rnd(getattr(loader, "dataset", loader), seed)  # the transforms' own RandomStates (MONAI's Randomizable)
