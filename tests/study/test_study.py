import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from presets import reference_path, write_preset

import nas_proxy
from nas_proxy import ArgumentError, NasProxyError, load_dataset, load_preset, load_study, open_study, run_search
from nas_proxy.artifacts import condensed_set_path
from nas_proxy.cli import main
from nas_proxy.study import select_archs
from nas_proxy.study._stale import worker_id

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_search_records_trials_resumes_and_condenses_once(tmp_path):
    preset = load_preset(write_preset(tmp_path))
    data = load_dataset("digits")
    study = run_search(preset, data, progress=False)
    assert len(study.trials) == 6
    for trial in study.trials:
        assert {"arch", "params", "flops", "seconds"} <= set(trial.user_attrs) and 0 <= trial.value <= 1
    condensed = condensed_set_path(preset.condense, data, preset.study.output)
    stamp = condensed.stat().st_mtime_ns
    study = run_search(preset, data, n_trials=9, progress=False)  # a second run continues the same study
    assert len(study.trials) == 9 and condensed.stat().st_mtime_ns == stamp


def test_a_repeated_architecture_reuses_its_score(tmp_path):
    preset = load_preset(write_preset(tmp_path))
    data = load_dataset("digits")
    study = run_search(preset, data, n_trials=1, progress=False)
    first = study.trials[0]
    study.enqueue_trial(first.params)
    study = run_search(preset, data, n_trials=2, progress=False)
    repeat = study.trials[1]
    assert repeat.user_attrs["arch"] == first.user_attrs["arch"] and repeat.user_attrs["cached"]
    assert repeat.value == first.value


def test_a_repeat_of_an_architecture_another_worker_trains_waits_for_its_score(tmp_path):
    """Two workers that draw one architecture at once: the later trial reuses the first one's score when it comes,
    instead of training it again; a first trial whose worker died is not waited for."""
    preset = load_preset(write_preset(tmp_path))
    data = load_dataset("digits")
    study = run_search(preset, data, n_trials=1, progress=False)
    arch = nas_proxy.ArchSpec.parse("d3-w64-relu-batchnorm-maxpool")
    params = {axis: getattr(arch, axis) for axis in nas_proxy.space.AXES}
    host = worker_id().rpartition(":")[0]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # another worker, alive
    first = study.ask(fixed_distributions(study, params))  # its trial, training this architecture
    first.set_user_attr("arch", arch.id)
    for key, value in {"worker": f"{host}:{other.pid}", "params": 1, "flops": 2, "seconds": 3.0}.items():
        first.set_user_attr(key, value)
    study.enqueue_trial(params)
    finish = threading.Timer(3.0, lambda: study.tell(first, 0.123))  # a score no training of 2 epochs gives
    finish.start()
    try:
        study = run_search(preset, data, n_trials=2, progress=False)
    finally:
        finish.join()
        other.kill()
        other.wait()
    repeat = study.trials[-1]
    assert repeat.user_attrs["arch"] == arch.id and repeat.user_attrs["cached"] and repeat.value == 0.123

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask(fixed_distributions(study, params | {"width": 32}))
    orphan.set_user_attr("arch", arch.id.replace("w64", "w32"))
    orphan.set_user_attr("worker", f"{host}:{dead.pid}")  # a worker that is gone
    study.enqueue_trial(params | {"width": 32})
    study = run_search(preset, data, n_trials=3, progress=False)
    trained = [t for t in study.trials if t.user_attrs.get("arch") == orphan.user_attrs["arch"] and t.value is not None]
    assert len(trained) == 1 and not trained[0].user_attrs.get("cached")  # the orphan's worker was not waited for


def fixed_distributions(study, params):
    """``study.ask`` distributions that fix each axis to ``params``' value (the trial another worker runs)."""
    space = study.user_attrs["search_space"]
    return {axis: optuna.distributions.CategoricalDistribution(space[axis]) for axis in params}


def test_proposals_depend_on_the_seed_and_the_trial_number_not_on_workers_or_restarts(tmp_path):
    """A random sampler seeded once per process replayed its proposals in every worker and every resumed run,
    each replay reusing a score where a new architecture was asked for."""
    data = load_dataset("digits")
    preset = load_preset(write_preset(tmp_path, name="whole", space="nas720"))
    preset = dataclasses.replace(preset, score=dataclasses.replace(preset.score, proxy="params"))
    whole = [t.params for t in run_search(preset, data, n_trials=8, progress=False).trials]
    resumed = dataclasses.replace(preset, study=dataclasses.replace(preset.study, name="resumed"))
    run_search(resumed, data, n_trials=4, progress=False)
    assert [t.params for t in run_search(resumed, data, n_trials=8, progress=False).trials] == whole
    assert len({tuple(p.values()) for p in whole}) == 8


def test_same_study_name_with_another_space_is_refused(tmp_path):
    run_search(load_preset(write_preset(tmp_path)), load_dataset("digits"), n_trials=1, progress=False)
    other = load_preset(write_preset(tmp_path, space="nas720"))
    with pytest.raises(NasProxyError, match="another search space"):
        open_study(other)


@pytest.mark.parametrize(
    "extra, body, message",
    [
        ("bogus = 1", None, "unknown key 'bogus'"),
        ("sampler_seed = 'x'", None, r"\[study\].sampler_seed must be int"),
        ("", "[study]\nname='x'\n[evaluate]\nepochs=1\n", r"unknown table \[evaluate\]"),
        ("", "[condense]\nipc=1\n", r"missing \[study\]"),
        ("", "[study]\nname='x'\nsearch_space='nope'\n", "unknown search space 'nope'; choose a shipped one"),
        ("", "[study]\nname='x'\nsearch_space='nope.toml'\n", "search space not found: nope.toml"),
        ("heartbeat_interval = 0", None, r"\[study\].heartbeat_interval must be positive, got 0"),
        (
            "",
            "[study]\nname='x'\nsampler='grid'\n",
            r"\[study\].sampler = 'grid' is not allowed; choose from 'tpe', 'random'",
        ),
        ("", "[study]\nsampler='tpe'\n", r"\[study\]: missing key 'name'"),
    ],
)
def test_bad_presets_name_the_key(tmp_path, extra, body, message):
    path = write_preset(tmp_path, extra=extra)
    if body is not None:
        path.write_text(body)
    with pytest.raises(NasProxyError, match=message):
        load_preset(path)


def test_search_command_prints_a_storage_that_optuna_opens(tmp_path, capsys):
    path = write_preset(tmp_path)
    assert main(["search", str(path), "--n-trials", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 finished trials" in out
    storage = re.search(r"^storage: (\S+) \(open it with `optuna-dashboard (\S+)`", out, re.M)
    assert storage and storage.group(1) == storage.group(2)
    # Optuna's own command line opens the printed storage as it is (optuna-dashboard takes it the same way)
    listing = subprocess.run(
        ["optuna", "trials", "--study-name", "tiny", "--storage", storage.group(1), "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(listing.stdout)) == 2
    assert len(nas_proxy.load_study(str(path)).trials) == 2  # the Python helper, from the preset
    assert main(["search", str(path), "--no-progress"]) == 0  # again: it continues the same study and says so
    assert "continuing study 'tiny'" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--n-trials", "0", "error: --n-trials must be positive, got 0"),
        ("--n-trials", "-3", "error: --n-trials must be positive, got -3"),
        ("--n-trials", "x", "error: argument --n-trials: invalid int value: 'x'"),
    ],
)
def test_bad_counts_name_the_flag(tmp_path, capsys, flag, value, message):
    path = write_preset(tmp_path)
    try:
        code = main(["search", str(path), flag, value, "--no-progress"])
    except SystemExit as exc:  # argparse's own errors exit from inside parse_args
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_queued_architectures_on_a_finished_study_are_run_and_said(tmp_path, capsys):
    path = write_preset(tmp_path)
    assert main(["search", str(path), "--n-trials", "2", "--no-progress"]) == 0
    assert main(["search", str(path), "--archs", "4", "--n-trials", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "queued trials would not fit in 2" in out
    study = nas_proxy.load_study(str(path))
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,)) and len(study.trials) > 2


def test_shipped_presets_and_spaces_load_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no studies/ or search_spaces/ here: they come with the package
    for name in ("quickstart", "fashion_mnist_dm", "fashion_mnist_noref", "cifar10_dm_ipc50"):
        preset = load_preset(name)
        assert preset.study.name == name and preset.ref == name and len(preset.space()) > 0
    own = write_preset(tmp_path)
    assert load_preset(own).ref == str(own)  # a path still works, and is how the user names it
    with pytest.raises(
        NasProxyError,
        match="unknown study preset 'quickstrat'; choose a shipped one "
        r"\(cifar10_dm_ipc50, fashion_mnist, fashion_mnist_dm, fashion_mnist_noref, quickstart\)",
    ):
        load_preset("quickstrat")


def test_the_benchmark_presets_load():
    presets = sorted((Path(__file__).parents[2] / "benchmarks" / "presets").glob("*.toml"))
    assert presets
    for path in presets:
        assert load_preset(path).study.name == f"bench_{path.stem}"


def test_two_workers_share_one_study_and_record_every_trial_once(tmp_path, capsys):
    preset = write_preset(tmp_path)
    assert main(["search", str(preset), "--n-trials", "8", "--workers", "2", "--no-progress"]) == 0
    _record_every_trial_once(load_study(load_preset(preset)), 8)
    assert len(list((tmp_path / "out" / "condensed").glob("*.pt"))) == 1


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def _finished(preset, states=(optuna.trial.TrialState.COMPLETE,)):
    try:
        return len(load_study(preset).get_trials(deepcopy=False, states=states))
    except NasProxyError:
        return 0


def _interrupt_search(command, delay):
    """Start ``command``, send SIGINT ``delay`` seconds after its first line of output; return (rc, out, err)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()  # the search has started: it prints which study it runs
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.returncode, first + out, err


def test_ctrl_c_at_many_moments_exits_130_with_one_line_and_the_study_continues(tmp_path):
    # Four architectures: once each is scored, every trial reuses an earlier score, so it does nothing
    # but write to the storage; the later moments all land in such trials.
    space = tmp_path / "four.toml"
    space.write_text(
        'name = "four"\n[choices]\ndepth = [1]\nwidth = [8, 16]\nactivation = ["relu"]\n'
        'norm = ["none", "instancenorm"]\npooling = ["avgpool"]\n'
    )
    path = write_preset(tmp_path, space=str(space))
    preset = load_preset(path)
    command = [sys.executable, "-m", "nas_proxy.cli", "search", str(path), "--n-trials", "2000", "--no-progress"]

    def interrupt_at(delays):
        for delay in delays:
            returncode, out, err = _interrupt_search(command, delay)
            assert returncode == 130, (delay, returncode, err)
            assert err == "search interrupted; run the same command to continue the study\n", (delay, err)
            study = load_study(preset)  # the journal still opens, and nothing is left half-done in it
            assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
            failed = {t.number for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))}
            for waiting in study.get_trials(states=(optuna.trial.TrialState.WAITING,)):  # an interrupted trial's copy
                assert waiting.system_attrs["retry_history"][-1] in failed

    interrupt_at([0.0, 0.05, 0.1, 0.2])  # early trials: sampling, training, storage writes
    assert main(["search", str(path), "--n-trials", str(_finished(preset) + 20), "--no-progress"]) == 0
    assert {t.user_attrs["arch"] for t in load_study(preset).trials if t.value is not None} == {
        a.id for a in preset.space().archs()
    }, "every architecture is scored: from here on trials are cached"
    before = len(load_study(preset).trials)
    interrupt_at([0.0, 0.03, 0.07, 0.15, 0.3, 0.6])
    assert len(load_study(preset).trials) > before + 6  # the moments fell among cached trials
    done = _finished(preset)
    assert main(["search", str(path), "--n-trials", str(done + 3), "--no-progress"]) == 0
    assert _finished(preset) == done + 3


def _record_every_trial_once(study, n_trials):
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # numbered once, no gaps
    assert len({t._trial_id for t in trials}) == len(trials)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}  # nothing left running or failed
    assert len(trials) == n_trials and all("arch" in t.user_attrs and t.value is not None for t in trials)


def test_two_worker_processes_on_postgresql_record_every_trial_once(tmp_path, capsys):
    url = os.environ.get("NAS_PROXY_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL test: .ci/run exports NAS_PROXY_TEST_POSTGRES")
        pytest.skip("set NAS_PROXY_TEST_POSTGRES (bash .ci/postgres.sh prints one) to run against PostgreSQL")
    name = f"pg_{uuid.uuid4().hex[:8]}"  # the database outlives the test: a fresh study each run
    path = write_preset(tmp_path, name=name)
    assert main(["search", str(path), "--storage", url, "--n-trials", "10", "--workers", "2", "--no-progress"]) == 0
    assert f"on {url}" in capsys.readouterr().out
    preset = dataclasses.replace(load_preset(path), study=dataclasses.replace(load_preset(path).study, storage=url))
    study = load_study(preset)
    _record_every_trial_once(study, 10)
    assert not (tmp_path / "out" / "study.journal").exists()  # nothing went to the default storage


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://postgres@127.0.0.1:1/nas_proxy", "cannot use storage postgresql://"),
        ("sqlite:////nonexistent-folder/study.db", "unable to open database file"),
        ("mysql://user@localhost/db", "needs a database driver"),
    ],
)
def test_unusable_storage_is_one_line_and_writes_nothing(tmp_path, capsys, url, message):
    assert main(["search", str(write_preset(tmp_path)), "--storage", url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_library_errors_name_the_parameter_and_the_cli_names_the_flag(tmp_path, capsys):
    """Issue 24: a notebook user is told about the argument they passed, a shell user about the flag."""
    preset = load_preset(write_preset(tmp_path))
    with pytest.raises(ArgumentError, match=r"^select_archs\(\): archs 'top-x': expected top-K") as error:
        select_archs("top-x", preset.space(), preset.reference)
    assert "--" not in str(error.value) and error.value.key == "archs"
    assert select_archs(3, preset.space(), preset.reference) == select_archs("3", preset.space(), preset.reference)
    assert main(["reference", str(preset.path), "--archs", "spread:x"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "error: --archs 'spread:x': expected spread:N with N a positive integer, e.g. spread:30"


def test_load_study_says_where_it_looked_and_what_the_storage_holds(tmp_path):
    preset = load_preset(write_preset(tmp_path))  # an absolute out_dir: the study is not elsewhere, just not begun
    with pytest.raises(NasProxyError, match=rf"no study yet in {re.escape(str(tmp_path / 'out'))}; `nas-proxy search"):
        load_study(preset)
    open_study(dataclasses.replace(preset, study=dataclasses.replace(preset.study, name="other")))
    with pytest.raises(NasProxyError, match=r"no study named 'tiny' on .*study\.journal \(it holds: 'other'\)"):
        load_study(preset)
    named = dataclasses.replace(preset, study=dataclasses.replace(preset.study, storage=str(tmp_path / "x.journal")))
    with pytest.raises(NasProxyError, match=r"no study at .*x\.journal, the journal file \[study\]\.storage"):
        load_study(named)


def test_run_search_in_python_prints_no_optuna_info_and_leaves_the_callers_logging(tmp_path):
    """A notebook's run_search: the search's own lines, not Optuna's "[I ...] Trial 0 finished" beside each; the
    caller's Optuna verbosity (INFO by default) is what it was after."""
    preset = write_preset(tmp_path, reference="sample = 2")
    script = (
        "import optuna\n"
        "from nas_proxy import load_dataset, load_preset, run_search\n"
        f"preset = load_preset({str(preset)!r})\n"
        "run_search(preset, load_dataset(preset.data), n_trials=3, progress=False)\n"
        "print('verbosity', optuna.logging.get_verbosity() == optuna.logging.INFO)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "verbosity True" in result.stdout
    assert "running 3 trials" in result.stdout + result.stderr  # the search's own lines still come
    assert "[I " not in result.stdout + result.stderr, result.stderr


def test_an_ipc_larger_than_a_class_stops_the_search_before_any_training(tmp_path, capsys):
    """Digits has 128 training images of class 0: 500 per class is refused in one line before the reference sample
    trains (minutes on real data), not at condensation after it."""
    path = write_preset(tmp_path, reference="sample = 3")
    path.write_text(path.read_text().replace("[condense]\nipc = 2", "[condense]\nipc = 500"))
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot take 500 images per class: class '0' of digits has 128 training images")
    assert "Traceback" not in err
    preset = load_preset(path)
    assert not reference_path(preset).exists()
    assert not list(tmp_path.glob("out/**/*.pt"))


def test_trials_train_side_by_side_with_the_scores_each_gets_alone(tmp_path):
    """On a CPU a worker takes two trials per `[training].jobs` at once (by default one job per core) and trains them
    side by side: each architecture scores bit for bit what it scores alone, the batch overlaps, each trial's cost
    is its share of their wall time, and a copy of a failed trial trains alone (a failing architecture takes no
    batch-mate's retries with it)."""
    from nas_proxy.study import enqueue_archs
    from nas_proxy.study._storage import retry_callback

    data = load_dataset("digits")
    archs = [nas_proxy.ArchSpec.parse(a) for a in ("d1-w32-relu-none-avgpool", "d2-w32-relu-batchnorm-maxpool")]
    archs += [
        nas_proxy.ArchSpec.parse(a) for a in ("d3-w64-relu-instancenorm-avgpool", "d2-w64-leakyrelu-none-maxpool")
    ]
    studies = {}
    for jobs in (1, 2):
        preset = load_preset(write_preset(tmp_path, name=f"jobs{jobs}"))
        preset = dataclasses.replace(preset, training=dataclasses.replace(preset.training, jobs=jobs))
        enqueue_archs(open_study(preset), archs)
        studies[jobs] = run_search(preset, data, n_trials=4, progress=False, verbose=False).trials
    alone, together = ({t.user_attrs["arch"]: t.value for t in studies[jobs]} for jobs in (1, 2))
    assert together == alone and len(alone) == 4
    for trials, overlap in ((studies[1], False), (studies[2], True)):
        first, second = trials[0], trials[1]
        assert (second.datetime_start < first.datetime_complete) == overlap
        assert (first.user_attrs["seconds"] == second.user_attrs["seconds"]) == overlap  # halves of one wall time

    study = open_study(preset)  # jobs = 2: a failed trial's copy, queued with a new architecture after it
    failed = study.ask(fixed_distributions(study, {"depth": 1, "width": 32}))
    failed.set_user_attr("arch", "unused")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    retry_callback(preset.study)(study, study._storage.get_trial(failed._trial_id))
    enqueue_archs(study, [nas_proxy.ArchSpec.parse("d1-w64-relu-none-maxpool")])
    copy, other = run_search(preset, data, n_trials=6, progress=False, verbose=False).trials[-2:]
    assert (
        copy.system_attrs["failed_trial"] == failed.number
        and copy.state == other.state == optuna.trial.TrialState.COMPLETE
    )
    assert copy.user_attrs["seconds"] != other.user_attrs["seconds"]  # one, then the other: not halves of one time

    # A copy and a plain queued trial of one architecture, taken together: the plain one trains it (the copy
    # trains after it, so waiting for the copy would never end) and the copy reuses its score.
    arch = nas_proxy.ArchSpec.parse("d2-w32-leakyrelu-instancenorm-maxpool")
    params = {axis: getattr(arch, axis) for axis in nas_proxy.space.AXES}
    study.enqueue_trial(params, skip_if_exists=False)
    failed = study.ask()  # the queued trial, with the architecture's params
    failed.set_user_attr("arch", nas_proxy.study._objective.suggest_arch(failed, preset.space()).id)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    retry_callback(preset.study)(study, study._storage.get_trial(failed._trial_id))
    study.enqueue_trial(params, skip_if_exists=False)
    copy, plain = run_search(preset, data, n_trials=8, progress=False, verbose=False).trials[-2:]
    assert copy.system_attrs["failed_trial"] == failed.number and copy.user_attrs["arch"] == arch.id
    assert plain.user_attrs["arch"] == arch.id
    assert not plain.user_attrs.get("cached") and copy.user_attrs["cached"] and copy.value == plain.value
