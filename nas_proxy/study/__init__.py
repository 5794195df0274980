"""The Optuna study: open it on its storage, run the search, several workers on one study.

:func:`open_study` / :func:`load_study` (``_study``; storage in ``_storage``: a journal file or a
database), :func:`run_search` (``_search``: condense once, the reference sample, trials scored by
the proxy), :func:`run_workers` (``_workers``: local worker processes on one study).

Example:
    >>> from nas_proxy.study import open_study, run_search
    >>> callable(open_study) and callable(run_search)
    True
"""

from __future__ import annotations

from nas_proxy.study._search import run_search
from nas_proxy.study._study import enqueue_archs, load_study, open_study, proxy_scores, select_archs
from nas_proxy.study._workers import quiet_optuna, run_workers

__all__ = [
    "enqueue_archs",
    "load_study",
    "open_study",
    "proxy_scores",
    "quiet_optuna",
    "run_search",
    "run_workers",
    "select_archs",
]
