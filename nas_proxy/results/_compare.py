"""Every proxy side by side against the reference table: can the ranking be trusted, and is DM worth it?

Each proxy scores every architecture of the reference table for each seed. Scores are cached
per (proxy settings, data) in ``<study output>/scores/`` one row at a time, so an interrupted
comparison continues where it stopped and a second comparison reuses them. A name joined by
``+`` (``dm+naswot``) is a rank ensemble: the mean of its members' ranks (it scores a set of
architectures, not one, so a study cannot search with it).

Example:
    >>> from pathlib import Path
    >>> from nas_proxy import compare_proxies, load_dataset, load_preset, run_reference
    >>> from nas_proxy.artifacts import reference_table_path
    >>> from nas_proxy.study import select_archs
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ...
    ... [data]
    ... dataset = "digits"
    ...
    ... [reference]
    ... epochs = 1
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> data = load_dataset(preset.data)
    >>> ids = "d1-w32-relu-none-avgpool,d1-w64-relu-none-avgpool,d2-w32-relu-none-avgpool"
    >>> archs = select_archs(ids, preset.space(), preset.reference)
    >>> table = run_reference(preset.reference, data, archs, reference_table_path(preset), progress=False)  # the truth
    >>> comparison = compare_proxies(preset, data, ["naswot", "params", "naswot+params"], plot=False, progress=False)
    >>> comparison.table[["proxy", "n"]].values.tolist()
    [['naswot', 3], ['params', 3], ['naswot+params', 3]]
    >>> print(comparison.markdown().splitlines()[0])  # doctest: +ELLIPSIS
    | proxy | seeds | n | Spearman [95% CI] | ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas_proxy._io import atomic_write, check_writable, output_folder
from nas_proxy.config import PROXIES, Preset
from nas_proxy.data import Dataset
from nas_proxy.errors import ArgumentError, ConfigError
from nas_proxy.reference import N_BOOT, rank_agreement, reference_accuracy, seed_ceiling
from nas_proxy.reference._agreement import factor_bias, rank_ensemble
from nas_proxy.reference._reference import preset_reference, reference_protocol
from nas_proxy.results._format import CEILING
from nas_proxy.results._plots import comparison_scatter
from nas_proxy.results._render import bias_markdown, comparison_markdown
from nas_proxy.scoring import Calibration, honest_estimate, make_proxy, score_archs
from nas_proxy.space import ArchSpec


@dataclass(frozen=True)
class Comparison:
    """``table``: one row per proxy (and the reference's own seed-to-seed agreement when it has two
    seeds); ``scores``: each proxy's mean score per architecture; ``bias``: each proxy's mean rank
    error per architecture choice (:func:`factor_bias`); ``files``: what was written."""

    name: str
    table: pd.DataFrame
    scores: pd.DataFrame
    reference: pd.Series
    files: list[Path] = field(default_factory=list)

    @property
    def bias(self) -> pd.DataFrame:
        frames = [factor_bias(self.scores[name], self.reference).assign(proxy=name) for name in self.scores]
        return pd.concat(frames, ignore_index=True)[["proxy", "axis", "value", "n", "rank_error"]]

    def bias_markdown(self) -> str:
        """Mean rank error per choice (rows) and proxy (columns): > 0 over-rated, < 0 under-rated."""
        return bias_markdown(self.bias, list(self.scores.columns))

    def markdown(self) -> str:
        """The table as a readable markdown table: correlations with their intervals, costs in seconds."""
        return comparison_markdown(self.table)


def _ceiling(table: pd.DataFrame, metric: str, n_boot: int, seed: int) -> dict[str, Any] | None:
    agreement = seed_ceiling(table, metric, n_boot=n_boot, seed=seed)
    if agreement is None:
        return None
    first = table[table["seed"] == sorted(table["seed"].unique())[0]]
    return {
        "proxy": CEILING,
        "seeds": 1,
        **agreement.row(),
        "seconds": float(first["seconds"].sum(min_count=1)),
        "setup_seconds": 0.0,
        "reference_runs": 0,
    }


def _parse(proxies: list[str]) -> list[list[str]]:
    parsed = []
    for name in proxies:
        members = [m.strip() for m in name.split("+")]
        bad = next((m for m in members if m not in PROXIES), None)
        if bad is not None:
            raise ArgumentError(
                "compare_proxies",
                "proxies",
                f"holds {bad!r}, not a proxy; choose from {', '.join(PROXIES)} (join with + for a rank ensemble)",
            )
        parsed.append(members)
    if not parsed:
        raise ArgumentError("compare_proxies", "proxies", "is empty; pass e.g. dm,random,early,synflow,naswot,params")
    return parsed


def compare_proxies(
    preset: Preset,
    data: Dataset,
    proxies: list[str],
    *,
    seeds: int | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
    out_dir: str | Path | None = None,
    plot: bool = True,
    progress: bool = True,
) -> Comparison:
    """Score the reference table's architectures with each proxy and measure its agreement with the reference.

    ``seeds`` (default ``[score].seeds``) scores per architecture are averaged. Files (in
    ``out_dir``, default ``<study output>/compare``): ``compare.csv`` (every figure),
    ``compare.md``, ``scores.csv`` (each proxy's score per architecture), ``bias.csv`` (its mean
    rank error per architecture choice) and, with matplotlib,
    ``compare.png`` (a panel per proxy: score against reference accuracy).
    """
    data.check(preset.data)
    parsed = _parse(proxies)
    n_seeds = seeds if seeds is not None else preset.score.seeds
    try:
        dataclasses.replace(preset.score, seeds=n_seeds)  # a score's seeds are bounded by [score] (each trains anew)
    except ConfigError as exc:
        raise ArgumentError("compare_proxies", "seeds", exc.problem) from None
    metric = preset.reference.metric
    table_path, table = preset_reference(preset, data)
    check_writable(preset.study.output, "[study].out_dir")  # the scores' cache
    out = output_folder(out_dir, preset.study.output / "compare")
    reference = reference_accuracy(table, metric)
    archs = [ArchSpec.parse(a) for a in reference.index]
    seed_values = preset.training.seed_values(n_seeds)
    reference_seconds = float(table["seconds"].sum(min_count=1))  # NaN for an imported table without timings

    scores: dict[str, pd.Series] = {}
    cost: dict[str, tuple[float, float]] = {}
    fitted_on: dict[str, int] = {}  # reference trainings a fitted proxy learnt from: part of its cost
    calibrations: dict[str, Calibration] = {}  # fitted proxies: figured by the honest estimate, not their own scores
    for name in dict.fromkeys(m for members in parsed for m in members):  # each base proxy once, in order
        proxy = make_proxy(name, preset, data, progress=progress)
        rows = score_archs(proxy, archs, seed_values, preset, data, progress=progress)
        scores[name] = rows.groupby("arch")["score"].mean()
        cost[name] = (float(rows["seconds"].sum()), proxy.setup_seconds)
        fit = proxy.calibration.archs if proxy.calibration is not None else ()
        fitted_on[name] = int(table["arch"].isin(fit).sum())
        if proxy.calibration is not None:
            calibrations[name] = proxy.calibration

    records = []
    for members in parsed:
        name = "+".join(members)
        if len(members) > 1:
            scores[name] = rank_ensemble([scores[m] for m in members])
        seconds = sum(cost[m][0] for m in members)
        setup = sum(cost[m][1] for m in members)
        if name in calibrations:
            agreement = honest_estimate(
                calibrations[name], reference=reference[list(calibrations[name].archs)], n_boot=n_boot, seed=seed
            )
        else:
            agreement = rank_agreement(scores[name], reference, n_boot=n_boot, seed=seed)
        records.append(
            {
                "proxy": name,
                "seeds": n_seeds,
                **agreement.row(),
                "seconds": seconds,
                "setup_seconds": setup,
                "reference_runs": max(fitted_on[m] for m in members),
            }
        )
    ceiling = _ceiling(table, metric, n_boot, seed)
    if ceiling is not None:
        records.append(ceiling)
    frame = pd.DataFrame(records)
    frame["cost_ratio"] = frame["seconds"] / reference_seconds
    frame["cost_ratio_with_setup"] = (frame["seconds"] + frame["setup_seconds"]) / reference_seconds
    frame["reference_seconds"] = reference_seconds
    score_frame = pd.DataFrame({"+".join(m): scores["+".join(m)] for m in parsed})
    comparison = Comparison(preset.study.name, frame, score_frame, reference)

    timing = f"{reference_seconds:.0f} s in total" if reference_seconds == reference_seconds else "not timed"
    header = (
        f"# {preset.study.name}: proxies against the full-data reference\n\n"
        f"{len(reference)} reference architectures ({metric}, {len(table)} trainings, {timing}, table "
        f"{table_path}; {reference_protocol(preset.reference, table_path, data.name)}); scores averaged over "
        f"{n_seeds} seed(s). Cost is the "
        f"proxy's own seconds over all of them; setup (condensation, scoring the fit's architectures) is paid "
        f"once per data set and shown apart. `calibrated` and `factors` are fitted on the reference itself: "
        f"their figures are the honest estimate (5-fold cross-validation repeated 20 times, the features and "
        f"penalty chosen inside every training fold), scores.csv holds their leave-one-out predictions, and "
        f"the reference trainings they learnt from count in their cost.\n\n"
    )
    text = (
        header + comparison.markdown() + "\n\nMean rank error per architecture choice (proxy rank - reference "
        "rank over the networks with it; > 0: the proxy over-rates them)\n\n" + comparison.bias_markdown() + "\n"
    )
    files = [
        atomic_write(out / "compare.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        atomic_write(out / "compare.md", lambda tmp: tmp.write_text(text)),
        atomic_write(
            out / "scores.csv", lambda tmp: score_frame.assign(reference=reference).rename_axis("arch").to_csv(tmp)
        ),
        atomic_write(out / "bias.csv", lambda tmp: comparison.bias.to_csv(tmp, index=False)),
    ]
    if plot:
        figure = comparison_scatter(frame, score_frame, reference, metric, out / "compare.png")
        if figure is not None:
            files.append(figure)
    return dataclasses.replace(comparison, files=files)


__all__ = ["CEILING", "Comparison", "compare_proxies"]
