"""Test-time instance optimisation: T's displacement refined on the one pair at hand, coarse to fine."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.inferers import Inferer
from monai.utils import ensure_tuple
from torch import nn

from ..losses.local_gradient import LocalGradientLoss
from .ops import BorderWarp, diffusion, gaussian_blur


def coarser_kernel_size(kernel_size: int, factor: int) -> int:
    """The odd neighbourhood (at least 3) on a grid ``factor`` times coarser that spans about the same mm as
    ``kernel_size`` voxels of the finer grid: 7 at 1 mm -> 3 at 2 mm and 3 mm (6 and 9 mm), as the demo trains."""
    return kernel_size if factor == 1 else max(1, round((kernel_size / factor - 1) / 2)) * 2 + 1


class InstanceOptimisation(Inferer):
    """A MONAI inferer for T: the network's displacement for a (fixed, moving) pair, then Adam steps on that pair
    alone that add a smooth correction, minimising T's cross-modal terms: ``beta * LocalGradientLoss(fixed, warped)
    + alpha * DiffusionLoss(field)`` (G is not deployed, so the LNCC term through G is left out), the moving image warped
    as MONAI's ``Warp(bilinear, border)`` does (``BorderWarp``, ``diffusion``: the same values, faster in this loop).

    The correction lives on a grid ``grid_factor`` times coarser than the image, interpolated (trilinear) to the
    voxels: few parameters, smooth by construction, fast. With ``steps=0`` this is the network alone (the paper's
    method). Being the inferer, not the network, it applies wherever the bundle's ``inferer`` runs (evaluation,
    inference, MONAI Label) while ``network_def`` and its exports stay T. Input and output as
    ``TransformationNetwork``: (B, 2, *S) -> (B, D, *S) voxels.

    Coarse to fine: ``downsample`` and ``steps`` may be sequences of one length, one pyramid level each, e.g.
    ``downsample=(3, 2), steps=(30, 10)``: T and 30 steps on the pair resampled 3 times coarser, then 10 steps 2
    times coarser, starting from the field so far. At each level the pair is resampled that many times coarser
    (Gaussian anti-aliasing, corners aligned) and the field is carried from level to level, and at the end to the
    input, with its vectors rescaled to the new voxels (``resize_field``); a step costs about ``downsample ** D``
    times less, and a T trained at 3 mm serves 1 mm images.
    The local gradient neighbourhood shrinks with the level (``coarser_kernel_size``) so it keeps its extent in mm.
    ``size_divisible`` pads the pair T sees (zeros, at the far end) for its poolings.
    """

    def __init__(
        self,
        steps: int | Sequence[int] = 0,
        lr: float = 0.05,
        alpha: float = 1.0,
        beta: float = 1.0,
        lg_kernel_size: int = 7,
        grid_factor: int = 4,
        downsample: int | Sequence[int] = 1,
        size_divisible: int = 1,
    ):
        super().__init__()
        factors, level_steps = ensure_tuple(downsample), ensure_tuple(steps)
        if len(factors) != len(level_steps) or any(int(f) < 1 for f in factors) or size_divisible < 1:
            raise ValueError(
                f"downsample (each >= 1) and steps need one entry per pyramid level and size_divisible "
                f">= 1; got downsample={downsample}, steps={steps}, size_divisible={size_divisible}."
            )
        self.levels = [(int(f), int(s)) for f, s in zip(factors, level_steps)]
        self.lr, self.alpha, self.beta, self.grid_factor, self.size_divisible = (
            lr,
            alpha,
            beta,
            grid_factor,
            size_divisible,
        )
        self.local_gradient = {f: LocalGradientLoss(coarser_kernel_size(lg_kernel_size, f)) for f in factors}
        self.network_ddf: torch.Tensor | None = None  # the last call's field of the network alone (input voxels)
        self.network_seconds = float("nan")

    @property
    def refines(self) -> bool:
        """Whether any test-time optimisation step runs after the network."""
        return any(steps > 0 for _, steps in self.levels)

    def __call__(self, pair: torch.Tensor, network: nn.Module, *args, **kwargs) -> torch.Tensor:
        """The refined field; the network's own (T alone), on the input's voxels, stays in ``network_ddf`` and the
        seconds it took in ``network_seconds``, so that T alone and T + optimisation can be scored side by side."""
        start = time.perf_counter()
        size = tuple(pair.shape[2:])
        ddf = None  # (B, D, *level size), in the last level's voxels
        for factor, steps in self.levels:
            small = coarser_size(size, factor)
            if factor == 1:
                level_pair = pair
            else:
                level_pair = resize(gaussian_blur(pair, (factor - 1) / 2), small)  # (B, 2, *small)
            if ddf is None:  # the first level: the network's field
                padding = [p for s in reversed(small) for p in (0, -s % self.size_divisible)]  # F.pad: last axis first
                ddf = network(F.pad(level_pair, padding), *args, **kwargs)[(..., *[slice(0, s) for s in small])]
                if ddf.is_cuda:
                    torch.cuda.synchronize()
                self.network_seconds = time.perf_counter() - start
                self.network_ddf = resize_field(ddf.detach(), size)
            else:
                ddf = resize_field(ddf, small)
            ddf = self._refine(level_pair, ddf, steps, self.local_gradient[factor])
        return resize_field(ddf, size)

    def _refine(
        self, pair: torch.Tensor, ddf: torch.Tensor, steps: int, local_gradient: LocalGradientLoss
    ) -> torch.Tensor:
        """``ddf`` (B, D, *S) plus the correction optimised for ``pair`` (B, 2, *S) in ``steps`` Adam steps."""
        if steps <= 0:
            return ddf
        ddf = ddf.detach()
        fixed, moving = pair[:, :1].detach(), pair[:, 1:2].detach()
        size = tuple(pair.shape[2:])
        coarse = coarser_size(size, self.grid_factor)
        with torch.enable_grad():
            fixed_directions = local_gradient.directions(fixed)  # the same in every step: once (a tenth of a step)
            warp = BorderWarp(size, pair.device, pair.dtype)
            correction = torch.zeros(pair.shape[0], len(size), *coarse, device=pair.device, requires_grad=True)
            optimizer = torch.optim.Adam([correction], lr=self.lr)
            for _ in range(steps):
                field = ddf + resize(correction, size)
                similarity = local_gradient.similarity_to_directions(fixed_directions, warp(moving, field)).mean()
                loss = -self.beta * similarity + self.alpha * diffusion(field)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return ddf + resize(correction.detach(), size)


def coarser_size(size: Sequence[int], factor: int) -> tuple[int, ...]:
    """The grid ``factor`` times coarser: ceil(s / factor) voxels along each axis, at least 2 (corners aligned)."""
    return tuple(max(2, -(-s // factor)) for s in size)


def resize(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, C, *S) -> (B, C, *size), (bi/tri)linear with the corners aligned: voxel 0 and voxel s - 1 keep their
    places, so both grids span the same field of view."""
    return F.interpolate(
        image, size=tuple(size), mode="trilinear" if len(size) == 3 else "bilinear", align_corners=True
    )


def resize_field(ddf: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A displacement field in voxels, (B, D, *S) -> (B, D, *size), its vectors rescaled to the new grid's voxels:
    one voxel of S spans (c - 1) / (s - 1) voxels of ``size`` along each axis (corners aligned, as ``resize``)."""
    old = ddf.shape[2:]
    if tuple(old) == tuple(size):
        return ddf
    scale = torch.tensor([(c - 1) / (s - 1) for s, c in zip(old, size)], dtype=ddf.dtype, device=ddf.device)
    return resize(ddf, size) * scale.reshape(1, -1, *[1] * len(size))
