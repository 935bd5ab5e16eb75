"""Trivial translation baselines scored beside a model, so that an evaluation says whether the model adds anything.

Two baselines, both computed from the source image alone and scored by the same masked metrics as the model:

* ``linear``: the source mapped onto the target by a least-squares line fitted inside the evaluation mask of the
  held-out image itself (an oracle fit: it sees the target, so it is the best any global linear map can do);
* ``histogram``: a monotone intensity mapping fitted on the training subjects (quantiles of the source contrast
  matched to quantiles of the target contrast, increasing or decreasing, whichever fits the training pairs
  better: T1 -> T2 inverts the contrast), then applied to the held-out source.

A model below the better of them has not yet learnt a translation that a look-up table could not do. The
oracle line gets the target's own intensity calibration for free, which a model trained on other scanners cannot
know; so the comparison also scores the model's output after the same oracle line (``model_fitted``): that row
against ``linear`` compares what the two images say about the anatomy, on equal terms.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine

from .data.files import atomic_path, write_text_atomic
from .evaluation import EvaluationReport
from .metrics import METRICS, masked_image_metrics

BASELINES = ("linear", "histogram")


def _foreground(image: torch.Tensor, mask, b_min: float) -> torch.Tensor:
    """The mask where given, else the voxels above the background value."""
    return torch.as_tensor(mask) > 0 if mask is not None else torch.as_tensor(image) > b_min + 1e-6


def linear_fit(source: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``a * source + b`` with ``a, b`` minimising the squared error to ``target`` inside ``mask``."""
    x, y = source[mask].double(), target[mask].double()
    var = float(((x - x.mean()) ** 2).sum())
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / var if var > 0 else 0.0
    intercept = float(y.mean()) - slope * float(x.mean())
    return (source.double() * slope + intercept).to(source.dtype)


class HistogramMapping:
    """Monotone intensity map from the source to the target contrast, fitted on pairs of co-registered images.

    ``fit`` pools the foreground voxels of every pair and takes ``num_quantiles`` quantiles of each contrast; the
    map sends the source quantile ``q`` to the target quantile ``q`` (increasing) or ``1 - q`` (decreasing), the
    direction with the lower squared error on the training voxels. Background (``<= b_min``) becomes ``b_min``, or
    keeps its value with ``keep_background``. ``fit_unpaired`` fits it on unpaired images instead.
    """

    def __init__(self, num_quantiles: int = 1001, b_min: float = -1.0, keep_background: bool = False):
        self.levels = np.linspace(0.0, 1.0, num_quantiles)
        self.b_min, self.keep_background = b_min, keep_background
        self.source_q: np.ndarray | None = None
        self.target_q: np.ndarray | None = None

    def fit_unpaired(
        self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], max_voxels: int = 200_000
    ) -> HistogramMapping:
        """Unpaired images (e.g. non-contrast and contrast CT of different people), given as (source, target) items
        read one at a time: the foreground (``> b_min``) quantiles of all sources pooled are matched to those of all
        targets pooled, increasing (the same tissue order in both domains). At most ``max_voxels`` foreground voxels
        of each image (a fixed random draw) enter the pool, so a cohort of volumes fits in memory."""
        rng = np.random.default_rng(0)
        pooled: tuple[list, list] = ([], [])
        for images in pairs:
            for pool, image in zip(pooled, images):
                values = torch.as_tensor(image).detach().cpu().flatten()
                values = values[values > self.b_min].double().numpy()
                pool.append(values if values.size <= max_voxels else rng.choice(values, max_voxels, replace=False))
        quantiles = []
        for pool in pooled:
            values = np.concatenate(pool) if pool else np.zeros(0)
            if values.size == 0:
                raise ValueError("HistogramMapping.fit_unpaired: no foreground voxels in the reference images.")
            quantiles.append(np.quantile(values, self.levels))
        self.source_q, self.target_q = quantiles
        self.direction = "increasing"
        return self

    def fit(self, pairs: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> HistogramMapping:
        sources, targets, files = [], [], []
        for source, target, mask in pairs:
            files.append(str(getattr(source, "meta", {}).get("filename_or_obj", "<in-memory image>")))
            fg = _foreground(source, mask, self.b_min) & _foreground(target, mask, self.b_min)
            sources.append(torch.as_tensor(source)[fg].double().numpy())
            targets.append(torch.as_tensor(target)[fg].double().numpy())
        if not sources or not sum(s.size for s in sources):
            raise ValueError(f"HistogramMapping.fit: no foreground voxels in the reference images {files}.")
        x, y = np.concatenate(sources), np.concatenate(targets)
        self.source_q = np.quantile(x, self.levels)
        increasing = np.quantile(y, self.levels)
        errors = {
            d: float(np.mean((np.interp(x, self.source_q, q) - y) ** 2))
            for d, q in (("increasing", increasing), ("decreasing", increasing[::-1]))
        }
        self.direction = min(errors, key=errors.get)
        self.target_q = increasing if self.direction == "increasing" else increasing[::-1]
        return self

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        if self.source_q is None:
            raise RuntimeError("HistogramMapping: call fit() first.")
        src = torch.as_tensor(source)
        mapped = torch.from_numpy(np.interp(src.double().numpy(), self.source_q, self.target_q)).to(src.dtype)
        return torch.where(
            src > self.b_min + 1e-6, mapped, src if self.keep_background else torch.full_like(src, self.b_min)
        )


def single_source(item: Mapping) -> dict[str, torch.Tensor]:
    """The default sources of an evaluated item: its ``image``, the one source contrast of a translation."""
    return {"source": item["image"]}


class BaselineComparison(EvaluationReport):
    """Evaluator handler: scores the model's prediction and both baselines on every evaluated image and writes
    ``comparison.json``, ``comparison.csv`` and ``comparison.md`` (one row per method, the mean over images, then
    one row per subject and method) to ``output_dir``.

    Each subject is scored on its own (``eval_subject``, else the image's position), and where an item has a lesion
    mask (``eval_lesion``: MS lesions, tumour labels; non-zero = lesion) the same metrics inside the lesion are
    added as ``lesion_<metric>``: a synthetic contrast that blurs a lesion away can score well on the whole brain.

    ``reference`` yields the training pairs for the histogram mapping, preprocessed as the evaluated images are
    (e.g. a ``Dataset`` of the training list with the validation transforms): dicts with ``image`` (source),
    ``label`` (target) and optionally ``mask``. The evaluator's output items need ``image``, ``pred``, ``label`` and,
    optionally, ``eval_mask`` (as for ``MaskedImageMetric``). With ``score_source`` the source itself is a third
    baseline (``source``): for restoration tasks, where source and target are the same contrast (a corrupted and a
    clean T1), it is the corrupted-versus-clean score that a model must improve on.

    Several inputs (a multi-contrast model): ``sources(item)`` returns the item's single source images by name
    (default: ``{"source": item["image"]}``); one histogram mapping is fitted per name, and each baseline row is the
    best single source for that image (lowest squared error inside the mask: an oracle choice, like the line).
    ``group_key`` names an output item's key (e.g. ``eval_inputs``, the input combination) by which rows are
    grouped: the tables then have one block of rows per group.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        reference: Iterable[Mapping],
        value_range: Sequence[float] = (-1.0, 1.0),
        names: Sequence[str] = METRICS,
        score_source: bool = False,
        sources: Callable[[Mapping], Mapping[str, torch.Tensor]] = single_source,
        group_key: str | None = None,
    ):
        self.output_dir, self.reference, self.score_source = Path(output_dir), reference, score_source
        self.value_range, self.names, self.sources, self.group_key = (
            tuple(value_range),
            tuple(names),
            sources,
            group_key,
        )
        self.mappings: dict[str, HistogramMapping] = {}
        self.rows: dict[str, dict[str, list[dict]]] = {}

    def start(self, engine: Engine | None = None) -> None:
        self.rows = {}
        pairs: dict[str, list] = {}
        for item in self.reference:
            for name, source in self.sources(item).items():
                pairs.setdefault(name, []).append((source, item["label"], item.get("mask")))
        self.mappings = {name: HistogramMapping(b_min=self.value_range[0]).fit(p) for name, p in pairs.items()}

    def _best(self, candidates: Iterable[torch.Tensor], label: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        return min(candidates, key=lambda c: float(((c - label)[region] ** 2).mean()))

    def predictions(
        self, sources: Mapping[str, torch.Tensor], pred: torch.Tensor, label: torch.Tensor, mask
    ) -> dict[str, torch.Tensor]:
        """The model's output, as it is and after the oracle line, and each baseline's, for one image."""
        # the lines are fitted where the metrics are scored: inside the mask, else over the whole image
        region = (
            torch.ones_like(label, dtype=torch.bool) if mask is None else (torch.as_tensor(mask) > 0).expand_as(label)
        )
        preds = {"model": pred, "model_fitted": linear_fit(pred, label, region)}
        if self.score_source:
            preds["source"] = self._best(sources.values(), label, region)
        unknown = sorted(set(sources) - set(self.mappings))
        if unknown:
            raise ValueError(
                f"no reference image had the sources {unknown}, so no histogram mapping was fitted for them."
            )
        preds["linear"] = self._best((linear_fit(s, label, region) for s in sources.values()), label, region)
        preds["histogram"] = self._best((self.mappings[n](s) for n, s in sources.items()), label, region)
        return preds

    def score(self, item: Mapping, engine: Engine | None = None) -> None:
        label, pred = (torch.as_tensor(item[k]).detach().cpu().float() for k in ("label", "pred"))
        sources = {n: torch.as_tensor(s).detach().cpu().float() for n, s in self.sources(item).items()}
        mask = None if item.get("eval_mask") is None else torch.as_tensor(item["eval_mask"]).cpu()
        lesion = lesion_region(item.get("eval_lesion"), mask)
        group = self.rows.setdefault(str(item[self.group_key]) if self.group_key else "", {})
        subject = str(item.get("eval_subject") or f"image {len(next(iter(group.values()), [])) + 1}")
        for method, prediction in self.predictions(sources, pred, label, mask).items():
            row = masked_image_metrics(prediction, label, mask, self.value_range, names=self.names)
            if lesion is not None:
                inside = masked_image_metrics(prediction, label, lesion, self.value_range, names=self.names)
                row.update({f"lesion_{n}": v for n, v in inside.items()})
            group.setdefault(method, []).append({**row, "subject": subject})

    def _columns(self, rows: Sequence[Mapping]) -> list[str]:
        """The metric names, then the lesion metrics where any row has them."""
        return [*self.names, *(f"lesion_{n}" for n in self.names if any(f"lesion_{n}" in r for r in rows))]

    def _mean(self, rows: Sequence[Mapping]) -> dict[str, float]:
        # NaN-aware, as the evaluator's metrics (common.evaluation.FigureMean): an image without a figure is left out
        return {n: float(np.nanmean([r[n] for r in rows if n in r])) for n in self._columns(rows)}

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """group -> method -> metric: the mean over the group's images (one group, "", without ``group_key``); lesion
        metrics are the mean over the images that have a lesion mask."""
        return {g: {m: self._mean(rows) for m, rows in methods.items()} for g, methods in self.rows.items()}

    def per_subject(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """group -> subject -> method -> metric."""
        table: dict = {}
        for g, methods in self.rows.items():
            for m, rows in methods.items():
                for subject in dict.fromkeys(r["subject"] for r in rows):
                    table.setdefault(g, {}).setdefault(subject, {})[m] = self._mean(
                        [r for r in rows if r["subject"] == subject]
                    )
        return table

    def write(self, engine: Engine | None = None) -> dict:
        table, subjects = self.summary(), self.per_subject()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        directions = {n: m.direction for n, m in self.mappings.items()}
        result = {"histogram_direction": directions.get("source", directions)}
        result.update(
            {"groups": table, "subjects_by_group": subjects}
            if self.group_key
            else {"methods": table.get("", {}), "subjects": subjects.get("", {})}
        )
        write_text_atomic(self.output_dir / "comparison.json", json.dumps(result, indent=2) + "\n")
        columns = self._columns([r for methods in self.rows.values() for rows in methods.values() for r in rows])
        with atomic_path(self.output_dir / "comparison.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow([*(["inputs"] if self.group_key else []), "subject", "method", *columns])
            for g, by_subject in {g: {"mean": methods, **subjects.get(g, {})} for g, methods in table.items()}.items():
                writer.writerows(
                    [*([g] if self.group_key else []), subject, m, *(f"{v[n]:.4f}" if n in v else "" for n in columns)]
                    for subject, methods in by_subject.items()
                    for m, v in methods.items()
                )
        text = comparison_markdown(table, self.group_key is not None)
        if len(next(iter(subjects.values()), {})) > 1 or any("lesion_psnr" in c for c in columns):
            text += "\nPer held-out subject (lesion_*: inside its lesion mask, where it has one):\n\n"
            text += subject_markdown(subjects, self.group_key is not None)
        write_text_atomic(self.output_dir / "comparison.md", text)
        return table


def lesion_region(lesion, mask) -> torch.Tensor | None:
    """The lesion voxels (non-zero labels) inside ``mask`` where given; None without a lesion mask or lesion voxel."""
    if lesion is None:
        return None
    region = torch.as_tensor(lesion).cpu() > 0
    if mask is not None:
        region = region & (torch.as_tensor(mask).cpu() > 0)
    return region if bool(region.any()) else None


def _fmt(name: str, value: float) -> str:
    return f"{value:.2f}" if name.endswith("psnr") else f"{value:.3f}"


def subject_markdown(
    subjects: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]], grouped: bool = False
) -> str:
    """One row per (input combination,) subject and method; lesion columns where a subject has a lesion mask."""
    labels = {
        "model": "model",
        "model_fitted": "model, oracle line",
        "source": "source",
        "linear": "source, oracle line",
        "histogram": "source, histogram matching",
    }
    rows = [
        (g, s, m, v)
        for g, by_subject in subjects.items()
        for s, methods in by_subject.items()
        for m, v in methods.items()
    ]
    names = list(dict.fromkeys(n for *_, v in rows for n in v))
    head = (["inputs"] if grouped else []) + ["subject", "method", *names]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += [
        "| "
        + (f"{g} | " if grouped else "")
        + f"{s} | {labels.get(m, m)} | "
        + " | ".join(_fmt(n, v[n]) if n in v else "-" for n in names)
        + " |"
        for g, s, m, v in rows
    ]
    return "\n".join(lines) + "\n"


def comparison_markdown(table: Mapping[str, Mapping[str, Mapping[str, float]]], grouped: bool = False) -> str:
    """The model and the baselines as a Markdown table (PSNR in dB, the others unitless on the 0..1 scale); with
    ``grouped``, a first column names each row's group (e.g. the input combination)."""
    names = [n for n in next(iter(next(iter(table.values())).values())) if not n.startswith("lesion_")]
    labels = {
        "model": "model",
        "model_fitted": "model, least-squares line (oracle fit in the mask)",
        "source": "source as it is",
        "linear": "source, least-squares line (oracle fit in the mask)",
        "histogram": "source, histogram matching fitted on the training subjects",
    }
    if grouped:
        labels.update(
            {
                "source": "best single input as it is",
                "linear": "best single input, least-squares line (oracle fit)",
                "histogram": "best single input, histogram matching fitted on the training subjects",
            }
        )
    head = (["inputs"] if grouped else []) + ["method", *names]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for g, methods in table.items():
        lines += [
            "| "
            + (f"{g} | " if grouped else "")
            + f"{labels.get(m, m)} | "
            + " | ".join(f"{v[n]:.3f}" if n != "psnr" else f"{v[n]:.2f}" for n in names)
            + " |"
            for m, v in methods.items()
        ]
    return "\n".join(lines) + "\n"
