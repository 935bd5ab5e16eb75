"""Gram matrix of feature maps, the texture statistic of neural style transfer (Gatys et al. 2016)."""

from __future__ import annotations

import math

import torch

__all__ = ["gram_matrix"]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel-by-channel correlations of a feature map, normalised by its size.

    ``Gr[b, m, n] = 1 / (h w d) * sum_p F[b, m, p] F[b, n, p]`` as MedGAN writes it: the sum runs over the spatial
    positions p and ``h w d`` is the feature map's size, height x width x depth (its number of channels), i.e.
    ``C * prod(spatial)``. (Gatys et al. divide by the positions only; the factor 1/C is MedGAN's.)

    Args:
        features: (B, C, *spatial).

    Returns:
        (B, C, C).
    """
    if features.ndim < 3:
        raise ValueError(f"expected (B, C, *spatial) features, got shape {tuple(features.shape)}.")
    b, c = features.shape[:2]
    positions = math.prod(features.shape[2:])
    # at least float32, and pre-scaled by 1/sqrt(C P): sums over many positions overflow in half precision (AMP)
    with torch.autocast(features.device.type, enabled=False):
        dtype = torch.promote_types(features.dtype, torch.float32)
        f = features.to(dtype).reshape(b, c, positions) / math.sqrt(c * positions)  # (B, C, *S) -> (B, C, P)
        return torch.bmm(f, f.transpose(1, 2))  # (B, C, P) @ (B, P, C) -> (B, C, C)
