"""UNIT's coupled VAEs (Liu, Breuel and Kautz, NeurIPS 2017): two domain encoders and two domain generators that
meet in one shared latent space, the innermost layers of both sides being the same parameters.

Layout as the UNIT paper describes it for images (its official code is under a non-commercial licence and was not
used): each encoder E_d is CycleGAN's ResNet encoder (c7s1-F, two stride-2 convolutions) and residual blocks,
its last ``num_shared_blocks`` residual blocks shared by both domains; each generator G_d starts with
``num_shared_blocks`` shared residual blocks, then its own residual blocks, two transposed convolutions, c7s1-1
and tanh. The encoders give the posterior mean mu(x) of a unit-variance Gaussian q(z|x) (UNIT's choice: z = mu +
noise in training, z = mu in inference).
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet_generator import ResidualBlock, encoder_layers, output_layers, upsampling
from .utils import check_input, init_normal

__all__ = ["SharedLatentVAEs", "TranslationWithCycle"]


def _init_he(module: nn.Module) -> None:
    """He (Kaiming) normal weights for the ReLU network, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _check_domain(domain: int) -> None:
    """Domains are 0 and 1 (the index into ``encoders`` / ``decoders``), or a ValueError saying so."""
    if domain != 0 and domain != 1:
        raise ValueError(f"domain must be 0 or 1, got {domain}.")


class SharedLatentVAEs(nn.Module):
    """E_1, E_2, G_1, G_2 with shared innermost layers; ``forward`` translates ``source_domain`` into the other.

    Domains are 0 and 1 (for the CT bundle: 0 non-contrast, 1 contrast-enhanced). ``encode(x, d)`` gives the latent
    mean, (B, 1, *S) -> (B, F * 4, *S / 4); ``decode(z, d)`` the image of domain d (in [-1, 1] through tanh,
    unbounded with ``output_activation="none"``); ``forward(x)`` = ``translate(x)`` =
    ``decode(encode(x, source), 1 - source)`` in [-1, 1], the deployable translation (``network_def`` of the bundle).
    ``shared_encoder`` and ``shared_decoder`` are single modules used by both domains, so the two VAEs share those
    parameters by construction.

    ``output_activation="none"`` drops the final tanh (clamping the translations instead). Without normalisation a
    decoder's last pre-activation can drift far from 0 in a few hundred Adam steps; past |a| ~ 10 tanh's derivative
    (~1e-8 and less) stops every gradient, and that decoder outputs one value for good (measured on CT: the
    non-contrast decoder at -1, air, everywhere). A linear output keeps the L1 gradients whole.

    The UNIT paper's size for 256x256 images is ``num_filters=64`` and 4 residual blocks per side, of which one is
    shared. Each spatial size of the input must be divisible by 4.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_filters: int = 64,
        num_res_blocks: int = 4,
        num_shared_blocks: int = 1,
        source_domain: int = 0,
        norm: str | tuple = "INSTANCE",
        output_activation: str = "tanh",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not 1 <= num_shared_blocks <= num_res_blocks:
            raise ValueError(
                f"need 1 <= num_shared_blocks <= num_res_blocks, got {num_shared_blocks} and {num_res_blocks}."
            )
        if source_domain not in (0, 1):
            raise ValueError(f"source_domain must be 0 or 1, got {source_domain}.")
        if output_activation not in ("tanh", "none"):
            raise ValueError(f"output_activation must be 'tanh' or 'none', got {output_activation!r}.")
        if isinstance(norm, str) and norm.lower() == "none":
            norm = None  # a command line cannot give None: --gen_norm none
        self.spatial_dims, self.in_channels, self.source_domain, self.divisor = (
            spatial_dims,
            in_channels,
            source_domain,
            4,
        )
        self.latent_channels = channels = num_filters * 4
        own = num_res_blocks - num_shared_blocks

        def blocks(n: int) -> list[nn.Module]:
            return [ResidualBlock(spatial_dims, channels, norm) for _ in range(n)]

        self.encoders = nn.ModuleList(
            nn.Sequential(*encoder_layers(spatial_dims, in_channels, num_filters, 2, norm), *blocks(own))
            for _ in range(2)
        )
        self.shared_encoder = nn.Sequential(*blocks(num_shared_blocks))
        self.shared_decoder = nn.Sequential(*blocks(num_shared_blocks))
        self.decoders = nn.ModuleList(
            nn.Sequential(
                *blocks(own),
                upsampling(spatial_dims, channels, norm),
                upsampling(spatial_dims, channels // 2, norm),
                *output_layers(spatial_dims, channels // 4, in_channels, tanh=output_activation == "tanh"),
            )
            for _ in range(2)
        )
        self.bounded_output = output_activation == "tanh"
        # UNIT's and CycleGAN's N(0, 0.02) suits normalised layers; without normalisation it would shrink the signal
        # about threefold per convolution, and after some twenty of them the output is a constant: He initialisation
        # (fan-in, ReLU) keeps its scale
        self.apply(init_normal if norm is not None else _init_he)
        if norm is None:  # the output convolutions small: tanh starts in its linear range, not saturated
            for decoder in self.decoders:  # (..., c7s1 output convolution, tanh)
                decoder[-2 if self.bounded_output else -1].apply(init_normal)

    def encode(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """The posterior mean mu(x) of domain ``domain``'s image: (B, C_in, *S) -> (B, 4F, *S / 4)."""
        check_input(x, "SharedLatentVAEs", self.in_channels, self.spatial_dims, self.divisor)
        _check_domain(domain)
        # TorchScript indexes a ModuleList only by a literal: the domain's encoder is picked by enumerating both
        h = x
        for d, encoder in enumerate(self.encoders):
            if d == domain:
                h = encoder(x)
        return self.shared_encoder(h)

    def decode(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        """An image of domain ``domain`` from a latent map: (B, 4F, *S / 4) -> (B, C_in, *S); in [-1, 1] with tanh
        (``image`` bounds it otherwise)."""
        _check_domain(domain)
        h = self.shared_decoder(z)
        y = h
        for d, decoder in enumerate(self.decoders):  # the domain's decoder, as in encode
            if d == domain:
                y = decoder(h)
        return y

    def image(self, y: torch.Tensor) -> torch.Tensor:
        """A decoder output as an image in [-1, 1]: already so with tanh; clamped with ``output_activation="none"``,
        whose training sees the unbounded output (the losses' gradients never vanish) and whose translations do not."""
        return y if self.bounded_output else y.clamp(-1.0, 1.0)

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """Source-domain image -> target-domain image in [-1, 1] through the latent mean."""
        return self.image(self.decode(self.encode(x, self.source_domain), 1 - self.source_domain))

    def forward(self, x: torch.Tensor, part: str = "translate", domain: int = 0) -> torch.Tensor:
        """``part="translate"`` (the default, what inference and the exports run): source-domain image -> target-domain
        image through the latent mean. ``"encode"`` / ``"decode"`` run ``encode(x, domain)`` / ``decode(x, domain)``:
        a training step calls those through ``forward`` so that a DistributedDataParallel wrapper sees every pass."""
        if part == "translate":
            return self.translate(x)
        if part == "encode":
            return self.encode(x, domain)
        if part == "decode":
            return self.decode(x, domain)
        raise ValueError(f"part must be 'translate', 'encode' or 'decode', got '{part}'.")


class TranslationWithCycle(nn.Module):
    """Evaluation view of ``SharedLatentVAEs``: the translation and its cycle reconstruction as two channels,
    (B, 1, *S) -> (B, 2, *S) = [x_1->2, x_1->2->1], so that an inferer tiles both in one pass."""

    def __init__(self, vaes: SharedLatentVAEs):
        super().__init__()
        self.vaes = vaes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source, target = self.vaes.source_domain, 1 - self.vaes.source_domain
        translated = self.vaes.translate(x)
        cycle = self.vaes.image(self.vaes.decode(self.vaes.encode(translated, target), source))
        return torch.cat([translated, cycle], dim=1)
