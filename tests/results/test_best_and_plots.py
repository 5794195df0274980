"""One meaning of "best", ties said, in the terminal, report.md and summary.json; plots that name the top
architectures, show ties and explain an empty panel; Pareto fronts that ignore methods without the figure."""

import dataclasses
import json
import math

import optuna
import pandas as pd
import pytest
from matplotlib.text import Text
from presets import reference_path, write_preset

from nas_proxy import import_reference, load_preset, make_report, open_study
from nas_proxy.artifacts import imported_table_path
from nas_proxy.cli import main
from nas_proxy.reference._reference import COLUMNS as REFERENCE_COLUMNS
from nas_proxy.results._format import best
from nas_proxy.results._frontier import _pareto
from nas_proxy.results._plots import frontier_figure, scatter_figure
from nas_proxy.results._render import frontier_markdown, report_markdown

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def study(tmp_path_factory, digits):
    """A study of 16 scored architectures, 12 with a reference accuracy: two unreferenced ones tie for the study's
    best score, two reference ones for the proxy's pick, and two for the reference table's best accuracy."""
    tmp_path = tmp_path_factory.mktemp("best")
    preset = load_preset(write_preset(tmp_path))
    archs = [a.id for a in preset.space().archs()][:16]
    scores = [0.99, 0.99, 0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02]
    accuracy = dict(zip(archs[2:14], [0.95, 0.97, 0.97, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]))
    created = open_study(preset)
    for arch, score in zip(archs, scores):
        attrs = {"arch": arch, "params": 1000, "flops": 1e6, "seconds": 0.1}
        created.add_trial(optuna.trial.create_trial(value=score, user_attrs=attrs))
    source = tmp_path / "trained.csv"
    pd.DataFrame({"arch": list(accuracy), "seed": 0, "test_acc": list(accuracy.values())}).to_csv(source, index=False)
    import_reference(
        source, imported_table_path(preset.study.output, preset.data), digits, preset.space(), metric="test_acc"
    )
    return preset, archs


def test_the_study_best_and_the_pick_are_named_with_their_ties_everywhere(study, monkeypatch, capsys):
    preset, archs = study
    monkeypatch.setattr(
        "nas_proxy.cli._commands.run_workers", lambda *args, **kwargs: None
    )  # the trials are in the study
    assert main(["search", str(preset.path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    study_tie = f"2 architectures tie at score 0.99: {archs[0]}, {archs[1]}"
    pick_tie = f"2 architectures tie at score 0.9: {archs[3]}, {archs[2]}"  # by id, as the agreement's top-1
    best_tie = f"2 architectures tie at 97.00%: {archs[3]}, {archs[4]}"
    assert f"16 architectures scored; best by the proxy: {study_tie}\n" in out
    # the regret is the tie's expected one: 97% against the mean of 95% and 97%
    assert (
        f"among the 12 reference architectures the proxy's pick ({pick_tie}) is on average 1.00 points below the "
        f"best ({best_tie})\n"
    ) in out
    markdown = (preset.study.output / "report" / "report.md").read_text()
    assert f"| best by the proxy, over all 16 scored | {study_tie} | | 16 |" in markdown
    assert "no reference yet" not in markdown  # an imported table: nothing to train
    assert f"| the proxy's pick among the 12 reference architectures | {pick_tie}; reference 96.00% (their mean) |" in (
        markdown
    )
    assert f"| best of the reference table | {best_tie} |" in markdown
    summary = json.loads((preset.study.output / "report" / "summary.json").read_text())
    assert summary["study_best_arch"] == archs[0] and summary["study_best_archs"] == archs[:2]
    assert summary["study_best_score"] == summary["top1_score"] + 0.09 == pytest.approx(0.99)
    assert summary["top1_arch"] == archs[3] and summary["top1_archs"] == [archs[3], archs[2]]
    assert summary["best_arch"] == archs[3] and summary["best_archs"] == archs[3:5]


def test_a_pick_at_the_best_is_said_so_whatever_the_rounding_of_its_mean(study):
    preset, archs = study
    summary = make_report(preset, n_boot=0, plot=False).summary
    # both tied picks have the best accuracy; a three-way mean can land a rounding off it (0.1 * 3 / 3 != 0.1)
    agreement = dataclasses.replace(summary.agreement, top1_reference=0.97, regret=-1e-15)
    at_best = dataclasses.replace(summary, top1_archs=(archs[3], archs[4]), agreement=agreement)
    assert at_best.pick_line() == (
        f"among the 12 reference architectures the proxy's pick (2 architectures tie at score 0.9: {archs[3]}, "
        f"{archs[4]}) is the best of the reference table (97.00%)"
    )


def test_a_long_tie_is_shortened():
    assert best(["a"], "score 0.5") == "a (score 0.5)"
    assert best(list("abcde"), "score 0.5") == "5 architectures tie at score 0.5: a, b, c and 2 more"


def test_the_scatter_names_the_top_architectures_and_shows_ties(study):
    preset, archs = study
    report = make_report(preset, n_boot=0, plot=False)
    figure = scatter_figure(report.ranking, report.summary)
    texts = [t.get_text() for t in figure.findobj(Text)]
    named = {arch for arch in archs if any(text.startswith(f"{arch}  ") for text in texts)}
    # the reference's top 5 and the proxy's (both archs 2-6, ties sharing a rank) are named, the other 7 not
    assert named == set(archs[2:7])
    assert f"{archs[3]}  97.00%" in texts
    axes = figure.axes[0]
    assert "ties: 2 of the 12 share a proxy score (grey bars): 2 at 0.9" in axes.get_xlabel()
    assert axes.get_xlim()[0] > axes.get_xlim()[1] and 1 in axes.get_xticks()  # rank 1 on the right, labelled
    assert len(axes.lines) == 2  # the diagonal and one grey bar joining the tie
    # two architectures equal on both axes share one marker, which says it stands for two
    ranking = report.ranking.copy()
    ranking.loc[ranking["arch"] == archs[6], ["proxy_score", "reference_test_acc"]] = [0.7, 0.9]  # archs[5]'s
    texts = [t.get_text() for t in scatter_figure(ranking, report.summary).axes[0].texts]
    assert texts.count("×2") == 1


def _frontier(top20: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "family": ["zero-cost", "zero-cost", "short"],
            "method": ["synflow", "naswot", "short 5%"],
            "cost": [1e-5, 1e-3, 1e-2],
            "n": 12,
            "spearman": [0.1, 0.5, 0.6],
            "spearman_low": math.nan,
            "spearman_high": math.nan,
            "kendall": math.nan,
            "top10_spearman": math.nan,
            "top20_spearman": top20,
            "precision10": math.nan,
            "regret": [1.0, 0.5, 0.2],
            "needs_reference": [False, False, True],
        }
    )
    free = frame[~frame["needs_reference"]]
    return frame.assign(
        pareto=_pareto(frame, "spearman"),
        pareto_top20=_pareto(frame, "top20_spearman"),
        pareto_noref=_pareto(free, "spearman").reindex(frame.index, fill_value=False),
    )


def test_a_front_ignores_methods_without_the_figure():
    frame = _frontier([math.nan, 0.5, 0.4])
    assert list(frame["pareto"]) == [True, True, True]
    assert list(frame["pareto_top20"]) == [False, True, False]  # the cheapest has no top-20: not a best trade-off
    markdown = frontier_markdown(frame)
    assert "| zero-cost | synflow | none | 0.0000 | +0.100 |  |  |  | 1.00 | ρ + no-reference ρ |" in markdown
    assert "| short | short 5% | yes | 0.0100 | +0.600 |  | +0.40 |  | 0.20 | ρ |" in markdown


def test_an_empty_frontier_panel_says_why():
    empty = frontier_figure(_frontier([math.nan] * 3), "tiny")
    notes = [t.get_text() for t in empty.axes[1].texts]
    assert not empty.axes[1].axison and len(notes) == 1
    assert " ".join(notes[0].split()) == (
        "no top-20 Spearman: it needs at least 40 reference architectures (twice the 20 it ranks); this table has 12"
    )
    full = frontier_figure(_frontier([0.2, 0.5, 0.4]), "tiny")
    assert full.axes[1].axison and not full.axes[1].texts
    legend = [t.get_text() for t in full.axes[0].get_legend().get_texts()]
    assert "front without reference runs" in legend  # drawn apart where some methods need reference runs


def test_the_cost_line_gives_the_proxy_share_of_the_reference(study):
    """What the tool buys, as a ratio; no ratio (and no NaN) where the reference's time is unknown (imported)."""
    preset, _ = study
    report = make_report(preset, plot=False)
    summary = report.summary
    assert math.isnan(summary.reference_seconds_mean)  # an imported table records no training time
    assert summary.cost_line().startswith("cost per architecture: proxy 0.1 s; cost in total: proxy 2 s")
    timed = dataclasses.replace(
        summary, proxy_seconds_mean=1.5, reference_seconds_mean=7.5, cost_ratio=0.1234, cost_ratio_archs=12
    )
    line = (
        "cost per architecture: proxy 1.5 s, reference 7.5 s (the proxy costs 0.12 of the reference's on the 12 "
        "architectures both trained)"
    )
    assert timed.cost_line().startswith(line)
    markdown = report_markdown(report.name, report.ranking, timed)
    assert f"| {line.replace(': ', ' | ', 1)} |" in markdown


def test_the_cost_ratio_compares_the_same_architectures(tmp_path):
    """The means cover different sets (the study's 4 against the reference's 3); the ratio takes the 2 that both
    trained, each reference architecture's seconds summed over its seeds."""
    preset = load_preset(write_preset(tmp_path))
    archs = [a.id for a in preset.space().archs()][:5]
    study = open_study(preset)
    for arch, seconds in zip(archs[:4], (1.0, 2.0, 30.0, 40.0)):
        attrs = {"arch": arch, "params": 1000, "flops": 1e6, "seconds": seconds}
        study.add_trial(optuna.trial.create_trial(value=seconds / 100, user_attrs=attrs))
    rows = [(arch, seed, 5.0) for arch in (archs[0], archs[1], archs[4]) for seed in (0, 1)]
    table = pd.DataFrame(rows, columns=["arch", "seed", "seconds"]).assign(test_acc=0.5, val_acc=0.5)
    path = reference_path(preset)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.reindex(columns=REFERENCE_COLUMNS).to_csv(path, index=False)
    summary = make_report(preset, plot=False, n_boot=10).summary
    assert (summary.proxy_seconds_mean, summary.reference_seconds_mean) == (18.25, 10.0)
    assert summary.cost_ratio == pytest.approx(3.0 / 20.0) and summary.cost_ratio_archs == 2
    assert "(the proxy costs 0.15 of the reference's on the 2 architectures both trained)" in summary.cost_line()
