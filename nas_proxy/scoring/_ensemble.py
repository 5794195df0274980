"""Combine several proxies with no reference: each member's score as a quantile among a fixed anchor sample.

Cheap scores err in different directions: a short training run rewards networks that learn fast (shallow,
unnormalised), a score at initialisation rewards wide ones, whatever they end at. Their mean rank cancels part of
both biases, and needs no reference run (``benchmarks/RESULTS.md``). A study scores one architecture at a
time, so a rank among the trials scored so far would change under it; an :class:`Anchor` fixes the scale instead:
the members' scores on a sample of the space, scored once when the study starts and recorded on it, and each new
score is read as its quantile among the anchor's (mid-ranks, linear between anchor values, hyperbolic tails
beyond them, so no two different scores tie at 0 or 1). With the anchor equal to the architectures
ranked, the ensemble's ranking is their mean rank.

Example:
    >>> import pandas as pd
    >>> from nas_proxy.scoring import Anchor
    >>> scores = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [5.0, 4.0, 3.0, 2.0, 1.0]}, index=list("vwxyz"))
    >>> anchor = Anchor.of(scores)
    >>> [round(float(q), 3) for q in anchor.quantiles("a", [3.0, 3.5, 5.0, 6.0])]
    [0.5, 0.6, 0.9, 0.956]
    >>> float(anchor.combine({"a": [3.0], "b": [3.0]})[0])
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from nas_proxy.errors import NasProxyError

MIN_ANCHOR = 5  # fewer anchor architectures than this leave a member's scale to chance


@dataclass(frozen=True)
class Anchor:
    """The ensemble's members (``features``) scored on the anchor architectures ``archs`` (a row per architecture,
    a raw score per member); stored on a study (:meth:`to_dict`) so every worker reads scores on one scale."""

    features: tuple[str, ...]
    archs: tuple[str, ...]
    scores: tuple[tuple[float, ...], ...]

    @classmethod
    def of(cls, scores: pd.DataFrame) -> Anchor:
        """The anchor of ``scores``' rows (architectures) and columns (members)."""
        if len(scores) < MIN_ANCHOR:
            raise NasProxyError(
                f"an ensemble's anchor needs at least {MIN_ANCHOR} architectures, got {len(scores)}; "
                f"raise [score].anchor"
            )
        scores = scores.sort_index()
        return cls(
            tuple(scores.columns),
            tuple(scores.index),
            tuple(tuple(float(v) for v in row) for row in scores.to_numpy()),
        )

    def quantiles(self, feature: str, values: Sequence[float]) -> np.ndarray:
        """Where each of ``values`` of member ``feature`` falls among the anchor's (0 below all, 1 above all): the
        mid-rank ECDF, linear between the anchor's distinct values and approaching 0 and 1 hyperbolically beyond them,
        with the anchor's mean spacing as scale. A NaN (a score that could not be measured) reads as 0."""
        column = np.array([row[self.features.index(feature)] for row in self.scores], dtype=float)
        anchor = np.where(np.isnan(column), -np.inf, column)
        x = np.where(np.isnan(np.asarray(values, dtype=float)), -np.inf, np.asarray(values, dtype=float))
        below = (anchor[None, :] < x[:, None]).sum(1)
        equal = (anchor[None, :] == x[:, None]).sum(1)
        out: np.ndarray = (below + 0.5 * equal) / len(anchor)  # the mid-rank ECDF, exact at the anchor's values
        finite = np.unique(anchor[np.isfinite(anchor)])
        if len(finite) == 0:
            return out
        level = np.array([((anchor < u).sum() + 0.5 * (anchor == u).sum()) / len(anchor) for u in finite])
        scale = (finite[-1] - finite[0]) / len(finite) if len(finite) > 1 else 1.0
        scale = scale if scale > 0 and math.isfinite(scale) else 1.0
        inside = np.isfinite(x) & (x >= finite[0]) & (x <= finite[-1])
        out = np.where(inside, np.interp(x, finite, level), out)
        # hyperbolic tails: a score far beyond the anchor (zero-cost scores span decades) still ranks above a nearer one
        with np.errstate(over="ignore", invalid="ignore"):
            above = np.isfinite(x) & (x > finite[-1])
            out = np.where(above, 1 - (1 - level[-1]) / (1 + (x - finite[-1]) / scale), out)
            under = np.isfinite(x) & (x < finite[0])
            floor = (anchor < finite[0]).sum() / len(anchor)  # the -inf anchors lie below every finite score
            out = np.where(under, floor + (level[0] - floor) / (1 + (finite[0] - x) / scale), out)
        return out

    def combine(self, scores: Mapping[str, Sequence[float]]) -> np.ndarray:
        """The ensemble's score of architectures whose members' raw ``scores`` are given (one sequence per member):
        the mean of their quantiles."""
        missing = [f for f in self.features if f not in scores]
        if missing:
            raise NasProxyError(f"the ensemble needs the {missing[0]!r} score")
        return cast(np.ndarray, np.mean([self.quantiles(f, scores[f]) for f in self.features], axis=0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a study's user attributes); :meth:`from_dict` rebuilds it."""
        return {"features": list(self.features), "archs": list(self.archs), "scores": [list(s) for s in self.scores]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anchor:
        return cls(tuple(data["features"]), tuple(data["archs"]), tuple(tuple(s) for s in data["scores"]))


__all__ = ["Anchor", "MIN_ANCHOR"]
