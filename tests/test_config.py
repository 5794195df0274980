"""One config per stage (issue 15): the [data] table, what each config refuses, artifact keys from resolved settings."""

import dataclasses
import json

import pytest
import torch
from presets import write_preset

from nas_proxy import NasProxyError, _accel, load_dataset, load_preset, make_proxy, open_study, run_search
from nas_proxy.artifacts import (
    _adopt_legacy_set,
    _legacy_set_path,
    condensed_set_path,
    get_condensed_set,
    score_table_path,
)
from nas_proxy.cli import main
from nas_proxy.config import ReferenceConfig
from nas_proxy.data import DataConfig
from nas_proxy.method import CondensedSet, checkpoint_path
from nas_proxy.study._search import record_proxy


def _data_preset(tmp_path, data_table, study_keys=""):
    path = tmp_path / "data.toml"
    path.write_text(f'[study]\nname = "d"\nout_dir = "{tmp_path / "out"}"\n{study_keys}\n[data]\n{data_table}\n')
    return path


def test_the_data_table_and_the_older_study_keys_read_the_same(tmp_path):
    new = load_preset(_data_preset(tmp_path, 'dataset = "digits"\nval_fraction = 0.2\nsplit_seed = 3'))
    old_keys = 'dataset = "digits"\nval_fraction = 0.2\nsplit_seed = 3'
    with pytest.warns(
        FutureWarning, match=r"data.toml: \[study\] dataset, val_fraction, split_seed belong in \[data\]"
    ):
        old = load_preset(_data_preset(tmp_path, "", study_keys=old_keys))
    assert new.data == old.data == DataConfig("digits", 0.2, 3)
    with pytest.raises(NasProxyError, match=r"data.toml: split_seed is set in both \[data\] and \[study\]"):
        load_preset(_data_preset(tmp_path, "split_seed = 1", study_keys="split_seed = 2"))
    with pytest.raises(NasProxyError, match=r"data.toml: \[data\].val_fraction must be a number in \[0, 1\), got 1.5"):
        load_preset(_data_preset(tmp_path, "val_fraction = 1.5"))
    with pytest.raises(NasProxyError, match=r"\[data\].val_fraction must be above 0: a study scores its candidates"):
        load_preset(_data_preset(tmp_path, "val_fraction = 0"))
    assert len(load_dataset("digits", val_fraction=0).val) == 0  # the same rule, and data to train on only


def test_a_stage_refuses_data_loaded_for_another_split(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path, data="split_seed = 1"))
    with pytest.raises(NasProxyError, match=r"split_seed 0\) but the preset asks for digits .*split_seed 1\)"):
        run_search(preset, digits, n_trials=1, progress=False, verbose=False)
    assert load_dataset(preset.data).fingerprint != digits.fingerprint


def test_an_old_proxy_table_loads_as_training_with_one_line(tmp_path, capsys):
    """Issue 24: "proxy" names a scoring rule only; the table of how a candidate trains is [training]."""
    new = load_preset(write_preset(tmp_path))
    old_path = tmp_path / "old.toml"
    old_path.write_text(write_preset(tmp_path).read_text().replace("[training]", "[proxy]"))
    with pytest.warns(FutureWarning, match=r"old.toml: \[proxy\] is now \[training\]; rename the table"):
        old = load_preset(old_path)
    assert old.training == new.training and old.training.epochs == 2
    both = tmp_path / "both.toml"
    both.write_text(old_path.read_text() + "\n[training]\nepochs = 3\n")
    with pytest.raises(NasProxyError, match=r"both \[proxy\] and \[training\]; \[proxy\] is the old name"):
        load_preset(both)
    bad = tmp_path / "bad.toml"
    bad.write_text(old_path.read_text().replace("epochs = 2\n\n[reference]", "epochs = 0\n\n[reference]", 1))
    assert main(["search", str(bad), "--n-trials", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"warning: {bad}: [proxy] is now [training]; rename the table"
    assert err[1] == f"error: {bad}: [training].epochs must be positive, got 0"  # the error names the new table


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
        proxy = make_proxy("random", preset, digits)
        return score_table_path(preset, proxy.name, proxy.measured_settings(), digits)

    _bf16(monkeypatch, False)
    assert path(auto) == path(fp32) != path(bf16)  # "auto" runs fp32 here: one computation, one entry
    _bf16(monkeypatch, True)
    assert path(auto) == path(bf16) != path(fp32)


def test_condensed_set_keys_hold_the_precision_and_old_names_stay_readable(tmp_path, digits, monkeypatch):
    preset = load_preset(write_preset(tmp_path))
    _bf16(monkeypatch, False)
    fp32 = dataclasses.replace(preset, condense=dataclasses.replace(preset.condense, precision="fp32"))
    assert condensed_set_path(preset, digits) == condensed_set_path(fp32, digits)
    legacy = _legacy_set_path(preset, digits)
    assert legacy is not None and legacy != condensed_set_path(preset, digits)
    assert _legacy_set_path(fp32, digits) is None  # explicit settings kept their names

    made = get_condensed_set(preset, digits, progress=False)
    condensed_set_path(preset, digits).rename(legacy)  # a set cached before the fix, with its grid
    condensed_set_path(preset, digits).with_suffix(".png").rename(legacy.with_suffix(".png"))
    adopted = get_condensed_set(preset, digits, progress=False)
    assert not legacy.exists() and condensed_set_path(preset, digits).is_file()
    assert condensed_set_path(preset, digits).with_suffix(".png").is_file() and not legacy.with_suffix(".png").exists()
    assert adopted.meta["seconds"] == made.meta["seconds"]  # the same set, renamed, not condensed again

    condensed_set_path(preset, digits).rename(legacy)
    blob = CondensedSet.load(legacy, digits)
    blob.meta["precision"] = "bf16"  # made where "auto" meant bf16: not this machine's set
    blob.save(legacy, png=False)
    rebuilt = get_condensed_set(preset, digits, progress=False)
    assert legacy.exists() and rebuilt.meta["precision"] == "fp32"


def test_a_study_begun_under_the_old_set_name_continues(tmp_path, digits, monkeypatch):
    preset = load_preset(write_preset(tmp_path))
    _bf16(monkeypatch, False)
    study = open_study(preset)
    proxy = make_proxy("dm", preset, digits)
    old = json.loads(
        json.dumps(proxy.settings).replace(
            condensed_set_path(preset, digits).name, _legacy_set_path(preset, digits).name
        )
    )
    study.set_user_attr("proxy", old)  # what a study recorded before the fix
    proxy = make_proxy("dm", preset, digits, study=study)  # getting the study's set brings its record up to date
    assert study.user_attrs["proxy"] == json.loads(json.dumps(proxy.settings))
    record_proxy(study, preset, proxy)  # accepted: the same set under its new name
    other = dataclasses.replace(preset, training=dataclasses.replace(preset.training, epochs=3))
    with pytest.raises(NasProxyError, match="scored by another proxy"):
        record_proxy(study, other, make_proxy("dm", other, digits, study=study))


def test_a_study_shares_its_old_named_set_and_an_interrupted_run_continues(tmp_path, digits, monkeypatch):
    preset = load_preset(write_preset(tmp_path))
    _bf16(monkeypatch, False)
    path, legacy = condensed_set_path(preset, digits), _legacy_set_path(preset, digits)
    study = open_study(preset)
    published = get_condensed_set(preset, digits, progress=False, study=study)
    record = study.user_attrs[f"artifact:{path.name}"]
    other = open_study(dataclasses.replace(preset, study=dataclasses.replace(preset.study, name="old")))
    other.set_user_attr(f"artifact:{legacy.name}", record)  # shared under the old name by the previous version
    again = get_condensed_set(preset, digits, progress=False, study=other)
    assert other.user_attrs[f"artifact:{path.name}"] == record and torch.equal(again.images, published.images)

    checkpoint = checkpoint_path(path)
    path.unlink()
    torch.save({"compiled": False, "iteration": 1}, checkpoint_path(legacy))  # an interrupted run
    _adopt_legacy_set(preset, digits)
    assert checkpoint.is_file() and not checkpoint_path(legacy).exists()
