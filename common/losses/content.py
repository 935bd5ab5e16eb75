"""Content loss of MedGAN (Armanious et al. 2020): squared distance of VGG-19 features of output and target."""

from __future__ import annotations

import torch

from .utils import LayerwiseFeatureLoss

__all__ = ["ContentLoss"]


class ContentLoss(LayerwiseFeatureLoss):
    """Matches the content of the prediction to the target's through their features in a pre-trained network.

    ``L_content = sum_j lambda_cj * 1 / (h_j w_j d_j) * || V_j(pred) - V_j(target) ||_F^2``

    per batch item, with ``V_j`` the feature map of layer j, ``d_j`` its channels and ``h_j w_j`` its spatial
    size (times the depth for 3D): the mean squared error over channels and positions; then reduced over
    the batch.

    Args:
        weights: ``lambda_cj``, one per layer; 1 for every layer when None.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"`` for the (B,) per-item losses.
    """

    def layer_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).pow(2).flatten(1).mean(dim=1)  # (B, C_j, *S_j) -> (B,)
