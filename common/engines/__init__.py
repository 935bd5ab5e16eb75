"""The shared adversarial trainer, per-method steps, and the handlers around them."""

from .ae_gan import AEGANStep
from .checkpoint import AtomicCheckpointSaver, ResumeCheckpointLoader, latest_checkpoint, resume_path
from .cyclegan import CycleGANStep
from .deform_gan import DeformGANStep
from .image_pool import ImagePool
from .inferers import ContextSliceInferer
from .medgan import MedGANStep
from .progress import ProgressLogger, hide_fresh_run_notice
from .schedules import LinearDecayLR
from .seeding import EpochSeeder, handlers_for_rank, process_rank
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
