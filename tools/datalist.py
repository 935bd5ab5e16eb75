"""Build the datalist the bundles read from a folder of scans.

    python -m tools.datalist DIR --layout {brats,ixi,subject-folders,flat} [--contrasts t1,t2,...]
        [--pattern '{subject}_{contrast}.nii.gz'] [--split 0.8] [--seed 0] [--allow-missing] [--resample-to CONTRAST] -o datalist.json

An image is a NIfTI file (``.nii``, ``.nii.gz``), a MetaImage or NRRD file (``.mha``, ``.mhd``, ``.nrrd``, read by MONAI's
ITK reader) or a folder of DICOM files (one series, read by MONAI's ITK reader).
Layouts:

- ``brats``: BraTS 2018-2021 names (``Brats18_2013_3_1_t1.nii.gz``, ``_t1ce``, ``_t2``, ``_flair``, ``_seg``), 2023-2024
  names (``BraTS-GLI-00001-000-t1n.nii.gz``, ``-t1c``, ``-t2w``, ``-t2f``, ``-seg``) and BRATS 2012-2013 MetaImage
  names (``BRATS_HG0015_T1C.mha``, ``_truth`` = ``seg``), in one folder per subject or all in one folder; the subject is
  the file name without its contrast suffix.
- ``ixi``: ``IXI002-Guys-0828-T1.nii.gz``, ``-T2``, ``-PD``, ``-MRA`` (``-DTI-nn`` is never a contrast), anywhere
  under DIR; the subject is ``IXI002-Guys-0828``. Default contrasts: t1, t2, pd.
- ``subject-folders``: ``DIR/<subject>/<contrast>.nii.gz`` (``T2.nii.gz``, ``flair.nii``, ``sub01_t1c.nii.gz``, OpenMS's
  ``T1POST_N4_noneck_..._regtoMNI.nii.gz``: a name that is no contrast is read by its first or last word), or a DICOM
  series folder ``DIR/<subject>/<contrast>/``.
- ``flat``: files in DIR named by ``--pattern`` with ``{subject}`` and ``{contrast}`` placeholders; the contrast part
  is letters and digits (``case_01_T1.nii.gz`` is subject ``case_01``, contrast ``T1``).

Contrast names become the canonical ones the bundles use (``t1n``/``T1w`` -> ``t1``, ``t1ce``/``T1C``/``T1POST``/``t1gd``
-> ``t1c``, ``t2w`` -> ``t2``, ``t2f``/``fla`` -> ``flair``, ``PD`` -> ``pd``); an image whose name holds ``mask`` is the
entry's ``mask``, a tumour segmentation (``seg``, ``truth``) its ``seg`` and a lesion mask (``lesion``,
``GOLD_STANDARD``) its ``lesion``, all kept where found. Without ``--contrasts`` every known contrast
found is used (ixi: t1, t2, pd). The datalist is ``{"training": [{"subject": ..., "t1": "rel/path", ...}],
"validation": [...]}`` with paths relative to DIR, split by subject (seeded; at least one subject on each side). Train
on it with ``--dataset_dir DIR --datalist datalist.json``.

It refuses, naming the files: two images for one subject and contrast, a contrast missing from some subjects (unless
``--allow-missing``: they are kept with what they have, and a subject with none of the contrasts is skipped), files
that are not images or are 2D (read from the header), a folder where no subject is found, and a subject whose
contrasts lie on different voxel grids (shape, spacing, orientation or position differ: they are not co-registered, and
the paired bundles compare voxels). ``--resample-to <contrast>`` instead resamples each such subject's other images
onto that contrast's grid through their affines (``<output folder>/resampled/<subject>/``, the datalist pointing there)
with a warning: resampling puts the images on one grid, it does not register them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Optional

from common.data.datalist import IMAGE_SUFFIXES, NIFTI_SUFFIXES, is_dicom_file, is_dicom_series
from common.data.grids import describe_grid, same_grid
from common.data.files import atomic_path, write_text_atomic

OPTIONAL = ("mask", "seg", "lesion")  # kept where found, never required unless asked for
CANONICAL = ("t1", "t1c", "t2", "flair", "pd", "mra", "ct")  # order of the default contrasts
ALIASES = {
    **dict.fromkeys(("t1", "t1n", "t1w", "t1native", "t1pre", "mprage"), "t1"),
    **dict.fromkeys(("t1c", "t1ce", "t1gd", "t1post", "t1wce", "t1contrast", "t1wpost"), "t1c"),
    **dict.fromkeys(("t2", "t2w"), "t2"),
    **dict.fromkeys(("flair", "t2f", "fla", "t2flair", "t2wflair"), "flair"),
    **dict.fromkeys(("pd", "pdw"), "pd"),
    **dict.fromkeys(("mra", "tof"), "mra"),
    "ct": "ct",
    **dict.fromkeys(("seg", "segmentation", "label", "labels", "truth", "tumor", "tumour"), "seg"),
    **dict.fromkeys(("lesion", "lesions", "lesionmask", "goldstandard"), "lesion"),
}
DEFAULT_CONTRASTS = {"ixi": ("t1", "t2", "pd")}
BRATS_NAME = re.compile(r"(?P<subject>.+)[_-](?P<contrast>t1|t1ce|t1c|t1n|t2|t2w|t2f|flair|seg|truth)"
                        r"(?:\.nii(?:\.gz)?|\.mha|\.mhd|\.nrrd)", re.I)
IXI_NAME = re.compile(r"(?P<subject>IXI\d+-[^-]+-\d+)-(?P<contrast>[A-Za-z][A-Za-z0-9]*)(?P<volume>-\d+)?\.nii(?:\.gz)?")

Found = tuple[Optional[str], Optional[str], Path]  # (subject, contrast as named, path); subject None: not layout-named


class DatalistError(ValueError):
    """The folder cannot give a datalist; the message names the files."""


def canonical(name: str) -> str:
    """The canonical contrast of a name (``T1w`` -> ``t1``, ``brain_mask`` -> ``mask``, ``T1POST_N4_..._regtoMNI``
    -> ``t1c``, ``study2_T2W`` -> ``t2``, ``GOLD_STANDARD_...`` -> ``lesion``); other names lowercased."""
    key = re.sub(r"[\s._-]", "", name.lower())
    if key in ALIASES:
        return ALIASES[key]
    if "mask" in key:
        return "mask"
    words = [w for w in re.split(r"[\s._-]+", name.lower()) if w]
    # a pipeline's suffixes after the contrast (OpenMS), or a study's prefix before it; two words: GOLD_STANDARD
    for candidate in ("".join(words[:2]), words[0] if words else "", words[-1] if words else ""):
        if candidate in ALIASES:
            return ALIASES[candidate]
    return key


def image_paths(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """NIfTI files and DICOM series folders in ``folder`` (and below it when ``recursive``), sorted, hidden ones left out."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES):
            yield path
        elif path.is_dir():
            if is_dicom_series(path):
                yield path
            elif recursive:
                yield from image_paths(path, recursive)


def _stem(path: Path) -> str:
    """The name without its image suffix (``.nii``, ``.nii.gz``, ``.mha``, ...)."""
    return re.sub(r"(\.nii(\.gz)?|\.mha|\.mhd|\.nrrd|\.nhdr)$", "", path.name, flags=re.I)


def brats_files(root: Path) -> Iterator[Found]:
    """BraTS 2021 (``<id>_t1ce.nii.gz``) and 2023-2024 (``<id>-t1c.nii.gz``) names anywhere under ``root``."""
    for path in image_paths(root, recursive=True):
        m = BRATS_NAME.fullmatch(path.name)
        yield (m["subject"], m["contrast"], path) if m else (None, None, path)


def ixi_files(root: Path) -> Iterator[Found]:
    """IXI names (``IXI002-Guys-0828-T1.nii.gz``) anywhere under ``root``; a DTI volume (``-DTI-05``) is ``DTI-05``."""
    for path in image_paths(root, recursive=True):
        m = IXI_NAME.fullmatch(path.name)
        yield (m["subject"], m["contrast"] + (m["volume"] or ""), path) if m else (None, None, path)


def subject_folder_files(root: Path) -> Iterator[Found]:
    """``root/<subject>/<contrast>.nii.gz`` or ``root/<subject>/<contrast>/`` (DICOM); a name may repeat the subject."""
    loose = list(image_paths(root))  # images (DICOM series folders too) directly in root belong to no subject
    yield from ((None, None, path) for path in loose)
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p not in loose):
        for path in image_paths(folder):
            name = _stem(path)
            prefixed = re.fullmatch(re.escape(folder.name) + r"[\s._-]+(.+)", name, re.I)
            yield folder.name, prefixed[1] if prefixed else name, path


def flat_files(root: Path, pattern: str) -> Iterator[Found]:
    """Images in ``root`` whose names match ``pattern`` (``{subject}`` and ``{contrast}`` placeholders)."""
    if pattern.count("{subject}") != 1 or pattern.count("{contrast}") != 1 or "/" in pattern:
        raise DatalistError(f"--pattern '{pattern}' needs one {{subject}} and one {{contrast}} and no '/' "
                            f"(e.g. '{{subject}}_{{contrast}}.nii.gz').")
    regex = re.compile("".join("(?P<subject>.+)" if part == "{subject}" else "(?P<contrast>[A-Za-z0-9]+)"
                               if part == "{contrast}" else re.escape(part)
                               for part in re.split(r"(\{subject\}|\{contrast\})", pattern)), re.I)
    for path in image_paths(root):
        m = regex.fullmatch(path.name)
        yield (m["subject"], m["contrast"], path) if m else (None, None, path)


LAYOUTS: dict[str, Callable[..., Iterator[Found]]] = {
    "brats": brats_files, "ixi": ixi_files, "subject-folders": subject_folder_files, "flat": flat_files}


def _itk_header(path: Path):
    """ITK's image IO for a file (MetaImage, NRRD) or one DICOM file, with its header read; RuntimeError if unreadable."""
    import itk

    io = itk.GDCMImageIO.New() if is_dicom_file(path) else itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
    if io is None:
        raise RuntimeError("no ITK reader for this file")
    io.SetFileName(str(path))
    io.ReadImageInformation()
    return io


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable 3D image, from its header only (or its DICOM file count); None if it is."""
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and is_dicom_file(p)]
        if len(files) > 1:
            return None
        path = files[0]  # one DICOM file: 3D only if it is multi-frame
    if path.is_dir() or not path.name.lower().endswith(NIFTI_SUFFIXES):
        try:
            io = _itk_header(path)
        except RuntimeError as e:
            kind = "DICOM" if is_dicom_file(path) else "ITK-readable"
            return f"not a readable {kind} image ({str(e).strip().splitlines()[-1]})"
        shape = tuple(io.GetDimensions(i) for i in range(io.GetNumberOfDimensions()))
    else:
        import nibabel as nib

        try:
            shape = tuple(nib.load(path).header.get_data_shape())
        except Exception as e:  # nibabel raises several types (ImageFileError, gzip's OSError, EOFError, ...)
            return f"not a NIfTI image ({type(e).__name__}: {e})"
    if len(shape) < 3 or 1 in shape[:3]:
        return f"2D image of shape {shape}: the bundles need 3D volumes"
    return None


def image_grid(path: Path):
    """(shape, 4x4 RAS voxel-to-world affine) of a 3D image file from its header; None for a DICOM series folder
    (its geometry is only known once all its files are read)."""
    import numpy as np

    if path.is_dir():
        return None
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        import nibabel as nib

        img = nib.load(path)
        return tuple(img.shape[:3]), np.asarray(img.affine, dtype=float)
    io = _itk_header(path)
    direction = np.array([[io.GetDirection(j)[i] for j in range(3)] for i in range(3)], dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array([io.GetSpacing(i) for i in range(3)])
    affine[:3, 3] = [io.GetOrigin(i) for i in range(3)]
    return tuple(io.GetDimensions(i) for i in range(3)), np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # ITK is LPS


def resample_onto(path: Path, reference: Path, out: Path, nearest: bool) -> None:
    """Writes ``path`` resampled onto ``reference``'s grid through both affines (world coordinates) as NIfTI ``out``:
    trilinear for images, nearest neighbour for masks and labels. Written beside ``out`` and renamed into place."""
    import nibabel as nib
    import numpy as np
    from monai.transforms import LoadImage, ResampleToMatch

    load = LoadImage(image_only=True, ensure_channel_first=True)
    ref, img = load(str(reference)), load(str(path))
    resampled = ResampleToMatch(mode="nearest" if nearest else "bilinear", padding_mode="zeros")(img, img_dst=ref)
    data = np.asarray(resampled[0].detach().cpu().numpy(), dtype=np.float32)
    with atomic_path(out, ".nii.gz") as tmp:
        nib.save(nib.Nifti1Image(data, np.asarray(ref.affine, dtype=float)), tmp)


def _check_grids(kept: dict[str, dict[str, Path]], rel: Callable[[Path], str], resample_to: str | None,
                 resample_dir: str | os.PathLike | None) -> list[str]:
    """Refuses subjects whose images lie on different grids, naming the files and grids; with ``resample_to``,
    resamples them onto that contrast's grid instead (``kept`` then points at the copies) and returns what it did."""
    reference = canonical(resample_to) if resample_to else None
    off_grid, done = [], []
    for subject, images in kept.items():
        grids = {c: g for c, p in images.items() if (g := image_grid(p)) is not None}
        if not grids:
            continue
        ref = reference if reference in grids else next(iter(grids))
        differ = [c for c, g in grids.items() if not same_grid(g, grids[ref])]
        if not differ:
            continue
        if reference is None:
            off_grid.append(f"{subject}: " + "; ".join(f"{rel(images[c])} ({describe_grid(grids[c])})" for c in grids))
            continue
        if reference not in grids:
            raise DatalistError(f"--resample-to {resample_to}: subject '{subject}' has no {reference} image to resample "
                                f"onto (it has {', '.join(images)}).")
        if resample_dir is None:
            raise DatalistError("--resample-to needs a folder for the resampled copies.")
        for c in differ:
            out = Path(resample_dir) / subject / f"{c}.nii.gz"
            resample_onto(images[c], images[ref], out, nearest=c in OPTIONAL)
            done.append(f"{rel(images[c])} ({describe_grid(grids[c])}) -> {out}")
            images[c] = out
    if off_grid:
        raise DatalistError(f"{len(off_grid)} subject(s) have images on different voxel grids (not co-registered; the "
                            f"paired bundles compare voxels): {_listing(off_grid, 10, ' | ')}. Register them first, or "
                            f"pass --resample-to <contrast> to resample onto that contrast's grid through the affines "
                            f"(not a registration).")
    return done


def split_subjects(subjects: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Training and validation subjects: a seeded shuffle of the sorted subjects, ``fraction`` (rounded) for training,
    at least one on each side when there are two or more."""
    order = sorted(subjects)
    random.Random(seed).shuffle(order)
    n_train = min(max(round(fraction * len(order)), 1), len(order) - 1) if len(order) > 1 else len(order)
    return sorted(order[:n_train]), sorted(order[n_train:])


def _listing(items: Sequence[str], limit: int = 10, sep: str = ", ") -> str:
    """The first ``limit`` items, joined, and how many more there are."""
    items = list(items)
    return sep.join(items[:limit]) + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def build_datalist(root: str | os.PathLike, layout: str, contrasts: Sequence[str] | None = None,
                   pattern: str | None = None, split: float = 0.8, seed: int = 0,
                   allow_missing: bool = False, resample_to: str | None = None,
                   resample_dir: str | os.PathLike | None = None) -> tuple[dict, list[str]]:
    """The datalist of the images under ``root`` in ``layout``, and the summary lines to print.

    Raises ``DatalistError`` naming the files for: unknown layout, no subject, duplicates, non-images, 2D images,
    subjects missing one of ``contrasts`` (unless ``allow_missing``) and subjects whose images lie on different grids
    (unless ``resample_to`` names the contrast whose grid the others are resampled onto, written to ``resample_dir``).
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatalistError(f"unknown layout '{layout}': choose one of {', '.join(LAYOUTS)}.")
    if not root.is_dir():
        raise DatalistError(f"'{root}' is not a folder.")
    if (pattern is not None) != (layout == "flat"):
        raise DatalistError("--layout flat needs --pattern (e.g. '{subject}_{contrast}.nii.gz'), and only it takes one.")
    if not 0 < split < 1:
        raise DatalistError(f"--split {split}: the fraction of subjects for training must lie between 0 and 1.")

    def rel(path: Path) -> str:  # relative to the root; a resampled copy outside it keeps its absolute path
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path.resolve())

    files = flat_files(root, pattern) if layout == "flat" else LAYOUTS[layout](root)

    found: dict[str, dict[str, list[Path]]] = {}
    unnamed: list[str] = []
    for subject, name, path in files:
        if subject is None:
            unnamed.append(rel(path))
        else:
            found.setdefault(subject, {}).setdefault(canonical(name), []).append(path)
    if contrasts:
        wanted = list(dict.fromkeys(canonical(c) for c in contrasts))
    else:
        present = {c for images in found.values() for c in images}
        wanted = list(DEFAULT_CONTRASTS.get(layout, [c for c in CANONICAL if c in present]))
    if found and not wanted:
        names = sorted({c for images in found.values() for c in images})
        raise DatalistError(f"no image of a known contrast ({', '.join(CANONICAL)}) in '{root}'; its images are named "
                            f"{_listing(names)}: name the ones to use with --contrasts.")
    if not found:
        raise DatalistError(f"no subject found in '{root}' with --layout {layout}"
                            f"{' and --pattern ' + repr(pattern) if pattern else ''}"
                            " (no image named as it expects)"
                            f"{'; images found: ' + _listing(unnamed) if unnamed else ''}.")

    keys = list(dict.fromkeys([*wanted, *OPTIONAL]))  # an entry's keys, in this order
    kept: dict[str, dict[str, Path]] = {}
    duplicates, missing, skipped, other = [], {}, [], {}
    for subject in sorted(found):
        images = found[subject]
        for c, paths in images.items():
            if len(paths) > 1 and c in keys:
                duplicates.append(f"subject '{subject}' {c}: {', '.join(rel(p) for p in paths)}")
            elif c not in keys:
                other[c] = other.get(c, 0) + len(paths)
        lacking = [c for c in wanted if c not in images]
        if lacking:
            has = [c for c in keys if c in images]
            missing[subject] = f"{subject} (no {', '.join(lacking)}; has {', '.join(has) or 'none of them'})"
        if len(lacking) == len(wanted):
            skipped.append(subject)
        else:
            kept[subject] = {c: images[c][0] for c in keys if c in images}
    if duplicates:
        raise DatalistError(f"two images for one subject and contrast: {_listing(duplicates, 20, '; ')}.")
    if missing and not allow_missing:
        raise DatalistError(f"{len(missing)} of {len(found)} subjects lack a contrast of {', '.join(wanted)}: "
                            f"{_listing(list(missing.values()), 20)}. Pass --allow-missing to keep them with what they "
                            f"have, or --contrasts to ask for fewer.")
    if not kept:
        raise DatalistError(f"no subject in '{root}' has any of {', '.join(wanted)}.")
    problems = [f"{rel(p)} ({why})" for images in kept.values() for p in images.values() if (why := image_problem(p))]
    if problems:
        raise DatalistError(f"{len(problems)} file(s) are not usable 3D images: {_listing(problems, 20, '; ')}.")
    resampled = _check_grids(kept, rel, resample_to, resample_dir)

    training, validation = split_subjects(list(kept), split, seed)

    def entry(subject: str) -> dict[str, str]:
        return {"subject": subject, **{c: rel(p) for c, p in kept[subject].items()}}

    datalist = {
        "description": f"Built by `python -m tools.datalist` from '{root}' (layout {layout}, split {split}, seed "
                       f"{seed}); paths are relative to that folder (the bundles' --dataset_dir).",
        "contrasts": wanted,
        "training": [entry(s) for s in training],
        "validation": [entry(s) for s in validation],
    }

    groups: dict[str, list[str]] = {}
    for subject, images in kept.items():
        groups.setdefault("+".join(images), []).append(subject)
    lines = [f"{len(kept)} subject(s) in '{root}' (layout {layout}), contrasts {', '.join(wanted)}"
             f" (+ {', '.join(OPTIONAL)} where found):"]
    lines += [f"  {names}: {len(subjects)} subject(s) ({_listing(subjects, 5)})" for names, subjects in groups.items()]
    kept_missing = [text for s, text in missing.items() if s in kept]
    if kept_missing:
        lines.append(f"kept with missing contrasts (--allow-missing): {_listing(kept_missing)}")
    if skipped:
        lines.append(f"skipped {len(skipped)} subject(s) with none of {', '.join(wanted)}: {_listing(skipped)}")
    if other:
        counts = ", ".join(f"{c} ({n})" for c, n in sorted(other.items()))
        lines.append(f"skipped images of contrasts not asked for: {counts}")
    if unnamed:
        lines.append(f"ignored {len(unnamed)} image(s) not named as --layout {layout} expects: {_listing(unnamed)}")
    if resampled:
        lines.append(f"WARNING: resampled onto each subject's {canonical(resample_to)} grid through the affines (NOT "
                     f"registered: images that were not co-registered are still not): {_listing(resampled, 20, '; ')}")
    lines.append(f"split by subject (fraction {split}, seed {seed}): training {len(training)}, validation "
                 f"{len(validation)} ({_listing(validation)})")
    if not validation:
        lines.append("validation is empty: one subject only, and the bundles validate on at least one.")
    return datalist, lines


def write_json(path: str | os.PathLike, content: dict) -> None:
    """Writes ``content`` to ``path`` atomically: a temp file beside it, then ``os.replace``."""
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a folder that cannot give a datalist exits non-zero with one message (SystemExit)."""
    ap = argparse.ArgumentParser(prog="python -m tools.datalist", description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="the dataset root: the datalist's paths are relative to it")
    ap.add_argument("--layout", required=True, help=f"one of {', '.join(LAYOUTS)}")
    ap.add_argument("--contrasts", default=None, help="comma-separated, e.g. t1,t2 (default: every contrast found)")
    ap.add_argument("--pattern", default=None, help="for --layout flat: e.g. '{subject}_{contrast}.nii.gz'")
    ap.add_argument("--split", type=float, default=0.8, help="fraction of subjects for training (default 0.8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    ap.add_argument("--allow-missing", action="store_true",
                    help="keep subjects that lack a contrast, with what they have")
    ap.add_argument("--resample-to", default=None, metavar="CONTRAST",
                    help="resample a subject's images that lie on other grids onto this contrast's grid, through the "
                         "affines (written beside the datalist, in resampled/); not a registration")
    ap.add_argument("-o", "--output", required=True, help="the datalist JSON to write")
    args = ap.parse_args(argv)
    contrasts = [c.strip() for c in args.contrasts.split(",") if c.strip()] if args.contrasts else None
    try:
        datalist, lines = build_datalist(args.dir, args.layout, contrasts, args.pattern, args.split, args.seed,
                                         args.allow_missing, args.resample_to,
                                         Path(args.output).resolve().parent / "resampled")
    except DatalistError as e:
        raise SystemExit(f"error: {e}") from None
    write_json(args.output, datalist)
    print("\n".join(lines + [f"wrote {args.output}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
