"""Every table and figure the tool shows: markdown for reports and comparisons, scatter plots, number formats.

Data flows in as frames and typed results (an :class:`~nas_proxy.reference.Agreement`, a report's
:class:`~nas_proxy.results.Summary`, a comparison's table); nothing here computes a statistic.
Plots need matplotlib (the ``plot`` extra) and are skipped without it.

Example:
    >>> import pandas as pd
    >>> from nas_proxy.results._render import markdown_table
    >>> print(markdown_table(pd.DataFrame({"proxy": ["dm"], "spearman": [0.9123]})))
    | proxy | spearman |
    |---|---|
    | dm | 0.9123 |
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas_proxy._io import atomic_write
from nas_proxy.config import TRAINED_PROXIES
from nas_proxy.reference import MIN_PAIRS, TOP_K, Agreement

if TYPE_CHECKING:  # the report's types; importing them here would be a circle (the report renders with this)
    from nas_proxy.results._report import Calibrated, Summary

CEILING = "reference seed-to-seed"  # the comparison's row for the reference's own seed-to-seed agreement


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def top1(a: Agreement) -> str:
    """The reference accuracy of the proxy's pick; for a tie for the best score, its mean (the expected pick)."""
    if a.top1_ties > 1:
        return f"{a.top1_ties}-way tie: mean {pct(a.top1_reference)}"
    return pct(a.top1_reference)


SHOWN = 3  # the names a tie lists before "and k more"


def names(archs: Sequence[str]) -> str:
    """``archs`` joined; a long list shortened to its first :data:`SHOWN` and how many more."""
    head = ", ".join(archs[:SHOWN])
    return head if len(archs) <= SHOWN else f"{head} and {len(archs) - SHOWN} more"


def best(archs: Sequence[str], at: str) -> str:
    """The architecture with the best value ``at`` (``score 0.9862``, ``99.44%``), or the tie for it:
    ``3 architectures tie at score 0.9862: a, b, c``."""
    if len(archs) == 1:
        return f"{archs[0]} ({at})"
    return f"{len(archs)} architectures tie at {at}: {names(archs)}"


def score(value: float) -> str:
    return f"score {value:.4g}"


def _inline(archs: Sequence[str], at: str) -> str:
    """:func:`best` inside a sentence: a tie in parentheses."""
    return best(archs, at) if len(archs) == 1 else f"({best(archs, at)})"


def study_best(summary: Summary) -> str:
    """The study's best proxy score over every architecture it scored, reference or not: ``best by the proxy: ...``."""
    return f"best by the proxy: {best(summary.study_best_archs, score(summary.study_best_score))}"


def pick_sentence(summary: Summary) -> str:
    """Where the proxy's pick among the reference architectures stands against the reference table's best."""
    s, a = summary, summary.agreement
    among = f"among the {a.n} reference architectures" + (
        f" it scored (of {s.reference_archs})" if a.n < s.reference_archs else ""
    )
    pick = _inline(s.top1_archs, score(s.top1_score))
    if set(s.top1_archs) <= set(s.best_archs):  # not `regret == 0`: a tie's mean can miss the best by a rounding
        return f"{among} the proxy's pick {pick} is the best of the reference table ({pct(a.best_reference)})"
    top = _inline(s.best_archs, pct(a.best_reference))
    mean = " on average" if len(s.top1_archs) > 1 else ""  # ties broken at random: the expected regret
    return f"{among} the proxy's pick {pick} is{mean} {a.regret:.2f} points below the best {top}"


def costs(summary: Summary) -> list[tuple[str, str]]:
    """The cost rows that have a value (never a NaN): per architecture with the proxy's share of the reference's
    as a ratio (what the tool buys), and in total."""
    means = (("proxy", summary.proxy_seconds_mean), ("reference", summary.reference_seconds_mean))
    per_arch = [f"{side} {mean:.1f} s" for side, mean in means if not math.isnan(mean)]
    if not math.isnan(summary.cost_ratio):
        per_arch[-1] += (
            f" (the proxy costs {summary.cost_ratio:.2f} of the reference's on the {summary.cost_ratio_archs} "
            f"architectures both trained)"
        )
    total = [
        f"{label} {value:.0f} s"
        for value, label, always in (
            (summary.setup_seconds, "setup (condensation, fitting)", False),
            (summary.proxy_seconds, "proxy", True),
            (summary.reference_seconds, "reference", False),
        )
        if not math.isnan(value) and (value > 0 or always)
    ]
    rows = [("cost per architecture", ", ".join(per_arch))] if per_arch else []
    return rows + [("cost in total", ", ".join(total))]


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a GitHub markdown table (pandas' own ``to_markdown`` needs the tabulate package)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def report_markdown(
    name: str,
    ranking: pd.DataFrame,
    summary: Summary,
    calibration: pd.DataFrame | None = None,
    bias: pd.DataFrame | None = None,
    rows: int | None = None,
) -> str:
    """The report as markdown: the faithfulness figures, the calibration's, then the ranking (its first ``rows``)."""
    s, a = summary, summary.agreement
    n = a.n
    lines = [
        f"# {name}: proxy ranking vs full-data reference",
        "",
        f"{s.trials_complete} finished trials ({s.trials_running} running, {s.trials_failed} "
        f"failed) scored {s.scored} architectures; the reference table holds {s.reference_archs} "
        f"({s.metric}, {s.reference_protocol}, {plural(s.reference_seeds, 'seed')}); {n} are in "
        f"both.",
        "",
        "| measure | value | 95% interval | n |",
        "|---|---|---|---|",
    ]
    for key, label in (("spearman", "Spearman"), ("kendall", "Kendall")):
        lines.append(f"| {label} | {a.statistic(key)} | {a.interval(key)} | {n} |")
    for k, value in a.top_spearman.items():
        if not math.isnan(value):
            lines.append(f"| Spearman among the reference's top {k} | {value:+.3f} | | {k} |")
    for k in a.precision:
        if a.precision_text(k):
            lines.append(f"| precision@{k} | {a.precision_text(k)} | | {n} |")
    if s.study_best_archs:
        referenced = set(ranking.dropna(subset=[f"reference_{s.metric}"])["arch"])
        missing = not s.reference_imported and not set(s.study_best_archs) <= referenced
        hint = f"; no reference yet: `nas-proxy reference {s.preset} --archs top-{len(s.study_best_archs)}`"
        study = best(s.study_best_archs, score(s.study_best_score)) + (hint if missing else "")
        lines.append(f"| best by the proxy, over all {s.scored} scored | {study} | | {s.scored} |")
    if a.top1_arch is not None:
        mean = " (their mean)" if len(s.top1_archs) > 1 else ""
        lines += [
            f"| the proxy's pick among the {n} reference architectures | {best(s.top1_archs, score(s.top1_score))}; "
            f"reference {pct(a.top1_reference)}{mean} | | {n} |",
            f"| best of the reference table | {best(s.best_archs, pct(a.best_reference))} | | {s.reference_archs} |",
            f"| top-1 regret (the pick below the best) | {a.regret:.2f} points | | |",
        ]
    if a.ties:
        lines.append(f"| ties | {a.ties} of the {n} proxy scores equal another's | | |")
    lines += [f"| {label} | {value} | | |" for label, value in costs(s)] + [""]
    lines += calibration_lines(s.calibrated, calibration, bias)
    lines.append(markdown_table(ranking if rows is None else ranking.head(rows)))
    return "\n".join(lines) + "\n"


def calibration_lines(
    calibrated: Calibrated | None, calibration: pd.DataFrame | None, bias: pd.DataFrame | None
) -> list[str]:
    """For a study ranked by a fitted proxy: how it ranks architectures it was not fitted on, beside the
    factors alone and the reference's own seed-to-seed ceiling."""
    if calibrated is None or calibration is None or calibration.empty:
        return []
    features = calibrated.features or ["none"]
    lines = [
        f"## Calibration: fitted on {calibrated.n} reference architectures "
        f"(candidate features: {', '.join(features)}, with the architecture's factors)",
        "",
        "How each ranking ranks architectures none of its choices saw: 5-fold cross-validation repeated 20 "
        "times, the features and the ridge penalty chosen again inside every training fold (nested). The "
        "interval is a 95% forecast for a new draw of as many architectures (the bootstrap over these "
        "architectures, widened for the new draw's own spread); a choice made by looking at this table, such "
        "as the candidate features, is outside it.",
        "",
        "| ranking | Spearman [95% forecast] | Kendall | top-20 Spearman | P@10 | regret (pts) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in calibration.iterrows():
        a = Agreement.from_row(row)
        top20 = _signed(a.top_spearman.get(20, math.nan))
        p10 = a.precision.get(10, math.nan)
        lines.append(
            f"| {row['ranking']} | {a.statistic('spearman')} {a.interval('spearman')} | "
            f"{a.statistic('kendall')} | {top20} | {'' if math.isnan(p10) else f'{p10:.2f}'} | {a.regret:.2f} | {a.n} |"
        )
    if bias is not None:
        lines += [
            "",
            "Mean rank error per architecture choice, leave-one-out (predicted rank - reference rank "
            "among the networks with it; > 0: over-rated)",
            "",
            markdown_table(bias),
        ]
    return lines + [""]


def bias_markdown(bias: pd.DataFrame, proxies: list[str]) -> str:
    """Mean rank error per choice (rows) and proxy (columns): > 0 over-rated, < 0 under-rated."""
    wide = bias.pivot_table(index=["axis", "value"], columns="proxy", values="rank_error", sort=False)
    wide = wide[list(proxies)].round(1)
    wide.index = [f"{axis}={value}" for axis, value in wide.index]
    return markdown_table(wide.rename_axis("choice").reset_index())


def comparison_markdown(table: pd.DataFrame) -> str:
    """The table as a readable markdown table: correlations with their intervals, costs in seconds."""
    t = table

    def num(value: float, fmt: str) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)

    def corr(a: Agreement, key: str) -> str:
        return f"{a.statistic(key)} {a.interval(key)}".strip()

    shown = [k for k in TOP_K if t[f"top{k}_spearman"].notna().any()]  # columns with at least one value
    picks = [k for k in TOP_K if t[f"precision{k}"].notna().any()]
    rows = []
    for _, row in t.iterrows():
        a = Agreement.from_row(row)
        rows.append(
            {
                "proxy": row["proxy"],
                "seeds": row["seeds"],
                "n": row["n"],
                "Spearman [95% CI]": corr(a, "spearman"),
                "Kendall [95% CI]": corr(a, "kendall"),
                **{f"top-{k} ρ": num(a.top_spearman.get(k, math.nan), "{:+.2f}") for k in shown},
                **{f"P@{k}": a.precision_text(k) for k in picks},
                "top-1 ref acc": "" if math.isnan(a.top1_reference) else top1(a),
                "regret (pts)": num(a.regret, "{:.2f}"),
                "ties": a.ties,
                "cost (s)": num(row["seconds"], "{:.0f}"),
                "setup (s)": num(row["setup_seconds"], "{:.0f}"),
                "cost / reference": num(row["cost_ratio"], "{:.3f}"),
                "reference runs fitted on": row["reference_runs"] or "",
            }
        )
    return markdown_table(pd.DataFrame(rows))


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
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    pyplot().close(figure)
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


def _signed(value: float, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.{digits}f}"


def frontier_markdown(table: pd.DataFrame) -> str:
    """The frontier as markdown, cheapest first; whether each needs reference runs, and which Pareto fronts
    (Spearman, top-20 Spearman, Spearman among the reference-free methods) it is on."""
    lines = [
        "| family | method | reference runs | cost (of the space) | Spearman [95% CI] | top-10 ρ | top-20 ρ | P@10 "
        "| regret (pts) | Pareto front |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    fronts = (("ρ", "pareto"), ("top-20", "pareto_top20"), ("no-reference ρ", "pareto_noref"))
    for _, row in table.sort_values("cost", kind="stable").iterrows():
        span = f" {Agreement.from_row(row).interval('spearman')}".rstrip()
        p10 = "" if math.isnan(row["precision10"]) else f"{row['precision10']:.2f}"
        mark = " + ".join(name for name, key in fronts if row[key])
        needs = "yes" if row["needs_reference"] else "none"
        lines.append(
            f"| {row['family']} | {row['method']} | {needs} | {row['cost']:.4f} | {_signed(row['spearman'])}{span} | "
            f"{_signed(row['top10_spearman'], 2)} | {_signed(row['top20_spearman'], 2)} | {p10} | "
            f"{row['regret']:.2f} | {mark} |"
        )
    return "\n".join(lines)


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
    "CEILING",
    "best",
    "bias_markdown",
    "calibration_lines",
    "comparison_markdown",
    "comparison_scatter",
    "costs",
    "frontier_figure",
    "frontier_markdown",
    "frontier_plot",
    "markdown_table",
    "names",
    "pct",
    "pick_sentence",
    "plural",
    "pyplot",
    "report_markdown",
    "report_scatter",
    "save_figure",
    "scatter_figure",
    "score",
    "study_best",
    "top1",
]
