"""Pieces every adversarial step shares: the patch logits of a discriminator's output, LSGAN, and the two GAN losses."""

from __future__ import annotations

import torch
from monai.losses import PatchAdversarialLoss
from torch import nn


def lsgan_loss() -> PatchAdversarialLoss:
    """LSGAN as the papers (CycleGAN, UNIT) and their code use it: the mean squared error of the raw patch logits.
    MONAI's least-squares ``PatchAdversarialLoss`` puts a LeakyReLU of slope 0.05 on the logits by default, which
    shrinks the push on negative logits twentyfold; ``no_activation_leastsq=True`` turns that off."""
    return PatchAdversarialLoss(criterion="least_squares", reduction="mean", no_activation_leastsq=True)


def patch_logits(discriminator_output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """MONAI's PatchDiscriminator (and ours, built on it) returns every layer's output; the last is the logits."""
    return discriminator_output[-1] if isinstance(discriminator_output, (list, tuple)) else discriminator_output


def generator_adversarial_loss(adversarial_loss: nn.Module, d_fake) -> torch.Tensor:
    """The generator's term: its outputs should be taken for real."""
    return adversarial_loss(patch_logits(d_fake), target_is_real=True, for_discriminator=False)


def discriminator_adversarial_loss(adversarial_loss: nn.Module, d_real, d_fake) -> torch.Tensor:
    """The mean of the real and the fake terms (halved, as pix2pix and CycleGAN do, to slow D relative to G)."""
    real = adversarial_loss(patch_logits(d_real), target_is_real=True, for_discriminator=True)
    fake = adversarial_loss(patch_logits(d_fake), target_is_real=False, for_discriminator=True)
    return 0.5 * (real + fake)
