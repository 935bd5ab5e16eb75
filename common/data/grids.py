"""Voxel grids (shape, voxel-to-world affine) as a person reads them, and whether two are the same (numpy only: the
datalist tool checks grids without importing MONAI or torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def describe_grid(grid: tuple[Sequence[int], np.ndarray]) -> str:
    """A voxel grid (shape, 4x4 voxel-to-world affine) as a person reads it: ``240x240x155, 1x1x1 mm, LPS, origin
    (0.0, -239.0, 0.0)``."""
    import nibabel as nib

    shape, affine = grid
    affine = np.asarray(affine, dtype=float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return (
        f"{'x'.join(str(int(n)) for n in shape)}, {'x'.join(f'{v:.3g}' for v in spacing)} mm, "
        f"{''.join(nib.aff2axcodes(affine))}, origin ({', '.join(f'{v:.1f}' for v in affine[:3, 3])})"
    )


def same_grid(a: tuple[Sequence[int], np.ndarray], b: tuple[Sequence[int], np.ndarray], atol: float = 1e-3) -> bool:
    """Two grids (shape, affine) share shape and affine within ``atol`` (mm)."""
    return tuple(a[0]) == tuple(b[0]) and np.allclose(np.asarray(a[1], float), np.asarray(b[1], float), atol=atol)
