"""Seconds per DM iteration: nas-proxy's batched condensation against a per-class loop.

The baseline is written here with the structure of the authors' public DM code: a new
network every iteration, then for each class: sample its real images, augment real and
synthetic with the same draw, embed each, add the squared distance of the means; one
backward and one step. nas-proxy's ``condense()`` does the same math in one batched pass.
Each variant runs in its own process (so peak RSS is its own) with an empty inductor cache (so
the first iteration of a compiled variant pays the whole compilation, as a user's first run
does); the loss agreement is checked on identical inputs. ``default`` is what ``nas-proxy
condense`` does without options: a 20,000-iteration config whose ``compile = "auto"`` and
``precision = "auto"`` are resolved for this machine, timed over the same few iterations.
``--repeats`` runs every variant that many times, round-robin, and reports medians. Appends
a table to benchmarks/RESULTS.md.

    python benchmarks/bench_condense.py --data-root ../shared/data --ipc 10 --iterations 8
    python benchmarks/bench_condense.py --data-root ../shared/data --variants loop,fp32,default --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from _common import publish

import nas_proxy.method._matching
from nas_proxy import ArchSpec, condense, load_dataset
from nas_proxy._accel import native_bf16
from nas_proxy.method import DSA, CondenseConfig, build_convnet
from nas_proxy.method._condense import resolve_compile
from nas_proxy.method._matching import matching_loss

DEFAULT = f"default (compile auto, {CondenseConfig().iterations:,}-iteration config)"
VARIANTS = {
    "per-class loop (baseline)": None,
    "batched fp32": dict(precision="fp32", compile=False),
    "batched fp32 + compile": dict(precision="fp32", compile=True),
    "batched bf16": dict(precision="bf16", compile=False),
    "batched bf16 + compile": dict(precision="bf16", compile=True),
    DEFAULT: "default",
}
SHORT = dict(zip(["loop", "fp32", "fp32+compile", "bf16", "bf16+compile", "default"], VARIANTS))


def now() -> tuple[float, float]:
    """(wall clock, this process's CPU time): under other load the CPU time per iteration stays honest."""
    return time.perf_counter(), time.process_time()


def per_class_loop(data, ipc: int, iterations: int, batch_real: int, seed: int, stamps: list) -> None:
    generator = torch.Generator().manual_seed(seed)
    arch = ArchSpec.parse(CondenseConfig().embed_arch)
    images = data.sample_per_class(ipc, generator=generator).x.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    dsa = DSA(data.dsa_strategy)
    per_class = data.class_indices()
    for _ in range(iterations):
        stamps.append(now())
        net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator)
        net.train()
        net.requires_grad_(False)
        loss = torch.zeros(())
        for c in range(data.num_classes):
            real = data.train.x[per_class[c][torch.randperm(len(per_class[c]), generator=generator)[:batch_real]]]
            syn = images[c * ipc : (c + 1) * ipc]
            draw = dsa.siamese_draw(1, (data.image_size, data.image_size), generator)
            real = draw.apply(real, torch.zeros(len(real), dtype=torch.long))
            syn = draw.apply(syn, torch.zeros(ipc, dtype=torch.long))
            loss = loss + ((net.embed(real).detach().mean(0) - net.embed(syn).mean(0)) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_variant(args, name: str) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_root)
    settings = VARIANTS[name]
    stamps: list[tuple[float, float]] = []
    total = args.warmup + args.iterations + 1  # the start of the last iteration closes the timed window
    runs_as = "per-class fp32"
    if settings is None:
        per_class_loop(data, args.ipc, total, args.batch_real, seed=0, stamps=stamps)
    else:
        if settings == "default":
            # The default run's decisions for its 20,000 iterations, timed over the first few of them.
            planned = CondenseConfig(ipc=args.ipc, batch_real=args.batch_real)
            config = dataclasses.replace(
                planned, iterations=total, compile=resolve_compile(planned, data.train.x.device)
            )
        else:
            config = CondenseConfig(ipc=args.ipc, iterations=total, batch_real=args.batch_real, **settings)
        # Time stamp at the start of every iteration: condense() re-initialises its network there.
        init = nas_proxy.method._matching.init_parameters
        nas_proxy.method._matching.init_parameters = lambda net, g: (stamps.append(now()), init(net, g))[1]
        meta = condense(data, config, progress=False).meta
        runs_as = f"{'compiled' if meta['compile'] else 'eager'} {meta['precision']}"
    timed = stamps[args.warmup : args.warmup + args.iterations + 1]
    return {
        "variant": name,
        "runs_as": runs_as,
        "s_per_iter": (timed[-1][0] - timed[0][0]) / args.iterations,
        "cpu_s_per_iter": (timed[-1][1] - timed[0][1]) / args.iterations,
        "first_iter_s": stamps[1][0] - stamps[0][0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_in_fresh_process(name: str) -> dict:
    """One variant in its own process, with an empty inductor cache of its own."""
    cache = tempfile.mkdtemp(prefix="bench_condense_inductor_")
    try:
        out = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--variant", name],
            capture_output=True,
            text=True,
            env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
        )
        if out.returncode:
            raise SystemExit(f"variant {name!r} failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def loss_agreement(args) -> dict:
    """Relative difference of batched fp32/bf16 losses from the per-class fp32 loss on the same inputs."""
    data = load_dataset(args.dataset, args.data_root)
    generator = torch.Generator().manual_seed(1)
    net = build_convnet(
        ArchSpec.parse(CondenseConfig().embed_arch),
        data.channels,
        data.num_classes,
        data.image_size,
        generator=generator,
    )
    real = data.sample_per_class(min(args.batch_real, min(map(len, data.class_indices()))), generator=generator)
    syn = data.sample_per_class(args.ipc, generator=generator)
    with torch.no_grad():
        looped = sum(
            ((net.embed(real.x[real.y == c]).mean(0) - net.embed(syn.x[syn.y == c]).mean(0)) ** 2).sum()
            for c in range(data.num_classes)
        ).item()
        out = {}
        for precision in ("fp32", "bf16"):
            batched = matching_loss(
                net.embed, real.x, real.y, syn.x, syn.y, data.num_classes, chunk=256, precision=precision
            ).item()
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
    parser.add_argument(
        "--variants", default=",".join(SHORT), help=f"comma-separated subset of {', '.join(SHORT)} (default: all)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of every variant, round-robin; the table shows medians (default: 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per variant (default: torch's choice); with 1, CPU time per iteration "
        "is not inflated by other load on the machine",
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args, args.variant)))
        return
    names = [SHORT[key] for key in args.variants.split(",")]
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            runs[name].append(run_in_fresh_process(name))
            print(runs[name][-1], flush=True)
    load_after = os.getloadavg()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    def spread(name: str, key: str) -> str:
        values = [r[key] for r in runs[name]]
        return f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""

    loop = SHORT["loop"]
    lines = [
        "| variant | runs as | s / iteration | CPU s / iteration | speed-up vs per-class loop (wall / CPU) | "
        "first iteration (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        wall, cpu = median(name, "s_per_iter"), median(name, "cpu_s_per_iter")
        ratio = (
            f"{median(loop, 's_per_iter') / wall:.2f}x / {median(loop, 'cpu_s_per_iter') / cpu:.2f}x"
            if loop in runs
            else "n/a"
        )
        lines.append(
            f"| {name} | {runs[name][0]['runs_as']} | {wall:.2f}{spread(name, 's_per_iter')} | "
            f"{cpu:.2f}{spread(name, 'cpu_s_per_iter')} | {ratio} | "
            f"{median(name, 'first_iter_s'):.1f}{spread(name, 'first_iter_s')} | "
            f"{median(name, 'peak_rss_mb'):.0f} |"
        )
    table = "\n".join(lines)
    # Compilation cost: the first iteration of a compiled variant beyond its steady iteration; it
    # pays back after cost / (eager fp32 - compiled) iterations (eager fp32 is the CPU's non-compiled run).
    payback = []
    for name in names:
        if runs[name][0]["runs_as"].startswith("compiled"):
            cost = median(name, "first_iter_s") - median(name, "s_per_iter")
            text = f"{name}: compilation {cost:.0f} s"
            eager = SHORT["fp32"]
            if eager in runs:
                saving = median(eager, "s_per_iter") - median(name, "s_per_iter")
                cpu_saving = median(eager, "cpu_s_per_iter") - median(name, "cpu_s_per_iter")
                text += f", saves {saving:.2f} s (CPU time: {cpu_saving:.2f} s) per iteration against batched fp32" + (
                    f", paid back after {cost / saving:.0f} iterations" if saving > 0 else ""
                )
            payback.append(text)
    agreement = loss_agreement(args)
    repeats = (
        f"median of {args.repeats} runs per variant (range in brackets), round-robin"
        if args.repeats > 1
        else "one run per variant"
    )
    notes = (
        f"{args.dataset}, ipc {args.ipc}, {args.batch_real} real images per class, embedding "
        f"{CondenseConfig().embed_arch}, {args.iterations} timed iterations after {args.warmup} warm-up, "
        f"{args.threads or torch.get_num_threads()} torch threads, "
        f"{repeats}, each in a fresh process with an empty inductor cache. "
        + ("; ".join(payback) + ". " if payback else "")
        + f"Native bf16 on this CPU (AVX512-BF16 or AMX): {'yes' if native_bf16('cpu') else 'no'}. "
        f"Load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after. "
        f"Loss on identical inputs (no augmentation): per-class loop {agreement['loss']:.4f}; batched fp32 "
        f"differs by {agreement['rel_diff_fp32']:.1e} (relative), batched bf16 by {agreement['rel_diff_bf16']:.1e}. "
        f"Peak RSS includes the loaded data set."
    )
    publish(f"Condensation speed: {args.dataset} ipc {args.ipc}", table, notes, record=not args.no_record)


if __name__ == "__main__":
    main()
