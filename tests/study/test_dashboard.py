"""`search` prints `optuna-dashboard <storage>`: run as printed, that command serves the study."""

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from presets import write_preset

import nas_proxy
from nas_proxy.cli import main

pytest.importorskip(
    "optuna_dashboard",
    reason="optuna-dashboard is not installed (pip install 'nas-proxy[dashboard]'; the test extra installs it)",
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PRINTED = re.compile(
    r"^storage: (\S+) \(open it with `(optuna-dashboard [^`]+)`"
    r", from pip install 'nas-proxy\[dashboard\]', or nas_proxy\.load_study\(",
    re.M,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, log: Path):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        pytest.fail(f"optuna-dashboard answered {url} with {error}:\n{log.read_text()}")


def _wait_until_it_answers(server: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            pytest.fail(f"optuna-dashboard exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (an error status is for the caller to read)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"optuna-dashboard did not answer {url} within {timeout:.0f} s:\n{log.read_text()}")
            time.sleep(0.2)


def test_the_printed_dashboard_command_serves_the_trials_and_the_correlation(tmp_path, capsys, monkeypatch):
    # The default storage, runs/<name>/study.journal relative to the current folder, as a user's session has it.
    path = write_preset(tmp_path, reference='sample = 6\n\n[score]\nproxy = "naswot"\n')
    text = path.read_text()
    out_dir = f'out_dir = "{tmp_path / "out"}"\n'
    assert out_dir in text
    path.write_text(text.replace(out_dir, ""))
    monkeypatch.chdir(tmp_path)
    assert main(["search", str(path), "--n-trials", "8", "--no-progress"]) == 0
    printed = PRINTED.search(capsys.readouterr().out)
    assert printed, "search printed no `storage: ... optuna-dashboard ...` line"
    assert printed.group(1) == str(Path("runs", "tiny", "study.journal"))
    command = shlex.split(printed.group(2))
    assert command == ["optuna-dashboard", printed.group(1)]

    study = nas_proxy.load_study(str(path))
    study.ask()  # a trial still running, as when another worker is busy
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    attrs = ("reference_spearman", "reference_kendall", "reference_n")
    assert set(attrs) <= set(study.user_attrs), "the reference sample gave no correlation attributes"

    executable = shutil.which(command[0]) or str(Path(sys.executable).with_name(command[0]))
    port = _free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [executable, *command[1:], "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        api = f"http://127.0.0.1:{port}/api/studies"
        _wait_until_it_answers(server, api, log)
        summaries = [s for s in _get(api, log)["study_summaries"] if s["study_name"] == "tiny"]
        assert len(summaries) == 1
        detail = _get(f"{api}/{summaries[0]['study_id']}", log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    trials = study.trials
    assert [(t["number"], t["state"]) for t in detail["trials"]] == [
        (t.number, t.state.name.capitalize()) for t in trials
    ]
    assert {t["state"] for t in detail["trials"]} == {"Complete", "Running", "Fail"}
    for served, trial in zip(detail["trials"], trials):
        assert dict((a["key"], a["value"]) for a in served["user_attrs"]).get("arch") == trial.user_attrs.get("arch")
    for served_attrs in (summaries[0]["user_attrs"], detail["user_attrs"]):
        served = {a["key"]: a["value"] for a in served_attrs}  # the dashboard serves numbers as text
        assert set(attrs) <= set(served)
        assert int(served["reference_n"]) == study.user_attrs["reference_n"] >= 5
        for key in ("reference_spearman", "reference_kendall"):
            assert float(served[key]) == pytest.approx(study.user_attrs[key], nan_ok=True)
