"""Scoring a registration against a known deformation: endpoint error, Dice, folding, time; per pair and as means."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.networks.blocks import Warp

from ..data.files import atomic_path, write_text_atomic
from ..evaluation import EvaluationReport, FigureMean
from ..panels import PanelOutput, pick_slice
from .fields import dice, endpoint_errors, folding_percent, voxel_spacing

FIGURES = ("epe_mm", "epe_p95_mm", "epe_before_mm", "dice_before", "dice_after", "folding_percent", "seconds")
# the same for the network's own field when a test-time optimisation refines it (T alone beside T + optimisation)
NETWORK_FIGURES = (
    "network_epe_mm",
    "network_epe_p95_mm",
    "network_dice_after",
    "network_folding_percent",
    "network_seconds",
)


def _cpu(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().cpu().float()


def _warp(image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    return Warp(mode=mode, padding_mode="zeros")(image[None], ddf[None])[0]


def _field_figures(ddf: torch.Tensor, item: Mapping, mask: torch.Tensor) -> dict[str, float]:
    """Endpoint error (mean, 95th percentile), Dice after warping the moving labels, folding of one field."""
    out = dict.fromkeys(("epe_mm", "epe_p95_mm", "dice_after"), float("nan"))
    if "true_ddf" in item:
        errors = endpoint_errors(ddf[None], _cpu(item["true_ddf"])[None], voxel_spacing(item["image"]), mask[None])
        out["epe_mm"], out["epe_p95_mm"] = float(errors.mean()), float(torch.quantile(errors, 0.95))
    if "label" in item and "label_fixed" in item:
        out["dice_after"] = dice(_warp(_cpu(item["label"]), ddf, "nearest"), _cpu(item["label_fixed"]))
    out["folding_percent"] = folding_percent(ddf[None], mask[None])
    return out


def registration_figures(item: Mapping) -> dict[str, float]:
    """The figures of one evaluated pair (an evaluator's decollated output item): ``FIGURES`` for ``pred`` and
    ``NETWORK_FIGURES`` for the network's own field.

    The item holds ``image`` ((2, *S): the fixed and the moving image, as T saw them), ``pred`` (the displacement,
    (3, *S) voxels) and, where known, ``network_pred`` (T's own field when a test-time optimisation refined it into
    ``pred``; ``pred`` itself otherwise), ``true_ddf`` (the synthetic deformation, ``RandSmoothDeformationd``),
    ``label`` and ``label_fixed`` (label maps or brain masks of the moving image and, deformed with it, of the fixed
    one), ``seconds`` and ``network_seconds`` (``PairOutputs``).
    Endpoint errors and folding are inside the fixed image's labels (its foreground when it has none), so the empty
    space around the head does not dilute them; Dice is the mean over the non-zero labels present, before (moving
    labels as they are) and after warping them (nearest neighbour). Missing inputs give NaN.
    """
    image, ddf = _cpu(item["image"]), _cpu(item["pred"])
    fixed = image[:1]
    mask = (_cpu(item["label_fixed"]) > 0) if "label_fixed" in item else (fixed > 0.01)
    out = dict.fromkeys(FIGURES + NETWORK_FIGURES, float("nan"))
    out.update(_field_figures(ddf, item, mask))
    if "network_pred" in item:
        network = _field_figures(_cpu(item["network_pred"]), item, mask)
    else:
        network = {k: out[k] for k in ("epe_mm", "epe_p95_mm", "dice_after", "folding_percent")}
    out.update({f"network_{k}": v for k, v in network.items()})
    if "true_ddf" in item:
        true = _cpu(item["true_ddf"])[None]
        out["epe_before_mm"] = float(
            endpoint_errors(torch.zeros_like(true), true, voxel_spacing(item["image"]), mask[None]).mean()
        )
    if "label" in item and "label_fixed" in item:
        out["dice_before"] = dice(_cpu(item["label"]), _cpu(item["label_fixed"]))
    if "seconds" in item:
        out["seconds"] = float(item["seconds"])
        out["network_seconds"] = float(item.get("network_seconds", item["seconds"]))
    return out


class RegistrationMetric(FigureMean):
    """The mean of one of ``FIGURES`` (``registration_figures``) over the evaluated pairs, for a MONAI evaluator
    (NaN where no pair has what the figure needs). Lower is better for all but ``dice_after``."""

    figures = FIGURES + NETWORK_FIGURES
    counted = "pair"

    def figure(self, item) -> float:
        return registration_figures(item)[self.name]


class PairOutputs:
    """Evaluator handler: adds to the output what scoring a pair needs beyond MONAI's image/label/pred: the batch's
    ``keys`` (the true deformation, the fixed image's labels) and ``seconds``, the time from the iteration's start to
    the end of the network's forward pass (the registration itself, preprocessing excluded, as for the classical
    baseline; on a GPU after synchronising, so the time is the computation's, not the launch's). When the evaluator's
    inferer refined T's field (``InstanceOptimisation`` with steps), also T's own field and time (``network_pred``,
    ``network_seconds``), so that T alone is scored beside T + optimisation."""

    def __init__(self, keys=("true_ddf", "label_fixed")):
        self.keys = tuple(keys)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self._start)
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self._stop)

    def _start(self, engine: Engine) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, engine: Engine) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        # MONAI decollates output and batch at MODEL_COMPLETED (before this handler) unless decollate=False
        outputs, batches = engine.state.output, engine.state.batch
        if isinstance(outputs, dict):
            outputs, batches = [outputs], [batches]
        seconds = (time.perf_counter() - self._t0) / max(len(outputs), 1)
        inferer = getattr(engine, "inferer", None)
        refined = getattr(inferer, "refines", False) and getattr(inferer, "network_ddf", None) is not None
        for i, (output, batch) in enumerate(zip(outputs, batches)):
            output["seconds"] = seconds
            output.update({k: batch[k] for k in self.keys if k in batch})
            if refined:
                output["network_pred"] = inferer.network_ddf[i]
                output["network_seconds"] = inferer.network_seconds / max(len(outputs), 1)


def _grid_volume(shape, step: int = 6) -> torch.Tensor:
    """(1, *shape) lines every ``step`` voxels in the two in-plane axes: what warping by the field shows."""
    grid = torch.zeros(1, *shape)
    grid[:, ::step] = 1.0
    grid[:, :, ::step] = 1.0
    return grid


class RegistrationReport(EvaluationReport):
    """Evaluator handler: per pair, a row of ``registration_figures`` in ``<output_dir>/pairs.csv`` and the same beside
    no registration (the identity) in ``<output_dir>/comparison.md`` (both written when the run completes), and
    ``<output_dir>/<moving>_registration.png``: fixed | moving | moving warped by T | the warped
    grid | |warped - moving warped by the true deformation| (when it is known), around the axial and coronal slices
    with the most fixed-image foreground. With ``tb_dir`` the panels also go to TensorBoard; without ``output_dir``
    only there (validation during training)."""

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        value_range=(0.0, 1.0),
        tb_dir: str | os.PathLike | None = None,
    ):
        self.output_dir, self.value_range = None if output_dir is None else Path(output_dir), tuple(value_range)
        self.panels = PanelOutput(output_dir, tb_dir, suffix="_registration")
        self.rows: list[dict] = []

    def start(self, engine: Engine | None = None) -> None:
        self.rows = []

    def score(self, item: Mapping, engine: Engine | None = None) -> None:
        image, ddf = _cpu(item["image"]), _cpu(item["pred"])
        meta = getattr(item["image"], "meta", {}) or {}
        name = Path(str(meta.get("filename_or_obj", f"pair{len(self.rows)}"))).name.split(".")[0]
        self.rows.append({"pair": name, **registration_figures(item), "refined": "network_pred" in item})
        fixed, moving = image[:1], image[1:2]
        warped = _warp(moving, ddf)
        tiles = [fixed, moving, warped, _warp(_grid_volume(fixed.shape[1:]), ddf)]
        titles = ["fixed", "moving", "warped by T", "warped grid"]
        colour_bar = None
        if "true_ddf" in item:
            tiles.append((warped - _warp(moving, _cpu(item["true_ddf"]))).abs())
            titles.append("|warped - true|")
            span = self.value_range[1] - self.value_range[0]
            colour_bar = (len(tiles) - 1, "|warped - true|, % of the intensity range", 100.0 / span)
        self.panels(
            engine,
            name,
            tiles,
            titles,
            pick_slice(fixed),
            self.value_range,
            coronal=pick_slice(fixed, axis=2),
            colour_bar=colour_bar,
        )

    def write(self, engine: Engine | None = None) -> None:
        if self.output_dir is None:  # panels in TensorBoard only (validation during training)
            return
        with atomic_path(self.output_dir / "pairs.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["pair", *FIGURES, *NETWORK_FIGURES], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        lines = [
            "| pair | registration | mean endpoint error (mm) | 95th percentile (mm) | Dice | folding (%) | s/pair |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['pair']} | none (identity) | {r['epe_before_mm']:.2f} | | {r['dice_before']:.3f} | 0.00 | |"
            )
            lines.append(
                f"| {r['pair']} | T alone (this model) | {r['network_epe_mm']:.2f} | {r['network_epe_p95_mm']:.2f} "
                f"| {r['network_dice_after']:.3f} | {r['network_folding_percent']:.2f} | {r['network_seconds']:.2f} |"
            )
            if r["refined"]:
                lines.append(
                    f"| {r['pair']} | T + test-time optimisation | {r['epe_mm']:.2f} | {r['epe_p95_mm']:.2f} "
                    f"| {r['dice_after']:.3f} | {r['folding_percent']:.2f} | {r['seconds']:.2f} |"
                )
        write_text_atomic(self.output_dir / "comparison.md", "\n".join(lines) + "\n")
