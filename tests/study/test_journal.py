"""Journal files cut by a crash are repaired; broken ones are one line naming the line, and left as they are.

Everything runs on the journal of a real finished search (one per module), cut or spoiled in copies.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileSymlinkLock
from presets import write_preset

from nas_proxy import NasProxyError
from nas_proxy.cli import main
from nas_proxy.config import StudyConfig
from nas_proxy.study._storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
COMPLETE = optuna.trial.TrialState.COMPLETE
FIX = "restore the journal from a backup, or move it away to start a new study"


def _cheap_preset(folder: Path) -> Path:
    """The tiny preset with a zero-cost proxy: no condensation, a trial in a fraction of a second."""
    path = write_preset(folder)
    path.write_text(path.read_text() + '\n[score]\nproxy = "naswot"\n')
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The folder of a finished 4-trial search (its preset ``tiny.toml``, its ``out/study.journal``).

    Run in a process of its own, as a user's is: a trial a cut journal leaves running then belongs to a process
    that is gone (not to this one, alive), so a search on the cut copy retries it as it would after a crash.
    """
    folder = tmp_path_factory.mktemp("finished")
    command = [
        sys.executable,
        "-m",
        "nas_proxy.cli",
        "search",
        str(_cheap_preset(folder)),
        "--n-trials",
        "4",
        "--no-progress",
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return folder


@pytest.fixture(scope="module")
def original(finished) -> bytes:
    data = (finished / "out" / "study.journal").read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") > 20
    return data


def _open(journal: Path) -> optuna.storages.BaseStorage:
    return open_storage(StudyConfig(name="tiny", storage=str(journal)))


def _trials(data: bytes) -> int:
    """How many trials the complete lines of ``data`` create."""
    return sum(json.loads(line)["op_code"] == 4 for line in data.splitlines(keepends=True) if line.endswith(b"\n"))


def _journal(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / "study.journal"
    journal.write_bytes(data)
    return journal


def _backups(journal: Path) -> list[Path]:
    return sorted(journal.parent.glob(journal.name + ".*.bak"))


def _cut_offsets(data: bytes) -> list[int]:
    """Every offset inside the last line, and the first, middle and last ones inside every fourth earlier line."""
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]  # each line's start, and the end
    last = range(starts[-2] + 1, starts[-1])
    earlier = {
        start + step
        for start, end in zip(starts[:-2:4], starts[1:-1:4])
        for step in (1, (end - start) // 2, end - start - 1)
    }
    return sorted(earlier) + list(last)


def test_a_cut_line_is_repaired_at_every_offset_and_the_study_continues(original, tmp_path, capsys):
    offsets = _cut_offsets(original)
    assert len(offsets) > 150
    for cut in offsets:
        journal = _journal(tmp_path / str(cut), original[:cut])
        kept = original[: original.rfind(b"\n", 0, cut) + 1]  # up to the last complete line
        capsys.readouterr()
        storage = _open(journal)
        assert isinstance(storage, optuna.storages.JournalStorage)
        assert journal.read_bytes() == kept, cut
        assert [p.name for p in _backups(journal)] == ["study.journal.1.bak"], cut
        assert _backups(journal)[0].read_bytes() == original[:cut], cut  # the cut file, as it was
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"repaired {journal}: dropped its cut last line"), (cut, err)
        assert f"{cut - len(kept)} bytes" in err and str(_backups(journal)[0]) in err, (cut, err)
        # The study continues: a new trial is run and told, and the journal reads back whole.
        study = optuna.create_study(study_name="tiny", storage=storage, load_if_exists=True, direction="maximize")
        trial = study.ask()
        study.tell(trial, 1.0)
        reread = optuna.load_study(study_name="tiny", storage=_open(journal))
        assert len(reread.trials) == _trials(kept) + 1, cut
        assert reread.trials[-1].state == COMPLETE and reread.trials[-1].value == 1.0, cut
        assert capsys.readouterr().err == "" and len(_backups(journal)) == 1, cut  # repaired once


def test_a_journal_cut_at_a_line_boundary_is_opened_as_it_is(original, tmp_path, capsys):
    boundaries = [0] + [i + 1 for i, byte in enumerate(original) if byte == ord("\n")]
    for end in boundaries:
        journal = _journal(tmp_path / str(end), original[:end])
        storage = _open(journal)
        assert isinstance(storage, optuna.storages.JournalStorage)
        if end:
            assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == _trials(original[:end])
        assert journal.read_bytes() == original[:end] and not _backups(journal), end
        assert not journal.with_name("study.journal.lock").exists()
    assert capsys.readouterr().err == ""


def test_a_worker_killed_mid_write_leaves_a_fragment_the_survivor_does_not_glue_onto(original, tmp_path, capsys):
    journal = _journal(tmp_path, original)
    survivor = optuna.load_study(study_name="tiny", storage=_open(journal))
    last = original.splitlines(keepends=True)[-1]
    fragment = last[: len(last) // 2]  # what a worker killed in the middle of its write leaves
    with open(journal, "ab") as handle:
        handle.write(fragment)
    survivor.set_user_attr("after", 1)
    trial = survivor.ask()
    survivor.tell(trial, 2.0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"repaired {journal}") and f"{len(fragment)} bytes" in err
    assert _backups(journal)[0].read_bytes() == original + fragment
    data = journal.read_bytes()
    assert data.startswith(original) and data.endswith(b"\n") and fragment not in data[len(original) :]
    fresh = optuna.load_study(study_name="tiny", storage=_open(journal))  # a fresh open reads it all
    assert fresh.user_attrs["after"] == 1 and fresh.trials[-1].value == 2.0
    assert len(fresh.trials) == _trials(original) + 1 and capsys.readouterr().err == ""


def test_a_write_in_progress_is_waited_for_not_repaired(original, tmp_path, capsys):
    journal = _journal(tmp_path, original)
    last = original.splitlines(keepends=True)[-1]
    writer = JournalFileSymlinkLock(str(journal))  # a live worker, in the middle of its write
    writer.acquire()
    with open(journal, "ab") as handle:
        handle.write(last[:20])
    opened = []
    reader = threading.Thread(target=lambda: opened.append(_open(journal)))
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive() and journal.read_bytes() == original + last[:20]  # it waits for the lock
    with open(journal, "ab") as handle:
        handle.write(last[20:])
    writer.release()
    reader.join(timeout=30)
    assert opened and journal.read_bytes() == original + last and not _backups(journal)
    assert capsys.readouterr().err == ""


def _replace_line(data: bytes, index: int, line: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[index] = line
    return b"".join(lines)


def _glued(data: bytes) -> bytes:
    """What Optuna alone made of a cut journal: the next write appended right behind the fragment."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:-2]) + lines[-2][:40] + lines[-1]


GARBAGE = {  # name: (the journal, from the original; the line named; what the message says of it)
    "junk_middle_line": (lambda d: _replace_line(d, 10, b"this is not json\n"), 11, "not JSON"),
    "empty_middle_line": (lambda d: _replace_line(d, 3, b"\n"), 4, "not JSON"),
    "not_utf8": (lambda d: _replace_line(d, 5, b'{"op_code":2,"x":"\xff\xfe"}\n'), 6, "not UTF-8"),
    "json_array": (lambda d: _replace_line(d, 7, b"[]\n"), 8, "JSON but not an object"),
    "json_string": (lambda d: _replace_line(d, 7, b'""\n'), 8, "JSON but not an object"),
    "object_without_op_code": (lambda d: _replace_line(d, 2, b'{"study_id":0}\n'), 3, "without an op_code"),
    "binary_file": (lambda d: b"SQLite format 3\x00" + bytes(range(256)) * 8, 1, "not JSON"),
    "binary_without_newline": (lambda d: bytes(range(11, 256)) * 4, 1, "not the start of a journal entry"),
    "non_log_fragment": (lambda d: d + b"garbage", None, "not the start of a journal entry"),
    "almost_a_log_start": (lambda d: d + b'{"op_cod3', None, "not the start of a journal entry"),
    "junk_then_a_cut_line": (lambda d: _replace_line(d, 10, b"junk\n") + b'{"op_code":8,"wor', 11, "not JSON"),
    "glued_by_optuna": (_glued, -1, "not JSON"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_an_unreadable_journal_is_one_error_naming_the_line_and_left_as_it_is(name, original, tmp_path):
    spoil, line, problem = GARBAGE[name]
    data = spoil(original)
    line = {None: data.count(b"\n") + 1, -1: data.count(b"\n")}.get(line, line)
    journal = _journal(tmp_path, data)
    with pytest.raises(NasProxyError) as caught:
        _open(journal)
    message = str(caught.value)
    assert message.startswith(f"{journal}: line {line} is ") and problem in message, message
    assert message.endswith(FIX) and "\n" not in message
    assert journal.read_bytes() == data and sorted(p.name for p in tmp_path.iterdir()) == ["study.journal"]


def test_the_error_names_the_copy_a_repair_kept(original, tmp_path):
    journal = _journal(tmp_path, original[:-25])
    _open(journal)  # repaired: study.journal.1.bak is the cut file
    journal.write_bytes(_replace_line(journal.read_bytes(), 10, b"junk\n"))
    with pytest.raises(
        NasProxyError,
        match=re.escape(
            f"restore the journal from its copy {journal}.1.bak or another backup, or move it away to start a new study"
        ),
    ):
        _open(journal)


def _copy_study(finished: Path, folder: Path) -> tuple[Path, Path]:
    """The finished study in ``folder``: its preset, and its output folder copied over; (preset, journal)."""
    preset = _cheap_preset(folder)
    shutil.copytree(finished / "out", folder / "out")
    return preset, folder / "out" / "study.journal"


def test_search_continues_a_cut_journal(finished, original, tmp_path, capsys):
    preset, journal = _copy_study(finished, tmp_path)
    journal.write_bytes(original[:-25])  # as the user measured it: a finished study's journal, its last line cut
    capsys.readouterr()
    assert main(["search", str(preset), "--n-trials", "5", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"repaired {journal}: dropped its cut last line"), err
    dropped = len(original.splitlines()[-1]) - 24  # the last line less its "\n" and the 24 bytes after the cut
    assert f"{dropped} bytes" in err and journal.with_name("study.journal.1.bak").read_bytes() == original[:-25]
    study = optuna.load_study(study_name="tiny", storage=_open(journal))
    assert len(study.get_trials(states=(COMPLETE,))) == 5
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the cut trial was failed and retried


def test_search_on_a_broken_journal_is_one_error_line_and_writes_nothing(finished, original, tmp_path, capsys):
    preset, journal = _copy_study(finished, tmp_path)
    data = _glued(original)
    journal.write_bytes(data)
    capsys.readouterr()
    assert main(["search", str(preset), "--n-trials", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    line = data.count(b"\n")  # the glued line, the last one
    assert err.startswith(f"error: {journal}: line {line} is not JSON") and err.count("\n") == 1, err
    assert err.rstrip("\n").endswith(FIX)
    assert journal.read_bytes() == data and not _backups(journal)


def test_a_cut_journal_that_cannot_be_written_is_one_line_and_left_as_it_is(original, tmp_path, monkeypatch):
    """A read-only folder (or a full disk): the repair cannot run here, and says where it can."""
    import nas_proxy.study._journal

    def read_only(path, write):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(nas_proxy.study._journal, "atomic_write", read_only)
    cut = original[:-25]
    journal = _journal(tmp_path / "ro", cut)
    with pytest.raises(
        NasProxyError,
        match=r"its last line was cut by a write that never finished \(line \d+\), and "
        r"it cannot be repaired here \(Read-only file system\)",
    ) as error:
        _open(journal)
    assert "\n" not in str(error.value) and journal.read_bytes() == cut and not _backups(journal)


def test_a_trial_this_process_left_running_is_taken_over(tmp_path):
    """Between two trials nothing of this process runs: a RUNNING trial under its own id is an orphan (an earlier
    search in the same Python session that stopped inside a trial), failed and queued again, never waited for."""
    from nas_proxy.study._stale import WORKER_ATTR, retry_dead_local_trials, worker_id
    from nas_proxy.study._storage import retry_callback

    config = StudyConfig(name="orphan", storage=str(tmp_path / "study.journal"))
    study = optuna.create_study(study_name="orphan", storage=open_storage(config))
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr(WORKER_ATTR, worker_id())
    other = study.ask()
    other.set_user_attr(WORKER_ATTR, "another-host:1")  # not this machine's to judge: left running
    retry_dead_local_trials(study, study._storage, retry_callback(config))
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states == {
        0: optuna.trial.TrialState.FAIL,
        1: optuna.trial.TrialState.RUNNING,
        2: optuna.trial.TrialState.WAITING,
    }
    assert study.trials[2].system_attrs["failed_trial"] == 0 and study.trials[2].params == orphan.params
