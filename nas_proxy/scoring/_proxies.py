"""Every way of scoring an architecture without full training, behind one interface.

A :class:`Proxy` turns (architecture, seed) into a score where higher predicts a better
network. The preset's ``[score]`` table picks the one a study searches with; ``nas-proxy
compare`` measures them side by side against the reference table.

- ``dm``: train on the condensed set with the ``[training]`` protocol; the run is read out by ``[score].readout``
  (the final validation accuracy by default, :data:`~nas_proxy.method.READOUTS`);
- ``subset``: the same on a class-balanced random real subset of the same size (new per seed);
- ``short``: the ``[reference]`` protocol cut to ``[score].short_epochs`` passes over the full
  training data, any positive number (counted in optimiser steps: 2.5 passes, or 0.3 of one);
- ``synflow``, ``naswot``, ``grad_norm``: zero-cost scores at initialisation
  (:mod:`nas_proxy.scoring._zero_cost`) on ``[score].batch_size`` training images;
- ``params``, ``flops``: the network's size (bigger scores higher);
- ``calibrated``, ``factors``: fitted on the reference table (:class:`~nas_proxy.scoring.Calibration`);
- ``ensemble``: the mean quantile of the ``[score].features`` scores among a fixed anchor sample of the space
  (:class:`~nas_proxy.scoring.Anchor`), with no reference run.

Example:
    >>> from pathlib import Path
    >>> from nas_proxy import ArchSpec, load_dataset, load_preset, make_proxy
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ...
    ... [data]
    ... dataset = "digits"
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> proxy = make_proxy("naswot", preset, load_dataset(preset.data))
    >>> proxy.score(ArchSpec.parse("d2-w32-relu-batchnorm-avgpool"), seed=0) > 0
    True
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from nas_proxy.config import FITTED_PROXIES
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import NasProxyError
from nas_proxy.method import (
    READOUTS,
    LearningCurve,
    Readout,
    TrainConfig,
    TrainResult,
    build_convnet,
    train_candidates,
)
from nas_proxy.method._model import network_size
from nas_proxy.scoring import _zero_cost as zero_cost
from nas_proxy.scoring._calibration import Calibration
from nas_proxy.scoring._ensemble import Anchor
from nas_proxy.space import ArchSpec

OnScore = Callable[[int, float], None]
_RUNTIME = {"setting": False}


def runtime(default: Any = dataclasses.MISSING) -> Any:
    """A :class:`Proxy` field that is how it computes (the data, a callable), not what its scores depend on."""
    return field(default=default, metadata=_RUNTIME, repr=False, compare=False)


def _setting(value: Any) -> Any:
    if isinstance(value, TrainConfig):
        return value.key_settings()
    if isinstance(value, Readout):
        return value.settings()
    return value


@dataclass(frozen=True)
class Measurement:
    """What one (architecture, seed) measured: ``value`` (a trained network's final validation accuracy, a
    zero-cost score, a size, a prediction) and, for a trained network, its whole run."""

    value: float
    curve: LearningCurve | None = None


OnMeasured = Callable[[int, Measurement], None]


def _one_by_one(measurements: Iterable[Measurement], on_measured: OnMeasured | None) -> list[Measurement]:
    """``measurements`` taken in turn (a generator computes each when asked), ``on_measured`` told of each."""
    out = []
    for index, measurement in enumerate(measurements):
        out.append(measurement)
        if on_measured is not None:
            on_measured(index, measurement)
    return out


def _of(result: TrainResult) -> Measurement:
    return Measurement(result.val_acc, result.curve)


def _member_scores(members: dict[str, Proxy], archs: list[ArchSpec], seed: int) -> dict[str, dict[str, float]]:
    """Each member proxy's score of ``archs`` at ``seed``, by architecture id (what a fitted proxy combines)."""
    ids = [arch.id for arch in archs]
    return {name: dict(zip(ids, proxy.scores(archs, seed))) for name, proxy in members.items()}


@dataclass(frozen=True, kw_only=True)
class Proxy(ABC):
    """A scoring rule: ``score(arch, seed)`` (higher = predicted better).

    The contract of a new one (one class, as Optuna's ``BaseSampler``): a frozen dataclass subclass whose
    fields are everything its scores depend on besides the data; fields made with :func:`runtime` are how it
    computes (the data, a callable) and are no setting. :attr:`settings` is derived from the fields (a config
    by its ``key_settings()``, a :class:`~nas_proxy.method.Readout` by its ``settings()``, a field left at None, an
    option not taken, not at all), so a field cannot be
    left out of the key of the cached measurements (:func:`score_archs`). It implements :meth:`measure`, the
    costly part, and may override :meth:`read` (the score of a measurement: its value by default); a field
    named ``readout`` is how a measurement is read, so proxies that differ only there share measurements.
    ``setup_seconds`` is its one-off cost shared by all architectures (condensation for ``dm``);
    ``side_by_side``: whether :meth:`measure` gains from several architectures at once (a study hands it its
    trials in batches). A proxy fitted when a study starts names the study attribute that keeps the fit
    (``fit_attr``) and returns it from :meth:`fit_record`, which :func:`make_proxy` takes back as ``fitted``.
    """

    name: str
    setup_seconds: float = runtime(0.0)
    calibration: Calibration | None = runtime(None)  # fitted proxies: what they were fitted on (a study records it)
    side_by_side: ClassVar[bool] = False
    fit_attr: ClassVar[str | None] = None

    def fit_record(self) -> dict[str, Any] | None:
        """What the proxy was fitted on, JSON-ready, for a study to record as ``fit_attr`` (None: nothing)."""
        return None

    def paid_for(self) -> list[ArchSpec]:
        """Architectures whose scores its fit already paid for (it scores them without measuring): a study queues
        them first."""
        return []

    @property
    def settings(self) -> dict[str, Any]:
        """What its scores depend on besides the data, from its fields."""
        return {
            ("proxy" if f.name == "name" else f.name): _setting(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.metadata.get("setting", True) and getattr(self, f.name) is not None  # None: an option not taken
        }

    def measured_settings(self) -> dict[str, Any]:
        """What its measurements depend on: :attr:`settings` less the readout (how a measurement is read)."""
        return {key: value for key, value in self.settings.items() if key != "readout"}

    @abstractmethod
    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        """Measure each of ``archs`` at ``seed``, in order, calling ``on_measured(i, measurement)`` in the caller's
        thread as each is done (save it there: a crash loses only the measurements in flight)."""

    def read(self, measurement: Measurement) -> float:
        """The score of ``measurement``."""
        return measurement.value

    def score(self, arch: ArchSpec, seed: int) -> float:
        return self.scores([arch], seed)[0]

    def scores(self, archs: Sequence[ArchSpec], seed: int, on_score: OnScore | None = None) -> list[float]:
        """``score`` of each of ``archs`` at ``seed``, in order; trained proxies train them at once (same values).
        ``on_score(i, score)`` runs as each is done, in the caller's thread."""
        report = None if on_score is None else (lambda index, m: on_score(index, self.read(m)))
        return [self.read(m) for m in self.measure(list(archs), seed, report)]


@dataclass(frozen=True, kw_only=True)
class TrainedProxy(Proxy):
    """Train the network on a training set with ``config`` and read the run out with ``readout`` (``dm``,
    ``subset``, ``short``). ``trains_on`` names the set (it keys the scores; ``training_set(seed)`` draws it).
    A warm start trains it first on ``warm_split`` (named by ``warm_on``) with ``warm_config``."""

    trains_on: dict[str, Any]
    config: TrainConfig
    readout: Readout = READOUTS["val_acc"]
    warm_on: dict[str, Any] | None = None
    warm_config: TrainConfig | None = None
    data: Dataset = runtime()
    training_set: Callable[[int], Split] = runtime()
    warm_split: Split | None = runtime(None)
    side_by_side: ClassVar[bool] = True

    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        if not archs:
            return []
        report = None if on_measured is None else (lambda index, result: on_measured(index, _of(result)))
        results = train_candidates(
            archs,
            self.training_set(seed),
            self.data,
            dataclasses.replace(self.config, seed=seed),
            on_result=report,
            curve_at=self.readout.val_points,
            warm=None if self.warm_split is None or self.warm_config is None else (self.warm_split, self.warm_config),
        )
        return list(map(_of, results))

    def measured_settings(self) -> dict[str, Any]:
        """Also the fractions of a run at which the readout needs the validation accuracy (then measured)."""
        points = self.readout.val_points
        return {**super().measured_settings(), **({"val_points": list(points)} if points else {})}

    def read(self, measurement: Measurement) -> float:
        if measurement.curve is None:  # a cached row without its run: never written by this version
            raise NasProxyError(f"a {self.name} score was cached without its learning curve; delete the score table")
        return self.readout.read(measurement.curve)


@dataclass(frozen=True, kw_only=True)
class ZeroCostProxy(Proxy):
    """``synflow``, ``naswot`` or ``grad_norm`` at initialisation, on ``batch_size`` training images."""

    batch_size: int
    data: Dataset = runtime()

    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        return _one_by_one((Measurement(self._value(arch, seed)) for arch in archs), on_measured)

    def _value(self, arch: ArchSpec, seed: int) -> float:
        data, device = self.data, self.data.train.x.device
        generator = torch.Generator().manual_seed(seed)
        net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator, device=device)
        pick = torch.randperm(len(data.train), generator=generator)[: self.batch_size].to(device)
        x, y = data.train.x[pick], data.train.y[pick]
        if self.name == "synflow":
            return zero_cost.synflow(net, x)
        if self.name == "naswot":
            return zero_cost.naswot(net, x)
        return zero_cost.grad_norm(net, x, y)


@dataclass(frozen=True, kw_only=True)
class SizeProxy(Proxy):
    """``params`` or ``flops``: the network's size (bigger scores higher)."""

    data: Dataset = runtime()

    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        which = self.name == "flops"  # network_size() is (params, flops)
        return _one_by_one((Measurement(float(network_size(arch, self.data)[which])) for arch in archs), on_measured)


@dataclass(frozen=True, kw_only=True)
class FittedProxy(Proxy):
    """``calibrated`` or ``factors``: the calibration's prediction of the reference rank from the architecture's
    factors and its ``features`` proxies' scores; ``fit`` keys the calibration."""

    features: list[dict[str, Any]]
    fit: str
    members: dict[str, Proxy] = runtime()
    side_by_side: ClassVar[bool] = True
    fit_attr: ClassVar[str | None] = "calibration"

    def fit_record(self) -> dict[str, Any] | None:
        return None if self.calibration is None else self.calibration.to_dict()

    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        calibration = self.calibration
        assert calibration is not None  # make_proxy fits or is given one
        new = [arch for arch in archs if arch.id not in calibration.archs]  # the others: leave-one-out predictions
        scores = _member_scores(self.members, new, seed)

        def predicted(arch: ArchSpec) -> Measurement:
            features = {f: v[arch.id] for f, v in scores.items()} if arch.id not in calibration.archs else {}
            return Measurement(calibration.predict(arch, features))

        return _one_by_one(map(predicted, archs), on_measured)


@dataclass(frozen=True, kw_only=True)
class EnsembleProxy(Proxy):
    """``ensemble``: the mean of its ``features`` proxies' quantiles among their scores on the ``anchor``
    (:class:`~nas_proxy.scoring.Anchor`); ``fit`` keys the anchor."""

    features: list[dict[str, Any]]
    fit: str
    members: dict[str, Proxy] = runtime()
    anchor: Anchor = runtime()
    side_by_side: ClassVar[bool] = True
    fit_attr: ClassVar[str | None] = "anchor"

    def fit_record(self) -> dict[str, Any] | None:
        return self.anchor.to_dict()

    def paid_for(self) -> list[ArchSpec]:
        return [ArchSpec.parse(a) for a in self.anchor.archs]

    def measure(self, archs: list[ArchSpec], seed: int, on_measured: OnMeasured | None = None) -> list[Measurement]:
        known = dict(zip(self.anchor.archs, self.anchor.scores))  # the anchor's own: scored when it was made
        measured = _member_scores(self.members, [arch for arch in archs if arch.id not in known], seed)
        rows = {
            f: [known[a.id][i] if a.id in known else measured[f][a.id] for a in archs]
            for i, f in enumerate(self.anchor.features)
        }
        return _one_by_one((Measurement(float(v)) for v in self.anchor.combine(rows)), on_measured)


def fit_attr(name: str) -> str | None:
    """The study attribute that keeps proxy ``name``'s fit (None: it is fitted on nothing)."""
    if name in FITTED_PROXIES:
        return FittedProxy.fit_attr
    return EnsembleProxy.fit_attr if name == "ensemble" else None


__all__ = [
    "EnsembleProxy",
    "FittedProxy",
    "Measurement",
    "OnScore",
    "Proxy",
    "SizeProxy",
    "TrainedProxy",
    "ZeroCostProxy",
    "fit_attr",
    "runtime",
]
