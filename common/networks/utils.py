"""Checks and initialisation the generators share, written so that ``torch.jit.script`` compiles them."""

from __future__ import annotations

import torch
from torch import nn


def init_normal(module: nn.Module) -> None:
    """The CycleGAN reference initialisation: convolution weights ~ N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def spatial_sizes_divisible(x: torch.Tensor, spatial_dims: int, divisor: int) -> bool:
    """Whether ``x`` is (B, C, *S) with ``spatial_dims`` sizes, each divisible by ``divisor``: the generators' input
    check, written as a loop over the sizes (not ``any`` of a generator) so that ``torch.jit.script`` compiles it."""
    if x.dim() != spatial_dims + 2:
        return False
    for size in x.shape[2:]:
        if size % divisor != 0:
            return False
    return True


def check_input(x: torch.Tensor, name: str, channels: int, spatial_dims: int, divisor: int) -> None:
    """A (B, channels, *S) input with ``spatial_dims`` sizes divisible by ``divisor``, or a ValueError saying so."""
    if x.dim() < 2 or x.shape[1] != channels or not spatial_sizes_divisible(x, spatial_dims, divisor):
        raise ValueError(
            f"{name} expects a (B, {channels}, *spatial) input with {spatial_dims} spatial sizes divisible by "
            f"{divisor}, got shape {list(x.shape)}."
        )
