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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas_proxy._io import atomic_write
from nas_proxy.config import ACCURACY_PROXIES
from nas_proxy.reference import TOP_K, Agreement

if TYPE_CHECKING:  # the report's types; importing them here would be a circle (the report renders with this)
    from nas_proxy.results._report import Calibrated, Summary

CEILING = "reference seed-to-seed"  # the comparison's row for the reference's own seed-to-seed agreement


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def top1(a: Agreement) -> str:
    """The proxy's pick with its reference accuracy; a tie for the best score is shown as such."""
    if a.top1_ties > 1:
        return f"{a.top1_ties}-way tie for the best score (mean of them: {pct(a.top1_reference)})"
    return f"{a.top1_arch}: {pct(a.top1_reference)}"


def costs(summary: Summary) -> list[tuple[str, str]]:
    """The cost rows that have a value (never a NaN)."""
    per_arch = [
        f"{side} {mean:.1f} s"
        for side, mean in (("proxy", summary.proxy_seconds_mean), ("reference", summary.reference_seconds_mean))
        if not math.isnan(mean)
    ]
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
    if a.top1_arch is not None:
        lines += [
            f"| proxy's top-1 | {top1(a)} | | |",
            f"| best of the reference table | {a.best_arch}: {pct(a.best_reference)} | | {s.reference_archs} |",
            f"| top-1 regret | {a.regret:.2f} points | | |",
        ]
    if a.ties:
        lines.append(f"| ties | {a.ties} of the {n} proxy scores equal another's | | |")
    if (
        s.study_best_arch
        and not s.reference_imported
        and s.study_best_arch not in ranking.dropna(subset=[f"reference_{s.metric}"])["arch"].values
    ):
        lines.append(
            f"| study's best ({s.study_best_arch}) | no reference yet: `nas-proxy reference "
            f"{s.preset} --archs top-1` | | |"
        )
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
        "interval is a bootstrap over architectures; on a new draw of architectures expect a figure within "
        "it.",
        "",
        "| ranking | Spearman [95% CI] | Kendall | top-20 Spearman | P@10 | regret (pts) | n |",
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
                "top-1 ref acc": num(100 * a.top1_reference, "{:.2f}%")
                + (f" ({a.top1_ties}-way tie)" if a.top1_ties > 1 else ""),
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


def report_scatter(ranking: pd.DataFrame, summary: Summary, path: Path) -> Path | None:
    """The study's proxy scores against the reference, its pick circled; None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    a, metric, proxy = summary.agreement, summary.metric, summary.proxy
    both = ranking.dropna(subset=[f"reference_{metric}"])
    accuracy = proxy in ACCURACY_PROXIES  # then both axes are accuracies, both in percent
    x = both["proxy_score"] * (100 if accuracy else 1)
    figure, axes = plt.subplots(figsize=(5, 4.2), dpi=120)
    axes.scatter(x, 100 * both[f"reference_{metric}"], s=18, alpha=0.8)
    picked = both["proxy_score"] == both["proxy_score"].max()
    if picked.any():
        axes.scatter(
            x[picked],
            100 * both.loc[picked, f"reference_{metric}"],
            s=60,
            facecolors="none",
            edgecolors="red",
            label=f"proxy top-1 (regret {a.regret:.2f} points)",
        )
        axes.legend(loc="lower right", fontsize=8)
    axes.set_xlabel(f"proxy: validation accuracy (%), {proxy}" if accuracy else f"proxy score ({proxy})")
    axes.set_ylabel(f"full-data reference: {metric.replace('_acc', '')} accuracy (%)")
    axes.set_title(
        f"Spearman {a.statistic('spearman')}, Kendall {a.statistic('kendall')} (n = {a.n})",
        fontsize=10,
    )
    return save_figure(figure, path)


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
        accuracy = row["proxy"] in ACCURACY_PROXIES  # then both axes are accuracies, both in percent
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
    """The frontier as markdown, cheapest first; which Pareto fronts (Spearman, top-20 Spearman) each is on."""
    lines = [
        "| family | method | cost (of the space) | Spearman [95% CI] | top-10 ρ | top-20 ρ | P@10 | regret (pts) "
        "| Pareto front |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.sort_values("cost", kind="stable").iterrows():
        span = f" {Agreement.from_row(row).interval('spearman')}".rstrip()
        p10 = "" if math.isnan(row["precision10"]) else f"{row['precision10']:.2f}"
        mark = " + ".join(name for name, key in (("ρ", "pareto"), ("top-20", "pareto_top20")) if row[key])
        lines.append(
            f"| {row['family']} | {row['method']} | {row['cost']:.4f} | {_signed(row['spearman'])}{span} | "
            f"{_signed(row['top10_spearman'], 2)} | {_signed(row['top20_spearman'], 2)} | {p10} | "
            f"{row['regret']:.2f} | {mark} |"
        )
    return "\n".join(lines)


def frontier_plot(table: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Cost (log) against Spearman and top-20 Spearman, a marker per family, the Pareto front joined; None without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120, sharex=True)
    for ax, key, label, pareto in (
        (axes[0], "spearman", "Spearman", "pareto"),
        (axes[1], "top20_spearman", "top-20 Spearman", "pareto_top20"),
    ):
        for (family, group), marker in zip(table.groupby("family", sort=False), "osD^vP*X"):
            ax.scatter(group["cost"].clip(lower=1e-6), group[key], marker=marker, s=28, alpha=0.85, label=family)
        front = table[table[pareto]].sort_values("cost")
        ax.plot(front["cost"].clip(lower=1e-6), front[key], color="black", lw=0.8, alpha=0.6, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("cost of ranking the whole space (fraction of training it once)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


__all__ = [
    "CEILING",
    "bias_markdown",
    "calibration_lines",
    "comparison_markdown",
    "comparison_scatter",
    "costs",
    "frontier_markdown",
    "frontier_plot",
    "markdown_table",
    "pct",
    "plural",
    "pyplot",
    "report_markdown",
    "report_scatter",
    "save_figure",
    "top1",
]
