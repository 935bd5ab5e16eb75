"""Progress a person can follow in a long training's log: iterations done of the total, speed and time left."""

from __future__ import annotations

import datetime
import logging
import time
from collections import deque

from ignite.engine import Engine, Events

logger = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class ProgressLogger:
    """Trainer handler: every ``interval`` iterations (and at the end) logs
    ``iteration 150/2000 (7.5%), epoch 1/4, 0.42 s/it, elapsed 0:01:03, ETA 0:12:57``.

    Speed is that of the last ``window`` logged intervals (a moving window: the start-up and the first, slower
    iterations drop out of it, and a validation counts only while it is in the window); the ETA is the remaining
    iterations at that speed. A first line comes after ``first`` iterations, so a long run shows its pace early.
    """

    def __init__(self, interval: int = 50, window: int = 5, first: int = 5):
        self.interval, self.first = interval, first
        self.samples: deque = deque(maxlen=window + 1)  # (time, iteration) at the start and at each logged line

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED(event_filter=self._due), self._log)
        engine.add_event_handler(Events.COMPLETED, self._log)

    def _due(self, engine: Engine, _event: int) -> bool:
        iteration = engine.state.iteration
        return iteration % self.interval == 0 or (
            self.first < self.interval and iteration == self.start_iteration + self.first
        )

    def _start(self, engine: Engine) -> None:
        self.start_time, self.start_iteration = time.perf_counter(), engine.state.iteration
        self.samples.clear()
        self.samples.append((self.start_time, self.start_iteration))

    def line(self, engine: Engine, now: float | None = None) -> str:
        state = engine.state
        now = time.perf_counter() if now is None else now
        total = state.max_epochs * state.epoch_length
        since, first_iteration = self.samples[0]
        per_iteration = (now - since) / max(state.iteration - first_iteration, 1)
        return (
            f"iteration {state.iteration}/{total} ({100.0 * state.iteration / total:.1f}%), epoch {state.epoch}/"
            f"{state.max_epochs}, {per_iteration:.2f} s/it, elapsed {_clock(now - self.start_time)}, "
            f"ETA {_clock(per_iteration * (total - state.iteration))}"
        )

    def _log(self, engine: Engine) -> None:
        now = time.perf_counter()
        logger.info(self.line(engine, now))
        if self.samples[-1][1] != engine.state.iteration:
            self.samples.append((now, engine.state.iteration))


class FreshRunNotice(logging.Filter):
    """Drops ignite's "Engine run resuming from iteration 0, ..." line: ignite logs it for every run whose state
    already holds ``max_epochs``, which MONAI's workflows set before starting (and an evaluator's epoch follows the
    trainer's), so a fresh run read as resumed. A resumed training says so itself ("Restored all variables from
    <checkpoint>"), logged when the checkpoint loads, after this line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Engine run resuming from iteration 0,")


def hide_fresh_run_notice(engine_classes=("MultiNetworkTrainer", "SupervisedTrainer", "SupervisedEvaluator")) -> None:
    """Installs ``FreshRunNotice`` on the loggers of ignite engines of these classes (ignite names each engine's logger
    ``ignite.engine.engine.<class>``); installing twice adds it once."""
    for name in engine_classes:
        engine_logger = logging.getLogger(f"ignite.engine.engine.{name}")
        if not any(isinstance(f, FreshRunNotice) for f in engine_logger.filters):
            engine_logger.addFilter(FreshRunNotice())
