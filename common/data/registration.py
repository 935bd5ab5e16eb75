"""Registration data: known synthetic deformations for training and scoring, input checks, and writing a field and
the warped moving image on the fixed image's grid."""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import set_rnd
from monai.networks.blocks import Warp
from monai.transforms import MapTransform, Randomizable

from ..registration.affine import apply_affine, mask_affine
from ..registration.fields import ddf_to_voxels, ddf_to_world, voxel_spacing
from .transforms import _source


def smooth_deformation(
    shape: Sequence[int],
    spacing: Sequence[float],
    rng: np.random.Generator,
    max_displacement: float = 6.0,
    control_spacing: float = 40.0,
    rotate: float = 5.0,
    scale: float = 0.05,
    translate: float = 3.0,
) -> torch.Tensor:
    """A random smooth displacement plus a small affine, in voxels: (3, *shape).

    The smooth part is Gaussian noise on a control grid every ``control_spacing`` mm, interpolated (trilinear) to the
    voxels and scaled so that its largest displacement is ``max_displacement`` mm times a random factor in 0.5..1.
    The affine part rotates by up to ``rotate`` degrees about each axis, scales by up to +-``scale`` and translates
    by up to ``translate`` mm, about the volume's centre. Both are written as pull-back displacements and added.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    extent = np.asarray(shape) * spacing
    grid = [max(2, int(np.ceil(e / control_spacing)) + 1) for e in extent]
    coarse = torch.as_tensor(rng.standard_normal((1, 3, *grid)), dtype=torch.float32)
    smooth = F.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0]  # (3, *shape), mm
    peak = float(smooth.norm(dim=0).max())
    smooth = smooth * (max_displacement * rng.uniform(0.5, 1.0) / max(peak, 1e-6))

    angles = np.deg2rad(rng.uniform(-rotate, rotate, 3))
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = r @ rot
    linear = rot @ np.diag(1.0 + rng.uniform(-scale, scale, 3))
    shift = rng.uniform(-translate, translate, 3)
    axes = [torch.arange(n, dtype=torch.float64) * sp - (n - 1) * sp / 2 for n, sp in zip(shape, spacing)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, *shape), mm from the centre
    moved = torch.einsum("ij,j...->i...", torch.as_tensor(linear), points) + torch.as_tensor(shift).reshape(3, 1, 1, 1)
    affine_part = (moved - points).float()

    ddf_mm = smooth + affine_part
    return ddf_mm / torch.as_tensor(spacing, dtype=torch.float32).reshape(3, 1, 1, 1)


class RandSmoothDeformationd(Randomizable, MapTransform):
    """Deforms ``keys`` (the fixed image, and its labels) by a random smooth displacement plus a small affine
    (``smooth_deformation``), and stores that displacement under ``ddf_key``: (3, *S) in voxels.

    The images of a pair start aligned (contrasts of one subject, co-registered); the fixed one becomes
    ``R'(x) = R(x + v(x))``, so the moving image warped by v is aligned with it: v is the true pull-back
    displacement a registration of (R', moving) should find, and the endpoint error of a prediction is measured
    against it. With ``seed`` set, the deformation is fixed per volume (seeded by ``seed`` and the first key's file
    name, without its folder), for evaluation pairs that do not change between runs; without, every call draws a new one (training).

    Args:
        keys: images to deform (all on one grid); ``mode`` per key, "bilinear" for images, "nearest" for labels.
        ddf_key: where the true displacement goes.
        max_displacement, control_spacing, rotate, scale, translate: as ``smooth_deformation`` (mm, degrees).
        seed: fixed deformations per file (evaluation), or None (random, training).
    """

    def __init__(
        self,
        keys: KeysCollection,
        ddf_key: str = "true_ddf",
        mode: str | Sequence[str] = "bilinear",
        max_displacement: float = 6.0,
        control_spacing: float = 40.0,
        rotate: float = 5.0,
        scale: float = 0.05,
        translate: float = 3.0,
        seed: int | None = None,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.ddf_key, self.seed = ddf_key, seed
        self.modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        self.kwargs = dict(
            max_displacement=max_displacement,
            control_spacing=control_spacing,
            rotate=rotate,
            scale=scale,
            translate=translate,
        )

    def randomize(self, data=None) -> None:
        pass  # the draw happens in __call__, from self.R or the per-file seed

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        first = d[keys[0]]
        if self.seed is not None:
            # the file's name, not its path: the same pair wherever the data lives
            rng = np.random.default_rng([self.seed, zlib.crc32(Path(_source(first)).name.encode())])
        else:
            rng = np.random.default_rng(self.R.randint(0, 2**31 - 1))
        ddf = smooth_deformation(first.shape[1:], voxel_spacing(first), rng, **self.kwargs)
        for key, mode in zip(self.keys, self.modes):
            if key not in d:
                continue
            img = d[key]
            warped = Warp(mode=mode, padding_mode="zeros")(torch.as_tensor(img).float()[None], ddf[None])[0]
            d[key] = MetaTensor(warped, meta=dict(img.meta)) if isinstance(img, MetaTensor) else warped
        d[self.ddf_key] = ddf
        return d


class CheckOverlapd(MapTransform):
    """After the moving image (``key``) is resampled onto the fixed image's grid (``ResampleToMatchd``), rejects a
    pair that shares less than ``min_fraction`` of the moving image's foreground, naming both files: images from
    different places (or with broken affines) cannot be registered by a deformable method."""

    def __init__(
        self,
        keys: KeysCollection,
        fixed_key: str = "image",
        min_fraction: float = 0.05,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.fixed_key, self.min_fraction = fixed_key, min_fraction

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = torch.as_tensor(d[key])
            inside = img != 0
            if float(inside.float().mean()) < self.min_fraction or img.max() == img.min():
                raise ValueError(
                    f"'{_source(d[key])}' ('{key}') does not overlap the fixed image '{_source(d[self.fixed_key])}': "
                    f"on the fixed image's grid (through both affines) {100 * float(inside.float().mean()):.1f} % of "
                    f"its voxels are non-zero. Check that both images show the same body part and that their "
                    f"headers' affines are right."
                )
        return d


class DisplacementToWorldd(MapTransform):
    """A network's displacement (``keys``, (D, *S) in voxels of ``ref_key``'s grid) -> world mm vectors (RAS), as a
    MetaTensor with the reference image's meta (affine and transform history), so that ``Invertd`` can resample
    it onto the original grid: world vectors do not change when the grid does."""

    def __init__(self, keys: KeysCollection, ref_key: str = "fixed", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        ref = d[self.ref_key]
        for key in self.key_iterator(d):
            world = ddf_to_world(torch.as_tensor(d[key]).float(), ref.affine)
            d[key] = MetaTensor(world, meta=dict(ref.meta), applied_operations=list(ref.applied_operations))
        return d


class WarpToFixedd(MapTransform):
    """Warps the moving image (``keys``; already resampled onto the fixed grid) by a world-mm displacement
    (``ddf_key``, on the same grid) and keeps the field: ``pred`` becomes the warped image, ``ddf_out_key`` the field.

    ``warped(x) = moving(x + u(x))``: the displacement is converted to voxels of the grid (through its affine) and
    applied with MONAI's ``Warp`` (``mode`` per key: bilinear for images, nearest for label maps). Outputs carry the
    moving image's file name and the fixed grid's affine.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ddf_key: str = "pred",
        output_keys: Sequence[str] = ("pred",),
        ddf_out_key: str = "ddf",
        mode: str | Sequence[str] = "bilinear",
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.ddf_key, self.output_keys, self.ddf_out_key = ddf_key, list(output_keys), ddf_out_key
        self.modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        field = d[self.ddf_key]
        for key, out_key, mode in zip(self.keys, self.output_keys, self.modes):
            if key not in d:
                continue
            moving = d[key]
            if tuple(field.shape[1:]) != tuple(moving.shape[1:]):
                raise ValueError(
                    f"the displacement ({tuple(field.shape[1:])}) and '{_source(moving)}' "
                    f"({tuple(moving.shape[1:])}) are not on one grid."
                )
            voxels = ddf_to_voxels(torch.as_tensor(field).float(), moving.affine)
            warped = Warp(mode=mode, padding_mode="zeros")(torch.as_tensor(moving).float()[None], voxels[None])[0]
            d[out_key] = MetaTensor(
                warped.to(torch.as_tensor(moving).dtype) if mode == "nearest" else warped,
                affine=moving.affine,
                meta=dict(moving.meta),
            )
        d[self.ddf_out_key] = MetaTensor(
            torch.as_tensor(field).float(), affine=d[self.keys[0]].affine, meta=dict(d[self.keys[0]].meta)
        )
        return d


class InterSubjectPairs(Randomizable, torch.utils.data.Dataset):
    """Training pairs for a registration network: item ``i`` is subject ``i``'s fixed image with, at the rate
    ``inter_subject_ratio``, another subject's moving image affinely aligned to it (an inter-subject cross-modal
    pair, which has real anatomical differences to register), and otherwise subject ``i``'s own moving image (the
    same person, which ``transform``'s synthetic deformation then misaligns by a known field). ``transform`` (e.g.
    ``RandSmoothDeformationd`` on the fixed image) runs on every pair, so the synthetic fields are augmentation on
    top of the inter-subject differences.

    ``subjects`` is a dataset of prepared subjects (``{"fixed", "moving"}``, each (1, *S), one shape and voxel size
    for all: the bundle's cached preprocessing), built from the training datalist only, so a held-out subject never
    appears. Each subject keeps its own grid until the affine stage: the moving image of subject ``j`` is resampled
    into subject ``i``'s array by ``mask_affine`` (found once per ordered pair, from the brains' masks, and kept).
    The item records which subject the moving image came from (``moving_subject``: its index in ``subjects``) and
    ``same_subject`` (1.0 for a subject's own pair, else 0.0). With ``registered_key`` set, it also keeps the fixed
    image as it was before ``transform`` under that key: for a subject's own pair, the moving image's co-registered
    counterpart (what a translator can be trained on without learning to move anatomy). With ``counterpart_key``
    set, it keeps under that key the moving subject's image of the fixed modality in the moving image's place (its own
    fixed image, for an inter-subject pair resampled by the same affine as its moving image): the moving image's
    co-registered counterpart, which a similarity in the fixed modality can compare with the fixed image.
    """

    def __init__(
        self,
        subjects: torch.utils.data.Dataset,
        inter_subject_ratio: float = 0.0,
        transform=None,
        fixed_key: str = "fixed",
        moving_key: str = "moving",
        align_steps: int = 150,
        registered_key: str | None = None,
        counterpart_key: str | None = None,
    ):
        if not 0.0 <= float(inter_subject_ratio) <= 1.0:
            raise ValueError(f"inter_subject_ratio must lie in 0..1, got {inter_subject_ratio}.")
        self.subjects, self.ratio, self.transform = subjects, float(inter_subject_ratio), transform
        self.fixed_key, self.moving_key, self.align_steps = fixed_key, moving_key, align_steps
        self.registered_key, self.counterpart_key = registered_key, counterpart_key
        self._affines: dict[tuple[int, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.subjects)

    def set_random_state(self, seed=None, state=None):
        super().set_random_state(seed, state)
        if self.transform is not None:  # MONAI's set_rnd stops at the first Randomizable: seed what it wraps too
            set_rnd(self.transform, int(self.R.randint(0, 2**31 - 1)))
        return self

    def randomize(self, data=None) -> None:
        pass  # the draws happen in __getitem__, from self.R

    def _aligned_moving(self, source: int, target: int, fixed: torch.Tensor, key: str | None = None) -> torch.Tensor:
        """Subject ``source``'s ``key`` image (the moving image by default) in subject ``target``'s array, by the
        affine found once from the two subjects' moving and fixed images."""
        moving = self.subjects[source][self.moving_key]
        if moving.shape != fixed.shape:
            raise ValueError(
                f"inter-subject pairs need one array shape for all subjects (the bundle's roi_size); "
                f"subject {source} has {tuple(moving.shape)}, subject {target} {tuple(fixed.shape)}."
            )
        if (source, target) not in self._affines:
            self._affines[(source, target)] = mask_affine(moving, fixed, steps=self.align_steps)
        image = moving if key in (None, self.moving_key) else self.subjects[source][key]
        aligned = apply_affine(image, self._affines[(source, target)])
        return MetaTensor(aligned, meta=dict(fixed.meta)) if isinstance(fixed, MetaTensor) else aligned

    def __getitem__(self, index: int) -> dict:
        item = dict(self.subjects[index])
        source = index
        if self.counterpart_key is not None:
            item[self.counterpart_key] = item[self.fixed_key]  # a subject's own pair: its fixed image, undeformed
        if len(self.subjects) > 1 and self.R.rand() < self.ratio:
            others = [j for j in range(len(self.subjects)) if j != index]
            source = int(others[self.R.randint(len(others))])
            fixed = item[self.fixed_key]
            item[self.moving_key] = self._aligned_moving(source, index, fixed)
            if self.counterpart_key is not None:
                item[self.counterpart_key] = self._aligned_moving(source, index, fixed, key=self.fixed_key)
        item["moving_subject"] = source
        item["same_subject"] = torch.tensor(float(source == index))
        if self.registered_key is not None:
            item[self.registered_key] = item[self.fixed_key]  # transforms replace the fixed image, never edit it
        return self.transform(item) if self.transform is not None else item
