"""A journal file with a cut last line is repaired; one that cannot be read is one line naming the line.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` writes each operation as one JSON
line ending in ``"\\n"``, under the journal's lock, and its readers skip a last line without its
``"\\n"``. A crash, a power loss, a full disk or a worker killed in the middle of a write leaves
such a cut line behind. Readers skip it only until the next write, which Optuna appends right
behind it: the two glue into one line that is not JSON, and from then on every read of the
journal fails with a ``JSONDecodeError`` traceback (the study is lost). A journal holding
garbage gives the same traceback, without a word about which file.

So, holding the lock Optuna's writers take (:class:`JournalFileSymlinkLock` on the same path),
:func:`repair_cut_line` drops the bytes after the last ``"\\n"`` when they are the start of a
journal entry (they held no completed write: no reader ever returned them), keeps a copy of the
file as it was beside it (``study.journal.1.bak``, the next free number) and says so in one line
on stderr. It runs when a journal is opened (:func:`check_journal`, which also checks every
complete line) and before every append (:class:`RepairingJournalFileBackend`), so a survivor
of a killed worker never glues its write onto the fragment. Anything else (a line that is not
a JSON object, bytes that are not UTF-8, a last line that is not the start of an entry) raises
one :class:`~nas_proxy.errors.NasProxyError` naming the file and the line, and writes nothing.

Example:
    >>> from pathlib import Path
    >>> import optuna
    >>> from nas_proxy.study._journal import RepairingJournalFileBackend, check_journal
    >>> journal = Path("study.journal")
    >>> _ = journal.write_bytes(b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\\n'
    ...                         b'{"op_code":4,"work')  # a worker died writing its trial
    >>> check_journal(journal)  # one line on stderr: repaired study.journal: dropped its cut last line ...
    >>> journal.read_bytes().endswith(b"}\\n"), Path("study.journal.1.bak").is_file()
    (True, True)
    >>> storage = optuna.storages.JournalStorage(RepairingJournalFileBackend(str(journal)))
    >>> [study.study_name for study in storage.get_all_studies()]
    ['s']
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.storages.journal._file import BaseJournalFileLock, get_lock_file
from tqdm.auto import tqdm

from nas_proxy._io import atomic_write, refused_writes
from nas_proxy.errors import NasProxyError

# Optuna's JournalStorage writes every entry as json.dumps({"op_code": ..., ...}, separators=(",", ":")):
# each complete line, and so each cut one, begins with these bytes (or, cut early, with a prefix of them).
LOG_START = b'{"op_code":'


def check_journal(path: str | Path) -> None:
    """Check the journal at ``path`` before Optuna replays it: every complete line must be a journal entry (else a
    :class:`NasProxyError` naming the line, and nothing written); a cut last line is repaired
    (:func:`repair_cut_line`, under the journal's lock). A missing or empty file is a new journal: nothing to do."""
    path = Path(path)
    if not path.is_file():
        return
    # Complete lines are never rewritten (Optuna only appends; a repair only drops an incomplete tail), so they are
    # checked without the lock: workers opening the study at once do not queue behind each other's reads.
    end, line, complete = _check_lines(path, 0, 1)
    if complete:
        return
    # An incomplete tail: a cut write, or a live worker's write seen half done. Only under the lock can the two be
    # told apart (no writer is mid-write while it is held); the lines finished meanwhile are checked first.
    with get_lock_file(JournalFileSymlinkLock(str(path))):
        _check_lines(path, end, line)
        repair_cut_line(path)  # a no-op if the tail was a live write, finished by now


def repair_cut_line(path: Path) -> None:
    """Drop the journal's cut last line, keeping a copy of the file as it was; the caller holds the journal's lock.

    A last line that is not the start of a journal entry is not a cut write but garbage: a :class:`NasProxyError`
    naming it, and the file is left as it is.
    """
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    end = data.rfind(b"\n") + 1
    fragment, line = data[end:], data.count(b"\n") + 1
    if not (fragment.startswith(LOG_START) or LOG_START.startswith(fragment)):
        raise _unreadable(path, line, "an incomplete last line that is not the start of a journal entry")
    backup = _free_backup(path)
    # The copy first, whole and synced (atomic_write), so a crash from here on leaves the journal cut or repaired,
    # its copy complete or absent. Truncation drops the tail in one step, keeping every byte offset of the lines
    # before it: live workers' JournalFileBackends remember those offsets to read on from.
    try:
        atomic_write(backup, lambda tmp: tmp.write_bytes(data))
        os.truncate(path, end)
    except OSError as exc:  # a read-only folder or a full disk: the journal is as it was (cut, readable)
        raise NasProxyError(
            f"{path}: its last line was cut by a write that never finished (line {line}), and it "
            f"cannot be repaired here ({exc.strerror or exc}); run the command where the journal "
            f"can be written, which repairs it"
        ) from None
    tqdm.write(
        f"repaired {path}: dropped its cut last line (line {line}, {len(fragment)} bytes of a write that "
        f"never finished); the journal as it was is kept in {backup}",
        file=sys.stderr,
    )


class RepairingJournalFileBackend(JournalFileBackend):
    """Optuna's journal file backend that repairs a cut last line (:func:`repair_cut_line`) before each append.

    A worker killed mid-write leaves a fragment that the next append, by any survivor, would glue onto. The check
    costs one byte read, and runs under the same hold of the journal's lock as the write it protects.
    """

    def __init__(self, file_path: str) -> None:
        # Optuna's append_logs takes self._lock itself; a reentrant wrapper of the same symlink lock lets this
        # append_logs hold it across the check and Optuna's write, with no gap for another writer in between.
        super().__init__(file_path, lock_obj=_ReentrantLock(JournalFileSymlinkLock(file_path)))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        path = Path(self._file_path)
        # A full or read-only disk: one line naming the journal (Optuna's own handling of a trial whose result
        # cannot be written ends in an assertion of its own), which the search reports.
        with refused_writes(path, "[study].storage (or [study].out_dir)"), get_lock_file(self._lock):
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(size - 1, 0))
                last = handle.read(1)
            if last not in (b"", b"\n"):
                repair_cut_line(path)
            super().append_logs(logs)


class _ReentrantLock(BaseJournalFileLock):
    """A journal file lock its holder may take again (inner acquires are free); threads of this process take turns."""

    def __init__(self, lock: BaseJournalFileLock) -> None:
        self._lock = lock
        self._thread = threading.RLock()
        self._depth = 0

    def acquire(self) -> bool:
        self._thread.acquire()
        if self._depth == 0:
            try:
                self._lock.acquire()
            except BaseException:
                self._thread.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._lock.release()
        finally:
            self._thread.release()


def _check_lines(path: Path, start: int, line: int) -> tuple[int, int, bool]:
    """Check every complete line from byte ``start`` (line number ``line``) on; return the byte offset and line
    number where the complete lines end, and whether the file ends there (False: an incomplete last line follows)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        for raw in handle:
            if not raw.endswith(b"\n"):
                return start, line, False  # the tail: a cut write, or one still being written
            _check_line(path, raw, line)
            start, line = start + len(raw), line + 1
    return start, line, True


def _check_line(path: Path, raw: bytes, line: int) -> None:
    """A complete line must be what Optuna replays: a JSON object with an ``op_code`` (Optuna's replay reads it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unreadable(path, line, f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
    try:
        entry = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _unreadable(path, line, f"not JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError):  # nested too deep for the parser: Optuna could not read it either
        raise _unreadable(path, line, "not JSON") from None
    if not isinstance(entry, dict):
        raise _unreadable(path, line, "JSON but not an object")
    if "op_code" not in entry:  # Optuna's replay would stop at it with a KeyError
        raise _unreadable(path, line, "a JSON object without an op_code (not a journal entry)")


def _unreadable(path: Path, line: int, problem: str) -> NasProxyError:
    numbers = _backup_numbers(path)
    source = f"its copy {_backup(path, numbers[-1])} or another backup" if numbers else "a backup"
    return NasProxyError(
        f"{path}: line {line} is {problem}, so the study cannot be read; restore the journal from "
        f"{source}, or move it away to start a new study"
    )


def _backup(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.{number}.bak")


def _backup_numbers(path: Path) -> list[int]:
    """The numbers of the copies :func:`repair_cut_line` kept of the journal (``study.journal.<n>.bak``), in order."""
    prefix = f"{path.name}."
    numbers = [
        name.removeprefix(prefix).removesuffix(".bak")
        for name in os.listdir(path.parent)
        if name.startswith(prefix) and name.endswith(".bak")
    ]
    return sorted(int(n) for n in numbers if n.isdigit())


def _free_backup(path: Path) -> Path:
    """The next copy's name: ``study.journal.1.bak``, then ``.2.bak``, ... (numbers, not timestamps: they sort, and
    the newest is the last)."""
    numbers = _backup_numbers(path)
    return _backup(path, numbers[-1] + 1 if numbers else 1)
