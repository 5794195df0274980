"""A database storage that rides through a restart, and a study-wide lock for taking a trial slot.

A PostgreSQL failover or maintenance restart (``pg_ctl restart -m fast``) drops every connection:
Optuna's ``RDBStorage`` then raises ``StorageInternalError`` from whatever call was in flight,
the trial in flight is marked FAIL and the worker dies. :class:`ResilientRDBStorage` checks a
pooled connection before using it (``pool_pre_ping``) and retries any storage call that failed on
a dropped or refused connection, with backoff, for ``[study].reconnect_timeout`` seconds; the
transaction of a failed call was rolled back, so repeating it is safe. Past that bound it raises
one line naming the database (the CLI's exit 2), the trials in flight stay RUNNING, and the
heartbeat fails and queues them again once the database is back, like a dead worker's.

:func:`trial_slot` serialises "is a slot left? then take it" between the workers of one study,
so ``--n-trials N`` with several workers ends at N trials instead of N + (workers - 1).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
from tqdm.auto import tqdm

from nas_proxy._io import file_lock
from nas_proxy.errors import NasProxyError

T = TypeVar("T")

# Every method of RDBStorage that talks to the database, public and the private ones Optuna's own
# _CachedStorage calls on it.
_DATABASE_METHODS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_n_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "_get_stale_trial_ids",
)


def error_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the errors it was raised from or while handling, innermost last."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _lost(error: BaseException) -> bool:
    return type(error).__module__.startswith("sqlalchemy") and (
        type(error).__name__ in ("OperationalError", "InterfaceError")
        or getattr(error, "connection_invalidated", False)
    )


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database connection dropped or was refused, not that the
    statement was wrong: SQLAlchemy's OperationalError and InterfaceError, or an invalidated connection."""
    return any(_lost(error) for error in error_chain(exc))


def connection_problem(exc: BaseException) -> str:
    """What the database driver said about a lost connection, in one short line. Optuna raises it wrapped in a
    ``StorageInternalError`` whose own text blames "invalid data in the commit", which would mislead."""
    error = next((error for error in error_chain(exc) if _lost(error)), exc)
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= 120 else f"{text[:117]}..."


def hide_password(url: str) -> str:
    """``url`` as it can be printed: the password replaced by ``***``."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Reconnect:
    """Retries calls that fail on a lost connection, for ``timeout`` seconds per outage, with backoff.

    One per database, shared by every thread that uses it (the trial's and its heartbeat's), so an
    outage is announced once and its clock runs once. Once an outage outlasts ``timeout`` every later
    call fails at once with the same line: the worker stops instead of waiting out the bound again.
    """

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = hide_password(url), timeout
        self._lock = threading.Lock()
        self._since: float | None = None
        self._gone: str | None = None

    def call(self, fn: Callable[[], T]) -> T:
        delay, retried = 0.25, False
        while True:
            if self._gone is not None:
                raise NasProxyError(self._gone)
            try:
                result = fn()
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                self._wait(exc, delay)
                delay, retried = min(2 * delay, 4.0), True
                continue
            if retried:
                self._back()
            return result

    def _wait(self, exc: BaseException, delay: float) -> None:
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since = now
                tqdm.write(
                    f"lost the connection to the database {self.url}; retrying for up to "
                    f"{self.timeout:g} s ([study].reconnect_timeout)",
                    file=sys.stderr,
                )
            waited = now - self._since
            if waited >= self.timeout:
                self._gone = (
                    f"the database {self.url} has been unreachable for {waited:.0f} s ({connection_problem(exc)}); the "
                    f"study is safe there: run the same command again once the database is back (a "
                    f"longer outage needs a larger [study].reconnect_timeout)"
                )
                raise NasProxyError(self._gone) from None
        time.sleep(min(delay, max(0.0, self.timeout - waited)))

    def _back(self) -> None:
        with self._lock:
            if self._since is not None:
                tqdm.write(
                    f"reconnected to the database {self.url} after {time.monotonic() - self._since:.1f} s",
                    file=sys.stderr,
                )
                self._since = None


def _retried(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        local = self._calls
        if getattr(local, "inside", False):  # called by another storage method: that outer call retries
            return method(self, *args, **kwargs)
        local.inside = True
        try:
            return self._reconnect.call(functools.partial(method, self, *args, **kwargs))
        finally:
            local.inside = False

    return call


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's ``RDBStorage`` whose calls outlive a database restart of up to ``reconnect_timeout`` seconds.

    Only the connection is retried, never a statement the database refused (a duplicate key, a
    finished trial). A missed heartbeat is skipped rather than retried: the next one follows an
    interval later, and a trial is stale only after the grace period.
    """

    def __init__(self, url: str, *, reconnect_timeout: float, **kwargs: Any) -> None:
        self.reconnect_timeout = reconnect_timeout
        self._reconnect = Reconnect(url, reconnect_timeout)
        self._calls = threading.local()
        engine_kwargs = {"pool_pre_ping": True, **(kwargs.pop("engine_kwargs", None) or {})}
        super().__init__(url, engine_kwargs=engine_kwargs, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:  # pickled for another process: the thread state stays here
        state = super().__getstate__()
        del state["_calls"], state["_reconnect"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self._calls = threading.local()
        self._reconnect = Reconnect(state["url"], state["reconnect_timeout"])
        super().__setstate__(state)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # the heartbeat thread would die with a traceback; the trial's own calls retry
            if not is_connection_error(exc):
                raise


for _name in _DATABASE_METHODS:
    setattr(ResilientRDBStorage, _name, _retried(_name))


_LOCK_ENGINES: dict[str, Any] = {}


@contextlib.contextmanager
def trial_slot(url: str, study_name: str, reconnect_timeout: float) -> Iterator[bool]:
    """Hold the study's slot lock: one worker at a time counts the trials and, if one is left, starts it.

    ``url`` is the study's storage: a journal file or SQLite database locks a file beside it,
    PostgreSQL takes an advisory lock (released by the server if the worker dies), other databases
    take none (two workers finishing at the same instant may then run one trial more than asked).
    Yields whether a lock is held.
    """
    if "://" not in url:
        with file_lock(Path(url).with_name(Path(url).name + ".trials")):
            yield True
        return
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        with file_lock(Path(parsed.database).with_name(Path(parsed.database).name + ".trials")):
            yield True
        return
    if parsed.get_backend_name() != "postgresql":
        yield False
        return
    engine = _LOCK_ENGINES.get(url)
    if engine is None:
        engine = _LOCK_ENGINES[url] = sqlalchemy.create_engine(url, pool_pre_ping=True, pool_size=1)
    key = int.from_bytes(hashlib.sha256(f"nas-proxy trial slot {study_name}".encode()).digest()[:8], "big", signed=True)

    def lock() -> Any:
        connection = engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        except Exception:
            connection.invalidate()
            raise
        return connection

    connection = Reconnect(url, reconnect_timeout).call(lock)
    try:
        yield True
    finally:
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.close()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            connection.invalidate()  # the server dropped the connection, and the lock with it
