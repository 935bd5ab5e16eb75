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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

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
    direction with the lower squared error on the training voxels. Background (``<= b_min``) stays ``b_min``.
    """

    def __init__(self, num_quantiles: int = 1001, b_min: float = -1.0):
        self.levels = np.linspace(0.0, 1.0, num_quantiles)
        self.b_min = b_min
        self.source_q: np.ndarray | None = None
        self.target_q: np.ndarray | None = None

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
        errors = {d: float(np.mean((np.interp(x, self.source_q, q) - y) ** 2)) for d, q in
                  (("increasing", increasing), ("decreasing", increasing[::-1]))}
        self.direction = min(errors, key=errors.get)
        self.target_q = increasing if self.direction == "increasing" else increasing[::-1]
        return self

    def __call__(self, source: torch.Tensor) -> torch.Tensor:
        if self.source_q is None:
            raise RuntimeError("HistogramMapping: call fit() first.")
        src = torch.as_tensor(source)
        mapped = torch.from_numpy(np.interp(src.double().numpy(), self.source_q, self.target_q)).to(src.dtype)
        return torch.where(src > self.b_min + 1e-6, mapped, torch.full_like(src, self.b_min))


class BaselineComparison:
    """Evaluator handler: scores the model's prediction and both baselines on every evaluated image and writes
    ``comparison.json``, ``comparison.csv`` and ``comparison.md`` (one row per method, the mean over images) to
    ``output_dir``.

    ``reference`` yields the training pairs for the histogram mapping, preprocessed as the evaluated images are
    (e.g. a ``Dataset`` of the training list with the validation transforms): dicts with ``image`` (source),
    ``label`` (target) and optionally ``mask``. The evaluator's output items need ``image``, ``pred``, ``label`` and,
    optionally, ``eval_mask`` (as for ``MaskedImageMetric``). With ``score_source`` the source itself is a third
    baseline (``source``): for restoration tasks, where source and target are the same contrast (a corrupted and a
    clean T1), it is the corrupted-versus-clean score that a model must improve on.
    """

    def __init__(self, output_dir: str | os.PathLike, reference: Iterable[Mapping], value_range: Sequence[float] = (-1.0, 1.0),
                 names: Sequence[str] = METRICS, score_source: bool = False):
        self.output_dir, self.reference, self.score_source = Path(output_dir), reference, score_source
        self.value_range, self.names = tuple(value_range), tuple(names)
        self.mapping = HistogramMapping(b_min=self.value_range[0])
        self.rows: dict[str, list[dict]] = {}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.fit)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.score)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def fit(self, engine: Engine | None = None) -> None:
        self.rows = {m: [] for m in ("model", "model_fitted", *(("source",) if self.score_source else ()), *BASELINES)}
        self.mapping.fit((item["image"], item["label"], item.get("mask")) for item in self.reference)

    def predictions(self, image: torch.Tensor, pred: torch.Tensor, label: torch.Tensor, mask) -> dict[str, torch.Tensor]:
        """The model's output, as it is and after the oracle line, and each baseline's, for one image."""
        # the lines are fitted where the metrics are scored: inside the mask, else over the whole image
        region = torch.ones_like(label, dtype=torch.bool) if mask is None else (torch.as_tensor(mask) > 0).expand_as(label)
        preds = {"model": pred, "model_fitted": linear_fit(pred, label, region)}
        if self.score_source:
            preds["source"] = image
        return {**preds, "linear": linear_fit(image, label, region), "histogram": self.mapping(image)}

    def score(self, engine: Engine) -> None:
        for item in engine.state.output:
            image, label, pred = (torch.as_tensor(item[k]).detach().cpu().float() for k in ("image", "label", "pred"))
            mask = None if item.get("eval_mask") is None else torch.as_tensor(item["eval_mask"]).cpu()
            for method, prediction in self.predictions(image, pred, label, mask).items():
                self.rows[method].append(masked_image_metrics(prediction, label, mask, self.value_range, names=self.names))

    def summary(self) -> dict[str, dict[str, float]]:
        return {m: {n: float(np.mean([r[n] for r in rows])) for n in self.names} for m, rows in self.rows.items() if rows}

    def write(self, engine: Engine | None = None) -> dict[str, dict[str, float]]:
        table = self.summary()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "comparison.json").write_text(
            json.dumps({"histogram_direction": self.mapping.direction, "methods": table}, indent=2) + "\n")
        with open(self.output_dir / "comparison.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["method", *self.names])
            writer.writerows([m, *(f"{v[n]:.4f}" for n in self.names)] for m, v in table.items())
        (self.output_dir / "comparison.md").write_text(comparison_markdown(table))
        return table


def comparison_markdown(table: Mapping[str, Mapping[str, float]]) -> str:
    """The model and the baselines as a Markdown table (PSNR in dB, the others unitless on the 0..1 scale)."""
    names = list(next(iter(table.values())))
    labels = {"model": "model", "model_fitted": "model, least-squares line (oracle fit in the mask)",
              "source": "source as it is", "linear": "source, least-squares line (oracle fit in the mask)",
              "histogram": "source, histogram matching fitted on the training subjects"}
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {labels.get(m, m)} | " + " | ".join(f"{v[n]:.3f}" if n != "psnr" else f"{v[n]:.2f}" for n in names) + " |"
              for m, v in table.items()]
    return "\n".join(lines) + "\n"
