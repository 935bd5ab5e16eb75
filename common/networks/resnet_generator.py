"""ResNet image-to-image generator of CycleGAN (Johnson et al. 2016; Zhu et al. 2017), for 2D and 3D."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Act
from torch import nn

from .utils import init_normal, spatial_sizes_divisible


def _reflection_pad(spatial_dims: int) -> type[nn.Module]:
    """torch's ReflectionPad2d / ReflectionPad3d (MONAI's Pad factory has no reflection padding)."""
    return {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}[spatial_dims]


def encoder_layers(
    spatial_dims: int, in_channels: int, num_filters: int, num_downsamplings: int, norm: str | tuple = "INSTANCE"
) -> list[nn.Module]:
    """c7s1-F then ``num_downsamplings`` stride-2 3x3 convolutions doubling the filters:
    (B, in_channels, *S) -> (B, F * 2**num_downsamplings, *S / 2**num_downsamplings)."""
    layers: list[nn.Module] = [
        _reflection_pad(spatial_dims)(3),
        Convolution(spatial_dims, in_channels, num_filters, kernel_size=7, padding=0, act="RELU", norm=norm),
    ]
    channels = num_filters
    for _ in range(num_downsamplings):
        layers.append(
            Convolution(
                spatial_dims, channels, channels * 2, strides=2, kernel_size=3, padding=1, act="RELU", norm=norm
            )
        )
        channels *= 2
    return layers


UPSAMPLE_MODES = ("transposed", "resize")


def upsampling(spatial_dims: int, channels: int, norm: str | tuple = "INSTANCE", mode: str = "transposed") -> nn.Module:
    """Double the size and halve the filters: (B, C, *S) -> (B, C / 2, *2S).

    ``"transposed"``: a stride-2 3x3 transposed convolution (the paper's). Its kernel overlaps unevenly on the output
    grid, which can print a checkerboard. ``"resize"``: nearest-neighbour upsampling then a reflection-padded 3x3
    convolution (Odena et al. 2016, "Deconvolution and checkerboard artifacts"), which has no uneven overlap; the
    same number of weights, 4x (2D) or 8x (3D) the multiply-adds of the transposed convolution at this layer.
    """
    if mode == "transposed":
        return Convolution(
            spatial_dims,
            channels,
            channels // 2,
            strides=2,
            kernel_size=3,
            padding=1,
            output_padding=1,
            is_transposed=True,
            act="RELU",
            norm=norm,
        )
    if mode == "resize":
        return nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            _reflection_pad(spatial_dims)(1),
            Convolution(spatial_dims, channels, channels // 2, kernel_size=3, padding=0, act="RELU", norm=norm),
        )
    raise ValueError(f"upsample_mode must be one of {UPSAMPLE_MODES}, got {mode!r}.")


def output_layers(spatial_dims: int, channels: int, out_channels: int, tanh: bool = True) -> list[nn.Module]:
    """c7s1-out and tanh: an image in [-1, 1] (``tanh=False``: the convolution's output, unbounded)."""
    layers: list[nn.Module] = [
        _reflection_pad(spatial_dims)(3),
        Convolution(spatial_dims, channels, out_channels, kernel_size=7, padding=0, conv_only=True),
    ]
    return layers + [Act["TANH"]()] if tanh else layers


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with instance norm, added to the input (shape preserved)."""

    def __init__(self, spatial_dims: int, channels: int, norm: str | tuple = "INSTANCE", dropout: float = 0.0):
        super().__init__()
        pad = _reflection_pad(spatial_dims)
        self.body = nn.Sequential(
            pad(1),
            Convolution(
                spatial_dims,
                channels,
                channels,
                kernel_size=3,
                padding=0,
                act="RELU",
                norm=norm,
                dropout=dropout or None,
            ),
            pad(1),
            Convolution(spatial_dims, channels, channels, kernel_size=3, padding=0, act=None, norm=norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-F, `num_downsamplings` stride-2 convolutions, `num_res_blocks` residual blocks, as many
    upsamplings (``upsample_mode``: the paper's transposed convolutions, or resize-convolutions; see
    :func:`upsampling`), c7s1-out and tanh: output in [-1, 1], same spatial size as the input.

    The paper's setting is ``num_filters=64, num_res_blocks=9`` for 256x256 images (6 blocks for 128x128).
    Each spatial size of the input must be divisible by ``2 ** num_downsamplings``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        num_filters: int = 64,
        num_res_blocks: int = 9,
        num_downsamplings: int = 2,
        norm: str | tuple = "INSTANCE",
        dropout: float = 0.0,
        upsample_mode: str = "transposed",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.divisor = 2**num_downsamplings
        layers = encoder_layers(spatial_dims, in_channels, num_filters, num_downsamplings, norm)
        channels = num_filters * 2**num_downsamplings
        layers += [ResidualBlock(spatial_dims, channels, norm, dropout) for _ in range(num_res_blocks)]
        for _ in range(num_downsamplings):
            layers.append(upsampling(spatial_dims, channels, norm, upsample_mode))
            channels //= 2
        layers += output_layers(spatial_dims, channels, out_channels)
        self.model = nn.Sequential(*layers)
        self.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not spatial_sizes_divisible(x, self.spatial_dims, self.divisor):
            raise ValueError(
                f"ResnetGenerator expects a (B, C, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}) input with sizes "
                f"divisible by {self.divisor}, got shape {list(x.shape)}."
            )
        return self.model(x)
