"""Checks and reductions shared by the feature-map losses."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import LossReduction
from torch import nn

__all__ = ["LayerwiseFeatureLoss", "as_feature_list", "check_feature_lists", "layer_weights", "reduce_batch"]


def as_feature_list(features: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One feature map or a sequence of them, as a list."""
    return [features] if isinstance(features, torch.Tensor) else list(features)


def check_feature_lists(pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor], min_ndim: int = 3) -> None:
    """Equal numbers of layers, and per layer equal shapes (B, C, *spatial) with at least ``min_ndim`` dims."""
    if len(pred) != len(target):
        raise ValueError(f"got {len(pred)} prediction feature maps but {len(target)} target feature maps.")
    if not pred:
        raise ValueError("got no feature maps.")
    for j, (p, t) in enumerate(zip(pred, target)):
        if p.shape != t.shape:
            raise ValueError(
                f"layer {j}: prediction features {tuple(p.shape)} and target features {tuple(t.shape)} differ."
            )
        if p.ndim < min_ndim:
            raise ValueError(f"layer {j}: expected (B, C, *spatial) feature maps, got shape {tuple(p.shape)}.")


def layer_weights(weights: Sequence[float] | None, num_layers: int) -> list[float]:
    """The per-layer weights, 1 for each layer when ``weights`` is None."""
    if weights is None:
        return [1.0] * num_layers
    if len(weights) != num_layers:
        raise ValueError(f"got {len(weights)} layer weights for {num_layers} layers.")
    return [float(w) for w in weights]


def reduce_batch(loss: torch.Tensor, reduction: LossReduction | str) -> torch.Tensor:
    """(B,) per-item losses -> mean, sum, or as they are ("none")."""
    reduction = LossReduction(reduction)
    if reduction == LossReduction.MEAN:
        return loss.mean()
    if reduction == LossReduction.SUM:
        return loss.sum()
    return loss


class LayerwiseFeatureLoss(nn.Module):
    """A weighted sum over layers of a per-item distance between two lists of feature maps, reduced over the batch.

    Subclasses define ``layer_loss(pred_j, target_j) -> (B,)``; this class checks the two lists, applies the
    per-layer weights (1 for every layer when None) and the batch ``reduction`` (``"mean"``, ``"sum"`` or ``"none"``).
    """

    min_ndim = 2  # (B, C, ...) at least

    def __init__(self, weights: Sequence[float] | None = None, reduction: LossReduction | str = LossReduction.MEAN):
        super().__init__()
        self.weights = None if weights is None else [float(w) for w in weights]
        self.reduction = LossReduction(reduction).value

    def layer_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """
        Args:
            pred: the feature maps of the prediction, each (B, C_j, *spatial_j); or one such tensor.
            target: the target's, same shapes.
        """
        pred, target = as_feature_list(pred), as_feature_list(target)
        check_feature_lists(pred, target, min_ndim=self.min_ndim)
        loss = 0
        for w, p, t in zip(layer_weights(self.weights, len(pred)), pred, target):
            loss = loss + w * self.layer_loss(p, t)  # (B,)
        return reduce_batch(loss, self.reduction)
