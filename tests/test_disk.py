"""A read-only or full disk: one line naming the path and the fix, exit 2, checked before any work where it can be;
nothing written before is lost and no temporary file is left behind.

A read-only folder is a tmpfs remounted read-only (as root, whom file permissions do not stop), else a folder
without write permission. A full disk is a small tmpfs filled up to a page or two, so the check before the work
passes and the save after it does not; those tests need root and skip elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._storage import JournalOperation
from presets import reference_path, write_preset

from nas_proxy import load_dataset, load_preset
from nas_proxy._io import atomic_torch_save, atomic_write
from nas_proxy.cli import main
from nas_proxy.errors import NasProxyError
from nas_proxy.reference import read_reference, run_reference
from nas_proxy.study import select_archs

ROOT = os.geteuid() == 0
SMALL = ["--ipc", "2", "--iterations", "3", "--batch-real", "16", "--embed-arch", "d1-w8-relu-instancenorm-avgpool"]
PAGE = os.sysconf("SC_PAGE_SIZE")  # a tmpfs hands out space a page at a time


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _mount_tmpfs(folder: Path, size: str) -> None:
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """A function mounting a small tmpfs on a new folder of ``tmp_path``; all are unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "2m") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        _mount_tmpfs(folder, size)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(folder)], check=False)  # lazy: a failed test may hold a file open


@pytest.fixture
def read_only(tmp_path):
    """``tmp_path / "out"`` and a function making it read-only once filled: a tmpfs remounted read-only as root,
    else its folders without write permission (restored afterwards, so the folder can be removed)."""
    folder = tmp_path / "out"
    folder.mkdir()
    if ROOT:
        _mount_tmpfs(folder, "16m")

    def freeze() -> None:
        if ROOT:
            _run("mount", "-o", "remount,ro", str(folder))
        else:
            for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
                sub.chmod(0o555)

    yield folder, freeze
    if ROOT:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
    else:
        for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            sub.chmod(0o755)


def _fill(folder: Path, pages: int) -> None:
    """Fill the tmpfs ``folder`` is on, all but ``pages`` pages."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(PAGE))
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - pages * PAGE))


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line(capsys, pattern: str) -> None:
    """The command's stderr is one error line matching ``pattern`` (after any warnings about the tiny preset)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The output folder of a tiny study that has run: a reference table of 5 architectures, one trial."""
    folder = tmp_path_factory.mktemp("finished")
    preset = load_preset(write_preset(folder))
    data = load_dataset(preset.data)
    archs = select_archs("5", preset.space(), preset.reference)
    run_reference(preset.reference, data, archs, reference_path(preset), progress=False)
    assert main(["search", str(write_preset(folder)), "--n-trials", "1", "--no-progress"]) == 0
    return folder / "out"


def _import_csv(tmp_path: Path, rows: int) -> Path:
    """A reference table trained elsewhere: ``rows`` rows of the tiny preset's space."""
    archs = [a.id for a in load_preset(write_preset(tmp_path)).space().archs()]
    table = pd.DataFrame(
        {"arch": [archs[i % len(archs)] for i in range(rows)], "seed": [i // len(archs) for i in range(rows)]}
    )
    path = tmp_path / "trained-elsewhere.csv"
    table.assign(test_acc=0.5).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- a read-only output folder

READ_ONLY = {  # each command's arguments, given the preset, its output folder and a scratch folder
    "search": lambda preset, out, tmp: ["search", preset, "--no-progress"],
    "reference": lambda preset, out, tmp: ["reference", preset, "--archs", "2", "--no-progress"],
    "import": lambda preset, out, tmp: ["reference", preset, "--import", str(_import_csv(tmp, 5)), "--no-progress"],
    "report": lambda preset, out, tmp: ["report", preset, "--no-plot"],
    "compare": lambda preset, out, tmp: ["compare", preset, "--proxies", "params", "--no-progress"],
    "frontier": lambda preset, out, tmp: ["frontier", preset, "--families", "zero-cost", "--no-plot", "--no-progress"],
    "condense": lambda preset, out, tmp: ["condense", "--out", str(out / "set.pt"), *SMALL, "--no-progress"],
}


@pytest.mark.parametrize("command", sorted(READ_ONLY))
def test_every_command_refuses_a_read_only_output_folder_in_one_line(
    command, finished, read_only, tmp_path, capsys, monkeypatch
):
    out, freeze = read_only
    shutil.copytree(finished, out, dirs_exist_ok=True)
    freeze()
    monkeypatch.chdir(tmp_path)
    args = READ_ONLY[command](str(write_preset(tmp_path)), out, tmp_path)
    before = _snapshot(out)
    capsys.readouterr()
    assert main(args) == 2
    _one_line(capsys, rf"cannot write {re.escape(str(out))}\S*: (read-only file system|permission denied); point ")
    assert _snapshot(out) == before


# ---------------------------------------------------------------- a full disk


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_torch_save"])
def test_a_full_disk_is_one_line_and_keeps_the_previous_file(writer, tmpfs):
    disk = tmpfs("disk", "64k")
    path = disk / "file"
    path.write_bytes(b"previous")
    _fill(disk, 0)
    with pytest.raises(NasProxyError, match=rf"cannot write {re.escape(str(path))}: no space left on device; free"):
        if writer == "atomic_write":
            atomic_write(path, lambda tmp: tmp.write_bytes(bytes(4 * PAGE)))
        else:
            atomic_torch_save(torch.zeros(4 * PAGE), path)  # torch.save's own writer raises no OSError
    assert path.read_bytes() == b"previous" and sorted(p.name for p in disk.iterdir()) == ["file", "filler"]


def test_condensing_onto_a_full_disk_keeps_the_previous_set(tmpfs, capsys):
    disk = tmpfs("disk")
    out = disk / "set.pt"
    out.write_bytes(b"previous set")
    _fill(disk, 1)  # room for the check of the folder, not for the set
    assert main(["condense", "--out", str(out), "--force", *SMALL, "--no-progress"]) == 2
    _one_line(capsys, rf"cannot write {re.escape(str(out))}: no space left on device; free space on that disk or")
    assert out.read_bytes() == b"previous set" and not list(disk.glob(".*"))


def test_a_reference_row_onto_a_full_disk_keeps_the_rows_before(tmp_path, tmpfs, capsys):
    out = tmpfs("out")
    preset = write_preset(tmp_path)
    _fill(out, 1)  # the first row's table takes the last page: the second cannot be saved beside it
    assert main(["reference", str(preset), "--archs", "2", "--no-progress"]) == 2
    loaded = load_preset(preset)
    table = reference_path(loaded)
    _one_line(capsys, rf"cannot write {re.escape(str(table))}: no space left on device")
    assert len(read_reference(table)) == 1 and not list(table.parent.glob(".*.tmp"))


def test_an_import_onto_a_full_disk_writes_no_table(tmp_path, tmpfs, capsys):
    out = tmpfs("out")
    preset = write_preset(tmp_path)
    source = _import_csv(tmp_path, 200)  # a table of several pages
    _fill(out, 1)
    assert main(["reference", str(preset), "--import", str(source), "--no-progress"]) == 2
    _one_line(capsys, rf"cannot write {re.escape(str(out))}/reference/\S+\.csv: no space left on device")
    assert not list((out / "reference").glob("*.csv")) and not list((out / "reference").glob(".*.tmp"))


def test_a_report_onto_a_full_disk_keeps_the_previous_report(finished, tmp_path, tmpfs, capsys, monkeypatch):
    shutil.copytree(finished, tmp_path / "out")
    report = tmpfs("report")
    (report / "report.md").write_text("previous report")
    _fill(report, 1)  # room for the check and ranking.csv, none for report.md beside it
    assert main(["report", str(write_preset(tmp_path)), "--out", str(report), "--no-plot"]) == 2
    _one_line(capsys, rf"cannot write {re.escape(str(report / 'report.md'))}: no space left on device")
    assert (report / "report.md").read_text() == "previous report" and not list(report.glob(".*.tmp"))


def test_a_full_disk_under_the_journal_stops_a_search_in_one_line(tmp_path, capsys, monkeypatch):
    # A disk filling up under a search fails whichever journal write comes next; the worst is a trial's result,
    # where Optuna's own handling ends in an AssertionError. Injected there, so the test does not depend on which
    # write a real disk happens to fill at.
    append = JournalFileBackend.append_logs

    def full_at_a_result(self, logs):
        if any(log["op_code"] == JournalOperation.SET_TRIAL_STATE_VALUES and log["values"] for log in logs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        append(self, logs)

    monkeypatch.setattr(JournalFileBackend, "append_logs", full_at_a_result)
    preset = write_preset(tmp_path)
    assert main(["search", str(preset), "--n-trials", "2", "--no-progress"]) == 2
    journal = load_preset(preset).study.storage_url
    _one_line(capsys, rf"cannot write {re.escape(journal)}: no space left on device; free space")
