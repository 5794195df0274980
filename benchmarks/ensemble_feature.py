"""Probe (issue 35, item 5): the reference-free ensemble's score as a calibration feature, on few reference runs.

A calibration fitted on 10 spread reference architectures ranks below the ensemble that needs none. Does the
ensemble's score (the mean quantile of grad_norm, naswot and short 5% tse_e, each half of the table read against
the other as its anchor, as the frontier's ensemble family) help a fit on 10, 20 or all reference architectures?
Honest figures as the frontier's calibrated rows (nested, repeated 5-fold, spread fit rows); scores from the
frontier's cache:

    NAS_PROXY_DATA=../shared/data python benchmarks/ensemble_feature.py fashion_mnist
"""

from __future__ import annotations

import argparse

import pandas as pd

from nas_proxy import ArchSpec, load_dataset, load_preset
from nas_proxy.reference import fit_reference, reference_accuracy
from nas_proxy.reference._reference import preset_reference
from nas_proxy.results._families import _cross_anchored, _fitted
from nas_proxy.results._methods import base_scores
from nas_proxy.scoring import Calibration

TRAINED = "short 5% tse_e"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root, progress=False)
    _, table = preset_reference(preset, data)
    truth = reference_accuracy(table, preset.reference.metric)
    fit_truth = fit_reference(table, preset.reference)[truth.index]
    archs = [ArchSpec.parse(a) for a in truth.index]
    base = base_scores(preset, data, archs, ["zero-cost", "short"], short=[0.05], readouts=["tse_e"], progress=False)
    members = [base["grad_norm"], base["naswot"], base[TRAINED]]
    frame = pd.DataFrame({m.label: m.scores for m in members}).assign(ensemble=_cross_anchored(members, 0))
    print("| features (besides the factors) | fitted on 10 spread | on 20 spread | on all |\n|---|---|---|---|")
    for columns in (["grad_norm", "naswot"], ["ensemble"], ["grad_norm", "naswot", "ensemble"]):
        calibration = Calibration.fit(frame.loc[truth.index, columns], fit_truth, preset.space())
        cells = []
        for size in (10, 20, None):
            row = _fitted(calibration, None, 3, truth, size, "spread", preset.space(), 1000, 0)[0].row()
            cells.append(f"{row['spearman']:+.3f} [{row['spearman_low']:+.3f}, {row['spearman_high']:+.3f}]")
        print(f"| {' + '.join(columns)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
