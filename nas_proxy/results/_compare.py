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
    >>> path = reference_table_path(preset.study.output, preset.data, preset.reference)
    >>> table = run_reference(preset.reference, data, archs, path, progress=False)
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
from nas_proxy.results._rows import Ranked
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
        frames = [factor_bias(self.scores[name], self.reference).assign(proxy=str(name)) for name in self.scores]
        return pd.concat(frames, ignore_index=True)[["proxy", "axis", "value", "n", "rank_error"]]

    def bias_markdown(self) -> str:
        """Mean rank error per choice (rows) and proxy (columns): > 0 over-rated, < 0 under-rated."""
        return bias_markdown(self.bias, list(self.scores.columns))

    def markdown(self) -> str:
        """The table as a readable markdown table: correlations with their intervals, costs in seconds."""
        return comparison_markdown(self.table)


def _ceiling(table: pd.DataFrame, metric: str, n_boot: int, seed: int) -> Ranked | None:
    """The reference's own seed-to-seed agreement, costing one seed's trainings: the ceiling for any proxy."""
    agreement = seed_ceiling(table, metric, n_boot=n_boot, seed=seed)
    if agreement is None:
        return None
    first = table[table["seed"] == sorted(table["seed"].unique())[0]]
    return Ranked(CEILING, agreement, cost=float(first["seconds"].sum(min_count=1)), reference_archs=0)


def _table(rows: list[Ranked], seeds: int, reference_seconds: float) -> pd.DataFrame:
    """compare.csv: a row per proxy, every figure, its seconds and their share of the reference's."""
    frame = pd.DataFrame(
        [
            {
                "proxy": r.name,
                "seeds": 1 if r.name == CEILING else seeds,
                **r.figures(),
                "seconds": r.cost,
                "setup_seconds": r.setup,
                "reference_runs": r.reference_archs,
            }
            for r in rows
        ]
    )
    frame["cost_ratio"] = frame["seconds"] / reference_seconds
    frame["cost_ratio_with_setup"] = (frame["seconds"] + frame["setup_seconds"]) / reference_seconds
    frame["reference_seconds"] = reference_seconds
    return frame


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
        raise ArgumentError("compare_proxies", "proxies", "is empty; pass e.g. dm,subset,short,synflow,naswot,params")
    return parsed


@dataclass(frozen=True)
class _Base:
    """One base proxy scored on the reference architectures: its mean score per architecture, its seconds and setup,
    the reference trainings a fitted one learnt from, and its calibration (a fitted proxy is figured by the honest
    estimate, not by its own scores)."""

    scores: pd.Series
    seconds: float
    setup: float
    fitted_on: int
    calibration: Calibration | None


def _score_base(
    preset: Preset,
    data: Dataset,
    parsed: list[list[str]],
    archs: list[ArchSpec],
    seed_values: list[int],
    table: pd.DataFrame,
    progress: bool,
) -> dict[str, _Base]:
    """Each base proxy the comparison names, once, in order, by name."""
    out = {}
    for name in dict.fromkeys(m for members in parsed for m in members):
        proxy = make_proxy(name, preset, data, progress=progress)
        rows = score_archs(proxy, archs, seed_values, data, preset.study.output, progress=progress)
        fit = proxy.calibration.archs if proxy.calibration is not None else ()
        out[name] = _Base(
            rows.groupby("arch")["score"].mean(),
            float(rows["seconds"].sum()),
            proxy.setup_seconds,
            int(table["arch"].isin(fit).sum()),
            proxy.calibration,
        )
    return out


def _measure(
    members: list[str], base: dict[str, _Base], reference: pd.Series, n_boot: int, seed: int
) -> tuple[Ranked, pd.Series]:
    """A proxy, or a rank ensemble of ``members``, against the reference, and its scores; its cost is its
    members'."""
    name, calibration = "+".join(members), base[members[0]].calibration if len(members) == 1 else None
    scores = base[name].scores if len(members) == 1 else rank_ensemble([base[m].scores for m in members])
    if calibration is not None:
        agreement = honest_estimate(calibration, reference=reference[list(calibration.archs)], n_boot=n_boot, seed=seed)
    else:
        agreement = rank_agreement(scores, reference, n_boot=n_boot, seed=seed)
    row = Ranked(
        name,
        agreement,
        cost=sum(base[m].seconds for m in members),
        setup=sum(base[m].setup for m in members),
        reference_archs=max(base[m].fitted_on for m in members),
    )
    return row, scores


def _header(
    comparison: Comparison, table: pd.DataFrame, source: str, seeds: int, reference_seconds: float, metric: str
) -> str:
    timing = f"{reference_seconds:.0f} s in total" if reference_seconds == reference_seconds else "not timed"
    return (
        f"# {comparison.name}: proxies against the full-data reference\n\n"
        f"{len(comparison.reference)} reference architectures ({metric}, {len(table)} trainings, {timing}, table "
        f"{source}); scores averaged over {seeds} seed(s). Cost is the "
        f"proxy's own seconds over all of them; setup (condensation, scoring the fit's architectures) is paid "
        f"once per data set and shown apart. `calibrated` and `factors` are fitted on the reference itself: "
        f"their figures are the honest estimate (5-fold cross-validation repeated 20 times, the features and "
        f"penalty chosen inside every training fold), scores.csv holds their leave-one-out predictions, and "
        f"the reference trainings they learnt from count in their cost.\n\n"
    )


def _write(comparison: Comparison, header: str, out: Path, plot: bool, metric: str) -> list[Path]:
    """compare.csv, compare.md, scores.csv, bias.csv and, with matplotlib, compare.png."""
    frame, scores, reference = comparison.table, comparison.scores, comparison.reference
    text = (
        header + comparison.markdown() + "\n\nMean rank error per architecture choice (proxy rank - reference "
        "rank over the networks with it; > 0: the proxy over-rates them)\n\n" + comparison.bias_markdown() + "\n"
    )
    files = [
        atomic_write(out / "compare.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        atomic_write(out / "compare.md", lambda tmp: tmp.write_text(text)),
        atomic_write(
            out / "scores.csv", lambda tmp: scores.assign(reference=reference).rename_axis("arch").to_csv(tmp)
        ),
        atomic_write(out / "bias.csv", lambda tmp: comparison.bias.to_csv(tmp, index=False)),
    ]
    if plot:
        figure = comparison_scatter(frame, scores, reference, metric, out / "compare.png")
        if figure is not None:
            files.append(figure)
    return files


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

    base = _score_base(preset, data, parsed, archs, seed_values, table, progress)
    measured = [_measure(members, base, reference, n_boot, seed) for members in parsed]
    ceiling = _ceiling(table, metric, n_boot, seed)
    rows = [row for row, _ in measured] + ([ceiling] if ceiling is not None else [])
    frame = _table(rows, n_seeds, reference_seconds)
    score_frame = pd.DataFrame({row.name: scores for row, scores in measured})
    comparison = Comparison(preset.study.name, frame, score_frame, reference)

    note = reference_protocol(preset.reference, table_path, data.name)
    header = _header(comparison, table, f"{table_path}; {note}", n_seeds, reference_seconds, metric)
    files = _write(comparison, header, out, plot, metric)
    return dataclasses.replace(comparison, files=files)


__all__ = ["CEILING", "Comparison", "compare_proxies"]
