"""The Optuna study: open it on its storage, run the search, several workers on one study.

:func:`open_study` / :func:`load_study` (``_study``; storage in ``_storage``: a journal file or a
database), :func:`run_search` (``_search``: condense once, the reference sample, trials scored by
the proxy; ``_objective`` scores and records a batch of trials, ``_trials`` is the loop that takes
trial slots and runs them, ``_correlation`` follows the correlation with the reference),
:func:`run_workers` (``_workers``: local worker processes on one study).

Example:
    >>> from nas_proxy import load_preset
    >>> from nas_proxy.study import select_archs
    >>> preset = load_preset("quickstart")
    >>> archs = select_archs(3, preset.space(), preset.reference)  # the seeded sample `--archs 3` names
    >>> len(archs), all(arch in preset.space() for arch in archs)
    (3, True)
"""

from __future__ import annotations

from nas_proxy.study._search import run_search
from nas_proxy.study._study import enqueue_archs, load_study, open_study, select_archs
from nas_proxy.study._workers import run_workers

__all__ = [
    "enqueue_archs",
    "load_study",
    "open_study",
    "run_search",
    "run_workers",
    "select_archs",
]
