"""Does the estimate the tool prints predict architectures it has never seen? Choose on half, score the other half.

For each design of the calibrated ranking (a pool of candidate features, one fidelity or two), on
the preset's reference table:

1. the honest estimate the tool prints (nested 5-fold repeated 20 times on all architectures);
2. many random half splits (A, B): the estimate computed on A alone, against the Spearman the
   design fitted on A reaches on B, which nothing of A's fit has seen. Their difference, over the
   splits, is how far the printed figure is from what unseen architectures give;
3. the same for the whole selection: on each split the design with the best estimate on A is
   picked (as a user picking from the frontier would), and scored on B.

Scores come from the frontier's cache (``nas-proxy frontier PRESET`` computes them):

    python benchmarks/calibration.py fashion_mnist --data-root ../shared/data --short 0.02,0.05 --ipc 10
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from _common import publish
from scipy import stats

from nas_proxy import ArchSpec, load_dataset, load_preset
from nas_proxy.artifacts import reference_table_path
from nas_proxy.reference import Agreement, fit_reference, read_reference, reference_accuracy
from nas_proxy.results._format import markdown_table
from nas_proxy.results._methods import base_scores, short_label
from nas_proxy.scoring import Calibration, honest_estimate


def predict_half(
    first: Calibration, refined: Calibration | None, train: np.ndarray, test: np.ndarray, reduction_factor: int
) -> np.ndarray:
    """The design fitted on rows ``train`` ranking rows ``test`` as a study would (promotion among ``test``)."""
    cheap = first.predict_rows(train, test)
    if refined is not None:
        promoted = np.argsort(-cheap, kind="stable")[: math.ceil(len(test) / reduction_factor)]
        cheap[promoted] = refined.predict_rows(train, test)[promoted]
    return cheap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument(
        "--short",
        default="0.02,0.05",
        help="short-training budgets (fractions of the reference's steps) whose cached scores the designs may use",
    )
    parser.add_argument("--ipc", default="10", help="random-subset sizes whose cached scores the designs may use")
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--inner-repeats", type=int, default=5, help="repeats of the estimate computed on each half")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root)
    table = read_reference(reference_table_path(preset.study.output, preset.data, preset.reference))
    truth = reference_accuracy(table, preset.reference.metric)
    fit_truth = fit_reference(table, preset.reference)[truth.index]
    space = preset.space()
    archs = [ArchSpec.parse(a) for a in truth.index]
    short = [float(f) for f in args.short.split(",") if f]
    ipcs = [int(i) for i in args.ipc.split(",") if i]
    scored = base_scores(
        preset, data, archs, families=("calibrated", "subset") if ipcs else ("calibrated",), ipcs=ipcs, short=short
    )
    scores = pd.DataFrame({label: s.scores for label, s in scored.items()}).loc[truth.index]
    rf = preset.score.reduction_factor
    zero = ["grad_norm", "naswot"]
    designs: dict[str, tuple[list[str], list[str] | None]] = {
        "factors alone": ([], None),
        "factors + grad_norm + naswot": (zero, None),
        "factors + grad_norm + naswot + synflow": ([*zero, "synflow"], None),
    }
    for label in [short_label(f) for f in short] + [f"subset ipc {i}" for i in ipcs]:
        designs[f"factors + {label}"] = ([label], None)
        designs[f"factors + grad_norm + naswot + {label}"] = ([*zero, label], None)
        designs[f"factors + grad_norm + naswot, best 1/{rf} + {label}"] = (zero, [*zero, label])
        designs[f"factors, best 1/{rf} + {label}"] = ([], [label])

    def calibrations(rows: pd.Index) -> dict[str, tuple[Calibration, Calibration | None]]:
        return {
            name: (
                Calibration.fit(scores.loc[rows, first], fit_truth[rows], space),
                None if refined is None else Calibration.fit(scores.loc[rows, refined], fit_truth[rows], space),
            )
            for name, (first, refined) in designs.items()
        }

    whole = calibrations(truth.index)
    estimates = {name: honest_estimate(first, refined, rf, truth) for name, (first, refined) in whole.items()}

    rng = np.random.default_rng(0)
    n = len(truth)
    half = n // 2
    records = []
    for split in range(args.splits):
        order = rng.permutation(n)
        a, b = np.sort(order[:half]), np.sort(order[half:])
        on_a = calibrations(truth.index[a])
        for name, (first, refined) in on_a.items():
            estimate = honest_estimate(
                first, refined, rf, truth[truth.index[a]], repeats=args.inner_repeats, n_boot=0, seed=split
            ).spearman
            full_first, full_refined = whole[name]
            predicted = predict_half(full_first, full_refined, a, b, rf)
            actual = stats.spearmanr(predicted, truth.to_numpy()[b]).statistic
            records.append({"split": split, "design": name, "estimate": estimate, "actual": actual})
    frame = pd.DataFrame(records)
    chosen = frame.loc[frame.groupby("split")["estimate"].idxmax()]

    rows = []

    def summary(label: str, group: pd.DataFrame, estimate: Agreement | None) -> None:
        diff = group["estimate"] - group["actual"]
        rows.append(
            {
                "design": label,
                "printed estimate, all 50 [95% CI]": ""
                if estimate is None
                else f"{estimate.spearman:+.3f} {estimate.interval('spearman')}",
                "top-20 ρ": "" if estimate is None else f"{estimate.top_spearman[20]:+.2f}",
                "P@10": "" if estimate is None else f"{estimate.precision[10]:.2f}",
                "estimate on A": f"{group['estimate'].mean():+.3f}",
                "actual on B": f"{group['actual'].mean():+.3f}",
                "estimate - actual: mean [5%, 95%]": f"{diff.mean():+.3f} [{diff.quantile(0.05):+.3f}, "
                f"{diff.quantile(0.95):+.3f}]",
                "RMS": f"{math.sqrt((diff**2).mean()):.3f}",
            }
        )

    for name in designs:
        summary(name, frame[frame["design"] == name], estimates[name])
    summary("the design with the best estimate on A, scored on B", chosen, None)
    picks = chosen["design"].value_counts()
    notes = (
        f"{n} reference architectures ({preset.reference.metric}, mean over {table['seed'].nunique()} seeds; "
        f"fits learn from seed(s) {', '.join(map(str, preset.reference.seed_values))}). Printed estimate: "
        f"nested 5-fold x 20 on all of them. Half splits: {args.splits} random splits into A ({half}) and B "
        f"({n - half}); the estimate on A is nested 5-fold x {args.inner_repeats} on A alone (fits on "
        f"{half * 4 // 5}), the actual is the Spearman on B of the design fitted on all of A (fits on {half}). "
        f"The selection row picks, on each split, the design whose estimate on A is best: picked "
        + ", ".join(f"{name} {count}x" for name, count in picks.items())
        + "."
    )
    publish(
        f"Honest estimates: {preset.study.name}, choose on half, score the other half",
        markdown_table(pd.DataFrame(rows)),
        notes,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
