"""MedGAN's perceptual loss (Armanious et al. 2020): L1 distance of the discriminator's hidden features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import LossReduction
from torch import nn

from .utils import as_feature_list, check_feature_lists, layer_weights, reduce_batch

__all__ = ["FeatureMatchingLoss"]


class FeatureMatchingLoss(nn.Module):
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

    def __init__(self, weights: Sequence[float] | None = None, reduction: LossReduction | str = LossReduction.MEAN):
        super().__init__()
        self.weights = None if weights is None else [float(w) for w in weights]
        self.reduction = LossReduction(reduction).value

    def forward(
        self, pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """
        Args:
            pred: the discriminator's hidden feature maps of the prediction, each (B, C_i, *spatial_i);
                or one such tensor.
            target: those of the target, same shapes.
        """
        pred, target = as_feature_list(pred), as_feature_list(target)
        check_feature_lists(pred, target, min_ndim=2)
        loss = 0
        for w, p, t in zip(layer_weights(self.weights, len(pred)), pred, target):
            loss = loss + w * (p - t).abs().flatten(1).mean(dim=1)  # (B, C_i, *S_i) -> (B,)
        return reduce_batch(loss, self.reduction)
