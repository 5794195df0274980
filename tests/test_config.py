"""One config per stage: the [data] table, what each config refuses, artifact keys from resolved settings."""

import dataclasses

import pytest
from presets import write_preset

from nas_proxy import NasProxyError, _accel, load_dataset, load_preset, make_proxy, run_search
from nas_proxy.artifacts import (
    condensed_set_path,
    score_table_path,
)
from nas_proxy.cli import main
from nas_proxy.config import ReferenceConfig
from nas_proxy.data import DataConfig


def _data_preset(tmp_path, data_table, study_keys=""):
    path = tmp_path / "data.toml"
    path.write_text(f'[study]\nname = "d"\nout_dir = "{tmp_path / "out"}"\n{study_keys}\n[data]\n{data_table}\n')
    return path


def test_the_data_table_is_checked_and_an_old_layout_is_one_line(tmp_path, capsys):
    preset = load_preset(_data_preset(tmp_path, 'dataset = "digits"\nval_fraction = 0.2\nsplit_seed = 3'))
    assert preset.data == DataConfig("digits", 0.2, 3)
    with pytest.raises(NasProxyError, match=r"data.toml: \[data\].val_fraction must be a number in \[0, 1\), got 1.5"):
        load_preset(_data_preset(tmp_path, "val_fraction = 1.5"))
    with pytest.raises(NasProxyError, match=r"\[data\].val_fraction must be above 0: a study scores its candidates"):
        load_preset(_data_preset(tmp_path, "val_fraction = 0"))
    assert len(load_dataset("digits", val_fraction=0).val) == 0  # the same rule, and data to train on only
    # A layout of an earlier version is refused before any work, naming what is allowed instead.
    with pytest.raises(NasProxyError, match=r"data.toml: \[study\]: unknown key 'dataset'; allowed keys are "):
        load_preset(_data_preset(tmp_path, "", study_keys='dataset = "digits"'))
    old = tmp_path / "old.toml"
    old.write_text(write_preset(tmp_path).read_text().replace("[training]", "[proxy]"))
    assert main(["search", str(old), "--n-trials", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {old}: unknown table [proxy]; allowed tables are [data], [study], [condense], [training], "
        "[score], [reference]"
    ]


def test_a_stage_refuses_data_loaded_for_another_split(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path, data="split_seed = 1"))
    with pytest.raises(NasProxyError, match=r"split_seed 0\) but the preset asks for digits .*split_seed 1\)"):
        run_search(preset, digits, n_trials=1, progress=False, verbose=False)
    assert load_dataset(preset.data).fingerprint != digits.fingerprint


def test_the_reference_names_its_precision(tmp_path):
    with pytest.raises(NasProxyError, match=r"\[reference\].precision = \"auto\" trains in bf16 on some machines"):
        load_preset(write_preset(tmp_path, reference='precision = "auto"'))
    assert ReferenceConfig().training.precision == "fp32"


def _bf16(monkeypatch, native):
    monkeypatch.setattr(_accel, "native_bf16", lambda device_type: native)


def test_score_keys_hold_the_precision_that_runs(tmp_path, digits, monkeypatch):
    auto = load_preset(write_preset(tmp_path))  # [training] precision = "auto"
    fp32 = dataclasses.replace(auto, training=dataclasses.replace(auto.training, precision="fp32"))
    bf16 = dataclasses.replace(auto, training=dataclasses.replace(auto.training, precision="bf16"))

    def path(preset):
        proxy = make_proxy("subset", preset, digits)
        return score_table_path(preset.study.output, proxy.name, proxy.measured_settings(), digits)

    _bf16(monkeypatch, False)
    assert path(auto) == path(fp32) != path(bf16)  # "auto" runs fp32 here: one computation, one entry
    _bf16(monkeypatch, True)
    assert path(auto) == path(bf16) != path(fp32)


def test_condensed_set_keys_hold_the_precision_that_runs(tmp_path, digits, monkeypatch):
    """``precision = "auto"`` shares a set with the precision it runs in here: one computation, one entry."""
    preset = load_preset(write_preset(tmp_path))
    fp32 = dataclasses.replace(preset, condense=dataclasses.replace(preset.condense, precision="fp32"))
    bf16 = dataclasses.replace(preset, condense=dataclasses.replace(preset.condense, precision="bf16"))
    _bf16(monkeypatch, False)
    assert (
        condensed_set_path(preset.condense, digits, preset.study.output)
        == condensed_set_path(fp32.condense, digits, fp32.study.output)
        != condensed_set_path(bf16.condense, digits, bf16.study.output)
    )
