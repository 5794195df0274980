"""The cost-fidelity frontier, and reference architectures spread over the choices."""

import collections
import math

import pandas as pd
import pytest
from presets import write_preset

from nas_proxy import load_preset, load_search_space, make_proxy, rank_agreement, run_frontier, run_reference
from nas_proxy.artifacts import reference_table_path
from nas_proxy.cli import main
from nas_proxy.reference import read_reference, reference_accuracy
from nas_proxy.results._frontier import short_label
from nas_proxy.scoring import score_archs
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
    run_reference(preset.reference, digits, archs, reference_table_path(preset), progress=False)
    return preset


def test_every_family_is_measured_honestly_with_its_cost(frontier_preset, digits):
    preset = frontier_preset
    frontier = run_frontier(
        preset,
        digits,
        families=["zero-cost", "subset", "dm", "short", "halving", "calibrated"],
        ipcs=[2],
        short=[0.25, 0.5],
        fit_sizes=[10],
        n_boot=50,
        plot=False,
        progress=False,
    )
    table = frontier.table.set_index("method")
    assert list(frontier.table["family"].unique()) == ["zero-cost", "subset", "dm", "short", "halving", "calibrated"]
    assert {
        "naswot",
        "random ipc 2",
        "dm ipc 2",
        "short 25%",
        "short 50%",
        "short 25% -> best 1/3: short 50%",
        "factors alone",
        "factors + grad_norm + naswot, fitted on 10",
        "factors + grad_norm + naswot, fitted on 10 spread",
        "factors + grad_norm + naswot, fitted on 10 uncertain",
        "factors + grad_norm + naswot, fitted on all",
        "factors + grad_norm + naswot + short 50%, all architectures",
        "factors + grad_norm + naswot, best 1/3 + short 25%",
    } <= set(table.index)
    # a method without a fit is its scores' agreement with the reference (scored once, from the cache)
    truth = reference_accuracy(read_reference(reference_table_path(preset)))
    naswot = score_archs(make_proxy("naswot", preset, digits, progress=False), [], [0], preset, digits, progress=False)
    cached = pd.read_csv(next((preset.study.output / "scores").glob("naswot-*.csv"))).set_index("arch")["score"]
    assert table.loc["naswot", "spearman"] == pytest.approx(rank_agreement(cached, truth, n_boot=0).spearman)
    assert naswot.empty  # nothing asked, nothing scored
    # cost: short training is its share of the reference's steps plus one pass over the validation split
    n, epochs, val = len(digits.train), preset.reference.training.epochs, len(digits.val)
    for f in (0.25, 0.5):
        assert table.loc[short_label(f), "cost"] == pytest.approx((3 * f * n * epochs + val) / (3 * n * epochs))
    assert (
        table.loc["short 25%", "cost"]
        < table.loc["short 25% -> best 1/3: short 50%", "cost"]
        < table.loc["short 25%", "cost"] + table.loc["short 50%", "cost"]
    )
    fewer, every = (table.loc[f"factors + grad_norm + naswot, fitted on {k}", "cost"] for k in (10, "all"))
    assert 0 < fewer < every
    assert table.loc["dm ipc 2", "cost"] > table.loc["random ipc 2", "cost"]  # condensation counts
    # the Pareto front: nothing on it is beaten by something at most as costly
    for _, row in frontier.table[frontier.table["pareto"]].iterrows():
        cheaper = frontier.table[frontier.table["cost"] <= row["cost"]]
        assert not (cheaper["spearman"] > row["spearman"]).any()
    assert frontier.table["pareto"].any() and not frontier.table["pareto"].all()
    assert all(math.isfinite(v) for v in frontier.table["cost"])
    assert [p.name for p in frontier.files] == ["frontier.csv", "frontier.md"]
    assert "| short | short 25% |" in frontier.markdown()


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
        "error: unknown frontier family 'magic'; choose from zero-cost, subset, dm, short, halving, calibrated"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["frontier", str(frontier_preset.path), "--short", "0.1,lots"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--short: '0.1,lots': expected comma-separated" in err
