import math
import os
import re

import numpy as np
import optuna
import pandas as pd
import pytest
from presets import reference_path, write_preset
from scipy import stats

import nas_proxy.method._train as train_module
from nas_proxy import (
    ArchSpec,
    NasProxyError,
    load_dataset,
    load_preset,
    load_search_space,
    load_study,
    make_report,
    open_study,
    rank_agreement,
    run_reference,
    run_search,
)
from nas_proxy._io import SharedTable, read_table
from nas_proxy.cli import main
from nas_proxy.config import ReferenceConfig
from nas_proxy.reference import Agreement, read_reference
from nas_proxy.results._format import top1
from nas_proxy.study import enqueue_archs, select_archs

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- [reference] config and architecture selection ------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "setting", "ran"),
    [
        ("digits", "auto", "color_crop_cutout_scale_rotate"),
        ("fashion_mnist", "auto", "color_crop_cutout_flip_scale_rotate"),
        ("FashionMNIST", "crop_flip", "crop_flip"),
        ("digits", "none", "none"),
    ],
)
def test_the_protocol_names_the_augmentation_that_ran(tmp_path, dataset, setting, ran):
    """`auto` is the data set's strategy: the text says which one trained the reference (issue 21)."""
    from nas_proxy.reference._reference import reference_protocol

    config = ReferenceConfig.from_dict({"dsa_strategy": setting})
    text = reference_protocol(config, tmp_path / "reference.csv", dataset)
    assert text.endswith(f"augmentation {ran}") and "auto" not in text


def test_reference_table_splits_protocol_from_its_own_keys(tmp_path):
    config = load_preset(write_preset(tmp_path, reference="seeds = 2\nlr = 0.05\nsample_seed = 3")).reference
    assert (config.training.epochs, config.training.lr, config.seeds, config.sample_seed) == (2, 0.05, 2, 3)
    assert config.seed_values == [0, 1]
    assert ReferenceConfig.from_dict({}).training.epochs == 50  # full data: not the 1000 epochs of a DM set


@pytest.mark.parametrize(
    "body, message",
    [
        ("bogus = 1", r"\[reference\]: unknown key 'bogus'"),
        ("seeds = 0", r"\[reference\].seeds must be positive, got 0"),
        ("lr = 'x'", r"\[reference\].lr must be float"),
        ("metric = 'loss'", "metric = 'loss' is not allowed"),
    ],
)
def test_bad_reference_table_names_the_key(tmp_path, body, message):
    with pytest.raises(NasProxyError, match=message):
        load_preset(write_preset(tmp_path, reference=body))


def test_select_archs_sample_is_seeded_drawn_from_the_reference_space(tmp_path):
    preset = load_preset(write_preset(tmp_path, space="nas720", reference='search_space = "small"'))
    archs = select_archs("12", preset.space(), preset.reference)
    assert len(set(archs)) == 12 and archs == select_archs("12", preset.space(), preset.reference)
    small = load_search_space("small")
    assert all(arch in small for arch in archs)
    assert select_archs(
        "d1-w32-relu-none-avgpool, d2-w64-relu-batchnorm-maxpool", preset.space(), preset.reference
    ) == [ArchSpec.parse("d1-w32-relu-none-avgpool"), ArchSpec.parse("d2-w64-relu-batchnorm-maxpool")]
    assert len(select_archs("all", preset.space(), preset.reference)) == 720  # `all` is the study's space
    with pytest.raises(NasProxyError, match="holds 108; ask for fewer"):
        select_archs("200", preset.space(), preset.reference)
    reseeded = load_preset(
        write_preset(tmp_path, name="b", space="nas720", reference='search_space = "small"\nsample_seed = 1')
    )
    assert select_archs("12", reseeded.space(), reseeded.reference) != archs


def test_reference_space_must_lie_inside_the_study_space(tmp_path):
    preset = load_preset(write_preset(tmp_path, reference='search_space = "nas720_cpu"'))  # study: small
    with pytest.raises(NasProxyError, match="not in the study's space 'small'"):
        select_archs("3", preset.space(), preset.reference)


def test_select_archs_errors_and_top_k(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path))  # the 108-network space: no width 256
    with pytest.raises(NasProxyError, match="not in search space"):
        select_archs("d1-w256-relu-none-avgpool", preset.space(), preset.reference)
    with pytest.raises(NasProxyError, match="needs a study"):
        select_archs("top-3", preset.space(), preset.reference)
    with pytest.raises(NasProxyError, match="top-K"):
        select_archs("top-x", preset.space(), preset.reference, study=None)
    study = run_search(preset, digits, n_trials=4, progress=False)
    best = sorted((t for t in study.trials), key=lambda t: -t.value)
    top = select_archs("top-2", preset.space(), preset.reference, study)
    assert top[0].id == best[0].user_attrs["arch"] and len(top) == 2


# --- the reference table ---------------------------------------------------------------------------


def test_reference_appends_rows_skips_done_and_survives_a_crash(tmp_path, digits, monkeypatch):
    preset = load_preset(write_preset(tmp_path, reference="seeds = 2\njobs = 1"))  # one at a time: exact counts
    archs = select_archs("3", preset.space(), preset.reference)
    real_train = train_module._train
    calls = []

    def crash_on_third(arch, *args, **kwargs):
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(arch.id)
        return real_train(arch, *args, **kwargs)

    monkeypatch.setattr(train_module, "_train", crash_on_third)
    path = reference_path(preset)
    with pytest.raises(RuntimeError):
        run_reference(preset.reference, digits, archs, path, progress=False)
    table = read_reference(path)
    # finished rows kept; seed by seed, so an early stop leaves more architectures with one seed each
    assert list(zip(table["arch"], table["seed"])) == [(archs[0].id, 0), (archs[1].id, 0)]
    monkeypatch.setattr(train_module, "_train", real_train)
    table = run_reference(preset.reference, digits, archs, path, progress=False)
    assert len(table) == 6 and table.groupby("arch").size().eq(2).all()
    assert table["test_acc"].between(0, 1).all() and (table["train_size"] == len(digits.train)).all()
    before = path.read_bytes()
    run_reference(preset.reference, digits, archs, path, progress=False)  # nothing left to do: nothing retrained
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".*.tmp"))


def test_reference_refuses_a_table_built_on_other_data(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path))
    archs = select_archs("1", preset.space(), preset.reference)
    path = reference_path(preset)
    run_reference(preset.reference, digits, archs, path, progress=False)
    other = load_dataset("digits", val_fraction=0.2)  # another split -> another fingerprint
    before = path.read_bytes()
    with pytest.raises(NasProxyError, match="built on other data"):
        run_reference(
            preset.reference,
            other,
            select_archs("2", preset.space(), preset.reference),
            path,
            progress=False,
        )
    assert path.read_bytes() == before


def test_protocol_change_gives_another_table(tmp_path):
    a = load_preset(write_preset(tmp_path))
    b = load_preset(write_preset(tmp_path, name="b", reference="lr = 0.1"))
    c = load_preset(write_preset(tmp_path, name="c", reference="seeds = 3"))
    assert reference_path(a) != reference_path(b)
    assert reference_path(a) == reference_path(c)  # more seeds add rows to the same table


def test_corrupt_reference_table_is_a_clear_error(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("arch,seed\nx,0\n")
    with pytest.raises(NasProxyError, match="lacks column 'val_acc'"):
        read_reference(path)


def test_a_table_cell_pandas_cannot_convert_is_one_short_line(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text(f"arch,seed\nx,{'9x' * 1_000_000}\n")
    with pytest.raises(
        NasProxyError, match=r"table\.csv: not a readable reference table \(could not .*; move it"
    ) as bad:
        read_table(path, ["arch", "seed"], "reference table", "move it away", dtype={"seed": float})
    assert len(str(bad.value)) < 400


def test_an_unreadable_table_is_one_line(tmp_path):
    path = tmp_path / "reference.csv"
    path.write_text("arch,seed\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("this user reads a file whatever its permissions (root)")
    with pytest.raises(NasProxyError, match=r"cannot read .*reference\.csv \(Permission denied\); check its perm"):
        read_reference(path)


# --- importing a table trained elsewhere: every cell checked, one line, nothing written ------------------------

A, H = "d1-w32-relu-none-avgpool", "arch,seed,test_acc"
HUGE = 5_000_000  # characters: a cell an error message must not echo whole
BAD_IMPORTS = {  # name: (the CSV's lines, what the one line says after the file's name)
    "case_duplicate": ([H, f"{A},0,0.5", f"{A.upper()},0,0.6"], f"line 3: {A} seed 0 appears twice"),
    "spelt_duplicate": ([H, f"{A},0,0.5", f" d01-w032-{A[7:]},0.0,0.6"], f"line 3: {A} seed 0 appears twice"),
    "seed_huge": ([H, f"{A},1e20,0.5"], "line 2: seed 100000000000000000000 is not a whole number"),
    "seed_text": ([H, f"{A},abc,0.5"], "line 2: seed 'abc' is not a whole number"),
    "seed_inf": ([H, f"{A},inf,0.5"], "line 2: seed inf is not a whole number"),
    "seed_bool": ([H, f"{A},True,0.5"], "line 2: seed 'True' is not a whole number"),
    "seed_negative": ([H, f"{A},-1,0.5"], "line 2: seed -1 is not a whole number"),
    "accuracy_text": ([H, f"{A},0,0.5", f"{A},1,abc"], "line 3: test_acc 'abc' is not an accuracy"),
    "accuracy_bool": ([H, f"{A},0,True"], "line 2: test_acc 'True' is not an accuracy"),
    "accuracy_huge": ([H, f"{A},0,{'x' * HUGE}"], "line 2: test_acc 'xxxx.* is not an accuracy"),
    "arch_huge": ([H, f"{'d' * HUGE},0,0.5"], "line 2: arch 'dddd.* is not an architecture id"),
    "depth_huge": ([H, f"d{'9' * HUGE}-w32-relu-none-avgpool,0,0.5"], "line 2: arch 'd999.* is not an architecture"),
    "seconds_negative": ([f"{H},seconds", f"{A},0,0.5,-1"], "line 2: seconds -1 is not a number of seconds"),
    "seconds_text": ([f"{H},seconds", f"{A},0,0.5,1h"], "line 2: seconds '1h' is not a number of seconds"),
    "epochs_fraction": ([f"{H},epochs", f"{A},0,0.5,1.5"], "line 2: epochs 1.5 is not a whole number"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMPORTS))
def test_a_bad_cell_to_import_is_one_line_and_nothing_is_written(name, tmp_path, capsys):
    lines, message = BAD_IMPORTS[name]
    preset = write_preset(tmp_path)
    source = tmp_path / "elsewhere.csv"
    source.write_text("\n".join(lines) + "\n")
    files = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}
    capsys.readouterr()
    assert main(["reference", str(preset), "--import", str(source), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {re.escape(str(source))}, {message}", err), err[:500]
    assert err.count("\n") == 1 and len(err) < 400  # the file, line, column, value (cut short) and the fix
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()} == files


def test_an_import_sizes_each_architecture_once_and_keeps_canonical_ids(tmp_path, digits, monkeypatch):
    import nas_proxy.reference._reference as reference_module
    from nas_proxy import import_reference
    from nas_proxy.artifacts import imported_table_path

    sized = []
    network_size = reference_module.network_size

    def counted(arch, data):
        sized.append(arch)
        return network_size(arch, data)

    monkeypatch.setattr(reference_module, "network_size", counted)
    preset = load_preset(write_preset(tmp_path))
    archs = [a.id for a in preset.space().sample(3, 0)]
    rows = [f"{arch.upper() if seed % 2 else arch},{seed},0.5,{seed / 10},6" for arch in archs for seed in range(40)]
    source = tmp_path / "elsewhere.csv"
    source.write_text("arch,seed,test_acc,seconds,epochs\n" + "\n".join(rows) + "\n")
    table = import_reference(
        source, imported_table_path(preset.study.output, preset.data), digits, preset.space(), metric="test_acc"
    )
    assert sorted(a.id for a in sized) == sorted(archs)
    assert len(table) == 120 and set(table["arch"]) == set(archs) and table["seed"].tolist() == list(range(40)) * 3
    assert table["epochs"].eq(6).all() and table["seconds"].iloc[1] == pytest.approx(0.1)


# --- rank agreement ----------------------------------------------------------------------------------


def test_rank_agreement_matches_scipy_and_reads_regret():
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.uniform(0.7, 0.9, 30), index=[f"a{i}" for i in range(30)])
    proxy = reference + rng.normal(0, 0.03, 30)
    out = rank_agreement(proxy, reference, n_boot=300)
    assert out.n == 30
    assert out.spearman == pytest.approx(stats.spearmanr(proxy, reference).statistic)
    assert out.kendall == pytest.approx(stats.kendalltau(proxy, reference).statistic)
    assert out.spearman_low < out.spearman < out.spearman_high
    top5 = reference.sort_values(ascending=False).index[:5]
    assert out.top_spearman[5] == pytest.approx(stats.spearmanr(proxy[top5], reference[top5]).statistic)
    assert not math.isnan(out.top_spearman[10]) and math.isnan(out.top_spearman[20])  # top-k needs n >= 2k
    assert out.top1_arch == proxy.idxmax()
    assert out.regret == pytest.approx(100 * (reference.max() - reference[proxy.idxmax()]))


def test_rank_agreement_is_signed_and_handles_few_pairs():
    reference = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5], index=list("abcde"))
    assert rank_agreement(-reference, reference, n_boot=50).spearman == pytest.approx(-1)
    perfect = rank_agreement(reference, reference, n_boot=50)
    assert perfect.spearman == pytest.approx(1) and perfect.regret == 0 and math.isnan(perfect.top_spearman[10])
    few = rank_agreement(reference[:2], reference.rename(lambda i: i), n_boot=50)
    assert few.n == 2 and math.isnan(few.spearman_low)
    none = rank_agreement(reference, pd.Series(dtype=float))
    assert none.n == 0 and none.top1_arch is None


# --- correlation during search, and the report ---------------------------------------------------------


def test_search_logs_correlation_against_the_reference(tmp_path, digits, capsys):
    preset = load_preset(write_preset(tmp_path))
    archs = select_archs("5", preset.space(), preset.reference)
    run_reference(preset.reference, digits, archs, reference_path(preset), progress=False)
    enqueue_archs(open_study(preset), archs)
    study = run_search(preset, digits, n_trials=7, progress=True)
    scored = [t for t in study.trials if "reference_acc" in t.user_attrs]
    assert len(scored) >= 5
    report = make_report(preset, n_boot=100, plot=False)
    assert study.user_attrs["reference_n"] == report.summary.agreement.n >= 5
    assert study.user_attrs["reference_spearman"] == pytest.approx(report.summary.agreement.spearman, nan_ok=True)
    assert "Spearman" in capsys.readouterr().out  # printed as trials complete


def test_report_writes_files_and_works_on_a_running_study(tmp_path, digits, capsys):
    preset_path = write_preset(tmp_path)
    preset = load_preset(preset_path)
    assert main(["search", str(preset_path), "--archs", "6", "--n-trials", "6", "--no-progress"]) == 0
    assert main(["reference", str(preset_path), "--archs", "6", "--no-progress"]) == 0
    open_study(preset).ask()  # a trial still running, as when another worker is busy
    capsys.readouterr()
    assert main(["report", str(preset_path), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out and "1 running" in out and "top-1 regret" in out
    folder = preset.study.output / "report"
    ranking = pd.read_csv(folder / "ranking.csv")
    assert len(ranking) == 6 and ranking["proxy_score"].is_monotonic_decreasing
    assert ranking["reference_test_acc"].notna().all()
    assert (folder / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rank | arch |" in (folder / "report.md").read_text()


def test_report_without_a_study_is_a_clear_error(tmp_path, capsys):
    path = write_preset(tmp_path)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no study yet") and "nas-proxy search" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # reading a report creates nothing


def test_reference_command_bad_arch_exits_2(tmp_path, capsys):
    assert main(["reference", str(write_preset(tmp_path)), "--archs", "d9-w1-relu-none-none"]) == 2
    assert "not in search space" in capsys.readouterr().err


def test_two_runs_sharing_a_table_never_write_a_row_twice(tmp_path, digits):
    preset = load_preset(write_preset(tmp_path))
    row = {
        "arch": "d1-w32-relu-none-avgpool",
        "seed": 0,
        "val_acc": 0.5,
        "test_acc": 0.5,
        "params": 1,
        "flops": 1,
        "seconds": 1.0,
        "epochs": 2,
        "train_size": 1,
        "device": "cpu",
        "fingerprint": digits.fingerprint,
    }
    path = reference_path(preset)
    SharedTable(path, read_reference).append(row)
    SharedTable(path, read_reference).append({**row, "val_acc": 0.9})  # a second process finished the same network
    table = read_reference(path)
    assert len(table) == 1 and table["val_acc"].iloc[0] == 0.5


def test_regret_is_against_the_best_of_the_whole_reference_table():
    reference = pd.Series([0.90, 0.95, 0.80, 0.99], index=list("abcd"))
    proxy = pd.Series([0.5, 0.7, 0.6], index=list("abc"))  # d, the best network, was never scored
    out = rank_agreement(proxy, reference, n_boot=0)
    assert out.top1_arch == "b" and out.best_arch == "d"
    assert out.regret == pytest.approx(100 * (0.99 - 0.95))


def test_too_few_pairs_give_no_correlation_and_the_report_says_so():
    reference = pd.Series([0.1, 0.2, 0.3, 0.4], index=list("abcd"))
    out = rank_agreement(reference, reference, n_boot=100)
    assert out.n == 4 and math.isnan(out.spearman) and math.isnan(out.kendall)
    assert out.statistic("spearman") == "too few (n < 5)"
    assert rank_agreement(
        reference.reindex(list("abcde"), fill_value=0.5), reference.reindex(list("abcde"), fill_value=0.5), n_boot=0
    ).spearman == pytest.approx(1)


def test_a_tie_for_the_best_score_is_reported_and_regret_is_its_expected_value():
    reference = pd.Series([0.99, 0.80, 0.90, 0.70, 0.60, 0.50], index=list("abcdef"))
    proxy = pd.Series([0.9, 0.9, 0.9, 0.1, 0.2, 0.3], index=list("abcdef"))  # a three-way tie at the top
    out = rank_agreement(proxy, reference, n_boot=0)
    assert out.top1_ties == 3 and out.ties == 3
    assert out.top1_reference == pytest.approx((0.99 + 0.80 + 0.90) / 3)
    assert out.regret == pytest.approx(100 * (0.99 - out.top1_reference))
    assert top1(out).startswith("3-way tie")


def test_precision_at_k_only_where_k_is_small_against_n():
    rng = np.random.default_rng(1)
    for n, shown in ((12, ()), (20, (5,)), (40, (5, 10))):
        reference = pd.Series(rng.uniform(0.5, 0.9, n), index=[f"a{i}" for i in range(n)])
        out = rank_agreement(reference, reference, n_boot=0)
        for k in (5, 10, 20):
            assert math.isnan(out.precision[k]) == (k not in shown), (n, k)
            if k in shown:
                assert out.precision[k] == 1 and out.chance(k) == pytest.approx(k / n)
                assert out.precision_text(k) == f"1.00 (chance {k / n:.2f})"
        assert math.isnan(out.top_spearman[10]) == (n < 20)  # top-k Spearman needs n >= 2k


def test_report_prints_no_nan_with_an_empty_or_tiny_reference(tmp_path, digits, capsys):
    preset_path = write_preset(tmp_path)
    preset = load_preset(preset_path)
    assert main(["search", str(preset_path), "--n-trials", "3", "--no-progress"]) == 0
    for _ in range(2):  # no reference at all, then one reference architecture
        report = make_report(preset, n_boot=50, plot=False)
        text = report.markdown()
        assert (
            not re.search(r"\bnan\b", text.lower())
            and "too few (n < 5)" in text
            and f"| {report.summary.agreement.n} |" in text
        )
        run_reference(
            preset.reference,
            digits,
            select_archs("top-1", preset.space(), preset.reference, load_study(preset)),
            reference_path(preset),
            progress=False,
        )
    best = read_reference(reference_path(preset))["test_acc"].max()
    assert f"{100 * best:.2f}%" in report.markdown()  # the best of the table, whatever was scored


def test_an_agreement_reads_back_from_its_table_row():
    rng = np.random.default_rng(2)
    reference = pd.Series(rng.uniform(0.5, 0.9, 40), index=[f"a{i}" for i in range(40)])
    plain = rank_agreement(reference + rng.normal(0, 0.05, 40), reference, n_boot=50)
    row = plain.row()
    assert list(row)[:8] == [
        "n",
        "ties",
        "spearman",
        "spearman_low",
        "spearman_high",
        "kendall",
        "kendall_low",
        "kendall_high",
    ]
    assert {"top20_spearman", "precision10", "chance10", "top1_arch", "regret"} <= set(row)
    assert pd.Series(Agreement.from_row(row).row()).equals(pd.Series(row))
    framed = pd.DataFrame([row, {"n": 3}]).iloc[0]  # a table row: absent figures read as NaN
    assert pd.Series(Agreement.from_row(framed).row()).equals(pd.Series(row))
