"""Intensity harmonisation across scanners: Nyúl–Udupa piecewise-linear histogram standardisation (Nyúl, Udupa and
Zhang, IEEE TMI 2000) and white-matter-peak normalisation (``WhiteMatterPeakScaled``).

Percentile scaling (``ScalePercentiled``) only matches two points of each image's histogram, so the same tissue still
lands at different values on different scanners and pipelines. Histogram standardisation matches many: the
foreground's percentiles at ``PERCENTILES`` (1, 10, 20, ..., 90, 99) of every image are mapped, piece by piece and
linearly, onto one set of *standard landmarks* per contrast, learned on the training subjects (the mean of their
landmarks after scaling each image's 1st..99th percentiles to ``b_min``..``b_max``). The map is monotone, so it is
inverted exactly (``inverse``: an output on the standard scale goes back to the input's intensities).

The landmarks are saved with the bundle (``models/landmarks.json``: ``{"percentiles": [...], "contrasts": {"t1":
[...], ...}}``); inference reads them from there, so a released bundle standardises as its training did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, MapTransform

from .files import write_text_atomic
from .transforms import _source

PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)


def foreground_mask(image, background_tolerance: float = 1e-3) -> torch.Tensor:
    """The voxels above background: magnitude above ``background_tolerance`` times the largest (the zero background
    of a skull-stripped scan, and interpolation residue around it, left out; as ScalePercentiled)."""
    magnitude = torch.as_tensor(image).detach().abs()
    return magnitude > background_tolerance * float(magnitude.max()) if magnitude.numel() else magnitude.bool()


def foreground_values(image, background_tolerance: float = 1e-3) -> np.ndarray:
    """The foreground voxels (``foreground_mask``) as a flat float array."""
    values = torch.as_tensor(image).detach().float().cpu()
    return values[foreground_mask(values, background_tolerance)].numpy().ravel()


def image_landmarks(image, percentiles: Sequence[float] = PERCENTILES) -> np.ndarray:
    """The image's foreground intensities at ``percentiles``; a clear error for an image without foreground."""
    values = foreground_values(image)
    if values.size == 0:
        raise ValueError(f"'{_source(image)}': no foreground voxel to take histogram landmarks from.")
    marks = np.percentile(values, percentiles)
    if marks[-1] <= marks[0]:
        raise ValueError(f"'{_source(image)}': its {percentiles[0]}th and {percentiles[-1]}th percentiles are equal.")
    return marks


def fit_standard_landmarks(
    images: Iterable, percentiles: Sequence[float] = PERCENTILES, b_min: float = -1.0, b_max: float = 1.0
) -> list[float]:
    """The standard landmarks of one contrast: each image's landmarks scaled so that its first and last map to
    ``b_min`` and ``b_max``, averaged over the images (Nyúl's training step)."""
    scaled = []
    for image in images:
        marks = image_landmarks(image, percentiles)
        scaled.append((marks - marks[0]) / (marks[-1] - marks[0]) * (b_max - b_min) + b_min)
    if not scaled:
        raise ValueError("fit_standard_landmarks: no training image to learn the landmarks from.")
    return [float(v) for v in np.mean(scaled, axis=0)]


def _piecewise(values: torch.Tensor, source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """The piecewise-linear map through (source[i], target[i]), extended linearly beyond both ends."""
    x = values.double()
    src, dst = torch.as_tensor(source, dtype=torch.float64), torch.as_tensor(target, dtype=torch.float64)
    segment = torch.clamp(torch.searchsorted(src, x.reshape(-1).contiguous()).reshape(x.shape) - 1, 0, len(src) - 2)
    x0, x1, y0, y1 = src[segment], src[segment + 1], dst[segment], dst[segment + 1]
    return (y0 + (x - x0) * (y1 - y0) / (x1 - x0)).to(values.dtype)


class HistogramStandardised(MapTransform, InvertibleTransform):
    """Maps each image's foreground onto its contrast's standard landmarks (see the module docstring); background
    voxels become ``b_min``. ``contrasts`` names each key's contrast (``{"image": "t1", "label": "t2"}``) and
    ``landmarks`` holds ``{"percentiles": [...], "contrasts": {contrast: [...]}}`` or the path of such a JSON file.
    Values beyond the first and last landmarks follow the end segments and are clipped to ``clip`` when given."""

    def __init__(
        self,
        keys: KeysCollection,
        contrasts: Mapping[str, str],
        landmarks: Mapping | str | os.PathLike,
        b_min: float = -1.0,
        clip: Sequence[float] | None = (-1.0, 1.0),
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.landmarks = load_landmarks(landmarks) if isinstance(landmarks, (str, os.PathLike)) else dict(landmarks)
        self.contrasts, self.b_min, self.clip = dict(contrasts), b_min, clip
        missing = sorted({self.contrasts.get(k, k) for k in self.keys} - set(self.landmarks["contrasts"]))
        if missing and not allow_missing_keys:
            raise ValueError(
                f"no standard landmarks for {missing}: the landmarks hold {sorted(self.landmarks['contrasts'])}."
            )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        percentiles = self.landmarks["percentiles"]
        for key in self.key_iterator(d):
            img = d[key]
            own = image_landmarks(img, percentiles)
            standard = np.asarray(self.landmarks["contrasts"][self.contrasts.get(key, key)], dtype=float)
            out = _piecewise(img.float(), own, standard)
            if self.clip is not None:
                out = out.clamp(*self.clip)
            d[key] = torch.where(foreground_mask(img), out, torch.full_like(out, self.b_min))
            self.push_transform(d[key], extra_info={"own": own.tolist(), "standard": standard.tolist()})
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            info = self.pop_transform(d[key])["extra_info"]
            d[key] = _piecewise(d[key].float(), np.asarray(info["standard"]), np.asarray(info["own"]))
        return d


def load_landmarks(path: str | os.PathLike) -> dict:
    """The landmarks saved with a bundle; a clear error where a bundle trained with them has lost the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no histogram landmarks at '{path}': this setting (intensity_scaling 'nyul') needs the "
            f"landmarks learned in training, saved beside the weights (models/landmarks.json)."
        )
    content = json.loads(path.read_text(encoding="utf-8"))
    if set(content) != {"percentiles", "contrasts"}:
        raise ValueError(f"'{path}' is not a landmarks file (keys {sorted(content)}).")
    return content


def standard_landmarks(
    path: str | os.PathLike,
    items: Sequence[Mapping],
    contrasts: Mapping[str, str],
    percentiles: Sequence[float] = PERCENTILES,
) -> dict:
    """The landmarks at ``path`` if it exists (a resumed or finished training), else learned on ``items`` (datalist
    entries: ``{key: image file}``; ``contrasts`` maps each key to its contrast) and written there atomically."""
    path = Path(path)
    if path.is_file():
        return load_landmarks(path)
    from monai.transforms import LoadImage

    load = LoadImage(image_only=True)
    by_contrast: dict[str, list] = {}
    for key, contrast in contrasts.items():
        by_contrast.setdefault(contrast, []).extend(item[key] for item in items if key in item)
    content = {
        "percentiles": list(percentiles),
        "contrasts": {
            c: fit_standard_landmarks((load(f) for f in files), percentiles) for c, files in by_contrast.items()
        },
    }
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")
    return content


# where each contrast's white matter lands on the -1..1 scale: about where the 0.5th..99.5th percentile scaling puts it
# on the training subjects (the medians of the 21: white matter at 0.78 of a T1's 99.5th percentile, 0.31 of a
# T2's, 0.5 of a FLAIR's)
WHITE_MATTER_LEVELS = {"t1": 0.5, "t1c": 0.5, "t2": -0.4, "flair": 0.0}
T1_WEIGHTED = ("t1", "t1c")


def white_matter_peak(image, contrast: str, bins: int = 200, smoothing: float = 5.0, min_height: float = 0.5) -> float:
    """The intensity of the white-matter peak of the foreground histogram (0..99.5th percentile in ``bins`` bins,
    Gaussian-smoothed over ``smoothing`` bins): on a T1-weighted contrast the brightest peak at least ``min_height``
    of the highest (white matter is the brightest tissue there), on the others the highest peak (the mode)."""
    values = foreground_values(image)
    if values.size == 0:
        raise ValueError(f"'{_source(image)}': no foreground voxel to find the white-matter peak in.")
    top = float(np.percentile(values, 99.5))
    counts, edges = np.histogram(values[values <= top], bins=bins, range=(float(values.min()), top))
    radius = int(4 * smoothing)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / smoothing) ** 2)
    density = np.convolve(np.pad(counts.astype(float), radius, mode="edge"), kernel / kernel.sum(), mode="valid")
    inner = density[1:-1]
    peaks = np.flatnonzero((inner >= density[:-2]) & (inner > density[2:]) & (inner >= min_height * density.max())) + 1
    if peaks.size == 0:
        raise ValueError(f"'{_source(image)}': its histogram has no peak to take as white matter.")
    peak = peaks[-1] if contrast in T1_WEIGHTED else peaks[np.argmax(density[peaks])]
    return float((edges[peak] + edges[peak + 1]) / 2)


class WhiteMatterPeakScaled(MapTransform, InvertibleTransform):
    """Scales each image linearly so that 0 stays at ``b_min`` and its white-matter peak (``white_matter_peak``) lands
    on its contrast's level (``levels``, default ``WHITE_MATTER_LEVELS``), clipped to ``clip``; inverted exactly
    below the clip. One tissue, not two percentiles, sets the scale, so a bright tumour or fat tail does not."""

    def __init__(
        self,
        keys: KeysCollection,
        contrasts: Mapping[str, str],
        levels: Mapping[str, float] | None = None,
        b_min: float = -1.0,
        clip: Sequence[float] | None = (-1.0, 1.0),
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.contrasts, self.levels = dict(contrasts), dict(WHITE_MATTER_LEVELS if levels is None else levels)
        self.b_min, self.clip = b_min, clip
        missing = sorted({self.contrasts.get(k, k) for k in self.keys} - set(self.levels))
        if missing and not allow_missing_keys:
            raise ValueError(f"no white-matter level for {missing}: the levels cover {sorted(self.levels)}.")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            contrast = self.contrasts.get(key, key)
            peak = white_matter_peak(img, contrast)
            if peak <= 0:
                raise ValueError(
                    f"'{_source(img)}': its white-matter peak is at {peak:g}; expected a positive intensity."
                )
            slope = (self.levels[contrast] - self.b_min) / peak
            out = img.float() * slope + self.b_min
            if self.clip is not None:
                out = out.clamp(*self.clip)
            d[key] = out
            self.push_transform(d[key], extra_info={"slope": slope})
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            slope = self.pop_transform(d[key])["extra_info"]["slope"]
            d[key] = (d[key].float() - self.b_min) / slope
        return d


def intensity_scaling(
    kind: str,
    keys: KeysCollection,
    contrasts: Mapping[str, str],
    landmarks: Mapping | None = None,
    allow_missing_keys: bool = False,
) -> MapTransform:
    """The bundles' intensity scaling, by name: ``percentile`` (each image's 0.5th..99.5th percentiles onto -1..1,
    ``ScalePercentiled``), ``nyul`` (histogram standardisation onto the training subjects' landmarks) or ``wm_peak``
    (each image's white-matter peak onto its contrast's level, ``WhiteMatterPeakScaled``)."""
    from .transforms import ScalePercentiled

    if kind == "percentile":
        return ScalePercentiled(
            keys, lower=0.5, upper=99.5, b_min=-1.0, b_max=1.0, allow_missing_keys=allow_missing_keys
        )
    if kind == "nyul":
        if landmarks is None:
            raise ValueError("intensity_scaling 'nyul' needs the standard landmarks (models/landmarks.json).")
        return HistogramStandardised(keys, contrasts, landmarks, allow_missing_keys=allow_missing_keys)
    if kind == "wm_peak":
        return WhiteMatterPeakScaled(keys, contrasts, allow_missing_keys=allow_missing_keys)
    raise ValueError(f"intensity_scaling '{kind}': choose 'percentile', 'nyul' or 'wm_peak'.")
