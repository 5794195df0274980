"""Calibrate a proxy with the reference the user already trains, and estimate it honestly.

A network trained on a hundred images is biased by architecture: shallow networks move up,
deep, unpooled and batch-norm ones move down (``benchmarks/RESULTS.md``). A :class:`Calibration`
learns that bias from the architectures that have a reference accuracy: a ridge regression
(scikit-learn's ``RidgeCV`` on standardised inputs) from the architecture's factors (depth,
log2 width, one-hot activation, norm and pooling) and the proxies' scores to the reference
accuracy's rank quantile (0 the worst, 1 the best; ranks, so the networks stuck at chance do
not dominate a squared loss). Its prediction for one architecture needs only that
architecture's scores, so a study can search with it.

Every choice a fit makes by looking at reference rows is made inside it: which of the candidate
``features`` to use (every subset is tried, the factors alone included) and the ridge penalty,
both by the fit rows' leave-one-out error. So an architecture left out of a fit influenced none
of its choices, and the resampled figures are honest:

- :meth:`Calibration.predict` returns the leave-one-out prediction for an architecture of the
  fit (:meth:`Calibration.cross_validated` gives them all);
- :func:`honest_estimate` repeats k-fold cross-validation around the whole fit (nested: the
  choices are made again in every training fold), for one fidelity or a multi-fidelity ranking
  whose promoted fraction is ranked by a second calibration. It is what the tool prints.

Example:
    >>> import pandas as pd
    >>> from nas_proxy.scoring import Calibration
    >>> from nas_proxy import load_search_space
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
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nas_proxy.config import TRAINED_PROXIES
from nas_proxy.errors import NasProxyError
from nas_proxy.reference import Agreement, rank_agreement
from nas_proxy.reference._agreement import ESTIMATED
from nas_proxy.space import ArchSpec, SearchSpace

ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # ridge penalties on standardised inputs, chosen by leave-one-out
MAX_FEATURES = 6  # candidate features of one fit: every subset is tried (2^6 = 64 ridge fits)


def factors(archs: Sequence[ArchSpec | str], space: SearchSpace) -> pd.DataFrame:
    """The architecture's factors, one row per architecture: depth, log2 width, one-hot choices of the space."""
    parsed = [a if isinstance(a, ArchSpec) else ArchSpec.parse(a) for a in archs]
    choices = space.choices()
    columns: dict[str, list[float]] = {
        "depth": [a.depth for a in parsed],
        "log2_width": [math.log2(a.width) for a in parsed],
    }
    for axis in ("activation", "norm", "pooling"):
        for value in choices[axis]:
            columns[f"{axis}={value}"] = [float(getattr(a, axis) == value) for a in parsed]
    return pd.DataFrame(columns, index=[a.id for a in parsed])


def feature_value(proxy: str, score: float) -> float:
    """A proxy's score as a regression input: a trained proxy's (an accuracy or minus a loss) as it is, other
    scores (spanning decades) as signed log."""
    if proxy in TRAINED_PROXIES:
        return float(score)
    return float(np.sign(score) * np.log1p(abs(score)))


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[Any, float]:
    """A ridge on standardised ``x`` (penalty chosen by leave-one-out) and its leave-one-out squared error."""
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(x, y)
    return model, -float(model[-1].best_score_)


@dataclass(frozen=True)
class _Fit:
    """One fit's choices: the feature columns it kept (indices into the candidates) and the fitted ridge."""

    kept: tuple[int, ...]
    model: Any

    def predict(self, base: np.ndarray, values: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, self.model.predict(np.column_stack([base, values[:, list(self.kept)]])))


def _fit(base: np.ndarray, values: np.ndarray, accuracy: np.ndarray) -> _Fit:
    """Choose the candidate feature columns and the penalty by the rows' leave-one-out error, then fit.

    The target is the rank quantile of ``accuracy`` among these rows only, so a held-out
    architecture's accuracy cannot move the others' targets. Ties in the error keep the smaller set.
    """
    y = (stats.rankdata(accuracy, method="average") - 1) / max(1, len(accuracy) - 1)
    best: tuple[float, _Fit] | None = None
    for size in range(values.shape[1] + 1):
        for kept in itertools.combinations(range(values.shape[1]), size):
            model, error = _ridge(np.column_stack([base, values[:, list(kept)]]), y)
            if best is None or error < best[0] - 1e-12:
                best = (error, _Fit(kept, model))
    assert best is not None
    return best[1]


BOOTS = 10  # bootstrap refits that measure a fit's uncertainty (least_certain)
MIN_FIT = 8  # fewer reference architectures than this cannot fit the factors


@dataclass(frozen=True)
class Calibration:
    """A ridge correction of proxy scores, fitted on the architectures of a reference table.

    ``features`` are the candidate proxies; the fit keeps the subset whose leave-one-out error is
    lowest (:attr:`chosen`). It keeps its own data (``archs``, their ``scores`` per candidate and
    their ``reference`` accuracy), so it can be stored on a study (:meth:`to_dict`) and rebuilt,
    choices and all, by any worker.
    """

    features: tuple[str, ...]
    archs: tuple[str, ...]
    scores: tuple[tuple[float, ...], ...]  # per architecture, one raw score per feature proxy
    reference: tuple[float, ...]
    space: SearchSpace

    @classmethod
    def fit(cls, scores: pd.DataFrame, reference: pd.Series, space: SearchSpace) -> Calibration:
        """Fit on every architecture that has both a score for each column of ``scores`` and a reference accuracy."""
        if len(scores.columns) > MAX_FEATURES:
            raise NasProxyError(
                f"a calibration tries every subset of its features, so at most {MAX_FEATURES}; got "
                f"{len(scores.columns)} ({', '.join(scores.columns)}): name fewer in [score].features"
            )
        both = scores.join(reference.rename("__reference__"), how="inner").dropna()
        if len(both) < MIN_FIT:
            raise NasProxyError(
                f"calibration needs at least {MIN_FIT} reference architectures with scores, got "
                f"{len(both)}; train more with `nas-proxy reference PRESET --archs 20` or import a "
                f"table with --import"
            )
        both = both.sort_index()
        return cls(
            tuple(scores.columns),
            tuple(both.index),
            tuple(tuple(float(v) for v in row) for row in both[list(scores.columns)].to_numpy()),
            tuple(float(v) for v in both["__reference__"]),
            space,
        )

    def _values(self, scores: Sequence[Sequence[float]]) -> np.ndarray:
        """Raw scores (a row per architecture) as regression inputs, by :func:`feature_value`."""
        return np.array(
            [[feature_value(name, s) for name, s in zip(self.features, row)] for row in scores], dtype=float
        ).reshape(len(scores), len(self.features))

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

    @functools.cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fit's architectures' factors, feature inputs and raw reference accuracies."""
        return (
            factors(self.archs, self.space).to_numpy(),
            self._transformed(self.scores),
            np.array(self.reference, dtype=float),
        )

    def _fit_rows(self, rows: np.ndarray) -> _Fit:
        base, values, accuracy = self._data
        return _fit(base[rows], values[rows], accuracy[rows])

    @functools.cached_property
    def _whole(self) -> _Fit:
        return self._fit_rows(np.arange(len(self.archs)))

    @property
    def chosen(self) -> tuple[str, ...]:
        """The features the fit on all its architectures kept (a subset of :attr:`features`; empty: factors alone)."""
        return tuple(self.features[i] for i in self._whole.kept)

    def predict_rows(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Predictions for the fit's architectures at positions ``test`` from a fit (choices included) on ``train``."""
        base, values, _ = self._data
        return self._fit_rows(train).predict(base[test], values[test])

    def least_certain(
        self, start: np.ndarray, pool: np.ndarray, n: int, rng: np.random.Generator, boots: int = BOOTS
    ) -> np.ndarray:
        """Grow the fit rows ``start`` to ``n`` from ``pool`` (positions in the fit), each time adding the row whose
        prediction varies most over ``boots`` bootstrap refits (choices included) of the rows chosen so far:
        where the fit is least certain, the next reference run teaches it the most."""
        base, values, _ = self._data
        chosen = list(start)
        while len(chosen) < n:
            left = np.array([i for i in pool if i not in chosen])
            draws = [rng.choice(chosen, len(chosen)) for _ in range(boots)]
            spread = np.std([self._fit_rows(d).predict(base[left], values[left]) for d in draws], axis=0)
            chosen.append(int(left[int(np.argmax(spread))]))
        return np.array(chosen)

    def cross_validated(self) -> pd.Series:
        """Leave-one-out predictions for the architectures of the fit (each from a fit, choices included, without
        it)."""
        return self._cross_validated

    @functools.cached_property
    def _cross_validated(self) -> pd.Series:
        every = np.arange(len(self.archs))
        predictions = [float(self.predict_rows(every[every != i], every[i : i + 1])[0]) for i in every]
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
        base = factors([arch_id], self.space).to_numpy()
        return float(self._whole.predict(base, self._transformed([[scores[name] for name in self.features]]))[0])

    def factors_only(self) -> Calibration:
        """The same fit without scores: the baseline a calibration must beat to be worth its data."""
        return Calibration((), self.archs, tuple(() for _ in self.archs), self.reference, self.space)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a study's user attributes); :meth:`from_dict` rebuilds it."""
        return {
            "features": list(self.features),
            "archs": list(self.archs),
            "scores": [list(s) for s in self.scores],
            "reference": list(self.reference),
            "space": self.space.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: SearchSpace) -> Calibration:
        return cls(
            tuple(data["features"]),
            tuple(data["archs"]),
            tuple(tuple(s) for s in data["scores"]),
            tuple(data["reference"]),
            space,
        )


FOLDS, REPEATS = 5, 20  # the honest estimate: 5-fold cross-validation, repeated with 20 shuffles


FitRows = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def resampled_predictions(
    first: Calibration,
    refined: Calibration | None = None,
    reduction_factor: int = 3,
    *,
    fit_rows: FitRows | None = None,
    folds: int = FOLDS,
    repeats: int = REPEATS,
    seed: int = 0,
) -> list[pd.Series]:
    """Out-of-fold predictions of every architecture of ``first``'s fit, one series per repetition of k-fold.

    Each fold's predictions come from fits (feature choice and penalty included) on the other folds
    only, or on the rows ``fit_rows(training rows, generator)`` picks of them (a fit on fewer
    reference architectures). With ``refined`` (the same architectures, more features), the ranking
    is the multi-fidelity one a study builds: the best ``1/reduction_factor`` by ``first``'s
    out-of-fold prediction take ``refined``'s, the others keep their own.
    """
    if refined is not None and refined.archs != first.archs:
        raise NasProxyError(
            "the two fidelities' calibrations are fitted on different reference architectures; "
            "score every reference architecture with both"
        )
    n = len(first.archs)
    folds = min(folds, n)
    out = []
    for repeat in range(repeats):
        cheap, better = np.empty(n), np.empty(n)
        rng = np.random.default_rng([seed, repeat])
        for train, test in KFold(folds, shuffle=True, random_state=seed + repeat).split(np.arange(n)):
            rows = train if fit_rows is None else fit_rows(train, rng)
            cheap[test] = first.predict_rows(rows, test)
            if refined is not None:
                better[test] = refined.predict_rows(rows, test)
        if refined is not None:
            promoted = np.argsort(-cheap, kind="stable")[: math.ceil(n / reduction_factor)]
            cheap[promoted] = better[promoted]
        out.append(pd.Series(cheap, index=list(first.archs)))
    return out


def _fisher(r: float) -> float:
    """Fisher's z of a correlation (finite at +-1)."""
    return float(np.arctanh(np.clip(r, -0.9999, 0.9999)))


def resampled_agreement(
    predictions: Sequence[pd.Series], reference: pd.Series, *, n_boot: int = 1000, seed: int = 0
) -> Agreement:
    """:func:`~nas_proxy.reference.rank_agreement`'s figures for resampled predictions (one series per repetition): each
    figure of :data:`~nas_proxy.reference._agreement.ESTIMATED` the mean over repetitions. ``spearman_low``/``_high`` is
    a 95% forecast of the Spearman on a new draw of as many architectures: the bootstrap over architectures (pooled over
    the repetitions) measures how far this estimate may be from the space-wide Spearman, and the new draw's own figure
    strays from it as far again, independently, so the bootstrap's deviations widen by sqrt(2) on Fisher's z scale. (The
    bootstrap alone covered a new half of the shared table 81-87% of the time: benchmarks/optimism.py.) ``spread`` is
    the range of the middle 90% of repetitions (the uncertainty of the partition alone)."""
    each = [rank_agreement(p, reference, n_boot=0).row() for p in predictions]
    per = pd.DataFrame(each)
    means: dict[str, float] = {}
    spread: dict[str, tuple[float, ...]] = {}
    for key in ESTIMATED:
        values = per[key].astype(float)
        known = values.notna().any()
        means[key] = float(values.mean()) if known else math.nan
        spread[key] = tuple(float(v) for v in np.nanpercentile(values, [5, 95])) if known else (math.nan, math.nan)
    boots = []
    rng = np.random.default_rng(seed)
    per_repeat = max(1, n_boot // len(predictions)) if n_boot else 0
    for p in predictions:
        both = pd.concat([p.rename("p"), reference.rename("r")], axis=1, join="inner").dropna().to_numpy()
        for _ in range(per_repeat):
            pick = both[rng.integers(0, len(both), len(both))]
            if np.ptp(pick[:, 0]) > 0 and np.ptp(pick[:, 1]) > 0:
                boots.append(stats.spearmanr(pick[:, 0], pick[:, 1]).statistic)
    low, high = np.nanpercentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan)
    if boots and math.isfinite(means["spearman"]):
        centre = _fisher(means["spearman"])
        low, high = (float(np.tanh(centre + math.sqrt(2) * (_fisher(b) - centre))) for b in (low, high))
    # the flat row Agreement.row() writes for a resampled estimate, read back by the one mapping of its keys
    row: dict[str, Any] = {"n": int(per["n"].iloc[0]), "repeats": len(predictions), **means}
    row.update({f"{key}_spread": spread[key] for key in ESTIMATED})
    row.update(spearman_low=float(low), spearman_high=float(high))
    row.update({key: each[0][key] for key in ("best_arch", "best_reference", "ties")})
    return Agreement.from_row(row)


def honest_estimate(
    first: Calibration,
    refined: Calibration | None = None,
    reduction_factor: int = 3,
    reference: pd.Series | None = None,
    *,
    folds: int = FOLDS,
    repeats: int = REPEATS,
    n_boot: int = 1000,
    seed: int = 0,
) -> Agreement:
    """How the calibrated ranking ranks architectures none of its choices saw: repeated, nested k-fold.

    ``reference`` is what it is scored against (default: what the fit learnt from; pass the mean over
    every seed when the fit used fewer). See :func:`resampled_predictions` and :func:`resampled_agreement`.
    """
    against = reference if reference is not None else pd.Series(first.reference, index=list(first.archs))
    return resampled_agreement(
        resampled_predictions(first, refined, reduction_factor, folds=folds, repeats=repeats, seed=seed),
        against,
        n_boot=n_boot,
        seed=seed,
    )


__all__ = [
    "Calibration",
    "FOLDS",
    "MIN_FIT",
    "REPEATS",
    "factors",
    "feature_value",
    "honest_estimate",
    "resampled_agreement",
    "resampled_predictions",
]
