"""The shared adversarial trainer, per-method steps, and the handlers around them."""

from .checkpoint import AtomicCheckpointSaver, latest_checkpoint
from .cyclegan import CycleGANStep
from .image_pool import ImagePool
from .trainer import MultiNetworkTrainer

__all__ = ["AtomicCheckpointSaver", "CycleGANStep", "ImagePool", "MultiNetworkTrainer", "latest_checkpoint"]
