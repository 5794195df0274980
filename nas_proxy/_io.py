"""Atomic file writes, file locks, and shared CSV tables filled row by row (resumable)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
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

# Writes the file system refuses, each with what it means and what fixes it ({setting}: where the place was chosen).
_REFUSED = {
    errno.ENOSPC: ("no space left on device", "free space on that disk or point {setting} at another one"),
    errno.EDQUOT: ("disk quota exceeded", "free space on that disk or point {setting} at another one"),
    errno.EROFS: ("read-only file system", "point {setting} at a writable folder"),
    errno.EACCES: ("permission denied", "make it writable for this user or point {setting} elsewhere"),
    errno.EPERM: ("operation not permitted", "make it writable for this user or point {setting} elsewhere"),
    errno.EEXIST: ("a file is in the way of a folder", "move that file away or point {setting} elsewhere"),
    errno.ENOTDIR: ("a file is in the way of a folder", "move that file away or point {setting} elsewhere"),
    errno.EISDIR: ("it is a folder", "point {setting} at a file name, not a folder"),
}


@contextlib.contextmanager
def refused_writes(path: str | Path, setting: str = "[study].out_dir (or --out)") -> Iterator[None]:
    """A write in the block that the file system refuses (full, read-only, forbidden, a file where a folder goes)
    becomes one line naming ``path``, the reason and the fix; ``setting`` names where the user chose the place.
    Any other ``OSError`` is a bug, and stays as it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _REFUSED:
            raise
        reason, fix = _REFUSED[exc.errno]
        raise NasProxyError(f"cannot write {path}: {reason}; {fix.format(setting=setting)}") from None


def check_writable(folder: str | Path, setting: str) -> Path:
    """Prove a file can be written in ``folder`` and removed (in the folder it would be made in, if it is missing),
    before any work starts: a read-only, full or forbidden folder found at the first save would lose every minute
    of work done until then. The check itself leaves nothing behind.

    ``setting`` names where the folder was chosen (``[study].out_dir``, ``--out``), for the fix in the error.
    """
    folder = Path(folder)
    with refused_writes(folder, setting):
        existing = next(path for path in (folder, *folder.parents) if path.exists())  # a relative path ends at "."
        if not existing.is_dir():
            raise NasProxyError(f"cannot write {folder}: {existing} is a file, not a folder; point {setting} elsewhere")
        fd, probe = tempfile.mkstemp(prefix=".nas-proxy-write-check.", dir=existing)
        try:
            os.write(fd, b"x")  # a byte, not just a name: a full disk still has room for an empty file
        finally:
            os.close(fd)
            os.unlink(probe)
    return folder


def output_folder(out_dir: str | Path | None, default: Path) -> Path:
    """Where a command writes its files, checked writable (:func:`check_writable`): ``out_dir`` (the ``--out`` of
    report, compare and frontier), else ``default`` in the study's output folder."""
    if out_dir is not None:
        return check_writable(out_dir, "out_dir (--out)")
    return check_writable(default, "[study].out_dir")


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves ``path`` as it was (absent or the previous version), never half written. A write the
    file system refuses (a full disk, a read-only folder) does too, and raises one line (:func:`refused_writes`).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        with refused_writes(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; the result gets the user's usual mode
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def read_table(
    path: str | Path, columns: list[str], what: str, fix: str, dtype: dict[str, Any] | type | None = None
) -> pd.DataFrame:
    """The CSV table at ``path`` (empty, with ``columns``, if there is none yet).

    An unreadable file or one without ``columns`` raises one line naming ``what`` it should be and the ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    try:
        table = pd.read_csv(path, dtype=dtype)
    except OSError as exc:
        raise NasProxyError(f"cannot read {path} ({exc.strerror}); check its permissions") from None
    except ValueError as exc:  # ParserError, EmptyDataError, UnicodeDecodeError, a cell not of its ``dtype``
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if len(problem) > 120:  # a cell pandas quotes may hold megabytes
            problem = f"{problem[:120]}..."
        raise NasProxyError(f"{path}: not a readable {what} ({problem}); {fix}") from None
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


def _keys(table: pd.DataFrame) -> set[tuple[Any, ...]]:
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

    def append(self, row: dict[str, Any]) -> None:
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
        compute: Callable[[list[Any], int, Callable[[int, dict[str, Any]], None]], Any],
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
                def save(index: int, fields: dict[str, Any]) -> None:
                    with shielded():
                        self.append({"arch": pending[index].id, "seed": seed, **fields, "seconds": lap()})  # noqa: B023
                    bar.update()

                if pending:
                    with interruptible():
                        compute(pending, seed, save)
        return self.read()


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    # Serialised in memory first: torch.save's own file writer turns a full disk into a RuntimeError that
    # names no errno, where Python's write raises the OSError atomic_write explains.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


class Lap:
    """Seconds since the previous call (the first: since creation). Work done side by side that finishes one
    item at a time: each item's lap is its share of the wall time, and the laps sum to it."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def __call__(self) -> float:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        return seconds
