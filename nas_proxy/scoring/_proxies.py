"""Every way of scoring an architecture without full training, behind one interface.

A :class:`Proxy` turns (architecture, seed) into a score where higher predicts a better
network. The preset's ``[score]`` table picks the one a study searches with; ``nas-proxy
compare`` measures them side by side against the reference table.

- ``dm``: train on the condensed set with the ``[training]`` protocol; the run is read out by ``[score].readout``
  (the final validation accuracy by default, :data:`~nas_proxy.method.READOUTS`);
- ``random``: the same on a class-balanced random real subset of the same size (new per seed);
- ``early``: the ``[reference]`` protocol cut to ``[score].early_epochs`` passes over the full
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
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pandas as pd
import torch

from nas_proxy._config import settings_key, shown
from nas_proxy._io import SharedTable, read_table
from nas_proxy.artifacts import condensed_set_path, get_condensed_set, reference_table_path, score_table_path
from nas_proxy.config import FITTED_PROXIES, PROXIES, Preset
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import (
    READOUTS,
    CondenseConfig,
    LearningCurve,
    Readout,
    TrainConfig,
    TrainResult,
    build_convnet,
    train_candidates,
)
from nas_proxy.method._config import STEPS_LIMIT
from nas_proxy.method._model import network_size
from nas_proxy.reference import fit_reference, read_reference
from nas_proxy.reference._reference import check_same_data
from nas_proxy.scoring import _zero_cost as zero_cost
from nas_proxy.scoring._calibration import MIN_FIT, Calibration
from nas_proxy.scoring._ensemble import Anchor
from nas_proxy.space import ArchSpec

OnScore = Callable[[int, float], None]
_RUNTIME = {"setting": False}


def runtime(default: Any = dataclasses.MISSING) -> Any:
    """A :class:`Proxy` field that is how it computes (the data, a callable), not what its scores depend on."""
    return field(default=default, metadata=_RUNTIME, repr=False, compare=False)


def _setting(value: Any) -> Any:
    if isinstance(value, TrainConfig):
        return value.protocol()
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
    by its ``protocol()``, a :class:`~nas_proxy.method.Readout` by its ``settings()``, a field left at None, an
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
    ``random``, ``early``). ``trains_on`` names the set (it keys the scores; ``training_set(seed)`` draws it).
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


def early_training(reference: TrainConfig, early_epochs: float, images: int) -> TrainConfig:
    """The ``[reference]`` protocol cut to ``early_epochs`` passes over a training set of ``images``: whole passes
    as ``epochs`` (the protocol as it always trained, so their cached scores keep their names), any other budget as
    ``round(early_epochs x batches per pass)`` optimiser steps, at least 1 (``steps``, which training follows
    whatever ``epochs`` says).

    Example:
        >>> from nas_proxy.method import TrainConfig
        >>> reference = TrainConfig(epochs=50, batch_size=100)
        >>> early_training(reference, 2.5, 1000).steps, early_training(reference, 0.3, 1000).steps
        (25, 3)
        >>> early_training(reference, 2.0, 1000).epochs, early_training(reference, 2.0, 1000).steps
        (2, 0)
    """
    if early_epochs == int(early_epochs):
        return dataclasses.replace(reference, epochs=int(early_epochs), steps=0)
    steps = max(1, round(early_epochs * reference.batches(images)))
    if steps > STEPS_LIMIT:  # [training].steps' limit against typos, said in the terms the user set
        raise ConfigError(
            "[score]",
            "early_epochs",
            f"= {shown(early_epochs)} passes over {images:,} training images are {steps:,} optimiser steps, more "
            f"than {STEPS_LIMIT:,} (longer would run for weeks); use fewer",
        )
    return dataclasses.replace(reference, steps=steps)


def dm_proxy(
    condense: CondenseConfig,
    training: TrainConfig,
    data: Dataset,
    output: Path,
    *,
    readout: Readout = READOUTS["val_acc"],
    artifacts: str = "",
    progress: bool = True,
    study: optuna.Study | None = None,
) -> TrainedProxy:
    """``dm``: each candidate trained with ``training`` on the condensed set ``condense`` makes of ``data``, which is
    loaded from ``output`` or condensed there first (with ``study``: the study's one copy in the ``artifacts`` store,
    see :func:`nas_proxy.artifacts.get_condensed_set`)."""
    syn = get_condensed_set(condense, data, output, artifacts=artifacts, progress=progress, study=study)
    train = syn.split(data.train.x.device)
    return TrainedProxy(
        name="dm",
        setup_seconds=float(syn.meta["seconds"]),
        trains_on={"condensed": condensed_set_path(condense, data, output).name},
        config=training,
        readout=readout,
        data=data,
        training_set=lambda seed: train,
    )


def subset_proxy(
    ipc: int, training: TrainConfig, data: Dataset, *, readout: Readout = READOUTS["val_acc"]
) -> TrainedProxy:
    """``random``: each candidate trained with ``training`` on a class-balanced random subset of ``ipc`` real images
    per class (drawn anew per seed)."""
    return TrainedProxy(
        name="random",
        trains_on={"ipc": ipc},
        config=training,
        readout=readout,
        data=data,
        training_set=lambda seed: data.sample_per_class(ipc, seed=seed),
    )


def short_proxy(
    reference: TrainConfig, epochs: float, data: Dataset, *, readout: Readout = READOUTS["val_acc"]
) -> TrainedProxy:
    """``early``: each candidate trained with the ``reference`` protocol cut to ``epochs`` passes over the full
    training data (:func:`early_training`)."""
    return TrainedProxy(
        name="early",
        trains_on={"full": len(data.train)},
        config=early_training(reference, epochs, len(data.train)),
        readout=readout,
        data=data,
        training_set=lambda seed: data.train,
    )


def make_proxy(
    name: str,
    preset: Preset,
    data: Dataset,
    *,
    progress: bool = True,
    fitted: dict[str, Any] | None = None,
    study: optuna.Study | None = None,
) -> Proxy:
    """The proxy ``name`` (one of :data:`PROXIES`) set up for ``preset`` on ``data``.

    ``dm`` loads the preset's condensed set, condensing it first if no run has yet (with ``study``:
    the study's one copy, see :func:`nas_proxy.artifacts.get_condensed_set`). ``calibrated``
    and ``factors`` fit a :class:`~nas_proxy.scoring.Calibration` on the preset's reference
    table (scoring its architectures with each ``[score].features`` proxy first, cached), and ``ensemble``
    scores its anchor (cached), unless ``fitted`` is what a study recorded (:meth:`Proxy.fit_record`).
    """
    score_config = preset.score
    if name in FITTED_PROXIES:
        calibration = Calibration.from_dict(fitted, preset.space()) if fitted else None
        return _fitted(name, preset, data, progress, calibration, study)
    if name == "ensemble":
        return _ensemble(preset, data, progress, Anchor.from_dict(fitted) if fitted else None, study)
    readout = READOUTS[score_config.readout]
    if name == "dm":
        output, artifacts = preset.study.output, preset.study.artifacts
        return dm_proxy(
            preset.condense,
            preset.training,
            data,
            output,
            readout=readout,
            artifacts=artifacts,
            progress=progress,
            study=study,
        )
    if name == "random":
        return subset_proxy(preset.condense.ipc, preset.training, data, readout=readout)
    if name == "early":
        return short_proxy(preset.reference.training, score_config.early_epochs, data, readout=readout)
    if name in ("params", "flops"):
        return SizeProxy(name=name, data=data)
    if name in ("synflow", "naswot", "grad_norm"):
        return ZeroCostProxy(name=name, batch_size=score_config.batch_size, data=data)
    raise NasProxyError(f"unknown proxy {name!r}; choose from {', '.join(PROXIES)}")


def _fitted(
    name: str,
    preset: Preset,
    data: Dataset,
    progress: bool,
    calibration: Calibration | None,
    study: optuna.Study | None,
) -> Proxy:
    features = preset.score.features if name == "calibrated" else []
    members = {f: make_proxy(f, preset, data, progress=progress, study=study) for f in features}
    if calibration is None:
        path = reference_table_path(preset)
        table = read_reference(path)
        check_same_data(table, data, path)
        reference = fit_reference(table, preset.reference)
        space = preset.space()
        archs = [arch for arch in map(ArchSpec.parse, reference.index) if arch in space]
        if len(archs) < MIN_FIT:
            elsewhere = preset.study.elsewhere()  # a study run from another folder: said, not started again
            if elsewhere:
                raise NasProxyError(f"no reference table in {preset.study.output.resolve()}: {elsewhere}")
            raise NasProxyError(
                f"[score].proxy = {name!r} is fitted on the reference table, which holds "
                f"{len(archs)} architectures of the space (at least {MIN_FIT} needed, 30 or more to "
                f"trust it): {path}; run `nas-proxy reference {preset.ref} --archs 30` or import a "
                f"table with `--import FILE.csv`"
            )
        scores, scoring = _mean_scores(members, archs, preset, data, progress)
        calibration = Calibration.fit(scores, reference, space)
    elif tuple(calibration.features) != tuple(features):
        raise NasProxyError(
            f"the recorded calibration uses features {list(calibration.features)}, [score].features "
            f"says {features}; use a new [study].name or the original [score] settings"
        )
    else:
        scoring = 0.0  # paid by the run that fitted it
    setup = scoring + sum(p.setup_seconds for p in members.values())

    return FittedProxy(
        name=name,
        setup_seconds=setup,
        calibration=calibration,
        features=[p.settings for p in members.values()],
        fit=settings_key(calibration.to_dict()),
        members=members,
    )


def _mean_scores(
    members: dict[str, Proxy], archs: list[ArchSpec], preset: Preset, data: Dataset, progress: bool
) -> tuple[pd.DataFrame, float]:
    """Each member's score of ``archs`` (mean over the preset's score seeds; cached) and what they cost."""
    seeds, output = preset.score_seeds, preset.study.output
    rows = {f: score_archs(p, archs, seeds, data, output, progress=progress) for f, p in members.items()}
    frame = pd.DataFrame({f: r.groupby("arch")["score"].mean() for f, r in rows.items()}, index=[a.id for a in archs])
    return frame, sum(float(r["seconds"].sum()) for r in rows.values())  # cached or not: what they cost


def _ensemble(
    preset: Preset, data: Dataset, progress: bool, anchor: Anchor | None, study: optuna.Study | None
) -> Proxy:
    features = preset.score.features
    members = {f: make_proxy(f, preset, data, progress=progress, study=study) for f in features}
    scoring = 0.0  # a recorded anchor was paid by the run that scored it
    if anchor is None:
        space = preset.space()
        archs = space.spread(min(preset.score.anchor, len(space)), preset.reference.sample_seed)
        frame, scoring = _mean_scores(members, archs, preset, data, progress)
        anchor = Anchor.of(frame)
    elif tuple(anchor.features) != tuple(features):
        raise NasProxyError(
            f"the recorded anchor scores {list(anchor.features)}, [score].features says {features}; use a new "
            f"[study].name or the original [score] settings"
        )
    return EnsembleProxy(
        name="ensemble",
        setup_seconds=scoring + sum(p.setup_seconds for p in members.values()),
        features=[p.settings for p in members.values()],
        fit=settings_key(anchor.to_dict()),
        members=members,
        anchor=anchor,
    )


SCORE_COLUMNS = ["arch", "seed", "value", "curve", "seconds", "fingerprint"]


def read_scores(path: str | Path) -> pd.DataFrame:
    """A cached table of measurements (empty, with the right columns, if there is none yet): ``value`` and, for a
    trained network, its learning ``curve`` (JSON)."""
    return read_table(
        path,
        SCORE_COLUMNS,
        "score table",
        "delete it to score again",
        dtype={"arch": str, "fingerprint": str, "curve": str},
    )


def _measurement(value: float, curve: Any) -> Measurement:
    return Measurement(float(value), LearningCurve.from_dict(json.loads(curve)) if isinstance(curve, str) else None)


def score_archs(
    proxy: Proxy, archs: list[ArchSpec], seeds: list[int], data: Dataset, output: Path, *, progress: bool = True
) -> pd.DataFrame:
    """Score every (architecture, seed) on ``data``: measured if not yet in ``proxy``'s cached table (in the
    ``output`` folder, :func:`~nas_proxy.artifacts.score_table_path`, keyed by its measured settings), read out with
    the proxy's readout; return the rows asked for, with their ``score``."""
    table = SharedTable(score_table_path(output, proxy.name, proxy.measured_settings(), data), read_scores)

    def compute(pending: list[ArchSpec], seed: int, save: Callable[[int, dict[str, Any]], None]) -> None:
        def row(index: int, m: Measurement) -> None:
            curve = "" if m.curve is None else json.dumps(m.curve.to_dict())
            save(index, {"value": m.value, "curve": curve, "fingerprint": data.fingerprint})

        proxy.measure(pending, seed, row)

    rows = table.fill(archs, seeds, compute, desc=f"score {proxy.name}", progress=progress)
    rows = rows[rows["arch"].isin([a.id for a in archs]) & rows["seed"].isin(seeds)].copy()
    rows["score"] = [proxy.read(_measurement(v, c)) for v, c in zip(rows["value"], rows["curve"])]
    return rows


__all__ = [
    "EnsembleProxy",
    "FittedProxy",
    "Measurement",
    "OnScore",
    "Proxy",
    "SizeProxy",
    "TrainedProxy",
    "ZeroCostProxy",
    "dm_proxy",
    "early_training",
    "fit_attr",
    "make_proxy",
    "read_scores",
    "runtime",
    "score_archs",
    "short_proxy",
    "subset_proxy",
]
