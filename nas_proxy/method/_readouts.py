"""Readouts: how one training run's :class:`~nas_proxy.method.LearningCurve` becomes a score (higher = better).

A network trained briefly, or on a few images, is ranked by how fast it learns unless the score
looks past the final accuracy: the training loss summed over the run (TSE, Ru et al., NeurIPS
2021) ranks NAS-Bench-201 close to its converged order where the final accuracy at the same budget
does not. Each readout is one class and a trained proxy's ``[score].readout`` names one:

- ``val_acc``: the validation accuracy at the end of the run (the default);
- ``tse``: minus the mean training loss over the whole run (TSE up to the run's length, a constant);
- ``tse_e``: the same over the last quarter of the run (TSE-E: the early, fast-learning steps left out);
- ``tse_ema``: minus an exponential moving average of the training loss (half-life 5% of the run);
- ``val_auc``: the mean validation accuracy at a quarter, half, three quarters and the end of the run;
- ``loss_fit``: minus the training loss a power law ``c + a t^-alpha`` fitted to the curve predicts at 10 times
  the run's steps (learning-curve extrapolation with :func:`scipy.optimize.curve_fit`; ``lcpfn`` pins
  torch <= 1.11 and numpy < 2 and downloads pickled weights at first use, which this tool never loads).

The contract for a new one (as Optuna's ``BaseSampler``): a frozen dataclass subclass of :class:`Readout`
with a class-level ``name`` and its knobs as fields; ``val_points`` the fractions of the run at which it
needs the validation accuracy (each an evaluation pass, asked of training); ``read(curve)`` the score.
Its :meth:`~Readout.settings` come from its fields, so a readout can never share cached scores with
another: add it to :data:`READOUTS` and a preset can name it.

Example:
    >>> from nas_proxy.method import READOUTS, LearningCurve
    >>> curve = LearningCurve(losses=(2.0, 1.0, 0.5, 0.25), val_acc={1.0: 0.9})
    >>> READOUTS["val_acc"].read(curve), READOUTS["tse"].read(curve), READOUTS["tse_e"].read(curve)
    (0.9, -0.9375, -0.25)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from nas_proxy.method._train import LearningCurve


@dataclass(frozen=True)
class Readout(ABC):
    """One way of reading a score off a training run; see the module's contract."""

    name: ClassVar[str]
    val_points: ClassVar[tuple[float, ...]] = ()

    def settings(self) -> dict[str, Any]:
        """What its scores depend on: its class's name and every field (a cache key)."""
        return {"readout": type(self).__name__, **dataclasses.asdict(self)}

    @abstractmethod
    def read(self, curve: LearningCurve) -> float:
        """The score of the run ``curve`` records; higher predicts a better converged network."""


@dataclass(frozen=True)
class FinalAccuracy(Readout):
    name = "val_acc"

    def read(self, curve: LearningCurve) -> float:
        return curve.val_acc[1.0]


@dataclass(frozen=True)
class TrainingLoss(Readout):
    """Minus the mean training loss over the last ``last`` of the run (1.0: TSE, a fraction: TSE-E)."""

    name = "tse"
    last: float = 1.0

    def read(self, curve: LearningCurve) -> float:
        losses = np.asarray(curve.losses)
        return -float(losses[-max(1, round(self.last * len(losses))) :].mean())


@dataclass(frozen=True)
class LastQuarterLoss(TrainingLoss):
    name = "tse_e"
    last: float = 0.25


@dataclass(frozen=True)
class SmoothedLoss(Readout):
    """Minus the exponential moving average of the training loss, with a half-life of ``half_life`` of the run."""

    name = "tse_ema"
    half_life: float = 0.05

    def read(self, curve: LearningCurve) -> float:
        losses = np.asarray(curve.losses)
        weights = 0.5 ** (np.arange(len(losses))[::-1] / max(1.0, self.half_life * len(losses)))
        return -float(np.dot(weights, losses) / weights.sum())


@dataclass(frozen=True)
class AccuracyArea(Readout):
    """The mean validation accuracy at ``val_points`` and the end (the area under the accuracy curve)."""

    name = "val_auc"
    val_points = (0.25, 0.5, 0.75)

    def read(self, curve: LearningCurve) -> float:
        return float(np.mean(list(curve.val_acc.values())))


@dataclass(frozen=True)
class ExtrapolatedLoss(Readout):
    """Minus the training loss at ``horizon`` times the run's steps, from a power law fitted to the curve (the
    curve's means over up to 50 equal stretches, the first tenth left out: the fit is of the curve's tail). A fit
    that fails falls back on the last stretch's mean, which is what the fit would start from."""

    name = "loss_fit"
    horizon: float = 10.0

    def read(self, curve: LearningCurve) -> float:
        losses = np.asarray(curve.losses, dtype=float)
        bins = min(50, len(losses))
        chunks = np.array_split(losses, bins)
        sizes = np.array([len(c) for c in chunks])
        t = np.cumsum(sizes) - sizes / 2  # each stretch's middle step
        y = np.array([c.mean() for c in chunks])
        keep = t > 0.1 * len(losses)
        t, y = t[keep], y[keep]
        if len(t) < 4 or not np.isfinite(y).all():
            return -float(y[-1]) if len(y) else -float(losses[-1])

        def power(t: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
            return cast(np.ndarray, c + a * (t / t[0]) ** -alpha)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                (c, a, alpha), _ = curve_fit(
                    power,
                    t,
                    y,
                    p0=(float(y[-1]), float(y[0] - y[-1]), 0.5),
                    bounds=([-np.inf, -np.inf, 0.0], [np.inf, np.inf, 5.0]),
                    maxfev=2000,
                )
        except (RuntimeError, ValueError):
            return -float(y[-1])
        predicted = c + a * (self.horizon * len(losses) / t[0]) ** -alpha
        return -float(predicted) if math.isfinite(predicted) else -float(y[-1])


READOUTS: dict[str, Readout] = {
    r.name: r
    for r in (FinalAccuracy(), TrainingLoss(), LastQuarterLoss(), SmoothedLoss(), AccuracyArea(), ExtrapolatedLoss())
}

__all__ = ["READOUTS", "Readout"]
