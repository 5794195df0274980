"""The study's ranking beside the full-data reference: tables, faithfulness figures and a plot.

Works on a study that is still running: it reads whatever trials and reference rows exist.

Example:
    >>> from pathlib import Path
    >>> from nas_proxy import load_dataset, load_preset, make_report, run_search
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ...
    ... [data]
    ... dataset = "digits"
    ...
    ... [score]
    ... proxy = "naswot"
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> study = run_search(preset, load_dataset(preset.data), n_trials=3, progress=False, verbose=False)
    >>> report = make_report(preset, plot=False)
    >>> report.summary.scored, len(report.ranking)
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

import optuna
import pandas as pd

from nas_proxy._io import atomic_write, output_folder
from nas_proxy.artifacts import is_imported_table, reference_table_path
from nas_proxy.config import Preset
from nas_proxy.reference import N_BOOT, Agreement, rank_agreement, read_reference, reference_accuracy, seed_ceiling
from nas_proxy.reference._agreement import factor_bias
from nas_proxy.reference._reference import reference_protocol
from nas_proxy.results._plots import report_scatter
from nas_proxy.results._render import report_markdown
from nas_proxy.results._rows import Ranked
from nas_proxy.results._summary import Calibrated, Summary
from nas_proxy.scoring import Calibration, honest_estimate
from nas_proxy.study import load_study
from nas_proxy.study._study import proxy_scores


@dataclass(frozen=True)
class Report:
    """``ranking``: one row per scored architecture, best proxy score first; ``summary``: its agreement with
    the reference, counts and costs; ``files``: what :func:`make_report` wrote."""

    name: str
    ranking: pd.DataFrame
    summary: Summary
    files: list[Path] = field(default_factory=list)
    calibration: pd.DataFrame | None = None  # a fitted proxy's honest estimate (render.calibration_lines)
    bias: pd.DataFrame | None = None  # its per-choice rank error beside the factors alone's

    def markdown(self, rows: int | None = None) -> str:
        """The report as markdown (:func:`nas_proxy.results._render.report_markdown`)."""
        return report_markdown(self.name, self.ranking, self.summary, self.calibration, self.bias, rows)


FACTORS_ALONE = "factors alone"


@dataclass(frozen=True)
class _Estimates:
    """A calibrated study's honest estimates: every ranking's (the table), the study's own and the factors alone's."""

    rankings: list[Ranked]
    study: Ranked
    factors: Ranked
    bias: pd.DataFrame

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"ranking": r.name, **r.figures()} for r in self.rankings])


def _calibration(
    study_attrs: dict[str, Any], preset: Preset, table: pd.DataFrame, reference: pd.Series, n_boot: int, seed: int
) -> _Estimates | None:
    """The honest estimate (:func:`~nas_proxy.scoring.honest_estimate`: repeated nested k-fold) of the study's
    calibrated ranking, of its multi-fidelity ranking and of the factors alone, with the ceiling; and their
    per-choice rank error (:func:`factor_bias`, leave-one-out)."""
    recorded = study_attrs.get("calibration")
    if not recorded:
        return None
    calibration = Calibration.from_dict(recorded, preset.space())
    fitted = reference[list(calibration.archs)]  # the mean over every seed, whichever the fit learnt from
    rf = preset.score.reduction_factor

    def estimate(name: str, first: Calibration, refined: Calibration | None = None) -> Ranked:
        return Ranked(name, honest_estimate(first, refined, rf, fitted, n_boot=n_boot, seed=seed))

    calibrated = estimate(f"calibrated: factors + {' + '.join(calibration.chosen) or 'no scores'}", calibration)
    study = calibrated
    rankings = [calibrated]
    if study_attrs.get("calibration_refined"):
        refined = Calibration.from_dict(study_attrs["calibration_refined"], preset.space())
        name = f"the study's ranking: best 1/{rf} promoted to factors + {' + '.join(refined.chosen) or 'no scores'}"
        study = estimate(name, calibration, refined)
        rankings.append(study)
    factors_only = calibration.factors_only()
    factors = estimate(FACTORS_ALONE, factors_only)
    rankings.append(factors)
    members = table[table["arch"].isin(calibration.archs)]
    ceiling = seed_ceiling(members, preset.reference.metric, n_boot=n_boot, seed=seed)
    if ceiling is not None:
        rankings.append(Ranked("reference seed-to-seed (ceiling)", ceiling))
    loo = {calibrated.name: calibration.cross_validated(), FACTORS_ALONE: factors_only.cross_validated()}
    bias = pd.DataFrame(
        {
            name: factor_bias(prediction, reference).set_index(["axis", "value"])["rank_error"]
            for name, prediction in loo.items()
        }
    ).round(1)
    bias.index = [f"{axis}={value}" for axis, value in bias.index]
    return _Estimates(rankings, study, factors, bias.rename_axis("choice").reset_index())


def _ranking(scores: pd.DataFrame, reference: pd.Series, metric: str) -> pd.DataFrame:
    ranking = scores.assign(reference=scores["arch"].map(reference))
    ranking.insert(0, "rank", range(1, len(ranking) + 1))
    ranking["reference_rank"] = ranking["reference"].rank(ascending=False, method="min")
    ranking["mflops"] = ranking["flops"] / 1e6
    columns = ["rank", "arch", "score", "reference", "reference_rank", "params", "mflops", "seconds", "trial"]
    if ranking["fidelity"].notna().any():  # a multi-fidelity study: which score each architecture reached
        columns.insert(3, "fidelity")
    return ranking[columns].rename(
        columns={"score": "proxy_score", "reference": f"reference_{metric}", "seconds": "proxy_seconds"}
    )


def _cost_ratio(scores: pd.DataFrame, table: pd.DataFrame) -> tuple[float, int]:
    """A proxy score's seconds over a full-data one's, on the architectures both scored, and how many those are."""
    both = pd.concat(
        [scores.set_index("arch")["seconds"], table.groupby("arch")["seconds"].sum(min_count=1)], axis=1, join="inner"
    ).dropna()
    if not len(both) or not both.iloc[:, 1].sum():
        return math.nan, len(both)
    return float(both.iloc[:, 0].sum() / both.iloc[:, 1].sum()), len(both)


def _calibrated(study: optuna.Study, estimates: _Estimates) -> Calibrated:
    """What the study's calibration was fitted on, and its honest estimates beside the factors alone."""
    fitted = study.user_attrs["calibration"]
    return Calibrated(
        n=len(fitted["archs"]),
        features=fitted["features"],
        ranking=estimates.study.name,
        estimate=estimates.study.agreement,
        factors=estimates.factors.agreement,
    )


def _summary(
    preset: Preset,
    study: optuna.Study,
    scores: pd.DataFrame,
    ranking: pd.DataFrame,
    table: pd.DataFrame,
    table_path: Path,
    agreement: Agreement,
    estimates: _Estimates | None,
) -> Summary:
    """The study's counts, its best architectures (ties kept), where the tables come from and what scoring cost."""
    metric = preset.reference.metric
    reference = reference_accuracy(table, metric)
    scored = ranking.dropna(subset=[f"reference_{metric}"])
    top1_score = float(scored["proxy_score"].max()) if len(scored) else math.nan
    whole = reference.dropna()
    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts()
    cost_ratio, cost_ratio_archs = _cost_ratio(scores, table)
    # every architecture at the best score, in the ranking's order: the first is the one ranking.csv puts first
    study_best_archs = tuple(scores.loc[scores["score"] == scores["score"].max(), "arch"])
    return Summary(
        agreement=agreement,
        proxy=study.user_attrs.get("proxy", {}).get("proxy", preset.score.proxy),
        metric=metric,
        reference_protocol=reference_protocol(preset.reference, table_path, preset.data.dataset),
        reference_table=str(table_path),
        reference_imported=is_imported_table(table_path),
        reference_seeds=int(table["seed"].nunique()),
        preset=preset.ref,
        trials_complete=int(states.get("COMPLETE", 0)),
        trials_running=int(states.get("RUNNING", 0)),
        trials_failed=int(states.get("FAIL", 0)),
        scored=len(scores),
        reference_archs=int(table["arch"].nunique()),
        study_best_arch=study_best_archs[0] if study_best_archs else None,
        study_best_score=float(scores["score"].max()) if len(scores) else math.nan,
        study_best_archs=study_best_archs,
        top1_score=top1_score,
        top1_archs=tuple(sorted(scored.loc[scored["proxy_score"] == top1_score, "arch"])),
        best_archs=tuple(whole.index[whole == whole.max()]),
        setup_seconds=float(study.user_attrs.get("setup_seconds", 0.0)),
        proxy_seconds=float(scores["seconds"].sum()),
        reference_seconds=float(table["seconds"].sum(min_count=1)),
        proxy_seconds_mean=float(scores["seconds"].mean()) if len(scores) else math.nan,
        reference_seconds_mean=float(table.groupby("arch")["seconds"].sum(min_count=1).mean()),
        cost_ratio=cost_ratio,
        cost_ratio_archs=cost_ratio_archs,
        calibrated=None if estimates is None else _calibrated(study, estimates),
    )


def make_report(
    preset: Preset, out_dir: str | Path | None = None, *, n_boot: int = N_BOOT, seed: int = 0, plot: bool = True
) -> Report:
    """Rank the study's architectures, compare with the reference table and write the report files.

    Files (in ``out_dir``, default ``<study output>/report``): ``ranking.csv``, ``report.md``
    (figures and the ranking as markdown), ``summary.json`` and, with matplotlib, ``scatter.png``.
    """
    study = load_study(preset)
    metric = preset.reference.metric
    table_path = reference_table_path(preset.study.output, preset.data, preset.reference)
    table = read_reference(table_path)
    out = output_folder(out_dir, preset.study.output / "report")
    scores = proxy_scores(study)
    reference = reference_accuracy(table, metric)
    ranking = _ranking(scores, reference, metric)
    estimates = _calibration(study.user_attrs, preset, table, reference, n_boot, seed)
    agreement = rank_agreement(scores.set_index("arch")["score"], reference, n_boot=n_boot, seed=seed)
    summary = _summary(preset, study, scores, ranking, table, table_path, agreement, estimates)
    report = Report(
        preset.study.name,
        ranking,
        summary,
        calibration=None if estimates is None else estimates.table(),
        bias=None if estimates is None else estimates.bias,
    )
    return dataclasses.replace(report, files=_write(report, out, plot))


def _write(report: Report, out: Path, plot: bool) -> list[Path]:
    """ranking.csv, report.md, summary.json and, with matplotlib, scatter.png."""
    ranking, summary = report.ranking, report.summary
    files = [
        atomic_write(out / "ranking.csv", lambda tmp: ranking.to_csv(tmp, index=False)),
        atomic_write(out / "report.md", lambda tmp: tmp.write_text(report.markdown())),
        atomic_write(
            out / "summary.json",
            lambda tmp: tmp.write_text(json.dumps(summary.as_json(), indent=2)),
        ),
    ]
    if plot and len(ranking):
        scatter = report_scatter(ranking, summary, out / "scatter.png")
        if scatter is not None:
            files.append(scatter)
    return files


__all__ = ["FACTORS_ALONE", "Report", "make_report"]
