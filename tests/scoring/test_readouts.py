"""Learning curves, readouts and the scoring-rule contract: every trained score keeps its run, a readout is one
class, and a proxy's cache key comes from the settings it declares."""

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from presets import write_preset

import nas_proxy.scoring._proxies as proxies_module
from nas_proxy import ArchSpec, load_preset, run_search
from nas_proxy.artifacts import score_table_path
from nas_proxy.cli import main
from nas_proxy.errors import ArgumentError, NasProxyError
from nas_proxy.method import READOUTS, LearningCurve, Readout, TrainConfig, train_candidate, train_candidates
from nas_proxy.scoring import Measurement, Proxy, make_proxy, score_archs
from nas_proxy.scoring._cache import read_scores
from nas_proxy.scoring._proxies import runtime

ARCHS = [ArchSpec.parse(a) for a in ("d1-w32-relu-none-avgpool", "d2-w32-relu-batchnorm-maxpool")]


def test_a_run_keeps_the_loss_of_every_step_and_the_accuracy_where_asked(digits):
    config = TrainConfig(epochs=3, batch_size=64, dsa_strategy="none")
    train = digits.sample_per_class(20, seed=0)  # 200 images: 4 batches a pass, 12 steps
    result = train_candidate(ARCHS[0], train, digits, config, curve_at=(0.5, 0.25))
    curve = result.curve
    assert len(curve.losses) == 12 and all(np.isfinite(curve.losses))
    assert curve.losses[0] > curve.losses[-1]  # it learned
    assert sorted(curve.val_acc) == [0.25, 0.5, 1.0] and curve.val_acc[1.0] == result.val_acc
    # asking for the curve changes nothing of the run: the same final accuracy and losses without the points
    plain = train_candidate(ARCHS[0], train, digits, config)
    assert plain.val_acc == result.val_acc and plain.curve.losses == curve.losses and list(plain.curve.val_acc) == [1.0]
    assert LearningCurve.from_dict(json.loads(json.dumps(curve.to_dict()))) == curve
    with pytest.raises(ArgumentError, match=r"curve_at holds 1.0; each must be a fraction of a run"):
        train_candidates(ARCHS, train, digits, config, curve_at=(1.0,))


def test_a_warm_start_trains_on_its_set_first_and_keeps_the_second_run(digits):
    config = TrainConfig(epochs=2, batch_size=64, dsa_strategy="none")
    warm = (digits.sample_per_class(10, seed=1), TrainConfig(epochs=20, batch_size=100, dsa_strategy="none"))
    train = digits.sample_per_class(20, seed=0)
    cold = train_candidate(ARCHS[1], train, digits, config)
    warmed = train_candidate(ARCHS[1], train, digits, config, warm=warm)
    assert len(warmed.curve.losses) == len(cold.curve.losses) == 8  # the curve is the run on `train`
    assert warmed.curve.losses[0] < cold.curve.losses[0] - 0.3  # it starts where the warm set left it
    again = train_candidate(ARCHS[1], train, digits, config, warm=warm)
    assert (again.val_acc, again.curve.losses) == (warmed.val_acc, warmed.curve.losses)  # seeded: the same
    together = train_candidates(ARCHS, train, digits, dataclasses.replace(config, jobs=2), warm=warm)
    # side by side as alone, but for the kernels' summation order (one kernel thread each, here every one)
    assert together[1].curve.losses == pytest.approx(warmed.curve.losses, abs=1e-2)


def test_each_readout_reads_what_it_says():
    losses = tuple(float(2 * (t + 1) ** -0.5 + 0.3) for t in range(400))
    curve = LearningCurve(losses, {0.25: 0.5, 0.5: 0.6, 0.75: 0.7, 1.0: 0.8})
    assert READOUTS["val_acc"].read(curve) == 0.8
    assert READOUTS["tse"].read(curve) == pytest.approx(-np.mean(losses))
    assert READOUTS["tse_e"].read(curve) == pytest.approx(-np.mean(losses[300:]))
    assert READOUTS["val_auc"].read(curve) == pytest.approx(0.65)
    # the moving average weighs the end: between the last quarter's mean and the last loss
    assert -np.mean(losses[300:]) < READOUTS["tse_ema"].read(curve) < -losses[-1]
    # the power law's value at 10 times the run, from its tail: 2 / sqrt(4001) + 0.3, well below the last loss
    # (within the error of fitting stretch means of a convex curve)
    assert READOUTS["loss_fit"].read(curve) == pytest.approx(-(2 * 4001**-0.5 + 0.3), rel=2e-3)
    assert -losses[-1] + 0.05 < READOUTS["loss_fit"].read(curve)
    noisy = LearningCurve(tuple(np.random.default_rng(0).normal(1.0, 0.1, 3)), {1.0: 0.5})
    assert np.isfinite(READOUTS["loss_fit"].read(noisy))  # too short to fit: the last stretch's loss
    # every readout's settings name it, so none shares scores with another
    assert len({json.dumps(r.settings(), sort_keys=True) for r in READOUTS.values()}) == len(READOUTS)


def test_a_new_proxy_is_one_class_and_its_fields_key_its_scores(tmp_path, digits):
    """The contract: a field is a setting unless made with runtime(); nothing is written by hand, so two proxies
    that differ in any setting never share a cached score."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Depth(Proxy):
        weight: float
        data: Any = runtime()

        def measure(self, archs, seed, on_measured=None):
            out = [Measurement(self.weight * arch.depth) for arch in archs]
            for index, measurement in enumerate(out):
                if on_measured is not None:
                    on_measured(index, measurement)
            return out

    preset = load_preset(write_preset(tmp_path))
    one, two = Depth(name="depth", weight=1.0, data=digits), Depth(name="depth", weight=2.0, data=digits)
    assert one.settings == {"proxy": "depth", "weight": 1.0}
    assert score_archs(two, ARCHS, [0], digits, preset.study.output, progress=False)["score"].tolist() == [2.0, 4.0]
    assert score_archs(one, ARCHS, [0], digits, preset.study.output, progress=False)["score"].tolist() == [1.0, 2.0]
    assert one.scores(ARCHS, 0) == [1.0, 2.0]


def test_readouts_of_one_proxy_share_its_runs_and_never_its_scores(tmp_path, digits, monkeypatch):
    path = write_preset(tmp_path, extra="", reference="")
    base = load_preset(path)

    def read_as(readout):
        score = dataclasses.replace(base.score, proxy="short", readout=readout, short_epochs=2.0)
        return dataclasses.replace(base, score=score)

    final = make_proxy("short", read_as("val_acc"), digits)
    tse = make_proxy("short", read_as("tse_e"), digits)
    area = make_proxy("short", read_as("val_auc"), digits)
    assert final.settings != tse.settings and final.measured_settings() == tse.measured_settings()
    assert area.measured_settings() == {**final.measured_settings(), "val_points": [0.25, 0.5, 0.75]}
    first = score_archs(final, ARCHS, [0], digits, base.study.output, progress=False)
    monkeypatch.setattr(proxies_module, "train_candidates", lambda *a, **k: pytest.fail("trained again"))
    again = score_archs(tse, ARCHS, [0], digits, base.study.output, progress=False)
    table = read_scores(score_table_path(base.study.output, "short", final.measured_settings(), digits))
    curves = [LearningCurve.from_dict(json.loads(c)) for c in table["curve"]]
    assert first["score"].tolist() == [c.val_acc[1.0] for c in curves] == table["value"].tolist()
    assert again["score"].tolist() == pytest.approx([-np.mean(c.losses[-len(c.losses) // 4 :]) for c in curves])


def test_a_study_keeps_each_trial_s_runs_and_scores_it_by_its_readout(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path, extra="[score]\nproxy = 'subset'\nreadout = 'tse_e'\nseeds = 2"))
    study = run_search(preset, digits, n_trials=3, progress=False, verbose=False)
    trained = [t for t in study.trials if not t.user_attrs.get("cached")]
    assert len(trained) >= 2
    for trial in trained:
        curves = [LearningCurve.from_dict(c) for c in trial.user_attrs["curves"]]
        assert len(curves) == 2  # one per seed
        assert trial.value == pytest.approx(np.mean([READOUTS["tse_e"].read(c) for c in curves]))


def test_a_bad_readout_is_one_line(tmp_path, capsys):
    with pytest.raises(NasProxyError, match=r"\[score\].readout = .tse2. is not a readout; choose from val_acc, tse"):
        load_preset(write_preset(tmp_path, extra="[score]\nreadout = 'tse2'"))
    with pytest.raises(NasProxyError, match=r"readout = .tse. reads a training run, and proxy = 'naswot' trains none"):
        load_preset(write_preset(tmp_path, extra="[score]\nproxy = 'naswot'\nreadout = 'tse'"))
    path = str(write_preset(tmp_path))
    assert main(["frontier", path, "--families", "short", "--readouts", "val_acc,magic", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--readouts holds 'magic', not a readout; choose from val_acc" in err, err
    assert main(["frontier", path, "--families", "sample", "--samples", "1.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--samples holds 1.5; each must be a fraction of the training data" in err, err
    assert not (tmp_path / "out" / "scores").exists()  # refused before any scoring


def test_every_readout_is_a_readout():
    assert all(isinstance(r, Readout) and r.name == name for name, r in READOUTS.items())
