"""The study's ranking beside the full-data reference: tables, faithfulness figures and a plot.

Works on a study that is still running: it reads whatever trials and reference rows exist.

Example:
    >>> from nas_proxy import load_preset, make_report
    >>> report = make_report(load_preset("studies/quickstart.toml"))  # doctest: +SKIP
    >>> print(report.markdown())  # doctest: +SKIP
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
from nas_proxy.ranking import TOP_K, proxy_scores, rank_agreement
from nas_proxy.reference import read_reference, reference_accuracy, reference_table_path
from nas_proxy.study import Preset, load_study


@dataclass(frozen=True)
class Report:
    """``ranking``: one row per scored architecture, best proxy score first; ``agreement``: see
    :func:`rank_agreement`, plus counts and costs; ``files``: what :func:`make_report` wrote."""

    name: str
    ranking: pd.DataFrame
    agreement: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    def markdown(self, rows: int | None = None) -> str:
        a = self.agreement
        lines = [f"# {self.name}: proxy ranking vs full-data reference", "",
                 f"{a['trials_complete']} finished trials ({a['trials_running']} running, {a['trials_failed']} "
                 f"failed) scored {a['scored']} architectures; the reference table holds {a['reference_archs']} "
                 f"({a['metric']}, {a['reference_epochs']} epoch{'s' if a['reference_epochs'] != 1 else ''} on the full "
                 f"training data); {a['n']} are in both.",
                 "", "| measure | value | 95% interval |", "|---|---|---|"]
        for key, label in (("spearman", "Spearman"), ("kendall", "Kendall")):
            lines.append(f"| {label} | {_num(a[key])} | {_interval(a, key)} |")
        for k in TOP_K:
            lines.append(f"| Spearman among the top {k} | {_num(a[f'top{k}_spearman'])} | |")
        if a["top1_arch"] is not None:
            lines += [f"| proxy's top-1 | {a['top1_arch']}: {_pct(a['top1_reference'])} | |",
                      f"| best reference | {a['best_arch']}: {_pct(a['best_reference'])} | |",
                      f"| top-1 regret | {a['regret']:.2f} points | |"]
        if a.get("study_best_arch") and a["study_best_arch"] != a["top1_arch"]:
            lines.append(f"| study's best ({a['study_best_arch']}) | no reference yet: `nas-proxy reference "
                         f"--archs top-1` | |")
        lines += [f"| cost per architecture | proxy {a['proxy_seconds_mean']:.1f} s, reference "
                  f"{a['reference_seconds_mean']:.1f} s | |",
                  f"| cost in total | setup (condensation) {a['setup_seconds']:.0f} s + proxy {a['proxy_seconds']:.0f} s; "
                  f"reference {a['reference_seconds']:.0f} s | |", ""]
        lines.append(markdown_table(self.ranking if rows is None else self.ranking.head(rows)))
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.3f}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _interval(a: dict[str, Any], key: str) -> str:
    low, high = a[f"{key}_low"], a[f"{key}_high"]
    return "n/a" if math.isnan(low) else f"[{low:+.3f}, {high:+.3f}]"


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
    figure, axes = plt.subplots(figsize=(5, 4.2), dpi=120)
    axes.scatter(both["proxy_score"], 100 * both[f"reference_{metric}"], s=18, alpha=0.8)
    if agreement["top1_arch"] is not None:
        pick = both[both["arch"] == agreement["top1_arch"]].iloc[0]
        axes.scatter([pick["proxy_score"]], [100 * pick[f"reference_{metric}"]], s=60, facecolors="none",
                     edgecolors="red", label=f"proxy top-1 (regret {agreement['regret']:.2f} pts)")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_xlabel(f"proxy score ({agreement['proxy']})")
    axes.set_ylabel(f"full-data reference: {metric.replace('_acc', '')} accuracy (%)")
    axes.set_title(f"Spearman {_num(agreement['spearman'])}, Kendall {_num(agreement['kendall'])} "
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
    paired = set(scores["arch"]) & set(table["arch"])
    agreement.update(
        proxy=study.user_attrs.get("proxy", {}).get("proxy", preset.score.proxy), metric=metric, reference_epochs=preset.reference.training.epochs, reference_table=str(table_path),
        trials_complete=int(states.get("COMPLETE", 0)), trials_running=int(states.get("RUNNING", 0)),
        trials_failed=int(states.get("FAIL", 0)), scored=len(scores), reference_archs=int(table["arch"].nunique()),
        study_best_arch=scores["arch"].iloc[0] if len(scores) else None,
        setup_seconds=float(study.user_attrs.get("setup_seconds", math.nan)),
        proxy_seconds=float(scores["seconds"].sum()), reference_seconds=float(table["seconds"].sum()),
        proxy_seconds_mean=float(scores[scores["arch"].isin(paired)]["seconds"].mean()),
        reference_seconds_mean=float(table[table["arch"].isin(paired)].groupby("arch")["seconds"].sum().mean()),
    )
    out = Path(out_dir) if out_dir is not None else preset.study.output / "report"
    report = Report(preset.study.name, ranking, agreement)
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


__all__ = ["Report", "make_report", "markdown_table"]
