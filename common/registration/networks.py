"""Deform-GAN's transformation network T: a fixed/moving pair in, a dense displacement field out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import DVF2DDF
from monai.networks.nets import VoxelMorphUNet
from torch import nn


class TransformationNetwork(nn.Module):
    """T of Deform-GAN: a VoxelMorph U-Net (MONAI's ``VoxelMorphUNet``) on the concatenated pair, giving the
    displacement field phi that a spatial transformer (MONAI's ``Warp``) applies to the moving image.

    ``forward(pair)`` takes ``(B, 2, *S)``, channel 0 the fixed image R and channel 1 the moving image F, and returns
    the pull-back displacement ``(B, D, *S)`` in voxels along the array axes: ``Warp()(F, ddf)(x) = F(x + ddf(x))``.
    With ``integration_steps > 0`` the U-Net's output is a stationary velocity field integrated by scaling and
    squaring (MONAI's ``DVF2DDF``), which keeps the transformation diffeomorphic (VoxelMorph's option); 0 uses it as
    the displacement directly, as Deform-GAN does. T compiles with ``torch.jit.script`` (the release's ``model.ts``)
    with ``integration_steps = 0``, the bundle's setting; MONAI 1.6.1's ``DVF2DDF`` does not script (its ``Warp``
    builds a tuple from a tensor's shape), so a release with integration needs ``"torchscript": "trace"`` in
    ``tools/bundles.py``.

    The last convolution starts with weights ~ N(0, 1e-5) and zero bias, as VoxelMorph's flow layer: training
    starts near the identity transformation. Spatial sizes must be multiples of 2**(len(channels) // 2).

    Args:
        spatial_dims: 2 or 3.
        channels: the U-Net's encoder/decoder widths in pairs (``VoxelMorphUNet``'s ``channels``); the default is
            VoxelMorph's (16, 32, 32, 32 down; 32, 32, 32, 32 up), which Deform-GAN's T follows.
        final_conv_channels: widths of the convolutions after the U-Net, before the field.
        integration_steps: scaling-and-squaring steps; 0 for a plain displacement field.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        channels: Sequence[int] = (16, 32, 32, 32, 32, 32, 32, 32),
        final_conv_channels: Sequence[int] = (16, 16),
        integration_steps: int = 0,
    ):
        super().__init__()
        self.spatial_dims, self.levels = spatial_dims, len(channels) // 2
        self.unet = VoxelMorphUNet(
            spatial_dims=spatial_dims,
            in_channels=2,
            unet_out_channels=channels[-1],
            channels=tuple(channels),
            final_conv_channels=tuple(final_conv_channels),
        )
        flow = [m for m in self.unet.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1]
        nn.init.normal_(flow.weight, 0.0, 1e-5)
        if flow.bias is not None:
            nn.init.zeros_(flow.bias)
        self.integrate = (
            DVF2DDF(num_steps=integration_steps, mode="bilinear", padding_mode="zeros")
            if integration_steps > 0
            else None
        )

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        if pair.ndim != self.spatial_dims + 2 or pair.shape[1] != 2:
            raise ValueError(
                f"T takes (batch, 2, *{self.spatial_dims} spatial dims): the fixed and the moving image as "
                f"two channels; got shape {list(pair.shape)}."
            )
        factor = 2**self.levels
        for size in pair.shape[2:]:  # a loop, not any() of a generator: torch.jit.script compiles it
            if size % factor != 0:
                raise ValueError(
                    f"T's spatial sizes must be multiples of {factor} ({self.levels} poolings), got "
                    f"{list(pair.shape[2:])}; pad the images (e.g. DivisiblePadd(k={factor}))."
                )
        field = self.unet(pair)  # (B, 2, *S) -> (B, D, *S)
        if self.integrate is not None:
            field = self.integrate(field)
        return field
