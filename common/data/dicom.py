"""A DICOM series folder checked before it is read as one volume.

MONAI's ITK reader stacks whatever slices a folder holds: with one slice missing, or slices of another pixel spacing
or thickness among them, it returns a volume with a wrong geometry and no error. ``check_dicom_series`` reads each
file's header (position, orientation, pixel spacing) and refuses such a folder, naming it and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from .datalist import is_dicom_series


def slice_headers(folder: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The files of the folder's one DICOM series in slice order, each slice's position along the slice normal (mm)
    and its in-plane pixel spacing (n, 2); a clear error for a folder of several series."""
    import itk

    names = itk.GDCMSeriesFileNames.New()
    names.SetUseSeriesDetails(True)
    names.SetDirectory(str(folder))
    uids = list(names.GetSeriesUIDs())
    if len(uids) != 1:
        raise ValueError(
            f"DICOM series '{folder}': holds {len(uids)} series ({', '.join(uids) or 'none'}); put each "
            f"series in a folder of its own."
        )
    files = [str(f) for f in names.GetFileNames(uids[0])]
    positions, spacings = [], []
    for f in files:
        io = itk.GDCMImageIO.New()
        io.SetFileName(f)
        io.ReadImageInformation()
        origin = np.array([io.GetOrigin(i) for i in range(3)])
        normal = np.cross(np.array(io.GetDirection(0)), np.array(io.GetDirection(1)))
        positions.append(float(origin @ normal))
        spacings.append((io.GetSpacing(0), io.GetSpacing(1)))
    order = np.argsort(positions)
    return [files[i] for i in order], np.asarray(positions)[order], np.asarray(spacings)[order]


def check_dicom_series(folder: str | os.PathLike, rtol: float = 0.01) -> None:
    """Refuses a series whose slices are not evenly spaced (a missing or repeated slice) or do not share one pixel
    spacing, naming the folder and the files where it breaks."""
    files, positions, spacings = slice_headers(folder)
    if len(files) < 2:
        return
    name = lambda i: Path(files[i]).name  # noqa: E731
    odd = np.flatnonzero(~np.isclose(spacings, spacings[0], rtol=rtol).all(axis=1))
    if odd.size:
        i = int(odd[0])
        raise ValueError(
            f"DICOM series '{folder}': mixed pixel spacing: {name(i)} has {spacings[i].tolist()} mm where "
            f"{name(0)} has {spacings[0].tolist()} mm ({odd.size} of {len(files)} slices differ)."
        )
    gaps = np.diff(positions)
    step = float(np.median(gaps))
    if step <= 0:
        raise ValueError(f"DICOM series '{folder}': its slices share one position; is a slice repeated?")
    bad = np.flatnonzero(~np.isclose(gaps, step, rtol=rtol))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"DICOM series '{folder}': slices {name(i)} and {name(i + 1)} are {gaps[i]:.3g} mm apart where "
            f"the others are {step:.3g} mm: a missing slice, or slices of another series or thickness "
            f"({bad.size} uneven gaps in {len(files)} slices)."
        )


class CheckDicomSeriesd(MapTransform):
    """``check_dicom_series`` on each key whose value is a DICOM series folder (other paths pass untouched); runs
    before ``LoadImaged``, on the datalist's paths."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if isinstance(d[key], (str, os.PathLike)) and is_dicom_series(d[key]):
                check_dicom_series(d[key])
        return d
