"""Which bundles the MONAI Label app serves, where they live, and whether they can serve (pure Python, no torch).

A bundle is a folder ``<dir>/<name>/`` with ``configs/inference.json`` and ``configs/metadata.json``; its name is
the folder's name. Folders are searched in order (a user's folder of downloaded bundles first, then the
repository's ``bundles/``), and the first folder holding a name wins. A bundle can serve when it has weights
(``models/model.pt``, a ``state_dict``, or ``models/model.ts``) and its metadata names its image inputs.

Inputs: the first entry of the metadata's ``network_data_format.inputs`` must be ``image`` (MONAI Label passes the
request's image under that key); every further entry (the moving image of a registration bundle, more contrasts)
is a request parameter of that name holding an image id of the studies folder; an input marked ``"optional": true``
(the further contrasts of a multi-contrast bundle) may be left out of a request.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
WEIGHTS = ("model.pt", "model.ts")


@dataclass
class BundleEntry:
    """A bundle found on disk; ``problem`` says why it cannot serve (``None`` when it can)."""

    name: str
    path: Path
    extra_inputs: list[str] = field(default_factory=list)
    optional_inputs: list[str] = field(default_factory=list)
    problem: str | None = None


def bundle_dirs(conf_value: str | None) -> list[Path]:
    """The folders to search: ``conf_value`` (comma- or os.pathsep-separated) first, then the repo's bundles/."""
    dirs = [Path(p).expanduser().resolve() for p in (conf_value or "").replace(os.pathsep, ",").split(",") if p.strip()]
    for d in dirs:
        if not d.is_dir():
            raise ValueError(f"bundle folder '{d}' (--conf bundle_dirs) does not exist or is not a folder.")
    return dirs + ([REPO_BUNDLES] if REPO_BUNDLES.is_dir() and REPO_BUNDLES not in dirs else [])


def find_bundles(dirs: list[Path]) -> dict[str, Path]:
    """name -> bundle folder, the first of ``dirs`` that holds the name winning."""
    found: dict[str, Path] = {}
    for d in dirs:
        for cfg in sorted(d.glob("*/configs/inference.json")):
            found.setdefault(cfg.parents[1].name, cfg.parents[1])
    return found


def inspect_bundle(name: str, path: Path) -> BundleEntry:
    """The bundle's extra image inputs, and the reason it cannot serve, if any (missing weights, bad metadata)."""
    entry = BundleEntry(name, path)
    meta_file = path / "configs" / "metadata.json"
    try:
        formats = dict(json.loads(meta_file.read_text(encoding="utf-8"))["network_data_format"]["inputs"])
        inputs = list(formats)
    except (OSError, ValueError, KeyError, TypeError) as e:
        entry.problem = f"{meta_file}: no readable network_data_format.inputs ({type(e).__name__}: {e})."
        return entry
    if not inputs or inputs[0] != "image":
        entry.problem = f"{meta_file}: the first network_data_format input must be 'image', got {inputs}."
        return entry
    entry.extra_inputs = inputs[1:]
    entry.optional_inputs = [k for k in inputs[1:] if isinstance(formats[k], dict) and formats[k].get("optional") is True]
    if not any((path / "models" / w).is_file() for w in WEIGHTS):
        entry.problem = (
            f"no weights: neither {path / 'models' / WEIGHTS[0]} nor {WEIGHTS[1]} exists. Train the bundle "
            f"(python -m monai.bundle run --config_file {path / 'configs' / 'train.json'}) or download a release "
            "(README, 'Releases') into a folder given as --conf bundle_dirs."
        )
    return entry


def select_bundles(models: str | None, dirs: list[Path]) -> list[BundleEntry]:
    """The bundles named by ``--conf models`` (comma-separated; ``all`` or unset: every bundle found)."""
    found = find_bundles(dirs)
    names = sorted(found) if not models or models.strip() == "all" else [m.strip() for m in models.split(",") if m.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(
            f"no bundle named {unknown} (--conf models) in {[str(d) for d in dirs]}; bundles found: {sorted(found)}."
        )
    return [inspect_bundle(n, found[n]) for n in names]
