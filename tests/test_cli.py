import json
import os
import subprocess
import sys

import pytest

from nas_proxy.cli import build_parser, main

SMALL = ["--ipc", "2", "--batch-real", "16", "--embed-arch", "d1-w8-relu-instancenorm-avgpool", "--no-progress"]


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "nas_proxy.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_condense_then_evaluate_on_condensed_random_and_full(tmp_path, capsys):
    out = tmp_path / "syn.pt"
    assert main(["condense", "--iterations", "3", "--out", str(out), *SMALL]) == 0
    assert out.is_file() and out.with_suffix(".png").is_file()
    capsys.readouterr()
    for train in (str(out), "random:2", "full"):
        assert (
            main(
                [
                    "evaluate",
                    "--arch",
                    "d1-w8-relu-none-avgpool",
                    "--train",
                    train,
                    "--epochs",
                    "1",
                    "--json",
                    "--no-progress",
                ]
            )
            == 0
        )
        record = json.loads(capsys.readouterr().out)
        assert {"arch", "train", "epochs", "seed", "val_acc", "test_acc", "params", "flops", "seconds"} <= set(record)
        assert record["train"] == train and record["arch"] == "d1-w8-relu-none-avgpool" and record["epochs"] == 1
    assert record["train_size"] > 1000


def test_condense_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "syn.pt"
    out.write_bytes(b"keep me")
    assert main(["condense", "--iterations", "1", "--out", str(out), *SMALL]) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--arch", "d3-w128-relu-bogus-avgpool"], "unknown norm 'bogus'"),
        (["evaluate", "--train", "random:ten"], "random:<images per class>"),
        (["evaluate", "--train", "missing.pt"], "condensed set not found: missing.pt"),
        (["evaluate", "--dataset", "fashion_mnist", "--data-root", "/nonexistent/root"], "/nonexistent/root"),
        (["condense", "--ipc", "0", "--out", "x.pt"], "error: --ipc must be positive, got 0"),
        (["evaluate", "--epochs", "0"], "error: --epochs must be positive, got 0"),  # not silently the default
        # No CUDA, or fewer than 100 GPUs: either way one line naming the device and the fix.
        (["evaluate", "--device", "cuda:99"], "device 'cuda:99' asked for but"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nas_proxy.cli", *args, "--no-progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_data_root_defaults_to_the_environment_variable(tmp_path):
    result = run_cli("evaluate", "--dataset", "mnist", "--no-progress", env={"NAS_PROXY_DATA": str(tmp_path / "env")})
    assert result.returncode == 2 and str(tmp_path / "env") in result.stderr


def test_every_command_documents_every_option():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"condense", "evaluate"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    assert run_cli("--help").returncode == 0 and run_cli("evaluate", "--help").returncode == 0


def test_an_interrupted_run_is_not_overwritten_without_resume(tmp_path, capsys):
    out = tmp_path / "syn.pt"
    checkpoint = tmp_path / "syn.pt.ckpt"
    checkpoint.write_bytes(b"state")
    assert main(["condense", "--iterations", "1", "--out", str(out), *SMALL]) == 2
    assert "--resume" in capsys.readouterr().err and checkpoint.read_bytes() == b"state"


def test_one_search_worker_per_visible_gpu(monkeypatch):
    from nas_proxy.study import _workers as workers

    assert workers.worker_devices("cpu", 0) == ["cpu"] and workers.worker_devices("cpu", 3) == ["cpu"] * 3
    monkeypatch.setattr(workers.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 3)
    assert workers.worker_devices("auto", 0) == ["cuda:0", "cuda:1", "cuda:2"]
    assert workers.worker_devices("cuda", 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]  # round-robin
    assert workers.worker_devices("cuda:1", 2) == ["cuda:1", "cuda:1"]  # an explicit GPU is kept
    monkeypatch.setattr(workers.torch.cuda, "device_count", lambda: 1)
    assert workers.worker_devices("auto", 0) == ["cuda"]
