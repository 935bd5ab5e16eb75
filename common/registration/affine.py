"""Affine alignment of two brains on arrays of one shape, from their foreground masks: the affine stage before
Deform-GAN's deformable one for pairs of different people (inter-subject training pairs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def foreground_mask(image: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """(C, *S) -> (1, *S) float mask of the voxels above ``threshold`` of the image's maximum (skull-stripped brains:
    the brain; heads: the head)."""
    image = torch.as_tensor(image).float().amax(0, keepdim=True)
    return (image > threshold * image.max().clamp_min(1e-12)).float()


def _normalised_centroid(mask: torch.Tensor) -> torch.Tensor:
    """Centre of mass of (1, 1, *S) in ``affine_grid``'s coordinates (-1..1, corners aligned), in its axis order
    (x = the last array axis)."""
    shape = mask.shape[2:]
    axes = [torch.linspace(-1.0, 1.0, n) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    total = mask.sum().clamp_min(1e-6)
    centre = [float((g * mask[0, 0]).sum() / total) for g in grids]
    return torch.tensor(centre[::-1])


def mask_affine(
    moving: torch.Tensor,
    fixed: torch.Tensor,
    steps: int = 150,
    lr: float = 0.01,
    downsample: int | None = None,
    threshold: float = 0.05,
) -> torch.Tensor:
    """The affine that pulls ``moving`` onto ``fixed`` (both (C, *S), the same shape and voxel size), as a (D, D + 1)
    matrix in ``affine_grid``'s normalised coordinates (corners aligned): ``apply_affine(moving, theta)`` is aligned
    with ``fixed``.

    Found from the foreground masks alone (so it does not care which contrast each image is): the translation that
    matches their centres of mass, then Adam steps on all D * (D + 1) parameters minimising the mean squared difference
    of the two masks, ``downsample`` times coarser (default: to about 32 voxels along the longest axis) and
    box-smoothed so the loss is smooth in the parameters.
    """
    dims = fixed.ndim - 1
    if downsample is None:
        downsample = max(1, -(-max(fixed.shape[1:]) // 32))
    pool = F.avg_pool3d if dims == 3 else F.avg_pool2d
    masks = []
    for image in (moving, fixed):
        m = foreground_mask(image, threshold)[None]  # (1, 1, *S)
        if downsample > 1:
            m = pool(m, downsample, ceil_mode=True)
        masks.append(pool(m, 3, stride=1, padding=1, count_include_pad=False))
    moving_mask, fixed_mask = masks
    linear = torch.eye(dims).requires_grad_(True)
    shift = (_normalised_centroid(moving_mask) - _normalised_centroid(fixed_mask)).requires_grad_(True)
    optimiser = torch.optim.Adam([linear, shift], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        theta = torch.cat([linear, shift[:, None]], 1)[None]
        grid = F.affine_grid(theta, list(fixed_mask.shape), align_corners=True)
        warped = F.grid_sample(moving_mask, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        loss = (warped - fixed_mask).pow(2).mean()
        loss.backward()
        optimiser.step()
    return torch.cat([linear, shift[:, None]], 1).detach()


def apply_affine(image: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """(C, *S) resampled through ``theta`` (as ``mask_affine`` returns it) on its own array shape; zeros outside."""
    image = torch.as_tensor(image).float()
    grid = F.affine_grid(theta[None].float(), [1, *image.shape], align_corners=True)
    return F.grid_sample(image[None], grid, mode=mode, padding_mode="zeros", align_corners=True)[0]
