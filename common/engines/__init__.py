"""The shared adversarial trainer, per-method steps, and the handlers around them."""

from .ae_gan import AEGANStep
from .checkpoint import AtomicCheckpointSaver, ResumeCheckpointLoader, latest_checkpoint, resume_path
from .cyclegan import CycleGANStep
from .deform_gan import DeformGANStep
from .distributed import ddp_network, end_distributed, handlers_for_rank, process_rank, rank_device, start_distributed
from .image_pool import ImagePool
from .inferers import ContextSliceInferer
from .medgan import MedGANStep
from .progress import ProgressLogger, hide_fresh_run_notice
from .scaffold import (
    checkpoint_contents,
    epoch_loader,
    group_weights,
    linear_decay_schedules,
    training_handlers,
    validation_handlers,
)
from .schedules import LinearDecayLR
from .seeding import EpochSeeder
from .trainer import MultiNetworkTrainer
from .unit_gmm import UNITGMMStep

__all__ = [
    "AEGANStep",
    "AtomicCheckpointSaver",
    "ContextSliceInferer",
    "ResumeCheckpointLoader",
    "CycleGANStep",
    "DeformGANStep",
    "EpochSeeder",
    "checkpoint_contents",
    "ddp_network",
    "end_distributed",
    "epoch_loader",
    "group_weights",
    "linear_decay_schedules",
    "rank_device",
    "start_distributed",
    "training_handlers",
    "validation_handlers",
    "handlers_for_rank",
    "process_rank",
    "ImagePool",
    "LinearDecayLR",
    "MedGANStep",
    "MultiNetworkTrainer",
    "ProgressLogger",
    "hide_fresh_run_notice",
    "UNITGMMStep",
    "latest_checkpoint",
    "resume_path",
]

hide_fresh_run_notice()  # a fresh run's log does not say "resuming"
