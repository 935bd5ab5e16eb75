"""Style loss of MedGAN (Armanious et al. 2020): Gram matrices of VGG-19 features of output and target."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import LossReduction
from torch import nn

from .gram import gram_matrix
from .utils import as_feature_list, check_feature_lists, layer_weights, reduce_batch

__all__ = ["StyleLoss"]


class StyleLoss(nn.Module):
    """Matches the textures of the prediction to the target's through the Gram matrices of their features.

    ``L_style = sum_j lambda_sj * 1 / (4 d_j^2) * || Gr_j(pred) - Gr_j(target) ||_F^2``

    per batch item, with ``Gr_j`` the Gram matrix of layer j (``gram_matrix``: normalised by the feature map's
    size, channels x positions) and ``d_j`` its number of channels; then reduced over the batch.

    Args:
        weights: ``lambda_sj``, one per layer; 1 for every layer when None.
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
            pred: the feature maps of the prediction, each (B, C_j, *spatial_j); or one such tensor.
            target: the target's, same shapes.
        """
        pred, target = as_feature_list(pred), as_feature_list(target)
        check_feature_lists(pred, target)
        loss = 0
        for w, p, t in zip(layer_weights(self.weights, len(pred)), pred, target):
            channels = p.shape[1]
            diff = gram_matrix(p) - gram_matrix(t)  # (B, C_j, C_j)
            loss = loss + w * diff.pow(2).sum(dim=(1, 2)) / (4 * channels**2)  # (B,)
        return reduce_batch(loss, self.reduction)
