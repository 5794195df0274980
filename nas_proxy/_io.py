"""Atomic file writes, file locks, and shared CSV tables filled row by row (resumable)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from nas_proxy._interrupt import interruptible, shielded
from nas_proxy.errors import NasProxyError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves ``path`` as it was (absent or the previous version), never half written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; the result gets the user's usual mode
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_table(path: str | Path, columns: list[str], what: str, fix: str, dtype: dict | None = None) -> pd.DataFrame:
    """The CSV table at ``path`` (empty, with ``columns``, if there is none yet).

    An unreadable file or one without ``columns`` raises one line naming ``what`` it should be and the ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    try:
        table = pd.read_csv(path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise NasProxyError(f"{path}: not a readable {what} ({exc}); {fix}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise NasProxyError(f"{path}: {what} lacks column {missing[0]!r}; {fix}")
    return table


def row_keys(table: pd.DataFrame, key: tuple[str, ...] = ("arch", "seed")) -> set[tuple]:
    """The ``key`` values of every row of ``table``, e.g. the (arch, seed) pairs already done."""
    return set(zip(*(table[k].tolist() for k in key)))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (through ``<path>.lock`` beside it) for the block: the one way
    processes on a machine take turns at a file (a table's rewrite, a condensation)."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def append_row(
    path: Path, row: dict, read: Callable[[Path], pd.DataFrame], key: tuple[str, ...] = ("arch", "seed")
) -> None:
    """Add ``row`` to the CSV table at ``path``: read, append, rewrite atomically, all under a lock.

    Several processes may share the table; a row another one added meanwhile with the same
    ``key`` values wins and this one is dropped, so no row is ever written twice.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        table = read(path)
        if tuple(row[k] for k in key) in row_keys(table, key):
            return
        table = pd.concat([table, pd.DataFrame([row], columns=table.columns)], ignore_index=True)
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def fill_table(
    path: Path,
    read: Callable[[Path], pd.DataFrame],
    archs: Sequence[Any],
    seeds: Iterable[int],
    compute: Callable[[list[Any], int, Callable[[int, Any], None]], Any],
    row: Callable[[Any, int, Any], dict],
    *,
    desc: str,
    progress: bool,
) -> None:
    """Compute the (architecture, seed) rows missing from the table at ``path``, seed by seed, saving each as done.

    ``compute(pending, seed, save)`` works through one seed's missing architectures (side by side, in any
    order) and calls ``save(i, value)`` as ``pending[i]`` finishes; ``row(arch, seed, value)`` is its row, to
    which ``seconds`` is added: the wall time since the previous row, so the costs add up to the wall time.
    Rows another process sharing the table finished meanwhile are skipped. A crash or Ctrl-C (which stops
    ``compute`` at once) loses only the work in flight, and never lands inside a table's write.
    """
    done = row_keys(read(path))
    todo = {seed: [arch for arch in archs if (arch.id, seed) not in done] for seed in seeds}
    with tqdm(
        total=sum(map(len, todo.values())), desc=desc, unit="net", disable=not progress or not any(todo.values())
    ) as bar:
        for seed, pending in todo.items():
            finished = row_keys(read(path))  # another process sharing the table may have done some
            pending = [arch for arch in pending if (arch.id, seed) not in finished]
            bar.update(len(todo[seed]) - len(pending))
            lap = Lap()

            # called by compute() within this iteration only, so the loop's current values are the right ones
            def save(index: int, value: Any) -> None:
                with shielded():
                    append_row(path, {**row(pending[index], seed, value), "seconds": lap()}, read)  # noqa: B023
                bar.update()

            if pending:
                with interruptible():
                    compute(pending, seed, save)


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


class Lap:
    """Seconds since the previous call (the first: since creation). Work done side by side that finishes one
    item at a time: each item's lap is its share of the wall time, and the laps sum to it."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def __call__(self) -> float:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        return seconds
