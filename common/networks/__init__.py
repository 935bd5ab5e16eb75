"""The papers' networks that MONAI lacks. Discriminators come from ``monai.networks.nets`` where they fit."""

from .resnet_generator import ResidualBlock, ResnetGenerator

__all__ = ["ResidualBlock", "ResnetGenerator"]
