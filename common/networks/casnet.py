"""CasNet, the MedGAN generator (Armanious et al. 2020): a cascade of U-blocks, for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers import SkipConnection
from monai.networks.layers.factories import Act
from monai.networks.layers.utils import get_act_layer
from monai.networks.utils import normal_init
from torch import nn

from .utils import spatial_sizes_divisible

__all__ = ["UBlock", "CasNet"]

# pix2pix's CD512-CD1024-CD1024: dropout after the three deepest decoder layers only
_DROPOUT_LEVELS = 3


class UBlock(nn.Module):
    """One U-block: a pix2pix U-Net (encoder-decoder with concatenated skips) mapping an image to an image in [-1, 1].

    Every level halves (``strides``) the size with a ``kernel_size`` convolution and restores it with a transposed one;
    the decoder layer of level ``i`` reads the concatenation of the level's encoder output and the deeper decoder's
    output. As in pix2pix, the first and the innermost encoder convolutions and the last decoder convolution have no
    normalisation (the innermost output can be 1x1, where batch or instance statistics do not exist), encoder layers
    end with ``act`` and decoder layers start with ``up_act`` (so the skip features enter the decoder through it too).

    MONAI's ``UNet`` cannot be used here: it rejects even kernels ("same padding"), its bottom layer does not
    downsample and it normalises every layer; this block is built from the same MONAI ``Convolution`` and
    ``SkipConnection`` pieces instead.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        strides: Sequence[int] | int = 2,
        kernel_size: int = 4,
        norm: str | tuple | None = "BATCH",
        act: str | tuple = (Act.LEAKYRELU, {"negative_slope": 0.2}),
        up_act: str | tuple = Act.RELU,
        dropout: float = 0.0,
    ):
        super().__init__()
        channels = tuple(channels)
        strides = (strides,) * len(channels) if isinstance(strides, int) else tuple(strides)
        if not channels or len(strides) != len(channels):
            raise ValueError(f"need one stride per level: channels={channels}, strides={strides}.")
        for s in strides:
            if s < 1 or kernel_size < s or (kernel_size - s) % 2:
                raise ValueError(
                    f"kernel_size - stride must be even and >= 0 (size-preserving), got {kernel_size=}, {s=}."
                )
        self.divisor = 1
        for s in strides:
            self.divisor *= s
        n = len(channels)

        def level(i: int) -> nn.Module:
            c_in = in_channels if i == 0 else channels[i - 1]
            c_out = channels[i]
            pad = (kernel_size - strides[i]) // 2  # out = in / stride for both directions
            innermost, outermost = i == n - 1, i == 0
            down = Convolution(
                spatial_dims,
                c_in,
                c_out,
                strides=strides[i],
                kernel_size=kernel_size,
                padding=pad,
                norm=None if outermost or innermost else norm,
                act=None if innermost else act,
                bias=outermost or innermost or norm is None,
            )
            up = nn.Sequential(
                get_act_layer(up_act),
                Convolution(
                    spatial_dims,
                    c_out if innermost else 2 * c_out,
                    out_channels if outermost else c_in,
                    strides=strides[i],
                    kernel_size=kernel_size,
                    padding=pad,
                    output_padding=0,
                    is_transposed=True,
                    act=None,
                    norm=None if outermost else norm,
                    conv_only=outermost,
                    dropout=dropout if (dropout and not outermost and i >= n - _DROPOUT_LEVELS) else None,
                    bias=outermost or norm is None,
                ),
            )
            if innermost:
                return nn.Sequential(down, up)
            # (B, c_out, ...) from `down`, concatenated with the deeper decoder's (B, c_out, ...): 2 * c_out into `up`
            return nn.Sequential(down, SkipConnection(level(i + 1)), up)

        self.model = nn.Sequential(level(0), nn.Tanh())
        self.apply(normal_init)  # pix2pix: convolution weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class CasNet(nn.Module):
    """``num_ublocks`` U-blocks in series, each refining the previous one's output image; trained end to end.

    The first block maps ``in_channels`` to ``out_channels``, the later ones ``out_channels`` to ``out_channels``;
    every block ends with tanh, so each intermediate output is itself an image in [-1, 1] and so is the result (with
    ``residual``, the input plus such an image).

    Defaults are the paper's: 6 U-blocks, each the pix2pix 256x256 U-Net (encoder filters 64-128-256-512-512-512-512-512,
    decoder inputs 512-1024-1024-1024-1024-512-256-128, 4x4 convolutions of stride 2, batch norm, LeakyReLU(0.2) in the
    encoder, ReLU in the decoder). The paper does not say whether pix2pix's decoder dropout is kept, so ``dropout``
    defaults to 0; pix2pix uses 0.5 (applied to the three deepest decoder layers). Each spatial size must be divisible
    by ``divisor`` (the product of ``strides``: 256 for the defaults); use fewer ``channels`` levels for smaller inputs.

    ``residual`` (not in the paper, off by default) returns the input plus the cascade's output, so the network predicts
    a correction: for restoration (motion correction), where the target is the input contrast and a plain CasNet must
    first learn to reproduce its input. The last block's last convolution then starts at zero, so an untrained
    residual CasNet returns its input exactly; it needs ``in_channels == out_channels``.

    ``input_skip`` (not in the paper, None by default) adds a full-resolution linear path from the input to the output:
    a pix2pix U-block downsamples in its first convolution, so its output rebuilds every voxel through a transposed
    convolution and loses detail at the voxel scale that a linear map of the input keeps (where the target is nearly
    a linear function of the source). ``"global"`` returns ``cascade(x) + P(x)``, with ``P`` a learned 1x1
    convolution (``in_channels`` to ``out_channels``, e.g. the slices of a 2.5D input) starting at zero. ``"local"``
    returns ``y + a * P(x)``, where the last U-block outputs both the image ``y`` and a gain map ``a`` (tanh, in
    [-1, 1]; its weights start at zero), so that the network decides where the input's own detail passes through and
    with which sign; here ``P`` starts as the input's centre channel (the 2.5D input's own slice). Either way an
    untrained network's output is the cascade's image alone.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        num_ublocks: int = 6,
        channels: Sequence[int] = (64, 128, 256, 512, 512, 512, 512, 512),
        strides: Sequence[int] | int = 2,
        kernel_size: int = 4,
        norm: str | tuple | None = "BATCH",
        act: str | tuple = (Act.LEAKYRELU, {"negative_slope": 0.2}),
        up_act: str | tuple = Act.RELU,
        dropout: float = 0.0,
        residual: bool = False,
        input_skip: str | None = None,
    ):
        super().__init__()
        if isinstance(input_skip, str) and input_skip.lower() in ("none", "null", ""):
            input_skip = None  # what a command line passes for "off" (`--gen_input_skip null`)
        if input_skip not in (None, "global", "local"):
            raise ValueError(f"input_skip must be None, 'global' or 'local', got {input_skip!r}.")
        if input_skip is not None and residual:
            raise ValueError("residual adds the input itself and input_skip a learned map of it: choose one.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_ublocks < 1:
            raise ValueError(f"num_ublocks must be at least 1, got {num_ublocks}.")
        if residual and in_channels != out_channels:
            raise ValueError(
                f"a residual CasNet adds its input to its output: needs in_channels == out_channels, got "
                f"{in_channels} and {out_channels}."
            )
        self.spatial_dims = spatial_dims
        self.num_ublocks = num_ublocks
        self.blocks = nn.ModuleList(
            UBlock(
                spatial_dims,
                in_channels if i == 0 else out_channels,
                2 * out_channels if (input_skip == "local" and i == num_ublocks - 1) else out_channels,
                channels,
                strides,
                kernel_size,
                norm,
                act,
                up_act,
                dropout,
            )
            for i in range(num_ublocks)
        )
        self.divisor = self.blocks[0].divisor
        self.residual = bool(residual)
        if self.residual:
            last_conv = self._last_convolution()
            nn.init.zeros_(last_conv.weight)  # tanh(0) = 0: the untrained correction is zero
            nn.init.zeros_(last_conv.bias)
        self.input_skip = input_skip or ""
        self.out_channels = out_channels
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        self.skip = conv(in_channels, out_channels, 1) if input_skip else nn.Identity()
        if input_skip:
            nn.init.zeros_(self.skip.weight)  # the untrained network is the cascade alone
            nn.init.zeros_(self.skip.bias)
        if input_skip == "local":
            with torch.no_grad():
                self.skip.weight[:, in_channels // 2] = 1.0  # P(x) = the centre channel; the gain starts at zero
            last_conv = self._last_convolution()
            nn.init.zeros_(last_conv.weight[:, out_channels:])  # (in, 2 * out, *k): the gain's filters
            nn.init.zeros_(last_conv.bias[out_channels:])

    def _last_convolution(self) -> nn.Module:
        """The cascade's output layer: the last U-block's last transposed convolution."""
        return [m for m in self.blocks[-1].modules() if isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d))][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # skipped while tracing: there the sizes are tensors and the check would be frozen in with a TracerWarning
        if not torch.jit.is_tracing() and not spatial_sizes_divisible(x, self.spatial_dims, self.divisor):
            raise ValueError(
                f"CasNet expects a (B, C, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}) input with sizes "
                f"divisible by {self.divisor}, got shape {list(x.shape)}: make the patch size (a bundle's `roi_size`) a "
                f"multiple of {self.divisor}, or give the U-blocks fewer levels (`gen_channels`; each level halves)."
            )
        source = x
        for block in self.blocks:
            x = block(x)  # (B, out_channels, *spatial), in [-1, 1]; the last "local" block: (B, 2 * out_channels, ...)
        if self.input_skip == "global":
            return x + self.skip(source)
        if self.input_skip == "local":
            image, gain = x[:, : self.out_channels], x[:, self.out_channels :]
            return image + gain * self.skip(source)
        return source + x if self.residual else x
