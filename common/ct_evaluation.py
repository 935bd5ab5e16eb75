"""Scoring non-contrast -> contrast-enhanced CT translation where no contrast scan of the same patient exists.

What a contrast agent does is known by tissue: blood vessels rise by one to several hundred HU (150-400 HU in the
arterial phase), the kidneys, liver and spleen enhance less, and bone, muscle and lung barely change. So a
translated scan is scored inside an organ segmentation of the input (TotalSegmentator's labels): the mean HU in the
vessels after translation and its gain over the input, the gain in the enhancing organs, the mean absolute change
where nothing should change, and the cycle reconstruction error (the translation mapped back to non-contrast).
``CTEnhancementComparison`` puts the same figures for the input itself and for a global HU-histogram mapping
(non-contrast -> contrast, fitted on the training scans) beside the model's, in ``comparison.{json,md}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine

from .baselines import HistogramMapping
from .data.ct import hu_to_window, window_to_hu
from .data.files import write_text_atomic
from .evaluation import EvaluationReport, FigureMean, decollated_items

# fat has no TotalSegmentator "total" label: the unlabelled voxels whose input is in FAT_HU get FAT_LABEL (with_fat)
FAT_LABEL = 1000
FAT_HU = (-190.0, -30.0)
# anatomical regions as TotalSegmentator v2 ("total" task) label ids, the labels of the sample data's example_seg
TOTALSEGMENTATOR_REGIONS: dict[str, list[int]] = {
    "aorta": [52],
    "portal vein": [64],  # portal and splenic vein
    "other vessels": [53, 54, 55, 56, 57, 58, 59, 60, 62, 63, 65, 66, 67, 68],  # veins, arteries, venae cavae
    "kidneys": [2, 3],
    "liver": [5],
    "spleen": [1],
    "bone": [25, *range(26, 51), *range(69, 79), 91, *range(92, 118)],  # sacrum, vertebrae, limbs, hips, skull, ribs
    "muscle": list(range(80, 90)),  # gluteal, autochthonous and iliopsoas muscles
    "lung": [10, 11, 12, 13, 14],
    "fat": [FAT_LABEL],
}
# which regions each figure pools
GROUPS = {
    "vessels": ("aorta", "portal vein", "other vessels"),
    "organs": ("kidneys", "liver", "spleen"),
    "stable": ("bone", "muscle", "lung"),
}
BODY_HU = -500.0  # above this the input is body, for the cycle error and the histogram mapping
FIGURES = ("vessel_hu", "vessel_gain_hu", "organ_gain_hu", "stable_change_hu", "cycle_mae_hu")


def with_fat(label: torch.Tensor, before: torch.Tensor, fat_hu: Sequence[float] = FAT_HU) -> torch.Tensor:
    """``label`` with ``FAT_LABEL`` where it is 0 (no organ) and the input ``before`` (HU) lies in ``fat_hu``."""
    fat = (label.round() == 0) & (before >= fat_hu[0]) & (before <= fat_hu[1])
    return torch.where(fat, torch.as_tensor(float(FAT_LABEL), dtype=label.dtype), label)


def _region(label: torch.Tensor, ids: Iterable[int]) -> torch.Tensor:
    return torch.isin(label.round().long(), torch.as_tensor(list(ids), dtype=torch.long))


def region_table(
    before: torch.Tensor,
    after: torch.Tensor,
    label: torch.Tensor,
    regions: Mapping[str, Sequence[int]] = TOTALSEGMENTATOR_REGIONS,
) -> dict[str, dict[str, float]]:
    """Per region present in ``label`` (fat: ``with_fat``): voxels, mean HU before and after, mean change and mean
    absolute change."""
    label = with_fat(label, before)
    table = {}
    for name, ids in regions.items():
        inside = _region(label, ids)
        if inside.any():
            b, a = before[inside].double(), after[inside].double()
            table[name] = {
                "voxels": int(inside.sum()),
                "before": float(b.mean()),
                "after": float(a.mean()),
                "gain": float((a - b).mean()),
                "abs_change": float((a - b).abs().mean()),
            }
    return table


def enhancement_figures(
    before: torch.Tensor,
    after: torch.Tensor,
    label: torch.Tensor,
    cycle: torch.Tensor | None = None,
    regions: Mapping[str, Sequence[int]] = TOTALSEGMENTATOR_REGIONS,
) -> dict[str, float]:
    """``FIGURES`` for one volume, all in HU (NaN where the label map has none of a group's regions or no cycle is
    given): mean HU in the vessels after translation, its gain over the input, the mean gain in the enhancing
    organs, the mean absolute change in bone, muscle and lung, and the mean |cycle - input| in the body."""
    nan = float("nan")
    label = with_fat(label, before)

    def pooled(group: str):
        ids = [i for name in GROUPS[group] for i in regions.get(name, ())]
        inside = _region(label, ids)
        return (before[inside].double(), after[inside].double()) if inside.any() else (None, None)

    vb, va = pooled("vessels")
    ob, oa = pooled("organs")
    sb, sa = pooled("stable")
    body = before > BODY_HU
    return {
        "vessel_hu": float(va.mean()) if va is not None else nan,
        "vessel_gain_hu": float((va - vb).mean()) if va is not None else nan,
        "organ_gain_hu": float((oa - ob).mean()) if oa is not None else nan,
        "stable_change_hu": float((sa - sb).abs().mean()) if sa is not None else nan,
        "cycle_mae_hu": (
            float((cycle[body] - before[body]).abs().double().mean()) if cycle is not None and body.any() else nan
        ),
    }


def _cpu(image) -> torch.Tensor:
    return torch.as_tensor(image).detach().cpu().float()


class CTEnhancementMetric(FigureMean):
    """One of ``FIGURES`` (``enhancement_figures``), the mean over the evaluated volumes that have the figure's
    regions (NaN when none has them), for a MONAI evaluator. None of them is a model-selection criterion on its
    own: a larger vessel gain is better only where bone, muscle and lung stay put.

    The evaluator's decollated output items need ``image`` (the non-contrast input), ``pred`` (the translation),
    ``label`` (the organ labels) and, for ``cycle_mae_hu``, ``cycle``; intensities in the network's window units,
    converted to HU by ``hu_window`` (the ``HUWindowd`` of the preprocessing).
    """

    figures = FIGURES
    counted = "volume"

    def __init__(
        self,
        name: str,
        hu_window: Sequence[float] = (-1024.0, 2048.0),
        regions: Mapping[str, Sequence[int]] = TOTALSEGMENTATOR_REGIONS,
        output_transform: Callable = decollated_items,
    ):
        self.regions, self.hu_window = dict(regions), tuple(hu_window)
        super().__init__(name, output_transform=output_transform)

    def figure(self, item) -> float:
        hu = {k: window_to_hu(_cpu(item[k]), self.hu_window) for k in ("image", "pred", "cycle") if k in item}
        return enhancement_figures(hu["image"], hu["pred"], _cpu(item["label"]), hu.get("cycle"), self.regions)[
            self.name
        ]


def contrast_reference_hu(datalist_file: str | os.PathLike, base_dir: str | os.PathLike) -> list[dict]:
    """The real contrast scans' own HU per region: for each entry of the datalist's ``contrast_reference`` section
    (``{"subject", "B": scan, "labels": {region: mask}}``, paths under ``base_dir``; NIfTI files or DICOM series),
    the mean HU of the scan inside each mask (non-zero voxels, on the scan's own grid). ``[]`` without that section:
    the comparison then has no such column."""
    from monai.transforms import LoadImage

    entries = json.loads(Path(datalist_file).read_text(encoding="utf-8")).get("contrast_reference", [])
    load, out = LoadImage(image_only=True), []
    for entry in entries:
        scan_path = Path(base_dir) / entry["B"]
        loaded = load(str(scan_path))
        scan, scan_affine = torch.as_tensor(loaded).float(), loaded.affine
        regions = {}
        for region, mask_path in entry["labels"].items():
            loaded = load(str(Path(base_dir) / mask_path))
            mask = torch.as_tensor(loaded) > 0
            same_grid = mask.shape == scan.shape and np.allclose(
                np.asarray(loaded.affine), np.asarray(scan_affine), atol=1e-3
            )
            if not same_grid:
                raise ValueError(
                    f"contrast reference '{entry['subject']}': the mask '{mask_path}' (shape {tuple(mask.shape)}) "
                    f"does not lie on the grid of the scan '{scan_path}' (shape {tuple(scan.shape)}): masks must "
                    "have the scan's shape and affine."
                )
            regions[region] = float(scan[mask].double().mean()) if mask.any() else float("nan")
        out.append({"subject": entry["subject"], "regions": regions})
    return out


class CTEnhancementComparison(EvaluationReport):
    """Evaluator handler: per evaluated volume, the HU of every labelled region before and after translation for
    the input itself, the model and the baseline (a global HU-histogram mapping of body voxels, non-contrast ->
    contrast, fitted on ``reference``); writes ``comparison.json`` and ``comparison.md`` to ``output_dir``.

    ``reference`` yields training items with ``A`` (non-contrast) and ``B`` (contrast-enhanced) volumes, preprocessed
    as the evaluated ones (window units). The baseline leaves voxels at or below -500 HU (air, lung) unchanged.
    ``contrast_reference`` (``contrast_reference_hu``) adds a column per real contrast scan with organ masks: its own
    HU in the regions it has, the level a translation should reach there (another patient, so a guide, not a target
    voxel by voxel).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        reference: Iterable[Mapping],
        hu_window: Sequence[float] = (-1024.0, 2048.0),
        regions: Mapping[str, Sequence[int]] = TOTALSEGMENTATOR_REGIONS,
        contrast_reference: Sequence[Mapping] = (),
    ):
        self.output_dir, self.reference, self.regions, self.hu_window = (
            Path(output_dir),
            reference,
            dict(regions),
            tuple(hu_window),
        )
        self.contrast_reference = [dict(r) for r in contrast_reference]
        self.mapping: HistogramMapping | None = None
        self.volumes: list[dict] = []

    def start(self, engine: Engine | None = None) -> None:
        self.volumes = []
        body = float(hu_to_window(torch.tensor(BODY_HU), self.hu_window))
        self.mapping = HistogramMapping(b_min=body, keep_background=True).fit_unpaired(
            (i["A"], i["B"]) for i in self.reference
        )

    def score(self, item: Mapping, engine: Engine | None = None) -> None:
        image, label = _cpu(item["image"]), _cpu(item["label"])
        before = window_to_hu(image, self.hu_window)
        cycle = window_to_hu(_cpu(item["cycle"]), self.hu_window) if "cycle" in item else None
        outputs = {
            "input": (before, None),
            "model": (window_to_hu(_cpu(item["pred"]), self.hu_window), cycle),
            "histogram": (window_to_hu(self.mapping(image), self.hu_window), None),
        }
        name = Path(str(getattr(item["image"], "meta", {}).get("filename_or_obj", "volume"))).name.split(".")[0]
        self.volumes.append(
            {
                "volume": name,
                "regions": {m: region_table(before, after, label, self.regions) for m, (after, _) in outputs.items()},
                "figures": {
                    m: enhancement_figures(before, after, label, cycle, self.regions)
                    for m, (after, cycle) in outputs.items()
                },
                "contrast_reference": self.contrast_reference,
            }
        )

    def write(self, engine: Engine | None = None) -> dict:
        result = {"hu_window": list(self.hu_window), "volumes": self.volumes}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.output_dir / "comparison.json", json.dumps(result, indent=2) + "\n")
        write_text_atomic(self.output_dir / "comparison.md", "\n".join(comparison_markdown(v) for v in self.volumes))
        return result


def _hu(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.1f}"


_METHODS = {"input": "non-contrast input", "model": "model", "histogram": "HU-histogram mapping (training scans)"}


def comparison_markdown(volume: Mapping) -> str:
    """One volume's regions (mean HU after, and the change) and figures, the input, the model and the baseline side
    by side."""
    methods, references = list(volume["regions"]), volume.get("contrast_reference", [])
    lines = [
        f"{volume['volume']}: mean HU per region (change against the input)",
        "",
        "| region | voxels | "
        + " | ".join(_METHODS.get(m, m) for m in methods)
        + "".join(f" | real contrast scan {r['subject']} (another patient)" for r in references)
        + " |",
        "|---" * (2 + len(methods) + len(references)) + "|",
    ]
    for region, stats in volume["regions"]["input"].items():
        cells = [
            f"{volume['regions'][m][region]['after']:.0f}"
            + ("" if m == "input" else f" ({volume['regions'][m][region]['gain']:+.0f})")
            for m in methods
        ]
        cells += [f"{r['regions'][region]:.0f}" if region in r["regions"] else "" for r in references]
        lines.append(f"| {region} | {stats['voxels']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| figure (HU) | " + " | ".join(_METHODS.get(m, m) for m in methods) + " |",
        "|---" * (1 + len(methods)) + "|",
    ]
    for figure in FIGURES:
        lines.append(f"| {figure} | " + " | ".join(_hu(volume["figures"][m][figure]) for m in methods) + " |")
    return "\n".join(lines) + "\n"
