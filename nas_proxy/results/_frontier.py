"""What each way of ranking buys: ranking quality against cost, every method on the same reference.

``nas-proxy frontier PRESET`` scores the reference table's architectures with every method of the
families asked for and measures each ranking against the reference:

- ``zero-cost``: grad_norm, naswot, synflow at initialisation, as they are;
- ``subset``: a network trained on a random real subset of ``ipc`` images per class ([training] protocol);
- ``dm``: the same on the preset's DM set at each ``ipc`` (condensed once per size);
- ``short``: the reference's own protocol and schedule on the full training data, cut to a fraction
  of its optimiser steps (the baseline a NAS user reaches for first);
- ``sample``: the reference's protocol, all its epochs, on a class-balanced random sample of a fraction of the
  training data (fewer images for more passes than ``short`` at the same cost);
- ``warm``: a network trained on the DM set (``[training]`` protocol), then ``short`` on the full data from there;
- ``ensemble``: the zero-cost scores of ``[score].features`` (default grad_norm and naswot), alone and with each
  trained method's score of the other families asked for, as the ``ensemble`` proxy combines them
  (:class:`~nas_proxy.scoring.Anchor`: the mean quantile); each half of the reference architectures is ranked
  against the other half as its anchor, as a study ranks against an anchor sample of the space (no reference run);
- ``halving``: successive halving on real data: every architecture trained for the shortest budget,
  the best ``1/[score].reduction_factor`` for the next; ranked by the longest budget each reached;
- ``calibrated``: the calibration (:mod:`nas_proxy.scoring._calibration`) on the factors and zero-cost scores,
  fitted on k reference architectures (drawn uniformly, spread over the choices, or grown from a
  spread start where the fit is least certain: fewer reference runs), and with a short-training
  score, for all architectures or (multi-fidelity) for the promoted fraction only.

Every trained method is read out in each of ``readouts`` (:data:`~nas_proxy.method.READOUTS`: the final
validation accuracy, the training loss over the run or its end, ...) from the same cached runs. Only the
``calibrated`` family needs reference runs (``needs_reference``); the reference-free front is marked apart.

Every figure is honest: methods without a fit are scored directly; fitted ones by repeated nested
k-fold (:func:`~nas_proxy.scoring._calibration.resampled_predictions`), every choice made inside each
training fold. Cost is the arithmetic (forward FLOPs x images, a training pass counted as three)
of ranking the whole space that way (condensation, every candidate's training and evaluation,
the reference runs a fit uses) as a fraction of training every architecture of the space once on
the full data with the reference protocol. Scores are cached per method, so an interrupted
frontier continues and a later one with more families reuses what is done.

Example:
    >>> from nas_proxy.results import FAMILIES
    >>> FAMILIES
    ('zero-cost', 'subset', 'dm', 'short', 'sample', 'warm', 'ensemble', 'halving', 'calibrated')
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nas_proxy._config import shown
from nas_proxy._io import atomic_write, check_writable, output_folder
from nas_proxy.config import Preset, ReferenceConfig
from nas_proxy.data import Dataset
from nas_proxy.errors import ArgumentError, ConfigError, NasProxyError
from nas_proxy.method import READOUTS
from nas_proxy.method._config import EPOCHS_LIMIT, STEPS_LIMIT
from nas_proxy.reference import N_BOOT, fit_reference, reference_accuracy
from nas_proxy.reference._reference import fit_seeds, preset_reference
from nas_proxy.results._families import FIGURES, Fit, Reference, calibrated, ensembles, halving, plain, zero_features
from nas_proxy.results._methods import (
    DM,
    FAMILIES,
    IPCS,
    READOUT,
    SAMPLES,
    SHORT,
    Costs,
    Protocols,
    Short,
    base_scores,
    sample_ipc,
    short_epochs,
)
from nas_proxy.results._plots import frontier_plot
from nas_proxy.results._render import frontier_markdown
from nas_proxy.results._rows import Ranked
from nas_proxy.scoring._calibration import MIN_FIT
from nas_proxy.scoring._make import short_training
from nas_proxy.space import ArchSpec, SearchSpace

FIT_SIZES = (10, 20, 30)  # reference architectures a calibration is fitted on (besides all of them)


@dataclass(frozen=True)
class Frontier:
    """``table``: one row per method (family, method, cost, the honest figures, ``pareto``); ``files``: written."""

    name: str
    table: pd.DataFrame
    files: list[Path] = field(default_factory=list)

    def markdown(self) -> str:
        return frontier_markdown(self.table)


def _check_arguments(
    preset: Preset,
    families: Sequence[str],
    ipcs: Sequence[int],
    dm_ipcs: Sequence[int] | None,
    short: Sequence[float],
    fit_sizes: Sequence[int],
    data: Dataset,
    samples: Sequence[float],
    readouts: Sequence[str],
) -> None:
    """Every value of :func:`run_frontier`'s lists, checked before any scoring: a bad one found at its turn would
    lose the hours of scoring before it. ``data``: its training split's size turns budgets into steps and
    fractions into images per class."""
    _check_families(families, short)
    bad = next((r for r in readouts if r not in READOUTS), None)
    if bad is not None:
        raise ArgumentError(
            "run_frontier", "readouts", f"holds {bad!r}, not a readout; choose from {', '.join(READOUTS)}"
        )
    _check_samples(samples, data)
    for parameter, sizes in (("ipcs", ipcs), ("dm_ipcs", dm_ipcs or ())):
        for ipc in sizes:
            try:
                dataclasses.replace(preset.condense, ipc=ipc)  # [condense] checks a set's size, condensed or drawn
            except ConfigError as exc:
                raise ArgumentError("run_frontier", parameter, exc.problem) from None
    _check_short(short, preset, data)
    for size in fit_sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < MIN_FIT:
            raise ArgumentError(
                "run_frontier",
                "fit_sizes",
                f"holds {shown(size)}; each must be a whole number of reference architectures, at least {MIN_FIT} "
                f"(a calibration cannot fit the factors on fewer)",
            )


def _check_families(families: Sequence[str], short: Sequence[float]) -> None:
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise NasProxyError(f"unknown frontier family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    if "halving" in families and len(short) < (1 if "dm" in families else 2):  # a DM set can be the first rung
        raise ArgumentError(
            "run_frontier",
            "short",
            "needs at least two budgets for the halving family (its rungs), or one with the dm family (its first)",
        )


def _check_samples(samples: Sequence[float], data: Dataset) -> None:
    for fraction in samples:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
            raise ArgumentError(
                "run_frontier",
                "samples",
                f"holds {shown(fraction)}; each must be a fraction of the training data, above 0 and at most 1",
            )
        try:
            data.check_ipc(sample_ipc(data, fraction))
        except NasProxyError as exc:
            raise ArgumentError("run_frontier", "samples", f"holds {shown(fraction)}, which {exc}") from None


def _check_short(short: Sequence[float], preset: Preset, data: Dataset) -> None:
    reference = preset.reference.training
    images = len(data.train)
    for fraction in short:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise ArgumentError(
                "run_frontier",
                "short",
                f"holds {shown(fraction)}; each must be a fraction of the reference's optimiser steps, between 0 "
                f"and 1 (both excluded)",
            )
        # The budget as `short` trains it: a limit on its passes or steps is said as one on this fraction
        epochs = short_epochs(reference, fraction, images)
        try:
            short_training(reference, epochs, images)  # refuses more than STEPS_LIMIT steps
            too_long = epochs > EPOCHS_LIMIT  # [score].short_epochs' own limit
        except ConfigError:
            too_long = True
        if too_long:
            total = reference.optimiser_steps(images)
            steps = fraction * total
            raise ArgumentError(
                "run_frontier",
                "short",
                f"holds {shown(fraction)}, a budget too long to train: {shown(fraction)} of the reference's "
                f"{total:,} optimiser steps is {steps:,.0f} steps, "
                f"{steps / reference.batches(images):,.0f} passes over the {images:,} training images (a run trains "
                f"at most {STEPS_LIMIT:,} steps and {EPOCHS_LIMIT:,} passes: longer would run for weeks); use a "
                f"smaller one",
            ) from None


def run_frontier(
    preset: Preset,
    data: Dataset,
    *,
    families: Sequence[str] = FAMILIES,
    ipcs: Sequence[int] = IPCS,
    dm_ipcs: Sequence[int] | None = None,
    short: Sequence[float] = SHORT,
    fit_sizes: Sequence[int] = FIT_SIZES,
    samples: Sequence[float] = SAMPLES,
    readouts: Sequence[str] = (READOUT,),
    n_boot: int = N_BOOT,
    seed: int = 0,
    out_dir: str | Path | None = None,
    plot: bool = True,
    progress: bool = True,
) -> Frontier:
    """Measure every method of ``families`` on the preset's reference table; write ``frontier.csv``, ``.md``, ``.png``.

    ``ipcs`` are the subset and DM sizes (``dm_ipcs``, when given, the DM ones: each is a condensation), ``short``
    the fractions of the reference's steps, ``fit_sizes`` the numbers of reference architectures calibrations are
    fitted on (and all), ``samples`` the fractions of the training data the ``sample`` family trains on,
    ``readouts`` how every trained method's runs are read (:data:`~nas_proxy.method.READOUTS`; the halving and
    calibrated families use the first). The calibration uses the reference seeds ``[reference].seeds`` names (its
    cost counts them);
    every ranking is scored against the mean over all the table's seeds.
    """
    _check_arguments(preset, families, ipcs, dm_ipcs, short, fit_sizes, data, samples, readouts)
    data.check(preset.data)
    path, table = preset_reference(preset, data)
    space = preset.space()
    check_writable(preset.study.output, "[study].out_dir")  # the scores' cache, and the DM sets
    out = output_folder(out_dir, preset.study.output / "frontier")
    reference = _reference(table, preset.reference, space, n_boot, seed)
    archs = [ArchSpec.parse(a) for a in reference.accuracy.index]
    costs = Costs(Protocols.of(preset), space, data, archs)
    scored = [*base_scores(preset, data, archs, families, ipcs, short, progress, dm_ipcs, samples, readouts).values()]
    first = readouts[0] if readouts else READOUT
    rf = preset.score.reduction_factor
    zero = [s for name in zero_features(preset.score.features) for s in scored if s.method is None and s.label == name]
    rungs = [s for s in scored if s.readout == first]
    rows = plain(scored, families, reference)
    if "ensemble" in families:
        rows += ensembles(scored, zero, reference)
    if "halving" in families:
        shorts = [s for s in rungs if isinstance(s.method, Short)]
        dms = [s for s in rungs if isinstance(s.method, DM)]  # present only with the dm family
        rows += halving(shorts, dms, rf, costs, reference)
    if "calibrated" in families:
        rows += calibrated(scored, zero, first, fit_sizes, Fit(reference, costs, space, rf))
    return _write(preset, rows, reference, path, table, space, out, plot)


def _reference(table: pd.DataFrame, config: ReferenceConfig, space: SearchSpace, n_boot: int, seed: int) -> Reference:
    """The reference every method is scored against: the table's architectures of ``space``, the mean over all its
    seeds, and what a calibration learns from (``config``'s seeds)."""
    accuracy = reference_accuracy(table, config.metric)
    accuracy = accuracy[[a in space for a in map(ArchSpec.parse, accuracy.index)]]
    fit_accuracy = fit_reference(table, config)[accuracy.index]
    return Reference(accuracy, fit_accuracy, fit_seeds(table, config), n_boot, seed)


def _write(
    preset: Preset,
    rows: list[Ranked],
    reference: Reference,
    path: Path,
    table: pd.DataFrame,
    space: SearchSpace,
    out: Path,
    plot: bool,
) -> Frontier:
    """frontier.csv (a row per method, its Pareto fronts), frontier.md and, with matplotlib, frontier.png."""
    frame = pd.DataFrame([_row(r) for r in rows])
    frame["pareto"] = _pareto(frame, "spearman")
    frame["pareto_top20"] = _pareto(frame, "top20_spearman")
    free = frame[~frame["needs_reference"]]  # the front of rankings with no reference run at all
    frame["pareto_noref"] = _pareto(free, "spearman").reindex(frame.index, fill_value=False)
    frontier = Frontier(preset.study.name, frame)
    n = len(reference.accuracy)
    header = (
        f"# {preset.study.name}: ranking quality against cost\n\n"
        f"{n} reference architectures ({preset.reference.metric}, mean over {table['seed'].nunique()} seed(s), "
        f"{path}); calibrations fitted on seed(s) {', '.join(map(str, reference.seed_values))}. Methods without a fit "
        f"are scored as they are; fitted ones by nested 5-fold cross-validation repeated 20 times (every choice "
        f"made inside each training fold). Cost: the arithmetic of ranking the whole {space.name} space "
        f"that way, reference runs included, over training each of its {len(space)} architectures once "
        f"with the reference protocol.\n\n"
    )
    files = [
        atomic_write(out / "frontier.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        atomic_write(out / "frontier.md", lambda tmp: tmp.write_text(header + frontier.markdown() + "\n")),
    ]
    if plot:
        figure = frontier_plot(frame, out / "frontier.png", f"{preset.study.name}: {n} reference archs")
        if figure is not None:
            files.append(figure)
    return dataclasses.replace(frontier, files=files)


def _row(r: Ranked) -> dict[str, Any]:
    """A method's row of frontier.csv: a fitted one also says how many reference architectures it used."""
    fitted = {"reference_archs": r.reference_archs, "reference_cost": r.reference_cost} if r.needs_reference else {}
    return {
        "family": r.family,
        "method": r.name,
        "cost": r.cost,
        "needs_reference": r.needs_reference,
        **r.figures(FIGURES),
        **fitted,
    }


def _pareto(frame: pd.DataFrame, key: str) -> pd.Series:
    """Whether each method is on the Pareto front of cost against ``key`` (no other is as cheap and better, or
    cheaper and as good). A method without the figure (a top-20 Spearman on fewer than 40 architectures) is on no
    front: the table would mark a blank cell as a best trade-off."""
    cost, value = frame["cost"].to_numpy(float), frame[key].to_numpy(float)
    front = [
        not math.isnan(value[i])
        and not any(
            (cost[j] <= cost[i] and value[j] > value[i]) or (cost[j] < cost[i] and value[j] >= value[i])
            for j in range(len(frame))
        )
        for i in range(len(frame))
    ]
    return pd.Series(front, index=frame.index)


__all__ = ["FIT_SIZES", "Frontier", "run_frontier"]
