"""Making a proxy: from a preset by name (:func:`make_proxy`, what a study and a comparison call), or a trained one
from the stage configs it uses (:func:`dm_proxy`, :func:`subset_proxy`, :func:`short_proxy`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nas_proxy._config import settings_key, shown
from nas_proxy.artifacts import condensed_set_path, get_condensed_set, reference_table_path
from nas_proxy.config import FITTED_PROXIES, PROXIES, Preset
from nas_proxy.data import Dataset
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import (
    READOUTS,
    CondenseConfig,
    Readout,
    TrainConfig,
)
from nas_proxy.method._config import STEPS_LIMIT
from nas_proxy.reference import fit_reference, read_reference
from nas_proxy.reference._reference import check_same_data
from nas_proxy.scoring._cache import score_archs
from nas_proxy.scoring._calibration import MIN_FIT, Calibration
from nas_proxy.scoring._ensemble import Anchor
from nas_proxy.scoring._proxies import EnsembleProxy, FittedProxy, Proxy, SizeProxy, TrainedProxy, ZeroCostProxy
from nas_proxy.space import ArchSpec, SearchSpace


def short_training(reference: TrainConfig, short_epochs: float, images: int) -> TrainConfig:
    """The ``[reference]`` protocol cut to ``short_epochs`` passes over a training set of ``images``:
    ``round(short_epochs x batches per pass)`` optimiser steps, at least 1 (``steps``, which training follows
    whatever ``epochs`` says; the schedule spans those steps).

    Example:
        >>> from nas_proxy.method import TrainConfig
        >>> reference = TrainConfig(epochs=50, batch_size=100)
        >>> [short_training(reference, passes, 1000).steps for passes in (2, 2.5, 0.3)]
        [20, 25, 3]
    """
    steps = max(1, round(short_epochs * reference.batches(images)))
    if steps > STEPS_LIMIT:  # [training].steps' limit against typos, said in the terms the user set
        raise ConfigError(
            "[score]",
            "short_epochs",
            f"= {shown(short_epochs)} passes over {images:,} training images are {steps:,} optimiser steps, more "
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
    """``subset``: each candidate trained with ``training`` on a class-balanced random subset of ``ipc`` real images
    per class (drawn anew per seed)."""
    return TrainedProxy(
        name="subset",
        trains_on={"ipc": ipc},
        config=training,
        readout=readout,
        data=data,
        training_set=lambda seed: data.sample_per_class(ipc, seed=seed),
    )


def short_proxy(
    reference: TrainConfig, epochs: float, data: Dataset, *, readout: Readout = READOUTS["val_acc"]
) -> TrainedProxy:
    """``short``: each candidate trained with the ``reference`` protocol cut to ``epochs`` passes over the full
    training data (:func:`short_training`)."""
    return TrainedProxy(
        name="short",
        trains_on={"full": len(data.train)},
        config=short_training(reference, epochs, len(data.train)),
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
        members = {f: make_proxy(f, preset, data, progress=progress, study=study) for f in score_config.features}
        space = preset.space()
        spread = min(score_config.anchor, len(space))
        anchor = Anchor.from_dict(fitted) if fitted else space.spread(spread, preset.reference.sample_seed)
        return ensemble_proxy(members, anchor, data, preset.score_seed_values, preset.study.output, progress=progress)
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
    if name == "subset":
        return subset_proxy(preset.condense.ipc, preset.training, data, readout=readout)
    if name == "short":
        return short_proxy(preset.reference.training, score_config.short_epochs, data, readout=readout)
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
    """``calibrated`` or ``factors`` for ``preset``: its reference table read and checked here, so a missing or small
    one is said in the preset's terms (the command that trains one)."""
    features = preset.score.features if name == "calibrated" else []
    members = {f: make_proxy(f, preset, data, progress=progress, study=study) for f in features}
    space, seed_values, output = preset.space(), preset.score_seed_values, preset.study.output
    if calibration is not None:
        return calibrated_proxy(name, members, calibration, space, data, seed_values, output)
    path = reference_table_path(preset.study.output, preset.data, preset.reference)
    table = read_reference(path)
    check_same_data(table, data, path)
    reference = fit_reference(table, preset.reference)
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
    return calibrated_proxy(name, members, reference, space, data, seed_values, output, progress=progress)


def calibrated_proxy(
    name: str,
    members: dict[str, Proxy],
    fit: pd.Series | Calibration,
    space: SearchSpace,
    data: Dataset,
    seed_values: list[int],
    output: Path,
    *,
    progress: bool = True,
) -> FittedProxy:
    """``calibrated`` (``members``: its feature proxies by name) or ``factors`` (none): a
    :class:`~nas_proxy.scoring.Calibration` fitted on ``fit``, the reference accuracy of each architecture id (its
    members score those of ``space`` first, the mean over ``seed_values``, cached in ``output``), or a calibration a
    study recorded."""
    if isinstance(fit, Calibration):
        if tuple(fit.features) != tuple(members):
            raise NasProxyError(
                f"the recorded calibration uses features {list(fit.features)}, [score].features "
                f"says {list(members)}; use a new [study].name or the original [score] settings"
            )
        calibration, scoring = fit, 0.0  # paid by the run that fitted it
    else:
        archs = [arch for arch in map(ArchSpec.parse, fit.index) if arch in space]
        scores, scoring = _mean_scores(members, archs, seed_values, data, output, progress)
        calibration = Calibration.fit(scores, fit, space)
    return FittedProxy(
        name=name,
        setup_seconds=scoring + sum(p.setup_seconds for p in members.values()),
        calibration=calibration,
        features=[p.settings for p in members.values()],
        fit=settings_key(calibration.to_dict()),
        members=members,
    )


def _mean_scores(
    members: dict[str, Proxy],
    archs: list[ArchSpec],
    seed_values: list[int],
    data: Dataset,
    output: Path,
    progress: bool,
) -> tuple[pd.DataFrame, float]:
    """Each member's score of ``archs`` (mean over ``seed_values``; cached in ``output``) and what they cost."""
    rows = {f: score_archs(p, archs, seed_values, data, output, progress=progress) for f, p in members.items()}
    frame = pd.DataFrame({f: r.groupby("arch")["score"].mean() for f, r in rows.items()}, index=[a.id for a in archs])
    return frame, sum(float(r["seconds"].sum()) for r in rows.values())  # cached or not: what they cost


def ensemble_proxy(
    members: dict[str, Proxy],
    anchor: list[ArchSpec] | Anchor,
    data: Dataset,
    seed_values: list[int],
    output: Path,
    *,
    progress: bool = True,
) -> EnsembleProxy:
    """``ensemble``: the mean quantile of the ``members``' scores among an :class:`~nas_proxy.scoring.Anchor`, scored
    here on the ``anchor`` architectures (the mean over ``seed_values``, cached in ``output``), or one a study
    recorded."""
    if isinstance(anchor, Anchor):
        if tuple(anchor.features) != tuple(members):
            raise NasProxyError(
                f"the recorded anchor scores {list(anchor.features)}, [score].features says {list(members)}; use a "
                f"new [study].name or the original [score] settings"
            )
        fixed, scoring = anchor, 0.0  # a recorded anchor was paid by the run that scored it
    else:
        frame, scoring = _mean_scores(members, anchor, seed_values, data, output, progress)
        fixed = Anchor.of(frame)
    return EnsembleProxy(
        name="ensemble",
        setup_seconds=scoring + sum(p.setup_seconds for p in members.values()),
        features=[p.settings for p in members.values()],
        fit=settings_key(fixed.to_dict()),
        members=members,
        anchor=fixed,
    )


__all__ = [
    "calibrated_proxy",
    "dm_proxy",
    "ensemble_proxy",
    "short_training",
    "make_proxy",
    "short_proxy",
    "subset_proxy",
]
