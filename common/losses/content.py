"""Content loss of MedGAN (Armanious et al. 2020): squared distance of VGG-19 features of output and target."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import LossReduction
from torch import nn

from .utils import as_feature_list, check_feature_lists, layer_weights, reduce_batch

__all__ = ["ContentLoss"]


class ContentLoss(nn.Module):
    """Matches the content of the prediction to the target's through their features in a pre-trained network.

    ``L_content = sum_j lambda_cj * 1 / (h_j w_j d_j) * || V_j(pred) - V_j(target) ||_F^2``

    per batch item, with ``V_j`` the feature map of layer j, ``d_j`` its channels and ``h_j w_j`` its spatial
    size (times the depth for 3D): the mean squared error over channels and positions; then reduced over
    the batch.

    Args:
        weights: ``lambda_cj``, one per layer; 1 for every layer when None.
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
        check_feature_lists(pred, target, min_ndim=2)
        loss = 0
        for w, p, t in zip(layer_weights(self.weights, len(pred)), pred, target):
            loss = loss + w * (p - t).pow(2).flatten(1).mean(dim=1)  # (B, C_j, *S_j) -> (B,)
        return reduce_batch(loss, self.reduction)
