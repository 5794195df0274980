"""The figures the tool draws: a study's scatter, a comparison's panels, the frontier. They need matplotlib (the
``plot`` extra) and are skipped without it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd

from nas_proxy._io import atomic_write
from nas_proxy.config import TRAINED_PROXIES
from nas_proxy.reference import Agreement
from nas_proxy.reference._agreement import MIN_PAIRS
from nas_proxy.results._format import CEILING, pct, plural
from nas_proxy.results._summary import Summary


def pyplot() -> Any | None:
    """matplotlib.pyplot on the file-only Agg backend, or None without matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(figure: Any, path: Path) -> Path:
    """Lay out ``figure``, write it as a PNG atomically, and free it."""
    plt = pyplot()
    assert plt is not None  # a figure was made, so matplotlib is there
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)
    return path


LABELLED = 5  # the scatter names the reference's top this many and the proxy's (at most twice as many names)

TIES_LISTED = 4  # groups of equal proxy scores the scatter's note lists before "and k more"


def scatter_figure(ranking: pd.DataFrame, summary: Summary) -> Any | None:
    """The reference architectures by proxy rank and reference rank: the top ones named, equal proxy scores joined,
    the proxy's pick circled; None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    a, column = summary.agreement, f"reference_{summary.metric}"
    both = ranking.dropna(subset=[column])
    n = len(both)
    # Ranks on both axes, not values: the figure asks whether the two orders agree (what Spearman measures), and
    # values crush most points into a corner (accuracies on a small split bunch within a point or two of the top
    # while a network that fails sits at 10%; zero-cost scores span decades). Ranks spread them evenly. Equal
    # values share the best rank of their group, as in ranking.csv, so a tie lines the architectures up.
    points = both.assign(x=both["proxy_score"].rank(ascending=False, method="min"))
    points["y"] = points[column].rank(ascending=False, method="min")
    figure, axes = plt.subplots(figsize=(8.4, 4.8), dpi=120)
    pad = 0.6
    axes.set_xlim(n + pad, 1 - pad)  # rank 1 on the right and at the top: better is up and to the right
    axes.set_ylim(n + pad, 1 - pad)
    axes.set_xticks(_rank_ticks(n))
    axes.set_yticks(_rank_ticks(n))
    axes.plot([1, n], [1, n], ls="--", lw=0.8, color="grey", label="the same rank on both")
    tied = [group for _, group in points.groupby("proxy_score", sort=False) if len(group) > 1]
    tied.sort(key=lambda group: -group["proxy_score"].iloc[0])
    for group in tied:
        x = group["x"].iloc[0]
        axes.plot([x, x], [group["y"].min(), group["y"].max()], lw=7, color="grey", alpha=0.3, solid_capstyle="round")
    spots = points.groupby(["x", "y"]).size().rename("count").reset_index()
    axes.scatter(spots["x"], spots["y"], s=20 + 12 * (spots["count"] - 1), alpha=0.85, zorder=3)
    for spot in spots[spots["count"] > 1].itertuples():  # architectures with equal ranks on both axes: one marker
        axes.annotate(f"×{spot.count}", (spot.x, spot.y), xytext=(5, -9), textcoords="offset points", fontsize=7)
    picked = points[points["x"] == 1]
    axes.scatter(
        picked["x"],
        picked["y"],
        s=110,
        facecolors="none",
        edgecolors="red",
        zorder=4,
        label=f"the proxy's pick (regret {a.regret:.2f} points)",
    )
    _name_top(axes, points, column, n, pad)
    note = ""
    if tied:
        listed = ", ".join(f"{len(g)} at {g['proxy_score'].iloc[0]:.4g}" for g in tied[:TIES_LISTED])
        more = f" and {plural(len(tied) - TIES_LISTED, 'more group')}" if len(tied) > TIES_LISTED else ""
        note = f"\nties: {sum(map(len, tied))} of the {n} share a proxy score (grey bars): {listed}{more}"
    axes.set_xlabel(f"proxy rank ({summary.proxy} score; 1 = best, equal scores share a rank){note}", fontsize=8)
    axes.set_ylabel(f"reference rank ({summary.metric.replace('_acc', '')} accuracy; 1 = best)", fontsize=8)
    axes.legend(loc="best", fontsize=7)
    axes.set_title(
        f"Spearman {a.statistic('spearman')}, Kendall {a.statistic('kendall')} (n = {a.n})",
        fontsize=10,
    )
    return figure


def _rank_ticks(n: int) -> list[int]:
    """Rank 1 and about 8 round ranks up to ``n``."""
    step = next(step for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, n) if n / step <= 8)
    return sorted({1, *range(step, n + 1, step)})


def _name_top(axes: Any, points: pd.DataFrame, column: str, n: int, pad: float) -> None:
    """Name the reference's top :data:`LABELLED` and the proxy's in a column right of the plot, each joined to its
    point by a line: a column never overlaps, however the points crowd."""
    top = points[(points["x"] <= LABELLED) | (points["y"] <= LABELLED)]
    top = top.assign(first=top[["x", "y"]].min(axis=1)).sort_values(["first", "y", "x"]).head(2 * LABELLED)
    top = top.sort_values(["y", "x"])
    gap = min(0.07, 0.96 / max(len(top), 1))
    # each name at its point's height (axes fraction) when there is room, else just below the one above it
    wanted = [(n + pad - y) / (n - 1 + 2 * pad) for y in top["y"]]
    heights: list[float] = []
    for height in wanted:
        heights.append(min(height, 0.98, heights[-1] - gap) if heights else min(height, 0.98))
    lift = max(0.0, 0.02 - heights[-1]) if heights else 0.0
    for row, height in zip(top.itertuples(), heights):
        axes.annotate(
            f"{row.arch}  {pct(getattr(row, column))}",
            (row.x, row.y),
            xytext=(1.03, height + lift),
            textcoords="axes fraction",
            fontsize=7,
            va="center",
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5, "shrinkA": 0, "shrinkB": 4},
        )


def report_scatter(ranking: pd.DataFrame, summary: Summary, path: Path) -> Path | None:
    """:func:`scatter_figure` written to ``path``; None without matplotlib."""
    figure = scatter_figure(ranking, summary)
    return None if figure is None else save_figure(figure, path)


def comparison_scatter(
    table: pd.DataFrame, scores: pd.DataFrame, reference: pd.Series, metric: str, path: Path
) -> Path | None:
    """A panel per proxy: its score against the reference accuracy, its pick circled; None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    rows = table[table["proxy"] != CEILING]
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    figure, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 3.0 * nrows), dpi=110, squeeze=False)
    for ax, (_, row) in zip(axes.flat, rows.iterrows()):
        both = pd.concat([scores[row["proxy"]], reference], axis=1, join="inner").dropna()
        # a trained proxy read out as an accuracy (not as minus a loss): then both axes are accuracies, in percent
        accuracy = row["proxy"] in TRAINED_PROXIES and bool(both.iloc[:, 0].between(0, 1).all())
        x = both.iloc[:, 0] * (100 if accuracy else 1)
        ax.scatter(x, 100 * both.iloc[:, 1], s=12, alpha=0.8)
        picked = both.iloc[:, 0] == both.iloc[:, 0].max()
        ax.scatter(x[picked], 100 * both.iloc[:, 1][picked], s=50, facecolors="none", edgecolors="red")
        ax.set_title(
            f"{row['proxy']}: ρ {Agreement.from_row(row).statistic('spearman')}, regret {row['regret']:.1f} points "
            f"(n = {row['n']})",
            fontsize=8,
        )
        ax.set_xlabel("validation accuracy (%)" if accuracy else "proxy score", fontsize=8)
        ax.set_ylabel(f"reference {metric.replace('_acc', '')} acc (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(rows) :]:
        ax.axis("off")
    return save_figure(figure, path)


# Why a panel of the frontier can have no point at all: the rules of rank_agreement (Agreement's docstring).
_ABSENT = {
    "spearman": f"it needs at least {MIN_PAIRS} reference architectures",
    "top20_spearman": "it needs at least 40 reference architectures (twice the 20 it ranks)",
}


def frontier_figure(table: pd.DataFrame, title: str) -> Any | None:
    """Cost (log) against Spearman and top-20 Spearman, a marker per family, the Pareto front joined; a panel no
    method has a value for says why instead. None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120, sharex=True)
    for ax, key, label, pareto in (
        (axes[0], "spearman", "Spearman", "pareto"),
        (axes[1], "top20_spearman", "top-20 Spearman", "pareto_top20"),
    ):
        if table[key].isna().all():
            ax.axis("off")
            n = int(table["n"].max()) if len(table) else 0
            note = textwrap.fill(f"no {label}: {_ABSENT[key]}; this table has {n}", 48)
            ax.text(0.5, 0.5, note, ha="center", va="center")
            continue
        for (family, group), marker in zip(table.groupby("family", sort=False), "osD^vP*X"):
            ax.scatter(group["cost"].clip(lower=1e-6), group[key], marker=marker, s=28, alpha=0.85, label=family)
        front = table[table[pareto]].sort_values("cost")
        ax.plot(front["cost"].clip(lower=1e-6), front[key], color="black", lw=0.8, alpha=0.6, label="Pareto front")
        if key == "spearman" and table["needs_reference"].any():  # the front with no reference run, apart
            noref = table[table["pareto_noref"]].sort_values("cost")
            ax.plot(
                noref["cost"].clip(lower=1e-6),
                noref[key],
                color="tab:green",
                lw=1.0,
                ls="--",
                label="front without reference runs",
            )
        ax.set_xscale("log")
        ax.set_xlabel("cost of ranking the whole space (fraction of training it once)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == "spearman":  # one legend: both panels show the same families
            ax.legend(fontsize=7, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure


def frontier_plot(table: pd.DataFrame, path: Path, title: str) -> Path | None:
    """:func:`frontier_figure` written to ``path``; None without matplotlib."""
    figure = frontier_figure(table, title)
    return None if figure is None else save_figure(figure, path)


__all__ = [
    "LABELLED",
    "TIES_LISTED",
    "comparison_scatter",
    "frontier_figure",
    "frontier_plot",
    "pyplot",
    "report_scatter",
    "save_figure",
    "scatter_figure",
]
