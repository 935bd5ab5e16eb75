"""MedGAN's perceptual loss (Armanious et al. 2020): L1 distance of the discriminator's hidden features."""

from __future__ import annotations

import torch

from .utils import LayerwiseFeatureLoss

__all__ = ["FeatureMatchingLoss"]


class FeatureMatchingLoss(LayerwiseFeatureLoss):
    """Matches the discriminator's hidden features of the prediction to those of the target.

    ``L_perceptual = sum_i lambda_pi * 1 / (h_i w_i d_i) * || D_i(pred) - D_i(target) ||_1``

    per batch item, with ``D_i`` the output of the discriminator's hidden layer i, ``d_i`` its channels and
    ``h_i w_i`` its spatial size (times the depth for 3D): the mean absolute error over channels and
    positions; then reduced over the batch. Unlike a VGG perceptual loss, the features come from the
    discriminator, which keeps learning, so they adapt to the data.

    Args:
        weights: ``lambda_pi``, one per layer; 1 for every layer when None.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"`` for the (B,) per-item losses.
    """

    def layer_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs().flatten(1).mean(dim=1)  # (B, C_i, *S_i) -> (B,)
