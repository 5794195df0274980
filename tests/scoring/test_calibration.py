"""Reference tables from elsewhere (--import) and the calibrated proxy fitted on them."""

import dataclasses
import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
from presets import reference_path, train_reference, write_preset
from scipy import stats

from nas_proxy import (
    ArchSpec,
    NasProxyError,
    compare_proxies,
    import_reference,
    load_preset,
    load_search_space,
    make_proxy,
    make_report,
    run_reference,
    run_search,
)
from nas_proxy.artifacts import imported_table_path
from nas_proxy.cli import main
from nas_proxy.reference import read_reference
from nas_proxy.reference._reference import protocol_warning
from nas_proxy.scoring import Calibration, honest_estimate
from nas_proxy.scoring._calibration import MIN_FIT, factors, resampled_agreement, resampled_predictions
from nas_proxy.study import select_archs

optuna.logging.set_verbosity(optuna.logging.WARNING)
SMALL = load_search_space("small")


def _synthetic(n=30, seed=0):
    """Architectures of the small space, a feature that carries a signal the factors lack, and a reference."""
    rng = np.random.default_rng(seed)
    archs = [a.id for a in SMALL.sample(n, seed)]
    hidden = rng.normal(size=n)  # what only the feature sees
    depth = factors(archs, SMALL)["depth"].to_numpy()
    reference = pd.Series(0.8 + 0.02 * depth + 0.05 * hidden, index=archs)
    feature = pd.DataFrame({"naswot": np.exp(3 + hidden + 0.1 * rng.normal(size=n))}, index=archs)
    return archs, feature, reference


# --- the calibration -------------------------------------------------------------------------------


def test_factors_are_depth_log_width_and_one_hot_choices():
    table = factors(["d3-w64-relu-batchnorm-maxpool"], SMALL)
    row = table.iloc[0]
    assert (row["depth"], row["log2_width"]) == (3, 6)
    one_hot = [c for c in table.columns if "=" in c]
    assert sum(row[one_hot]) == 3 and row["norm=batchnorm"] == 1 and row["pooling=maxpool"] == 1


def test_a_feature_with_signal_beats_the_factors_out_of_sample():
    archs, feature, reference = _synthetic()
    with_feature = Calibration.fit(feature, reference, SMALL).cross_validated()
    alone = Calibration.fit(feature[[]], reference, SMALL).cross_validated()
    rho = {
        name: stats.spearmanr(p[archs], reference[archs]).statistic
        for name, p in (("feature", with_feature), ("factors", alone))
    }
    assert rho["feature"] > 0.8 and rho["feature"] > rho["factors"] + 0.3


def test_an_architecture_of_the_fit_is_scored_without_its_own_reference():
    archs, feature, reference = _synthetic()
    calibration = Calibration.fit(feature, reference, SMALL)
    held = archs[4]
    assert calibration.predict(held, {}) == calibration.cross_validated()[held]
    moved = reference.copy()
    moved[held] = 0.0  # its own truth changes: its prediction must not
    assert Calibration.fit(feature, moved, SMALL).predict(held, {}) == pytest.approx(calibration.predict(held, {}))
    # an architecture outside the fit needs its scores and gets the full fit's prediction
    new = next(a.id for a in SMALL.archs() if a.id not in archs)
    with pytest.raises(NasProxyError, match="needs the 'naswot' score"):
        calibration.predict(new, {})
    assert math.isfinite(calibration.predict(new, {"naswot": 20.0}))


def test_calibration_survives_json_and_clips_degenerate_scores():
    archs, feature, reference = _synthetic()
    feature.iloc[0, 0] = -math.inf  # naswot of a network that maps every image alike
    calibration = Calibration.fit(feature, reference, SMALL)
    rebuilt = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())), SMALL)
    assert rebuilt.cross_validated().equals(calibration.cross_validated())
    assert np.isfinite(calibration.cross_validated()).all()
    new = next(a.id for a in SMALL.archs() if a.id not in archs)
    assert rebuilt.predict(new, {"naswot": -math.inf}) == calibration.predict(new, {"naswot": -math.inf})


def test_the_fit_keeps_the_features_with_signal_and_drops_the_noise():
    archs, feature, reference = _synthetic(n=40)
    rng = np.random.default_rng(1)
    feature = feature.assign(synflow=np.exp(rng.normal(size=len(archs))))  # unrelated to the reference
    calibration = Calibration.fit(feature, reference, SMALL)
    assert calibration.features == ("naswot", "synflow") and calibration.chosen == ("naswot",)


def test_choices_made_inside_the_fit_keep_the_estimate_honest_on_noise():
    """Six noise features and a reference unrelated to everything: a fit scored on its own rows looks good; the
    nested estimate (subset and penalty chosen again in every training fold) finds nothing."""
    nested, in_sample = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        archs = [a.id for a in SMALL.sample(24, seed)]
        reference = pd.Series(rng.normal(size=24), index=archs)
        noise = pd.DataFrame(np.exp(rng.normal(size=(24, 6))), index=archs, columns=[f"f{i}" for i in range(6)])
        calibration = Calibration.fit(noise, reference, SMALL)
        every = np.arange(24)
        in_sample.append(
            stats.spearmanr(calibration.predict_rows(every, every), reference[list(calibration.archs)]).statistic
        )
        nested.append(honest_estimate(calibration, n_boot=0, repeats=5).spearman)
    assert np.mean(in_sample) > 0.4 and abs(np.mean(nested)) < 0.2, (in_sample, nested)


def test_the_multi_fidelity_estimate_ranks_the_promoted_fraction_by_the_second_fit():
    archs, feature, reference = _synthetic(n=30)
    first = Calibration.fit(feature[[]], reference, SMALL)
    refined = Calibration.fit(feature, reference, SMALL)
    cheap, both = (
        resampled_predictions(first, None, repeats=1)[0],
        resampled_predictions(first, refined, reduction_factor=3, repeats=1)[0],
    )
    better = resampled_predictions(refined, repeats=1)[0]
    promoted = cheap.sort_values(ascending=False).index[:10]
    assert both[promoted].equals(better[promoted]) and both.drop(promoted).equals(cheap.drop(promoted))
    with pytest.raises(NasProxyError, match="different reference architectures"):
        resampled_predictions(first, Calibration.fit(feature.iloc[:20], reference, SMALL))


def test_a_fit_on_fewer_rows_uses_only_those():
    archs, feature, reference = _synthetic(n=30)
    calibration = Calibration.fit(feature, reference, SMALL)
    picked = []

    def first_ten(train, rng):
        picked.append(train[:10])
        return train[:10]

    out = resampled_predictions(calibration, fit_rows=first_ten, repeats=2)
    assert len(out) == 2 and len(picked) == 2 * 5 and all(len(p) == 10 for p in picked)
    moved = reference.copy()
    rows = list(calibration.archs)  # the fit's order
    unused = [a for a in rows if all(rows.index(a) not in p for p in picked[:5])]
    moved[unused[:3]] += 1.0  # reference values the fits of the first repeat never saw
    again = resampled_predictions(Calibration.fit(feature, moved, SMALL), fit_rows=lambda t, r: t[:10], repeats=1)
    assert np.allclose(again[0], out[0])


def test_the_next_reference_run_is_where_the_fit_is_least_certain():
    archs, feature, reference = _synthetic(n=30)
    outlier = archs[-1]
    feature.loc[outlier, "naswot"] = feature["naswot"].max() * 1e6  # far outside what the first rows span
    calibration = Calibration.fit(feature, reference, SMALL)
    rows = list(calibration.archs)
    start = np.array([i for i in range(len(rows)) if rows[i] != outlier][:10])
    grown = calibration.least_certain(start, np.arange(len(rows)), 14, np.random.default_rng(0))
    assert list(grown[:10]) == list(start) and len(set(grown)) == 14
    assert rows[grown[10]] == outlier  # the extrapolated prediction varies most over bootstrap refits
    again = calibration.least_certain(start, np.arange(len(rows)), 14, np.random.default_rng(0))
    assert list(again) == list(grown)


def test_too_few_reference_architectures_is_a_clear_error():
    archs, feature, reference = _synthetic(n=MIN_FIT - 1)
    with pytest.raises(NasProxyError, match=f"at least {MIN_FIT} reference architectures"):
        Calibration.fit(feature, reference, SMALL)


# --- importing a reference -------------------------------------------------------------------------


def _csv(tmp_path, rows, columns="arch,seed,test_acc"):
    path = tmp_path / "trained_elsewhere.csv"
    path.write_text(columns + "\n" + "".join(r + "\n" for r in rows))
    return path


def _rows(n=10, seeds=(0, 1)):
    return [f"{a.id},{s},{0.5 + 0.04 * i + 0.001 * s:.4f}" for i, a in enumerate(SMALL.sample(n, 1)) for s in seeds]


def _import(preset, data, source, protocol=""):
    return import_reference(
        source,
        imported_table_path(preset.study.output, preset.data),
        data,
        preset.space(),
        metric=preset.reference.metric,
        protocol=protocol,
    )


def test_import_makes_the_table_the_reference_with_its_protocol(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path))
    table = _import(preset, digits, _csv(tmp_path, _rows()), "6 epochs on a GPU")
    assert reference_path(preset) == imported_table_path(preset.study.output, preset.data)
    assert len(table) == 20 and table["flops"].gt(0).all() and table["val_acc"].isna().all()
    assert (
        json.loads(imported_table_path(preset.study.output, preset.data).with_suffix(".json").read_text())["protocol"]
        == "6 epochs on a GPU"
    )
    # training rows into an imported truth would mix protocols: refused unless already there
    inside = [ArchSpec.parse(table["arch"].iloc[0])]
    assert len(run_reference(preset.reference, digits, inside, reference_path(preset), progress=False)) == 20
    outside = [a for a in SMALL.archs() if a.id not in set(table["arch"])][:1]
    with pytest.raises(NasProxyError, match="is imported .* lacks"):
        run_reference(preset.reference, digits, outside, reference_path(preset), progress=False)


@pytest.mark.parametrize(
    "rows, columns, message",
    [
        (["d1-w32-relu-none-avgpool,0,0.9", "d9-bad,0,0.8"], "arch,seed,test_acc", "line 3: .*d9-bad"),
        (["d1-w256-relu-none-avgpool,0,0.9"], "arch,seed,test_acc", "line 2: .*not in the study's search space"),
        (["d1-w32-relu-none-avgpool,0,0.9", "d1-w32-relu-none-avgpool,0,0.8"], "arch,seed,test_acc", "line 3: .*twice"),
        (["d1-w32-relu-none-avgpool,0"], "arch,seed", "lacks column 'test_acc'"),
        (["d1-w32-relu-none-avgpool,0,91.5"], "arch,seed,test_acc", "line 2: test_acc 91.5 is not an accuracy"),
        (["d1-w32-relu-none-avgpool,0,"], "arch,seed,test_acc", "line 2: test_acc nan is not an accuracy"),
        (["d1-w32-relu-none-avgpool,0,0.9,1.2"], "arch,seed,test_acc,val_acc", "line 2: val_acc 1.2"),
        (["d1-w32-relu-none-avgpool,0.5,0.9"], "arch,seed,test_acc", "line 2: seed 0.5 is not a whole number"),
    ],
)
def test_bad_rows_are_one_line_and_nothing_is_written(tmp_path, digits, rows, columns, message):
    preset = load_preset(write_preset(tmp_path))
    with pytest.raises(NasProxyError, match=message):
        _import(preset, digits, _csv(tmp_path, rows, columns))
    assert (
        not imported_table_path(preset.study.output, preset.data).exists()
        and not imported_table_path(preset.study.output, preset.data).parent.exists()
    )


def test_reference_import_command_reports_the_ceiling(tmp_path, capsys):
    path = write_preset(tmp_path)
    assert main(["reference", str(path), "--import", str(_csv(tmp_path, _rows())), "--protocol", "elsewhere"]) == 0
    out = capsys.readouterr().out
    assert "imported 20 rows (10 architectures, 2 seed(s))" in out
    assert "seed-to-seed ceiling: seed 0 ranks seed 1 at Spearman +1.000" in out
    assert main(["reference", str(path), "--import", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv" in capsys.readouterr().err
    bad = _csv(tmp_path, ["d1-w32-relu-none-avgpool,0,93.1"])
    assert main(["reference", str(path), "--import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2: test_acc 93.1 is not an accuracy" in err and "Traceback" not in err
    assert main(["reference", str(path), "--protocol", "x", "--archs", "2"]) == 2
    assert "--protocol describes an imported table" in capsys.readouterr().err


def test_a_short_reference_protocol_is_warned_about(tmp_path, capsys):
    preset = load_preset(write_preset(tmp_path))  # 2 epochs
    assert "too short" in protocol_warning(preset.reference, reference_path(preset))
    longer = dataclasses.replace(preset.reference, training=dataclasses.replace(preset.reference.training, epochs=8))
    assert protocol_warning(longer, reference_path(preset)) is None
    assert main(["reference", str(write_preset(tmp_path)), "--archs", "d1-w32-relu-none-avgpool", "--no-progress"]) == 0
    assert "warning: [reference] trains 2 epoch(s): too short" in capsys.readouterr().err


# --- searching with it -----------------------------------------------------------------------------


def _calibrated_preset(tmp_path, digits):
    path = write_preset(tmp_path, extra="", reference="")
    path.write_text(path.read_text() + '\n[score]\nproxy = "calibrated"\nfeatures = ["naswot"]\n')
    preset = load_preset(path)
    train_reference(preset, digits, "10")
    return preset


def test_a_calibrated_study_scores_by_the_fit_and_keeps_it(tmp_path, digits):
    preset = _calibrated_preset(tmp_path, digits)
    reference_archs = select_archs("10", preset.space(), preset.reference)
    study = run_search(preset, digits, n_trials=4, progress=False, verbose=False)
    calibration = Calibration.from_dict(study.user_attrs["calibration"], preset.space())
    assert set(calibration.archs) == {a.id for a in reference_archs}
    naswot = make_proxy("naswot", preset, digits, progress=False)
    for trial in study.trials:
        arch = ArchSpec.parse(trial.user_attrs["arch"])
        expected = calibration.predict(arch, {"naswot": naswot.score(arch, 0)})
        assert trial.value == pytest.approx(expected)
    # more reference rows later do not change the study's scale: it keeps the calibration it recorded
    train_reference(preset, digits, "14")
    again = run_search(preset, digits, n_trials=6, progress=False, verbose=False)
    assert again.user_attrs["calibration"] == study.user_attrs["calibration"]
    report = make_report(preset, plot=False)
    assert report.ranking["proxy_score"].notna().all()
    text = report.markdown()
    assert "## Calibration: fitted on 10 reference architectures (candidate features: naswot" in text
    label = f"calibrated: factors + {' + '.join(calibration.chosen) or 'no scores'}"
    assert "| factors alone |" in text and f"| {label} |" in text
    bias = report.bias.set_index("choice")
    assert list(bias.columns) == [label, "factors alone"] and "depth=1" in bias.index
    assert "Mean rank error per architecture choice" in text
    # what the report prints is the nested estimate against the mean over every reference seed
    truth = read_reference(reference_path(preset)).groupby("arch")["test_acc"].mean()
    estimate = honest_estimate(calibration, reference=truth[list(calibration.archs)], n_boot=0)
    assert report.summary.calibrated.estimate.spearman == pytest.approx(estimate.spearman)


def test_a_calibrated_search_without_a_reference_says_what_to_do(tmp_path, digits):
    path = write_preset(tmp_path)
    path.write_text(path.read_text() + '\n[score]\nproxy = "calibrated"\n')
    with pytest.raises(NasProxyError, match=r"holds 0 architectures .*--import FILE.csv"):
        run_search(load_preset(path), digits, n_trials=2, progress=False, verbose=False)


def test_compare_scores_fitted_proxies_leave_one_out_and_counts_their_reference_runs(tmp_path, digits):
    preset = _calibrated_preset(tmp_path, digits)
    table = read_reference(reference_path(preset))
    comparison = compare_proxies(
        preset, digits, ["factors", "calibrated", "naswot"], n_boot=0, plot=False, progress=False
    )
    rows = comparison.table.set_index("proxy")
    assert rows.loc["calibrated", "reference_runs"] == len(table) and rows.loc["naswot", "reference_runs"] == 0
    fitted = make_proxy("calibrated", preset, digits, progress=False).calibration
    assert comparison.scores["calibrated"].sort_index().equals(fitted.cross_validated().sort_index())


def test_multi_fidelity_refines_only_the_promoted_trials_and_ranks_both(tmp_path, digits):
    preset = _calibrated_preset(tmp_path, digits)
    score = dataclasses.replace(preset.score, refine=["synflow"], reduction_factor=2)
    preset = dataclasses.replace(preset, score=score)
    study = run_search(preset, digits, n_trials=8, progress=False, verbose=False)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and complete and len(states) == 8
    assert {t.user_attrs["fidelity"] for t in pruned} == {0} and {t.user_attrs["fidelity"] for t in complete} == {1}
    refined = Calibration.from_dict(study.user_attrs["calibration_refined"], preset.space())
    assert refined.features == ("naswot", "synflow")
    ranking = make_report(preset, plot=False).ranking
    assert set(ranking["fidelity"]) == {0, 1} and len(ranking) == len({t.user_attrs["arch"] for t in study.trials})
    first = {t.user_attrs["arch"]: t.intermediate_values[1] for t in pruned}
    shown = ranking.set_index("arch")["proxy_score"]
    assert all(shown[a] == pytest.approx(v) for a, v in first.items())  # pruned: ranked by their first fidelity


def test_refine_needs_a_calibrated_proxy(tmp_path):
    path = write_preset(tmp_path)
    path.write_text(path.read_text() + '\n[score]\nproxy = "naswot"\nrefine = ["synflow"]\n')
    with pytest.raises(NasProxyError, match=r"\[score\].refine needs proxy = \"calibrated\""):
        load_preset(path)


def test_the_printed_interval_forecasts_the_figure_on_new_architectures():
    """The interval of a resampled estimate covers the Spearman a new draw of as many architectures gets about 95%
    of the time (the bootstrap of the seen ones alone covered 81-87% on the shared table): simulated rankings whose
    scores are the truth plus noise, the estimate on one draw, the realized figure on another."""
    rng = np.random.default_rng(0)
    n, covered, trials = 30, 0, 100

    def draw() -> tuple[pd.Series, pd.Series]:
        truth = pd.Series(rng.normal(size=n), index=[f"a{i}" for i in range(n)])
        return truth, truth + rng.normal(scale=0.6, size=n)

    for trial in range(trials):
        truth, scores = draw()
        # five repetitions of a resampled ranking: the same architectures, the fits' noise apart
        predictions = [scores + rng.normal(scale=0.05, size=n) for _ in range(5)]
        estimate = resampled_agreement(predictions, truth, n_boot=200, seed=trial)
        new_truth, new_scores = draw()
        realized = stats.spearmanr(new_scores, new_truth).statistic
        covered += estimate.spearman_low <= realized <= estimate.spearman_high
        assert estimate.spearman_low < estimate.spearman < estimate.spearman_high
    assert covered / trials >= 0.94, covered  # the bootstrap's own interval covers 91 of these 100
