"""Displacement fields: Jacobian determinant, folding, endpoint error, Dice, and voxel <-> world (mm) vectors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def jacobian_determinant(ddf: torch.Tensor) -> torch.Tensor:
    """det(I + grad u) of the transformation x -> x + u(x), by central differences. (B, D, *S) -> (B, *S).

    ``ddf`` in voxels along the array axes (as ``TransformationNetwork`` gives it); a value <= 0 is a voxel where
    the transformation folds (is not locally invertible).
    """
    spatial = ddf.ndim - 2
    if ddf.shape[1] != spatial or spatial not in (2, 3):
        raise ValueError(f"expected a (B, D, *S) displacement with D = 2 or 3 spatial dims, got {tuple(ddf.shape)}.")
    # jac[:, i, j] = d(x_i + u_i) / d x_j: (B, D, D, *S)
    grads = torch.stack(
        [torch.stack(torch.gradient(ddf[:, i], dim=tuple(range(1, spatial + 1))), 1) for i in range(spatial)], 1
    )
    jac = grads + torch.eye(spatial, dtype=ddf.dtype, device=ddf.device).reshape(1, spatial, spatial, *([1] * spatial))
    return torch.det(jac.movedim((1, 2), (-2, -1)))  # (B, *S, D, D) -> (B, *S)


def folding_percent(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Percent of voxels (inside ``mask`` (B, 1, *S) if given) where the Jacobian determinant is <= 0."""
    folded = jacobian_determinant(ddf) <= 0
    if mask is not None:
        inside = mask[:, 0] > 0
        return float(100.0 * folded[inside].float().mean()) if inside.any() else float("nan")
    return float(100.0 * folded.float().mean())


def endpoint_errors(
    pred: torch.Tensor, true: torch.Tensor, spacing: Sequence[float], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """|pred(x) - true(x)| in mm at each voxel (inside ``mask``): a flat tensor. Fields (B, D, *S) in voxels,
    ``spacing`` the voxel size in mm along each array axis."""
    scale = torch.as_tensor(list(spacing), dtype=pred.dtype, device=pred.device).reshape(
        1, -1, *([1] * (pred.ndim - 2))
    )
    error = ((pred - true) * scale).norm(dim=1)  # (B, *S)
    return error[mask[:, 0] > 0] if mask is not None else error.flatten()


def dice(a: torch.Tensor, b: torch.Tensor, labels: Sequence[int] | None = None) -> float:
    """Mean Dice over ``labels`` (default: every non-zero label present in either) of two label maps."""
    a, b = torch.as_tensor(a).round().long(), torch.as_tensor(b).round().long()
    if labels is None:
        labels = sorted((set(torch.unique(a).tolist()) | set(torch.unique(b).tolist())) - {0})
    scores = []
    for lab in labels:
        x, y = a == lab, b == lab
        total = int(x.sum()) + int(y.sum())
        if total:
            scores.append(2.0 * int((x & y).sum()) / total)
    return float(np.mean(scores)) if scores else float("nan")


def voxel_spacing(image) -> list[float]:
    """The voxel size in mm along each array axis of a (MetaTensor) image, from its affine (1 mm without one)."""
    affine = np.asarray(getattr(image, "affine", np.eye(4)), dtype=np.float64)
    return np.sqrt((affine[:3, :3] ** 2).sum(0)).tolist()


def ddf_to_world(ddf: torch.Tensor, affine) -> torch.Tensor:
    """Voxel displacements (D, *S) along the array axes -> world displacements in mm (the affine's space: RAS for
    NIfTI through nibabel/MONAI): u_world = A[:D, :D] @ u_voxel."""
    spatial = ddf.shape[0]
    linear = torch.as_tensor(
        np.asarray(affine, dtype=np.float64)[:spatial, :spatial], dtype=ddf.dtype, device=ddf.device
    )
    return torch.einsum("ij,j...->i...", linear, ddf)


def ddf_to_voxels(ddf_world: torch.Tensor, affine) -> torch.Tensor:
    """The inverse of ``ddf_to_world``: world displacements (D, *S) in mm -> voxels along the array axes."""
    spatial = ddf_world.shape[0]
    linear = np.linalg.inv(np.asarray(affine, dtype=np.float64)[:spatial, :spatial])
    return torch.einsum(
        "ij,j...->i...", torch.as_tensor(linear, dtype=ddf_world.dtype, device=ddf_world.device), ddf_world
    )
