"""Does a DM set train a better network than a random real subset of the same size?

Condenses once (checkpointed, so an interrupted run resumes), then trains the evaluation
ConvNet with S seeds on the DM set and on S class-balanced random real subsets, and reports
test accuracy (mean +- std). Appends the table to benchmarks/RESULTS.md.

    python benchmarks/quality.py --dataset fashion_mnist --data-root ../shared/data --ipc 10 \
        --iterations 300 --epochs 300 --seeds 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _common import publish

from nas_proxy import ArchSpec, condense, load_dataset, train_candidate
from nas_proxy.method import CondenseConfig, CondensedSet, TrainConfig
from nas_proxy.results._format import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arch", default="d3-w128-relu-instancenorm-avgpool")
    parser.add_argument("--precision", default="fp32", help="precision of the condensation (default: fp32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the condensation's embedding")
    parser.add_argument(
        "--train-precision", default="fp32", help="precision of the evaluation training (default: fp32)"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("runs/quality"))
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    data = load_dataset(args.dataset, args.data_root)
    arch = ArchSpec.parse(args.arch)
    out = args.out_dir / f"{args.dataset}_ipc{args.ipc}_it{args.iterations}_{args.precision}.pt"
    if out.is_file():
        syn = CondensedSet.load(out, data)
    else:
        config = CondenseConfig(
            ipc=args.ipc,
            iterations=args.iterations,
            precision=args.precision,
            compile=args.compile,
            checkpoint_every=25,
        )
        syn = condense(data, config, checkpoint=out.with_name(out.name + ".ckpt"), resume=True)
        syn.save(out)
    print(
        f"condensed: {syn.meta['seconds']:.0f} s, loss {syn.meta['losses'][0]:.2f} -> {syn.meta['final_loss']:.2f}",
        flush=True,
    )

    rows = []
    for seed in range(args.seeds):
        proxy = TrainConfig(epochs=args.epochs, seed=seed, precision=args.train_precision)
        for name, train in (("DM", syn.split()), ("random real", data.sample_per_class(args.ipc, seed=seed))):
            result = train_candidate(arch, train, data, proxy, test=True)
            rows.append(
                {
                    "train": name,
                    "seed": seed,
                    "val_acc": result.val_acc,
                    "test_acc": result.test_acc,
                    "seconds": result.seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    summary = frame.groupby("train", sort=False).agg(
        test_mean=("test_acc", "mean"),
        test_std=("test_acc", "std"),
        val_mean=("val_acc", "mean"),
        seconds=("seconds", "mean"),
    )
    summary[["test_mean", "test_std", "val_mean"]] *= 100
    table = markdown_table(summary.round(2).reset_index())
    notes = (
        f"{args.dataset}, ipc {args.ipc}, {args.iterations} DM iterations ({syn.meta['seconds'] / 60:.1f} min, "
        f"{args.precision}{' compiled' if args.compile else ''}), {arch.id} trained {args.epochs} epochs in "
        f"{args.train_precision}; test accuracy (%) over seeds "
        f"{list(range(args.seeds))}: {np.round(frame[frame.train == 'DM'].test_acc.values * 100, 2).tolist()} (DM), "
        f"{np.round(frame[frame.train != 'DM'].test_acc.values * 100, 2).tolist()} (random)."
    )
    publish(f"Condensed vs random real subset: {args.dataset} ipc {args.ipc}", table, notes, record=not args.no_record)


if __name__ == "__main__":
    main()
