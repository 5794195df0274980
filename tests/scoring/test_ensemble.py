"""The reference-free ensemble: members' scores as quantiles among a fixed anchor, averaged; a study scores its
anchor once, records it, and every later run and worker reads scores on that one scale."""

import numpy as np
import pandas as pd
import pytest
from presets import train_reference, write_preset

from nas_proxy import ArchSpec, load_preset, run_search
from nas_proxy.cli import main
from nas_proxy.errors import NasProxyError
from nas_proxy.results import run_frontier
from nas_proxy.scoring import Anchor, make_proxy

ENSEMBLE = '[score]\nproxy = "ensemble"\nfeatures = ["naswot", "short"]\nreadout = "tse_e"\nshort_epochs = 0.5\n'


def _anchor(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n)}, index=[f"x{i}" for i in range(n)])


def test_quantiles_are_monotone_bounded_and_exact_at_the_anchor():
    frame = _anchor()
    anchor = Anchor.of(frame)
    at = anchor.quantiles("a", frame["a"].to_numpy())
    assert np.allclose(np.sort(at), (np.arange(20) + 0.5) / 20)  # mid-ranks at the anchor's own scores
    grid = np.linspace(-10, 10, 2001)
    q = anchor.quantiles("a", grid)
    assert np.all(np.diff(q) > 0) and q.min() > 0 and q.max() < 1  # strictly increasing: no ties beyond the anchor
    low, high = anchor.quantiles("a", [-np.inf, np.nan]), anchor.quantiles("a", [np.inf])
    assert low.tolist() == [0.0, 0.0] and high.tolist() == [1.0]


def test_with_the_anchor_the_ranked_architectures_the_ensemble_is_their_mean_rank():
    frame = _anchor(30, seed=1)
    combined = Anchor.of(frame).combine({c: frame[c] for c in frame.columns})
    assert np.allclose(combined, (frame.rank().mean(axis=1) - 0.5) / 30)  # the mean rank, as a quantile


def test_an_anchor_survives_json_and_needs_enough_architectures():
    anchor = Anchor.of(_anchor())
    assert Anchor.from_dict(anchor.to_dict()) == anchor
    with pytest.raises(NasProxyError, match=r"at least 5 architectures, got 3; raise \[score\].anchor"):
        Anchor.of(_anchor(3))
    with pytest.raises(NasProxyError, match="needs the 'b' score"):
        anchor.combine({"a": [0.0]})


def test_an_ensemble_study_scores_its_anchor_once_and_keeps_it(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path, extra=ENSEMBLE + "anchor = 6\n", reference="sample = 0"))
    study = run_search(preset, digits, n_trials=3, progress=False, verbose=False)
    anchor = Anchor.from_dict(study.user_attrs["anchor"])
    assert anchor.features == ("naswot", "short") and len(anchor.archs) == 6
    assert set(anchor.archs) == {a.id for a in preset.space().spread(6, preset.reference.sample_seed)}
    # the anchor's architectures, paid for, are queued as the first trials (the study grows to hold them)
    assert sorted(t.user_attrs["arch"] for t in study.trials) == sorted(anchor.archs)
    members = {f: make_proxy(f, preset, digits, progress=False) for f in ("naswot", "short")}

    def expected(trial):
        arch = ArchSpec.parse(trial.user_attrs["arch"])
        return anchor.combine({f: [p.score(arch, 0)] for f, p in members.items()})[0]

    for trial in study.trials:  # trained beside other trials: float order differs
        assert trial.value == pytest.approx(expected(trial), rel=1e-4)
    # a later run reads the recorded anchor, even with the anchor's scores gone from the cache
    for table in (preset.study.output / "scores").glob("*.csv"):
        table.unlink()
    again = run_search(preset, digits, n_trials=9, progress=False, verbose=False)
    assert again.user_attrs["anchor"] == study.user_attrs["anchor"]
    new = [t for t in again.trials if t.user_attrs["arch"] not in anchor.archs and not t.user_attrs.get("cached")]
    assert len([t for t in again.trials if t.value is not None]) == 9 and new
    for trial in new:
        assert trial.value == pytest.approx(expected(trial), rel=1e-4)
    assert not list((preset.study.output / "scores").glob("*.csv"))  # nothing scored the anchor again


def test_an_ensemble_without_features_or_with_another_recorded_anchor_is_one_line(tmp_path, digits, capsys):
    path = write_preset(tmp_path, extra='[score]\nproxy = "ensemble"\nfeatures = []\n', reference="sample = 0")
    assert main(["search", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "features" in err and "name two or more" in err
    preset = load_preset(write_preset(tmp_path, extra=ENSEMBLE + "anchor = 5\n", reference="sample = 0"))
    other = Anchor.of(_anchor(5).rename(columns={"a": "naswot", "b": "grad_norm"})).to_dict()
    with pytest.raises(NasProxyError, match=r"recorded anchor scores \['naswot', 'grad_norm'\]"):
        make_proxy("ensemble", preset, digits, progress=False, fitted=other)


def test_the_frontier_ranks_ensembles_against_the_other_half_with_no_reference_run(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path))
    train_reference(preset, digits, "10")
    frontier = run_frontier(
        preset,
        digits,
        families=["short", "ensemble"],
        short=[0.5],
        readouts=["val_acc", "tse_e"],
        plot=False,
        progress=False,
    )
    rows = frontier.table[frontier.table["family"] == "ensemble"].set_index("method")
    assert list(rows.index) == [
        "ensemble grad_norm + naswot",
        "ensemble grad_norm + naswot + short 50%",
        "ensemble grad_norm + naswot + short 50% tse_e",
    ]
    assert not rows["needs_reference"].any() and rows["spearman"].notna().all()
    assert rows["cost"].is_monotonic_increasing
