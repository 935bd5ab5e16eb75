"""MONAI dictionary transforms the bundles share: input checks, invertible percentile scaling, slice sampling."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import InvertibleTransform, MapTransform, Randomizable

from .grids import describe_grid, same_grid


def _source(img) -> str:
    """The file an image came from, for error messages."""
    meta = getattr(img, "meta", {}) or {}
    return str(meta.get("filename_or_obj", "<in-memory image>"))


class CheckImaged(MapTransform):
    """Rejects images a bundle cannot use, naming the file: wrong number of spatial dims, NaN/inf, constant.

    Runs right after ``EnsureChannelFirstd`` so that a 2D image given where a volume is expected, or a
    corrupt volume, fails with a message instead of a shape error deep inside a network. ``image_dims`` are the
    file's spatial dimensions (3: a volume), not the network's (a config's ``spatial_dims``: 2 for a slice network).
    """

    def __init__(self, keys: KeysCollection, image_dims: int = 3, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.image_dims = image_dims

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim != self.image_dims + 1:
                raise ValueError(
                    f"'{_source(img)}' ('{key}'): expected a {self.image_dims}D image (channel + {self.image_dims} "
                    f"spatial dims after EnsureChannelFirst), got shape {tuple(img.shape)}."
                )
            values = torch.as_tensor(img)
            if not torch.isfinite(values).all():
                bad = int((~torch.isfinite(values)).sum())
                raise ValueError(f"'{_source(img)}' ('{key}'): {bad} voxels are NaN or infinite.")
            if values.numel() == 0 or values.max() == values.min():
                raise ValueError(f"'{_source(img)}' ('{key}'): the image is constant; there is nothing to translate.")
        return d


class CheckSameGridd(MapTransform):
    """Rejects paired images that do not share one voxel grid (shape and affine), naming both files.

    Paired methods compare the source and the target voxel by voxel, so they must be co-registered and resampled
    alike; resampling would hide a mismatch, so this runs on the images as loaded (after ``EnsureChannelFirstd``).
    """

    def __init__(self, keys: KeysCollection, atol: float = 1e-3, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.atol = atol

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        first = d[keys[0]] if keys else None
        for key in keys[1:]:
            img = d[key]
            grids = [
                (tuple(i.shape[1:]), np.asarray(getattr(i, "affine", np.eye(4)), dtype=float)) for i in (img, first)
            ]
            if not same_grid(*grids, atol=self.atol):
                raise ValueError(
                    f"'{_source(img)}' ('{key}', {describe_grid(grids[0])}) and '{_source(first)}' ('{keys[0]}', "
                    f"{describe_grid(grids[1])}) are not on the same voxel grid: paired images must be co-registered "
                    f"and resampled alike (python -m tools.datalist ... --resample-to <contrast> resamples a subject's "
                    f"images onto one grid through their affines; that is not a registration)."
                )
        return d


class ScalePercentiled(MapTransform, InvertibleTransform):
    """Maps the ``lower``..``upper`` percentiles of each image linearly onto ``b_min``..``b_max`` (optionally clipped).

    Scanners and preprocessing pipelines give very different ranges (raw int16 versus 0..1 floats), so the
    range is read from each image rather than assumed. With ``nonzero=True`` the percentiles ignore the zero
    background of skull-stripped scans: every voxel whose magnitude is at most ``background_tolerance`` times the
    image's largest magnitude counts as background. Exact zeros are not enough: after resampling, interpolation
    leaves values near 1e-13 all around the brain (measured: 2 % of the non-zero voxels of a 3 mm resampling),
    which would pull the lower percentile to about 0 instead of the brain's darkest tissue. The two values used are
    recorded in the image's transform stack,
    so ``inverse`` (and ``Invertd`` at inference) maps a network's output back to the input's intensity scale.
    """

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.5,
        upper: float = 99.5,
        b_min: float = -1.0,
        b_max: float = 1.0,
        clip: bool = True,
        nonzero: bool = True,
        background_tolerance: float = 1e-3,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"need 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
        self.lower, self.upper, self.b_min, self.b_max = lower, upper, b_min, b_max
        self.clip, self.nonzero, self.background_tolerance = clip, nonzero, background_tolerance

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            values = torch.as_tensor(img).detach().float().cpu().numpy().ravel()
            if self.nonzero:
                magnitude = np.abs(values)
                values = values[magnitude > self.background_tolerance * magnitude.max(initial=0.0)]
            if values.size == 0:
                raise ValueError(
                    f"'{_source(img)}' ('{key}'): the image has no non-zero voxels to take percentiles from."
                )
            lo, hi = (float(v) for v in np.percentile(values, [self.lower, self.upper]))
            if hi <= lo:
                raise ValueError(
                    f"'{_source(img)}' ('{key}'): percentiles {self.lower}..{self.upper} are equal ({lo})."
                )
            out = (img.float() - lo) / (hi - lo) * (self.b_max - self.b_min) + self.b_min
            if self.clip:
                out = out.clamp(self.b_min, self.b_max)
            d[key] = out
            self.push_transform(d[key], extra_info={"lower_value": lo, "upper_value": hi})
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            info = self.pop_transform(d[key])["extra_info"]
            lo, hi = info["lower_value"], info["upper_value"]
            d[key] = (d[key] - self.b_min) / (self.b_max - self.b_min) * (hi - lo) + lo
        return d


class ForegroundMaskd(MapTransform):
    """Adds ``name``: the foreground of ``keys`` (voxels whose magnitude is above ``background_tolerance`` times the
    largest: a skull-stripped scan's brain, as ``ScalePercentiled`` takes it), where the item has no ``name`` of its
    own. Evaluation scores inside it: a subject listed without a brain mask would otherwise be scored over the whole
    image, whose background every method gets right. Apply to the images as loaded, before resampling (the
    background is still zero, and the mask is then resampled with nearest neighbour as a given one is, without the
    rim of interpolated edge voxels). Several keys: the union of their foregrounds."""

    def __init__(self, keys: KeysCollection, name: str = "mask", background_tolerance: float = 1e-3):
        super().__init__(keys)
        self.name, self.background_tolerance = name, background_tolerance

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if d.get(self.name) is not None:
            return d
        masks = []
        for key in self.key_iterator(d):
            magnitude = torch.as_tensor(d[key]).detach().abs()
            masks.append(magnitude > self.background_tolerance * float(magnitude.max()))
        mask = torch.stack(masks).any(dim=0).float()  # (C, *S)
        first = d[self.keys[0]]
        d[self.name] = MetaTensor(mask, meta=dict(first.meta)) if isinstance(first, MetaTensor) else mask
        return d


class RandForegroundSliced(Randomizable, MapTransform):
    """Picks a random slice along ``axis`` that contains foreground: (C, H, W, D) -> (C, H, W) for ``axis=-1``.

    A slice counts as foreground when at least ``min_fraction`` of its voxels exceed ``threshold`` (for images
    scaled to -1..1 the default -0.95 is "above background"). ``independent=True`` draws a separate slice for
    each key (unpaired training: the two domains never show the same anatomy at once); ``False`` uses one
    slice for all keys (paired training, choosing by the first key's foreground).

    ``context_slices`` k > 1 gives the ``context_keys`` 2.5D input: the chosen slice and its k - 1 nearest neighbours
    as channels (``slice_context``), (C, H, W, D) -> (C * k, H, W); the other keys keep the single slice.
    """

    def __init__(
        self,
        keys: KeysCollection,
        axis: int = -1,
        threshold: float = -0.95,
        min_fraction: float = 0.05,
        independent: bool = True,
        context_slices: int = 1,
        context_keys: KeysCollection = (),
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.axis, self.threshold, self.min_fraction, self.independent = axis, threshold, min_fraction, independent
        self.context_slices = _check_context(context_slices)
        self.context_keys = {context_keys} if isinstance(context_keys, str) else set(context_keys)

    def _candidates(self, img: torch.Tensor) -> np.ndarray:
        axis = self.axis % img.ndim
        if axis == 0:
            raise ValueError("axis must be a spatial axis, not the channel axis.")
        reduce = [a for a in range(img.ndim) if a != axis]
        fraction = (torch.as_tensor(img) > self.threshold).float().mean(dim=reduce)  # (n_slices,)
        candidates = torch.nonzero(fraction >= self.min_fraction).flatten().cpu().numpy()
        if candidates.size == 0:
            raise ValueError(
                f"'{_source(img)}': no slice along axis {self.axis} has {self.min_fraction:.0%} of voxels above "
                f"{self.threshold}; is the image scaled as expected?"
            )
        return candidates

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        index = None
        for key in self.key_iterator(d):
            if index is None or self.independent:
                index = int(self.R.choice(self._candidates(d[key])))
            img = d[key]
            if key in self.context_keys:
                sliced = slice_context(img, self.context_slices, self.axis, index)
            else:
                sliced = torch.select(img, self.axis % img.ndim, index)
            if isinstance(img, MetaTensor):
                sliced = MetaTensor(sliced.as_tensor(), meta=dict(img.meta))
                sliced.meta["slice_index"] = index
            d[key] = sliced
        return d


def _check_context(slices: int) -> int:
    if int(slices) != slices or slices < 1 or slices % 2 == 0:
        raise ValueError(f"context_slices must be an odd number of slices (1 = 2D input), got {slices}.")
    return int(slices)


def slice_context(img: torch.Tensor, slices: int, axis: int = -1, index: int | None = None) -> torch.Tensor:
    """2.5D input: each slice along ``axis`` with its ``slices - 1`` nearest neighbours, as channels.

    (C, *S) -> (C * slices, *S), channel ``c * slices + j`` holding channel c moved by ``j - slices // 2`` slices
    (the end slices repeated beyond the volume); with ``index``, only that slice: (C * slices, *S without axis).
    ``slices = 1`` returns the input (or its slice) unchanged.
    """
    slices = _check_context(slices)
    axis = axis % img.ndim
    if axis == 0:
        raise ValueError("axis must be a spatial axis, not the channel axis.")
    n = img.shape[axis]
    offsets = torch.arange(slices) - slices // 2  # (k,)
    if index is not None:
        chosen = img.index_select(axis, (index + offsets).clamp(0, n - 1).to(img.device))  # (C, ..., k, ...)
        stacked = chosen.movedim(axis, 1)  # (C, k, *S without axis)
    else:
        neighbours = (torch.arange(n)[None] + offsets[:, None]).clamp(0, n - 1).to(img.device)  # (k, n)
        stacked = torch.stack([img.index_select(axis, row) for row in neighbours], dim=1)  # (C, k, *S)
    out = stacked.reshape(img.shape[0] * slices, *stacked.shape[2:])
    if isinstance(img, MetaTensor):
        out = MetaTensor(out.as_tensor() if isinstance(out, MetaTensor) else out, meta=dict(img.meta))
        if index is not None:
            out.meta["slice_index"] = index
    return out
