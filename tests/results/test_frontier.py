"""The cost-fidelity frontier, and reference architectures spread over the choices."""

import collections
import dataclasses
import math

import pandas as pd
import pytest
from presets import reference_path, write_preset

import nas_proxy.scoring._proxies as proxies_module
from nas_proxy import load_preset, load_search_space, make_proxy, rank_agreement, run_frontier, run_reference
from nas_proxy.cli import main
from nas_proxy.reference import read_reference, reference_accuracy
from nas_proxy.results._methods import short_epochs, short_label
from nas_proxy.scoring import score_archs
from nas_proxy.scoring._make import short_training
from nas_proxy.study import select_archs


def test_spread_uses_every_choice_about_equally():
    space = load_search_space("nas720")
    picked = space.spread(15, seed=0)
    assert len(set(picked)) == 15
    for axis, size in (("activation", 3), ("norm", 5), ("pooling", 3)):
        counts = collections.Counter(getattr(a, axis) for a in picked)
        assert len(counts) == size and max(counts.values()) - min(counts.values()) <= 1, (axis, counts)
    pool = space.sample(40, seed=1)
    assert set(space.spread(10, seed=0, among=pool)) <= set(pool)
    assert space.spread(10, seed=0) == space.spread(10, seed=0) != space.spread(10, seed=1)
    preset = load_preset("fashion_mnist")
    assert select_archs("spread:12", space, preset.reference) == space.spread(12, preset.reference.sample_seed)


@pytest.fixture(scope="module")
def frontier_preset(tmp_path_factory, digits):
    tmp_path = tmp_path_factory.mktemp("frontier")
    preset = load_preset(write_preset(tmp_path, reference='schedule = "onecycle"\nlr = 0.05'))
    archs = preset.space().sample(16, 0)
    run_reference(preset.reference, digits, archs, reference_path(preset), progress=False)
    return preset


def test_every_family_is_measured_honestly_with_its_cost(frontier_preset, digits):
    preset = frontier_preset
    frontier = run_frontier(
        preset,
        digits,
        families=["zero-cost", "subset", "dm", "short", "warm", "halving", "calibrated"],
        ipcs=[2],
        short=[0.25, 0.5],
        fit_sizes=[10],
        n_boot=50,
        plot=False,
        progress=False,
    )
    table = frontier.table.set_index("method")
    families = ["zero-cost", "subset", "dm", "short", "warm", "halving", "calibrated"]
    assert list(frontier.table["family"].unique()) == families
    assert {
        "naswot",
        "subset ipc 2",
        "dm ipc 2",
        "short 25%",
        "short 50%",
        "short 25% -> best 1/3: short 50%",
        "dm ipc 2 -> best 1/3: short 25%",  # the DM set as the first rung
        "factors alone",
        "factors + grad_norm + naswot, fitted on 10",
        "factors + grad_norm + naswot, fitted on 10 spread",
        "factors + grad_norm + naswot, fitted on 10 uncertain",
        "factors + grad_norm + naswot, fitted on all",
        "factors + grad_norm + naswot + short 50%, all architectures",
        "factors + grad_norm + naswot + short 50%, fitted on 10 spread",
        "factors + grad_norm + naswot, best 1/3 + short 25%",
    } <= set(table.index)
    # a method without a fit is its scores' agreement with the reference (scored once, from the cache)
    truth = reference_accuracy(read_reference(reference_path(preset)))
    naswot = score_archs(
        make_proxy("naswot", preset, digits, progress=False), [], [0], digits, preset.study.output, progress=False
    )
    cached = pd.read_csv(next((preset.study.output / "scores").glob("naswot-*.csv"))).set_index("arch")["value"]
    assert table.loc["naswot", "spearman"] == pytest.approx(rank_agreement(cached, truth, n_boot=0).spearman)
    assert naswot.empty  # nothing asked, nothing scored
    # cost: short training is the images its share of the reference's steps feeds, plus one pass over the
    # validation split (a quarter of 2 epochs is half a pass: 3 of a pass's 6 batches of 256)
    n, reference, val = len(digits.train), preset.reference.training, len(digits.val)
    for f, images in ((0.25, 3 * 256), (0.5, n)):
        assert table.loc[short_label(f), "cost"] == pytest.approx((3 * images + val) / (3 * n * reference.epochs))
    assert (
        table.loc["short 25%", "cost"]
        < table.loc["short 25% -> best 1/3: short 50%", "cost"]
        < table.loc["short 25%", "cost"] + table.loc["short 50%", "cost"]
    )
    fewer, every = (table.loc[f"factors + grad_norm + naswot, fitted on {k}", "cost"] for k in (10, "all"))
    assert 0 < fewer < every
    assert table.loc["dm ipc 2", "cost"] > table.loc["subset ipc 2", "cost"]  # condensation counts
    # a warm start pays for both runs and the condensation, one evaluation pass
    warm = table.loc["dm ipc 2", "cost"] + table.loc["short 25%", "cost"] - val / (3 * n * reference.epochs)
    assert table.loc["dm ipc 2 + short 25%", "cost"] == pytest.approx(warm)
    # the Pareto front: nothing on it is beaten by something at most as costly
    for _, row in frontier.table[frontier.table["pareto"]].iterrows():
        cheaper = frontier.table[frontier.table["cost"] <= row["cost"]]
        assert not (cheaper["spearman"] > row["spearman"]).any()
    assert frontier.table["pareto"].any() and not frontier.table["pareto"].all()
    assert all(math.isfinite(v) for v in frontier.table["cost"])
    assert [p.name for p in frontier.files] == ["frontier.csv", "frontier.md"]
    assert "| short | short 25% |" in frontier.markdown()
    # only the calibrations use reference runs; the reference-free front is drawn among the others
    needs = frontier.table.groupby("family")["needs_reference"].all()
    assert needs["calibrated"] and not needs.drop("calibrated").any()
    assert not frontier.table.loc[frontier.table["needs_reference"], "pareto_noref"].any()
    assert frontier.table["pareto_noref"].any()


def test_samples_and_readouts_train_each_run_once(frontier_preset, digits, monkeypatch):
    trained = []
    real = proxies_module.train_candidates

    def spy(archs, train, data, config, **kwargs):
        trained.append((len(train), len(archs)))
        return real(archs, train, data, config, **kwargs)

    monkeypatch.setattr(proxies_module, "train_candidates", spy)
    frontier = run_frontier(
        frontier_preset,
        digits,
        families=["short", "sample"],
        short=[0.75],
        samples=[0.2],
        readouts=["val_acc", "tse_e", "loss_fit"],
        plot=False,
        progress=False,
        n_boot=0,
    )
    table = frontier.table.set_index("method")
    methods = [f"{m}{r}" for m in ("short 75%", "sample 20%") for r in ("", " tse_e", " loss_fit")]
    assert list(table.index) == methods
    ipc = round(0.2 * len(digits.train) / digits.num_classes)
    assert sorted(size for size, _ in trained) == [ipc * digits.num_classes, len(digits.train)]  # one run each
    # a sample trains the reference's whole protocol on its images: 20% of the data, 20% of the cost
    n, reference, val = len(digits.train), frontier_preset.reference.training, len(digits.val)
    images = reference.presentations(ipc * digits.num_classes)
    assert table.loc["sample 20%", "cost"] == pytest.approx((3 * images + val) / (3 * n * reference.epochs))
    assert table.loc["sample 20% tse_e", "cost"] == table.loc["sample 20%", "cost"]  # a readout costs nothing
    assert table.loc["short 75%", "spearman"] != table.loc["short 75% tse_e", "spearman"]


def test_a_second_frontier_reuses_every_score(frontier_preset, digits, monkeypatch):
    run_frontier(
        frontier_preset,
        digits,
        families=["zero-cost", "short", "dm"],
        ipcs=[2],
        short=[0.25],
        plot=False,
        progress=False,
        n_boot=0,
    )

    def no_training(*args, **kwargs):
        raise AssertionError("a cached score was computed again")

    monkeypatch.setattr("nas_proxy.scoring._proxies.train_candidates", no_training)
    monkeypatch.setattr("nas_proxy.artifacts.condense", no_training)
    again = run_frontier(
        frontier_preset, digits, families=["zero-cost", "short"], short=[0.25], plot=False, progress=False, n_boot=0
    )
    assert "short 25%" in set(again.table["method"])
    # the DM sets' sizes apart from the subsets': the ipc 2 set is reused, no ipc 3 one is condensed
    again = run_frontier(
        frontier_preset, digits, families=["dm"], ipcs=[3], dm_ipcs=[2], plot=False, progress=False, n_boot=0
    )
    assert list(again.table["method"]) == ["dm ipc 2"]


def test_a_bad_family_or_budget_is_one_line(frontier_preset, capsys):
    assert main(["frontier", str(frontier_preset.path), "--families", "zero-cost,magic"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown frontier family 'magic'; choose from zero-cost, subset, dm, short, sample, warm, ensemble, "
        "halving, calibrated"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["frontier", str(frontier_preset.path), "--short", "0.1,lots"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--short: '0.1,lots': expected comma-separated" in err
    assert main(["frontier", str(frontier_preset.path), "--families", "short,halving", "--short", "0.5"]) == 2
    assert "needs at least two budgets for the halving family (its rungs), or one with the dm family" in (
        capsys.readouterr().err
    )


def test_a_dm_set_is_halving_s_first_rung_before_a_single_budget(frontier_preset, digits):
    frontier = run_frontier(
        frontier_preset, digits, families=["dm", "short", "halving"], ipcs=[2], short=[0.5], plot=False, progress=False
    )
    assert "dm ipc 2 -> best 1/3: short 50%" in set(frontier.table["method"])


def test_a_short_budget_of_any_fraction_trains_its_share_of_the_steps(frontier_preset, digits, monkeypatch, capsys):
    """5% of a 50-epoch reference is 2.5 passes (the README's frontier stopped there with "[score].short_epochs = 2.5
    must be whole above 1"): a budget trains its share of the reference's optimiser steps on the full training data,
    and whole passes keep the protocol, so their cached scores keep their names."""
    trained = []
    real = proxies_module.train_candidates

    def spy(archs, train, data, config, **kwargs):
        trained.append((len(train), config.optimiser_steps(len(train))))
        return real(archs, train, data, config, **kwargs)

    monkeypatch.setattr(proxies_module, "train_candidates", spy)
    path = str(frontier_preset.path)
    assert main(["frontier", path, "--families", "short", "--short", "0.6", "--no-plot", "--no-progress"]) == 0
    assert "| short | short 60% |" in capsys.readouterr().out
    per_pass = frontier_preset.reference.training.batches(len(digits.train))
    assert set(trained) == {(len(digits.train), round(0.6 * 2 * per_pass))}  # 60% of the reference's 2 epochs
    # the budget: 5% of the quickstart's 50 epochs is 2.5 passes, 15 of the 300 steps on digits
    quickstart = load_preset("quickstart")
    passes = short_epochs(quickstart.reference.training, 0.05, len(digits.train))
    assert passes == 2.5 and short_training(quickstart.reference.training, passes, len(digits.train)).steps == 15
    whole = dataclasses.replace(frontier_preset, score=dataclasses.replace(frontier_preset.score, short_epochs=1.0))
    protocol = dataclasses.replace(frontier_preset.reference.training, steps=per_pass).key_settings()
    assert make_proxy("short", whole, digits).measured_settings() == {
        "proxy": "short",
        "trains_on": {"full": len(digits.train)},
        "config": protocol,
    }


def test_a_short_budget_too_long_to_train_is_refused_before_any_work(tmp_path, digits, capsys):
    path = write_preset(tmp_path, reference="steps = 10_000_000")  # a whole pass of digits is a few steps
    load_preset(path)  # a valid preset: the reference trains 10,000,000 steps
    assert main(["frontier", str(path), "--families", "short", "--short", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --short holds 0.5, a budget too long to train")
    assert "is 5,000,000 steps" in err and "at most 10,000,000 steps and 100,000 passes" in err, err
    assert "[score]" not in err and "short_epochs" not in err  # a key this command's user never set
    assert not (tmp_path / "out").exists()  # nothing scored, nothing written
