"""Reference-free rankings, chosen on one half of the reference table and recorded on the other.

Every design decision about a ranking without reference runs (which budget, which readout) is made on the
``dev`` half of the preset's reference table and never on the ``record`` half, whose figures are the ones of
record (issue 35). The halves are fixed: the table's architectures in a permutation drawn with seed 35, the first
half ``dev``. The script scores every method asked for through the frontier's cache (``nas-proxy frontier`` with
the same lists computes the same runs, and either continues the other), prints each method's Spearman on both
halves with its cost, picks the best on ``dev`` among those at most ``--max-cost`` of training the space once,
and prints the pick's figures on ``record`` (and on the whole table, whose top-20 and P@10 need its 50 rows).

Besides each method alone, every ``ensemble`` (:class:`nas_proxy.scoring.Anchor`) a preset can name is a
candidate: two or three members, at most one of them trained (a preset has one ``[score].readout``). On ``dev``
its anchor is ``dev`` itself (the members' mean rank); on ``record`` the anchor is ``dev``, as a study's anchor is
a sample of the space apart from the architectures it ranks. Its cost is its members' (the anchor's
architectures are the study's first trials, each scored once).

    NAS_PROXY_DATA=../shared/data python benchmarks/noref.py fashion_mnist --short 0.05,0.1,0.2 \\
        --samples 0.01,0.05,0.1 --readouts val_acc,tse,tse_e,tse_ema,loss_fit
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import pandas as pd
from _common import publish

from nas_proxy import load_dataset, load_preset
from nas_proxy.reference import rank_agreement, reference_accuracy
from nas_proxy.reference._reference import preset_reference
from nas_proxy.results._methods import base_scores
from nas_proxy.scoring import Anchor
from nas_proxy.space import ArchSpec

HALF_SEED = 35


def halves(archs: list[str]) -> tuple[list[str], list[str]]:
    """The fixed ``dev`` and ``record`` halves of a reference table's architectures."""
    order = np.random.default_rng(HALF_SEED).permutation(sorted(archs))
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def _numbers(kind: type):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def ensembles(base: dict) -> list[tuple[str, ...]]:
    """The member sets an ``ensemble`` preset can name: two or three methods, at most one of them trained."""
    out = []
    for size in (2, 3):
        for members in itertools.combinations(base, size):
            if sum(base[m].readout is not None for m in members) <= 1:
                out.append(members)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--families", default="zero-cost,short,sample,subset,dm")
    parser.add_argument("--short", type=_numbers(float), default=[0.05, 0.1, 0.2])
    parser.add_argument("--samples", type=_numbers(float), default=[0.01, 0.05, 0.1])
    parser.add_argument("--ipc", type=_numbers(int), default=[10])
    parser.add_argument("--readouts", default="val_acc,tse,tse_e,tse_ema,loss_fit")
    parser.add_argument("--max-cost", type=float, default=0.10, help="of training the space once (default: 0.10)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    preset = load_preset(args.preset)
    data = load_dataset(preset.data, args.data_root)
    _, table = preset_reference(preset, data)
    truth = reference_accuracy(table, preset.reference.metric).dropna()
    archs = [ArchSpec.parse(a) for a in truth.index]
    dev, record = halves(list(truth.index))
    base = base_scores(
        preset,
        data,
        archs,
        args.families.split(","),
        ipcs=args.ipc,
        short=args.short,
        progress=True,
        samples=args.samples,
        readouts=args.readouts.split(","),
    )
    rows = []
    ranked: dict[str, pd.Series] = {}  # each candidate's ranking of the whole table (for the pick's figures)
    for label, scored in base.items():
        cost = scored.cost + scored.setup
        figures = {
            part: rank_agreement(scored.scores[names], truth, n_boot=0)
            for part, names in (("dev", dev), ("record", record))
        }
        rows.append({"method": label, "cost": cost, **{f"{p} spearman": a.spearman for p, a in figures.items()}})
        ranked[label] = scored.scores
    for members in ensembles(base):
        frame = pd.DataFrame({m: base[m].scores for m in members})
        on_dev, on_all = Anchor.of(frame.loc[dev]), Anchor.of(frame)
        combined = {
            part: pd.Series(on_dev.combine({m: frame.loc[names, m] for m in members}), index=names)
            for part, names in (("dev", dev), ("record", record))
        }
        label = "ensemble " + " + ".join(members)
        rows.append(
            {
                "method": label,
                "cost": sum(base[m].cost + base[m].setup for m in members),
                **{f"{p} spearman": rank_agreement(c, truth, n_boot=0).spearman for p, c in combined.items()},
            }
        )
        ranked[label] = pd.Series(on_all.combine({m: frame[m] for m in members}), index=frame.index)
    frame = pd.DataFrame(rows).sort_values("cost", kind="stable")
    affordable = frame[frame["cost"] <= args.max_cost]
    pick = affordable.loc[affordable["dev spearman"].idxmax()]
    whole = rank_agreement(ranked[pick["method"]], truth, seed=0).row()
    lines = ["| method | cost (of the space) | Spearman, dev half | Spearman, record half |", "|---|---|---|---|"]
    for _, row in frame.iterrows():
        mark = " **(pick)**" if row["method"] == pick["method"] else ""
        lines.append(
            f"| {row['method']}{mark} | {row['cost']:.4f} | {row['dev spearman']:+.3f} | "
            f"{row['record spearman']:+.3f} |"
        )
    notes = (
        f"Halves of the {len(truth)} reference architectures fixed by seed {HALF_SEED} ({len(dev)} dev, "
        f"{len(record)} record). Picked on the dev half among methods at most {args.max_cost:.0%} of the space's "
        f"cost: **{pick['method']}**, record-half Spearman **{pick['record spearman']:+.3f}**; on the whole table "
        f"(half of it seen by the choice): Spearman {whole['spearman']:+.3f} [{whole['spearman_low']:+.3f}, "
        f"{whole['spearman_high']:+.3f}], top-20 {whole['top20_spearman']:+.2f}, P@10 {whole['precision10']:.2f}, "
        f"regret {whole['regret']:.2f} points, cost {pick['cost']:.3f} of the space."
    )
    publish(
        f"Reference-free rankings on {preset.study.name}, dev and record halves",
        "\n".join(lines),
        notes,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
