"""The papers' networks that MONAI lacks. Discriminators come from ``monai.networks.nets`` where they fit."""

from .ae_gan import ContrastAutoencoder, MultiContrastSynthesisNet, missing_flags
from .casnet import CasNet, UBlock
from .resnet_generator import ResidualBlock, ResnetGenerator
from .spectral_patch_discriminator import SpectralPatchDiscriminator, spectral_norms
from .unit import SharedLatentVAEs, TranslationWithCycle
from .vgg import VGG19Features

__all__ = [
    "CasNet",
    "ContrastAutoencoder",
    "MultiContrastSynthesisNet",
    "missing_flags",
    "ResidualBlock",
    "ResnetGenerator",
    "SharedLatentVAEs",
    "SpectralPatchDiscriminator",
    "TranslationWithCycle",
    "UBlock",
    "VGG19Features",
    "spectral_norms",
]
