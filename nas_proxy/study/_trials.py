"""The trial loop: one worker takes free trial slots of the study, a batch at a time, until the study is full.

:func:`run_trials` is the loop :func:`~nas_proxy.study.run_search` ends in. Under the study's slot lock a worker
fails the trials of dead workers (queuing their copies), counts the finished, running and queued trials, and takes
only the slots they leave, so several workers end at the target together; it then scores its batch with the
objective (:func:`~nas_proxy.study._objective.make_objective`) and tells the study each outcome. A worker that
stops (Ctrl-C, an error) fails the trials it was running and queues them again, and one whose trial another worker
failed meanwhile (taking it for dead) says so and goes on.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # what Study.optimize runs beside a trial
from tqdm.auto import tqdm

from nas_proxy._interrupt import SafeInterrupt
from nas_proxy.config import StudyConfig
from nas_proxy.errors import NasProxyError
from nas_proxy.study._database import error_chain, trial_slot
from nas_proxy.study._stale import POLL_SECONDS, WORKER_ATTR, requeue_stopped, retry_dead_local_trials, worker_id
from nas_proxy.study._storage import journal_file, retry_callback, stable_experimental
from nas_proxy.study._study import PENDING, SCORED


def run_trials(
    config: StudyConfig,
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
    on_journal = journal_file(config.storage_url) is not None
    retry, interrupted = retry_callback(config), retry_callback(config, bounded=False)
    waited = False
    with tqdm(
        total=target, initial=_tally(study)[0], desc="trials", unit="trial", disable=not progress, dynamic_ncols=True
    ) as bar:
        while not interrupt.requested:
            with trial_slot(config.storage_url, config.name, config.reconnect_timeout) as exclusive:
                _fail_the_dead(study, retry, on_journal, exclusive)
                done, running, waiting = _tally(study)
                if done + running + waiting > target:  # queued while others ran (a copy, another run's --archs)
                    target = bar.total = done + running + waiting  # every queued trial runs
                bar.update(done - bar.n)
                if done >= target:
                    return
                taken = _take_trials(study, min(batch, target - done - running))
            if not taken:  # the last slots are taken: wait for them to finish or die
                if not waited:
                    say(
                        f"waiting for the {running} trial(s) other workers are running (a dead worker's is "
                        f"taken over once found dead: at once on this machine, else after the heartbeat's "
                        f"grace period)"
                    )
                    waited = True
                time.sleep(POLL_SECONDS)
                continue
            if _run_batch(study, taken, objective, callbacks, retry, interrupted, say):
                bar.update(_tally(study)[0] - bar.n)


def _tally(study: optuna.Study) -> tuple[int, int, int]:
    """Finished, running and queued trials, from one read of the study."""
    states = [t.state for t in study.get_trials(deepcopy=False, states=(*SCORED, *PENDING))]
    running, waiting = states.count(optuna.trial.TrialState.RUNNING), states.count(optuna.trial.TrialState.WAITING)
    return len(states) - running - waiting, running, waiting


def _fail_the_dead(
    study: optuna.Study, retry: optuna.storages.RetryHeartbeatStaleTrialCallback, on_journal: bool, exclusive: bool
) -> None:
    """Fail the running trials of dead workers and queue their copies with ``retry``: this machine's from the
    process table, other machines' (on a database) from the heartbeat. ``exclusive``: the slot lock is held."""
    # Study has no public storage accessor. Under the slot lock no worker is between taking a trial and
    # naming itself on it, so a running trial that names no worker was left by one that stopped in between.
    retry_dead_local_trials(study, study._storage, retry, ownerless=exclusive)
    if not on_journal:  # other machines' dead workers: the heartbeat
        with stable_experimental():
            optuna.storages.fail_stale_trials(study)


def _take_trials(study: optuna.Study, count: int) -> list[optuna.Trial]:
    """Start ``count`` trials named as this worker's (under the slot lock, so the slots they fill are not counted
    free by another worker), so that a live worker retries them if this one dies."""
    taken = []
    for _ in range(count):
        with warnings.catch_warnings():  # that the heartbeat needs Study.optimize: _run_batch runs it as there
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with")
            taken.append(study.ask())
        taken[-1].set_user_attr(WORKER_ATTR, worker_id())  # lets a live worker retry it if we die
    return taken


def _groups(study: optuna.Study, taken: list[optuna.Trial]) -> list[list[optuna.Trial]]:
    """The trials of ``taken`` that train together: the fresh ones in one group, then each copy of a failed trial
    alone, so an architecture that kills its worker, or fails, takes no batch-mate's retries with it."""
    copies = [trial for trial in taken if "failed_trial" in study._storage.get_trial(trial._trial_id).system_attrs]
    return [[trial for trial in taken if trial not in copies], *([copy] for copy in copies)]


def _run_batch(
    study: optuna.Study,
    taken: list[optuna.Trial],
    objective: Callable[[Sequence[optuna.Trial]], list[float | None]],
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]],
    retry: optuna.storages.RetryHeartbeatStaleTrialCallback,
    interrupted: optuna.storages.RetryHeartbeatStaleTrialCallback,
    say: Callable[[str], None],
) -> bool:
    """Score the trials this worker took, group by group (:func:`_groups`), and tell the study each outcome.

    If the worker stops meanwhile, the trials it has not told yet are failed, and queued again always after Ctrl-C
    (``interrupted``), at most ``[study].max_retry`` times after a bug or running out of memory (``retry``), never
    after one of our one-line errors, which is raised in place of Optuna's. False when the error was that another
    worker had failed some of these trials meanwhile (taking this one for dead): that is said, the rest are queued
    again and the loop goes on.
    """
    groups = _groups(study, taken)
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
            return False
        ours = _our_error(exc)
        _requeue(study, pending, retry if ours is None else None)  # a bug or out of memory: up to max_retry
        if ours is not None:
            raise ours from None
        raise
    return True


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


__all__ = ["run_trials"]
