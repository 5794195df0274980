import json
import os
import re
import subprocess
import sys

import pytest
from presets import write_preset

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
    for train in (str(out), "subset:2", "full"):
        assert (
            main(
                [
                    "train",
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
        (["train", "--arch", "d3-w128-relu-bogus-avgpool"], "unknown norm 'bogus'"),
        (["train", "--train", "subset:ten"], "subset:<images per class>"),
        (["train", "--train", "random:10"], "expected full, subset:<images per class> or a condensed set file"),
        (["train", "--train", "missing.pt"], "condensed set not found: missing.pt"),
        (["train", "--dataset", "fashion_mnist", "--data-root", "/nonexistent/root"], "/nonexistent/root"),
        (["condense", "--ipc", "0", "--out", "x.pt"], "error: --ipc must be positive, got 0"),
        (["train", "--epochs", "0"], "error: --epochs must be positive, got 0"),  # not silently the default
        # No CUDA, or fewer than 100 GPUs: either way one line naming the device and the fix.
        (["train", "--device", "cuda:99"], "device 'cuda:99' asked for but"),
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
    result = run_cli("train", "--dataset", "mnist", "--no-progress", env={"NAS_PROXY_DATA": str(tmp_path / "env")})
    assert result.returncode == 2 and str(tmp_path / "env") in result.stderr


def test_every_command_documents_every_option():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"condense", "train"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    assert run_cli("--help").returncode == 0 and run_cli("train", "--help").returncode == 0


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


# ---------------------------------------------------------------- flags checked before any work, in one line


def _frontier(tmp_path, *flags):
    return ["frontier", str(write_preset(tmp_path)), *flags, "--no-progress"]


def _case_frontier_ipc_zero(tmp_path):
    return _frontier(tmp_path, "--ipc", "0", "--families", "subset"), "--ipc must be positive, got 0"


def _case_frontier_dm_ipc_zero(tmp_path):
    return _frontier(tmp_path, "--dm-ipc", "0", "--families", "dm"), "--dm-ipc must be positive, got 0"


def _case_frontier_short_nan(tmp_path):
    return _frontier(
        tmp_path, "--short", "nan", "--families", "short"
    ), "--short holds nan; each must be a fraction of the reference's"


def _case_frontier_short_inf(tmp_path):
    return _frontier(tmp_path, "--short", "0.1,inf", "--families", "short"), "--short holds inf;"


def _case_frontier_short_zero(tmp_path):
    return _frontier(tmp_path, "--short", "0", "--families", "short"), "--short holds 0.0;"


def _case_frontier_short_negative(tmp_path):
    return _frontier(tmp_path, "--short", "-0.5", "--families", "short"), "--short holds -0.5;"


def _case_frontier_short_whole(tmp_path):  # all the reference's steps is no short training
    return _frontier(tmp_path, "--short", "0.5,1"), r"--short holds 1.0; .* between 0 and 1 \(both excluded\)"


def _case_frontier_fit_size_negative(tmp_path):
    return _frontier(tmp_path, "--fit-sizes", "-1"), "--fit-sizes holds -1; each must be .* at least 8"


def _case_frontier_bootstrap_negative(tmp_path):
    return _frontier(tmp_path, "--bootstrap", "-1"), "argument --bootstrap: must be >= 0, got -1"


def _case_frontier_threads_huge(tmp_path):
    return _frontier(tmp_path, "--threads", "100000"), "argument --threads: must be at most 1024"


def _case_compare_threads_negative(tmp_path):
    return ["compare", str(write_preset(tmp_path)), "--threads", "-1", "--no-progress"], "--threads: must be >= 0"


def _case_compare_seeds_huge(tmp_path):
    return ["compare", str(write_preset(tmp_path)), "--seeds", "1000000000", "--no-progress"], "--seeds must be at most"


def _case_report_bootstrap_huge(tmp_path):
    return ["report", str(write_preset(tmp_path)), "--bootstrap", "10000000000"], "--bootstrap: must be at most 10000"


def _case_report_rows_negative(tmp_path):
    return ["report", str(write_preset(tmp_path)), "--rows", "-1"], "argument --rows: must be >= 0, got -1"


def _case_report_out_a_file(tmp_path):
    preset = str(write_preset(tmp_path))
    assert main(["search", preset, "--n-trials", "1", "--no-progress"]) == 0
    (tmp_path / "a-file").write_text("not a folder")
    return [
        "report",
        preset,
        "--out",
        str(tmp_path / "a-file"),
    ], r"a-file is a file, not a folder; point out_dir \(--out\)"


def _case_storage_a_folder(tmp_path):
    (tmp_path / "a-folder").mkdir()
    return (
        ["search", str(write_preset(tmp_path)), "--storage", str(tmp_path / "a-folder"), "--no-progress"],
        r"a-folder: it is a folder; point \[study\].storage \(--storage\) at a file name",
    )


def _case_condense_out_a_folder(tmp_path):  # refused before condensing, not when saving after it
    (tmp_path / "sets").mkdir()
    return ["condense", "--out", str(tmp_path / "sets"), "--force", *SMALL], "--out .*sets is a folder; name the file"


FLAG_CASES = {name.removeprefix("_case_"): case for name, case in dict(globals()).items() if name.startswith("_case_")}


@pytest.mark.parametrize("name", sorted(FLAG_CASES))
def test_a_bad_flag_is_one_line_exit_2_before_any_work(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, message = FLAG_CASES[name](tmp_path)
    capsys.readouterr()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    try:
        status = main(args)
    except SystemExit as exc:  # the parser's own checks (--threads, --bootstrap, --rows) exit there
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
