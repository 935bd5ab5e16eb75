"""Datalists: JSON files of entries whose paths are relative to a dataset root, checked before training."""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def load_datalist(
    datalist_file: str | os.PathLike,
    section: str,
    keys: Mapping[str, str],
    base_dir: str | os.PathLike | None = None,
    optional_keys: Mapping[str, str | Sequence[str]] | None = None,
    skip_incomplete: bool = False,
) -> list[dict]:
    """Reads ``section`` of a datalist and renames each entry's contrasts to the keys a bundle uses.

    A datalist is ``{"training": [{"subject": "...", "t1": "rel/path.nii.gz", "t2": ...}, ...], "validation": ...}``
    (the sample-data tool writes these). ``keys`` maps a bundle's key to a datalist key, e.g. CycleGAN T1->T2
    uses ``{"A": "t1", "B": "t2"}``; ``optional_keys`` (e.g. ``{"mask": "mask"}``) are copied when present, a list of
    datalist keys taking the first one an entry has (``{"lesion": ["lesion", "seg"]}``: MS lesions or tumour labels).
    Relative paths are joined to ``base_dir`` (default: the datalist's folder). Every problem a user can
    make here -- missing file, empty section, unknown contrast -- raises an error naming the file and key.
    With ``skip_incomplete=True`` an entry that lacks one of the ``keys``' contrasts is left out with a warning
    (training on every subject that has the pair asked for, e.g. T1c where one subject has none); it is an error
    only when no entry is left.

    Returns: ``[{"A": "/abs/t1.nii.gz", "B": "/abs/t2.nii.gz", "subject": "..."}, ...]``, with the entry's
    ``METADATA_KEYS`` (``pipeline``) where it has them.
    """
    datalist_file = Path(datalist_file)
    if not datalist_file.is_file():
        raise FileNotFoundError(
            f"datalist '{datalist_file}' does not exist (run `python -m tools.sample_data` or pass --datalist)."
        )
    try:
        content = json.loads(datalist_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"datalist '{datalist_file}' is not valid JSON: {e}") from e
    entries = content.get(section) if isinstance(content, dict) else None
    if not entries:
        found = sorted(k for k, v in content.items() if isinstance(v, list) and v) if isinstance(content, dict) else []
        raise ValueError(
            f"datalist '{datalist_file}' has no entries in section '{section}' (non-empty sections: {found})."
        )
    base = Path(base_dir) if base_dir is not None else datalist_file.parent
    chosen = list(enumerate(entries))
    if skip_incomplete:
        has_all = [all(src in entry for src in keys.values()) for entry in entries]
        skipped = [entry.get("subject", f"entry {i}") for (i, entry), ok in zip(chosen, has_all) if not ok]
        chosen = [item for item, ok in zip(chosen, has_all) if ok]
        if not chosen:
            found = sorted({k for entry in entries for k in entry if k not in ("subject", *METADATA_KEYS)})
            raise ValueError(
                f"datalist '{datalist_file}': no entry of section '{section}' has all of "
                f"{sorted(keys.values())}; its entries have {found}."
            )
        if skipped:
            logger.warning(
                f"datalist '{datalist_file}', section '{section}': skipping {skipped}, which lack one of "
                f"{sorted(keys.values())}."
            )
    return [_resolve(entry, i, keys, optional_keys or {}, base, datalist_file, section) for i, entry in chosen]


# entry keys that describe the subject rather than name a file; copied as they are (``balance_by`` reads them)
METADATA_KEYS = ("pipeline",)


def _resolve(
    entry: dict,
    index: int,
    keys: Mapping[str, str],
    optional: Mapping[str, str],
    base: Path,
    source: Path,
    section: str,
) -> dict:
    where = f"entry {index}{' (' + entry['subject'] + ')' if 'subject' in entry else ''} of '{section}' in datalist '{source}'"
    missing = [src for src in keys.values() if src not in entry]
    if missing:
        available = sorted(k for k in entry if k not in ("subject", *METADATA_KEYS))
        raise KeyError(f"{where} has no contrast {missing}; it has {available}.")
    out = {"subject": entry.get("subject", f"{section}_{index}")}
    out.update({k: str(entry[k]) for k in METADATA_KEYS if k in entry})
    present = [
        (d, next((a for a in ([s] if isinstance(s, str) else s) if a in entry), None)) for d, s in optional.items()
    ]
    for dst, src in list(keys.items()) + [(d, s) for d, s in present if s is not None]:
        path = Path(entry[src])
        path = path if path.is_absolute() else base / path
        if not path.exists():
            raise FileNotFoundError(f"{where}: file for '{src}' not found: '{path}'.")
        out[dst] = str(path)
    return out


NIFTI_SUFFIXES = (".nii", ".nii.gz")
# every single-file format the bundles read: NIfTI through nibabel, the others through MONAI's ITK reader (which
# LoadImage picks by suffix: the configs name no reader, so one choice is shared by all of them)
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a DICOM Part 10 file: 128 bytes of preamble, then ``DICM``."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_dicom_series(path: str | os.PathLike) -> bool:
    """True for a folder holding DICOM files directly: MONAI's ITK reader loads such a folder as one volume."""
    path = Path(path)
    return path.is_dir() and any(p.is_file() and is_dicom_file(p) for p in path.iterdir())


def input_files(spec: str | os.PathLike | Sequence[str]) -> list[str]:
    """Images to run inference on: an image file (NIfTI, MetaImage, NRRD), a DICOM series folder, a folder of
    either (its image files and DICOM series sub-folders), a glob pattern, or a list of these."""
    if isinstance(spec, (list, tuple)):
        return [f for s in spec for f in input_files(s)]
    path = Path(spec)
    if path.is_file() or is_dicom_series(path):
        return [str(path)]
    if path.is_dir():
        found = sorted(
            str(p)
            for p in path.iterdir()
            if (p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)) or is_dicom_series(p)
        )
    else:
        found = sorted(glob.glob(str(spec)))
    if not found:
        raise FileNotFoundError(
            f"no input image found at '{spec}' (give a NIfTI file, a DICOM series folder, a folder of them, or a glob)."
        )
    return found
