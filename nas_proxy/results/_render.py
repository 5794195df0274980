"""The markdown documents the tool writes: a study's report, a comparison of proxies, the frontier.

Data flows in as frames and typed results (an :class:`~nas_proxy.reference.Agreement`, a report's
:class:`~nas_proxy.results.Summary`, a comparison's table); nothing here computes a statistic.
"""

from __future__ import annotations

import math

import pandas as pd

from nas_proxy.reference import TOP_K, Agreement
from nas_proxy.results._format import best, markdown_table, pct, plural, score, signed, top1
from nas_proxy.results._summary import Calibrated, Summary, costs


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
        top20 = signed(a.top_spearman.get(20, math.nan))
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
            f"| {row['family']} | {row['method']} | {needs} | {row['cost']:.4f} | {signed(row['spearman'])}{span} | "
            f"{signed(row['top10_spearman'], 2)} | {signed(row['top20_spearman'], 2)} | {p10} | "
            f"{row['regret']:.2f} | {mark} |"
        )
    return "\n".join(lines)


__all__ = [
    "bias_markdown",
    "calibration_lines",
    "comparison_markdown",
    "frontier_markdown",
    "report_markdown",
]
