"""Every stage's settings, one frozen config object per stage, and the preset that holds them all.

The stages up to ``method`` define and read their own config: :class:`DataConfig` (which data and
split; :func:`~nas_proxy.load_dataset`), :class:`CondenseConfig` (Distribution Matching;
:func:`~nas_proxy.condense`) and :class:`TrainConfig` (how a candidate trains;
:func:`~nas_proxy.train_candidates`). This module adds the tables of the stages above them:
:class:`ScoreConfig` (which proxy scores a trial), :class:`ReferenceConfig` (the full-data reference;
:func:`~nas_proxy.run_reference`) and :class:`StudyConfig` (the Optuna study). A :class:`Preset`
(``studies/*.toml``, one table per stage) bundles them for the entry points that join stages into a
study (making a proxy by name, the search, the report, the comparison and the frontier), which unpack it
and hand each stage its own config. It imports the ``data``, ``space`` and ``method`` stages (their configs
and vocabularies) and none above them, so ``reference`` and every stage after it can import it.
Each config checks its own values, so one built in Python is checked like one read from TOML.

Example:
    >>> from nas_proxy.method import CondenseConfig
    >>> from nas_proxy import load_preset
    >>> preset = load_preset("quickstart")
    >>> preset.data.dataset, preset.condense.iterations, preset.reference.training.epochs
    ('digits', 100, 50)
    >>> CondenseConfig(ipc=0)
    Traceback (most recent call last):
    ...
    nas_proxy.errors.ConfigError: [condense].ipc must be positive, got 0
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from nas_proxy._config import batch_field, bounded, check_fields, config_from_dict, read_toml, seed_field, shown
from nas_proxy._shipped import find_toml, shipped_name
from nas_proxy.data import DataConfig
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import READOUTS, CondenseConfig, TrainConfig
from nas_proxy.method._config import EPOCHS_LIMIT, REFERENCE_DEFAULTS
from nas_proxy.space import SearchSpace, load_search_space

BASE_PROXIES = ("dm", "subset", "short", "synflow", "naswot", "grad_norm", "params", "flops")
# Fitted on the reference table (nas_proxy.scoring.Calibration): the factors alone, or with the [score].features scores.
FITTED_PROXIES = ("calibrated", "factors")
# Combined with no reference (nas_proxy.scoring.Anchor): the mean quantile of the [score].features scores.
PROXIES = BASE_PROXIES + FITTED_PROXIES + ("ensemble",)
TRAINED_PROXIES = ("dm", "subset", "short")  # each trains the network; [score].readout turns the run into a score
# The seeds a score or a reference is the mean over: each trains every network once more.
_SEEDS = {"above": 0, "at_most": 100, "why": "100 already measure a mean to a tenth of one seed's spread"}
# [study] waits, in seconds
_DAY = {"at_most": 86_400, "why": "a day: a longer wait would hide a dead worker or database"}
# A study's name is a folder (runs/<name>) and a key in the storage: one plain folder name, on every system.
_STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class ScoreConfig:
    """The ``[score]`` table: which proxy scores a trial, over how many seeds, and its own knobs."""

    proxy: str = "dm"
    seeds: int = bounded(1, **_SEEDS)  # the score is the mean over seeds [training].seed, +1, ..., +seeds-1
    # trained proxies (dm, subset, short): how a training run becomes a score (nas_proxy.method.READOUTS)
    readout: str = "val_acc"
    # `short`: passes over the full training data, any positive number: 2.5 passes, or 0.3 of one (trained as that
    # many passes' optimiser steps, nas_proxy.scoring._make.short_training)
    short_epochs: float = bounded(1.0, above=0, at_most=EPOCHS_LIMIT, why="longer would run for weeks")
    # zero-cost proxies: training images in their one batch
    batch_size: int = batch_field(64)
    # `calibrated`: the proxies whose scores, with the architecture's factors, predict the reference rank;
    # `ensemble`: the proxies whose quantiles among the anchor's scores it averages
    features: list[str] = field(default_factory=lambda: ["grad_norm", "naswot"])
    # `ensemble`: architectures spread over the space ([reference].sample_seed) that fix each feature's scale
    anchor: int = bounded(30, at_least=5, at_most=1000, why="a quantile among 1,000 is already exact to 0.1%")
    # Multi-fidelity (`calibrated` only): these proxies join the features for the trials Optuna's successive
    # halving promotes, the best 1/reduction_factor of those scored so far; the others keep the cheap score.
    refine: list[str] = field(default_factory=list)
    reduction_factor: int = bounded(3, at_least=2)

    def __post_init__(self) -> None:
        check_fields(self, "[score]")
        if self.proxy not in PROXIES:
            raise ConfigError("[score]", "proxy", f"= {self.proxy!r} is not a proxy; choose from {', '.join(PROXIES)}")
        bad = next((f for f in self.features if f not in BASE_PROXIES), None)
        if bad is not None:
            raise ConfigError(
                "[score]", "features", f"holds {bad!r}, not a proxy; choose from {', '.join(BASE_PROXIES)}"
            )
        if self.readout not in READOUTS:
            raise ConfigError(
                "[score]", "readout", f"= {self.readout!r} is not a readout; choose from {', '.join(READOUTS)}"
            )
        trained = {self.proxy, *self.features, *self.refine} & set(TRAINED_PROXIES)
        if self.readout != "val_acc" and not trained:
            raise ConfigError(
                "[score]",
                "readout",
                f"= {self.readout!r} reads a training run, and proxy = {self.proxy!r} trains none; use one of "
                f"{', '.join(TRAINED_PROXIES)} or drop readout",
            )
        if len(set(self.features)) != len(self.features):
            raise ConfigError("[score]", "features", f"names a proxy twice: {self.features}")
        bad = next((f for f in self.refine if f not in BASE_PROXIES or f in self.features), None)
        if bad is not None:
            raise ConfigError(
                "[score]",
                "refine",
                f"holds {bad!r}: name proxies of {', '.join(BASE_PROXIES)} that are not already features",
            )
        if self.proxy == "ensemble" and not self.features:
            raise ConfigError(
                "[score]", "features", 'is empty: proxy = "ensemble" averages these proxies; name two or more'
            )
        if self.refine and self.proxy != "calibrated":
            raise ConfigError(
                "[score]",
                "refine",
                f'needs proxy = "calibrated" (both fidelities are predictions of '
                f"the reference rank), got proxy = {self.proxy!r}",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[score]") -> ScoreConfig:
        return config_from_dict(cls, data, where)


@dataclass(frozen=True)
class ReferenceConfig:
    """The ``[reference]`` table: full-data training protocol plus how reference architectures are drawn.

    ``metric`` is the reference number a proxy's ranking is compared with: test accuracy (the
    quantity a researcher cares about; the proxy itself never sees the test set) or validation.
    The reference trains in fp32 unless ``precision`` says otherwise: every ranking is measured against it.
    """

    training: TrainConfig = field(default_factory=lambda: TrainConfig(**REFERENCE_DEFAULTS))
    seeds: int = bounded(1, **_SEEDS)
    sample_seed: int = seed_field()
    search_space: str = ""  # "": the study's space; else a sub-space `--archs N` draws from (e.g. cheaper nets)
    metric: Literal["test_acc", "val_acc"] = "test_acc"
    # `search` first trains this many sampled architectures (the `--archs N` sample) on the full data and
    # scores them first, so the study reports its faithfulness as it runs; 0: the reference is trained or
    # imported separately with `nas-proxy reference`.
    sample: int = bounded(0, at_least=0)  # at most the space's size: checked when the sample is drawn

    def __post_init__(self) -> None:
        check_fields(self, "[reference]")
        self.training.seed_values(self.seeds)  # the last seed must be one torch and numpy take, like the first
        if self.training.precision == "auto":  # one table, one protocol: "auto" differs from machine to machine
            raise ConfigError(
                "[reference]",
                "precision",
                '= "auto" trains in bf16 on some machines and fp32 on '
                'others; the reference needs one: set "fp32" or "bf16"',
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[reference]") -> ReferenceConfig:
        """Flat keys: the training protocol's (a :class:`TrainConfig`) and this table's own."""
        own = {f.name for f in dataclasses.fields(cls)} - {"training"}
        protocol = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(data) - own - protocol)
        if unknown:
            raise NasProxyError(
                f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(own | protocol))}"
            )
        training = config_from_dict(
            TrainConfig, {**REFERENCE_DEFAULTS, **{k: v for k, v in data.items() if k in protocol}}, where
        )
        own_config = config_from_dict(cls, {k: v for k, v in data.items() if k in own}, where)
        try:
            return dataclasses.replace(own_config, training=training)
        except ConfigError as exc:
            raise NasProxyError(f"{where}.{exc.key} {exc.problem}") from None

    @property
    def seed_values(self) -> list[int]:
        return self.training.seed_values(self.seeds)


@dataclass(frozen=True)
class StudyConfig:
    """The ``[study]`` table: the search space, the sampler, the storage and where results go."""

    name: str
    search_space: str = "small"
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: int = seed_field()
    n_trials: int = bounded(
        20, above=0, at_most=100_000, why="more than Optuna's samplers handle at a useful speed; split the search"
    )
    storage: str = ""  # a database URL (with "://"), or a journal file's path; "" -> out_dir/study.journal
    out_dir: str = ""  # "" -> runs/<name>
    # Optuna artifact store for files every worker must share (the condensed set): a folder or s3://bucket;
    # "" -> out_dir/artifacts, which only workers sharing out_dir reach (nas_proxy.artifacts)
    artifacts: str = ""
    # A trial whose worker died is failed and queued again, at most max_retry times. On a database
    # that takes a heartbeat silent for grace_period seconds (0: twice the interval); on a journal
    # file, a worker on the same machine notices the dead process at its next trial.
    heartbeat_interval: int = bounded(60, above=0, **_DAY)
    grace_period: int = bounded(0, at_least=0, **_DAY)
    max_retry: int = bounded(3, at_least=0, at_most=100, why="a trial that failed 100 times will fail again")
    # A database connection lost in the middle of a study (a restart, a failover) is retried for this many
    # seconds before the worker stops with one line; within the heartbeat's grace period nothing is re-run.
    reconnect_timeout: int = bounded(120, above=0, **_DAY)

    def __post_init__(self) -> None:
        check_fields(self, "[study]")
        if not _STUDY_NAME.fullmatch(self.name):
            raise ConfigError(
                "[study]",
                "name",
                f"= {shown(self.name)} is not a plain folder name (it names runs/<name> and the study in its "
                f"storage): use 1 to 128 letters, digits, '.', '_' and '-', not starting with '.' or '-'",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[study]") -> StudyConfig:
        return config_from_dict(cls, data, where)

    @property
    def output(self) -> Path:
        """Where the study's files go: ``out_dir``, or ``runs/<name>`` under the current folder (the folder a user
        runs ``search`` in holds its results, as a build folder does; presets are found from anywhere)."""
        return Path(self.out_dir or f"runs/{self.name}")

    def elsewhere(self) -> str | None:
        """How to reach the study's files when :attr:`output` does not hold them: a relative output is under the
        current folder, so a study run from another folder is there. None when ``output`` exists or is absolute
        (then the study does not exist yet). Every command that reads the study says this rather than a hint that
        starts it again, which would repeat hours of work done elsewhere."""
        if self.output.is_absolute() or self.output.exists():
            return None
        return (
            f"a study's files are kept in {self.output} under the folder where `nas-proxy search` ran; run from "
            f"that folder, or set [study].out_dir in a preset of your own to the full path of that {self.output}"
        )

    @property
    def storage_url(self) -> str:
        """What Optuna's own tools open: a database URL, or the path of a journal file (as ``optuna`` and
        ``optuna-dashboard`` take it)."""
        return self.storage or str(self.output / "study.journal")


@dataclass(frozen=True)
class Preset:
    """A whole study preset: one config object per stage, read from ``studies/*.toml`` by :func:`load_preset`."""

    data: DataConfig
    study: StudyConfig
    condense: CondenseConfig
    training: TrainConfig  # how a candidate trains (the [training] table); [score] says how it is scored
    score: ScoreConfig
    reference: ReferenceConfig
    path: Path

    def __post_init__(self) -> None:
        self.training.seed_values(self.score.seeds)  # the last seed must be one torch and numpy take, like the first

    def space(self) -> SearchSpace:
        return load_search_space(self.study.search_space)

    @property
    def score_seed_values(self) -> list[int]:
        """The seeds a trial's score is the mean over: ``[training].seed`` and the ``[score].seeds - 1`` after it."""
        return self.training.seed_values(self.score.seeds)

    @property
    def ref(self) -> str:
        """How to name this preset on the command line: its shipped name (``quickstart``), else its path."""
        return shipped_name(self.path, "studies") or str(self.path)


class _Section(Protocol):
    """A preset's table: a config class read from its TOML table."""

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = ...) -> Any: ...


_SECTIONS: dict[str, type[_Section]] = {
    "data": DataConfig,
    "study": StudyConfig,
    "condense": CondenseConfig,
    "training": TrainConfig,
    "score": ScoreConfig,
    "reference": ReferenceConfig,
}


def load_preset(name_or_path: str | Path) -> Preset:
    """Read and validate a study preset: a shipped one by name (``quickstart``) or a ``.toml`` file.

    Errors name the file and the key.
    """
    path = find_toml(name_or_path, "studies")
    raw = read_toml(path, f"study preset not found: {path}; pass a shipped name or your own .toml")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise NasProxyError(
            f"{path}: unknown table [{unknown[0]}]; allowed tables are {', '.join(f'[{s}]' for s in _SECTIONS)}"
        )
    if "study" not in raw:
        raise NasProxyError(f'{path}: missing [study] table (it needs at least name = "...")')
    configs = {key: cls.from_dict(raw.get(key, {}), f"{path}: [{key}]") for key, cls in _SECTIONS.items()}
    try:
        preset = Preset(path=path, **configs)
    except ConfigError as exc:  # a rule across tables: name the file
        raise NasProxyError(f"{path}: {exc}") from None
    preset.space()  # the search space must exist and be valid
    return preset


__all__ = [
    "BASE_PROXIES",
    "FITTED_PROXIES",
    "PROXIES",
    "TRAINED_PROXIES",
    "CondenseConfig",
    "DataConfig",
    "Preset",
    "TrainConfig",
    "ReferenceConfig",
    "ScoreConfig",
    "StudyConfig",
    "load_preset",
]
