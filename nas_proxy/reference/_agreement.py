"""How faithful a proxy ranking is: rank correlations with intervals, top-k agreement, regret.

Example:
    >>> import pandas as pd
    >>> from nas_proxy import rank_agreement
    >>> proxy = pd.Series([0.1, 0.4, 0.3, 0.9, 0.5], index=list("abcde"))
    >>> reference = pd.Series([0.2, 0.5, 0.4, 0.8, 0.3], index=list("abcde"))
    >>> agreement = rank_agreement(proxy, reference, n_boot=200)
    >>> agreement["n"], round(agreement["spearman"], 2), agreement["top1_arch"]
    (5, 0.7, 'd')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nas_proxy.space import AXES, ArchSpec

TOP_K = (5, 10, 20)
N_BOOT = 1000  # bootstrap resamples behind every 95% interval
MIN_PAIRS = 5  # below this many (proxy, reference) pairs a rank correlation says nothing: reported as too few


def _interval(x: np.ndarray, y: np.ndarray, statistic, n_boot: int, seed: int) -> tuple[float, float]:
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


def _corr(statistic, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(statistic(x, y).statistic)


def rank_agreement(
    proxy: pd.Series, reference: pd.Series, *, top_k: tuple[int, ...] = TOP_K, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Any]:
    """Compare a proxy's scores with reference accuracies over the architectures both have.

    ``reference`` is the whole reference table (one accuracy per architecture), so regret is
    measured against its best architecture even when the proxy has not scored it. Returns:

    - ``n``: the architectures in both;
    - ``spearman`` and ``kendall`` (signed) with bootstrap 95% intervals (``*_low``, ``*_high``),
      NaN below :data:`MIN_PAIRS` pairs;
    - ``top{k}_spearman`` among the ``k`` best architectures by reference, only when ``n >= 2k``
      (among all of them it is the plain Spearman again);
    - ``precision{k}``: the share of the proxy's top ``k`` among the reference's top ``k``, only
      when ``n >= 4k`` (with ``k`` near ``n`` it is near 1 whatever the proxy), beside
      ``chance{k}`` = ``k / n``, what a random ranking scores on average;
    - ``ties``: paired architectures whose proxy score equals another's; ``top1_ties``: how many
      share the proxy's best score. ``top1_arch`` is the first of them by id, ``top1_reference``
      their mean reference accuracy (the expected pick when ties are broken at random), and
      ``regret`` its distance in percentage points to ``best_reference``, the best accuracy of
      the whole table (``best_arch``).
    """
    both = pd.concat([proxy.rename("proxy"), reference.rename("reference")], axis=1, join="inner").dropna()
    x, y = both["proxy"].to_numpy(float), both["reference"].to_numpy(float)
    n = len(both)
    out: dict[str, Any] = {"n": n, "ties": int(both["proxy"].duplicated(keep=False).sum())}
    for name, statistic in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        enough = n >= MIN_PAIRS
        out[name] = _corr(statistic, x, y) if enough else math.nan
        out[f"{name}_low"], out[f"{name}_high"] = (
            _interval(x, y, statistic, n_boot, seed) if enough else (math.nan, math.nan)
        )
    best_first = both.sort_values("reference", ascending=False)
    for k in top_k:
        top = best_first.head(k)
        out[f"top{k}_spearman"] = (
            _corr(stats.spearmanr, top["proxy"].to_numpy(float), top["reference"].to_numpy(float))
            if n >= 2 * k
            else math.nan
        )
        picked = both.sort_values("proxy", ascending=False, kind="stable").head(k).index
        out[f"precision{k}"] = len(set(picked) & set(top.index)) / k if n >= 4 * k else math.nan
        out[f"chance{k}"] = k / n if n >= 4 * k else math.nan
    whole = reference.dropna()
    if n:
        tied = both[both["proxy"] == both["proxy"].max()].sort_index()
        out.update(
            top1_arch=tied.index[0],
            top1_ties=len(tied),
            top1_reference=float(tied["reference"].mean()),
            best_arch=whole.idxmax(),
            best_reference=float(whole.max()),
        )
        out["regret"] = 100 * (out["best_reference"] - out["top1_reference"])
    else:
        out.update(
            top1_arch=None,
            top1_ties=0,
            top1_reference=math.nan,
            best_arch=None,
            best_reference=math.nan,
            regret=math.nan,
        )
    return out


def interval(agreement: dict[str, Any], key: str) -> str:
    """The bootstrap 95% interval of ``key`` in :func:`rank_agreement`'s output; "" when there is none."""
    low, high = agreement[f"{key}_low"], agreement[f"{key}_high"]
    return "" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"


def correlation_line(agreement: dict[str, Any]) -> str:
    """Spearman and Kendall against the reference with their intervals (if computed) and n, or why there are none."""
    n = agreement["n"]
    if n < MIN_PAIRS:
        return f"{n} of the reference architectures scored: too few for a correlation (n < {MIN_PAIRS})"
    spearman, kendall = (
        f"{agreement[key]:+.3f} {interval(agreement, key)}".rstrip() for key in ("spearman", "kendall")
    )
    return f"Spearman {spearman}, Kendall {kendall} against the full-data reference (n = {n})"


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
    "MIN_PAIRS",
    "N_BOOT",
    "TOP_K",
    "correlation_line",
    "interval",
    "factor_bias",
    "rank_agreement",
    "rank_ensemble",
]
