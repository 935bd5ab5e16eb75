"""Inferers the bundles share."""

from __future__ import annotations

from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import SliceInferer

from ..data.transforms import slice_context


class ContextSliceInferer(SliceInferer):
    """``SliceInferer`` for a 2.5D network: each 2D slice reaches the network with its ``context_slices - 1`` nearest
    neighbours along ``spatial_dim`` as extra channels, as ``RandForegroundSliced(context_slices=k)`` gave them in
    training (one helper, ``slice_context``, builds both). ``context_slices=1`` is ``SliceInferer`` itself."""

    def __init__(self, context_slices: int = 1, spatial_dim: int = 0, *args: Any, **kwargs: Any) -> None:
        super().__init__(spatial_dim, *args, **kwargs)
        self.context_slices = context_slices
        slice_context(torch.zeros(1, 1, 1, 1), context_slices, axis=-1)  # the same check as in training, at build time

    def __call__(self, inputs: torch.Tensor, network, *args: Any, **kwargs: Any):
        if self.context_slices > 1:
            b, c, *spatial = inputs.shape
            plain = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
            folded = slice_context(plain.reshape(b * c, *spatial), self.context_slices, axis=self.spatial_dim + 1)
            stacked = folded.reshape(b, c * self.context_slices, *spatial)  # (B, C * k, H, W, D)
            if isinstance(inputs, MetaTensor):  # the output takes the input's metadata, as SliceInferer's does
                stacked = MetaTensor(stacked, meta=inputs.meta, applied_operations=inputs.applied_operations)
                stacked.is_batch = inputs.is_batch
            inputs = stacked
        return super().__call__(inputs, network, *args, **kwargs)
