"""The Optuna study of a preset: open or load it on its storage, queue architectures, read its scores.

:func:`open_study` creates or resumes the study with the preset's sampler (TPE or random,
seeded) and pruner, and records the search space on it; :func:`load_study` opens an existing
one for reading (also while workers run); :func:`proxy_scores` is its ranking, one row per
architecture; :func:`select_archs` reads the ``--archs`` language (a reference sample, the study's
best, ids). Running trials is :func:`nas_proxy.study.run_search`'s job.

Example:
    >>> from nas_proxy import ArchSpec, load_preset, open_study
    >>> from nas_proxy.study import enqueue_archs
    >>> from nas_proxy.study._study import proxy_scores
    >>> study = open_study(load_preset("quickstart"))  # a new study: runs/quickstart/study.journal
    >>> enqueue_archs(study, [ArchSpec.parse("d1-w32-relu-none-avgpool")])
    1
    >>> enqueue_archs(study, [ArchSpec.parse("d1-w32-relu-none-avgpool")])  # queued already: skipped
    0
    >>> list(proxy_scores(study).columns)
    ['arch', 'score', 'trial', 'params', 'flops', 'seconds', 'fidelity']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from nas_proxy._records import record_once
from nas_proxy.config import Preset, ReferenceConfig, ScoreConfig, StudyConfig, load_preset
from nas_proxy.errors import ArgumentError, NasProxyError
from nas_proxy.reference._reference import reference_space
from nas_proxy.space import AXES, ArchSpec, SearchSpace
from nas_proxy.study._database import hide_password
from nas_proxy.study._storage import journal_file, open_storage, storage_errors

SCORED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # the trials that count towards n_trials
PENDING = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)  # queued or running


def _pruner(score: ScoreConfig) -> optuna.pruners.BasePruner:
    """Successive halving over the fidelities when the preset refines its score, else none."""
    if not score.refine:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=1, reduction_factor=score.reduction_factor, min_early_stopping_rate=0
    )


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler whose randomness is drawn anew for every trial, from the study's seed and the trial's number.

    Optuna's samplers seed one random stream per process, so every worker of a study, and every run that
    continues one, replays the same proposals (all of a random sampler's, TPE's first ten): the replays reuse
    one score where new architectures were asked for. Seeded by the trial's number, a proposal depends on the
    seed and the study's history only, whichever worker or run makes it. ``make`` builds the sampler for one
    seed (Optuna's own, which reads the history from the study each time).
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._current: tuple[int, optuna.samplers.BaseSampler] | None = None

    def _sampler(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        # A worker draws one trial's architecture at a time (a batch's in trial order): made again per trial
        if self._current is None or self._current[0] != trial.number:
            seed = int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])
            self._current = (trial.number, self._make(seed))
        return self._current[1]

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._sampler(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._sampler(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to reseed: every trial's stream is seeded from its number."""


def _sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    kind = optuna.samplers.RandomSampler if config.sampler == "random" else optuna.samplers.TPESampler
    return TrialSeededSampler(lambda seed: kind(seed=seed), config.sampler_seed)


def open_study(preset: Preset) -> optuna.Study:
    """Create or resume the preset's study on its storage; the search space is recorded on it (a study is never
    searched over two spaces)."""
    space = preset.space()
    url = preset.study.storage_url
    with storage_errors(url):
        storage, sampler, pruner = open_storage(preset.study), _sampler(preset.study), _pruner(preset.score)
        try:  # load first: create_study(load_if_exists=True) appends to a journal even when the study exists
            study = optuna.load_study(study_name=preset.study.name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            study = optuna.create_study(
                study_name=preset.study.name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction="maximize",
                load_if_exists=True,
            )
    choices = {axis: list(values) for axis, values in space.choices().items()}
    if record_once(study, "search_space", choices) != choices:
        raise NasProxyError(
            f"study {preset.study.name!r} on {url} was created with another "
            f"search space; use a new [study].name or the original space"
        )
    return study


def load_study(preset: Preset | str | Path) -> optuna.Study:
    """The preset's existing Optuna study (a :class:`Preset`, a shipped name or a path); an error if none yet.

    Example:
        >>> import nas_proxy
        >>> study = nas_proxy.load_study("quickstart")  # doctest: +SKIP
        >>> study.trials_dataframe()  # doctest: +SKIP
    """
    if not isinstance(preset, Preset):
        preset = load_preset(preset)
    config = preset.study
    url = config.storage_url
    file = journal_file(url)
    if file is not None and file.is_dir():
        raise NasProxyError(f"storage {file} is a folder; name the journal file in it, e.g. {file / 'study.journal'}")
    if file is not None and not file.is_file():
        if config.storage:
            raise NasProxyError(
                f"no study at {file.resolve()}, the journal file [study].storage (--storage) names; name the one "
                f"`nas-proxy search` wrote"
            )
        where, elsewhere = f"no study yet in {config.output.resolve()}", config.elsewhere()
        raise NasProxyError(
            f"{where}: {elsewhere}" if elsewhere else f"{where}; `nas-proxy search {preset.ref}` starts it"
        )
    with storage_errors(url):
        storage = open_storage(config)
        try:
            return optuna.load_study(study_name=config.name, storage=storage)
        except KeyError:
            names = ", ".join(map(repr, optuna.get_all_study_names(storage))) or "none"
            raise NasProxyError(
                f"no study named {config.name!r} on {hide_password(url)} (it holds: {names}); check [study].name and "
                f"the storage (--storage)"
            ) from None


def enqueue_archs(study: optuna.Study, archs: list[ArchSpec]) -> int:
    """Queue ``archs`` as the study's next trials; return how many were queued.

    An architecture the study has scored, queued or is running is skipped; one whose only trials failed
    (stopped by Ctrl-C, or by an error in an older run) is queued again: a queued architecture is scored in
    the end. Optuna's ``skip_if_exists`` would match the failed trial and never queue it again.
    """
    held = set()
    for trial in study.get_trials(deepcopy=False, states=(*SCORED, *PENDING)):
        params = trial.system_attrs.get("fixed_params") or trial.params  # enqueued trials keep theirs apart
        held.add(tuple(params.get(axis) for axis in AXES))
    queued = 0
    for arch in dict.fromkeys(archs):
        params = {axis: getattr(arch, axis) for axis in AXES}
        if tuple(params.values()) not in held:
            study.enqueue_trial(params)
            queued += 1
    return queued


def proxy_scores(study: optuna.Study) -> pd.DataFrame:
    """One row per architecture the study scored (best first): arch, score, trial, params, flops, seconds, fidelity.

    Repeated suggestions of one architecture reuse its score, so each architecture counts once. A
    trial pruned by a multi-fidelity study counts with the last score it reported (its fidelity).
    """
    rows = []
    value: float | None
    for trial in study.get_trials(deepcopy=False, states=SCORED):
        attrs = trial.user_attrs
        if "arch" not in attrs or attrs.get("cached", False):
            continue
        if trial.state == optuna.trial.TrialState.PRUNED:
            if not trial.intermediate_values:
                continue
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            value = trial.value
        rows.append(
            {
                "arch": attrs["arch"],
                "score": value,
                "trial": trial.number,
                "params": attrs.get("params"),
                "flops": attrs.get("flops"),
                "seconds": attrs.get("seconds"),
                "fidelity": attrs.get("fidelity"),
            }
        )
    columns = ["arch", "score", "trial", "params", "flops", "seconds", "fidelity"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.drop_duplicates("arch")  # two workers may score one architecture at once; keep the first
    return table.sort_values(["score", "trial"], ascending=[False, True], ignore_index=True)


def select_archs(
    archs: str | int, space: SearchSpace, config: ReferenceConfig, study: optuna.Study | None = None
) -> list[ArchSpec]:
    """Architectures of ``space`` named by ``archs``: ``N`` (a seeded sample; also an int), ``spread:N`` (N spread over
    every axis's choices, :meth:`~nas_proxy.space.SearchSpace.spread`: a calibration needs fewer reference runs for
    the same faithfulness, ``benchmarks/RESULTS.md``), ``all``, ``top-K`` (the study's best) or ids.

    ``N`` and ``spread:N`` draw with ``config.sample_seed`` from :func:`reference_space`, so
    ``reference --archs N`` and ``search --archs N`` name the same set.
    """
    spec = str(archs).strip()
    if spec == "all":
        return space.archs()
    if spec.isdigit():
        return reference_space(space, config).sample(int(spec), config.sample_seed)
    if spec.startswith("spread:"):
        n = spec.removeprefix("spread:")
        if not n.isdigit() or int(n) < 1:
            raise ArgumentError(
                "select_archs", "archs", f"{spec!r}: expected spread:N with N a positive integer, e.g. spread:30"
            )
        sub = reference_space(space, config)
        return sub.spread(int(n), config.sample_seed)
    if spec.startswith("top-"):
        k = spec.removeprefix("top-")
        if not k.isdigit() or int(k) < 1:
            raise ArgumentError(
                "select_archs", "archs", f"{spec!r}: expected top-K with K a positive integer, e.g. top-10"
            )
        if study is None:
            raise ArgumentError(
                "select_archs", "archs", f"{spec!r} needs a study with finished trials; run `nas-proxy search` first"
            )
        scores = proxy_scores(study)
        if scores.empty:
            raise ArgumentError(
                "select_archs",
                "archs",
                f"{spec!r}: study {study.study_name!r} has no finished trials yet; run `nas-proxy search` first",
            )
        return [ArchSpec.parse(a) for a in scores["arch"].head(int(k))]
    named = [ArchSpec.parse(item) for item in spec.split(",") if item.strip()]
    for arch in named:
        if arch not in space:
            raise NasProxyError(f"architecture {arch.id} is not in search space {space.name!r}; pick one from it")
    if not named:
        raise ArgumentError(
            "select_archs", "archs", "is empty; pass N, spread:N, all, top-K or comma-separated architecture ids"
        )
    return named


__all__ = ["enqueue_archs", "load_study", "open_study", "proxy_scores", "select_archs"]
