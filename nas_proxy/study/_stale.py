"""Trials that stopped before their score: fail them and queue the same architecture again.

A trial stops early in two ways, and either way its architecture runs again, so an architecture queued
with ``--archs`` (or a ``[reference].sample``) is always scored in the end:

* Its worker died (killed, out of memory, its machine gone). On a database (PostgreSQL, MySQL,
  SQLite) this is Optuna's heartbeat: every running trial records a heartbeat, and a worker
  starting its next trial fails those silent for longer than the grace period, then
  ``RetryHeartbeatStaleTrialCallback`` queues a copy. Optuna's journal storage has no heartbeat, and
  its workers share one file, so one machine: a trial records its worker's host and process id, and a
  worker on that host fails the running trials of processes that no longer exist and queues their
  copies through the same callback (on a database too, before the heartbeat's grace period has
  passed). When two workers notice the same dead trial, the storage lets only one of them fail it, so
  it is retried once. A process that has exited but that its parent has not reaped yet (a zombie)
  is dead: a parent busy in a trial of its own reaps its spawned workers only when it joins them.
* Its worker stopped it (Ctrl-C, an error): :func:`requeue_stopped` queues the copy at once.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

WORKER_ATTR = "worker"
POLL_SECONDS = 1.0  # how often a waiting worker looks whether the trials it waits for finished or died


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs: it exists and is not a zombie.

    ``os.kill(pid, 0)`` succeeds on a zombie, and a worker killed while its parent trains stays one
    until the parent joins it, so the process state is read as well (``/proc`` where there is one).
    """
    multiprocessing.active_children()  # reaps this process's own exited workers, through multiprocessing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive or a zombie, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS), or the process ended just now and the next look sees it gone
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")  # the state follows the command's name


def retry_dead_local_trials(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    retry: RetryHeartbeatStaleTrialCallback,
    *,
    ownerless: bool = False,
) -> None:
    """Fail the running trials of dead processes on this host and queue their retries.

    Called between two trials of this process, so a trial still running under this process's own id
    is an orphan too (an earlier search in the same Python session that stopped without finishing it).
    With ``ownerless``, so is a running trial that names no worker: the caller holds the study's slot
    lock, under which every worker takes a trial and names itself on it, so no live worker is between
    the two (a worker stopped there: killed, or its database gone).
    """
    host, me = socket.gethostname(), os.getpid()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get(WORKER_ATTR)
        if owner is None:
            if not ownerless:
                continue
        else:
            owner_host, _, pid = owner.rpartition(":")
            if owner_host != host or not pid.isdigit() or (int(pid) != me and process_alive(int(pid))):
                continue
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first and queued the retry
        retry(study, storage.get_trial(trial._trial_id))


def owner_dead(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether ``trial`` names a worker of this machine that no longer runs (other machines' are the heartbeat's)."""
    owner_host, _, pid = trial.user_attrs.get(WORKER_ATTR, "").rpartition(":")
    return owner_host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


def requeue_stopped(
    study: optuna.Study, storage: optuna.storages.BaseStorage, trial_id: int, retry: RetryHeartbeatStaleTrialCallback
) -> None:
    """Queue a copy of a trial its own worker stopped (Ctrl-C, an error), once it is stored failed.

    Optuna fails an interrupted trial and queues nothing, so without the copy an architecture queued
    with ``--archs`` was never scored: the next run found it in the study and did not queue it again.
    A trial still running (its failure could not be stored: the storage is gone) is left to
    :func:`retry_dead_local_trials` and the heartbeat, which queue it once this worker has exited.
    """
    trial = storage.get_trial(trial_id)
    if trial.state != TrialState.FAIL:
        return
    copied = any(
        t.system_attrs.get("retry_history", [])[-1:] == [trial.number] for t in study.get_trials(deepcopy=False)
    )
    if not copied:
        retry(study, trial)


__all__ = [
    "POLL_SECONDS",
    "WORKER_ATTR",
    "owner_dead",
    "process_alive",
    "requeue_stopped",
    "retry_dead_local_trials",
    "worker_id",
]
