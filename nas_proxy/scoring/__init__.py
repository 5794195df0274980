"""Scoring rules: a :class:`Proxy` turns (architecture, seed) into a score where higher predicts better.

A new rule is one :class:`Proxy` subclass (its contract is in its docstring); a new way of reading a trained
network's run is one :class:`~nas_proxy.method.Readout`.

:func:`make_proxy` builds one by name (``dm``, ``subset``, ``short``, ``params``, ``flops``, the
zero-cost ``synflow``, ``naswot``, ``grad_norm``, the fitted ``calibrated`` and ``factors``, and the
reference-free ``ensemble``); :func:`score_archs` caches its scores. :class:`Calibration` maps factors and
scores to the reference rank, with honest (nested, resampled) estimates; an :class:`Anchor` puts several
proxies' scores on one scale with no reference.

Example:
    >>> from nas_proxy import ArchSpec, load_dataset, load_preset
    >>> from nas_proxy.scoring import make_proxy
    >>> params = make_proxy("params", load_preset("quickstart"), load_dataset("digits"))
    >>> small, large = (ArchSpec.parse(f"d2-w{w}-relu-none-avgpool") for w in (32, 64))
    >>> params.score(large, seed=0) > params.score(small, seed=0)
    True
"""

from __future__ import annotations

from nas_proxy.scoring._cache import score_archs
from nas_proxy.scoring._calibration import Calibration, honest_estimate
from nas_proxy.scoring._ensemble import Anchor
from nas_proxy.scoring._make import calibrated_proxy, dm_proxy, ensemble_proxy, make_proxy, short_proxy, subset_proxy
from nas_proxy.scoring._proxies import Measurement, Proxy, TrainedProxy

__all__ = [
    "Anchor",
    "Calibration",
    "Measurement",
    "Proxy",
    "TrainedProxy",
    "honest_estimate",
    "calibrated_proxy",
    "dm_proxy",
    "ensemble_proxy",
    "make_proxy",
    "score_archs",
    "short_proxy",
    "subset_proxy",
]
