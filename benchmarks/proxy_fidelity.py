"""What limits the DM proxy's ranking: one variant at a time against the preset's reference table.

Each variant changes one setting of the preset (proxy epochs, augmentation while training the
proxy, seeds, the condensation's embedding network) or combines scores (rank ensembles), then
runs ``compare_proxies`` on the reference table. Scores are cached in the study's output folder,
so a rerun only computes what is new. Prints one table and appends it to benchmarks/RESULTS.md,
with a per-factor bias table (mean rank error of each pooling, norm and depth choice) per variant.

    python benchmarks/proxy_fidelity.py studies/fashion_mnist_dm.toml --data-root ../shared/data \
        --variants dm-e30,dm-e100,dm-nodsa,dm-maxpool,dm-2sets --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from _common import publish

from nas_proxy import Preset, compare_proxies, load_dataset, load_preset, rank_agreement
from nas_proxy.reference._agreement import factor_bias, rank_ensemble
from nas_proxy.results._format import markdown_table

MAXPOOL_EMBED = "d3-w128-relu-instancenorm-maxpool"


def proxy_epochs(epochs: int) -> Callable[[Preset], Preset]:
    return lambda p: dataclasses.replace(p, training=dataclasses.replace(p.training, epochs=epochs))


def proxy_batch(batch: int) -> Callable[[Preset], Preset]:
    return lambda p: dataclasses.replace(p, training=dataclasses.replace(p.training, batch_size=batch))


def no_dsa(p: Preset) -> Preset:
    return dataclasses.replace(p, training=dataclasses.replace(p.training, dsa_strategy="none"))


def maxpool_embedding(p: Preset) -> Preset:
    # bf16 + compile: 4x faster condensation with the matching loss within 4e-4 of fp32 (RESULTS.md, issue 2)
    return dataclasses.replace(
        p, condense=dataclasses.replace(p.condense, embed_arch=MAXPOOL_EMBED, precision="bf16", compile=True)
    )


# name -> (what it changes, preset change, proxies scored, seeds or None for the preset's)
VARIANTS: dict[str, tuple[str, Callable[[Preset], Preset], list[str], int | None]] = {
    "dm-e30": ("DM set, 30 proxy epochs", proxy_epochs(30), ["dm"], None),
    "dm-e100": ("DM set, 100 proxy epochs", proxy_epochs(100), ["dm"], None),
    "dm-e300": ("DM set, 300 proxy epochs", proxy_epochs(300), ["dm"], None),
    "dm-b32": (
        "DM set, 30 epochs at batch 32 (4 steps per epoch instead of 1)",
        lambda p: proxy_batch(32)(proxy_epochs(30)(p)),
        ["dm"],
        None,
    ),
    "dm-nodsa": (
        "DM set, 30 epochs, no DSA while training the proxy",
        lambda p: no_dsa(proxy_epochs(30)(p)),
        ["dm"],
        None,
    ),
    "dm-seeds3": ("DM set, 30 epochs, mean of 3 seeds", proxy_epochs(30), ["dm"], 3),
    "dm-maxpool": (
        "DM set condensed with a max-pooling embedding (bf16 + compile), 30 epochs",
        lambda p: maxpool_embedding(proxy_epochs(30)(p)),
        ["dm"],
        None,
    ),
    "subset-e30": ("random real subset, 30 epochs", proxy_epochs(30), ["subset"], None),
    "ensembles": (
        "DM (30 epochs) rank-averaged with a zero-cost score",
        proxy_epochs(30),
        ["dm+naswot", "dm+synflow", "dm+grad_norm"],
        None,
    ),
}


def bias_columns(scores: pd.Series, reference: pd.Series) -> dict[str, float]:
    """Mean rank error of each pooling, norm and depth choice, as ``axis=value`` columns."""
    bias = factor_bias(scores, reference)
    bias = bias[bias["axis"].isin(["pooling", "norm", "depth"])]
    return {f"{r.axis}={r.value}": r.rank_error for r in bias.itertuples()}


def two_sets(preset: Preset, data, args) -> dict:
    """Rank-average the DM proxy over the average- and the max-pooling condensed sets (one seed each)."""
    base = compare_proxies(
        proxy_epochs(30)(preset),
        data,
        ["dm"],
        n_boot=0,
        plot=False,
        progress=not args.quiet,
        out_dir=preset.study.output / "fidelity" / "dm-e30",
    )
    other = compare_proxies(
        maxpool_embedding(proxy_epochs(30)(preset)),
        data,
        ["dm"],
        n_boot=0,
        plot=False,
        progress=not args.quiet,
        out_dir=preset.study.output / "fidelity" / "dm-maxpool",
    )
    scores = rank_ensemble([base.scores["dm"], other.scores["dm"]])
    agreement = rank_agreement(scores, base.reference, n_boot=args.bootstrap)
    seconds = base.table["seconds"].iloc[0] + other.table["seconds"].iloc[0]
    setup = base.table["setup_seconds"].iloc[0] + other.table["setup_seconds"].iloc[0]
    return {
        "variant": "dm-2sets",
        "proxy": "dm(avg)+dm(max)",
        **agreement.row(),
        "seconds": seconds,
        "setup_seconds": setup,
        "cost_ratio": seconds / base.table["reference_seconds"].iloc[0],
        **bias_columns(scores, base.reference),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", type=Path)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument(
        "--variants",
        default=",".join([*VARIANTS, "dm-2sets"]),
        help=f"comma-separated, from {', '.join([*VARIANTS, 'dm-2sets'])}",
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root)
    rows = []
    for name in args.variants.split(","):
        if name == "dm-2sets":
            rows.append(two_sets(preset, data, args))
            continue
        if name not in VARIANTS:
            sys.exit(f"unknown variant {name!r}; choose from {', '.join([*VARIANTS, 'dm-2sets'])}")
        _, change, proxies, seeds = VARIANTS[name]
        comparison = compare_proxies(
            change(preset),
            data,
            proxies,
            seeds=seeds,
            n_boot=args.bootstrap,
            plot=False,
            progress=not args.quiet,
            out_dir=preset.study.output / "fidelity" / name,
        )
        for _, row in comparison.table.iterrows():
            if row["proxy"] in proxies:
                bias = bias_columns(comparison.scores[row["proxy"]], comparison.reference)
                rows.append({"variant": name, **row.to_dict(), **bias})
    frame = pd.DataFrame(rows)
    shown = [
        "variant",
        "proxy",
        "n",
        "spearman",
        "spearman_low",
        "spearman_high",
        "kendall",
        "top5_spearman",
        "top10_spearman",
        "top20_spearman",
        "precision5",
        "precision10",
        "regret",
        "seconds",
        "cost_ratio",
    ]
    bias = [c for c in frame.columns if c.startswith(("pooling=", "norm=", "depth="))]
    table = (
        markdown_table(frame[shown].round(3)) + "\n\nMean rank error per factor (proxy rank - reference "
        "rank; > 0: over-rated)\n\n" + markdown_table(frame[["variant", "proxy", *bias]].round(1))
    )
    notes = "\n".join(f"- {name}: {VARIANTS[name][0]}" for name in args.variants.split(",") if name in VARIANTS)
    publish(f"DM proxy fidelity variants: {preset.study.name}", table, notes, record=not args.no_record)


if __name__ == "__main__":
    main()
