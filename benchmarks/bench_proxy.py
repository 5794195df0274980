"""Proxy evaluation speed: candidates per hour at the paper's protocol, against the authors' loop.

The baseline is written here with the structure of the authors' public evaluation loop
(``evaluate_synset``/``epoch`` in their ``utils.py``): a DataLoader over a TensorDataset,
DSA applied per batch, ``loss.item()`` and a NumPy accuracy every batch, the optimiser rebuilt
at the learning-rate drop, fp32, and the validation split scored through a DataLoader too.
nas-proxy's ``train_candidate`` runs the same protocol (same architecture, set, epochs and seed)
in its variants. Each variant runs in a fresh process, so allocator settings and thread pools
do not leak between them; ``bf16-x2`` runs two candidates at once, one thread each.

    python benchmarks/bench_proxy.py --data-root ../shared/data --ipc 10 --epochs 300 --seeds 2
    python benchmarks/bench_proxy.py --data-root ../shared/data --ipc 50 --epochs 1000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from _common import publish
from torch.utils.data import DataLoader, TensorDataset

from nas_proxy import ArchSpec, condense, load_dataset, train_candidate
from nas_proxy.method import DSA, CondenseConfig, CondensedSet, TrainConfig, build_convnet
from nas_proxy.method._augment import resolve_strategy
from nas_proxy.results._format import markdown_table

# name -> train_candidate settings; None is the authors' loop. "x2": two candidates at once, a thread each.
VARIANTS = {
    "authors-loop-fp32": None,
    "fp32": dict(precision="fp32"),
    "bf16": dict(precision="bf16"),
    "bf16-compile": dict(precision="bf16", compile=True),
    "bf16-x2": dict(precision="bf16", threads=1),
}


def authors_loop(arch: ArchSpec, x: torch.Tensor, y: torch.Tensor, data, config: TrainConfig) -> float:
    """The authors' evaluate_synset structure; returns validation accuracy."""
    generator = torch.Generator().manual_seed(config.seed)
    net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator)
    dsa = DSA(resolve_strategy(config.dsa_strategy, data.dsa_strategy))
    loader = DataLoader(
        TensorDataset(x, y), batch_size=config.batch_size, shuffle=True, num_workers=0, generator=generator
    )
    lr = config.lr
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    criterion = torch.nn.CrossEntropyLoss()
    for epoch in range(config.epochs):
        if epoch == int(config.epochs * config.lr_decay_at):
            lr *= 0.1
            optimizer = torch.optim.SGD(
                net.parameters(), lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        net.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for img, lab in loader:
            img = dsa.per_image(img.float(), generator) if dsa.families else img.float()
            output = net(img)
            loss = criterion(output, lab.long())
            correct += int(np.sum(np.equal(np.argmax(output.detach().cpu().numpy(), axis=-1), lab.cpu().numpy())))
            loss_sum += loss.item() * len(lab)
            seen += len(lab)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    correct = 0
    with torch.no_grad():
        for img, lab in DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=256, shuffle=False):
            output = net(img.float())
            F.cross_entropy(output, lab).item()
            correct += int(np.sum(np.equal(np.argmax(output.cpu().numpy(), axis=-1), lab.cpu().numpy())))
    return correct / len(data.val)


def training_set(args, data) -> CondensedSet:
    """A DM set for the benchmark, condensed once and cached (speed does not depend on its quality)."""
    path = args.out_dir / f"{args.dataset}_ipc{args.ipc}_it{args.condense_iterations}.pt"
    if path.is_file():
        return CondensedSet.load(path, data)
    syn = condense(
        data,
        CondenseConfig(ipc=args.ipc, iterations=args.condense_iterations, precision="bf16", compile=True),
        progress=False,
    )
    syn.save(path)
    return syn


def run_variant(args, name: str, seed: int) -> dict:
    data = load_dataset(args.dataset, args.data_root, device=args.device)
    train = training_set(args, data).split(data.train.x.device)
    arch = ArchSpec.parse(args.arch)
    settings = dict(VARIANTS[name] or {})
    config = TrainConfig(epochs=args.epochs, seed=seed, **settings)
    start = time.monotonic()  # system-wide on Linux: windows of concurrent processes compare
    if VARIANTS[name] is None:
        val_acc = authors_loop(arch, train.x, train.y, data, config)
    else:
        val_acc = train_candidate(arch, train, data, config).val_acc
    if data.train.x.device.type == "cuda":
        torch.cuda.synchronize()
    return {"variant": name, "seed": seed, "val_acc": val_acc, "start": start, "end": time.monotonic()}


def _command(args, name: str, seed: int) -> list[str]:
    return [sys.executable, __file__, *sys.argv[1:], "--variant", name, "--seed", str(seed)]


def measure(args, name: str) -> list[dict]:
    """Every seed of one variant; the in-flight variant runs its seeds two at a time."""
    rows = []
    in_flight = 2 if VARIANTS[name] and VARIANTS[name].get("threads") == 1 else 1
    for first in range(0, args.seeds, in_flight):
        seeds = range(first, min(first + in_flight, args.seeds))
        procs = [subprocess.Popen(_command(args, name, s), stdout=subprocess.PIPE, text=True) for s in seeds]
        outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        # A candidate's share of the window in which the group trained (start-up and data loading excluded).
        wall = max(out["end"] for out in outs) - min(out["start"] for out in outs)
        for out in outs:
            out["seconds"] = wall / len(outs)
            rows.append(out)
            print(json.dumps(out), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--arch", default="d3-w128-relu-instancenorm-avgpool")
    parser.add_argument("--epochs", type=int, default=1000, help="training epochs (default: the paper's 1000)")
    parser.add_argument("--seeds", type=int, default=2, help="candidates per variant, seeds 0.. (default: 2)")
    parser.add_argument("--condense-iterations", type=int, default=20, help="DM iterations of the benchmark's set")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args, args.variant, args.seed)))
        return
    data = load_dataset(args.dataset, args.data_root, device=args.device)
    training_set(args, data)  # condensed before any clock starts
    rows = [row for name in args.variants.split(",") for row in measure(args, name)]
    frame = pd.DataFrame(rows)
    table = frame.groupby("variant", sort=False).agg(
        seconds=("seconds", "mean"), val_mean=("val_acc", "mean"), val_std=("val_acc", "std")
    )
    table["candidates_per_hour"] = 3600 / table.seconds
    table["speed_up"] = table.candidates_per_hour / table.candidates_per_hour.iloc[0]
    table[["val_mean", "val_std"]] *= 100
    table = table.round({"seconds": 1, "val_mean": 2, "val_std": 2, "candidates_per_hour": 1, "speed_up": 2})
    text = markdown_table(table.reset_index())
    notes = (
        f"{args.dataset}, DM set ipc {args.ipc} ({args.ipc * data.num_classes} images, "
        f"{args.condense_iterations} DM iterations), {args.arch}, the paper's protocol (SGD lr 0.01, x0.1 "
        f"halfway, batch 256, per-image DSA) for {args.epochs} epochs, scored on {len(data.val)} validation "
        f"images; {args.seeds} seeds per variant, validation accuracy in %. Seconds are wall time per candidate "
        f"(network build, training and scoring). Per-seed accuracies: "
        + "; ".join(
            f"{name}: {np.round(group.val_acc.values * 100, 2).tolist()}"
            for name, group in frame.groupby("variant", sort=False)
        )
    )
    publish(
        f"Proxy evaluation speed: {args.dataset} ipc {args.ipc}, {args.device}", text, notes, record=not args.no_record
    )


if __name__ == "__main__":
    main()
