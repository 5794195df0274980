"""Bad input, killed processes and many workers: one clear line, and nothing written is lost."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from presets import reference_path, write_mnist, write_preset

from nas_proxy import ArchSpec, condense, load_preset, load_study, train_candidate
from nas_proxy._io import atomic_write
from nas_proxy.cli import main
from nas_proxy.method import CondenseConfig, CondensedSet, TrainConfig
from nas_proxy.reference import read_reference
from nas_proxy.study._stale import process_alive

PACKAGE = Path(__file__).resolve().parents[1] / "nas_proxy"
COMPLETE, FAIL, RUNNING = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.FAIL,
    optuna.trial.TrialState.RUNNING,
)


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _space(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(f'name = "bad"\n{body}\n')
    return path


CHOICES = {"depth": "[1]", "width": "[8]", "activation": '["relu"]', "norm": '["none"]', "pooling": '["avgpool"]'}


def _choices(**override: str) -> str:
    return "[choices]\n" + "\n".join(f"{k} = {v}" for k, v in {**CHOICES, **override}.items())


def _bad_set(tmp_path: Path, dataset: str, size: int) -> Path:
    meta = {"dataset": dataset, "num_classes": 10, "mean": [0.0], "std": [1.0]}
    return CondensedSet(torch.zeros(10, 1, size, size), torch.arange(10), meta).save(tmp_path / "set.pt", png=False)


def _case_data_root(tmp_path):
    return ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "none")], str(tmp_path / "none")


def _case_data_file(tmp_path):
    paths = write_mnist(tmp_path / "root")
    paths["t10k-labels-idx1-ubyte"].unlink()
    return ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "root")], "t10k-labels-idx1-ubyte"


def _case_idx_truncated(tmp_path):
    path = write_mnist(tmp_path / "root")["train-images-idx3-ubyte"]
    path.write_bytes(path.read_bytes()[:-100])
    return ["train", "--dataset", "mnist", "--data-root", str(tmp_path / "root")], f"{path}.*corrupt"


def _case_cifar_corrupt(tmp_path):
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(b"not a pickle")
    return ["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "root")], "data_batch_1.*corrupt"


def _case_set_corrupt(tmp_path):
    (tmp_path / "set.pt").write_bytes(b"\x00garbage")
    return ["train", "--train", str(tmp_path / "set.pt")], "set.pt is cut short or is not a PyTorch file"


def _case_set_other_format(tmp_path):
    torch.save({"format": "nas-proxy-condense-checkpoint/1", "images": torch.zeros(2, 1, 16, 16)}, tmp_path / "set.pt")
    return (
        ["train", "--train", str(tmp_path / "set.pt")],
        "not a readable nas-proxy condensed set .format 'nas-proxy-condense-checkpoint/1', expected",
    )


def _case_set_other_dataset(tmp_path):
    return ["train", "--train", str(_bad_set(tmp_path, "mnist", 16))], "condensed from 'mnist', not 'digits'"


def _case_set_other_size(tmp_path):
    return ["train", "--train", str(_bad_set(tmp_path, "digits", 8))], r"holds \(1, 8, 8\) images"


def _preset_with_space(tmp_path, body):
    return ["search", str(write_preset(tmp_path, space=_space(tmp_path, body)))]


def _case_space_unknown_key(tmp_path):
    return _preset_with_space(tmp_path, "colour = 1\n" + _choices()), "unknown key 'colour'"


def _case_space_wrong_type(tmp_path):
    return _preset_with_space(tmp_path, _choices(width='["eight"]')), "choices.width holds 'eight'; expected int"


def _case_space_empty(tmp_path):
    return _preset_with_space(tmp_path, _choices(norm="[]")), "choices.norm must be a non-empty list"


def _case_space_unknown_value(tmp_path):
    return _preset_with_space(tmp_path, _choices(activation='["gelu"]')), "unknown value 'gelu'"


def _case_study_unknown_key(tmp_path):
    return ["search", str(write_preset(tmp_path, extra="trials = 5"))], r"\[study\]: unknown key 'trials'"


def _case_study_wrong_type(tmp_path):
    return ["search", str(write_preset(tmp_path, data='split_seed = "zero"'))], "split_seed must be int, got 'zero'"


def _case_study_missing(tmp_path):
    return ["search", str(tmp_path / "nope.toml")], "study preset not found"


def _case_study_wrong_value(tmp_path):
    path = write_preset(tmp_path)
    path.write_text(path.read_text().replace('sampler = "random"', 'sampler = "grid"'))
    return ["search", str(path)], "sampler = 'grid' is not allowed"


def _case_unknown_arch(tmp_path):
    return ["train", "--arch", "d3-w128-relu-instancenorm-bigpool"], "bigpool"


def _case_ipc_too_large(tmp_path):
    return ["condense", "--ipc", "1000", "--out", str(tmp_path / "set.pt")], "images per class"


def _case_storage_unreachable(tmp_path):
    return (
        ["search", str(write_preset(tmp_path)), "--storage", "postgresql://postgres@127.0.0.1:1/nas_proxy"],
        "cannot use storage postgresql://",
    )


def _case_study_other_space(tmp_path):
    assert main(["search", str(write_preset(tmp_path)), "--n-trials", "1", "--no-progress"]) == 0
    return ["search", str(write_preset(tmp_path, space="nas720"))], "created with another search space"


CASES = {name.removeprefix("_case_"): case for name, case in dict(globals()).items() if name.startswith("_case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_files_untouched(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, message = CASES[name](tmp_path)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert _snapshot(tmp_path) == before


# ---------------------------------------------------------------- processes killed with SIGKILL


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas_proxy.cli", *args, "--no-progress"]


def _wait_for(predicate, timeout: float = 120.0, process: subprocess.Popen | None = None):
    """The predicate's first truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before the moment to kill it")
        time.sleep(0.05)
    pytest.fail("timed out waiting")


def test_condensation_killed_resumes_bit_identical(tmp_path):
    settings = [
        "--ipc",
        "5",
        "--iterations",
        "240",
        "--checkpoint-every",
        "20",
        "--batch-real",
        "64",
        "--embed-arch",
        "d3-w32-relu-instancenorm-avgpool",
    ]
    killed, whole = tmp_path / "killed.pt", tmp_path / "whole.pt"
    checkpoint = killed.with_name(killed.name + ".ckpt")
    process = subprocess.Popen(_cli("condense", *settings, "--out", str(killed)))
    try:
        _wait_for(checkpoint.is_file, process=process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert not killed.exists()  # no half-written set
    assert torch.load(checkpoint, weights_only=True)["iteration"] % 20 == 0  # the checkpoint is whole
    assert main(["condense", *settings, "--out", str(killed), "--resume", "--no-progress"]) == 0
    assert main(["condense", *settings, "--out", str(whole), "--no-progress"]) == 0
    resumed, uninterrupted = CondensedSet.load(killed), CondensedSet.load(whole)
    assert torch.equal(resumed.images, uninterrupted.images)
    assert resumed.meta["losses"] == uninterrupted.meta["losses"] and not checkpoint.exists()


def _slow_preset(tmp_path, name="killed", extra=""):
    """Trials of a few seconds (a 150-epoch proxy), so a kill lands inside one."""
    path = write_preset(tmp_path, name=name, extra=extra)
    path.write_text(path.read_text().replace("[training]\nepochs = 2", "[training]\nepochs = 150"))
    return path


def _training_trial(preset, owner=lambda pid: True, after_one: bool = True):
    """A trial that is training now (past suggesting, not a repeat), of a worker whose pid ``owner`` accepts;
    with ``after_one``, only once a trial has finished (the condensed set and the first trial are behind)."""
    try:
        study = load_study(preset)
    except Exception:
        return None
    done = study.get_trials(deepcopy=False, states=(COMPLETE,))
    scored = {t.user_attrs.get("arch") for t in done}  # a repeat reuses that score and finishes at once: no target
    running = [
        t
        for t in study.get_trials(deepcopy=False, states=(RUNNING,))
        if owner(int(t.user_attrs.get("worker", "0:0").rpartition(":")[2]))
        and t.user_attrs.get("arch", None) not in scored | {None}
    ]
    return running[0] if (done or not after_one) and running else None


def _running_trial_of(preset, pid: int):
    return _training_trial(preset, lambda owner: owner == pid)


def _kill_one_of_two_workers(path: Path, preset, n_trials: int, storage: list[str]) -> int:
    """Start two workers, SIGKILL one inside a trial, let the other finish; the killed worker's pid."""
    command = _cli("search", str(path), "--n-trials", str(n_trials), *storage)
    victim = subprocess.Popen(command, stderr=subprocess.PIPE)
    survivor = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _running_trial_of(preset, victim.pid), process=victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        _, err = survivor.communicate(timeout=600)  # a guard against a hang: the survivor's trials take seconds
    finally:
        victim.kill()
        survivor.kill()
    assert survivor.returncode == 0, err
    return victim.pid


def _assert_retried_once(study: optuna.Study, victim: int, n_trials: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    failed = [t for t in trials if t.state == FAIL]  # the dead worker's trials: the batch it was training
    assert failed and all(t.user_attrs["worker"].endswith(f":{victim}") for t in failed)
    assert not [t for t in trials if t.state not in (COMPLETE, FAIL)]
    for killed in failed:
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
        assert len(retries) == 1 and retries[0].state == COMPLETE
        # the same architecture, scored by the survivor (a trial killed before it drew one: drawn then)
        assert killed.params.items() <= retries[0].params.items()
    assert (
        len([t for t in trials if t.state == COMPLETE]) == n_trials
    )  # the workers end together at --n-trials (issue 21)


def test_a_killed_worker_trial_is_failed_and_retried_once_on_a_journal(tmp_path):
    path = _slow_preset(tmp_path)
    preset = load_preset(path)
    assert main(["search", str(path), "--n-trials", "1", "--no-progress"]) == 0  # condensed before the race
    victim = _kill_one_of_two_workers(path, preset, 6, [])
    _assert_retried_once(load_study(preset), victim, 6)


def test_a_zombie_worker_is_dead():
    """A worker killed while its parent trains stays a zombie until joined; os.kill(pid, 0) still succeeds."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        _wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z")
        os.kill(child.pid, 0)  # the process table still holds it
        assert not process_alive(child.pid)
        assert process_alive(os.getpid())
    finally:
        child.wait()


def test_a_killed_spawned_worker_is_taken_over_and_the_study_finishes(tmp_path):
    """`search --workers 2`, then SIGKILL the spawned worker while it trains (as an out-of-memory kill does): the
    first worker reaps it, runs its trial again and ends the study with every trial scored."""
    path = _slow_preset(tmp_path)
    preset = load_preset(path)
    assert main(["search", str(path), "--n-trials", "1", "--no-progress"]) == 0  # condensed before the race
    parent = subprocess.Popen(
        _cli("search", str(path), "--n-trials", "6", "--workers", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        trial = _wait_for(lambda: _training_trial(preset, lambda pid: pid != parent.pid), process=parent)
        victim = int(trial.user_attrs["worker"].rpartition(":")[2])
        os.kill(victim, signal.SIGKILL)
        out, err = parent.communicate(timeout=240)
    finally:
        parent.kill()
    assert parent.returncode == 0, err
    assert b"Traceback" not in err and b"leaked" not in err, err
    assert f"a search worker (process {victim}) was killed by SIGKILL".encode() in out
    _assert_retried_once(load_study(preset), victim, 6)


def test_ctrl_c_queues_the_interrupted_architecture_again(tmp_path):
    """A study of 2 trials, `search --archs A,B`, Ctrl-C while A trains: the same command scores A and B."""
    path = _slow_preset(tmp_path, extra="n_trials = 2").resolve()
    path.write_text(path.read_text().replace("n_trials = 6\n", ""))
    preset = load_preset(path)
    archs = ["d2-w64-relu-instancenorm-avgpool", "d1-w32-relu-none-avgpool"]
    command = ["search", str(path), "--archs", ",".join(archs)]
    process = subprocess.Popen(_cli(*command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _training_trial(preset, after_one=False), process=process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and err == "search interrupted; run the same command to continue the study\n"
    assert main([*command, "--no-progress"]) == 0
    trials = load_study(preset).get_trials(deepcopy=False)
    scored = [t.user_attrs["arch"] for t in trials if t.state == COMPLETE and not t.user_attrs.get("cached")]
    assert sorted(scored) == sorted(archs)
    interrupted = [t for t in trials if t.state == FAIL]  # A, and B where it trained beside A (one per core)
    assert archs[0] in [t.user_attrs["arch"] for t in interrupted]
    for trial in interrupted:
        retry = next(t for t in trials if t.system_attrs.get("failed_trial") == trial.number)
        assert retry.state == COMPLETE and retry.user_attrs["arch"] == trial.user_attrs["arch"]


def test_ctrl_c_on_two_workers_at_any_moment_is_one_line_and_the_study_continues(tmp_path):
    """Ctrl-C to the process group (as a terminal sends it) while the spawned worker starts up or trains."""
    path = _slow_preset(tmp_path)
    preset = load_preset(path)
    assert main(["search", str(path), "--n-trials", "1", "--no-progress"]) == 0
    # 300 trials: a worker that ran on after the Ctrl-C shows in the count (asserted below)
    command = _cli("search", str(path), "--n-trials", "300", "--workers", "2")
    for delay in (0.0, 3.0):  # after the first line: the spawned worker imports torch for ~2 s, then trains
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            process.stdout.readline()
            time.sleep(delay)
            os.killpg(process.pid, signal.SIGINT)
            _, err = process.communicate(timeout=120)
        finally:
            process.kill()
        assert process.returncode == 130, (delay, err)
        assert err == "search interrupted; run the same command to continue the study\n", (delay, err)
        study = load_study(preset)
        assert not study.get_trials(deepcopy=False, states=(RUNNING,)), delay
        # every worker stopped: before, the first stopped at a safe point and then waited for a worker that had
        # ignored the Ctrl-C while it started up, and that one ran the study out (80 s, all 300 trials)
        assert len(study.get_trials(deepcopy=False, states=(COMPLETE,))) < 100, delay
        failed = {t.number for t in study.get_trials(deepcopy=False, states=(FAIL,))}
        for waiting in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
            assert waiting.system_attrs["retry_history"][-1] in failed  # only copies of interrupted trials wait
    assert main(["search", str(path), "--n-trials", "8", "--no-progress"]) == 0
    study = load_study(preset)
    assert not study.get_trials(deepcopy=False, states=(RUNNING, optuna.trial.TrialState.WAITING))
    interrupted = [t for t in study.get_trials(deepcopy=False) if t.state == FAIL]
    scored = {t.user_attrs["arch"] for t in study.trials if t.state == COMPLETE}
    for trial in interrupted:  # every interrupted architecture is scored in the end
        # (a batch's later trial stopped while an earlier one waited for another worker's score had drawn none yet)
        assert trial.user_attrs.get("arch", next(iter(scored))) in scored


def test_an_error_every_worker_meets_is_one_line(tmp_path):
    """Each worker of `--workers 2` loads the data; missing data is one line from the command, not one per worker."""
    path = write_preset(tmp_path, data='dataset = "mnist"').resolve()
    path.write_text(path.read_text().replace('dataset = "digits"\n', ""))
    command = _cli("search", str(path), "--workers", "2", "--data-root", str(tmp_path / "none"))
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: MNIST not found")


def _postgres_url() -> str:
    url = os.environ.get("NAS_PROXY_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: .ci/run exports NAS_PROXY_TEST_POSTGRES")
        pytest.skip("set NAS_PROXY_TEST_POSTGRES (bash .ci/postgres.sh prints one) to run against PostgreSQL")
    return url


def _on_storage(path: Path, url: str):
    preset = load_preset(path)
    return dataclasses.replace(preset, study=dataclasses.replace(preset.study, storage=url))


def test_a_killed_worker_trial_is_failed_by_the_heartbeat_and_retried_on_postgresql(tmp_path):
    url = _postgres_url()
    path = _slow_preset(
        tmp_path, name=f"killed_{uuid.uuid4().hex[:8]}", extra="heartbeat_interval = 1\ngrace_period = 2"
    )
    preset = _on_storage(path, url)
    assert main(["search", str(path), "--storage", url, "--n-trials", "1", "--no-progress"]) == 0
    victim = _kill_one_of_two_workers(path, preset, 14, ["--storage", url])
    _assert_retried_once(load_study(preset), victim, 14)


def test_reference_killed_keeps_every_finished_row_and_continues(tmp_path):
    path = write_preset(tmp_path)
    path.write_text(path.read_text().replace("[reference]\nepochs = 2", "[reference]\nepochs = 5"))
    preset = load_preset(path)
    table = reference_path(preset)
    process = subprocess.Popen(_cli("reference", str(path), "--archs", "12"))
    try:
        _wait_for(lambda: table.is_file() and len(read_reference(table)) >= 2, process=process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    rows = read_reference(table)  # whole rows only: a crash never leaves half a line
    assert len(rows) >= 2 and rows.notna().all().all()
    assert main(["reference", str(path), "--archs", "12", "--no-progress"]) == 0
    after = read_reference(table)
    assert len(after) == 12 and not after.duplicated(["arch", "seed"]).any()
    assert after.set_index("arch").loc[rows.arch, "val_acc"].tolist() == rows.val_acc.tolist()  # kept as they were


def test_atomic_write_leaves_the_previous_file_when_the_writer_dies(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old\n")

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


_WRITE_METHODS = {"write_text", "write_bytes"}  # the receiver is the file
_SAVE_METHODS = {"to_csv", "to_json", "to_parquet", "to_pickle", "savefig"}  # the first argument is the file
_SAVE_FUNCTIONS = {("torch", "save"): 1, ("np", "save"): 0, ("numpy", "save"): 0}  # argument index of the file
_FILE_MODULES = {"gzip", "bz2", "lzma", "io", "codecs"}  # their open() takes (file, mode) like the builtin


def _call_name(func: ast.expr) -> tuple[str, ...]:
    if isinstance(func, ast.Name):
        return (func.id,)
    if isinstance(func, ast.Attribute):
        return (*_call_name(func.value), func.attr)
    return ()


def _argument(call: ast.Call, index: int, *keywords: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg in keywords), None)


def _opens_a_path(call: ast.Call) -> bool:
    """``x.open(path, ...)``, as PIL.Image.open: the first argument is a variable, not ``Path.open``'s mode string."""
    return bool(call.args) and not isinstance(call.args[0], ast.Constant)


def _written_file(call: ast.Call) -> ast.expr | None:
    """The file ``call`` writes to (an expression), or None if it writes none."""
    name = _call_name(call.func)
    if isinstance(call.func, ast.Attribute) and call.func.attr in _WRITE_METHODS:
        return call.func.value
    if isinstance(call.func, ast.Attribute) and call.func.attr in _SAVE_METHODS:
        return _argument(call, 0, "path_or_buf", "path", "fname")  # none: to_csv() returns a string
    if name[-2:] in _SAVE_FUNCTIONS:
        return _argument(call, _SAVE_FUNCTIONS[name[-2:]], "f", "file")
    if name == ("open",) or (len(name) == 2 and name[0] in _FILE_MODULES and name[1] == "open"):
        file, mode = _argument(call, 0, "file", "filename"), _argument(call, 1, "mode")
    elif isinstance(call.func, ast.Attribute) and call.func.attr == "open" and _opens_a_path(call):
        file, mode = _argument(call, 0, "fp"), _argument(call, 1, "mode")  # PIL.Image.open(path, mode)
    elif isinstance(call.func, ast.Attribute) and call.func.attr == "open":  # Path.open(mode)
        file, mode = call.func.value, _argument(call, 0, "mode")
    else:
        return None
    writes = isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+")
    unknown = mode is not None and not isinstance(mode, ast.Constant)
    return file if writes or unknown else None


def _in_place_writes(source: str, filename: str) -> list[str]:
    """Every file write in ``source`` whose target is not the ``tmp`` argument of an ``atomic_write`` callback.

    Allowed besides: a lock file opened for writing only to ``fcntl.flock`` it (nothing is written to it).
    """
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    callbacks, callback_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node.func)[-1:] == ("atomic_write",):
            write = _argument(node, 1, "write")
            if isinstance(write, ast.Lambda):
                callbacks.add(write)
            elif isinstance(write, ast.Name):
                callback_names.add(write.id)
    callbacks |= {
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in callback_names
    }

    def tmp_of_enclosing_callback(node: ast.AST) -> str | None:
        while node in parents:
            node = parents[node]
            if node in callbacks and node.args.args:
                return node.args.args[0].arg
        return None

    def only_locked(call: ast.Call) -> bool:
        item = parents.get(call)
        if not (isinstance(item, ast.withitem) and isinstance(item.optional_vars, ast.Name)):
            return False
        handle, body = item.optional_vars.id, ast.Module(body=parents[item].body, type_ignores=[])
        uses = [n for n in ast.walk(body) if isinstance(n, ast.Name) and n.id == handle]
        locks = [
            n
            for n in ast.walk(body)
            if isinstance(n, ast.Call)
            and _call_name(n.func) == ("fcntl", "flock")
            and n.args
            and isinstance(n.args[0], ast.Name)
            and n.args[0].id == handle
        ]
        return bool(locks) and len(uses) == len(locks)  # the handle is used for nothing but flock

    buffers = {  # names bound to an in-memory file: writing to one writes no file
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and _call_name(node.value.func)[-1:] == ("BytesIO",)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _written_file(node)
        if target is None or only_locked(node) or (isinstance(target, ast.Name) and target.id in buffers):
            continue
        tmp = tmp_of_enclosing_callback(node)
        if tmp is not None and isinstance(target, ast.Name) and target.id == tmp:
            continue
        found.append(f"{filename}:{node.lineno} writes a file in place: {ast.get_source_segment(source, node)}")
    return found


def test_every_file_the_package_writes_goes_through_atomic_write():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 30
    found = [line for path in sources for line in _in_place_writes(path.read_text(), str(path.relative_to(PACKAGE)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'Path("x").write_text("y")',
        "path.write_bytes(data)",
        "frame.to_csv(path, index=False)",
        'figure.savefig(out / "a.png")',
        "torch.save(state, path)",
        "np.save(path, array)",
        'with open(path, "w") as handle:\n    handle.write("x")',
        'open(path, mode="ab")',
        'path.open("w")',
        'gzip.open(path, "wb")',
        'tarfile.open(path, "w")',
        'atomic_write(path, lambda tmp: path.write_text("x"))',  # the callback writes the final file
        'atomic_write(path, lambda tmp: tmp.write_text("x"))\nother.write_text("y")',
        "def write(tmp):\n    torch.save(x, tmp)\n\nwrite(path)",  # a callback never handed to atomic_write
        'with open(lock_path, "w") as lock:\n    fcntl.flock(lock, fcntl.LOCK_EX)\n    lock.write("pid")',
    ],
    ids=lambda source: source.splitlines()[-1],
)
def test_the_atomic_write_scan_catches_writes_in_place(source):
    assert len(_in_place_writes(source, "module.py")) == 1


@pytest.mark.parametrize(
    "source",
    [
        'atomic_write(path, lambda tmp: tmp.write_text("x"))',
        "atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))",
        "atomic_write(path, write=lambda tmp: torch.save(state, tmp))",
        'def write(tmp):\n    with open(tmp, "wb") as handle:\n        handle.write(b"x")\n\natomic_write(path, write)',
        'with open(lock_path, "w") as lock:\n    fcntl.flock(lock, fcntl.LOCK_EX)\n    table = read(path)',
        'with gzip.open(path, "rb") as handle:\n    data = handle.read()',
        "text = frame.to_csv(index=False)",
        "buffer = io.BytesIO()\ntorch.save(state, buffer)",
        "path.open()",
        "with Image.open(path) as im:\n    pixels = im.getdata()",  # PIL reads the path it is given
    ],
    ids=lambda source: source.splitlines()[-1],
)
def test_the_atomic_write_scan_passes_atomic_writes_and_reads(source):
    assert _in_place_writes(source, "module.py") == []


# ---------------------------------------------------------------- many workers, determinism


def test_four_workers_on_postgresql_run_every_trial_exactly_once(tmp_path, capsys):
    url = _postgres_url()
    path = write_preset(tmp_path, name=f"load_{uuid.uuid4().hex[:8]}", space="nas720")
    path.write_text(path.read_text() + '\n[score]\nproxy = "params"\n')
    # main() exits non-zero if any worker died; every one of them must have taken trials.
    assert main(["search", str(path), "--storage", url, "--n-trials", "200", "--workers", "4", "--no-progress"]) == 0
    study = load_study(_on_storage(path, url))
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert {t.state for t in trials} == {COMPLETE} and 200 <= len(trials) <= 203  # up to 3 in flight at the end
    assert study.best_value == max(t.value for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) >= 2


def test_same_seed_same_condensed_set_and_same_proxy_scores(digits):
    config = CondenseConfig(ipc=2, iterations=5, batch_real=16, embed_arch="d2-w16-relu-instancenorm-avgpool")
    first, second = (condense(digits, config, progress=False) for _ in range(2))
    assert torch.equal(first.images, second.images) and first.meta["losses"] == second.meta["losses"]
    arch = ArchSpec.parse("d2-w16-relu-instancenorm-avgpool")
    scores = [train_candidate(arch, first.split(), digits, TrainConfig(epochs=10), test=True) for _ in range(2)]
    assert (scores[0].val_acc, scores[0].test_acc) == (scores[1].val_acc, scores[1].test_acc)
