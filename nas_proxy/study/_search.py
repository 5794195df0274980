"""The search: condense once, train the reference sample, then let Optuna propose architectures the proxy scores.

:func:`run_search` runs one worker's share of a preset's study: the condensed set is built
once per (settings, data) and shared by every run and worker (:mod:`nas_proxy.artifacts`); trials
record the architecture and its cost, and an architecture suggested again reuses its earlier
score. Whenever a trial scores an architecture that has a reference accuracy, the Spearman and
Kendall correlation over all such architectures is printed and stored on the study. Several
workers are :func:`nas_proxy.study.run_workers`. The pieces: ``_objective`` scores and records a
batch of trials, ``_trials`` is the loop that takes trial slots and runs the batches, ``_correlation``
the callback that follows the correlation; this module sets the study up for them (its proxy, the
reference sample, the target).

Example (a preset of one's own; keys left out take their defaults; results go to ``runs/<name>/``):
    >>> from pathlib import Path
    >>> from nas_proxy import ArchSpec, load_dataset, load_preset, run_search
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ... search_space = "small"
    ...
    ... [data]
    ... dataset = "digits"
    ...
    ... [score]
    ... proxy = "naswot"
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> preset.study.sampler, preset.score.proxy, preset.reference.training.epochs
    ('tpe', 'naswot', 50)
    >>> study = run_search(preset, load_dataset(preset.data), n_trials=3, progress=False)  # doctest: +ELLIPSIS
    study 'tiny' on ...
    running 3 trials
    >>> [trial.state.name for trial in study.trials]
    ['COMPLETE', 'COMPLETE', 'COMPLETE']
    >>> best = ArchSpec.parse(study.best_trial.user_attrs["arch"])  # the best-scoring architecture
    >>> best in preset.space()
    True
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from tqdm.auto import tqdm

from nas_proxy._interrupt import safe_interrupt
from nas_proxy._io import check_writable
from nas_proxy._records import as_stored, record_once
from nas_proxy.artifacts import reference_table_path
from nas_proxy.config import Preset, ReferenceConfig, ScoreConfig, StudyConfig
from nas_proxy.data import Dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method import TrainConfig
from nas_proxy.method._train import concurrent_jobs
from nas_proxy.reference import run_reference
from nas_proxy.scoring import Proxy, make_proxy
from nas_proxy.scoring._proxies import fit_attr
from nas_proxy.space import ArchSpec, SearchSpace
from nas_proxy.study._correlation import ReferenceCorrelation
from nas_proxy.study._database import hide_password
from nas_proxy.study._objective import make_objective
from nas_proxy.study._storage import journal_file
from nas_proxy.study._study import SCORED, enqueue_archs, open_study, select_archs
from nas_proxy.study._trials import run_trials


def record_proxy(study: optuna.Study, config: StudyConfig, proxy: Proxy, refined: Proxy | None = None) -> None:
    """Record the proxy's settings (and calibrations) on the study, or refuse a study scored by another one.

    ``refined`` is the higher fidelity of a multi-fidelity study (``[score].refine``).
    """
    settings = as_stored(proxy.settings if refined is None else {**proxy.settings, "refined": refined.settings})
    if study.user_attrs.get("proxy", settings) == settings:  # fits first: a worker that finds the settings finds them
        for fitted, suffix in ((proxy, ""), (refined, "_refined")):
            if fitted is None:
                continue
            record = fitted.fit_record()
            if record is not None:
                record_once(study, f"{fitted.fit_attr}{suffix}", record)
    recorded = record_once(study, "proxy", settings)
    if recorded != settings:
        raise NasProxyError(
            f"study {config.name!r} on {config.storage_url} was scored by another proxy "
            f"or protocol ({recorded.get('proxy')}); use a new [study].name or the original "
            f"[training], [condense] and [score] settings"
        )


def _search_proxies(preset: Preset, data: Dataset, study: optuna.Study, progress: bool) -> tuple[Proxy, Proxy | None]:
    """The preset's proxy and, with ``[score].refine``, its higher fidelity; fitted ones reuse the calibrations
    the study recorded, so every trial and worker shares them."""

    def fitted(preset: Preset, suffix: str) -> Proxy:
        attr = fit_attr(preset.score.proxy)
        key = f"{attr}{suffix}"

        def make(fit: dict[str, Any] | None) -> Proxy:
            return make_proxy(preset.score.proxy, preset, data, progress=progress, fitted=fit, study=study)

        proxy = make(study.user_attrs.get(key) if attr else None)
        record = proxy.fit_record()
        if record is None:
            return proxy
        ours = as_stored(record)
        recorded = record_once(study, key, ours)
        return proxy if recorded == ours else make(recorded)  # a worker fitting at the same time recorded first

    proxy = fitted(preset, "")
    if not preset.score.refine:
        return proxy, None
    score = dataclasses.replace(preset.score, features=[*preset.score.features, *preset.score.refine], refine=[])
    return proxy, fitted(dataclasses.replace(preset, score=score), "_refined")


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines (study created, each trial finished) inside, as a notebook shows them: they repeat what the
    progress bar and the search's own lines say. The caller's verbosity comes back after, and a quieter one stays."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def run_search(
    preset: Preset, data: Dataset, n_trials: int | None = None, *, progress: bool = True, verbose: bool = True
) -> optuna.Study:
    """Condense once, train the reference sample, then run trials until the study holds ``n_trials``.

    The steps: the preset's condensed set (built once, then reused); the ``[reference].sample``
    architectures trained on the full data if the preset asks for a sample, and queued to be
    scored first; then trials until the study holds ``n_trials`` finished ones (default
    ``[study].n_trials``, raised if needed so that every queued trial runs). Several processes
    may call this on one storage at once: a worker starts a trial only while the study's finished
    and running trials leave one, so together they end at the target and no work is done twice; a
    trial whose worker died is run again by another (:func:`~nas_proxy.study._trials.run_trials`). A trained
    proxy's trials are taken two per concurrent job (``[training].jobs``; by default one per core on a CPU) and
    train side by side (:func:`~nas_proxy.study._objective.make_objective`). ``verbose`` prints what
    the study is doing and the correlation with the reference as trials complete; ``progress``
    shows progress bars.

    Ctrl-C stops at once while networks train (their trials are marked failed and queued again) and otherwise at
    the next safe point; either way it raises ``KeyboardInterrupt`` and the study is left
    consistent, ready to continue.
    """
    target = _checked_target(preset, data, n_trials)
    say = tqdm.write if verbose else (lambda message: None)
    say(f"study {preset.study.name!r} on {hide_password(preset.study.storage_url)}")
    # Ctrl-C: KeyboardInterrupt once the storage is consistent
    table, metric = reference_table_path(preset.study.output, preset.data, preset.reference), preset.reference.metric
    with quiet_optuna(), safe_interrupt() as interrupt:
        sample = _reference_sample(preset.space(), preset.reference, data, table, progress)
        study = open_study(preset)
        _announce_fits(preset.score, study, say)
        proxy, refined = _search_proxies(preset, data, study, progress)
        record_proxy(study, preset.study, proxy, refined)
        if "setup_seconds" not in study.user_attrs:  # the amortised side of the proxy's cost, paid by the first run
            study.set_user_attr("setup_seconds", proxy.setup_seconds + (refined.setup_seconds if refined else 0.0))
        enqueue_archs(study, [*sample, *proxy.paid_for()])  # the reference's, then what the proxy's fit scored
        done, target = _settle_target(study, preset.study.n_trials, target, say)
        if done >= target:
            return study
        batch = _batch_size(preset.training, data, proxy, target)
        on_database = journal_file(preset.study.storage_url) is None
        seed_values = preset.score_seed_values
        objective = make_objective(preset.space(), data, proxy, seed_values, (table, metric), on_database, refined)
        run_trials(
            preset.study,
            study,
            objective,
            batch,
            target,
            [ReferenceCorrelation(table, metric, verbose)],
            interrupt,
            progress,
            say,
        )
    return study


def _checked_target(preset: Preset, data: Dataset, n_trials: int | None) -> int:
    """The number of finished trials to reach (``n_trials``, by default ``[study].n_trials``), once it, the data and
    the output folder are checked: a mistake in them stops the search before minutes of condensing and training."""
    data.check(preset.data)
    if {preset.score.proxy, *preset.score.features, *preset.score.refine} & {"dm", "subset"}:
        data.check_ipc(preset.condense.ipc)  # [condense].ipc images of each class: a condensed set or a subset
    target = n_trials if n_trials is not None else preset.study.n_trials
    dataclasses.replace(preset.study, n_trials=target)  # checks it as [study].n_trials
    check_writable(preset.study.output, "[study].out_dir")  # before minutes of condensing and training
    return target


def _reference_sample(
    space: SearchSpace, reference: ReferenceConfig, data: Dataset, table: Path, progress: bool
) -> list[ArchSpec]:
    """The ``[reference].sample`` architectures of ``space`` (none without a sample), trained on the full data into
    the reference ``table``; they are scored first, and a calibrated proxy is fitted on them."""
    sample = select_archs(reference.sample, space, reference) if reference.sample else []
    if sample:  # before the proxy: a calibrated one is fitted on the reference
        run_reference(reference, data, sample, table, progress=progress)
    return sample


def _announce_fits(score: ScoreConfig, study: optuna.Study, say: Callable[[str], None]) -> None:
    """Say what a proxy fitted on first use scores before the first trial (the calibration's reference
    architectures, the ensemble's anchor), which the study has not recorded yet: minutes with no trial to show."""
    if score.proxy == "calibrated" and "calibration" not in study.user_attrs:
        scores = ", ".join([*score.features, *score.refine])
        say(f"fitting the calibration: scoring the reference architectures with {scores} (cached for later runs)")
    if score.proxy == "ensemble" and "anchor" not in study.user_attrs:
        say(
            f"scoring the anchor: {score.anchor} architectures spread over the space, with "
            f"{', '.join(score.features)} (cached for later runs; they are the first trials)"
        )


def _settle_target(study: optuna.Study, n_trials: int, target: int, say: Callable[[str], None]) -> tuple[int, int]:
    """The trials the study holds finished, and ``target``, raised so that every queued trial runs; says whether
    the study starts, continues, or has nothing to run (finished trials at the target: the caller stops)."""
    done = len(study.get_trials(deepcopy=False, states=SCORED))
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if done + waiting > target:
        say(f"{waiting} queued trials would not fit in {target}: the study will hold {done + waiting}")
        target = done + waiting
    if done:
        say(f"continuing study {study.study_name!r}: {done} of {target} trials done")
    else:
        say(f"running {target} trials")
    if done >= target:
        say(
            f"nothing to run: the study already holds {done} finished trials; ask for more with "
            f"--n-trials {done + n_trials} (or n_trials=...)"
        )
    return done, target


def _batch_size(training: TrainConfig, data: Dataset, proxy: Proxy, target: int) -> int:
    """How many trials this worker takes at once: one, or for a proxy that trains side by side, two per
    concurrent job."""
    # A trained proxy's trials go two per concurrent job (on a CPU, one job per core): side by side, with the
    # longer ones overlapping the shorter (benchmarks/RESULTS.md: batch sizes)
    jobs = concurrent_jobs(training, data.train.x.device, target) if proxy.side_by_side else 1
    return 2 * jobs if jobs > 1 else 1


__all__ = ["quiet_optuna", "record_proxy", "run_search"]
