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
k-fold (:func:`~nas_proxy.scoring.resampled_predictions`), every choice made inside each
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

import numpy as np
import pandas as pd

from nas_proxy._config import shown
from nas_proxy._io import atomic_write, check_writable, output_folder
from nas_proxy.config import Preset
from nas_proxy.data import Dataset
from nas_proxy.errors import ArgumentError, ConfigError, NasProxyError
from nas_proxy.method import READOUTS, count_flops
from nas_proxy.method._condense import embedding_archs
from nas_proxy.method._config import EPOCHS_LIMIT, STEPS_LIMIT
from nas_proxy.reference import N_BOOT, Agreement, fit_reference, rank_agreement, reference_accuracy
from nas_proxy.reference._reference import fit_seeds, preset_reference
from nas_proxy.results._plots import frontier_plot
from nas_proxy.results._render import frontier_markdown
from nas_proxy.scoring import Anchor, Calibration, Proxy, TrainedProxy, make_proxy, score_archs
from nas_proxy.scoring._calibration import MIN_FIT, resampled_agreement, resampled_predictions
from nas_proxy.scoring._proxies import early_training
from nas_proxy.space import ArchSpec

FAMILIES = ("zero-cost", "subset", "dm", "short", "sample", "warm", "ensemble", "halving", "calibrated")
ZERO_COST = ("grad_norm", "naswot", "synflow")
ZERO_COST_PASSES = {"grad_norm": 3, "naswot": 1, "synflow": 3}  # image passes per batch image (backward = 2)
IPCS = (1, 10, 50)
SHORT = (0.02, 0.05, 0.1, 0.2)  # fractions of the reference's optimiser steps
SAMPLES = (0.01, 0.05, 0.1)  # fractions of the training data
READOUT = "val_acc"  # the readout of a method's plain label; the others are named after it
FIT_SIZES = (10, 20, 30)  # reference architectures a calibration is fitted on (besides all of them)


@dataclass(frozen=True)
class Scored:
    """One base proxy's scores on the reference architectures and its cost per architecture, as a fraction of
    that architecture's reference training (the same for every architecture: both scale with its FLOPs)."""

    label: str
    scores: pd.Series
    cost: float
    setup: float = 0.0  # one-off arithmetic (condensation), as a fraction of the whole space's reference cost
    readout: str | None = None  # a trained proxy's: how its runs were read (nas_proxy.method.READOUTS)


@dataclass(frozen=True)
class Frontier:
    """``table``: one row per method (family, method, cost, the honest figures, ``pareto``); ``files``: written."""

    name: str
    table: pd.DataFrame
    files: list[Path] = field(default_factory=list)

    def markdown(self) -> str:
        return frontier_markdown(self.table)


def short_label(fraction: float) -> str:
    """The method name of short training at ``fraction`` of the reference's steps: ``short 5%``, ``short 2.5%``."""
    return f"short {100 * fraction:.4g}%"


def sample_label(fraction: float) -> str:
    """The method name of training on a sample of ``fraction`` of the training data: ``sample 5%``."""
    return f"sample {100 * fraction:.4g}%"


def _read_as(label: str, readout: str) -> str:
    return label if readout == READOUT else f"{label} {readout}"


def _sample_ipc(data: Dataset, fraction: float) -> int:
    """Images per class of a class-balanced sample holding ``fraction`` of the training data (at least 1)."""
    return max(1, round(fraction * len(data.train) / data.num_classes))


def _short_preset(preset: Preset, fraction: float, images: int) -> Preset:
    """``early`` at ``fraction`` of the reference's optimiser steps on ``images`` training images, as passes."""
    reference = preset.reference.training
    passes = reference.optimiser_steps(images) / reference.batches(images)
    # 12 digits: 0.05 x 6 is 0.30000000000000004 in floating point, and the score cache is keyed on the value
    score = dataclasses.replace(preset.score, early_epochs=float(f"{fraction * passes:.12g}"))
    return dataclasses.replace(preset, score=score)


def _ipc_preset(preset: Preset, ipc: int) -> Preset:
    return dataclasses.replace(preset, condense=dataclasses.replace(preset.condense, ipc=ipc))


class _Costs:
    """Arithmetic of each kind of work, relative to the reference training of one architecture or the space."""

    def __init__(self, preset: Preset, data: Dataset, archs: Sequence[ArchSpec]) -> None:
        size = (data.channels, data.num_classes, data.image_size)
        self.flops = pd.Series({a.id: count_flops(a, *size) for a in archs}, dtype=float)
        self.space_flops = float(sum(count_flops(a, *size) for a in preset.space().archs()))
        # per FLOP of the arch: what the reference trains, epochs or steps
        self.reference_images = preset.reference.training.presentations(len(data.train)) * 3
        self.val = len(data.val)
        embedding = embedding_archs(preset.condense, data.image_size)  # one drawn per iteration: their mean
        self.embed_flops = float(np.mean([count_flops(a, *size) for a in embedding]))
        self.classes = data.num_classes

    def per_arch(self, train_images: float, evaluations: int = 1) -> float:
        """Training on ``train_images`` image presentations, then ``evaluations`` passes over the validation split."""
        return (3 * train_images + evaluations * self.val) / self.reference_images

    def of_archs(self, archs: Sequence[str], seeds: int = 1) -> float:
        """Reference runs of ``archs`` as a fraction of the whole space's."""
        return seeds * float(self.flops[list(archs)].sum()) / self.space_flops

    def share(self, archs: Sequence[str]) -> float:
        """The share of the reference architectures' arithmetic that ``archs`` hold (for a promoted fraction)."""
        return float(self.flops[list(archs)].sum() / self.flops.sum())

    def condensation(self, ipc: int, iterations: int, batch_real: int) -> float:
        """DM: per iteration and class, a forward pass of the real batch, forward and backward of the synthetic."""
        work = iterations * self.classes * (batch_real + 3 * ipc) * self.embed_flops
        return work / (self.space_flops * self.reference_images)


def _score(preset: Preset, data: Dataset, proxy: str | Proxy, archs: list[ArchSpec], progress: bool) -> pd.Series:
    scorer = make_proxy(proxy, preset, data, progress=progress) if isinstance(proxy, str) else proxy
    rows = score_archs(scorer, archs, [preset.training.seed], preset, data, progress=progress)
    return rows.groupby("arch")["score"].mean()


def base_scores(
    preset: Preset,
    data: Dataset,
    archs: list[ArchSpec],
    families: Sequence[str] = FAMILIES,
    ipcs: Sequence[int] = IPCS,
    short: Sequence[float] = SHORT,
    progress: bool = True,
    dm_ipcs: Sequence[int] | None = None,
    samples: Sequence[float] = SAMPLES,
    readouts: Sequence[str] = (READOUT,),
) -> dict[str, Scored]:
    """Every base proxy the ``families`` need, scored (or read from the cache) on ``archs``, by label
    (``grad_norm``, ``random ipc 10``, ``dm ipc 10``, ``short 5%``, ``sample 5%``; a trained one read out
    otherwise than by its final accuracy: ``short 5% tse_e``). Every readout of a method reads the same runs."""
    costs = _Costs(preset, data, archs)
    out: dict[str, Scored] = {}

    def trained(label: str, variant: Preset, proxy: str | TrainedProxy, images: int, setup: float = 0.0) -> None:
        made = make_proxy(proxy, variant, data, progress=progress) if isinstance(proxy, str) else proxy
        assert isinstance(made, TrainedProxy)  # dm, random and early
        for readout in readouts:  # the same runs (one cache), read each way
            read, reader = _read_as(label, readout), READOUTS[readout]
            scores = _score(variant, data, dataclasses.replace(made, readout=reader), archs, progress)
            cost = costs.per_arch(images, 1 + len(reader.val_points))
            out[read] = Scored(read, scores, cost, setup, readout)

    if {"zero-cost", "ensemble", "calibrated"} & set(families):
        for name in ZERO_COST:
            passes = ZERO_COST_PASSES[name] * (1 if name == "synflow" else preset.score.batch_size)
            out[name] = Scored(name, _score(preset, data, name, archs, progress), passes / costs.reference_images)
    if "subset" in families:
        for ipc in ipcs:
            images = preset.training.presentations(ipc * data.num_classes)
            trained(f"random ipc {ipc}", _ipc_preset(preset, ipc), "random", images)
    if "dm" in families:
        for ipc in ipcs if dm_ipcs is None else dm_ipcs:  # each size is a condensation
            images = preset.training.presentations(ipc * data.num_classes)
            setup = costs.condensation(ipc, preset.condense.iterations, preset.condense.batch_real)
            trained(f"dm ipc {ipc}", _ipc_preset(preset, ipc), "dm", images, setup)
    if {"short", "halving", "calibrated"} & set(families):
        for fraction in short:
            shortened = _short_preset(preset, fraction, len(data.train))
            config = early_training(preset.reference.training, shortened.score.early_epochs, len(data.train))
            trained(short_label(fraction), shortened, "early", config.presentations(len(data.train)))
    if "warm" in families:
        for ipc in ipcs if dm_ipcs is None else dm_ipcs:
            sized = _ipc_preset(preset, ipc)
            syn = make_proxy("dm", sized, data, progress=progress)
            assert isinstance(syn, TrainedProxy)
            warm_images = preset.training.presentations(ipc * data.num_classes)
            setup = costs.condensation(ipc, preset.condense.iterations, preset.condense.batch_real)
            for fraction in short:
                shortened = _short_preset(preset, fraction, len(data.train))
                early = make_proxy("early", shortened, data, progress=progress)
                assert isinstance(early, TrainedProxy)
                warmed = dataclasses.replace(
                    early,
                    name="warm",
                    warm_on=syn.trains_on,
                    warm_config=syn.config,
                    warm_split=syn.training_set(0),
                )
                images = warm_images + early.config.presentations(len(data.train))
                trained(f"dm ipc {ipc} + {short_label(fraction)}", shortened, warmed, images, setup)
    if "sample" in families:
        reference = preset.reference.training
        for fraction in samples:
            ipc = _sample_ipc(data, fraction)
            proxy = TrainedProxy(
                name="sample",
                trains_on={"ipc": ipc},
                config=reference,
                data=data,
                training_set=lambda seed, ipc=ipc: data.sample_per_class(ipc, seed=seed),
            )
            trained(sample_label(fraction), preset, proxy, reference.presentations(ipc * data.num_classes))
    return out


def _zero_features(preset: Preset) -> list[str]:
    """The zero-cost scores the calibrated and ensemble families combine: the preset's features among them."""
    return [f for f in preset.score.features if f in ZERO_COST] or ["grad_norm", "naswot"]


def _cross_anchored(members: Sequence[Scored], seed: int) -> pd.Series:
    """The ensemble of ``members``' scores, each half of the architectures (a permutation drawn with ``seed``) read
    against the other half as its anchor: no architecture is ranked against its own scores."""
    frame = pd.DataFrame({m.label: m.scores for m in members})
    order = np.random.default_rng(seed).permutation(len(frame))
    halves = [frame.index[order[: len(frame) // 2]], frame.index[order[len(frame) // 2 :]]]
    out = pd.Series(np.nan, index=frame.index)
    for ranked, anchor in (halves, halves[::-1]):
        combined = Anchor.of(frame.loc[anchor]).combine({c: frame.loc[ranked, c] for c in frame.columns})
        out[ranked] = combined
    return out


def _row(family: str, method: str, cost: float, agreement: Agreement, **extra: Any) -> dict[str, Any]:
    keep = (
        "n",
        "spearman",
        "spearman_low",
        "spearman_high",
        "kendall",
        "top10_spearman",
        "top20_spearman",
        "precision10",
        "regret",
    )
    row = agreement.row()
    return {
        "family": family,
        "method": method,
        "cost": cost,
        "needs_reference": family == "calibrated",  # the one family fitted on reference runs
        **{k: row.get(k, math.nan) for k in keep},
        **extra,
    }


def _fitted(
    first: Calibration,
    refined: Calibration | None,
    reduction_factor: int,
    truth: pd.Series,
    fit_size: int | None,
    choose: str,
    preset: Preset,
    n_boot: int,
    seed: int,
) -> tuple[Agreement, list[pd.Series], list[list[str]]]:
    """Honest figures of a calibrated ranking fitted on ``fit_size`` reference architectures of each training fold
    (None: all of them), drawn uniformly, spread over the choices, or grown where the fit is least certain
    (:meth:`~nas_proxy.scoring.Calibration.least_certain`); also the promoted and fitted archs."""
    space = preset.space()
    fitted_on: list[list[str]] = []

    def subset(train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if fit_size is None or fit_size >= len(train):
            picked = train
        elif choose in ("spread", "uncertain"):
            pool = [ArchSpec.parse(first.archs[i]) for i in train]
            index = {a: i for a, i in zip(pool, train)}
            start = fit_size if choose == "spread" else min(fit_size, MIN_FIT)
            picked = np.array([index[a] for a in space.spread(start, int(rng.integers(1 << 31)), among=pool)])
            if choose == "uncertain":
                picked = first.least_certain(picked, train, fit_size, rng)
        else:
            picked = rng.choice(train, fit_size, replace=False)
        fitted_on.append([first.archs[i] for i in picked])
        return picked

    predictions = resampled_predictions(first, refined, reduction_factor, fit_rows=subset, seed=seed)
    return resampled_agreement(predictions, truth, n_boot=n_boot, seed=seed), predictions, fitted_on


def _check_arguments(
    preset: Preset,
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
    reference = preset.reference.training
    images = len(data.train)
    bad = next((r for r in readouts if r not in READOUTS), None)
    if bad is not None:
        raise ArgumentError(
            "run_frontier", "readouts", f"holds {bad!r}, not a readout; choose from {', '.join(READOUTS)}"
        )
    for fraction in samples:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction <= 1:
            raise ArgumentError(
                "run_frontier",
                "samples",
                f"holds {shown(fraction)}; each must be a fraction of the training data, above 0 and at most 1",
            )
        try:
            data.check_ipc(_sample_ipc(data, fraction))
        except NasProxyError as exc:
            raise ArgumentError("run_frontier", "samples", f"holds {shown(fraction)}, which {exc}") from None
    for parameter, sizes in (("ipcs", ipcs), ("dm_ipcs", dm_ipcs or ())):
        for ipc in sizes:
            try:
                _ipc_preset(preset, ipc)  # [condense] checks a set's size, whether it is condensed or drawn
            except ConfigError as exc:
                raise ArgumentError("run_frontier", parameter, exc.problem) from None
    for fraction in short:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
            raise ArgumentError(
                "run_frontier",
                "short",
                f"holds {shown(fraction)}; each must be a fraction of the reference's optimiser steps, between 0 "
                f"and 1 (both excluded)",
            )
        try:  # the budget as `early` trains it: a limit on its passes or steps is said as one on this fraction
            early_training(reference, _short_preset(preset, fraction, images).score.early_epochs, images)
        except ConfigError:
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
    for size in fit_sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < MIN_FIT:
            raise ArgumentError(
                "run_frontier",
                "fit_sizes",
                f"holds {shown(size)}; each must be a whole number of reference architectures, at least {MIN_FIT} "
                f"(a calibration cannot fit the factors on fewer)",
            )


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
    the fractions of the reference's steps,
    ``fit_sizes`` the numbers of reference architectures calibrations are fitted on (and all), ``samples`` the
    fractions of the training data the ``sample`` family trains on, ``readouts`` how every trained method's runs
    are read (:data:`~nas_proxy.method.READOUTS`; the halving and calibrated families use the first).
    The calibration uses the reference seeds ``[reference].seeds`` names (its cost counts them);
    every ranking is scored against the mean over all the table's seeds.
    """
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise NasProxyError(f"unknown frontier family {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    if "halving" in families and len(short) < (1 if "dm" in families else 2):  # a DM set can be the first rung
        raise ArgumentError(
            "run_frontier",
            "short",
            "needs at least two budgets for the halving family (its rungs), or one with the dm family (its first)",
        )
    _check_arguments(preset, ipcs, dm_ipcs, short, fit_sizes, data, samples, readouts)
    data.check(preset.data)
    path, table = preset_reference(preset, data)
    space = preset.space()
    metric = preset.reference.metric
    check_writable(preset.study.output, "[study].out_dir")  # the scores' cache, and the DM sets
    out = output_folder(out_dir, preset.study.output / "frontier")
    truth = reference_accuracy(table, metric)
    truth = truth[[a in space for a in map(ArchSpec.parse, truth.index)]]
    seeds = fit_seeds(table, preset.reference)
    fit_truth = fit_reference(table, preset.reference)[truth.index]
    archs = [ArchSpec.parse(a) for a in truth.index]
    costs = _Costs(preset, data, archs)
    base = base_scores(preset, data, archs, families, ipcs, short, progress, dm_ipcs, samples, readouts)
    first = readouts[0] if readouts else READOUT
    rf = preset.score.reduction_factor
    rows = []

    def raw(family: str, scored: Scored) -> None:
        agreement = rank_agreement(scored.scores, truth, n_boot=n_boot, seed=seed)
        rows.append(_row(family, scored.label, scored.cost + scored.setup, agreement))

    for name in ZERO_COST if "zero-cost" in families else ():
        raw("zero-cost", base[name])
    dm_sizes = ipcs if dm_ipcs is None else dm_ipcs
    for family, labels in (
        ("subset", [f"random ipc {ipc}" for ipc in ipcs]),
        ("dm", [f"dm ipc {ipc}" for ipc in dm_sizes]),
        ("short", [short_label(f) for f in short]),
        ("sample", [sample_label(f) for f in samples]),
        ("warm", [f"dm ipc {ipc} + {short_label(f)}" for ipc in dm_sizes for f in short]),
    ):
        for label in labels if family in families else ():
            for readout in readouts:
                raw(family, base[_read_as(label, readout)])
    if "ensemble" in families:
        zero = [base[z] for z in _zero_features(preset)]
        trained = [scored for scored in base.values() if scored.readout is not None]
        for members in [zero, *(zero + [t] for t in trained)]:
            agreement = rank_agreement(_cross_anchored(members, seed), truth, n_boot=n_boot, seed=seed)
            cost = sum(m.cost + m.setup for m in members)  # the anchor's architectures are the space's: scored once
            rows.append(_row("ensemble", "ensemble " + " + ".join(m.label for m in members), cost, agreement))
    wanted = {"short", "halving", "calibrated"} & set(families)
    shorts = [base[_read_as(short_label(f), first)] for f in short] if wanted else []
    if "halving" in families:
        dms = [base[_read_as(f"dm ipc {ipc}", first)] for ipc in (dm_sizes if "dm" in families else ())]
        # the short budgets in turn, and a DM set as the first rung before each budget
        for low, high in [*zip(shorts, shorts[1:]), *((dm, high) for dm in dms for high in shorts)]:
            promoted = low.scores.sort_values(ascending=False).index[: math.ceil(len(low.scores) / rf)]
            # survivors above the rest (successive halving's order), each group by its own score
            ranking = low.scores.rank(pct=True)
            ranking[promoted] = 1 + high.scores[promoted].rank(pct=True)
            agreement = rank_agreement(ranking, truth, n_boot=n_boot, seed=seed)
            rows.append(
                _row(
                    "halving",
                    f"{low.label} -> best 1/{rf}: {high.label}",
                    low.cost + high.cost * costs.share(promoted),
                    agreement,
                )
            )
    if "calibrated" in families:

        def fit(features: Sequence[str]) -> Calibration:
            frame = pd.DataFrame({f: base[f].scores for f in features}, index=truth.index)
            return Calibration.fit(frame[list(features)], fit_truth, space)

        def fitted_row(
            method: str,
            first: Calibration,
            refined: Calibration | None,
            scoring: float,
            refine_cost: float,
            fit_size: int | None,
            choose: str = "uniform",
        ) -> None:
            agreement, predictions, fitted_on = _fitted(
                first, refined, rf, truth, fit_size, choose, preset, n_boot, seed
            )
            # A fit on all of them is estimated from training folds of 4/5 of them (a slightly pessimistic figure)
            # and costs all of them, as the study's fit does.
            fitted_on = fitted_on if fit_size is not None else [list(truth.index)]
            reference_cost = float(np.mean([costs.of_archs(a, len(seeds)) for a in fitted_on]))
            k = int(np.mean([len(a) for a in fitted_on]))
            promoted_share = 0.0
            if refined is not None:
                top = [p.sort_values(ascending=False).index[: math.ceil(len(p) / rf)] for p in predictions]
                promoted_share = float(np.mean([costs.share(t) for t in top]))
                # the promoted share of the space, plus the fit's own architectures scored at both fidelities
                refine_cost = refine_cost * promoted_share + refine_cost * reference_cost / len(seeds)
            rows.append(
                _row(
                    "calibrated",
                    method,
                    reference_cost + scoring + refine_cost,
                    agreement,
                    reference_archs=k,
                    reference_cost=reference_cost,
                )
            )

        zero = _zero_features(preset)
        zero_cost = sum(base[f].cost for f in zero)
        label = " + ".join(zero)
        fitted_row("factors alone", fit([]), None, 0.0, 0.0, None)
        for k in [*fit_sizes, None]:
            if k is not None and k >= len(truth) * (1 - 1 / 5):
                continue  # no fewer than a training fold holds
            fitted_row(f"factors + {label}, fitted on {k or 'all'}", fit(zero), None, zero_cost, 0.0, k)
            if k is not None:
                for choose in ("spread", "uncertain"):
                    fitted_row(f"factors + {label}, fitted on {k} {choose}", fit(zero), None, zero_cost, 0.0, k, choose)
        # short, subset, sample and DM in every readout: fitted on all the reference architectures and on each
        # spread fit size; as the promoted fraction's fidelity in the first readout
        for scored in (scored for scored in base.values() if scored.readout is not None):
            features = fit([*zero, scored.label])
            every = zero_cost + scored.cost + scored.setup  # a DM set's condensation is paid once, whatever trains
            fitted_row(f"factors + {label} + {scored.label}, all architectures", features, None, every, 0.0, None)
            for k in fit_sizes:
                if k < len(truth) * (1 - 1 / 5):  # no fewer than a training fold holds
                    method = f"factors + {label} + {scored.label}, fitted on {k} spread"
                    fitted_row(method, features, None, every, 0.0, k, "spread")
            if scored.readout == first:
                fitted_row(
                    f"factors + {label}, best 1/{rf} + {scored.label}",
                    fit(zero),
                    features,
                    zero_cost + scored.setup,
                    scored.cost,
                    None,
                )
    frame = pd.DataFrame(rows)
    frame["pareto"] = _pareto(frame, "spearman")
    frame["pareto_top20"] = _pareto(frame, "top20_spearman")
    free = frame[~frame["needs_reference"]]  # the front of rankings with no reference run at all
    frame["pareto_noref"] = _pareto(free, "spearman").reindex(frame.index, fill_value=False)
    frontier = Frontier(preset.study.name, frame)
    header = (
        f"# {preset.study.name}: ranking quality against cost\n\n"
        f"{len(truth)} reference architectures ({metric}, mean over {table['seed'].nunique()} seed(s), "
        f"{path}); calibrations fitted on seed(s) {', '.join(map(str, seeds))}. Methods without a fit are "
        f"scored as they are; fitted ones by nested 5-fold cross-validation repeated 20 times (every choice "
        f"made inside each training fold). Cost: the arithmetic of ranking the whole {space.name} space "
        f"that way, reference runs included, over training each of its {len(space)} architectures once "
        f"with the reference protocol.\n\n"
    )
    files = [
        atomic_write(out / "frontier.csv", lambda tmp: frame.to_csv(tmp, index=False)),
        atomic_write(out / "frontier.md", lambda tmp: tmp.write_text(header + frontier.markdown() + "\n")),
    ]
    if plot:
        figure = frontier_plot(frame, out / "frontier.png", f"{preset.study.name}: {len(truth)} reference archs")
        if figure is not None:
            files.append(figure)
    return dataclasses.replace(frontier, files=files)


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


__all__ = ["FAMILIES", "Frontier", "Scored", "base_scores", "run_frontier", "sample_label", "short_label"]
