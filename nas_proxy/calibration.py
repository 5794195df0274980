"""Calibrate a proxy with the reference the user already trains.

A network trained on a hundred images is biased by architecture: shallow networks move up,
deep, unpooled and batch-norm ones move down (``benchmarks/RESULTS.md``). A :class:`Calibration`
learns that bias from the architectures that have a reference accuracy: a ridge regression
from the architecture's factors (depth, log2 width, one-hot activation, norm and pooling) and
the proxies' scores to the reference accuracy's rank quantile (0 the worst, 1 the best; ranks,
so the networks stuck at chance do not dominate a squared loss). Its prediction for one
architecture needs only that architecture's scores, so a study can search with it.

Nothing is scored on the data it was fitted on: :meth:`Calibration.predict` returns the
leave-one-out prediction for an architecture of the fit, and :meth:`Calibration.cross_validated`
gives those for all of them; the ridge penalty is chosen by leave-one-out inside each fit.

Example:
    >>> import pandas as pd
    >>> from nas_proxy import Calibration, load_search_space
    >>> space = load_search_space("small")
    >>> archs = [a.id for a in space.archs()[:12]]
    >>> reference = pd.Series([0.5 + 0.03 * i for i in range(12)], index=archs)
    >>> scores = pd.DataFrame({"naswot": [float(i % 5) for i in range(12)]}, index=archs)
    >>> calibration = Calibration.fit(scores, reference, space)
    >>> calibration.features, len(calibration.cross_validated())
    (('naswot',), 12)
    >>> new = space.archs()[20].id  # not in the fit: predicted from its score
    >>> isinstance(calibration.predict(new, {"naswot": 3.0}), float)
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nas_proxy.errors import NasProxyError
from nas_proxy.space import ArchSpec, SearchSpace

ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # ridge penalties on standardised inputs, chosen by leave-one-out
ACCURACY_FEATURES = ("dm", "random", "early")  # accuracies enter as they are; other scores as signed log


def factors(archs: Sequence[ArchSpec | str], space: SearchSpace) -> pd.DataFrame:
    """The architecture's factors, one row per architecture: depth, log2 width, one-hot choices of the space."""
    parsed = [a if isinstance(a, ArchSpec) else ArchSpec.parse(a) for a in archs]
    choices = space.choices()
    columns: dict[str, list[float]] = {"depth": [a.depth for a in parsed],
                                       "log2_width": [math.log2(a.width) for a in parsed]}
    for axis in ("activation", "norm", "pooling"):
        for value in choices[axis]:
            columns[f"{axis}={value}"] = [float(getattr(a, axis) == value) for a in parsed]
    return pd.DataFrame(columns, index=[a.id for a in parsed])


def feature_value(proxy: str, score: float) -> float:
    """A proxy's score as a regression input: accuracies as they are, other scores (spanning decades) as signed log."""
    if proxy in ACCURACY_FEATURES:
        return float(score)
    return float(np.sign(score) * np.log1p(abs(score)))


def rank_quantile(values: pd.Series) -> pd.Series:
    """Each value's rank among ``values`` scaled to [0, 1] (ties share their mean rank)."""
    ranks = stats.rankdata(values.to_numpy(), method="average")
    return pd.Series((ranks - 1) / max(1, len(values) - 1), index=values.index)


def _standardise(x: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``new`` scaled by ``x``'s column means and spreads (a constant column stays as it is)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (x - mean) / scale, (new - mean) / scale


def _loo_error(z: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Mean squared leave-one-out error of a ridge fit on standardised ``z``, in closed form (no refits)."""
    inverse = np.linalg.inv(z.T @ z + alpha * np.eye(z.shape[1]))
    hat = np.einsum("ij,jk,ik->i", z, inverse, z) + 1 / len(y)  # + 1/n: the fitted intercept
    residual = y - (z @ (inverse @ (z.T @ (y - y.mean()))) + y.mean())
    return float(np.mean((residual / np.clip(1 - hat, 1e-6, None)) ** 2))


def _fit_predict(x: np.ndarray, accuracy: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Fit a ridge on (x, rank quantile of ``accuracy``) and predict ``new``; the penalty is chosen by
    leave-one-out, the intercept is not penalised. Ranked here, among the fit's rows only, so a held-out
    architecture's accuracy cannot move the others' targets."""
    y = rank_quantile(pd.Series(accuracy)).to_numpy()
    z, new = _standardise(x, new)
    alpha = min(ALPHAS, key=lambda a: _loo_error(z, y, a))
    weights = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return new @ weights + y.mean()


MIN_FIT = 8  # fewer reference architectures than this cannot fit the factors


@dataclass(frozen=True)
class Calibration:
    """A ridge correction of proxy scores, fitted on the architectures of a reference table.

    It keeps its own data (``archs``, their ``scores`` per feature proxy and their ``reference``
    accuracy), so it can be stored on a study (:meth:`to_dict`) and rebuilt by any worker.
    """

    features: tuple[str, ...]
    archs: tuple[str, ...]
    scores: tuple[tuple[float, ...], ...]  # per architecture, one raw score per feature proxy
    reference: tuple[float, ...]
    space: SearchSpace

    @classmethod
    def fit(cls, scores: pd.DataFrame, reference: pd.Series, space: SearchSpace) -> Calibration:
        """Fit on every architecture that has both a score for each column of ``scores`` and a reference accuracy."""
        both = scores.join(reference.rename("__reference__"), how="inner").dropna()
        if len(both) < MIN_FIT:
            raise NasProxyError(f"calibration needs at least {MIN_FIT} reference architectures with scores, got "
                                f"{len(both)}; train more with `nas-proxy reference PRESET --archs 20` or import a "
                                f"table with --import")
        both = both.sort_index()
        return cls(tuple(scores.columns), tuple(both.index),
                   tuple(tuple(float(v) for v in row) for row in both[list(scores.columns)].to_numpy()),
                   tuple(float(v) for v in both["__reference__"]), space)

    def _values(self, scores: Sequence[Sequence[float]]) -> np.ndarray:
        """Raw scores (a row per architecture) as regression inputs, by :func:`feature_value`."""
        return np.array([[feature_value(name, s) for name, s in zip(self.features, row)] for row in scores],
                        dtype=float).reshape(len(scores), len(self.features))

    def _transformed(self, scores: Sequence[Sequence[float]]) -> np.ndarray:
        """Feature values as inputs; -inf (naswot of a network that maps images alike) and NaN are clipped to
        the fit's range, so one degenerate score cannot dominate a linear model."""
        values = self._values(scores)
        low, high, middle = self._bounds
        return np.where(np.isnan(values), middle, np.clip(values, low, high))

    @functools.cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fit = self._values(self.scores)
        finite = np.where(np.isfinite(fit), fit, np.nan)
        with np.errstate(all="ignore"):
            low, high, middle = np.nanmin(finite, 0), np.nanmax(finite, 0), np.nanmedian(finite, 0)
        return np.nan_to_num(low), np.nan_to_num(high), np.nan_to_num(middle)

    def _inputs(self, archs: Sequence[str], scores: Sequence[Sequence[float]]) -> np.ndarray:
        return np.column_stack([factors(archs, self.space).to_numpy(), self._transformed(scores)])

    @functools.cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        """Inputs of the fit's architectures and their raw reference accuracies (ranked per fit, see _fit_predict)."""
        return self._inputs(self.archs, self.scores), np.array(self.reference, dtype=float)

    def cross_validated(self) -> pd.Series:
        """Leave-one-out predictions for the architectures of the fit (each from a fit without it)."""
        return self._cross_validated

    @functools.cached_property
    def _cross_validated(self) -> pd.Series:
        x, y = self._data
        keep = np.ones(len(y), dtype=bool)
        predictions = []
        for i in range(len(y)):
            keep[i] = False
            predictions.append(float(_fit_predict(x[keep], y[keep], x[i:i + 1])[0]))
            keep[i] = True
        return pd.Series(predictions, index=list(self.archs), name="calibrated")

    def predict(self, arch: ArchSpec | str, scores: Mapping[str, float]) -> float:
        """The predicted reference rank quantile of ``arch`` from its feature ``scores`` (higher is better).

        An architecture of the fit gets its leave-one-out prediction, never the in-sample one.
        """
        arch_id = arch.id if isinstance(arch, ArchSpec) else arch
        if arch_id in self.archs:
            return float(self.cross_validated()[arch_id])
        missing = [name for name in self.features if name not in scores]
        if missing:
            raise NasProxyError(f"calibration needs the {missing[0]!r} score of {arch_id}")
        x, y = self._data
        return float(_fit_predict(x, y, self._inputs([arch_id], [[scores[name] for name in self.features]]))[0])

    def factors_only(self) -> Calibration:
        """The same fit without scores: the baseline a calibration must beat to be worth its data."""
        return Calibration((), self.archs, tuple(() for _ in self.archs), self.reference, self.space)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a study's user attributes); :meth:`from_dict` rebuilds it."""
        return {"features": list(self.features), "archs": list(self.archs), "scores": [list(s) for s in self.scores],
                "reference": list(self.reference), "space": self.space.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: SearchSpace) -> Calibration:
        return cls(tuple(data["features"]), tuple(data["archs"]), tuple(tuple(s) for s in data["scores"]),
                   tuple(data["reference"]), space)


__all__ = ["Calibration", "MIN_FIT", "factors", "feature_value", "rank_quantile"]
