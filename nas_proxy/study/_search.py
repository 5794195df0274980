"""The search: condense once, train the reference sample, then let Optuna propose architectures the proxy scores.

:func:`run_search` runs one worker's share of a preset's study: the condensed set is built
once per (settings, data) and shared by every run and worker (:mod:`nas_proxy.artifacts`); trials
record the architecture and its cost, and an architecture suggested again reuses its earlier
score. Whenever a trial scores an architecture that has a reference accuracy, the Spearman and
Kendall correlation over all such architectures is printed and stored on the study. Several
workers are :func:`nas_proxy.study.run_workers`.

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
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # what Study.optimize runs beside a trial
from tqdm.auto import tqdm

from nas_proxy._interrupt import SafeInterrupt, interruptible, safe_interrupt, shielded
from nas_proxy._io import check_writable
from nas_proxy._records import as_stored, record_once
from nas_proxy.artifacts import reference_table_path
from nas_proxy.config import Preset
from nas_proxy.data import Dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method._model import network_size
from nas_proxy.method._train import concurrent_jobs
from nas_proxy.reference import rank_agreement, read_reference, reference_accuracy, run_reference
from nas_proxy.reference._agreement import MIN_PAIRS
from nas_proxy.scoring import Proxy, make_proxy
from nas_proxy.scoring._proxies import fit_attr
from nas_proxy.space import AXES, ArchSpec, SearchSpace
from nas_proxy.study._database import error_chain, hide_password, trial_slot
from nas_proxy.study._stale import WORKER_ATTR, owner_dead, requeue_stopped, retry_dead_local_trials, worker_id
from nas_proxy.study._storage import journal_file, retry_callback, stable_experimental
from nas_proxy.study._study import PENDING, SCORED, enqueue_archs, open_study, proxy_scores, select_archs

_POLL_SECONDS = 1.0  # how often a waiting worker looks whether the trials it waits for finished or died


def suggest_arch(trial: optuna.Trial, space: SearchSpace) -> ArchSpec:
    return ArchSpec(*(trial.suggest_categorical(axis, list(space.choices()[axis])) for axis in AXES))


def record_proxy(study: optuna.Study, preset: Preset, proxy: Proxy, refined: Proxy | None = None) -> None:
    """Record the proxy's settings (and calibrations) on the study, or refuse a study scored by another one.

    ``refined`` is the higher fidelity of a multi-fidelity study (``[score].refine``). A record in an older
    layout was brought up to date when the proxy got its condensed set (:func:`~nas_proxy.artifacts.get_condensed_set`).
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
            f"study {preset.study.name!r} on {preset.study.storage_url} was scored by another proxy "
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
            time.sleep(_POLL_SECONDS)


def _reuse(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Mark ``trial`` as repeating the architecture of a trial with user attributes ``attrs``: its size and cost."""
    for key in ("params", "flops", "seconds"):
        trial.set_user_attr(key, attrs[key])
    trial.set_user_attr("cached", True)


def make_objective(
    preset: Preset, data: Dataset, proxy: Proxy, refined: Proxy | None = None
) -> Callable[[Sequence[optuna.Trial]], list[float | None]]:
    """The objective of trials a worker took together: each one's proxy score (the mean over ``[score].seeds``
    seeds), or None for one pruned at the first fidelity.

    The architectures are drawn in the trials' order before any of them trains, so a batch draws what its trials
    would draw one at a time with the earlier ones still running. One drawn before (a finished trial's, one another
    worker is training, a batch-mate's) reuses that score. The others train together
    (:meth:`~nas_proxy.scoring.Proxy.scores`: on a CPU one per core, bit for bit what each scores alone), and each
    trial's ``seconds`` is its share of their wall time, so the proxy's costs add up to the time spent, as the
    reference's do. With ``refined`` (multi-fidelity), the proxy's score is reported as the first fidelity; a
    trial the pruner stops there keeps it (``fidelity`` 0), the others go on to ``refined``'s score
    (``fidelity`` 1). Both are predictions of the same reference rank, so one ranking holds both.
    """
    space = preset.space()
    seeds = preset.score_seeds
    reference_path = reference_table_path(preset)
    on_database = journal_file(preset.study.storage_url) is None

    def mean_scores(
        scorer: Proxy, trials: Sequence[optuna.Trial], archs: dict[int, ArchSpec], indices: list[int]
    ) -> tuple[list[float], float]:
        """The mean score over the seeds of ``trials[i]`` (``archs[i]``) for each of ``indices``, and each one's share
        of the wall time; a trained network's learning curves (one per seed) go to its trial (``curves``), so a
        study keeps its runs as a cache does."""
        tic = time.perf_counter()
        with interruptible():  # the training alone: Ctrl-C elsewhere waits for the storage writes to finish
            by_seed = [scorer.measure([archs[i] for i in indices], seed) for seed in seeds]
        share = (time.perf_counter() - tic) / len(indices)
        for index, measured in zip(indices, zip(*by_seed)):
            curves = [m.curve.to_dict() for m in measured if m.curve is not None]
            if len(curves) == len(measured):  # a trained network's, one per seed
                trials[index].set_user_attr("curves", curves)
        return [sum(map(scorer.read, measured)) / len(seeds) for measured in zip(*by_seed)], share

    def objective(trials: Sequence[optuna.Trial]) -> list[float | None]:
        reference = reference_accuracy(read_reference(reference_path), preset.reference.metric)
        outcomes: list[float | None] = [None] * len(trials)
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
        seconds = dict.fromkeys(archs, 0.0)
        first: dict[int, float] = {}  # the first fidelity's scores
        if archs:
            scores, share = mean_scores(proxy, trials, archs, list(archs))
            for index, score in zip(archs, scores):
                outcomes[index] = first[index] = score
                seconds[index] += share
        if refined is not None and archs:
            going_on = []
            for index in archs:
                trials[index].report(first[index], 1)  # successive halving's first rung
                trials[index].set_user_attr("fidelity", 0)
                if trials[index].should_prune():
                    outcomes[index] = None
                else:
                    going_on.append(index)
            if going_on:
                scores, share = mean_scores(refined, trials, archs, going_on)
                for index, score in zip(going_on, scores):
                    outcomes[index] = score
                    seconds[index] += share
                    trials[index].set_user_attr("fidelity", 1)
        for index, value in seconds.items():
            trials[index].set_user_attr("seconds", value)
        for index, mate in copies.items():
            _reuse(trials[index], trials[mate].user_attrs)
            if mate in first and outcomes[mate] is None:  # pruned: so is its copy, at the same first score
                trials[index].report(first[mate], 1)
            outcomes[index] = outcomes[mate]
        return outcomes

    return objective


class ReferenceCorrelation:
    """Optuna callback: after a trial that scores a reference architecture, update the correlation.

    Spearman and Kendall between proxy score and reference accuracy, over every architecture the
    study has scored that is in the reference table, go to the study's user attributes
    (``reference_spearman``, ``reference_kendall``, ``reference_n``) once there are
    :data:`~nas_proxy.reference._agreement.MIN_PAIRS` of them, and, if ``verbose``, to the terminal.
    """

    def __init__(self, preset: Preset, verbose: bool = True) -> None:
        self.path = reference_table_path(preset)
        self.metric = preset.reference.metric
        self.verbose = verbose

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        if trial.state != optuna.trial.TrialState.COMPLETE or "reference_acc" not in attrs or attrs.get("cached"):
            return  # a repeated architecture changes nothing
        reference = reference_accuracy(read_reference(self.path), self.metric)
        scores = proxy_scores(study).set_index("arch")["score"]
        agreement = rank_agreement(scores, reference, top_k=(), n_boot=0)
        if agreement.n >= MIN_PAIRS:
            study.set_user_attr("reference_n", agreement.n)
            study.set_user_attr("reference_spearman", agreement.spearman)
            study.set_user_attr("reference_kendall", agreement.kendall)
        if self.verbose:
            tqdm.write(f"trial {trial.number}: {agreement.correlation_line()}")


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
    trial whose worker died is run again by another (:func:`_run_trials`). A trained proxy's trials are taken
    two per concurrent job (``[training].jobs``; by default one per core on a CPU) and train side
    by side (:func:`make_objective`). ``verbose`` prints what
    the study is doing and the correlation with the reference as trials complete; ``progress``
    shows progress bars.

    Ctrl-C stops at once while networks train (their trials are marked failed and queued again) and otherwise at
    the next safe point; either way it raises ``KeyboardInterrupt`` and the study is left
    consistent, ready to continue.
    """
    data.check(preset.data)
    if {preset.score.proxy, *preset.score.features, *preset.score.refine} & {"dm", "random"}:
        data.check_ipc(preset.condense.ipc)  # [condense].ipc images of each class: a condensed set or a subset
    target = n_trials if n_trials is not None else preset.study.n_trials
    dataclasses.replace(preset.study, n_trials=target)  # checks it as [study].n_trials
    check_writable(preset.study.output, "[study].out_dir")  # before minutes of condensing and training
    say = tqdm.write if verbose else (lambda message: None)
    say(f"study {preset.study.name!r} on {hide_password(preset.study.storage_url)}")
    # Ctrl-C: KeyboardInterrupt once the storage is consistent
    with quiet_optuna(), safe_interrupt() as interrupt:
        space, reference = preset.space(), preset.reference
        sample = select_archs(reference.sample, space, reference) if reference.sample else []
        if sample:  # before the proxy: a calibrated one is fitted on the reference
            run_reference(reference, data, sample, reference_table_path(preset), progress=progress)
        study = open_study(preset)
        if preset.score.proxy == "calibrated" and "calibration" not in study.user_attrs:
            scores = ", ".join([*preset.score.features, *preset.score.refine])
            say(f"fitting the calibration: scoring the reference architectures with {scores} (cached for later runs)")
        if preset.score.proxy == "ensemble" and "anchor" not in study.user_attrs:
            say(
                f"scoring the anchor: {preset.score.anchor} architectures spread over the space, with "
                f"{', '.join(preset.score.features)} (cached for later runs; they are the first trials)"
            )
        proxy, refined = _search_proxies(preset, data, study, progress)
        record_proxy(study, preset, proxy, refined)
        if "setup_seconds" not in study.user_attrs:  # the amortised side of the proxy's cost, paid by the first run
            study.set_user_attr("setup_seconds", proxy.setup_seconds + (refined.setup_seconds if refined else 0.0))
        enqueue_archs(study, [*sample, *proxy.paid_for()])  # the reference's, then what the proxy's fit scored
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
                f"--n-trials {done + preset.study.n_trials} (or n_trials=...)"
            )
            return study
        # A trained proxy's trials go two per concurrent job (on a CPU, one job per core): side by side, with the
        # longer ones overlapping the shorter (benchmarks/RESULTS.md: batch sizes)
        jobs = concurrent_jobs(preset.training, data.train.x.device, target) if proxy.side_by_side else 1
        batch = 2 * jobs if jobs > 1 else 1
        _run_trials(
            preset,
            study,
            make_objective(preset, data, proxy, refined),
            batch,
            target,
            [ReferenceCorrelation(preset, verbose)],
            interrupt,
            progress,
            say,
        )
    return study


def _run_trials(
    preset: Preset,
    study: optuna.Study,
    objective: Callable[[Sequence[optuna.Trial]], list[float | None]],
    batch: int,
    target: int,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]],
    interrupt: SafeInterrupt,
    progress: bool,
    say: Callable[[str], None],
) -> None:
    """Run trials, ``batch`` at a time, until the study holds ``target`` finished ones, counted over all its workers.

    A worker takes slots only while finished plus running trials leave them (under the study's slot lock,
    :func:`~nas_proxy.study._database.trial_slot`, held until its trials are running and name it), so several
    workers end at ``target`` together. Running trials of dead workers are failed first and queued again (the
    heartbeat on a database, the process table on a journal), so a worker with no slot left waits for the others'
    last trials, and takes over any whose worker died. A trial that is such a copy trains alone: an architecture
    that kills its worker, or fails, then takes no batch-mate's retries with it.
    """
    config = preset.study
    on_journal = journal_file(config.storage_url) is not None
    retry, interrupted = retry_callback(config), retry_callback(config, bounded=False)

    def tally() -> tuple[int, int, int]:
        """Finished, running and queued trials, from one read of the study."""
        states = [t.state for t in study.get_trials(deepcopy=False, states=(*SCORED, *PENDING))]
        running, waiting = states.count(optuna.trial.TrialState.RUNNING), states.count(optuna.trial.TrialState.WAITING)
        return len(states) - running - waiting, running, waiting

    def fail_the_dead(exclusive: bool) -> None:
        # Study has no public storage accessor. Under the slot lock no worker is between taking a trial and
        # naming itself on it, so a running trial that names no worker was left by one that stopped in between.
        retry_dead_local_trials(study, study._storage, retry, ownerless=exclusive)
        if not on_journal:  # other machines' dead workers: the heartbeat
            with stable_experimental():
                optuna.storages.fail_stale_trials(study)

    waited = False
    with tqdm(
        total=target, initial=tally()[0], desc="trials", unit="trial", disable=not progress, dynamic_ncols=True
    ) as bar:
        while not interrupt.requested:
            with trial_slot(config.storage_url, config.name, config.reconnect_timeout) as exclusive:
                fail_the_dead(exclusive)
                done, running, waiting = tally()
                if done + running + waiting > target:  # queued while others ran (a copy, another run's --archs)
                    target = bar.total = done + running + waiting  # every queued trial runs
                bar.update(done - bar.n)
                if done >= target:
                    return
                taken = []
                for _ in range(min(batch, target - done - running)):
                    with warnings.catch_warnings():  # that the heartbeat needs Study.optimize: it runs below as there
                        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with")
                        taken.append(study.ask())
                    taken[-1].set_user_attr(WORKER_ATTR, worker_id())  # lets a live worker retry it if we die
            if not taken:  # the last slots are taken: wait for them to finish or die
                if not waited:
                    say(
                        f"waiting for the {running} trial(s) other workers are running (a dead worker's is "
                        f"taken over once found dead: at once on this machine, else after the heartbeat's "
                        f"grace period)"
                    )
                    waited = True
                time.sleep(_POLL_SECONDS)
                continue
            copies = [
                trial for trial in taken if "failed_trial" in study._storage.get_trial(trial._trial_id).system_attrs
            ]
            groups = [[trial for trial in taken if trial not in copies], *([copy] for copy in copies)]
            pending = list(taken)  # running under this worker: failed and queued again if it stops
            try:
                with contextlib.ExitStack() as beats:  # on a database, the heartbeat says the trials are alive
                    for trial in taken:  # from the start: a later group's trials wait for the first one's
                        heartbeat = get_heartbeat_thread(trial._trial_id, study._storage)
                        # optuna's __exit__ is typed for an Exception only, where a context manager's takes any
                        beats.enter_context(heartbeat)  # type: ignore[arg-type]
                    for group in filter(None, groups):
                        for trial, outcome in zip(group, objective(group)):
                            pending.remove(trial)
                            _tell(study, trial, outcome, callbacks, say)
            except KeyboardInterrupt:  # not the architectures' fault: queued again however often they are stopped
                _requeue(study, pending, interrupted)
                raise
            except Exception as exc:
                meanwhile = [trial for trial in pending if _failed_meanwhile(study, trial, exc)]
                if meanwhile:  # another worker took this one for dead and failed its trials (queuing their copies)
                    for trial in meanwhile:
                        say(_FAILED_MEANWHILE.format(trial.number))
                    _requeue(study, [trial for trial in pending if trial not in meanwhile], interrupted)
                    continue
                ours = _our_error(exc)
                _requeue(study, pending, retry if ours is None else None)  # a bug or out of memory: up to max_retry
                if ours is not None:
                    raise ours from None
                raise
            bar.update(tally()[0] - bar.n)


_FAILED_MEANWHILE = (
    "trial {} was failed by another worker while this one ran it (it took this worker for dead, e.g. after a "
    "database outage longer than the heartbeat's grace period); its copy runs again"
)


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    outcome: float | None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]],
    say: Callable[[str], None],
) -> None:
    """Store a trial's score (None: pruned) and run the callbacks on it; a trial another worker failed meanwhile
    (it took this one for dead) is said, and its copy runs again."""
    state = optuna.trial.TrialState.PRUNED if outcome is None else optuna.trial.TrialState.COMPLETE
    try:
        frozen = study.tell(trial, outcome, state=state)
    except Exception as exc:
        if not _failed_meanwhile(study, trial, exc):
            raise
        say(_FAILED_MEANWHILE.format(trial.number))
        return
    for callback in callbacks:
        callback(study, frozen)


def _requeue(
    study: optuna.Study, trials: list[optuna.Trial], retry: optuna.storages.RetryHeartbeatStaleTrialCallback | None
) -> None:
    """Fail the running ``trials`` of a worker that stops and queue their copies with ``retry`` (None: none)."""
    for trial in trials:
        with contextlib.suppress(Exception):  # the storage may be gone: the error that stops us is the one to report
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if retry is not None:
                requeue_stopped(study, study._storage, trial._trial_id, retry)


def _failed_meanwhile(study: optuna.Study, trial: optuna.Trial, exc: Exception) -> bool:
    """Whether ``trial`` could not be told because another worker had already failed it (and queued its copy)."""

    def refused(error: BaseException) -> bool:  # Optuna 5 may end in an AssertionError of its own, with this as context
        return isinstance(error, optuna.exceptions.UpdateFinishedTrialError) or (
            isinstance(error, ValueError) and str(error).startswith("Cannot tell a ")
        )  # tell of a finished trial

    if not any(refused(error) for error in error_chain(exc)):
        return False
    stored = next((t for t in study.get_trials(deepcopy=False) if t.number == trial.number), None)
    return stored is not None and stored.state == optuna.trial.TrialState.FAIL


def _our_error(exc: Exception) -> NasProxyError | None:
    """The one-line error behind ``exc``, if any. When the storage is gone, Optuna's own handling of a failed
    trial calls it again and ends in an error of its own (an ``UnboundLocalError`` in Optuna 5), with ours,
    which names the database and the fix, as its context."""
    return next((error for error in error_chain(exc) if isinstance(error, NasProxyError)), None)


__all__ = ["ReferenceCorrelation", "make_objective", "quiet_optuna", "record_proxy", "run_search", "suggest_arch"]
