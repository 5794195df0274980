"""Which condensed-set budget keeps a preset's proxy faithful: images per class against training epochs.

For each ``IPC:EPOCHS`` budget, condenses the preset's data at that ipc (cached as any condensed set) and trains
every architecture its reference table holds on it for that many epochs, then prints the Spearman and Kendall
correlation with the reference. The budget is chosen on the architectures outside the preset's
``[reference].sample`` (``other``); the sample's own figure (``sample``) is what `search` prints, so it stays held
out of the choice. Needs a reference of the whole space first (for the quickstart, about 15 minutes on 2 cores):

    nas-proxy reference quickstart --archs all
    python benchmarks/proxy_budget.py quickstart --budgets 10:100,5:100,5:150,5:200,5:300,3:300
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from _common import publish
from scipy import stats

from nas_proxy import load_dataset, load_preset
from nas_proxy.artifacts import reference_table_path
from nas_proxy.reference import read_reference, reference_accuracy
from nas_proxy.scoring import make_proxy
from nas_proxy.study import select_archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="shipped preset name or .toml path")
    parser.add_argument("--budgets", required=True, help="comma-separated IPC:EPOCHS, e.g. 10:100,5:200")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    preset = load_preset(args.preset)
    budgets = [tuple(int(v) for v in budget.split(":")) for budget in args.budgets.split(",")]
    data = load_dataset(preset.data, args.data_root)
    truth = reference_accuracy(
        read_reference(reference_table_path(preset.study.output, preset.data, preset.reference)),
        preset.reference.metric,
    ).dropna()
    archs = [arch for arch in preset.space().archs() if arch.id in truth.index]
    sample = {arch.id for arch in select_archs(preset.reference.sample, preset.space(), preset.reference)}
    parts = {"other": [a.id not in sample for a in archs], "sample": [a.id in sample for a in archs]}
    if sum(parts["other"]) < 5:
        parser.error(
            "the reference table holds too few architectures outside the sample: run `nas-proxy reference "
            f"{args.preset} --archs all` first"
        )
    lines = [
        "| ipc | epochs | images x epochs | Spearman (other) | Kendall (other) | Spearman (sample) | s / network |",
        "|---|---|---|---|---|---|---|",
    ]
    for ipc, epochs in budgets:
        budget = dataclasses.replace(
            preset,
            condense=dataclasses.replace(preset.condense, ipc=ipc),
            training=dataclasses.replace(preset.training, epochs=epochs),
        )
        proxy = make_proxy("dm", budget, data, progress=False)
        tic = time.perf_counter()
        scores = proxy.scores(archs, budget.training.seed)
        seconds = (time.perf_counter() - tic) / len(archs)
        figures = {}
        for part, keep in parts.items():
            x = [s for s, k in zip(scores, keep) if k]
            y = [truth[a.id] for a, k in zip(archs, keep) if k]
            figures[part] = (stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic, len(x))
        (rho, tau, n_other), (rho_sample, _, n_sample) = figures["other"], figures["sample"]
        lines.append(
            f"| {ipc} | {epochs} | {ipc * data.num_classes * epochs:,} | {rho:+.3f} | {tau:+.3f} | {rho_sample:+.3f} | "
            f"{seconds:.2f} |"
        )
        print(lines[-1], flush=True)
    notes = (
        f"{preset.study.name}: {preset.data.dataset}, every architecture of its reference table, {n_other} outside "
        f"the reference sample (other: where a budget is chosen) and {n_sample} in it (sample: held out, what "
        f"`search` prints); metric {preset.reference.metric}. s / network: wall clock per network, networks "
        f"trained side by side one per core."
    )
    publish(f"Proxy budget: {preset.study.name}", "\n".join(lines), notes, record=not args.no_record)


if __name__ == "__main__":
    main()
