"""Every way of scoring an architecture without full training, behind one interface.

A :class:`Proxy` turns (architecture, seed) into a score where higher predicts a better
network. The preset's ``[score]`` table picks the one a study searches with; ``nas-proxy
compare`` measures them side by side against the reference table.

- ``dm``: train on the condensed set with the ``[training]`` protocol, score = validation accuracy;
- ``random``: the same on a class-balanced random real subset of the same size (new per seed);
- ``early``: the ``[reference]`` protocol cut to ``[score].early_epochs`` passes over the full
  training data, any positive number (counted in optimiser steps: 2.5 passes, or 0.3 of one);
- ``synflow``, ``naswot``, ``grad_norm``: zero-cost scores at initialisation
  (:mod:`nas_proxy.scoring._zero_cost`) on ``[score].batch_size`` training images;
- ``params``, ``flops``: the network's size (bigger scores higher).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch

from nas_proxy._config import settings_key, shown
from nas_proxy._io import SharedTable, read_table
from nas_proxy.artifacts import condensed_set_path, get_condensed_set, reference_table_path, score_table_path
from nas_proxy.config import FITTED_PROXIES, PROXIES, Preset
from nas_proxy.data import Dataset
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method import TrainConfig, build_convnet, network_size, train_candidates
from nas_proxy.method._config import STEPS_LIMIT
from nas_proxy.reference import check_same_data, fit_reference, read_reference
from nas_proxy.scoring import _zero_cost as zero_cost
from nas_proxy.scoring._calibration import MIN_FIT, Calibration
from nas_proxy.space import ArchSpec

OnScore = Callable[[int, float], None]


@dataclass(frozen=True)
class Proxy:
    """A scoring rule: ``score(arch, seed)`` (higher = predicted better).

    ``settings`` is everything its scores depend on besides the data (it keys cached scores);
    ``setup_seconds`` is its one-off cost shared by all architectures (condensation for ``dm``).
    """

    name: str
    settings: dict[str, Any]
    setup_seconds: float
    score: Callable[[ArchSpec, int], float]
    calibration: Calibration | None = None  # fitted proxies: what they were fitted on (a study records it)
    # Scores several architectures at one seed in one go (trained proxies train them together), calling
    # on_score(i, score) as each is done; None: one by one
    batch: Callable[[list[ArchSpec], int, OnScore | None], list[float]] | None = None

    def scores(self, archs: Sequence[ArchSpec], seed: int, on_score: OnScore | None = None) -> list[float]:
        """``score`` of each of ``archs`` at ``seed``, in order; trained proxies train them at once (same values).
        ``on_score(i, score)`` runs as each is done, in the caller's thread (save it there: a crash loses only
        the scores in flight)."""
        if self.batch is not None:
            return self.batch(list(archs), seed, on_score)
        values = []
        for index, arch in enumerate(archs):
            values.append(self.score(arch, seed))
            if on_score is not None:
                on_score(index, values[-1])
        return values


def _trained(
    name: str,
    settings: dict[str, Any],
    setup_seconds: float,
    data: Dataset,
    config: TrainConfig,
    training_set: Callable[[int], Any],
) -> Proxy:
    def batch(archs: list[ArchSpec], seed: int, on_score: OnScore | None = None) -> list[float]:
        if not archs:
            return []
        report = None if on_score is None else (lambda index, result: on_score(index, result.val_acc))
        results = train_candidates(
            archs, training_set(seed), data, dataclasses.replace(config, seed=seed), on_result=report
        )
        return [result.val_acc for result in results]

    return Proxy(name, settings, setup_seconds, lambda arch, seed: batch([arch], seed)[0], batch=batch)


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


def _zero_cost(name: str, data: Dataset, batch_size: int) -> Callable[[ArchSpec, int], float]:
    device = data.train.x.device

    def score(arch: ArchSpec, seed: int) -> float:
        generator = torch.Generator().manual_seed(seed)
        net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator, device=device)
        index = torch.randperm(len(data.train), generator=generator)[:batch_size].to(device)
        x, y = data.train.x[index], data.train.y[index]
        if name == "synflow":
            return zero_cost.synflow(net, x)
        if name == "naswot":
            return zero_cost.naswot(net, x)
        return zero_cost.grad_norm(net, x, y)

    return score


def make_proxy(
    name: str,
    preset: Preset,
    data: Dataset,
    *,
    progress: bool = True,
    calibration: Calibration | None = None,
    study: optuna.Study | None = None,
) -> Proxy:
    """The proxy ``name`` (one of :data:`PROXIES`) set up for ``preset`` on ``data``.

    ``dm`` loads the preset's condensed set, condensing it first if no run has yet (with ``study``:
    the study's one copy, see :func:`nas_proxy.artifacts.get_condensed_set`). ``calibrated``
    and ``factors`` fit a :class:`~nas_proxy.scoring.Calibration` on the preset's reference
    table (scoring its architectures with each ``[score].features`` proxy first, cached), unless
    given the ``calibration`` a study recorded.
    """
    score_config = preset.score
    if name in FITTED_PROXIES:
        return _fitted(name, preset, data, progress, calibration, study)
    if name == "dm":
        syn = get_condensed_set(preset, data, progress, study)
        train = syn.split(data.train.x.device)
        return _trained(
            name,
            {"proxy": name, "condensed": condensed_set_path(preset, data).name, "protocol": preset.training.protocol()},
            float(syn.meta["seconds"]),
            data,
            preset.training,
            lambda seed: train,
        )
    if name == "random":
        ipc = preset.condense.ipc
        return _trained(
            name,
            {"proxy": name, "ipc": ipc, "protocol": preset.training.protocol()},
            0.0,
            data,
            preset.training,
            lambda seed: data.sample_per_class(ipc, seed=seed),
        )
    if name == "early":
        passes = score_config.early_epochs
        config = early_training(preset.reference.training, passes, len(data.train))
        return _trained(
            name,
            {"proxy": name, "early_epochs": passes, "protocol": config.protocol()},
            0.0,
            data,
            config,
            lambda seed: data.train,
        )
    if name in ("params", "flops"):
        which = name == "flops"  # network_size() is (params, flops)
        return Proxy(name, {"proxy": name}, 0.0, lambda arch, seed: float(network_size(arch, data)[which]))
    if name in ("synflow", "naswot", "grad_norm"):
        batch = score_config.batch_size
        return Proxy(name, {"proxy": name, "batch_size": batch}, 0.0, _zero_cost(name, data, batch))
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
    seeds = preset.score_seeds
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
        rows = {f: score_archs(proxy, archs, seeds, preset, data, progress=progress) for f, proxy in members.items()}
        scores = pd.DataFrame(
            {f: r.groupby("arch")["score"].mean() for f, r in rows.items()}, index=[a.id for a in archs]
        )
        calibration = Calibration.fit(scores, reference, space)
        scoring = sum(float(r["seconds"].sum()) for r in rows.values())  # cached or not: what the fit's scores cost
    elif tuple(calibration.features) != tuple(features):
        raise NasProxyError(
            f"the recorded calibration uses features {list(calibration.features)}, [score].features "
            f"says {features}; use a new [study].name or the original [score] settings"
        )
    else:
        scoring = 0.0  # paid by the run that fitted it
    setup = scoring + sum(p.setup_seconds for p in members.values())

    def batch(archs: list[ArchSpec], seed: int, on_score: OnScore | None = None) -> list[float]:
        new = [arch for arch in archs if arch.id not in calibration.archs]  # the others: leave-one-out predictions
        features = {f: dict(zip([a.id for a in new], proxy.scores(new, seed))) for f, proxy in members.items()}
        values = []
        for index, arch in enumerate(archs):
            values.append(
                calibration.predict(
                    arch, {f: v[arch.id] for f, v in features.items()} if arch.id not in calibration.archs else {}
                )
            )
            if on_score is not None:
                on_score(index, values[-1])
        return values

    settings = {
        "proxy": name,
        "features": [p.settings for p in members.values()],
        "fit": settings_key(calibration.to_dict()),
    }
    return Proxy(name, settings, setup, lambda arch, seed: batch([arch], seed)[0], calibration, batch)


SCORE_COLUMNS = ["arch", "seed", "score", "seconds", "fingerprint"]


def read_scores(path: str | Path) -> pd.DataFrame:
    """A cached score table (empty, with the right columns, if there is none yet)."""
    return read_table(
        path, SCORE_COLUMNS, "score table", "delete it to score again", dtype={"arch": str, "fingerprint": str}
    )


def score_archs(
    proxy: Proxy, archs: list[ArchSpec], seeds: list[int], preset: Preset, data: Dataset, *, progress: bool = True
) -> pd.DataFrame:
    """Score every (architecture, seed) not yet in ``proxy``'s cached table on ``data`` (in ``preset``'s output
    folder, :func:`~nas_proxy.artifacts.score_table_path`); return the rows asked for."""
    scores = SharedTable(score_table_path(preset, proxy.name, proxy.settings, data), read_scores)

    def compute(pending: list[ArchSpec], seed: int, save: Callable[[int, dict], None]) -> None:
        proxy.scores(pending, seed, lambda i, score: save(i, {"score": score, "fingerprint": data.fingerprint}))

    table = scores.fill(archs, seeds, compute, desc=f"score {proxy.name}", progress=progress)
    wanted = table["arch"].isin([a.id for a in archs]) & table["seed"].isin(seeds)
    return table[wanted]


__all__ = ["OnScore", "Proxy", "early_training", "make_proxy", "read_scores", "score_archs"]
