import dataclasses
import math
import shutil

import optuna
import pandas as pd
import pytest
import torch
from presets import reference_path, train_reference, write_preset
from scipy import stats

import nas_proxy.method._train as train_module
from nas_proxy import (
    ArchSpec,
    NasProxyError,
    compare_proxies,
    load_preset,
    make_proxy,
    open_study,
    run_search,
    train_candidate,
)
from nas_proxy.artifacts import score_table_path
from nas_proxy.cli import main
from nas_proxy.config import BASE_PROXIES
from nas_proxy.method import TrainConfig, build_convnet, count_params
from nas_proxy.results._format import CEILING
from nas_proxy.scoring._cache import read_scores
from nas_proxy.scoring._zero_cost import grad_norm, naswot, synflow
from nas_proxy.study._search import record_proxy

optuna.logging.set_verbosity(optuna.logging.WARNING)
ARCH = ArchSpec.parse("d2-w16-relu-batchnorm-avgpool")


def _with_score(tmp_path, body: str):
    """The tiny preset with a [score] table holding ``body``."""
    path = write_preset(tmp_path)
    path.write_text(path.read_text() + f"\n[score]\n{body}\n")
    return path


def _net(digits, arch=ARCH, seed=0):
    return build_convnet(
        arch, digits.channels, digits.num_classes, digits.image_size, generator=torch.Generator().manual_seed(seed)
    )


# --- zero-cost scores -----------------------------------------------------------------------------


def test_synflow_depends_on_the_weights_not_the_batch(digits):
    net = _net(digits)
    assert synflow(net, digits.train.x[:8]) == synflow(net, digits.train.x[8:40])  # the input is all ones
    assert synflow(net, digits.train.x[:8]) != synflow(_net(digits, seed=1), digits.train.x[:8])
    wider = _net(digits, ArchSpec.parse("d2-w64-relu-batchnorm-avgpool"))
    assert synflow(wider, digits.train.x[:8]) > synflow(net, digits.train.x[:8])  # more paths, more flow


def test_naswot_rewards_telling_images_apart_and_sees_through_inplace_relu(digits):
    net = _net(digits)
    distinct = digits.train.x[:16]
    same = distinct[:1].expand(16, -1, -1, -1)
    assert math.isfinite(naswot(net, distinct)) and naswot(net, distinct) > naswot(net, same)
    assert naswot(net, same) == -math.inf  # 16 identical codes: K is singular
    # the codes are taken before the (in-place) activation: a sigmoid net, whose activation is not in place, agrees
    sig = ArchSpec.parse("d2-w16-sigmoid-batchnorm-avgpool")
    assert math.isfinite(naswot(_net(digits, sig), distinct))


def test_naswot_equals_its_formula(digits):
    net, x = _net(digits), digits.train.x[:12]
    codes = []
    copy = _net(digits).train()
    hooks = [
        m.register_forward_pre_hook(lambda _m, a: codes.append((a[0] > 0).flatten(1).double()))
        for m in copy.modules()
        if isinstance(m, torch.nn.ReLU)
    ]
    with torch.no_grad():
        copy(x)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, 1)
    expected = torch.linalg.slogdet(c @ c.T + (1 - c) @ (1 - c).T).logabsdet.item()
    assert naswot(net, x) == pytest.approx(expected)


def test_grad_norm_is_positive_and_leaves_the_network_untouched(digits):
    net = _net(digits)
    before = [p.clone() for p in net.parameters()]
    assert grad_norm(net, digits.train.x[:32], digits.train.y[:32]) > 0
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_zero_cost_scores_sum_over_conv_and_linear_weights_only(digits):
    """Norm affines are left out, LayerNorm's (C, H, W) weight as much as batch norm's (C,) one."""
    net = _net(digits, ArchSpec.parse("d2-w16-relu-layernorm-avgpool"))
    assert any(isinstance(m, torch.nn.LayerNorm) and m.weight.dim() == 3 for m in net.modules())
    x, y = digits.train.x[:32], digits.train.y[:32]
    copy = _net(digits, ArchSpec.parse("d2-w16-relu-layernorm-avgpool")).train()
    torch.nn.functional.cross_entropy(copy(x), y).backward()
    layers = [m for m in copy.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 3
    assert grad_norm(net, x, y) == pytest.approx(sum(float(m.weight.grad.norm()) for m in layers))


# --- proxies through one interface ----------------------------------------------------------------


@pytest.mark.parametrize("name", BASE_PROXIES)  # the fitted ones need a reference: tests/test_calibration.py
def test_every_proxy_scores_deterministically(tmp_path, digits, name):
    preset = load_preset(write_preset(tmp_path))
    proxy = make_proxy(name, preset, digits, progress=False)
    first, again = proxy.score(ARCH, 0), proxy.score(ARCH, 0)
    assert math.isfinite(first) and first == again


def test_params_proxy_counts_the_built_network(tmp_path, digits):
    proxy = make_proxy("params", load_preset(write_preset(tmp_path)), digits)
    assert proxy.score(ARCH, 0) == count_params(_net(digits))


def test_random_proxy_draws_a_new_subset_per_seed(tmp_path, digits, monkeypatch):
    sizes, subsets = [], []
    real = train_module.train_candidates

    def spy(archs, train, data, config, **kw):
        sizes.append(len(train))
        subsets.append(train.x.sum().item())
        return real(archs, train, data, config, **kw)

    import nas_proxy.scoring._proxies as proxies_module

    monkeypatch.setattr(proxies_module, "train_candidates", spy)
    preset = load_preset(write_preset(tmp_path))
    proxy = make_proxy("subset", preset, digits)
    proxy.score(ARCH, 0), proxy.score(ARCH, 1)
    assert sizes == [2 * digits.num_classes] * 2 and subsets[0] != subsets[1]


@pytest.mark.parametrize("passes, steps", [(0.25, 2), (1.0, 6), (2.5, 15)])  # a pass over digits: 6 batches
def test_early_trains_its_passes_as_optimiser_steps(tmp_path, digits, monkeypatch, passes, steps):
    """Any positive number of passes over the full training data (2.5 stopped at "must be whole above 1"): the
    reference protocol cut to that many passes' optimiser steps."""
    seen = []
    real = train_module.train_candidates

    def spy(archs, train, data, config, **kw):
        seen.append((len(train), config.optimiser_steps(len(train)), config.lr))
        return real(archs, train, data, config, **kw)

    import nas_proxy.scoring._proxies as proxies_module

    monkeypatch.setattr(proxies_module, "train_candidates", spy)
    path = write_preset(tmp_path, reference="lr = 0.05")
    path.write_text(path.read_text() + f"\n[score]\nshort_epochs = {passes}\n")
    make_proxy("short", load_preset(path), digits).score(ARCH, 0)
    assert seen == [(len(digits.train), steps, 0.05)]  # the reference protocol (its lr) on all the training images


@pytest.mark.parametrize(
    "body, message",
    [
        ("proxy = 'magic'", r"\[score\].proxy = 'magic' is not a proxy"),
        ("seeds = 0", r"\[score\].seeds must be positive"),
        ("short_epochs = 0", r"\[score\].short_epochs must be positive"),
        ("bogus = 1", r"\[score\]: unknown key 'bogus'"),
    ],
)
def test_bad_score_table_names_the_key(tmp_path, body, message):
    with pytest.raises(NasProxyError, match=message):
        load_preset(_with_score(tmp_path, body))


def test_learning_rate_drops_halfway_through_a_single_epoch(digits, monkeypatch):
    rates = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    train_candidate(ARCH, digits.train, digits, TrainConfig(epochs=1, batch_size=128, lr=0.01, dsa_strategy="none"))
    steps = -(-len(digits.train) // 128)
    assert rates == [0.01] * (steps // 2) + [pytest.approx(0.001)] * (steps - steps // 2)


# --- a study searches with any proxy --------------------------------------------------------------


def test_study_searches_with_a_zero_cost_proxy_and_refuses_another_later(tmp_path, digits):
    path = _with_score(tmp_path, "proxy = 'naswot'")
    preset = load_preset(path)
    study = run_search(preset, digits, n_trials=4, progress=False)
    proxy = make_proxy("naswot", preset, digits)
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert trial.value == pytest.approx(proxy.score(ArchSpec.parse(trial.user_attrs["arch"]), 0))
    assert not (tmp_path / "out" / "condensed").exists()  # no condensation for a zero-cost proxy
    path.write_text(path.read_text().replace("proxy = 'naswot'", "proxy = 'synflow'"))
    other = load_preset(path)
    with pytest.raises(NasProxyError, match="scored by another proxy"):
        record_proxy(open_study(other), other.study, make_proxy("synflow", other, digits))


# --- compare --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _reference_out(tmp_path_factory, digits):
    base = tmp_path_factory.mktemp("compare")
    preset = load_preset(write_preset(base, reference="seeds = 2"))
    train_reference(preset, digits, "6")
    return base / "out"


@pytest.fixture
def compared(tmp_path, _reference_out):
    """A tiny preset whose output folder already holds a 6-architecture, 2-seed reference table."""
    shutil.copytree(_reference_out, tmp_path / "out")
    return load_preset(write_preset(tmp_path, reference="seeds = 2"))


def test_compare_reports_signed_correlations_of_every_proxy(compared, digits, tmp_path):
    comparison = compare_proxies(compared, digits, ["dm", "flops", "dm+flops"], n_boot=100, progress=False)
    table = comparison.table.set_index("proxy")
    assert list(table.index) == ["dm", "flops", "dm+flops", CEILING]
    scores = pd.read_csv(tmp_path / "out" / "compare" / "scores.csv", index_col="arch")
    for name in ("dm", "flops", "dm+flops"):
        expected = stats.spearmanr(scores[name], scores["reference"]).statistic
        assert table.at[name, "spearman"] == pytest.approx(expected)  # signed, never an absolute value
        assert table.at[name, "spearman_low"] <= table.at[name, "spearman"] <= table.at[name, "spearman_high"]
    ensemble = (scores["dm"].rank(pct=True) + scores["flops"].rank(pct=True)) / 2
    assert scores["dm+flops"].to_numpy() == pytest.approx(ensemble.to_numpy())
    assert table.at["dm", "setup_seconds"] > 0 and table.at["flops", "setup_seconds"] == 0
    assert {"compare.csv", "compare.md", "scores.csv"} <= {p.name for p in comparison.files}


def test_ceiling_is_the_reference_seed_to_seed_agreement(compared, digits):
    from nas_proxy.reference import read_reference

    ref = read_reference(reference_path(compared)).pivot_table(index="arch", columns="seed", values="test_acc")
    row = compare_proxies(compared, digits, ["params"], n_boot=0, progress=False).table.set_index("proxy").loc[CEILING]
    assert row["spearman"] == pytest.approx(stats.spearmanr(ref[0], ref[1]).statistic)


@pytest.mark.parametrize("jobs", [1, 2])
def test_compare_reuses_cached_scores_and_resumes_after_a_crash(compared, digits, monkeypatch, jobs):
    """One at a time the crash loses nothing finished; side by side, at most the other network in flight."""
    compared = dataclasses.replace(compared, training=dataclasses.replace(compared.training, jobs=jobs))
    real, calls = train_module._train, []

    def crash_on_third(arch, *args, **kwargs):
        calls.append(arch.id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(arch, *args, **kwargs)

    monkeypatch.setattr(train_module, "_train", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        compare_proxies(compared, digits, ["subset"], progress=False)
    path = _score_path(compared, "subset", digits)
    kept = len(read_scores(path))
    assert kept == 2 if jobs == 1 else 1 <= kept <= 2  # the finished ones were kept
    before = len(calls)  # 3, or 4 when the other thread took the next network before the crash stopped it
    first = compare_proxies(compared, digits, ["subset"], n_boot=0, progress=False)
    assert len(calls) - before == 6 - kept and len(read_scores(path)) == 6  # only the missing ones were scored
    monkeypatch.setattr(train_module, "_train", lambda *a, **k: pytest.fail("scored again"))
    again = compare_proxies(compared, digits, ["subset"], n_boot=0, progress=False)
    assert again.table["spearman"].iloc[0] == first.table["spearman"].iloc[0]


def _score_path(preset, name, data):
    proxy = make_proxy(name, preset, data)
    return score_table_path(preset.study.output, proxy.name, proxy.measured_settings(), data)


def test_more_seeds_average_more_scores(compared, digits):
    two = compare_proxies(compared, digits, ["naswot"], seeds=2, n_boot=0, progress=False)
    path = _score_path(compared, "naswot", digits)
    rows = read_scores(path)
    assert sorted(rows["seed"].unique()) == [0, 1] and len(rows) == 12
    assert two.scores["naswot"].to_numpy() == pytest.approx(rows.groupby("arch")["value"].mean()[two.scores.index])


def test_compare_command_errors_are_one_line(tmp_path, capsys):
    path = write_preset(tmp_path)
    assert main(["compare", str(path), "--proxies", "dm,magic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --proxies holds 'magic', not a proxy") and err.count("\n") == 1
    assert main(["compare", str(path), "--proxies", "dm"]) == 2
    err = capsys.readouterr().err
    assert "no reference table" in err and "nas-proxy reference" in err and "Traceback" not in err


def test_compare_refuses_a_reference_built_on_other_data(compared, digits):

    path = reference_path(compared)
    path.write_text(path.read_text().replace(digits.fingerprint, "0123456789abcdef"))
    with pytest.raises(NasProxyError, match="built on other data"):
        compare_proxies(compared, digits, ["params"], progress=False)


def test_factor_bias_finds_an_over_rated_choice():
    from nas_proxy.reference._agreement import factor_bias

    ids = [f"d{d}-w32-relu-batchnorm-{p}" for d in (1, 2, 3, 4) for p in ("avgpool", "maxpool")]
    reference = pd.Series([0.1 * i for i in range(8)], index=ids)
    proxy = reference + pd.Series([1.0 if "maxpool" in i else 0.0 for i in ids], index=ids)  # max pooling lifted
    bias = factor_bias(proxy, reference).set_index(["axis", "value"])["rank_error"]
    assert bias["pooling", "maxpool"] > 0 > bias["pooling", "avgpool"]
    assert bias["pooling", "maxpool"] == -bias["pooling", "avgpool"]
    assert bias["activation", "relu"] == 0  # every network has it: no error on average


def test_study_score_is_the_mean_over_score_seeds(tmp_path, digits):
    preset = load_preset(_with_score(tmp_path, "proxy = 'grad_norm'\nseeds = 2"))
    study = run_search(preset, digits, n_trials=2, progress=False)
    proxy = make_proxy("grad_norm", preset, digits)
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        arch = ArchSpec.parse(trial.user_attrs["arch"])
        assert trial.value == pytest.approx((proxy.score(arch, 0) + proxy.score(arch, 1)) / 2)
        assert trial.value != pytest.approx(proxy.score(arch, 0))
