"""Ctrl-C during a search: stop at once while a network trains, never in the middle of a storage write.

A ``KeyboardInterrupt`` raised at an arbitrary point can land inside Optuna's storage code
(a half-released journal lock, a trial left RUNNING), and a search writes to its storage
almost everywhere: creating the study, suggesting parameters, recording attributes, and
nothing else at all in a trial that reuses an earlier score. So inside :func:`safe_interrupt`
SIGINT only raises within an :func:`interruptible` region, which wraps the computation alone
(condensing, training a network, loading data); anywhere else it is remembered, and the
search stops at the next safe point: the next interruptible region, the end of the trial, or
the end of the ``safe_interrupt`` block.

Example:
    >>> from nas_proxy._interrupt import interruptible, safe_interrupt
    >>> with safe_interrupt():
    ...     with interruptible():
    ...         total = sum(range(10))  # Ctrl-C here raises at once; elsewhere in the block it waits
    >>> total
    45
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class SafeInterrupt:
    """SIGINT state while a search runs: whether one arrived, and whether raising now is safe."""

    def __init__(self) -> None:
        self.requested = False
        self._interruptible = False

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._interruptible:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        self._interruptible = True  # set before the check: a signal between the two raises either way
        try:
            if self.requested:  # Ctrl-C came while it was not safe to raise: stop before the work starts
                raise KeyboardInterrupt
            yield
        finally:
            self._interruptible = False

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        was = self._interruptible
        self._interruptible = False
        try:
            yield
        finally:
            self._interruptible = was
        if was and self.requested:  # Ctrl-C came during the write: stop now that it is done
            raise KeyboardInterrupt


_active: SafeInterrupt | None = None  # the process's handler state; signals are per process anyway


@contextlib.contextmanager
def safe_interrupt() -> Iterator[SafeInterrupt]:
    """Defer SIGINT to safe points for the duration; raise ``KeyboardInterrupt`` at the end if one came.

    Nested calls share the outer state. Outside the main thread signals cannot be handled, so
    Python's default stays.
    """
    global _active
    if _active is not None:
        yield _active
        return
    state = SafeInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.signal(signal.SIGINT, state._handler)
    _active = state
    try:
        yield state
    finally:
        _active = None
        signal.signal(signal.SIGINT, previous)
    if state.requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Mark pure computation (no storage writes) that Ctrl-C may stop at once; a no-op outside a search."""
    if _active is None:
        yield
        return
    with _active.interruptible():
        yield


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """A write inside an interruptible region (a result saved while other networks still train): Ctrl-C
    waits for it to finish, then raises; a no-op outside a search."""
    if _active is None:
        yield
        return
    with _active.shielded():
        yield
