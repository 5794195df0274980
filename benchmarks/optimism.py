"""Does the printed estimate forecast what a calibration gets on architectures it never saw? (issue 35, item 7)

Repeated random half splits of a preset's reference table: on half A, the honest estimate a user would be
printed (nested, repeated 5-fold, :func:`~nas_proxy.scoring.honest_estimate`) with its 95% interval; then the
calibration fitted on A ranks half B, and its Spearman there is what the user would get on new architectures.
Prints, per feature pool, the mean printed and realized figures, the gap and how often the interval covers the
realized figure. The zero-cost scores come from (and go to) the frontier's cache.

    cd FOLDER_WITH_THE_REFERENCE && NAS_PROXY_DATA=../shared/data python benchmarks/optimism.py fashion_mnist
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from _common import publish
from scipy.stats import spearmanr

from nas_proxy import ArchSpec, load_dataset, load_preset
from nas_proxy.reference import fit_reference, reference_accuracy
from nas_proxy.reference._reference import preset_reference
from nas_proxy.results._methods import base_scores
from nas_proxy.scoring import Calibration, honest_estimate

POOLS = {
    "factors alone": [],
    "grad_norm + naswot": ["grad_norm", "naswot"],
    "+ synflow": ["grad_norm", "naswot", "synflow"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root, progress=False)
    _, table = preset_reference(preset, data)
    truth = reference_accuracy(table, preset.reference.metric)
    fit_truth = fit_reference(table, preset.reference)
    archs = [ArchSpec.parse(a) for a in truth.index]
    zero_cost = base_scores(preset, data, archs, ["zero-cost"], progress=False)  # the frontier's cache
    frame = pd.DataFrame({name: scored.scores for name, scored in zero_cost.items()}).loc[truth.index]
    space, rng, half = preset.space(), np.random.default_rng(7), len(truth) // 2
    rows = []
    for split in range(args.splits):
        order = rng.permutation(truth.index)
        seen, unseen = list(order[:half]), list(order[half:])
        for pool, columns in POOLS.items():
            calibration = Calibration.fit(frame.loc[seen, columns], fit_truth[seen], space)
            printed = honest_estimate(calibration, reference=truth[seen], n_boot=200, seed=split)
            predicted = [calibration.predict(ArchSpec.parse(a), {c: frame.at[a, c] for c in columns}) for a in unseen]
            realized = spearmanr(predicted, truth[unseen]).statistic
            covered = printed.spearman_low <= realized <= printed.spearman_high
            rows.append({"pool": pool, "printed": printed.spearman, "realized": realized, "covered": covered})
    frame = pd.DataFrame(rows)
    lines = [
        "| features | printed Spearman (mean) | realized on the unseen half (mean) | gap (sd) | 95% interval covers |",
        "|---|---|---|---|---|",
    ]
    for pool in POOLS:
        group = frame[frame["pool"] == pool]
        gap = group["printed"] - group["realized"]
        lines.append(
            f"| {pool} | {group['printed'].mean():+.3f} | {group['realized'].mean():+.3f} | {gap.mean():+.3f} "
            f"({gap.std():.3f}) | {group['covered'].mean():.0%} |"
        )
    notes = (
        f"{args.splits} random splits of the {len(truth)} reference architectures into {half} seen (the user's "
        f"reference) and {len(truth) - half} unseen."
    )
    publish(
        f"Printed estimate against new architectures on {preset.study.name}",
        "\n".join(lines),
        notes,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
