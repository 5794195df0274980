import optuna
import pytest

from nas_proxy import NasProxyError, load_dataset
from nas_proxy.cli import main
from nas_proxy.study import condensed_set_path, load_preset, open_study, run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_preset(tmp_path, name="tiny", space="small", extra=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[study]
name = "{name}"
dataset = "digits"
search_space = "{space}"
sampler = "random"
n_trials = 6
out_dir = "{tmp_path / 'out'}"
{extra}
[condense]
ipc = 2
iterations = 3
batch_real = 16
embed_arch = "d1-w8-relu-instancenorm-avgpool"

[proxy]
epochs = 2
""")
    return path


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
    study = open_study(load_preset(preset))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 8 and len({t.number for t in study.trials}) == len(study.trials)
    assert len(list((tmp_path / "out" / "condensed").glob("*.pt"))) == 1
