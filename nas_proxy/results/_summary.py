"""A report's summary: the study's agreement with the reference, where both tables come from, what ranking them
cost, and the sentences that say it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nas_proxy.reference import Agreement
from nas_proxy.results._format import best, inline, pct, score


@dataclass(frozen=True)
class Calibrated:
    """A study ranked by a fitted proxy: what it was fitted on, and how it ranks architectures it never saw."""

    n: int  # the reference architectures it was fitted on
    features: list[str]  # the candidate features, besides the architecture's factors
    ranking: str  # which ranking of :attr:`Report.calibration` the study ranks by
    estimate: Agreement  # that ranking's honest estimate (:func:`~nas_proxy.scoring.honest_estimate`)
    factors: Agreement  # the factors alone's, the baseline the scores must beat


@dataclass(frozen=True)
class Summary:
    """The study's agreement with the reference, where both tables come from, and what ranking them cost."""

    agreement: Agreement
    proxy: str
    metric: str
    reference_protocol: str
    reference_table: str
    reference_imported: bool
    reference_seeds: int
    preset: str
    trials_complete: int
    trials_running: int
    trials_failed: int
    scored: int
    reference_archs: int
    study_best_arch: str | None
    study_best_score: float  # the best proxy score over every architecture the study scored
    study_best_archs: tuple[str, ...]  # every architecture at that score (several: a tie), study_best_arch first
    top1_score: float  # the best proxy score among the reference architectures: the proxy's pick's
    top1_archs: tuple[str, ...]  # every reference architecture at that score, by id (the agreement's top1_arch first)
    best_archs: tuple[str, ...]  # every architecture at the reference table's best accuracy (its best_arch first)
    setup_seconds: float
    proxy_seconds: float
    reference_seconds: float
    proxy_seconds_mean: float
    reference_seconds_mean: float
    # what the proxy buys, like for like: its seconds over the reference's on the architectures both trained (the
    # means above are over different sets: a sampler drifts towards the bigger, slower networks)
    cost_ratio: float = math.nan
    cost_ratio_archs: int = 0
    calibrated: Calibrated | None = None

    def best_line(self) -> str:
        """The best proxy score over every architecture the study scored and who has it, a tie said:
        ``best by the proxy: 2 architectures tie at score 0.99: a, b``."""
        return study_best(self)

    def pick_line(self) -> str:
        """Where the proxy's pick among the reference architectures stands against the reference table's best,
        ties said on both sides."""
        return pick_sentence(self)

    def cost_line(self) -> str:
        """What scoring cost, per architecture (the proxy's share of the reference's as a ratio) and in total."""
        return "; ".join(f"{label}: {value}" for label, value in costs(self))

    def as_json(self) -> dict[str, Any]:
        """``summary.json``: one flat object, NaN written as null."""
        out = self.agreement.row()
        out.update(
            {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("agreement", "calibrated")
            }
        )
        c = self.calibrated
        if c is not None:
            estimate = c.estimate.row()
            out.update(calibration_n=c.n, calibration_features=c.features, calibration_ranking=c.ranking)
            out.update({f"calibration_{key}": estimate[key] for key in CALIBRATION_KEYS})
            out.update(
                {f"factors_{key}": getattr(c.factors, key) for key in ("spearman", "spearman_low", "spearman_high")}
            )
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


# The honest estimate's figures that summary.json keeps for the study's ranking.
CALIBRATION_KEYS = ("spearman", "spearman_low", "spearman_high", "kendall", "top20_spearman", "precision10", "regret")


def study_best(summary: Summary) -> str:
    """The study's best proxy score over every architecture it scored, reference or not: ``best by the proxy: ...``."""
    return f"best by the proxy: {best(summary.study_best_archs, score(summary.study_best_score))}"


def pick_sentence(summary: Summary) -> str:
    """Where the proxy's pick among the reference architectures stands against the reference table's best."""
    s, a = summary, summary.agreement
    among = f"among the {a.n} reference architectures" + (
        f" it scored (of {s.reference_archs})" if a.n < s.reference_archs else ""
    )
    pick = inline(s.top1_archs, score(s.top1_score))
    if set(s.top1_archs) <= set(s.best_archs):  # not `regret == 0`: a tie's mean can miss the best by a rounding
        return f"{among} the proxy's pick {pick} is the best of the reference table ({pct(a.best_reference)})"
    top = inline(s.best_archs, pct(a.best_reference))
    mean = " on average" if len(s.top1_archs) > 1 else ""  # ties broken at random: the expected regret
    return f"{among} the proxy's pick {pick} is{mean} {a.regret:.2f} points below the best {top}"


def costs(summary: Summary) -> list[tuple[str, str]]:
    """The cost rows that have a value (never a NaN): per architecture with the proxy's share of the reference's
    as a ratio (what the tool buys), and in total."""
    means = (("proxy", summary.proxy_seconds_mean), ("reference", summary.reference_seconds_mean))
    per_arch = [f"{side} {mean:.1f} s" for side, mean in means if not math.isnan(mean)]
    if not math.isnan(summary.cost_ratio):
        per_arch[-1] += (
            f" (the proxy costs {summary.cost_ratio:.2f} of the reference's on the {summary.cost_ratio_archs} "
            f"architectures both trained)"
        )
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


__all__ = [
    "CALIBRATION_KEYS",
    "Calibrated",
    "Summary",
    "costs",
    "pick_sentence",
    "study_best",
]
