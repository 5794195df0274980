"""The frontier's rows: each family's methods measured against the reference, with its cost rule. The base
methods as they are (zero-cost, subset, dm, short, sample, warm), and the families that combine them: the
reference-free ensemble, successive halving, and the calibration fitted on reference runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nas_proxy.reference import Agreement, rank_agreement
from nas_proxy.results._methods import ZERO_COST, Costs, Scored
from nas_proxy.results._rows import Ranked
from nas_proxy.scoring import Anchor, Calibration
from nas_proxy.scoring._calibration import MIN_FIT, resampled_agreement, resampled_predictions
from nas_proxy.space import ArchSpec, SearchSpace

CHOICES = ("spread", "uncertain")  # ways of choosing the fit's architectures besides a uniform draw
# The columns of frontier.csv each method's agreement gives
FIGURES = (
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


@dataclass(frozen=True)
class Reference:
    """What every method is measured against: the reference accuracy of each architecture (mean over the table's
    seeds), the one a calibration is fitted on (its ``[reference].seeds``), and how the figures are resampled."""

    accuracy: pd.Series
    fit: pd.Series
    seed_values: list[int]
    n_boot: int
    seed: int

    def measure(self, family: str, name: str, scores: pd.Series, cost: float) -> Ranked:
        return Ranked(name, rank_agreement(scores, self.accuracy, n_boot=self.n_boot, seed=self.seed), family, cost)


def zero_features(features: Sequence[str]) -> list[str]:
    """The zero-cost scores the calibrated and ensemble families combine: ``[score].features`` among them."""
    return [f for f in features if f in ZERO_COST] or ["grad_norm", "naswot"]


def plain(scored: list[Scored], families: Sequence[str], reference: Reference) -> list[Ranked]:
    """The zero-cost scores and every trained method in each readout, as they are."""
    zero = [s for name in ZERO_COST for s in scored if s.method is None and s.label == name]
    out = [reference.measure("zero-cost", s.label, s.scores, s.cost + s.setup) for s in zero if "zero-cost" in families]
    for family in ("subset", "dm", "short", "sample", "warm"):
        if family in families:
            for s in scored:
                if s.method is not None and s.method.family == family:
                    out.append(reference.measure(family, s.label, s.scores, s.cost + s.setup))
    return out


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


def ensembles(scored: list[Scored], zero: list[Scored], reference: Reference) -> list[Ranked]:
    """The zero-cost features alone, and with each trained method, each half ranked against the other as its anchor."""
    trained = [s for s in scored if s.method is not None]
    out = []
    for members in [zero, *(zero + [t] for t in trained)]:
        cost = sum(m.cost + m.setup for m in members)  # the anchor's architectures are the space's: scored once
        name = "ensemble " + " + ".join(m.label for m in members)
        out.append(reference.measure("ensemble", name, _cross_anchored(members, reference.seed), cost))
    return out


def halving(shorts: list[Scored], dms: list[Scored], rf: int, costs: Costs, reference: Reference) -> list[Ranked]:
    """Successive halving: the short budgets in turn, and a DM set as the first rung before each budget."""
    out = []
    for low, high in [*zip(shorts, shorts[1:]), *((dm, high) for dm in dms for high in shorts)]:
        promoted = low.scores.sort_values(ascending=False).index[: math.ceil(len(low.scores) / rf)]
        # survivors above the rest (successive halving's order), each group by its own score
        ranking = low.scores.rank(pct=True)
        ranking[promoted] = 1 + high.scores[promoted].rank(pct=True)
        cost = low.cost + high.cost * costs.share(promoted)
        out.append(reference.measure("halving", f"{low.label} -> best 1/{rf}: {high.label}", ranking, cost))
    return out


@dataclass(frozen=True)
class Fit:
    """How the calibrated family fits: on what, against what, at what cost."""

    reference: Reference
    costs: Costs
    space: SearchSpace
    rf: int

    def calibration(self, features: Sequence[Scored]) -> Calibration:
        frame = pd.DataFrame({f.label: f.scores for f in features}, index=self.reference.accuracy.index)
        return Calibration.fit(frame[[f.label for f in features]], self.reference.fit, self.space)

    def measure(
        self,
        name: str,
        first: Calibration,
        scoring: float,
        fit_size: int | None,
        choose: str = "uniform",
        refined: Calibration | None = None,
        refine_cost: float = 0.0,
    ) -> Ranked:
        """A calibrated ranking's honest figures and cost: the reference runs its fit uses, its scoring, and (with
        ``refined``) the promoted share's second fidelity."""
        t = self.reference
        agreement, predictions, fitted_on = _fitted(
            first, refined, self.rf, t.accuracy, fit_size, choose, self.space, t.n_boot, t.seed
        )
        # A fit on all of them is estimated from training folds of 4/5 of them (a slightly pessimistic figure)
        # and costs all of them, as the study's fit does.
        fitted_on = fitted_on if fit_size is not None else [list(t.accuracy.index)]
        reference_cost = float(np.mean([self.costs.of_archs(a, len(t.seed_values)) for a in fitted_on]))
        if refined is not None:
            top = [p.sort_values(ascending=False).index[: math.ceil(len(p) / self.rf)] for p in predictions]
            promoted_share = float(np.mean([self.costs.share(t) for t in top]))
            # the promoted share of the space, plus the fit's own architectures scored at both fidelities
            refine_cost = refine_cost * promoted_share + refine_cost * reference_cost / len(t.seed_values)
        cost = reference_cost + scoring + refine_cost
        k = int(np.mean([len(a) for a in fitted_on]))
        return Ranked(name, agreement, "calibrated", cost, reference_archs=k, reference_cost=reference_cost)


def calibrated(
    scored: list[Scored], zero: list[Scored], first: str, fit_sizes: Sequence[int], fit: Fit
) -> list[Ranked]:
    """The factors alone; with the zero-cost features at each fit size and way of choosing; with each trained
    method's score on all and on each spread fit size; and the promoted fraction's fidelity in the first readout."""
    n = len(fit.reference.accuracy)
    sizes = [k for k in fit_sizes if k < n * (1 - 1 / 5)]  # no fewer than a training fold holds
    zero_cost = sum(z.cost for z in zero)
    label = " + ".join(z.label for z in zero)
    by_zero = fit.calibration(zero)
    out = [fit.measure("factors alone", fit.calibration([]), 0.0, None)]
    for k in sizes:
        out.append(fit.measure(f"factors + {label}, fitted on {k}", by_zero, zero_cost, k))
        out += [fit.measure(f"factors + {label}, fitted on {k} {c}", by_zero, zero_cost, k, c) for c in CHOICES]
    out.append(fit.measure(f"factors + {label}, fitted on all", by_zero, zero_cost, None))
    for s in (s for s in scored if s.method is not None):
        features = fit.calibration([*zero, s])
        every = zero_cost + s.cost + s.setup  # a DM set's condensation is paid once, whatever trains
        out.append(fit.measure(f"factors + {label} + {s.label}, all architectures", features, every, None))
        for k in sizes:
            out.append(
                fit.measure(f"factors + {label} + {s.label}, fitted on {k} spread", features, every, k, "spread")
            )
        if s.readout == first:
            name = f"factors + {label}, best 1/{fit.rf} + {s.label}"
            out.append(fit.measure(name, by_zero, zero_cost + s.setup, None, refined=features, refine_cost=s.cost))
    return out


def _fitted(
    first: Calibration,
    refined: Calibration | None,
    reduction_factor: int,
    reference: pd.Series,
    fit_size: int | None,
    choose: str,
    space: SearchSpace,
    n_boot: int,
    seed: int,
) -> tuple[Agreement, list[pd.Series], list[list[str]]]:
    """Honest figures of a calibrated ranking fitted on ``fit_size`` reference architectures of each training fold
    (None: all of them), drawn uniformly, spread over the choices, or grown where the fit is least certain
    (:meth:`~nas_proxy.scoring.Calibration.least_certain`); also the promoted and fitted archs."""
    fitted_on: list[list[str]] = []

    def subset(train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if fit_size is None or fit_size >= len(train):
            picked = train
        elif choose in CHOICES:
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
    return resampled_agreement(predictions, reference, n_boot=n_boot, seed=seed), predictions, fitted_on


__all__ = [
    "CHOICES",
    "FIGURES",
    "Fit",
    "Reference",
    "calibrated",
    "ensembles",
    "halving",
    "plain",
    "zero_features",
]
