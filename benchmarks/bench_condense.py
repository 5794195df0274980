"""Seconds per DM iteration: nas-proxy's batched condensation against a per-class loop.

The baseline is written here with the structure of the authors' public DM code: a new
network every iteration, then for each class: sample its real images, augment real and
synthetic with the same draw, embed each, add the squared distance of the means; one
backward and one step. nas-proxy's ``condense()`` does the same math in one batched pass.
Each variant runs in its own process (so peak RSS is its own); the loss agreement is checked
on identical inputs. Appends a table to benchmarks/RESULTS.md.

    python benchmarks/bench_condense.py --data-root ../shared/data --ipc 10 --iterations 8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

import nas_proxy.condensation
from _common import publish
from nas_proxy import DSA, ArchSpec, CondenseConfig, build_convnet, condense, load_dataset, matching_loss

VARIANTS = {
    "per-class loop (baseline)": None,
    "batched fp32": dict(precision="fp32", compile=False),
    "batched fp32 + compile": dict(precision="fp32", compile=True),
    "batched bf16": dict(precision="bf16", compile=False),
    "batched bf16 + compile": dict(precision="bf16", compile=True),
}


def per_class_loop(data, ipc: int, iterations: int, batch_real: int, seed: int, stamps: list[float]) -> None:
    generator = torch.Generator().manual_seed(seed)
    arch = ArchSpec.parse(CondenseConfig().embed_arch)
    images = data.sample_per_class(ipc, generator=generator).x.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    dsa = DSA(data.dsa_strategy)
    per_class = data.class_indices()
    for _ in range(iterations):
        stamps.append(time.perf_counter())
        net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator)
        net.train()
        net.requires_grad_(False)
        loss = torch.zeros(())
        for c in range(data.num_classes):
            real = data.train.x[per_class[c][torch.randperm(len(per_class[c]), generator=generator)[:batch_real]]]
            syn = images[c * ipc:(c + 1) * ipc]
            state = generator.get_state()
            real = dsa.siamese(real, torch.zeros(len(real), dtype=torch.long), 1, generator)
            syn = dsa.siamese(syn, torch.zeros(ipc, dtype=torch.long), 1, torch.Generator().set_state(state))
            loss = loss + ((net.embed(real).detach().mean(0) - net.embed(syn).mean(0)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_variant(args, name: str) -> dict:
    data = load_dataset(args.dataset, args.data_root)
    settings = VARIANTS[name]
    stamps: list[float] = []
    total = args.warmup + args.iterations + 1  # the start of the last iteration closes the timed window
    if settings is None:
        per_class_loop(data, args.ipc, total, args.batch_real, seed=0, stamps=stamps)
    else:
        # Time stamp at the start of every iteration: condense() re-initialises its network there.
        init = nas_proxy.condensation.init_parameters
        nas_proxy.condensation.init_parameters = lambda net, g: (stamps.append(time.perf_counter()), init(net, g))[1]
        condense(data, CondenseConfig(ipc=args.ipc, iterations=total, batch_real=args.batch_real, **settings),
                 progress=False)
    timed = stamps[args.warmup:args.warmup + args.iterations + 1]
    return {"variant": name, "s_per_iter": (timed[-1] - timed[0]) / args.iterations,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def loss_agreement(args) -> dict:
    """Relative difference of batched fp32/bf16 losses from the per-class fp32 loss on the same inputs."""
    data = load_dataset(args.dataset, args.data_root)
    generator = torch.Generator().manual_seed(1)
    net = build_convnet(ArchSpec.parse(CondenseConfig().embed_arch), data.channels, data.num_classes,
                        data.image_size, generator=generator)
    real = data.sample_per_class(min(args.batch_real, min(map(len, data.class_indices()))), generator=generator)
    syn = data.sample_per_class(args.ipc, generator=generator)
    with torch.no_grad():
        looped = sum(((net.embed(real.x[real.y == c]).mean(0) - net.embed(syn.x[syn.y == c]).mean(0)) ** 2).sum()
                     for c in range(data.num_classes)).item()
        out = {}
        for precision in ("fp32", "bf16"):
            batched = matching_loss(net.embed, real.x, real.y, syn.x, syn.y, data.num_classes, chunk=256,
                                    precision=precision).item()
            out[precision] = abs(batched - looped) / looped
    return {"loss": looped, "rel_diff_fp32": out["fp32"], "rel_diff_bf16": out["bf16"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations (compilation happens here)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args, args.variant)))
        return
    rows = []
    for name in VARIANTS:
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--variant", name], capture_output=True,
                             text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    base = rows[0]["s_per_iter"]
    agreement = loss_agreement(args)
    lines = ["| variant | s / iteration | speed-up vs per-class loop | peak RSS (MB) |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['s_per_iter']:.2f} | {base / r['s_per_iter']:.2f}x | {r['peak_rss_mb']:.0f} |"
              for r in rows]
    table = "\n".join(lines)
    notes = (f"{args.dataset}, ipc {args.ipc}, {args.batch_real} real images per class, embedding "
             f"{CondenseConfig().embed_arch}, {args.iterations} timed iterations after {args.warmup} warm-up. "
             f"Loss on identical inputs (no augmentation): per-class loop {agreement['loss']:.4f}; batched fp32 "
             f"differs by {agreement['rel_diff_fp32']:.1e} (relative), batched bf16 by {agreement['rel_diff_bf16']:.1e}. "
             f"Peak RSS includes the loaded data set.")
    publish(f"Condensation speed: {args.dataset} ipc {args.ipc}", table, notes, record=not args.no_record)


if __name__ == "__main__":
    main()
