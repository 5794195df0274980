"""Atomic file writes, file locks, and shared CSV tables filled row by row (resumable)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (through ``<path>.lock`` beside it) for the block: the one way
    processes on a machine take turns at a file (a table's rewrite, a condensation)."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


KEY = ("arch", "seed")  # a shared table's row key: one row per architecture and seed


def _keys(table: pd.DataFrame) -> set[tuple]:
    return set(zip(*(table[k].tolist() for k in KEY)))


@dataclass(frozen=True)
class SharedTable:
    """A CSV table with one row per (architecture, seed), which several processes fill side by side.

    ``reader`` reads the file at a path (checking its columns; empty, with them, when there is none yet):
    :func:`read_table` with the table's columns. Every write is a read, an append and an atomic rewrite
    under :func:`file_lock`, so a crash never leaves half a table and no row is ever written twice.
    """

    path: Path
    reader: Callable[[Path], pd.DataFrame]

    def read(self) -> pd.DataFrame:
        return self.reader(self.path)

    def append(self, row: dict) -> None:
        """Add ``row``; a row another process added meanwhile for the same architecture and seed wins."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path):
            table = self.read()
            if tuple(row[k] for k in KEY) in _keys(table):
                return
            table = pd.concat([table, pd.DataFrame([row], columns=table.columns)], ignore_index=True)
            atomic_write(self.path, lambda tmp: table.to_csv(tmp, index=False))

    def fill(
        self,
        archs: Sequence[Any],
        seeds: Iterable[int],
        compute: Callable[[list[Any], int, Callable[[int, dict], None]], Any],
        *,
        desc: str,
        progress: bool,
    ) -> pd.DataFrame:
        """Compute the (architecture, seed) rows missing from the table, seed by seed, saving each as done;
        return the whole table.

        ``compute(pending, seed, save)`` works through one seed's missing architectures (side by side, in any
        order) and calls ``save(i, fields)`` as ``pending[i]`` finishes. Its row is ``arch``, ``seed``, the
        ``fields`` and ``seconds``: the wall time since the previous row, so the costs add up to the wall time.
        Rows another process finished meanwhile are skipped. A crash or Ctrl-C (which stops ``compute`` at
        once) loses only the work in flight, and never lands inside a table's write.
        """
        done = _keys(self.read())
        todo = {seed: [arch for arch in archs if (arch.id, seed) not in done] for seed in seeds}
        with tqdm(
            total=sum(map(len, todo.values())), desc=desc, unit="net", disable=not progress or not any(todo.values())
        ) as bar:
            for seed, pending in todo.items():
                finished = _keys(self.read())  # another process sharing the table may have done some
                pending = [arch for arch in pending if (arch.id, seed) not in finished]
                bar.update(len(todo[seed]) - len(pending))
                lap = Lap()

                # called by compute() within this iteration only, so the loop's current values are the right ones
                def save(index: int, fields: dict) -> None:
                    with shielded():
                        self.append({"arch": pending[index].id, "seed": seed, **fields, "seconds": lap()})  # noqa: B023
                    bar.update()

                if pending:
                    with interruptible():
                        compute(pending, seed, save)
        return self.read()


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
