"""CT in Hounsfield units: the unit check, an invertible HU window, and co-located patches of two unpaired scans."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform, Randomizable

from .transforms import _source


class CheckHUd(MapTransform):
    """Rejects an image that is not CT in Hounsfield units, naming the file.

    CT in HU holds air (about -1000 HU) somewhere in its field of view and soft tissue near 0..100 HU; an image whose
    lowest value is above ``air_below`` (an MR image, a CT rescaled to 0..1 or 8 bits, or stored without the DICOM
    rescale intercept) would be windowed into nonsense without a word, so it stops here. Runs on the image as loaded.
    """

    def __init__(self, keys: KeysCollection, air_below: float = -500.0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.air_below = air_below

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            values = torch.as_tensor(d[key])
            lo, hi = float(values.min()), float(values.max())
            if lo > self.air_below or hi <= lo:
                raise ValueError(
                    f"'{_source(d[key])}' ('{key}'): intensities {lo:g}..{hi:g} are not CT in Hounsfield units (expected "
                    f"air near -1000 HU, i.e. values below {self.air_below:g}); give a CT in HU (DICOM: apply "
                    "RescaleSlope/RescaleIntercept), not an MR image or a rescaled CT."
                )
        return d


def hu_to_window(
    hu: torch.Tensor, window: Sequence[float], value_range: Sequence[float] = (-1.0, 1.0), clip: bool = True
) -> torch.Tensor:
    """HU in ``window`` (lowest, highest) linearly onto ``value_range`` (clipped to it with ``clip``)."""
    (h0, h1), (v0, v1) = window, value_range
    out = (torch.as_tensor(hu).float() - h0) / (h1 - h0) * (v1 - v0) + v0
    return out.clamp(v0, v1) if clip else out


def window_to_hu(
    values: torch.Tensor, window: Sequence[float], value_range: Sequence[float] = (-1.0, 1.0)
) -> torch.Tensor:
    """The inverse of ``hu_to_window`` (values the window clipped stay at its edges)."""
    (h0, h1), (v0, v1) = window, value_range
    return (torch.as_tensor(values) - v0) / (v1 - v0) * (h1 - h0) + h0


class HUWindowd(MapTransform, InvertibleTransform):
    """Maps the HU window ``hu_min``..``hu_max`` linearly onto ``b_min``..``b_max`` (clipped), and back.

    CT is calibrated, so unlike MR the range is fixed rather than read from each image. ``inverse`` (and ``Invertd``
    at inference) maps a network's output back to HU; values the window clipped stay at its edges.
    """

    def __init__(
        self,
        keys: KeysCollection,
        hu_min: float = -1024.0,
        hu_max: float = 2048.0,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if hu_max <= hu_min:
            raise ValueError(f"need hu_min < hu_max, got {hu_min} and {hu_max}.")
        self.hu_min, self.hu_max, self.b_min, self.b_max, self.clip = hu_min, hu_max, b_min, b_max, clip

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = hu_to_window(d[key], (self.hu_min, self.hu_max), (self.b_min, self.b_max), self.clip)
            self.push_transform(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            self.pop_transform(d[key])
            d[key] = window_to_hu(d[key], (self.hu_min, self.hu_max), (self.b_min, self.b_max))
        return d


def _crop(img: torch.Tensor, center: Sequence[int], size: Sequence[int], value: float) -> torch.Tensor:
    """The (C, *size) box of ``img`` (C, *S) centred on voxel ``center`` (start ``center - size // 2``), padded with
    ``value`` where it leaves the image."""
    starts = [c - s // 2 for c, s in zip(center, size)]
    inside = tuple(slice(max(0, a), min(n, a + s)) for a, s, n in zip(starts, size, img.shape[1:]))
    patch = torch.as_tensor(img)[(slice(None), *inside)]
    pad: list[int] = []
    for a, s, n in reversed(list(zip(starts, size, img.shape[1:]))):  # F.pad wants the last axis first
        pad += [max(0, -a), max(0, a + s - n)]
    return F.pad(patch, pad, value=value) if any(pad) else patch


class RandColocatedPatchd(Randomizable, MapTransform):
    """Random patches at the same place in every key's volume: the patch-based UNIT's training samples.

    The volumes (C, X, Y, Z) must share a voxel spacing (``Spacingd`` first). The domains are unpaired scans, often
    of different people with different fields of view, so "the same place" needs a common frame:

    * ``alignment="relative"`` (default): the same relative position. One position ``u`` in [0, 1]^3 is drawn and
      each volume's patch is centred on voxel ``round(u * (shape - 1))``, moved inward just enough to lie inside the
      volume where the volume is at least the patch's size. Every volume is covered whole, whatever its extent.
    * ``alignment="center"``: the same offset from the centres. One offset ``o`` (voxels, ``o * spacing`` mm) from each
      centre voxel ``shape // 2`` is drawn such that the patch lies inside every volume (where one is smaller than
      the patch: such that its centre does): the same physical coordinates when the scans are centred alike, but
      only the part of the larger scans that overlaps the smallest one is ever sampled.
    * ``alignment="lung"``: the same body region along the axial axis, matched by anatomy rather than position. Each
      axial slice is described by its lung ratio (voxels in ``lung_range`` over voxels above it: measured 0.5 to 1
      through the lungs, 0.02 to 0.3 in the abdomen, depending on the air around the body in the field of view). A
      slice is drawn in a randomly chosen key's volume among those that have a match in every other volume; every
      other volume takes, among its slices whose lung ratio is within ``lung_tolerance`` of that slice's, the one
      nearest the same relative height. In-plane as ``"relative"``. A chest-to-abdomen scan paired with an
      abdomen-only scan then gives patches of its lower slices only; its lungs are sampled with a chest scan.

    With a 2D ``roi_size`` the patch is 2D, from the axial slice (last axis) at that position. Where a patch leaves its
    volume it is padded with ``pad_value`` (padding the discriminator could learn to expect from one domain only:
    keep patches smaller than the smallest scan). A draw whose first key's patch has less than ``min_fraction`` of
    voxels above ``threshold`` (air, for CT windowed to -1..1) is redrawn, up to ``max_tries`` times, except for a
    share ``background_probability`` of the samples, taken wherever they fall: inference tiles the air around the
    body too. ``meta["patch_center"]`` records each patch's centre voxel in its (resampled) volume.
    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int],
        alignment: str = "relative",
        threshold: float = -0.6,
        min_fraction: float = 0.3,
        max_tries: int = 10,
        background_probability: float = 0.1,
        pad_value: float = -1.0,
        lung_range: Sequence[float] = (-0.952, -0.659),
        lung_tolerance: float = 0.1,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(roi_size) not in (2, 3):
            raise ValueError(f"roi_size must have 2 (axial patches) or 3 entries, got {roi_size}.")
        if alignment not in ("relative", "center", "lung"):
            raise ValueError(f"alignment must be 'relative', 'center' or 'lung', got '{alignment}'.")
        # lung_range defaults to -950..-500 HU in the window units of HUWindowd(-1024, 2048)
        self.lung_range, self.lung_tolerance = (float(lung_range[0]), float(lung_range[1])), float(lung_tolerance)
        self.roi_size, self.alignment = [int(r) for r in roi_size], alignment
        self.threshold, self.min_fraction, self.max_tries, self.pad_value = (
            threshold,
            min_fraction,
            max_tries,
            pad_value,
        )
        self.background_probability = background_probability

    @staticmethod
    def offset_range(shapes: Sequence[Sequence[int]], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``alignment="center"``: lowest and highest offsets (per axis, voxels) keeping the whole patch inside every
        volume along the axes where each volume is at least the patch's size, else the patch centre inside every one."""
        shapes, size = np.asarray(shapes), np.asarray(size)  # (keys, 3), (3,)
        centres = shapes // 2
        low, high = (-centres).max(0), (shapes - 1 - centres).min(0)
        fits = (shapes >= size).all(0)
        low_in, high_in = (size // 2 - centres).max(0), (shapes - size + size // 2 - centres).min(0)
        return np.where(fits, low_in, low), np.where(fits, high_in, high)

    @staticmethod
    def relative_center(position: np.ndarray, shape: Sequence[int], size: Sequence[int]) -> np.ndarray:
        """``alignment="relative"``: the centre voxel at relative ``position`` in ``shape``, moved inward to keep a
        patch of ``size`` inside along the axes where it fits."""
        shape, size = np.asarray(shape), np.asarray(size)
        center = np.rint(position * (shape - 1)).astype(int)
        inside = np.clip(center, size // 2, shape - size + size // 2)
        return np.where(shape >= size, inside, center)

    @staticmethod
    def lung_ratios(volume: torch.Tensor, lung_range: Sequence[float]) -> np.ndarray:
        """Per axial slice of ``volume`` (C, X, Y, Z): voxels inside ``lung_range`` (low, high) over voxels above it,
        (Z,); 0 where a slice has no voxel above it."""
        v = torch.as_tensor(volume)
        lung = ((v > lung_range[0]) & (v <= lung_range[1])).sum(dim=(0, 1, 2)).double()
        tissue = (v > lung_range[1]).sum(dim=(0, 1, 2)).double()
        return (lung / tissue.clamp(min=1.0)).numpy() * (tissue > 0).numpy()

    def matchable_slices(self, ratios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``alignment="lung"``: per volume, the slices whose lung ratio is within ``lung_tolerance`` of some slice of
        every other volume (the body region all of them show)."""
        out = []
        for k, r in enumerate(ratios):
            ok = np.ones(len(r), dtype=bool)
            for j, other in enumerate(ratios):
                if j != k:
                    ok &= (np.abs(r[:, None] - other[None, :]) <= self.lung_tolerance).any(
                        axis=1
                    )  # (Z_k, Z_j) -> (Z_k,)
            out.append(np.flatnonzero(ok))
        return out

    def _lung_matched(self, ratios, matchable, shapes, size) -> list[np.ndarray]:
        position = self.R.uniform(0.0, 1.0, 3)  # in-plane as "relative"
        centers = [self.relative_center(position, shape, size) for shape in shapes]
        ref = self.R.randint(len(shapes))
        z_ref = int(self.R.choice(matchable[ref]))
        height = z_ref / max(1, shapes[ref][2] - 1)  # the reference slice's relative height
        for k, (r, shape) in enumerate(zip(ratios, shapes)):
            if k == ref:
                z = z_ref
            else:
                candidates = np.flatnonzero(np.abs(r - ratios[ref][z_ref]) <= self.lung_tolerance)
                z = int(candidates[np.argmin(np.abs(candidates - height * (shape[2] - 1)))])
            if shape[2] >= size[2]:  # a 3D patch stays inside the volume, as "relative" keeps it
                z = int(np.clip(z, size[2] // 2, shape[2] - size[2] + size[2] // 2))
            centers[k][2] = z
        return centers

    def _centers(self, shapes: Sequence[Sequence[int]], size: Sequence[int], lung=None) -> list[np.ndarray]:
        if self.alignment == "lung":
            return self._lung_matched(*lung, shapes, size)
        if self.alignment == "relative":
            position = self.R.uniform(0.0, 1.0, 3)
            return [self.relative_center(position, shape, size) for shape in shapes]
        low, high = self.offset_range(shapes, size)
        offset = np.array([self.R.randint(lo, hi + 1) for lo, hi in zip(low, high)])
        return [np.asarray(shape) // 2 + offset for shape in shapes]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        shapes = [tuple(d[k].shape[1:]) for k in keys]
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"RandColocatedPatchd expects (C, X, Y, Z) volumes, got shapes {shapes} for {keys}.")
        spacings = [
            tuple(np.round(np.asarray(d[k].pixdim, dtype=float), 4)) for k in keys if isinstance(d[k], MetaTensor)
        ]
        if len(set(spacings)) > 1:
            raise ValueError(
                f"RandColocatedPatchd: the volumes {keys} have spacings {spacings}; resample them to one "
                "spacing (Spacingd) first."
            )
        size = self.roi_size if len(self.roi_size) == 3 else [*self.roi_size, 1]
        anywhere = self.R.rand() < self.background_probability
        lung = None
        if self.alignment == "lung":
            ratios = [self.lung_ratios(d[k], self.lung_range) for k in keys]
            lung = (ratios, self.matchable_slices(ratios))
            if any(m.size == 0 for m in lung[1]):
                raise ValueError(
                    f"RandColocatedPatchd: the volumes {keys} share no body region (no slices within lung ratio "
                    f"{self.lung_tolerance} of each other); pair scans of overlapping regions."
                )
        for _ in range(self.max_tries):
            centers = self._centers(shapes, size, lung)
            first = _crop(d[keys[0]], centers[0], size, self.pad_value)
            if anywhere or float((first > self.threshold).float().mean()) >= self.min_fraction:
                break
        for key, center in zip(keys, centers):
            patch = _crop(d[key], center, size, self.pad_value)
            if len(self.roi_size) == 2:
                patch = patch[..., 0]  # (C, X, Y, 1) -> (C, X, Y): the axial slice
            meta = dict(d[key].meta) if isinstance(d[key], MetaTensor) else {}
            meta["patch_center"] = center.tolist()
            d[key] = MetaTensor(patch.contiguous(), meta=meta)
        return d
