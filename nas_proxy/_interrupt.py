"""Ctrl-C during a search: stop at once while a network trains, never in the middle of a storage write.

A ``KeyboardInterrupt`` raised at an arbitrary point can land inside Optuna's storage code
(half-released journal lock, a trial left RUNNING). While the objective trains, SIGINT raises
at once (Optuna then marks that trial failed); anywhere else it is remembered and the study
stops at the next safe point.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import optuna


class SafeInterrupt:
    def __init__(self) -> None:
        self.requested = False
        self._training = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._training:
            raise KeyboardInterrupt

    def objective(self, objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
        def guarded(trial: optuna.Trial) -> float:
            if self.requested:  # asked to stop while the sampler chose this trial: do no work
                raise KeyboardInterrupt
            self._training = True
            try:
                return objective(trial)
            finally:
                self._training = False

        return guarded

    def callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.requested:
            study.stop()


def _drop_interrupt_traceback(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trial with its traceback; for Ctrl-C the one-line message is enough."""
    if record.exc_info and record.exc_info[0] is KeyboardInterrupt:
        record.exc_info, record.exc_text = None, None
    return True


@contextlib.contextmanager
def safe_interrupt() -> Iterator[SafeInterrupt]:
    """Install the handler for the duration (main thread only; elsewhere Python's default stays)."""
    state = SafeInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.signal(signal.SIGINT, state._handler)
    optimize_logger = logging.getLogger("optuna.study._optimize")
    optimize_logger.addFilter(_drop_interrupt_traceback)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
        optimize_logger.removeFilter(_drop_interrupt_traceback)
    if state.requested:
        raise KeyboardInterrupt
