"""Rankings checked on architectures the project never saw: a fresh draw of the 720 space, trained to the truth.

Issue 35 asks for every reference-free figure to be checked again on architectures outside the shared table. This
script has two halves:

``measure`` (needs a GPU in practice: 50 full trainings) draws ``--n`` architectures of the space that are not in
the preset's reference table (seed ``--seed``, never looked at before), trains each with the ``[reference]``
protocol of ``fashion_mnist`` (one seed, on nas-proxy's own trainer), and scores them, the shared table's
architectures and the ``fashion_mnist_noref`` anchor with the cheap signals of the frontier (zero-cost, short
training at 5% of the reference's steps, the reference protocol on a 1% sample), every table written as it fills
(a killed run keeps what it finished):

    NAS_PROXY_DATA=DIR python benchmarks/unseen.py measure --out FOLDER --shared IMPORTED.csv

``analyse`` reads those tables (and the shared reference) and prints each method's ranking of the new
architectures: every single signal, the ``fashion_mnist_noref`` ensemble against its own anchor, and the
``fashion_mnist`` calibration fitted on the shared table (its first fidelity) with what `search` prints for it:

    python benchmarks/unseen.py analyse --out FOLDER --shared IMPORTED.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from nas_proxy import load_dataset, load_preset
from nas_proxy.reference import (
    fit_reference,
    rank_agreement,
    read_reference,
    reference_accuracy,
    run_reference,
)
from nas_proxy.results._methods import base_scores, read_as, sample_label, short_label
from nas_proxy.scoring import Anchor, Calibration, honest_estimate

READOUTS = ["val_acc", "tse", "tse_e", "tse_ema"]
SHORT, SAMPLE = 0.05, 0.01


def _presets(out: Path):
    """The two presets, their caches under ``out``."""
    full, noref = load_preset("fashion_mnist"), load_preset("fashion_mnist_noref")
    full = dataclasses.replace(full, study=dataclasses.replace(full.study, out_dir=str(out / "cache")))
    return full, noref


def _unseen(preset, table_archs: set[str], n: int, seed: int):
    return preset.space().sample(n, seed, where=lambda a: a.id not in table_archs)


def measure(args: argparse.Namespace) -> None:
    out = Path(args.out)
    full, noref = _presets(out)
    data = load_dataset(full.data, args.data_root, device="auto", progress=False)
    shared = read_reference(args.shared)
    unseen = _unseen(full, set(shared["arch"]), args.n, args.seed)
    anchor = full.space().spread(noref.score.anchor, noref.reference.sample_seed)
    print(
        f"{data.train.x.device}: {len(unseen)} new architectures, {shared['arch'].nunique()} shared, "
        f"anchor {len(anchor)}"
    )
    started = time.perf_counter()
    every = list({a.id: a for a in [*unseen, *anchor]}.values())
    shared_archs = [a for a in full.space().archs() if a.id in set(shared["arch"]) and a not in every]
    zero = base_scores(full, data, [*every, *shared_archs], ["zero-cost"], progress=False)
    print(f"zero-cost: {time.perf_counter() - started:.0f} s", flush=True)
    trained = base_scores(
        full, data, every, ["short", "sample"], short=[SHORT], samples=[SAMPLE], readouts=READOUTS, progress=False
    )
    print(f"short {SHORT:.0%} and sample {SAMPLE:.0%}: {time.perf_counter() - started:.0f} s", flush=True)
    scores = pd.DataFrame({label: scored.scores for label, scored in {**zero, **trained}.items()})
    scores.rename_axis("arch").to_csv(out / "scores.csv")
    reference = dataclasses.replace(full.reference, seeds=1)
    run_reference(reference, data, unseen[: args.train], out / "unseen_reference.csv", progress=False)
    print(f"reference: {time.perf_counter() - started:.0f} s", flush=True)


def analyse(args: argparse.Namespace) -> None:
    out = Path(args.out)
    full, noref = _presets(out)
    shared_table = read_reference(args.shared)
    new_table = read_reference(out / "unseen_reference.csv")
    truth = reference_accuracy(new_table, full.reference.metric).dropna()
    scores = pd.read_csv(out / "scores.csv", index_col="arch")
    unseen = [a for a in _unseen(full, set(shared_table["arch"]), args.n, args.seed) if a.id in truth.index]
    anchor = [a.id for a in full.space().spread(noref.score.anchor, noref.reference.sample_seed)]
    ids = [a.id for a in unseen]
    rows = []
    for label in scores.columns:
        rows.append((label, rank_agreement(scores.loc[ids, label], truth, n_boot=1000).row()))
    trained = [read_as(label, r) for label in (short_label(SHORT), sample_label(SAMPLE)) for r in READOUTS]
    for last in trained:
        members = ["grad_norm", "naswot", last]
        fitted = Anchor.of(scores.loc[anchor, members])
        combined = pd.Series(fitted.combine({m: scores.loc[ids, m] for m in members}), index=ids)
        rows.append((f"ensemble {' + '.join(members)}", rank_agreement(combined, truth, n_boot=1000).row()))
    shared_truth = reference_accuracy(shared_table, full.reference.metric)
    fit_truth = fit_reference(shared_table, full.reference)[shared_truth.index]
    for pool in (["grad_norm", "naswot"], ["grad_norm", "naswot", "synflow"]):
        calibration = Calibration.fit(scores.loc[shared_truth.index, pool], fit_truth, full.space())
        printed = honest_estimate(calibration, reference=shared_truth, n_boot=1000).row()
        predicted = pd.Series([calibration.predict(a, scores.loc[a.id, pool].to_dict()) for a in unseen], index=ids)
        got = rank_agreement(predicted, truth, n_boot=1000).row()
        got["printed"] = f"{printed['spearman']:+.3f} [{printed['spearman_low']:+.3f}, {printed['spearman_high']:+.3f}]"
        rows.append((f"calibrated: factors + {' + '.join(pool)}, fitted on the shared table", got))
    lines = [
        "| method | Spearman [95% CI] | top-20 Spearman | P@10 | regret (pts) | printed on the shared table |",
        "|---|---|---|---|---|---|",
    ]
    for label, row in rows:
        lines.append(
            f"| {label} | {row['spearman']:+.3f} [{row['spearman_low']:+.3f}, {row['spearman_high']:+.3f}] | "
            f"{row['top20_spearman']:+.2f} | {row['precision10']:.2f} | {row['regret']:.2f} | "
            f"{row.get('printed', '')} |"
        )
    print(f"{len(ids)} new architectures (seed {args.seed}), {new_table['seed'].nunique()} seed(s) of the reference")
    print("\n".join(lines))
    (out / "unseen.json").write_text(json.dumps({label: row for label, row in rows}, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["measure", "analyse"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=50, help="new architectures (default 50)")
    parser.add_argument("--train", type=int, default=50, help="of them, how many to train (default all)")
    parser.add_argument("--seed", type=int, default=3535, help="their draw's seed (default 3535)")
    parser.add_argument(
        "--shared", required=True, help="the shared table as imported (runs/fashion_mnist/reference/*-imported.csv)"
    )
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    (measure if args.step == "measure" else analyse)(args)


if __name__ == "__main__":
    main()
