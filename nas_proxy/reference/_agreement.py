"""How faithful a proxy ranking is: rank correlations with intervals, top-k agreement, regret.

Example:
    >>> import pandas as pd
    >>> from nas_proxy import rank_agreement
    >>> proxy = pd.Series([0.1, 0.4, 0.3, 0.9, 0.5], index=list("abcde"))
    >>> reference = pd.Series([0.2, 0.5, 0.4, 0.8, 0.3], index=list("abcde"))
    >>> agreement = rank_agreement(proxy, reference, n_boot=200)
    >>> agreement.n, round(agreement.spearman, 2), agreement.top1_arch
    (5, 0.7, 'd')
    >>> agreement.statistic("kendall"), agreement.row()["regret"]
    ('+0.600', 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats

from nas_proxy.space import AXES, ArchSpec

TOP_K = (5, 10, 20)
N_BOOT = 1000  # bootstrap resamples behind every 95% interval
MIN_PAIRS = 5  # below this many (proxy, reference) pairs a rank correlation says nothing: reported as too few

_Statistic = Callable[[np.ndarray, np.ndarray], Any]  # scipy.stats.spearmanr or kendalltau: a result with .statistic


def _interval(x: np.ndarray, y: np.ndarray, statistic: _Statistic, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95% interval over resampled (proxy, reference) pairs.

    Written out rather than ``scipy.stats.bootstrap``: a resample whose scores all tie has no
    correlation (NaN), and scipy then returns a NaN interval; here those resamples are dropped.
    """
    if len(x) < 4 or n_boot < 1:
        return math.nan, math.nan
    rows = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    values = np.array([_corr(statistic, x[r], y[r]) for r in rows])
    if np.isnan(values).all():
        return math.nan, math.nan
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def _corr(statistic: _Statistic, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(statistic(x, y).statistic)


NAN = math.nan
CORRELATIONS = ("spearman", "kendall")
# What a resampled estimate (Agreement.repeats set) averages over its repetitions, in the order of its table row.
ESTIMATED = ("spearman", "kendall", "top10_spearman", "top20_spearman", "precision10", "regret")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Agreement:
    """How a ranking agrees with the reference: what :func:`rank_agreement` measures, or the mean of it over
    resampled rankings (``repeats`` set, see :func:`nas_proxy.scoring._calibration.resampled_agreement`).

    - ``n``: the architectures both have;
    - ``spearman`` and ``kendall`` (signed) with bootstrap 95% intervals (``*_low``, ``*_high``), NaN below
      :data:`MIN_PAIRS` pairs;
    - ``top_spearman[k]`` among the ``k`` best architectures by reference, NaN unless ``n >= 2k`` (among all
      of them it is the plain Spearman again); ``precision[k]``: the share of the proxy's top ``k`` among
      the reference's top ``k``, NaN unless ``n >= 4k`` (with ``k`` near ``n`` it is near 1 whatever the
      proxy), beside :meth:`chance`;
    - ``ties``: paired architectures whose proxy score equals another's; ``top1_ties``: how many share the
      proxy's best score. ``top1_arch`` is the first of them by id, ``top1_reference`` their mean reference
      accuracy (the expected pick when ties are broken at random), and ``regret`` its distance in percentage
      points to ``best_reference``, the best accuracy of the whole table (``best_arch``);
    - a resampled estimate: ``repeats`` and, per figure of :data:`ESTIMATED`, ``spread``: the range of the
      middle 90% of repetitions.

    :meth:`row` is the flat form of tables and ``summary.json`` (``top20_spearman``, ``precision10``, ...);
    :meth:`from_row` reads it back.
    """

    n: int
    spearman: float = NAN
    spearman_low: float = NAN
    spearman_high: float = NAN
    kendall: float = NAN
    kendall_low: float = NAN
    kendall_high: float = NAN
    top_spearman: Mapping[int, float] = field(default_factory=dict)
    precision: Mapping[int, float] = field(default_factory=dict)
    ties: int = 0
    top1_arch: str | None = None
    top1_ties: int = 0
    top1_reference: float = NAN
    best_arch: str | None = None
    best_reference: float = NAN
    regret: float = NAN
    repeats: int | None = None
    spread: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def chance(self, k: int) -> float:
        """What a random ranking's precision@k is on average: ``k / n``; NaN where precision@k is not shown."""
        return k / self.n if self.n >= 4 * k else NAN

    def statistic(self, name: str) -> str:
        """``spearman`` or ``kendall`` as the tool prints it, or why it is absent."""
        if self.n < MIN_PAIRS:
            return f"too few (n < {MIN_PAIRS})"
        value = getattr(self, name)
        return "n/a (no spread)" if math.isnan(value) else f"{value:+.3f}"

    def interval(self, name: str) -> str:
        """The bootstrap 95% interval of ``spearman`` or ``kendall``; "" when there is none."""
        low, high = getattr(self, f"{name}_low"), getattr(self, f"{name}_high")
        return "" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"

    def precision_text(self, k: int) -> str:
        """precision@k beside what a random ranking scores on average; "" where k is not small against n."""
        value = self.precision.get(k, NAN)
        return "" if math.isnan(value) else f"{value:.2f} (chance {self.chance(k):.2f})"

    def correlation_line(self) -> str:
        """Spearman and Kendall with their intervals (if computed) and n, or why there are none."""
        if self.n < MIN_PAIRS:
            return f"{self.n} of the reference architectures scored: too few for a correlation (n < {MIN_PAIRS})"
        spearman, kendall = (f"{self.statistic(key)} {self.interval(key)}".rstrip() for key in CORRELATIONS)
        return f"Spearman {spearman}, Kendall {kendall} against the full-data reference (n = {self.n})"

    def row(self) -> dict[str, Any]:
        """The figures as one flat table row, keys in the order the tool's CSV and JSON files have them."""
        if self.repeats is not None:
            out: dict[str, Any] = {"n": self.n, "repeats": self.repeats}
            for key in ESTIMATED:
                out[key] = self._flat(key)
                out[f"{key}_spread"] = self.spread.get(key, (NAN, NAN))
            out.update(
                spearman_low=self.spearman_low,
                spearman_high=self.spearman_high,
                kendall_low=self.kendall_low,
                kendall_high=self.kendall_high,
                best_arch=self.best_arch,
                best_reference=self.best_reference,
                ties=self.ties,
            )
            return out
        out = {"n": self.n, "ties": self.ties}
        for name in CORRELATIONS:
            out.update({name: getattr(self, name), f"{name}_low": getattr(self, f"{name}_low")})
            out[f"{name}_high"] = getattr(self, f"{name}_high")
        for k in self.top_spearman:
            out.update({f"top{k}_spearman": self.top_spearman[k], f"precision{k}": self.precision[k]})
            out[f"chance{k}"] = self.chance(k)
        for key in ("top1_arch", "top1_ties", "top1_reference", "best_arch", "best_reference", "regret"):
            out[key] = getattr(self, key)
        return out

    def _flat(self, key: str) -> float:
        if key.startswith("top") and key.endswith("_spearman"):
            return self.top_spearman.get(int(key[3 : -len("_spearman")]), NAN)
        if key.startswith("precision"):
            return self.precision.get(int(key[len("precision") :]), NAN)
        return cast(float, getattr(self, key))

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | pd.Series) -> Agreement:
        """The figures of one table row written by :meth:`row` (a ``pandas`` row reads as well)."""
        keys = set(row.keys())
        scalars = {
            name: row[name]
            for name in ("spearman", "spearman_low", "spearman_high", "kendall", "kendall_low", "kendall_high")
            + ("top1_reference", "best_reference", "regret")
            if name in keys
        }
        labels: dict[str, Any] = {
            name: None if _missing(row[name]) else row[name] for name in ("top1_arch", "best_arch") if name in keys
        }
        repeats = row["repeats"] if "repeats" in keys and not _missing(row["repeats"]) else None
        return cls(
            n=int(row["n"]),
            **cast(dict[str, Any], {k: float(v) for k, v in scalars.items()}),  # mypy: not passed to the str fields
            **labels,
            top_spearman={k: float(row[f"top{k}_spearman"]) for k in TOP_K if f"top{k}_spearman" in keys},
            precision={k: float(row[f"precision{k}"]) for k in TOP_K if f"precision{k}" in keys},
            ties=int(row.get("ties", 0)),
            top1_ties=int(row["top1_ties"]) if "top1_ties" in keys and not _missing(row["top1_ties"]) else 0,
            repeats=None if repeats is None else int(repeats),
            spread={k: row[f"{k}_spread"] for k in ESTIMATED if repeats is not None and f"{k}_spread" in keys},
        )


def rank_agreement(
    proxy: pd.Series, reference: pd.Series, *, top_k: tuple[int, ...] = TOP_K, n_boot: int = N_BOOT, seed: int = 0
) -> Agreement:
    """Compare a proxy's scores with reference accuracies over the architectures both have (:class:`Agreement`).

    ``reference`` is the whole reference table (one accuracy per architecture), so regret is measured
    against its best architecture even when the proxy has not scored it.
    """
    both = pd.concat([proxy.rename("proxy"), reference.rename("reference")], axis=1, join="inner").dropna()
    x, y = both["proxy"].to_numpy(float), both["reference"].to_numpy(float)
    n = len(both)
    enough = n >= MIN_PAIRS
    figures: dict[str, Any] = {}
    for name, statistic in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        figures[name] = _corr(statistic, x, y) if enough else NAN
        figures[f"{name}_low"], figures[f"{name}_high"] = (
            _interval(x, y, statistic, n_boot, seed) if enough else (NAN, NAN)
        )
    best_first = both.sort_values("reference", ascending=False)
    top_spearman, precision = {}, {}
    for k in top_k:
        top = best_first.head(k)
        top_spearman[k] = (
            _corr(stats.spearmanr, top["proxy"].to_numpy(float), top["reference"].to_numpy(float))
            if n >= 2 * k
            else NAN
        )
        picked = both.sort_values("proxy", ascending=False, kind="stable").head(k).index
        precision[k] = len(set(picked) & set(top.index)) / k if n >= 4 * k else NAN
    if n:
        whole = reference.dropna()
        tied = both[both["proxy"] == both["proxy"].max()].sort_index()
        top1_reference, best_reference = float(tied["reference"].mean()), float(whole.max())
        figures.update(
            top1_arch=tied.index[0],
            top1_ties=len(tied),
            top1_reference=top1_reference,
            best_arch=whole.idxmax(),
            best_reference=best_reference,
            regret=100 * (best_reference - top1_reference),
        )
    return Agreement(
        n=n,
        ties=int(both["proxy"].duplicated(keep=False).sum()),
        top_spearman=top_spearman,
        precision=precision,
        **figures,
    )


def rank_ensemble(members: list[pd.Series]) -> pd.Series:
    """Mean percentile rank of each architecture over ``members`` (score series; those every member scored)."""
    ranks = pd.concat([m.rank(pct=True) for m in members], axis=1, join="inner")
    return ranks.mean(axis=1)


def factor_bias(proxy: pd.Series, reference: pd.Series) -> pd.DataFrame:
    """Which architecture choices a proxy over- or under-rates: one row per (axis, value).

    ``rank_error`` is the mean of (proxy rank - reference rank) over the architectures with that
    choice (rank 1 = worst); positive means the proxy rates them higher than the reference does.
    """
    both = pd.concat([proxy.rename("proxy"), reference.rename("reference")], axis=1, join="inner").dropna()
    error = both["proxy"].rank() - both["reference"].rank()
    archs = [ArchSpec.parse(a) for a in both.index]
    rows = []
    for axis in AXES:
        for value, group in error.groupby([getattr(a, axis) for a in archs]):
            rows.append({"axis": axis, "value": value, "n": len(group), "rank_error": float(group.mean())})
    return pd.DataFrame(rows, columns=["axis", "value", "n", "rank_error"])


__all__ = [
    "Agreement",
    "ESTIMATED",
    "MIN_PAIRS",
    "N_BOOT",
    "TOP_K",
    "factor_bias",
    "rank_agreement",
    "rank_ensemble",
]
