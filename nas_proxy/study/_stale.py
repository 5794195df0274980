"""Trials whose worker died: mark them failed and queue the same architecture again.

On a database (PostgreSQL, MySQL, SQLite) this is Optuna's heartbeat: every running trial
records a heartbeat, and a worker starting its next trial fails those silent for longer than
the grace period, then ``RetryHeartbeatStaleTrialCallback`` queues a copy. Optuna's journal
storage has no heartbeat, and its workers share one file, so one machine: a trial records its
worker's host and process id, and a worker on that host fails the running trials of
processes that no longer exist and queues their copies through the same callback (on a
database too, before the heartbeat's grace period has passed). When two
workers notice the same dead trial, the storage lets only one of them fail it, so it is
retried once.
"""

from __future__ import annotations

import os
import socket

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

WORKER_ATTR = "worker"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


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
            if owner_host != host or not pid.isdigit() or (int(pid) != me and _process_exists(int(pid))):
                continue
        try:
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first and queued the retry
        retry(study, storage.get_trial(trial._trial_id))
