"""Every number a config holds is finite and within a range that names its limit; a study's name is one folder."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import typing
from pathlib import Path

import pytest
import torch
from presets import write_preset

from nas_proxy import NasProxyError, load_preset, load_search_space
from nas_proxy.cli import main
from nas_proxy.config import DataConfig, ReferenceConfig, ScoreConfig, StudyConfig
from nas_proxy.errors import ConfigError
from nas_proxy.method import CondenseConfig, CondensedSet, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = {
    DataConfig: "[data]",
    CondenseConfig: "[condense]",
    TrainConfig: "[training]",
    ScoreConfig: "[score]",
    ReferenceConfig: "[reference]",
    StudyConfig: "[study]",
}
REQUIRED = {StudyConfig: {"name": "x"}}
SEED_FIELDS = [
    (DataConfig, "split_seed"),
    (CondenseConfig, "seed"),
    (TrainConfig, "seed"),
    (ReferenceConfig, "sample_seed"),
    (StudyConfig, "sampler_seed"),
]


def _fields(kind: type) -> list[tuple[type, str]]:
    return [
        (cls, f.name) for cls in SECTIONS for f in dataclasses.fields(cls) if typing.get_type_hints(cls)[f.name] is kind
    ]


def _build(cls: type, **values):
    return cls(**{**REQUIRED.get(cls, {}), **values})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("cls, name", _fields(float), ids=lambda x: getattr(x, "__name__", x))
def test_every_float_field_refuses_nan_and_inf(cls, name, value):
    with pytest.raises(ConfigError) as error:
        _build(cls, **{name: value})
    assert str(error.value) == f"{SECTIONS[cls]}.{name} must be a finite number, got {value!r}"


def test_every_number_has_a_range_and_the_shipped_presets_keep_within_them():
    numbers = _fields(int) + _fields(float)
    assert len(numbers) > 30
    unbounded = [
        f"{cls.__name__}.{name}" for cls, name in numbers if "bounds" not in cls.__dataclass_fields__[name].metadata
    ]
    # val_fraction keeps its own rule (data._config.val_fraction_problem), shared with load_dataset's argument
    assert unbounded == ["DataConfig.val_fraction"], f"numeric config fields without a range: {unbounded}"
    for path in [*ROOT.glob("studies/*.toml"), *ROOT.glob("benchmarks/presets/*.toml")]:
        load_preset(path)
    for path in ROOT.glob("search_spaces/*.toml"):
        load_search_space(path).archs()


# A value past each limit says which limit and why, in one line; typos such as 10**9 no longer run for ever.
LIMITS = [
    (TrainConfig, {"epochs": 10**9}, r"\[training\].epochs must be at most 100000 \(100 times the paper's 1000; "),
    (TrainConfig, {"steps": 10**9}, r"\[training\].steps must be at most 10000000 \(longer would run for weeks\)"),
    (TrainConfig, {"batch_size": 10**9}, r"\[training\].batch_size must be at most 65536 \(a larger batch exhausts"),
    (TrainConfig, {"eval_batch_size": 10**9}, r"\[training\].eval_batch_size must be at most 65536"),
    (TrainConfig, {"threads": 10**12}, r"\[training\].threads must be at most 1024 \(more than any machine's"),
    (TrainConfig, {"jobs": 10**12}, r"\[training\].jobs must be at most 1024"),
    (TrainConfig, {"weight_decay": -5}, r"^\[training\].weight_decay must be >= 0, got -5.0$"),
    (TrainConfig, {"momentum": 1}, r"^\[training\].momentum must be between 0 and 1 \(1 excluded\), got 1.0$"),
    (TrainConfig, {"momentum": -0.5}, r"\[training\].momentum must be between 0 and 1 \(1 excluded\), got -0.5"),
    (TrainConfig, {"lr": 1e300}, r"\[training\].lr must be at most 3.40.*e\+38 \(the largest float32"),
    (TrainConfig, {"lr": 10**400}, r"\[training\].lr must be a finite number, got 1000000000.*\.\.\.$"),
    (CondenseConfig, {"ipc": 10**9}, r"\[condense\].ipc must be at most 10000 \(no class of a supported data set"),
    (CondenseConfig, {"iterations": 10**9}, r"\[condense\].iterations must be at most 1000000 \(50 times the paper's"),
    (CondenseConfig, {"lr_img": 1e39}, r"\[condense\].lr_img must be at most 3.40.*e\+38"),
    (CondenseConfig, {"batch_real": 10**9}, r"\[condense\].batch_real must be at most 65536"),
    (CondenseConfig, {"real_chunk": 10**9}, r"\[condense\].real_chunk must be at most 65536"),
    (ScoreConfig, {"seeds": 10**9}, r"\[score\].seeds must be at most 100 \(100 already measure a mean"),
    (ScoreConfig, {"short_epochs": 1e9}, r"\[score\].short_epochs must be at most 100000"),
    (ScoreConfig, {"batch_size": 10**9}, r"\[score\].batch_size must be at most 65536"),
    (ReferenceConfig, {"seeds": 10**9}, r"\[reference\].seeds must be at most 100"),
    (StudyConfig, {"n_trials": 10**9}, r"\[study\].n_trials must be at most 100000 \(more than Optuna's samplers"),
    (StudyConfig, {"heartbeat_interval": 10**20}, r"\[study\].heartbeat_interval must be at most 86400 \(a day"),
    (StudyConfig, {"grace_period": 10**20}, r"\[study\].grace_period must be at most 86400"),
    (StudyConfig, {"reconnect_timeout": 10**20}, r"\[study\].reconnect_timeout must be at most 86400"),
    (StudyConfig, {"max_retry": 10**9}, r"\[study\].max_retry must be at most 100"),
]


@pytest.mark.parametrize("cls, values, message", LIMITS, ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_a_value_past_its_limit_names_the_limit_and_why(cls, values, message):
    with pytest.raises(ConfigError, match=message) as error:
        _build(cls, **values)
    assert len(str(error.value)) < 250  # a huge value is not echoed whole


@pytest.mark.parametrize("cls, name", SEED_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_every_seed_is_one_torch_numpy_and_optuna_accept(cls, name):
    assert getattr(_build(cls, **{name: 2**31 - 1}), name) == 2**31 - 1
    for bad, problem in [(-1, "must be >= 0, got -1"), (2**31, "must be at most 2147483647 (what torch, numpy")]:
        with pytest.raises(ConfigError) as error:
            _build(cls, **{name: bad})
        assert str(error.value).startswith(f"{SECTIONS[cls]}.{name} {problem}")


def test_the_seeds_after_the_first_fit_too(tmp_path):
    with pytest.raises(NasProxyError, match=r"\[reference\].seed = 2147483647 leaves no room for the 3 seeds"):
        ReferenceConfig.from_dict({"seed": 2**31 - 1, "seeds": 3}, "x.toml: [reference]")
    assert ReferenceConfig.from_dict({"seed": 2**31 - 3, "seeds": 3}).seed_values[-1] == 2**31 - 1
    path = write_preset(tmp_path)
    path.write_text(path.read_text().replace("[training]\n", "[score]\nseeds = 2\n[training]\nseed = 2147483647\n"))
    with pytest.raises(NasProxyError, match=rf"^{re.escape(str(path))}: \[training\].seed = 2147483647 leaves no room"):
        load_preset(path)


# Names the tests and the shipped presets use stay valid.
NAMES_IN_USE = ["tiny", "killed_1a2b3c4d", "load_0a1b2c3d", "bench_dm_2k", "v1.2-final", "x" * 128]


@pytest.mark.parametrize("name", ["../../x", "..", ".", "a/b", "a\x00b", "x" * 300, "-rf", ".hidden", "a b"])
def test_a_study_name_must_be_one_plain_folder(name):
    with pytest.raises(ConfigError, match=r"^\[study\].name = .* is not a plain folder name \(it names runs/<name>"):
        StudyConfig(name=name)
    assert [StudyConfig(name=good).output for good in NAMES_IN_USE] == [Path("runs") / good for good in NAMES_IN_USE]


# ------------------------------------------------------------------ the command line: one line, exit 2, nothing written


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _preset(tmp_path: Path, old: str, new: str) -> list[str]:
    path = write_preset(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return ["search", str(path)]


def _space(tmp_path: Path, depth: str) -> list[str]:
    space = tmp_path / "space.toml"
    space.write_text(
        f'name = "deep"\n[choices]\ndepth = {depth}\nwidth = [8]\nactivation = ["relu"]\nnorm = ["none"]\n'
        'pooling = ["none"]\n'
    )
    return ["search", str(write_preset(tmp_path, space=str(space)))]


def _set(tmp_path: Path, images: torch.Tensor, labels: torch.Tensor) -> list[str]:
    meta = {"dataset": "digits", "num_classes": 10, "mean": [0.0], "std": [1.0]}
    path = CondensedSet(images, labels, meta).save(tmp_path / "set.pt", png=False)
    return ["train", "--train", str(path), "--epochs", "1"]


def _condense(*args: str) -> list[str]:
    tiny = ["--ipc", "2", "--iterations", "3", "--batch-real", "16", "--embed-arch", "d1-w8-relu-instancenorm-avgpool"]
    return ["condense", *tiny, *args, "--out", "set.pt"]


CLI_CASES = {
    "lr nan": (lambda tmp: ["train", "--lr", "nan"], r"^error: --lr must be a finite number, got nan$"),
    "lr inf": (lambda tmp: ["train", "--lr", "inf"], r"^error: --lr must be a finite number, got inf$"),
    "epochs 10**9": (lambda tmp: ["train", "--epochs", "1000000000"], r"--epochs must be at most 100000 \("),
    "wide arch": (
        lambda tmp: ["train", "--arch", "d1-w99999999-relu-none-none"],
        r"width must be at most 4096 \(16 times the widest network of the paper's space\), got 99999999",
    ),
    "split seed 10**20": (
        lambda tmp: ["train", "--split-seed", str(10**20)],
        r"^error: seed \(the split's: \[data\].split_seed, --split-seed\) must be at most 2147483647 \(",
    ),
    "split seed -1": (lambda tmp: ["train", "--split-seed", "-1"], r"--split-seed\) must be >= 0, got -1$"),
    "lr_img nan": (lambda tmp: _condense("--lr-img", "nan"), r"^error: --lr-img must be a finite number, got nan$"),
    "ipc 10**9": (lambda tmp: _condense("--ipc", "1000000000"), r"--ipc must be at most 10000 \(no class"),
    "iterations 10**9": (lambda tmp: _condense("--iterations", "1000000000"), r"--iterations must be at most"),
    "lr_img diverges": (
        lambda tmp: _condense("--lr-img", "1e30"),
        r"condensation diverged at iteration \d \(its matching loss is nan\).*lower \[condense\].lr_img \(now 1e\+30\)",
    ),
    "weight_decay -5": (
        lambda tmp: _preset(tmp, "[training]\n", "[training]\nweight_decay = -5\n"),
        r"\[training\].weight_decay must be >= 0, got -5.0$",
    ),
    "momentum nan": (
        lambda tmp: _preset(tmp, "[training]\n", "[training]\nmomentum = nan\n"),
        r"\[training\].momentum must be a finite number, got nan$",
    ),
    "reference seeds 10**9": (
        lambda tmp: write_preset(tmp, reference="seeds = 1000000000") and ["search", str(tmp / "tiny.toml")],
        r"\[reference\].seeds must be at most 100 \(",
    ),
    "name outside out_dir": (
        lambda tmp: _preset(tmp, 'name = "tiny"', 'name = "../../x"'),
        r"\[study\].name = '../../x' is not a plain folder name",
    ),
    "name ..": (lambda tmp: _preset(tmp, 'name = "tiny"', 'name = ".."'), r"name = '..' is not a plain folder"),
    "name with NUL": (
        lambda tmp: _preset(tmp, 'name = "tiny"', 'name = "a\\u0000b"'),
        r"name = 'a\\x00b' is not a plain folder",
    ),
    "name of 300 bytes": (
        lambda tmp: _preset(tmp, 'name = "tiny"', f'name = "{"x" * 300}"'),
        r"name = 'x{50,}\.\.\. is not a plain folder",
    ),
    "depth 10**20": (
        lambda tmp: _space(tmp, "[1, 100000000000000000000]"),
        r"choices.depth: every depth must be at most 16 \(4 times the deepest network of the paper's space\)",
    ),
    "set of NaN": (
        lambda tmp: _set(tmp, torch.full((20, 1, 16, 16), math.nan), torch.arange(10).repeat_interleave(2)),
        r"set.pt is not a readable nas-proxy condensed set \(its images hold NaN or infinite values\); re-create it",
    ),
    "set of inf": (
        lambda tmp: _set(tmp, torch.full((20, 1, 16, 16), math.inf), torch.arange(10).repeat_interleave(2)),
        r"its images hold NaN or infinite values",
    ),
    "set of one class": (
        lambda tmp: _set(tmp, torch.zeros(20, 1, 16, 16), torch.zeros(20, dtype=torch.long)),
        r"set.pt is not a readable nas-proxy condensed set \(images of one class only; a set needs at least 2\)",
    ),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_bad_numbers_and_names_are_one_line_exit_2_and_leave_files_untouched(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, message = CLI_CASES[name]
    argv = args(tmp_path)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(message, err.strip()), err
    assert _snapshot(tmp_path) == before
