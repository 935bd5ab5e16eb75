"""AE-GAN's networks (Cao et al., IJCV 2023): the multi-branch synthesis network S and the target autoencoder A,
whose encoder is also the discriminator.

Layout as in the authors' code (github.com/bcaosudo/AE-GAN, Apache-2.0; the paper's own text was not at hand):
each encoder is CycleGAN's ResNet encoder (c7s1-F, two stride-2 convolutions); S fuses its branches with a 1x1
convolution and runs ``num_res_blocks`` residual blocks with dropout; A has one branch with those residual blocks,
also with dropout. Both decode with two transposed convolutions and c7s1-1 with tanh; in S each transposed
convolution is followed by squeeze-and-excitation channel attention (MONAI's ``ChannelSELayer``,
x + x * sigmoid(se(x))), in A not. The decoders' upsampling outputs are the intermediate features the
self-representation loss compares. Normalisation is a config value: the authors use
batch norm, the bundle defaults to instance norm, which is the same in training and inference at batch size 1.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer, Convolution
from torch import nn

from .resnet_generator import ResidualBlock, encoder_layers, output_layers, upsampling
from .utils import check_input, init_normal


def missing_flags(x: torch.Tensor, num_inputs: int) -> torch.Tensor:
    """The modality mask vector (B, N) of a network input (B, 2N * k, *S): 1 where input i is missing.

    The flags are constant channels, the second half of the input, so that the network stays a one-tensor function
    (sliding-window and slice inferers, TorchScript, ONNX, MONAI Label); with 2.5D input (k slices a contrast,
    ``common.data.slice_context``) each flag fills k consecutive channels. They are read as the maximum over a
    flag's channels, which ignores the constant padding an inferer may add (-1) around a patch.
    """
    flags = x[:, x.shape[1] // 2 :]  # (B, N * k, *S)
    return flags.reshape(flags.shape[0], num_inputs, -1).amax(dim=2).clamp(0.0, 1.0)  # (B, N, k * S) -> (B, N)


class Decoder(nn.Module):
    """``num_upsamplings`` x (transposed convolution halving the filters[, SE attention]), then c7s1-out and tanh.

    ``se_reduction`` is the attention's channel reduction (S's decoder); ``None`` leaves the attention out (A's).
    ``forward`` returns the image and the upsampling outputs (the features that S and A compare)."""

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        out_channels: int,
        num_upsamplings: int = 2,
        norm: str | tuple = "INSTANCE",
        se_reduction: int | None = 16,
    ):
        super().__init__()
        self.ups = nn.ModuleList()
        for _ in range(num_upsamplings):
            up = [upsampling(spatial_dims, channels, norm)]
            if se_reduction is not None:
                up.append(
                    ChannelSELayer(spatial_dims, channels // 2, r=min(se_reduction, channels // 2), add_residual=True)
                )
            self.ups.append(nn.Sequential(*up))
            channels //= 2
        self.out = nn.Sequential(*output_layers(spatial_dims, channels, out_channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features: list[torch.Tensor] = []
        for up in self.ups:
            x = up(x)
            features.append(x)
        return self.out(x), features


class MultiContrastSynthesisNet(nn.Module):
    """S: synthesises the target contrast from any non-empty subset of ``num_inputs`` input contrasts.

    Input (B, 2N, *S): the N input contrasts in a fixed order, then their N missing flags as constant channels
    (1 = missing; ``common.data.StackContrastsd`` builds it). With ``context_slices`` k > 1 (2.5D, 2D only) every
    channel comes with its k - 1 neighbouring slices, channel c * k + j (``common.data.slice_context``): (B, 2N * k,
    H, W). Each branch encodes its contrast, (B, k, *S) -> (B, 4F, *S/4); the code of a missing contrast is zeroed,
    whatever its channels held. The codes and the mask vector, broadcast to (B, N, *S/4), are concatenated and fused
    by a 1x1 convolution with ReLU to 4F channels, then refined by the residual blocks and decoded. The authors
    concatenate the modality one-hot to each branch's image instead; with instance norm in the branches a constant
    channel is normalised away, so here the mask enters after the branches, where no normalisation precedes the
    fusion's ReLU.
    Output (B, out_channels, *S) in [-1, 1]. Sizes must be divisible by 2 ** ``num_downsamplings``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        num_inputs: int = 3,
        out_channels: int = 1,
        num_filters: int = 64,
        num_res_blocks: int = 6,
        num_downsamplings: int = 2,
        norm: str | tuple = "INSTANCE",
        dropout: float = 0.5,
        se_reduction: int = 16,
        context_slices: int = 1,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_inputs < 1:
            raise ValueError(f"num_inputs must be at least 1, got {num_inputs}.")
        if context_slices < 1 or context_slices % 2 == 0 or (context_slices > 1 and spatial_dims != 2):
            raise ValueError(f"context_slices must be odd, and 1 in 3D; got {context_slices} ({spatial_dims}D).")
        self.spatial_dims, self.num_inputs, self.divisor = spatial_dims, num_inputs, 2**num_downsamplings
        self.context_slices = context_slices
        channels = num_filters * self.divisor
        self.branches = nn.ModuleList(
            nn.Sequential(*encoder_layers(spatial_dims, context_slices, num_filters, num_downsamplings, norm))
            for _ in range(num_inputs)
        )
        self.fusion = Convolution(
            spatial_dims, num_inputs * (channels + 1), channels, kernel_size=1, act="RELU", norm=None
        )
        self.res_blocks = nn.Sequential(
            *(ResidualBlock(spatial_dims, channels, norm, dropout) for _ in range(num_res_blocks))
        )
        self.decoder = Decoder(spatial_dims, channels, out_channels, num_downsamplings, norm, se_reduction)
        self.apply(init_normal)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """The synthesised target (B, out_channels, *S); with ``return_features`` also the decoder's upsampling
        outputs (through ``forward``, so that DistributedDataParallel sees the call). The return type is the union
        of both, so that ``torch.jit.script`` compiles the one method; called as ``net(x)`` it is the image."""
        k = self.context_slices
        check_input(x, "MultiContrastSynthesisNet", 2 * self.num_inputs * k, self.spatial_dims, self.divisor)
        missing = missing_flags(x, self.num_inputs)  # (B, N)
        given = 1.0 - missing
        codes: list[torch.Tensor] = []  # one per branch: the ModuleList's fixed length, not the data's
        for i, branch in enumerate(self.branches):
            code = branch(x[:, i * k : (i + 1) * k])  # (B, k, *S) -> (B, 4F, *S/4)
            codes.append(code * given[:, i].reshape([-1] + [1] * (code.dim() - 1)))
        flags = missing
        for _ in range(self.spatial_dims):
            flags = flags.unsqueeze(-1)
        flags = flags.expand([-1, -1] + list(codes[0].shape[2:]))  # (B, N) -> (B, N, *S/4)
        fused = self.res_blocks(
            self.fusion(torch.cat(codes + [flags], dim=1))
        )  # (B, N * 4F + N, *S/4) -> (B, 4F, *S/4)
        output, features = self.decoder(fused)
        if return_features:
            return output, features
        return output


class ContrastAutoencoder(nn.Module):
    """A: reconstructs the target contrast from itself; its encoder A_E, with a patch head, is the discriminator.

    ``encoder``: one branch (c7s1-F, two stride-2 convolutions) and the residual blocks, with ``dropout`` as S's;
    ``decoder``: S's without the attention (the authors' autoencoder, ``SrResnetGenerator``, has none);
    ``head``: 1x1 convolution, norm, LeakyReLU(0.2), then a 4x4 stride-2 unpadded convolution to one channel of
    patch logits (31x31 for a 256x256 image). The discriminator is ``head(encoder(x))``: the encoder's parameters
    are shared with the autoencoder, not copied.

    ``forward(x)`` returns ``(reconstruction, decoder features, logits of x)``; ``forward(x, decode=False)`` only
    the logits (the discriminator alone). Both go through ``forward`` so that DistributedDataParallel sees them.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_filters: int = 64,
        num_res_blocks: int = 6,
        num_downsamplings: int = 2,
        norm: str | tuple = "INSTANCE",
        dropout: float = 0.5,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims, self.in_channels, self.divisor = spatial_dims, in_channels, 2**num_downsamplings
        channels = num_filters * self.divisor
        self.encoder = nn.Sequential(
            *encoder_layers(spatial_dims, in_channels, num_filters, num_downsamplings, norm),
            *(ResidualBlock(spatial_dims, channels, norm, dropout) for _ in range(num_res_blocks)),
        )
        self.decoder = Decoder(spatial_dims, channels, in_channels, num_downsamplings, norm, se_reduction=None)
        self.head = nn.Sequential(
            Convolution(
                spatial_dims, channels, channels, kernel_size=1, act=("LEAKYRELU", {"negative_slope": 0.2}), norm=norm
            ),
            Convolution(spatial_dims, channels, 1, kernel_size=4, strides=2, padding=0, conv_only=True),
        )
        self.apply(init_normal)

    def forward(self, x: torch.Tensor, decode: bool = True):
        check_input(x, "ContrastAutoencoder", self.in_channels, self.spatial_dims, self.divisor)
        code = self.encoder(x)  # (B, 4F, *S/4)
        logits = self.head(code)  # (B, 1, (S/4 - 4) / 2 + 1 ...)
        if not decode:
            return logits
        reconstruction, features = self.decoder(code)
        return reconstruction, features, logits
