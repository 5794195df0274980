"""Has a preset's reference protocol converged as a ranking? Train its reference sample longer and again.

Trains the preset's ``[reference].sample`` architectures (or ``--archs N`` of its reference
sample) with the ``[reference]`` protocol at several epoch counts and two seeds, and prints the
Spearman correlation of each ranking with the others: seed 0 against seed 1 at the preset's
epochs is the noise ceiling, the preset's epochs against more epochs says whether the ranking
has stopped moving. A truth whose ranking still moves flatters or wrongs any proxy measured
against it. Appends a table to benchmarks/RESULTS.md.

    python benchmarks/reference_convergence.py quickstart --epochs 25,50,100
"""

from __future__ import annotations

import argparse
import dataclasses

import pandas as pd
from _common import publish
from scipy import stats

from nas_proxy import load_dataset, load_preset, train_candidate
from nas_proxy.study import select_archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="shipped preset name or .toml path")
    parser.add_argument("--archs", type=int, default=0, help="sample size (default: [reference].sample)")
    parser.add_argument("--epochs", default="", help="comma-separated epoch counts (default: x0.5, x1, x2)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    preset = load_preset(args.preset)
    protocol = preset.reference.training
    n = args.archs or preset.reference.sample
    if n < 5:
        parser.error("needs at least 5 architectures: pass --archs N")
    epochs = (
        [int(e) for e in args.epochs.split(",")]
        if args.epochs
        else [protocol.epochs // 2, protocol.epochs, 2 * protocol.epochs]
    )
    data = load_dataset(preset.data, args.data_root)
    runs = [(e, 0) for e in epochs] + [(protocol.epochs, 1)]  # the second seed at the preset's epochs
    rows = []
    for arch in select_archs(n, preset.space(), preset.reference):
        for e, seed in runs:
            result = train_candidate(
                arch, data.train, data, dataclasses.replace(protocol, epochs=e, seed=seed), test=True
            )
            rows.append(
                {"arch": arch.id, "run": f"{e} ep, seed {seed}", "acc": result.test_acc, "seconds": result.seconds}
            )
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="arch", columns="run", values="acc")
    base = f"{protocol.epochs} ep, seed 0"
    lines = ["| ranking | against | Spearman | mean s / network |", "|---|---|---|---|"]
    for e, seed in runs:
        name = f"{e} ep, seed {seed}"
        if name != base:
            rho = stats.spearmanr(wide[base], wide[name]).statistic
            seconds = frame[frame["run"] == name]["seconds"].mean()
            lines.append(f"| {base} | {name} | {rho:+.3f} | {seconds:.1f} |")
    notes = (
        f"{preset.study.name}: {n} architectures of the reference sample, {preset.data.dataset} "
        f"({len(data.train)} training images), metric test accuracy, protocol {protocol.key_settings()}. "
        f"{base} against seed 1 is the noise ceiling; against more epochs, whether the ranking still moves."
    )
    publish(f"Reference convergence: {preset.study.name}", "\n".join(lines), notes, record=not args.no_record)


if __name__ == "__main__":
    main()
