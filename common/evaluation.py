"""The two parts every bundle's evaluation is made of, written once: a metric that averages one named figure over the
evaluated items (``FigureMean``, for a MONAI evaluator's ``key_val_metric`` / ``additional_metrics``), and a report
handler that fits its baselines when the run starts, scores each evaluated item and writes its files when the run
completes (``EvaluationReport``). The image translation (``common.metrics``, ``common.baselines``), the CT
(``common.ct_evaluation``) and the registration (``common.registration.evaluation``) evaluations say only how one
item gives its figures and what their report files hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from ignite.engine import Engine, Events
from ignite.metrics import Metric


def decollated_items(output) -> list[Mapping]:
    """An evaluator's output as a list of items (MONAI's decollated batch; a single item becomes a list of one)."""
    return output if isinstance(output, list) else [output]


class FigureMean(Metric):
    """The mean over the evaluated items of one of ``figures`` (NaN-aware: items without what the figure needs give
    NaN and are left out; NaN when none has it). A subclass names its ``figures`` and says how one item gives them
    (``figure``); ``output_transform`` turns the evaluator's output into the list of items."""

    figures: Sequence[str] = ()
    counted = "item"  # what an item is, in the error raised when none was evaluated

    def __init__(self, name: str, output_transform: Callable = decollated_items):
        if name not in self.figures:
            raise ValueError(f"unknown figure '{name}', choose from {tuple(self.figures)}.")
        self.name = name
        super().__init__(output_transform=output_transform, skip_unrolling=True)  # one update per batch of items

    def figure(self, item: Mapping) -> float:
        """This metric's figure for one evaluated item."""
        raise NotImplementedError

    def reset(self) -> None:
        self._values: list[float] = []

    def update(self, output) -> None:
        self._values.extend(float(self.figure(item)) for item in output)

    def compute(self) -> float:
        if not self._values:
            raise RuntimeError(f"{self.name}: no {self.counted} was evaluated.")
        values = np.asarray(self._values, dtype=float)
        return float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")


class EvaluationReport:
    """Evaluator handler: ``start`` when the run starts (clear the rows, fit the baselines), ``score`` each evaluated
    item, ``write`` the report's files (atomically: ``common.data.files``) when the run completes. A subclass
    implements ``score`` and ``write``, and ``start`` where it fits something."""

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score_output)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def start(self, engine: Engine | None = None) -> None:
        """Forget an earlier run's rows; fit what the baselines need."""

    def _score_output(self, engine: Engine) -> None:
        for item in decollated_items(engine.state.output):
            self.score(item, engine)

    def score(self, item: Mapping, engine: Engine | None = None) -> None:
        """Score one evaluated item (and keep its row)."""
        raise NotImplementedError

    def write(self, engine: Engine | None = None):
        """Write the report's files."""
        raise NotImplementedError
