import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest

from nas_proxy import NasProxyError, load_dataset
from nas_proxy.cli import main
from nas_proxy.proxies import condensed_set_path
from nas_proxy.study import load_preset, load_study, open_study, run_search
from presets import write_preset

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_search_records_trials_resumes_and_condenses_once(tmp_path):
    preset = load_preset(write_preset(tmp_path))
    data = load_dataset("digits")
    study = run_search(preset, data, progress=False)
    assert len(study.trials) == 6
    for trial in study.trials:
        assert {"arch", "params", "flops", "seconds"} <= set(trial.user_attrs) and 0 <= trial.value <= 1
    condensed = condensed_set_path(preset, data)
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


def test_same_study_name_with_another_space_is_refused(tmp_path):
    run_search(load_preset(write_preset(tmp_path)), load_dataset("digits"), n_trials=1, progress=False)
    other = load_preset(write_preset(tmp_path, space="nas720"))
    with pytest.raises(NasProxyError, match="another search space"):
        open_study(other)


@pytest.mark.parametrize("extra, body, message", [
    ("bogus = 1", None, "unknown key 'bogus'"),
    ("sampler_seed = 'x'", None, r"\[study\].sampler_seed must be int"),
    ("", "[study]\nname='x'\n[evaluate]\nepochs=1\n", r"unknown table \[evaluate\]"),
    ("", "[condense]\nipc=1\n", r"missing \[study\]"),
    ("", "[study]\nname='x'\nsearch_space='nope'\n", "search space file not found"),
])
def test_bad_presets_name_the_key(tmp_path, extra, body, message):
    path = write_preset(tmp_path, extra=extra)
    if body is not None:
        path.write_text(body)
    with pytest.raises(NasProxyError, match=message):
        load_preset(path)


def test_search_command(tmp_path, capsys):
    assert main(["search", str(write_preset(tmp_path)), "--n-trials", "2", "--no-progress"]) == 0
    assert "2 trials" in capsys.readouterr().out
    assert main(["search", str(tmp_path / "missing.toml")]) == 2


def test_shipped_presets_load():
    for name in ("quickstart", "fashion_mnist_dm", "cifar10_dm_ipc50"):
        assert load_preset(f"studies/{name}.toml").study.name == name


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


def test_ctrl_c_stops_cleanly_and_the_same_command_continues(tmp_path):
    path = write_preset(tmp_path)
    preset = load_preset(path)
    command = [sys.executable, "-m", "nas_proxy.cli", "search", str(path), "--n-trials", "500", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: _finished(preset) >= 2), "no trial finished"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "search interrupted; run the same command to continue" in err and "Traceback" not in err
    study = load_study(preset)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the stopped trial is marked failed
    done = _finished(preset)
    assert main(["search", str(path), "--n-trials", str(done + 2), "--no-progress"]) == 0
    assert _finished(preset) == done + 2


def _record_every_trial_once(study, n_trials):
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # numbered once, no gaps
    assert len({t._trial_id for t in trials}) == len(trials)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}  # nothing left running or failed
    assert len(trials) >= n_trials and all("arch" in t.user_attrs and t.value is not None for t in trials)


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


@pytest.mark.parametrize("url, message", [
    ("postgresql://postgres@127.0.0.1:1/nas_proxy", "cannot use storage postgresql://"),
    ("sqlite:////nonexistent-folder/study.db", "unable to open database file"),
    ("mysql://user@localhost/db", "needs a database driver"),
])
def test_unusable_storage_is_one_line_and_writes_nothing(tmp_path, capsys, url, message):
    assert main(["search", str(write_preset(tmp_path)), "--storage", url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()
