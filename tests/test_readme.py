"""Every command the README shows runs: each one as it reads there, with small settings, so the README cannot drift.

The commands are read from the README itself (its ```bash blocks, and the inline `nas-proxy ...` and `optuna ...`
commands), and each must have an entry in :data:`RUNS`: how it runs here in seconds (a tiny copy of the shipped
preset it names, flags appended after the README's own, which argparse lets win), or why it is not run. A command
added to the README without an entry, or an entry whose command left the README, fails
:func:`test_every_readme_command_has_a_run`. Commands that need FashionMNIST use the real data at
``$NAS_PROXY_TEST_DATA`` and skip without it; the PostgreSQL one uses ``$NAS_PROXY_TEST_POSTGRES``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from presets import write_preset

from nas_proxy import NasProxyError, load_study
from nas_proxy.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONVERGED = "../shared/reference/fashion_mnist_converged.csv"  # as the README names it, from the repository root
SMALL = "d1-w8-relu-instancenorm-avgpool"  # a network that trains and scores in milliseconds
COMMANDS = tuple(build_parser()._subparsers._group_actions[0].choices)  # every sub-command, for `COMMAND --help`

# The shipped presets' tiny copies: the same tables and keys, each count cut to seconds. A copy keeps its study's name,
# so its files land where the README says (runs/<name>).
_CONDENSE = {"iterations": 2, "batch_real": 8, "embed_arch": SMALL}
TINY = {
    "quickstart": {
        "condense": _CONDENSE,
        "training": {"epochs": 2},
        "reference": {"steps": 2, "sample": 6},
        "study": {"n_trials": 6},
    },
    # The imported reference's protocol cut to 50 steps of 8 images, so `short` trains 1 or 2 steps; 120 validation
    # images to score on; one zero-cost feature, which halves the subsets every calibration tries (most of the time).
    "fashion_mnist": {
        "data": {"val_fraction": 0.002},
        "condense": _CONDENSE,
        "training": {"epochs": 1},
        "reference": {"steps": 50, "batch_size": 8},
        "score": {"batch_size": 8, "features": ["grad_norm"]},
    },
    # The same data; the anchor cut to 5 architectures and short training to 7 optimiser steps.
    "fashion_mnist_noref": {
        "data": {"val_fraction": 0.002},
        "reference": {"steps": 50, "batch_size": 8},
        "score": {"batch_size": 8, "short_epochs": 0.001, "anchor": 5},
    },
    # The shared data holds no CIFAR-10: the command is here for its database and its workers, on digits, eager (a
    # CPU compilation takes most of a minute; tests/method covers compiled training).
    "cifar10_dm_ipc50": {
        "data": {"dataset": "digits"},
        "condense": {**_CONDENSE, "ipc": 2, "compile": False},
        "training": {"epochs": 1, "compile": False},
        "reference": {"steps": 2},
        "study": {"n_trials": 6},
    },
}
PRESET_COMMANDS = ("search", "reference", "report", "compare", "frontier")
NEEDS = ("", "data", "postgres")  # what a README command reads: nothing (digits), FashionMNIST, a PostgreSQL server


@dataclasses.dataclass(frozen=True)
class Run:
    """How a README command runs here: its tokens with ``replace`` applied (a string: the tokens it splits into; a
    tuple: one run per item), then ``append``; ``needs`` names what it reads ("data", "postgres" or nothing)."""

    append: tuple[str, ...] = ()
    replace: dict[str, str | tuple[str, ...]] = dataclasses.field(default_factory=dict)
    needs: str = ""


@dataclasses.dataclass(frozen=True)
class Skip:
    """A README command this test does not run, and why."""

    why: str


_CI = Skip("CI installs the package itself (.ci/run), from nothing")
_SERVER = Skip("a web server: it serves until it is stopped")
_NO_BOOT = ("--bootstrap", "0")  # intervals are tested elsewhere; here the command's path
_FM = ("--val-fraction", "0.002")  # the fashion_mnist commands' data: 120 validation images
RUNS: dict[str, Run | Skip] = {
    # In the order they run: a command reads what the ones before it wrote, as a reader following the README does.
    "pip install torch==2.13.0": _CI,
    'pip install -e ".[plot]"': _CI,
    'pip install -e ".[test]"': _CI,
    'pip install -e ".[images]"': _CI,
    "python -m pytest -q": Skip("the suite this test belongs to: CI runs it"),
    "nas-proxy --help": Run(),
    "nas-proxy COMMAND --help": Run(replace={"COMMAND": COMMANDS}),
    "nas-proxy search quickstart": Run(),
    "nas-proxy reference quickstart --archs 40": Run(append=("--archs", "8")),  # every command after scores them
    "optuna trials --study-name quickstart --storage runs/quickstart/study.journal": Run(),
    "optuna-dashboard runs/quickstart/study.journal": _SERVER,
    "optuna-dashboard": _SERVER,
    # The issue 34 command: 5% of the shipped quickstart's 50-epoch reference (2.5 passes) stopped at "[score].
    # short_epochs = 2.5 must be whole above 1"; here 2% and 5% of the tiny copy's steps
    "nas-proxy frontier": Run(
        append=("quickstart", "--families", "zero-cost,short", "--short", "0.02,0.05", *_NO_BOOT)
    ),
    "nas-proxy frontier PRESET": Run(replace={"PRESET": "quickstart"}, append=("--families", "zero-cost", "--no-plot")),
    # Mentions of a command with its defaults: run with the one flag it requires, --out
    "nas-proxy condense": Run(append=("--iterations", "2", "--batch-real", "8", "--out", "runs/digits.pt")),
    "nas-proxy condense --compile auto": Run(append=("--iterations", "2", "--batch-real", "8", "--out", "runs/d.pt")),
    "nas-proxy search my_study.toml": Run(),
    # "Your own data": the README's my_images.toml with TINY's quickstart values, on generated PNGs (_own_images)
    "nas-proxy search my_images.toml": Run(),
    "nas-proxy report my_images.toml": Run(append=_NO_BOOT),
    "nas-proxy reference fashion_mnist --data-root DIR --import ../shared/reference/fashion_mnist_converged.csv": Run(
        needs="data"
    ),
    "nas-proxy search fashion_mnist --data-root DIR --n-trials 60": Run(append=("--n-trials", "4"), needs="data"),
    "nas-proxy report fashion_mnist": Run(append=_NO_BOOT, needs="data"),
    "nas-proxy search fashion_mnist_noref --data-root DIR --n-trials 60": Run(append=("--n-trials", "3"), needs="data"),
    "nas-proxy frontier fashion_mnist --data-root DIR --families zero-cost,subset,dm,short,calibrated --ipc 10 "
    "--short 0.02,0.05": Run(append=("--fit-sizes", "10", *_NO_BOOT), needs="data"),
    "nas-proxy frontier fashion_mnist ...": Run(
        replace={"...": "--data-root DIR --families zero-cost --no-plot"}, needs="data"
    ),
    "nas-proxy compare fashion_mnist --data-root DIR --proxies factors,calibrated,grad_norm,naswot,subset": Run(
        append=_NO_BOOT, needs="data"
    ),
    "export NAS_PROXY_DATA=/path/to/data": Run(needs="data"),
    "nas-proxy condense --dataset fashion_mnist --ipc 10 --iterations 200 --out runs/fm_ipc10.pt": Run(
        append=("--iterations", "2", "--batch-real", "8", "--embed-arch", SMALL, *_FM), needs="data"
    ),
    "nas-proxy train --dataset fashion_mnist --arch d3-w128-relu-instancenorm-avgpool --train runs/fm_ipc10.pt "
    "--epochs 300 --json": Run(append=("--arch", SMALL, "--epochs", "1", *_FM), needs="data"),
    "nas-proxy train --dataset fashion_mnist --train subset:10 --epochs 300": Run(
        append=("--arch", SMALL, "--epochs", "1", *_FM), needs="data"
    ),
    "nas-proxy train --dataset fashion_mnist --train full --epochs 2": Run(
        append=("--arch", SMALL, "--steps", "2", *_FM), needs="data"
    ),
    "nas-proxy search cifar10_dm_ipc50 --storage postgresql://user@host/db --workers 4": Run(
        append=("--workers", "2"), needs="postgres"
    ),
}


def readme_commands(text: str) -> list[str]:
    """Every command the README shows: each line of its ```bash blocks (continuations joined, comments and
    prompts' `&&` chains split), then each inline `nas-proxy ...`, `optuna ...` or `optuna-dashboard ...`."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"\s#", line)[0].split("&&"):
                commands.append(" ".join(part.split()))
    commands += re.findall(r"`((?:nas-proxy|optuna|optuna-dashboard)(?: [^`]*)?)`", text)
    return list(dict.fromkeys(command for command in commands if command))


def _toml(tables: dict) -> str:
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return f"[{', '.join(map(value, v))}]"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items()) for name, table in tables.items()
    )


def _tiny(preset: str, changes: dict) -> str:
    """The TOML text ``preset`` with ``changes`` (one of :data:`TINY`'s) applied, table by table."""
    tables = tomllib.loads(preset)
    for table, values in changes.items():
        tables.setdefault(table, {}).update(values)
    return _toml(tables)


def _tiny_presets(folder: Path) -> dict[str, Path]:
    """The shipped presets with :data:`TINY`'s values, written to ``folder``."""
    paths = {}
    for name, changes in TINY.items():
        paths[name] = folder / f"{name}.toml"
        paths[name].write_text(_tiny((REPO / "studies" / f"{name}.toml").read_text(), changes))
    return paths


def _own_images(folder: Path) -> None:
    """The README's "Your own data": its ```toml preset with TINY's quickstart values, and my_images/ beside it (3
    classes of 20 generated PNGs)."""
    from PIL import Image  # the images extra, in the test extra too

    text = README.read_text()
    preset = re.search(r"```toml\n(.*?)```", text[text.index("## Your own data") :], re.S).group(1)
    (folder / "my_images.toml").write_text(_tiny(preset, TINY["quickstart"]))
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "fish"):
        (images := folder / "my_images" / name).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(images / f"{i}.png")


def _argvs(command: str, run: Run, presets: dict[str, Path], values: dict[str, str]) -> list[list[str]]:
    """The argument lists ``command`` runs as (one per item of a tuple in ``run.replace``)."""
    tokens = shlex.split(command)
    variants = [[]]
    for token in tokens:
        new = run.replace.get(token, token)
        options = [new] if isinstance(new, str) else list(new)
        variants = [
            [*done, *(values.get(t, t) for t in shlex.split(option))] for done in variants for option in options
        ]
    argvs = [[*argv, *run.append] for argv in variants]
    for argv in argvs:
        if argv[0] == "nas-proxy" and len(argv) > 2 and argv[1] in PRESET_COMMANDS and argv[2] in presets:
            argv[2] = str(presets[argv[2]])
    return argvs


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and the end of stderr: ``nas-proxy`` in this process (no second torch import), the rest as
    processes."""
    if argv[0] == "nas-proxy":
        try:
            status = main(argv[1:])
        except SystemExit as exc:  # --help
            status = exc.code
        return status, capsys.readouterr().err[-2000:]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr[-2000:]


def test_every_readme_command_has_a_run():
    commands = readme_commands(README.read_text())
    assert "nas-proxy search quickstart" in commands and len(commands) > 20  # the reader found them
    missing = [command for command in commands if command not in RUNS]
    stale = [command for command in RUNS if command not in commands]
    assert not missing, f"README commands with no entry in tests/test_readme.py RUNS: {missing}"
    assert not stale, f"RUNS entries whose command is no longer in the README: {stale}"
    unknown = {run.needs for run in RUNS.values() if isinstance(run, Run)} - set(NEEDS)
    assert not unknown, f"RUNS entries that need {unknown}, which no run of test_readme_commands_run provides"


@pytest.mark.parametrize("needs", NEEDS, ids=["digits", "fashion_mnist", "postgres"])
def test_readme_commands_run(needs, tmp_path, monkeypatch, capsys, request):
    values = {}
    if needs == "data":
        data = request.getfixturevalue("shared_data")  # skips without it
        values.update({"DIR": str(data), "/path/to/data": str(data)})
        converged = REPO / CONVERGED
        if not converged.is_file():
            pytest.skip(f"the shared reference table {CONVERGED} is not beside the repository")
        # 10 of its 50 architectures, both seeds: a calibration's 8 in each training fold of 5, in seconds
        table = pd.read_csv(converged)
        small = tmp_path / "converged.csv"
        table[table["arch"].isin(table["arch"].unique()[:10])].to_csv(small, index=False)
        values[CONVERGED] = str(small)
    if needs == "postgres":
        if not os.environ.get("NAS_PROXY_TEST_POSTGRES"):
            pytest.skip("set NAS_PROXY_TEST_POSTGRES to a PostgreSQL URL")
        values["postgresql://user@host/db"] = url = os.environ["NAS_PROXY_TEST_POSTGRES"]
        with contextlib.suppress(KeyError):  # an earlier run's study, whose artifacts were in its own tmp_path
            optuna.delete_study(study_name="cifar10_dm_ipc50", storage=url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAS_PROXY_DATA", raising=False)
    write_preset(tmp_path, name="my_study")  # "a preset of your own"
    _own_images(tmp_path)
    presets = _tiny_presets(tmp_path)
    failed = []
    for command, run in RUNS.items():
        if not isinstance(run, Run) or run.needs != needs:
            continue
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            monkeypatch.setenv(name, values.get(value, value))
            continue
        for argv in _argvs(command, run, presets, values):
            status, err = _run(argv, capsys)
            if status != 0:
                failed.append(f"{shlex.join(argv)}: exit {status}\n{err}")
    assert not failed, "README commands that fail:\n" + "\n".join(failed)


def test_a_study_read_from_another_folder_says_where_it_looked(tmp_path, monkeypatch, capsys):
    """Presets are found from any folder, a study's files are under the folder `search` ran in: from elsewhere the
    commands that read it name the folder they looked in and how to reach the study, never a hint to start it."""
    monkeypatch.chdir(tmp_path)
    looked = tmp_path / "runs" / "quickstart"
    reads = {
        "no study yet": (["report", "quickstart"], ["reference", "quickstart", "--archs", "top-3"]),
        "no reference table": (
            ["compare", "quickstart", "--proxies", "grad_norm", "--no-progress"],
            ["frontier", "quickstart", "--families", "zero-cost", "--no-progress"],
        ),
    }
    for missing, argvs in reads.items():
        for argv in argvs:
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"error: {missing} in {looked}: " in err, err
            assert "run from that folder" in err and "[study].out_dir" in err, err
            assert "search quickstart" not in err and "--archs" not in err, err  # no hint that starts it again
    with pytest.raises(NasProxyError, match=f"no study yet in {re.escape(str(looked))}: .* run from that folder"):
        load_study("quickstart")
    assert not (tmp_path / "runs").exists()  # reading creates nothing


def _python_calls(text: str) -> list[tuple[str, ast.Call]]:
    """Every call in the README's ```python blocks and in its inline code that reads as Python, with its source."""
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    inline = [code for code in re.findall(r"`([^`\n]+\(.*?\))`", text) if not code.startswith(("nas-proxy", "pip"))]
    calls = []
    for source in [*blocks, *inline]:
        with contextlib.suppress(SyntaxError):
            calls += [(ast.unparse(node), node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    return calls


def test_readme_python_calls_match_the_api():
    """Each package function the README calls takes the arguments it is shown with (a signature that changed and
    a README that did not fail here); ``f(...)`` stands for any arguments."""
    import nas_proxy
    import nas_proxy.artifacts
    import nas_proxy.method
    import nas_proxy.study

    api = {}
    for module in (nas_proxy, nas_proxy.artifacts, nas_proxy.method, nas_proxy.study):
        api |= {name: getattr(module, name) for name in dir(module) if callable(getattr(module, name))}
    checked = []
    for source, call in _python_calls(README.read_text()):
        name = call.func.id if isinstance(call.func, ast.Name) else None
        if (
            name not in api
            or name[0].isupper()
            or any(isinstance(a, ast.Constant) and a.value is ... for a in call.args)
        ):
            continue
        try:
            inspect.signature(api[name]).bind(*call.args, **{k.arg: k.value for k in call.keywords if k.arg})
        except TypeError as exc:
            pytest.fail(f"README: {source}: {exc}")
        checked.append(name)
    assert {"reference_table_path", "run_reference", "run_search", "make_report"} <= set(checked)
