"""Test-time instance optimisation: T's displacement refined on the one pair at hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiffusionLoss
from monai.inferers import Inferer
from monai.networks.blocks import Warp
from torch import nn

from ..losses.local_gradient import LocalGradientLoss


class InstanceOptimisation(Inferer):
    """A MONAI inferer for T: the network's displacement for a (fixed, moving) pair, then ``steps`` Adam steps on that
    pair alone that add a smooth correction, minimising T's cross-modal terms: ``beta * LocalGradientLoss(fixed,
    warped) + alpha * DiffusionLoss(field)`` (G is not deployed, so the LNCC term through G is left out).

    The correction lives on a grid ``grid_factor`` times coarser than the image, interpolated (trilinear) to the
    voxels: few parameters, smooth by construction, fast. With ``steps=0`` this is the network alone (the paper's
    method). Being the inferer, not the network, it applies wherever the bundle's ``inferer`` runs (evaluation,
    inference, MONAI Label) while ``network_def`` and its exports stay T. Input and output as
    ``TransformationNetwork``: (B, 2, *S) -> (B, D, *S) voxels.
    """

    def __init__(self, steps: int = 0, lr: float = 0.05, alpha: float = 1.0, beta: float = 1.0, lg_kernel_size: int = 7,
                 grid_factor: int = 4):
        super().__init__()
        self.steps, self.lr, self.alpha, self.beta, self.grid_factor = steps, lr, alpha, beta, grid_factor
        self.local_gradient, self.smoothness = LocalGradientLoss(lg_kernel_size), DiffusionLoss()
        self.warp = Warp(mode="bilinear", padding_mode="border")

    def __call__(self, pair: torch.Tensor, network: nn.Module, *args, **kwargs) -> torch.Tensor:
        ddf = network(pair, *args, **kwargs)
        if self.steps <= 0:
            return ddf
        ddf = ddf.detach()
        fixed, moving = pair[:, :1].detach(), pair[:, 1:2].detach()
        size = tuple(pair.shape[2:])
        coarse = [max(2, -(-s // self.grid_factor)) for s in size]  # ceil(s / factor)
        mode = "trilinear" if len(size) == 3 else "bilinear"
        with torch.enable_grad():
            correction = torch.zeros(pair.shape[0], len(size), *coarse, device=pair.device, requires_grad=True)
            optimizer = torch.optim.Adam([correction], lr=self.lr)
            for _ in range(self.steps):
                field = ddf + F.interpolate(correction, size=size, mode=mode, align_corners=True)
                loss = self.beta * self.local_gradient(fixed, self.warp(moving, field)) + self.alpha * self.smoothness(field)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return ddf + F.interpolate(correction.detach(), size=size, mode=mode, align_corners=True)
