"""The study's ranking beside the full-data reference: tables, faithfulness figures and a plot.

Works on a study that is still running: it reads whatever trials and reference rows exist.

Example:
    >>> from pathlib import Path
    >>> from nas_proxy import load_dataset, load_preset, make_report, run_search
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ... dataset = "digits"
    ...
    ... [score]
    ... proxy = "naswot"
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> study = run_search(preset, load_dataset("digits"), n_trials=3, progress=False, verbose=False)
    >>> report = make_report(preset, plot=False)
    >>> report.agreement["scored"], len(report.ranking)
    (3, 3)
    >>> [path.name for path in report.files]
    ['ranking.csv', 'report.md', 'summary.json']
    >>> print(report.markdown().splitlines()[0])
    # tiny: proxy ranking vs full-data reference
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas_proxy._io import atomic_write
from nas_proxy.artifacts import imported_table_path, reference_table_path
from nas_proxy.config import ACCURACY_PROXIES, Preset
from nas_proxy.ranking import MIN_PAIRS, TOP_K, factor_bias, interval, proxy_scores, rank_agreement
from nas_proxy.calibration import Calibration
from nas_proxy.reference import read_reference, reference_accuracy, reference_protocol, seed_ceiling
from nas_proxy.study import load_study


@dataclass(frozen=True)
class Report:
    """``ranking``: one row per scored architecture, best proxy score first; ``agreement``: see
    :func:`rank_agreement`, plus counts and costs; ``files``: what :func:`make_report` wrote."""

    name: str
    ranking: pd.DataFrame
    agreement: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    calibration: pd.DataFrame | None = None  # a fitted proxy's leave-one-out agreement (see calibration_lines)
    bias: pd.DataFrame | None = None  # its per-choice rank error beside the factors alone's

    def markdown(self, rows: int | None = None) -> str:
        a = self.agreement
        n = a["n"]
        lines = [f"# {self.name}: proxy ranking vs full-data reference", "",
                 f"{a['trials_complete']} finished trials ({a['trials_running']} running, {a['trials_failed']} "
                 f"failed) scored {a['scored']} architectures; the reference table holds {a['reference_archs']} "
                 f"({a['metric']}, {a['reference_protocol']}, {_plural(a['reference_seeds'], 'seed')}); {n} are in "
                 f"both.",
                 "", "| measure | value | 95% interval | n |", "|---|---|---|---|"]
        for key, label in (("spearman", "Spearman"), ("kendall", "Kendall")):
            lines.append(f"| {label} | {statistic(a, key)} | {interval(a, key)} | {n} |")
        for k in TOP_K:
            if not math.isnan(a[f"top{k}_spearman"]):
                lines.append(f"| Spearman among the reference's top {k} | {a[f'top{k}_spearman']:+.3f} | | {k} |")
        for k in TOP_K:
            if not math.isnan(a[f"precision{k}"]):
                lines.append(f"| precision@{k} | {precision(a, k)} | | {n} |")
        if a["top1_arch"] is not None:
            lines += [f"| proxy's top-1 | {top1(a)} | | |",
                      f"| best of the reference table | {a['best_arch']}: {_pct(a['best_reference'])} | | "
                      f"{a['reference_archs']} |",
                      f"| top-1 regret | {a['regret']:.2f} points | | |"]
        if a["ties"]:
            lines.append(f"| ties | {a['ties']} of the {n} proxy scores equal another's | | |")
        if a.get("study_best_arch") and not a["reference_imported"] and a["study_best_arch"] not in self.ranking.dropna(
                subset=[f"reference_{a['metric']}"])["arch"].values:
            lines.append(f"| study's best ({a['study_best_arch']}) | no reference yet: `nas-proxy reference "
                         f"{a['preset']} --archs top-1` | | |")
        lines += [f"| {label} | {value} | | |" for label, value in _costs(a)] + [""]
        lines += self.calibration_lines()
        lines.append(markdown_table(self.ranking if rows is None else self.ranking.head(rows)))
        return "\n".join(lines) + "\n"


    def calibration_lines(self) -> list[str]:
        """For a study ranked by a fitted proxy: how it ranks architectures it was not fitted on, beside the
        factors alone and the reference's own seed-to-seed ceiling."""
        fit = self.calibration
        if fit is None or fit.empty:
            return []
        features = self.agreement["calibration_features"] or ["none"]
        lines = [f"## Calibration: fitted on {self.agreement['calibration_n']} reference architectures "
                 f"(features: {', '.join(features)} with the architecture's factors)", "",
                 "Each reference architecture scored by a fit that left it out (leave-one-out): how the study's "
                 "scale ranks architectures it has not seen.", "",
                 "| ranking | Spearman [95% CI] | Kendall [95% CI] | top-20 Spearman | P@10 | regret (pts) | n |",
                 "|---|---|---|---|---|---|---|"]
        for _, row in fit.iterrows():
            top20 = "" if math.isnan(row["top20_spearman"]) else f"{row['top20_spearman']:+.3f}"
            lines.append(f"| {row['ranking']} | {statistic(row, 'spearman')} {interval(row, 'spearman')} | "
                         f"{statistic(row, 'kendall')} {interval(row, 'kendall')} | {top20} | {precision(row, 10)} | "
                         f"{row['regret']:.2f} | {row['n']} |")
        if self.bias is not None:
            lines += ["", "Mean rank error per architecture choice, leave-one-out (predicted rank - reference rank "
                          "among the networks with it; > 0: over-rated)", "", markdown_table(self.bias)]
        return lines + [""]


FACTORS_ALONE = "factors alone"


def _calibration(study_attrs: dict[str, Any], preset: Preset, table: pd.DataFrame, reference: pd.Series, n_boot: int,
                 seed: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Leave-one-out agreement of the study's recorded calibrations and of the factors alone, with the ceiling;
    and their per-choice rank error (:func:`factor_bias`)."""
    recorded = study_attrs.get("calibration")
    if not recorded:
        return None, None
    calibration = Calibration.from_dict(recorded, preset.space())
    predictions = {f"calibrated: factors + {' + '.join(calibration.features) or 'no scores'}":
                   calibration.cross_validated()}
    if study_attrs.get("calibration_refined"):
        refined = Calibration.from_dict(study_attrs["calibration_refined"], preset.space())
        predictions[f"promoted trials: factors + {' + '.join(refined.features)}"] = refined.cross_validated()
    predictions[FACTORS_ALONE] = calibration.factors_only().cross_validated()
    rows = [{"ranking": name, **rank_agreement(prediction, reference, n_boot=n_boot, seed=seed)}
            for name, prediction in predictions.items()]
    ceiling = seed_ceiling(table[table["arch"].isin(calibration.archs)], preset.reference.metric, n_boot=n_boot,
                           seed=seed)
    if ceiling is not None:
        rows.append({"ranking": "reference seed-to-seed (ceiling)", **ceiling})
    bias = pd.DataFrame({name: factor_bias(prediction, reference).set_index(["axis", "value"])["rank_error"]
                         for name, prediction in predictions.items()}).round(1)
    bias.index = [f"{axis}={value}" for axis, value in bias.index]
    return pd.DataFrame(rows), bias.rename_axis("choice").reset_index()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def statistic(a: dict[str, Any], key: str) -> str:
    """A rank statistic of :func:`rank_agreement`, or why it is absent."""
    if a["n"] < MIN_PAIRS:
        return f"too few (n < {MIN_PAIRS})"
    value = a[key]
    return "n/a (no spread)" if math.isnan(value) else f"{value:+.3f}"


def precision(a: dict[str, Any], k: int) -> str:
    """precision@k beside what a random ranking scores on average; empty where k is not small against n."""
    value = a[f"precision{k}"]
    return "" if math.isnan(value) else f"{value:.2f} (chance {a[f'chance{k}']:.2f})"


def top1(a: dict[str, Any]) -> str:
    """The proxy's pick with its reference accuracy; a tie for the best score is shown as such."""
    if a["top1_ties"] > 1:
        return f"{a['top1_ties']}-way tie for the best score (mean of them: {_pct(a['top1_reference'])})"
    return f"{a['top1_arch']}: {_pct(a['top1_reference'])}"


def _costs(a: dict[str, Any]) -> list[tuple[str, str]]:
    """The cost rows that have a value (never a NaN)."""
    per_arch = [f"{side} {a[f'{side}_seconds_mean']:.1f} s" for side in ("proxy", "reference")
                if not math.isnan(a[f"{side}_seconds_mean"])]
    total = [f"{label} {a[key]:.0f} s" for key, label in (("setup_seconds", "setup (condensation, fitting)"),
                                                           ("proxy_seconds", "proxy"),
                                                           ("reference_seconds", "reference"))
             if not math.isnan(a[key]) and (a[key] > 0 or key == "proxy_seconds")]
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


def _ranking(scores: pd.DataFrame, reference: pd.Series, metric: str) -> pd.DataFrame:
    ranking = scores.assign(reference=scores["arch"].map(reference))
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    ranking["reference_rank"] = ranking["reference"].rank(ascending=False, method="min")
    ranking["mflops"] = ranking["flops"] / 1e6
    columns = ["rank", "arch", "score", "reference", "reference_rank", "params", "mflops", "seconds", "trial"]
    if ranking["fidelity"].notna().any():  # a multi-fidelity study: which score each architecture reached
        columns.insert(3, "fidelity")
    return ranking[columns].rename(columns={"score": "proxy_score", "reference": f"reference_{metric}",
                                            "seconds": "proxy_seconds"})


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


def _scatter(ranking: pd.DataFrame, agreement: dict[str, Any], metric: str, path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    both = ranking.dropna(subset=[f"reference_{metric}"])
    accuracy = agreement["proxy"] in ACCURACY_PROXIES  # then both axes are accuracies, both in percent
    x = both["proxy_score"] * (100 if accuracy else 1)
    figure, axes = plt.subplots(figsize=(5, 4.2), dpi=120)
    axes.scatter(x, 100 * both[f"reference_{metric}"], s=18, alpha=0.8)
    picked = both["proxy_score"] == both["proxy_score"].max()
    if picked.any():
        axes.scatter(x[picked], 100 * both.loc[picked, f"reference_{metric}"], s=60, facecolors="none",
                     edgecolors="red", label=f"proxy top-1 (regret {agreement['regret']:.2f} points)")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_xlabel(f"proxy: validation accuracy (%), {agreement['proxy']}" if accuracy
                    else f"proxy score ({agreement['proxy']})")
    axes.set_ylabel(f"full-data reference: {metric.replace('_acc', '')} accuracy (%)")
    axes.set_title(f"Spearman {statistic(agreement, 'spearman')}, Kendall {statistic(agreement, 'kendall')} "
                   f"(n = {agreement['n']})", fontsize=10)
    return save_figure(figure, path)


def make_report(preset: Preset, out_dir: str | Path | None = None, *, n_boot: int = 1000, seed: int = 0,
                plot: bool = True) -> Report:
    """Rank the study's architectures, compare with the reference table and write the report files.

    Files (in ``out_dir``, default ``<study output>/report``): ``ranking.csv``, ``report.md``
    (figures and the ranking as markdown), ``summary.json`` and, with matplotlib, ``scatter.png``.
    """
    study = load_study(preset)
    metric = preset.reference.metric
    table_path = reference_table_path(preset)
    table = read_reference(table_path)
    scores = proxy_scores(study)
    reference = reference_accuracy(table, metric)
    ranking = _ranking(scores, reference, metric)
    agreement = rank_agreement(scores.set_index("arch")["score"], reference, n_boot=n_boot, seed=seed)
    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts()
    agreement.update(
        proxy=study.user_attrs.get("proxy", {}).get("proxy", preset.score.proxy), metric=metric,
        reference_protocol=reference_protocol(preset), reference_table=str(table_path),
        reference_imported=table_path == imported_table_path(preset),
        reference_seeds=int(table["seed"].nunique()), preset=preset.ref,
        trials_complete=int(states.get("COMPLETE", 0)), trials_running=int(states.get("RUNNING", 0)),
        trials_failed=int(states.get("FAIL", 0)), scored=len(scores), reference_archs=int(table["arch"].nunique()),
        study_best_arch=scores["arch"].iloc[0] if len(scores) else None,
        setup_seconds=float(study.user_attrs.get("setup_seconds", 0.0)),
        proxy_seconds=float(scores["seconds"].sum()), reference_seconds=float(table["seconds"].sum(min_count=1)),
        proxy_seconds_mean=float(scores["seconds"].mean()) if len(scores) else math.nan,
        reference_seconds_mean=float(table.groupby("arch")["seconds"].sum(min_count=1).mean()) if len(table) else math.nan,
    )
    calibration, bias = _calibration(study.user_attrs, preset, table, reference, n_boot, seed)
    if calibration is not None:
        fitted = study.user_attrs["calibration"]
        rows = calibration.set_index("ranking")
        agreement.update(calibration_n=len(fitted["archs"]), calibration_features=fitted["features"],
                         **{f"calibration_{key}": rows[key].iloc[0] for key in
                            ("spearman", "spearman_low", "spearman_high", "kendall", "top20_spearman", "precision10")},
                         **{f"factors_{key}": rows.loc[FACTORS_ALONE, key] for key in
                            ("spearman", "spearman_low", "spearman_high")})
    out = Path(out_dir) if out_dir is not None else preset.study.output / "report"
    report = Report(preset.study.name, ranking, agreement, calibration=calibration, bias=bias)
    files = [atomic_write(out / "ranking.csv", lambda tmp: ranking.to_csv(tmp, index=False)),
             atomic_write(out / "report.md", lambda tmp: tmp.write_text(report.markdown())),
             atomic_write(out / "summary.json", lambda tmp: tmp.write_text(
                 json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                             for k, v in agreement.items()}, indent=2)))]
    if plot and len(ranking):
        scatter = _scatter(ranking, agreement, metric, out / "scatter.png")
        if scatter is not None:
            files.append(scatter)
    return dataclasses.replace(report, files=files)


__all__ = ["Report", "make_report", "markdown_table", "precision", "statistic", "top1"]
