"""A database that restarts, workers that race, and --n-trials that holds with several workers (issue 21)."""

from __future__ import annotations

import os
import pickle
import shlex
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from presets import write_preset
from test_reliability import _on_storage, _postgres_url

from nas_proxy import NasProxyError, load_preset, load_search_space, load_study
from nas_proxy.cli import main
from nas_proxy.study._database import Reconnect, ResilientRDBStorage, hide_password, is_connection_error

COMPLETE = optuna.trial.TrialState.COMPLETE


def _dropped(message: str = "terminating connection due to administrator command") -> Exception:
    from sqlalchemy.exc import OperationalError

    return OperationalError("SELECT 1", {}, Exception(message))


def _storage_error_from(cause: Exception) -> Exception:
    """What Optuna's RDBStorage raises when a statement fails: StorageInternalError, caused by SQLAlchemy's error."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        return wrapped


# --- retrying a lost connection ---------------------------------------------------------------------------------


def test_only_a_lost_connection_counts_as_one():
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    assert is_connection_error(_dropped()) and is_connection_error(_storage_error_from(_dropped()))
    duplicate = IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint"))
    assert not is_connection_error(_storage_error_from(duplicate))  # the statement was refused: never repeat it
    assert not is_connection_error(ProgrammingError("SELECT", {}, Exception("syntax error")))
    assert not is_connection_error(optuna.exceptions.UpdateFinishedTrialError("finished"))


def test_calls_are_retried_through_an_outage_and_it_is_announced_once(capsys):
    failures = [_storage_error_from(_dropped()), _dropped("connection refused"), _dropped("connection refused")]
    calls = []

    def call():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return 42

    reconnect = Reconnect("postgresql://user:secret@db.example:5432/nas", timeout=30)
    assert reconnect.call(call) == 42 and len(calls) == 4
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "secret" not in "".join(err)
    assert err[0].startswith(
        "lost the connection to the database postgresql://user:***@db.example:5432/nas; retrying for up to 30 s"
    )
    assert err[1].startswith("reconnected to the database postgresql://user:***@db.example:5432/nas after ")


def test_a_refused_statement_is_not_retried():
    from sqlalchemy.exc import IntegrityError

    calls = []

    def call():
        calls.append(1)
        raise _storage_error_from(IntegrityError("INSERT", {}, Exception("duplicate key")))

    with pytest.raises(optuna.exceptions.StorageInternalError):
        Reconnect("postgresql://db/nas", timeout=30).call(call)
    assert len(calls) == 1


def test_past_the_bound_one_line_names_the_database_and_later_calls_fail_at_once():
    calls = []

    def down():
        calls.append(1)
        raise _dropped("connection refused")

    reconnect = Reconnect("postgresql://user:secret@db.example/nas", timeout=0.6)
    start = time.monotonic()
    with pytest.raises(NasProxyError) as error:
        reconnect.call(down)
    assert 0.6 <= time.monotonic() - start < 5 and len(calls) >= 2
    text = str(error.value)
    assert "\n" not in text and "secret" not in text
    assert text.startswith(
        "the database postgresql://user:***@db.example/nas has been unreachable for 1 s "
        "(connection refused); the study is safe there: run the same command again"
    )
    assert "[study].reconnect_timeout" in text
    before = len(calls)
    with pytest.raises(NasProxyError, match="has been unreachable"):
        reconnect.call(lambda: calls.append(1))  # the worker is stopping: no second wait
    assert len(calls) == before


def test_past_the_bound_the_line_gives_the_drivers_reason_not_optunas_wrapper():
    # Optuna raises a lost connection as a StorageInternalError whose own text blames "invalid data in the commit"
    def down():
        raise _storage_error_from(_dropped('connection to server at "db" failed: Connection refused\n\tIs it running?'))

    with pytest.raises(NasProxyError) as error:
        Reconnect("postgresql://db/nas", timeout=0).call(down)
    assert str(error.value).startswith(
        'the database postgresql://db/nas has been unreachable for 0 s (connection to server at "db" failed: '
        "Connection refused); the study is safe there"
    )


def test_the_storage_keeps_its_bound_across_processes(tmp_path):
    storage = ResilientRDBStorage(f"sqlite:///{tmp_path / 'study.db'}", reconnect_timeout=7)
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.reconnect_timeout == 7 and copy._reconnect.timeout == 7
    assert copy.engine.pool._pre_ping and storage.engine.pool._pre_ping  # a dead pooled connection is replaced
    study = optuna.create_study(storage=copy, study_name="x")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="x", storage=storage).trials) == 2


def test_a_password_is_never_printed():
    assert hide_password("postgresql://me:pw@host/db") == "postgresql://me:***@host/db"
    assert hide_password("sqlite:///study.db") == "sqlite:///study.db"


# --- --n-trials with several workers ------------------------------------------------------------------------------


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(COMPLETE, optuna.trial.TrialState.PRUNED)))


def test_two_workers_end_at_n_trials_on_a_journal(tmp_path):
    """Trials of a few milliseconds (naswot): two workers finishing together used to run one trial more."""
    path = write_preset(tmp_path, name="exact", extra='[score]\nproxy = "naswot"\n')
    for n_trials in (9, 14):
        assert main(["search", str(path), "--workers", "2", "--n-trials", str(n_trials), "--no-progress"]) == 0
        study = load_study(load_preset(path))
        assert _finished(study) == n_trials and len(study.trials) == n_trials


# --- PostgreSQL: a fresh database, a restart ----------------------------------------------------------------------


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database (Optuna's tables not yet created); dropped afterwards."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(_postgres_url())
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


_OPEN = """
import sys
import optuna
from nas_proxy.study._storage import open_storage
from nas_proxy.config import StudyConfig
storage = open_storage(StudyConfig(name="race", storage=sys.argv[1]))
optuna.create_study(study_name="race", storage=storage, load_if_exists=True)
"""


def test_workers_opening_a_fresh_database_at_once_all_connect(fresh_database):
    """Each creates Optuna's tables; PostgreSQL refuses all but one (seen in CI): the others connect again."""
    workers = [
        subprocess.Popen([sys.executable, "-c", _OPEN, fresh_database], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, errors
    assert [s.study_name for s in optuna.get_all_study_summaries(fresh_database)] == ["race"]


def _wait_until_finished(preset, n: int, worker: subprocess.Popen, timeout: float = 300) -> None:
    """Until the study holds ``n`` finished trials, the worker ends or ``timeout`` passes (the callers check which)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            if _finished(load_study(preset)) >= n:
                return
        except Exception:
            pass  # the study is being created
        time.sleep(0.1)


def _restart_command() -> list[str]:
    restart = os.environ.get("NAS_PROXY_TEST_POSTGRES_RESTART")
    if not restart:
        if os.environ.get("CI"):
            pytest.fail("CI must restart its PostgreSQL: .ci/run exports NAS_PROXY_TEST_POSTGRES_RESTART")
        pytest.skip("set NAS_PROXY_TEST_POSTGRES_RESTART (e.g. 'bash .ci/postgres.sh restart') to restart it")
    return shlex.split(restart)


def test_a_database_restart_in_the_middle_of_a_study_loses_nothing(tmp_path):
    """Two workers score a list of architectures while PostgreSQL goes down for 3 s (every connection dropped,
    new ones refused): both ride through, every architecture is scored exactly once, nothing fails."""
    url, restart = _postgres_url(), _restart_command()
    path = write_preset(tmp_path, name=f"restart_{uuid.uuid4().hex[:8]}")
    path.write_text(path.read_text().replace("[training]\nepochs = 2", "[training]\nepochs = 40"))  # trials of ~0.5 s
    preset = _on_storage(path, url)
    archs = [arch.id for arch in load_search_space("small").sample(12, 3)]
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nas_proxy.cli",
            "search",
            str(path),
            "--storage",
            url,
            "--workers",
            "2",
            "--n-trials",
            "12",
            "--archs",
            ",".join(archs),
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_finished(preset, 2, worker)
        assert worker.poll() is None, worker.communicate()[1]
        subprocess.run([*restart, "3"], check=True, capture_output=True, timeout=120)
        out, err = worker.communicate(timeout=600)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    assert "lost the connection to the database" in err and "reconnected to the database" in err
    assert "Traceback" not in err, err
    trials = load_study(preset).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(12))
    assert {t.state for t in trials} == {COMPLETE}  # nothing failed, nothing left running, nothing extra
    assert sorted(t.user_attrs["arch"] for t in trials) == sorted(archs)  # each queued architecture exactly once


def test_a_database_down_past_the_bound_stops_the_worker_in_one_line_and_the_study_continues(tmp_path):
    """PostgreSQL down for 12 s against `reconnect_timeout = 2`: the worker stops with one line naming the database
    (exit 2, no traceback); once it is back, the same command fails the trial it left running, queues it again and
    ends with every trial done."""
    url, restart = _postgres_url(), _restart_command()
    path = write_preset(tmp_path, name=f"down_{uuid.uuid4().hex[:8]}", extra="reconnect_timeout = 2\n")
    path.write_text(path.read_text().replace("[training]\nepochs = 2", "[training]\nepochs = 40"))
    preset = _on_storage(path, url)
    command = [
        sys.executable,
        "-m",
        "nas_proxy.cli",
        "search",
        str(path),
        "--storage",
        url,
        "--n-trials",
        "6",
        "--no-progress",
    ]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outage = None
    try:
        _wait_until_finished(preset, 2, worker)
        outage = subprocess.Popen([*restart, "12"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
        if outage is not None:
            outage.wait(timeout=120)
    assert worker.returncode == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith(f"error: the database {url} has been unreachable for 2 s")
        and "run the same command again" in last
    ), err
    assert subprocess.run(command, capture_output=True, text=True, timeout=300).returncode == 0
    trials = load_study(preset).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(done) == 6 and not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in failed:  # the trial the stopped worker left running: failed, and queued again once
        copies = [t for t in done if t.system_attrs.get("failed_trial") == trial.number]
        assert len(copies) == 1
        # The copy keeps every axis the stopped trial had drawn and draws the rest (a worker may stop between two
        # suggestions: seen with only `depth` drawn); a trial that had drawn its whole architecture repeats it.
        assert trial.params.items() <= copies[0].params.items()


@pytest.mark.parametrize("then_write", [True, False], ids=["then it writes", "then it finishes"])
def test_a_trial_failed_by_another_worker_while_it_ran_does_not_stop_this_one(
    tmp_path, digits, monkeypatch, then_write
):
    """After a long outage another worker may take this one for dead and fail its trial (queuing a copy): the
    worker says so and goes on instead of dying on Optuna's refusal to tell a finished trial."""
    import nas_proxy.study._objective
    import nas_proxy.study._search
    from nas_proxy.study._storage import retry_callback

    preset = load_preset(write_preset(tmp_path, name="taken", extra='[score]\nproxy = "naswot"\n'))
    make_objective = nas_proxy.study._objective.make_objective

    def objective_of(*args, **kwargs):
        inner = make_objective(*args, **kwargs)

        def objective(trials):
            (trial,) = trials  # a zero-cost proxy: one trial at a time
            if trial.number == 1:  # what fail_stale_trials does in another worker, while this one trains
                nas_proxy.study._objective.suggest_arch(trial, preset.space())
                trial.study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
                retry_callback(preset.study)(trial.study, trial.study._storage.get_trial(trial._trial_id))
                if not then_write:
                    return [0.5]
            return inner(trials)

        return objective

    monkeypatch.setattr(nas_proxy.study._search, "make_objective", objective_of)
    study = nas_proxy.study._search.run_search(preset, digits, n_trials=4, progress=False, verbose=False)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(optuna.trial.TrialState.FAIL) == 1 and trials[1].state.name == "FAIL"
    assert _finished(study) == 4
    copy = [t for t in trials if t.system_attrs.get("failed_trial") == 1]
    assert len(copy) == 1 and copy[0].state == COMPLETE and copy[0].params == trials[1].params
