"""AE-GAN's self-representation loss (Cao et al., IJCV 2023): the autoencoder's features teach the synthesis network's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .utils import LayerwiseFeatureLoss

__all__ = ["SelfRepresentationLoss"]


class SelfRepresentationLoss(LayerwiseFeatureLoss):
    """``L_SR = sum_i lambda_i * KL(f_AG^i || f_SG^i)`` between the autoencoder generator's features (the target) and
    the synthesis generator's (the prediction) at the same decoder levels.

    A feature map becomes a distribution per voxel by a softmax over its channels: at voxel p,
    ``P_i(c, p) = softmax_c f^i(c, p)``. The per-item loss of level i is the KL divergence summed over channels and
    averaged over voxels: ``1 / |p| * sum_p sum_c P_A(c, p) * (log P_A(c, p) - log P_S(c, p))``. (The authors'
    ``nn.KLDivLoss()`` averages over the channels too, i.e. divides this by the number of channels; the weight
    absorbs that.) The target features are used as given: detach them when the autoencoder must not learn from it.

    Args:
        weights: ``lambda_i``, one per level; 1 for every level when None.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or ``"none"`` for the (B,) per-item losses.
    """

    def layer_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p_target, log_p_pred = F.log_softmax(target, dim=1), F.log_softmax(pred, dim=1)  # over channels
        kl = (log_p_target.exp() * (log_p_target - log_p_pred)).sum(dim=1)  # (B, C, *S) -> (B, *S)
        return kl.flatten(1).mean(dim=1)  # (B, *S) -> (B,)
