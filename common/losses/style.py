"""Style loss of MedGAN (Armanious et al. 2020): Gram matrices of VGG-19 features of output and target."""

from __future__ import annotations

import torch

from .gram import gram_matrix
from .utils import LayerwiseFeatureLoss

__all__ = ["StyleLoss"]


class StyleLoss(LayerwiseFeatureLoss):
    """Matches the textures of the prediction to the target's through the Gram matrices of their features.

    ``L_style = sum_j lambda_sj * 1 / (4 d_j^2) * || Gr_j(pred) - Gr_j(target) ||_F^2``

    per batch item, with ``Gr_j`` the Gram matrix of layer j (``gram_matrix``: normalised by the feature map's
    size, channels x positions) and ``d_j`` its number of channels; then reduced over the batch.

    Args:
        weights: ``lambda_sj``, one per layer; 1 for every layer when None.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"`` for the (B,) per-item losses.
    """

    min_ndim = 3  # a Gram matrix needs spatial positions

    def layer_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = gram_matrix(pred) - gram_matrix(target)  # (B, C_j, C_j)
        return diff.pow(2).sum(dim=(1, 2)) / (4 * pred.shape[1] ** 2)  # (B,)
