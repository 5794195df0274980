"""Sweep throughput: a sample of a search space trained one at a time and together, in one run.

The same architectures, training set, protocol and seed go through ``train_candidate`` one after
another (the baseline: each candidate uses every CPU thread, or the GPU alone) and then through
``train_candidates`` (several candidates at once: on a CPU one kernel thread each, on CUDA a stream
each). It prints candidates per hour, the speed-up, the minutes the whole space would take at
each rate (the sample's mix standing in for the space's), and how far the two runs' validation
accuracies differ (the same on a CPU at equal thread counts; here the baseline runs on more
threads, so rounding may move a few images). The training set is a class-balanced random real
subset of ``--ipc`` images per class: a DM set of that size costs the same to train on. ``--batches 2,4``
also trains them in consecutive batches of 2 and of 4, as a study's worker takes its trials (a batch's
wall time is its longest member's share; the next batch waits for it).

    python benchmarks/bench_sweep.py --dataset digits --space small --sample 12 --epochs 100 --device cpu
    python benchmarks/bench_sweep.py --dataset fashion_mnist --data-root ../shared/data --space nas720 \\
        --sample 32 --ipc 50 --epochs 1000 --device cuda
    python benchmarks/bench_sweep.py --dataset digits --space small --sample 12 --ipc 5 --epochs 200 --batches 2,4
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import pandas as pd
import torch
from _common import publish

from nas_proxy import load_dataset, load_search_space, train_candidate
from nas_proxy.method import TrainConfig, train_candidates
from nas_proxy.method._train import concurrent_jobs
from nas_proxy.results._format import markdown_table


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--space", default="small", help="search space name or TOML file (default: small)")
    parser.add_argument("--sample", type=int, default=12, help="architectures drawn from the space (default: 12)")
    parser.add_argument("--ipc", type=int, default=10, help="training images per class (default: 10)")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (default: 100; the paper's: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample, the subset and the training")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--jobs", type=int, default=0, help="candidates at once (default: train_candidates' choice)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode, alternated; the median counts")
    parser.add_argument("--batches", default="", help="also in consecutive batches of these sizes (e.g. 2,4)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()

    device = torch.device(args.device)
    data = load_dataset(args.dataset, args.data_root, device=device)
    space = load_search_space(args.space)
    archs = space.sample(args.sample, seed=args.seed)
    train = data.sample_per_class(args.ipc, seed=args.seed)
    config = TrainConfig(epochs=args.epochs, seed=args.seed, jobs=args.jobs)
    jobs = concurrent_jobs(config, device, len(archs))
    threads = torch.get_num_threads()
    # Warm-up outside the clocks: first-call costs (kernel selection, allocator growth, thread pools).
    train_candidates(archs[:2], train, data, dataclasses.replace(config, epochs=2))

    def batched(size: int) -> list:
        return [
            r for i in range(0, len(archs), size) for r in train_candidates(archs[i : i + size], train, data, config)
        ]

    modes = {
        "one at a time": lambda: [train_candidate(arch, train, data, config) for arch in archs],
        **{f"batches of {k}": (lambda k=k: batched(k)) for k in map(int, filter(None, args.batches.split(",")))},
        f"together ({jobs} at once)": lambda: train_candidates(archs, train, data, config),
    }
    walls: dict[str, list[float]] = {name: [] for name in modes}
    results = {}
    for _ in range(args.repeats):  # alternated, so a slow spell of a shared machine hits every mode
        for name, run in modes.items():
            _synchronize(device)
            tic = time.perf_counter()
            results[name] = run()
            _synchronize(device)
            walls[name].append(time.perf_counter() - tic)
    alone, together = results["one at a time"], results[f"together ({jobs} at once)"]

    rows = []
    base = statistics.median(walls["one at a time"])
    for name in modes:
        wall = statistics.median(walls[name])
        per_hour = len(archs) * 3600 / wall
        rows.append(
            {
                "mode": name,
                "wall_s": round(wall, 1),
                "runs_s": " / ".join(f"{w:.1f}" for w in walls[name]),
                "candidates_per_hour": round(per_hour, 1),
                "speed_up": round(base / wall, 2),
                "space_minutes": round(len(space) / per_hour * 60, 1),
            }
        )
    moved = [abs(a.val_acc - b.val_acc) * len(data.val) for a, b in zip(alone, together)]
    notes = (
        f"{args.dataset} on {device}, space {space.name} ({len(space)} architectures; {len(archs)} sampled, seed "
        f"{args.seed}), {args.ipc} images per class ({len(train)} in all, a random real subset), the paper's "
        f"protocol for {args.epochs} epochs, fp32 unless the device runs bf16 natively; one at a time on "
        f"{threads} kernel threads, together {jobs} candidates at once; wall time is the median of "
        f"{args.repeats} runs of each, alternated. `space_minutes`: the whole space at that rate. "
        f"Validation accuracy: {sum(m == 0 for m in moved)} of {len(archs)} identical, at most "
        f"{max(moved):.0f} of {len(data.val)} validation images apart; mean "
        f"{100 * sum(r.val_acc for r in alone) / len(alone):.2f}% one at a time, "
        f"{100 * sum(r.val_acc for r in together) / len(together):.2f}% together."
    )
    publish(
        f"Sweep throughput: {args.dataset}, {space.name}, {args.sample} candidates, {device.type}",
        markdown_table(pd.DataFrame(rows)),
        notes,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
