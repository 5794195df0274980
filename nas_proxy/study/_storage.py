"""Optuna storages: a journal file or a database, opened with retries and one-line errors.

The only module that builds an Optuna storage. A storage string with ``://`` is a database URL
(``RDBStorage``, with Optuna's heartbeat for dead workers, made to ride through a database restart
by :mod:`nas_proxy.study._database`); anything else is the path of a journal file (``JournalStorage``),
which local workers share safely and which :mod:`nas_proxy.study._journal` repairs after a cut write.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna

from nas_proxy._io import refused_writes
from nas_proxy.config import StudyConfig
from nas_proxy.errors import NasProxyError
from nas_proxy.study._database import ResilientRDBStorage, connection_problem, hide_password
from nas_proxy.study._journal import RepairingJournalFileBackend, check_journal


def journal_file(url: str) -> Path | None:
    """The journal file a storage names (anything but a ``scheme://`` URL), None for a database."""
    return None if "://" in url else Path(url)


@contextlib.contextmanager
def stable_experimental() -> Iterator[None]:
    """Silence ExperimentalWarning: the heartbeat has been "experimental" since Optuna 2.9."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(config: StudyConfig) -> optuna.storages.BaseStorage:
    """The storage ``config`` names: its journal file, or its database with the heartbeat settings."""
    url = config.storage_url
    file = journal_file(url)
    if file is not None:
        check_journal(file)  # a cut last line repaired, a broken journal one line naming the line
        # Optuna creates a missing journal at once: a read-only folder, or a folder in the journal's place, is one line
        with refused_writes(file, "[study].storage (--storage)" if config.storage else "[study].out_dir"):
            file.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(RepairingJournalFileBackend(str(file)))

    def connect() -> optuna.storages.RDBStorage:
        with stable_experimental():
            return ResilientRDBStorage(
                url,
                reconnect_timeout=config.reconnect_timeout,
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period or None,
                heartbeat_stale_trial_callback=retry_callback(config),
            )

    for attempt in range(2):
        try:
            return connect()
        except Exception as exc:
            # Workers starting together on a fresh database all create Optuna's tables; PostgreSQL refuses all
            # but one ("duplicate key value violates unique constraint pg_type_typname_nsp_index"). Once the
            # first has finished, the tables exist: connect again.
            if type(exc).__name__ not in ("IntegrityError", "ProgrammingError"):
                raise
            time.sleep(0.5 * (attempt + 1))
    return connect()  # the third try: its error, if any, is the caller's


def retry_callback(config: StudyConfig, *, bounded: bool = True) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """What queues a failed trial's copy: at most ``[study].max_retry`` times (an architecture that kills its
    worker every time stops being retried), or, not ``bounded``, always (a trial stopped by Ctrl-C)."""
    with stable_experimental():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=config.max_retry if bounded else None)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A missing driver or an unreachable database becomes one line that says what to do."""
    try:
        yield
    except ImportError as exc:
        raise NasProxyError(
            f"storage {hide_password(url)} needs a database driver ({exc.__cause__ or exc}); for "
            f"PostgreSQL run: pip install 'nas-proxy[postgres]'"
        ) from None
    except Exception as exc:  # SQLAlchemy's OperationalError and friends, without importing SQLAlchemy here
        if type(exc).__module__.split(".")[0] != "sqlalchemy":
            raise
        raise NasProxyError(
            f"cannot use storage {hide_password(url)}: {connection_problem(exc)}; check the URL and that the server "
            f"is running"
        ) from None
