"""The objective: how the trials a worker took together are scored and recorded.

:func:`make_objective` gives the function the trial loop (:func:`~nas_proxy.study._trials.run_trials`) calls on
each batch of trials: it draws each trial's architecture (:func:`suggest_arch`), records it, its size and its
reference accuracy on the trial, reuses the score of an architecture scored before (by a finished trial, one
another worker is training, or a batch-mate), trains the others together with the proxy, and, in a
multi-fidelity study, lets the pruner stop a trial at the first fidelity before the rest go on to the second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nas_proxy._interrupt import interruptible, shielded
from nas_proxy.data import Dataset
from nas_proxy.method._model import network_size
from nas_proxy.reference import read_reference, reference_accuracy
from nas_proxy.scoring import Proxy
from nas_proxy.space import AXES, ArchSpec, SearchSpace
from nas_proxy.study._stale import POLL_SECONDS, WORKER_ATTR, owner_dead, worker_id
from nas_proxy.study._storage import stable_experimental


def suggest_arch(trial: optuna.Trial, space: SearchSpace) -> ArchSpec:
    return ArchSpec(*(trial.suggest_categorical(axis, list(space.choices()[axis])) for axis in AXES))


def _previous_score(study: optuna.Study, arch_id: str) -> optuna.trial.FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.user_attrs.get("arch") == arch_id and not trial.user_attrs.get("cached", False):
            return trial
    return None


def _await_duplicate(trial: optuna.Trial, arch_id: str, on_database: bool) -> optuna.trial.FrozenTrial | None:
    """The score of ``arch_id`` from a trial that another worker started first, once that one finishes.

    Workers that draw one architecture at once would train it twice; the later trial waits instead (a
    storage read a second) and reuses the score. None when no earlier trial is training it, or when that
    one stopped without a score (its worker died, or was stopped): this trial trains it then. A dead
    worker's trial is noticed here as between trials: the process table on this machine, the heartbeat
    of other machines' (which a database's waiting workers check themselves, as none of them starts a trial).
    """
    study, me = trial.study, worker_id()
    while True:
        if on_database:
            with stable_experimental(), shielded():
                optuna.storages.fail_stale_trials(study)
        first = [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.number < trial.number
            and t.user_attrs.get("arch") == arch_id
            and not owner_dead(t)
            and t.user_attrs.get(WORKER_ATTR) != me  # this worker's: a batch-mate, or a copy it trains after this one
        ]
        if not first:
            return _previous_score(study, arch_id)
        with interruptible():  # waiting is pure time: Ctrl-C stops it at once
            time.sleep(POLL_SECONDS)


def _reuse(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Mark ``trial`` as repeating the architecture of a trial with user attributes ``attrs``: its size and cost."""
    for key in ("params", "flops", "seconds"):
        trial.set_user_attr(key, attrs[key])
    trial.set_user_attr("cached", True)


def make_objective(
    space: SearchSpace,
    data: Dataset,
    proxy: Proxy,
    seed_values: list[int],
    reference: tuple[Path, str],
    on_database: bool,
    refined: Proxy | None = None,
) -> Callable[[Sequence[optuna.Trial]], list[float | None]]:
    """The objective of trials a worker took together: each one's proxy score (the mean over ``seed_values``), or None
    for one pruned at the first fidelity. ``reference`` is the reference table and its metric (a trial of a
    reference architecture records its accuracy); ``on_database``: whether the study's storage is a database
    (then another worker's running copy of an architecture is waited for, not trained again).

    The architectures are drawn in the trials' order before any of them trains, so a batch draws what its trials
    would draw one at a time with the earlier ones still running. One drawn before (a finished trial's, one another
    worker is training, a batch-mate's) reuses that score. The others train together
    (:meth:`~nas_proxy.scoring.Proxy.scores`: on a CPU one per core, bit for bit what each scores alone), and each
    trial's ``seconds`` is its share of their wall time, so the proxy's costs add up to the time spent, as the
    reference's do. With ``refined`` (multi-fidelity), the proxy's score is reported as the first fidelity; a
    trial the pruner stops there keeps it (``fidelity`` 0), the others go on to ``refined``'s score
    (``fidelity`` 1). Both are predictions of the same reference rank, so one ranking holds both.
    """
    table, metric = reference

    def objective(trials: Sequence[optuna.Trial]) -> list[float | None]:
        accuracy = reference_accuracy(read_reference(table), metric)
        outcomes: list[float | None] = [None] * len(trials)
        archs, copies = _draw_archs(trials, space, data, accuracy, on_database, outcomes)
        seconds = dict.fromkeys(archs, 0.0)
        first: dict[int, float] = {}  # the first fidelity's scores
        if archs:
            scores, share = _mean_scores(proxy, seed_values, trials, archs, list(archs))
            for index, score in zip(archs, scores):
                outcomes[index] = first[index] = score
                seconds[index] += share
        if refined is not None and archs:
            _refine(refined, seed_values, trials, archs, first, outcomes, seconds)
        for index, value in seconds.items():
            trials[index].set_user_attr("seconds", value)
        _settle_copies(trials, copies, first, outcomes)
        return outcomes

    return objective


def _draw_archs(
    trials: Sequence[optuna.Trial],
    space: SearchSpace,
    data: Dataset,
    reference: pd.Series,
    on_database: bool,
    outcomes: list[float | None],
) -> tuple[dict[int, ArchSpec], dict[int, int]]:
    """Draw and record each trial's architecture, in the trials' order, and sort out which trials train.

    Returns the trials that train (by index, with their architectures; their size is recorded) and the trials
    that draw a batch-mate's architecture (index -> that batch-mate). A trial whose architecture was scored
    before, or is being scored by another worker, reuses that score, which goes to its place in ``outcomes``.
    All this happens before anything trains, so a batch draws what its trials would draw one at a time.
    """
    archs: dict[int, ArchSpec] = {}  # the trials that train, by index
    copies: dict[int, int] = {}  # a trial drawing a batch-mate's architecture -> that batch-mate
    for index, trial in enumerate(trials):
        arch = suggest_arch(trial, space)
        trial.set_user_attr("arch", arch.id)
        if arch.id in reference.index:  # shown beside the score in the dashboard and trials_dataframe()
            trial.set_user_attr("reference_acc", float(reference[arch.id]))
        mate = next((i for i, other in archs.items() if other == arch), None)
        if mate is not None:
            copies[index] = mate
            continue
        earlier = _previous_score(trial.study, arch.id) or _await_duplicate(trial, arch.id, on_database)
        if earlier is not None:  # TPE repeats architectures on a categorical space: reuse the score
            _reuse(trial, earlier.user_attrs)
            outcomes[index] = earlier.value
            continue
        archs[index] = arch
        params, flops = network_size(arch, data)
        trial.set_user_attr("params", params)
        trial.set_user_attr("flops", flops)
    return archs, copies


def _mean_scores(
    scorer: Proxy,
    seed_values: Sequence[int],
    trials: Sequence[optuna.Trial],
    archs: dict[int, ArchSpec],
    indices: list[int],
) -> tuple[list[float], float]:
    """The mean score over ``seed_values`` of ``trials[i]`` (``archs[i]``) for each of ``indices``, and each one's share
    of the wall time; a trained network's learning curves (one per seed) go to its trial (``curves``), so a
    study keeps its runs as a cache does."""
    tic = time.perf_counter()
    with interruptible():  # the training alone: Ctrl-C elsewhere waits for the storage writes to finish
        by_seed = [scorer.measure([archs[i] for i in indices], seed) for seed in seed_values]
    share = (time.perf_counter() - tic) / len(indices)
    for index, measured in zip(indices, zip(*by_seed)):
        curves = [m.curve.to_dict() for m in measured if m.curve is not None]
        if len(curves) == len(measured):  # a trained network's, one per seed
            trials[index].set_user_attr("curves", curves)
    return [sum(map(scorer.read, measured)) / len(seed_values) for measured in zip(*by_seed)], share


def _refine(
    refined: Proxy,
    seed_values: Sequence[int],
    trials: Sequence[optuna.Trial],
    archs: dict[int, ArchSpec],
    first: dict[int, float],
    outcomes: list[float | None],
    seconds: dict[int, float],
) -> None:
    """The second fidelity of a multi-fidelity study: report each trained trial's ``first`` score to the pruner,
    and score the trials it does not stop with ``refined``; ``outcomes`` and ``seconds`` take the result (None for
    a pruned trial, which keeps ``fidelity`` 0; the others' ``fidelity`` is 1)."""
    going_on = []
    for index in archs:
        trials[index].report(first[index], 1)  # successive halving's first rung
        trials[index].set_user_attr("fidelity", 0)
        if trials[index].should_prune():
            outcomes[index] = None
        else:
            going_on.append(index)
    if going_on:
        scores, share = _mean_scores(refined, seed_values, trials, archs, going_on)
        for index, score in zip(going_on, scores):
            outcomes[index] = score
            seconds[index] += share
            trials[index].set_user_attr("fidelity", 1)


def _settle_copies(
    trials: Sequence[optuna.Trial], copies: dict[int, int], first: dict[int, float], outcomes: list[float | None]
) -> None:
    """Give each trial that drew a batch-mate's architecture that batch-mate's size, cost and outcome, once the
    batch-mate is scored: the architecture trains once per batch."""
    for index, mate in copies.items():
        _reuse(trials[index], trials[mate].user_attrs)
        if mate in first and outcomes[mate] is None:  # pruned: so is its copy, at the same first score
            trials[index].report(first[mate], 1)
        outcomes[index] = outcomes[mate]


__all__ = ["make_objective", "suggest_arch"]
