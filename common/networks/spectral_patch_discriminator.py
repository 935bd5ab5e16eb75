"""MedGAN's discriminator: MONAI's PatchGAN with spectral normalisation on every convolution, for 2D and 3D."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act
from monai.networks.nets import PatchDiscriminator
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["SpectralPatchDiscriminator", "spectral_norms"]

_CONVS = (nn.Conv2d, nn.Conv3d)


class SpectralPatchDiscriminator(PatchDiscriminator):
    """A conditional PatchGAN whose convolutions are spectrally normalised (Miyato et al. 2018), without batch norm.

    It is MONAI's ``PatchDiscriminator`` built with ``norm=None`` and biases (nothing cancels them without a
    normalisation), after which every convolution weight is divided by an estimate of its largest singular value
    (one power iteration per training-mode forward, the estimate kept in ``_u``/``_v`` buffers that are part of the
    state dict). Layers: ``channels`` stride-2, ``num_layers_d`` more (doubling, the last of stride 1), then a
    1-channel ``kernel_size`` convolution: the 70x70 PatchGAN (30x30 logits for 256x256) for the defaults.

    For a conditional discriminator give ``in_channels`` = image + condition channels (2 for grayscale) and either
    pass the concatenated pair or ``forward(image, condition)``. The output is MONAI's: the list of every layer's
    output, hidden feature maps first (MedGAN's perceptual loss matches these), the patch logits last.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2,
        channels: int = 64,
        num_layers_d: int = 3,
        kernel_size: int = 4,
        out_channels: int = 1,
        activation: str | tuple = (Act.LEAKYRELU, {"negative_slope": 0.2}),
        n_power_iterations: int = 1,
    ):
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        super().__init__(
            spatial_dims=spatial_dims,
            channels=channels,
            in_channels=in_channels,
            out_channels=out_channels,
            num_layers_d=num_layers_d,
            kernel_size=kernel_size,
            activation=activation,
            norm=None,
            bias=True,
            padding=(kernel_size - 1) // 2,
            dropout=0.0,
            last_conv_kernel_size=kernel_size,
        )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        # the weights are already N(0, 0.02) (MONAI's normal_init); the parametrization starts from them
        for conv in [m for m in self.modules() if isinstance(m, _CONVS)]:
            spectral_norm(conv, n_power_iterations=n_power_iterations)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> list[torch.Tensor]:
        if condition is not None:
            x = torch.cat([x, condition], dim=1)  # (B, C_image + C_condition, *spatial)
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SpectralPatchDiscriminator expects a (B, {self.in_channels}, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}) "
                f"input (image and condition concatenated), got shape {tuple(x.shape)}."
            )
        return super().forward(x)


def spectral_norms(module: nn.Module) -> list[float]:
    """The exact largest singular value of every convolution's effective weight, reshaped to (out, -1), in order.

    For spectrally normalised convolutions this is the weight the forward pass uses (read with the parametrization
    in eval mode, so reading it runs no power iteration and changes no buffer); for plain ones the raw weight.
    """
    norms = []
    with torch.no_grad():
        for m in module.modules():
            if not isinstance(m, _CONVS):
                continue
            if parametrize.is_parametrized(m, "weight"):
                params = m.parametrizations.weight
                modes = [p.training for p in params]
                params.eval()
                try:
                    weight = m.weight
                finally:
                    for p, mode in zip(params, modes):
                        p.train(mode)
            else:
                weight = m.weight
            norms.append(float(torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2)))
    return norms
