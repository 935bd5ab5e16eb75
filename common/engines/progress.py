"""Progress a person can follow in a long training's log: iterations done of the total, speed and time left."""

from __future__ import annotations

import datetime
import logging
import time

from ignite.engine import Engine, Events

logger = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class ProgressLogger:
    """Trainer handler: every ``interval`` iterations (and at the end) logs
    ``iteration 150/2000 (7.5%), epoch 1/4, 0.42 s/it, elapsed 0:01:03, ETA 0:12:57``.

    Speed is the mean since this run started (a resumed run counts from its first new iteration), so the time the
    validations take is in it; the ETA is the remaining iterations at that speed.
    """

    def __init__(self, interval: int = 50):
        self.interval = interval

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self._log)
        engine.add_event_handler(Events.COMPLETED, self._log)

    def _start(self, engine: Engine) -> None:
        self.start_time, self.start_iteration = time.perf_counter(), engine.state.iteration

    def line(self, engine: Engine) -> str:
        state = engine.state
        total = state.max_epochs * state.epoch_length
        done = state.iteration - self.start_iteration
        elapsed = time.perf_counter() - self.start_time
        per_iteration = elapsed / max(done, 1)
        return (f"iteration {state.iteration}/{total} ({100.0 * state.iteration / total:.1f}%), epoch {state.epoch}/"
                f"{state.max_epochs}, {per_iteration:.2f} s/it, elapsed {_clock(elapsed)}, "
                f"ETA {_clock(per_iteration * (total - state.iteration))}")

    def _log(self, engine: Engine) -> None:
        logger.info(self.line(engine))
