"""What the GPU does per step: host waits and kernel launches per training step and per DM iteration, and memory at
the largest side-by-side count (issue 36, item 6; run by ``benchmarks/gpu_check.sh``).

Each count is a difference of two runs that differ only in length (``E`` and ``2E`` epochs, ``N`` and ``2N`` DM
iterations), so set-up, the final read and the evaluation cancel and what is left is the steady state per step.
Host waits are the warnings of ``torch.cuda.set_sync_debug_mode("warn")`` (one per synchronising call); launches are
the profiler's CUDA runtime launch calls. On a CPU the script runs through with tiny budgets (a dry run of the
script itself) and reports no figures: there is nothing to wait for and nothing to launch.

    python benchmarks/gpu_probe.py --data-root DIR --out probe.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from nas_proxy import ArchSpec, load_dataset
from nas_proxy.method import CondenseConfig, TrainConfig, condense, train_candidates

ARCHS = ("d3-w128-relu-instancenorm-avgpool", "d4-w256-relu-batchnorm-maxpool", "d2-w32-sigmoid-none-none")
LARGEST = "d4-w256-leakyrelu-layernorm-none"  # the most memory per network of the 720 space at 28 px


def host_waits(run: Callable[[], object]) -> int:
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def launches(run: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if "LaunchKernel" in e.key)


def per_step(measure: Callable[[Callable[[], object]], int], run: Callable[[int], object], n: int) -> float:
    """(measure(run(2n)) - measure(run(n))) / n: the steady state per step, set-up and the end cancelled."""
    run(n)  # warm-up: allocator, cuDNN's autotuning, lazy module loads
    return (measure(lambda: run(2 * n)) - measure(lambda: run(n))) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=20, help="E (default 20; each epoch of ipc 10 is 1 step)")
    parser.add_argument("--iterations", type=int, default=100, help="N DM iterations (default 100)")
    parser.add_argument("--side-by-side", type=int, default=8, help="networks trained at once for the memory figure")
    parser.add_argument("--largest", default=LARGEST, help="the network trained side by side (default: %(default)s)")
    parser.add_argument("--out", default=None, help="write the figures here as JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    data = load_dataset("fashion_mnist", args.data_root, device=device)
    train = data.sample_per_class(10, seed=0)
    figures: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu (dry run: no figures)",
        "torch": torch.__version__,
    }
    epochs, iterations = (args.epochs, args.iterations) if cuda else (1, 2)
    for name in ARCHS:
        arch = ArchSpec.parse(name)

        def run(e: int, arch: ArchSpec = arch) -> object:
            return train_candidates([arch], train, data, TrainConfig(epochs=e, batch_size=256, dsa_strategy="auto"))

        per_epoch = TrainConfig(epochs=1, batch_size=256).optimiser_steps(len(train))  # 1 for 100 images
        if cuda:
            figures[f"train {name}: host waits per step"] = per_step(host_waits, run, epochs) / per_epoch
            figures[f"train {name}: launches per step"] = per_step(launches, run, epochs) / per_epoch
        else:
            run(epochs)

    def dm(n: int) -> object:
        config = CondenseConfig(iterations=n, ipc=10, batch_real=256, compile=False)
        return condense(data, config, progress=False)

    if cuda:
        figures["DM: host waits per iteration"] = per_step(host_waits, dm, iterations)
        figures["DM: launches per iteration"] = per_step(launches, dm, iterations)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        dm(iterations)
    tic = time.perf_counter()
    many = [ArchSpec.parse(args.largest)] * args.side_by_side
    big = data.sample_per_class(50, seed=0)
    train_candidates(many, big, data, TrainConfig(epochs=epochs, jobs=args.side_by_side, dsa_strategy="auto"))
    if cuda:
        torch.cuda.synchronize(device)
        figures[f"memory, {args.side_by_side} x {args.largest} side by side (GiB)"] = (
            torch.cuda.max_memory_allocated(device) / 2**30
        )
        figures[f"seconds, {args.side_by_side} x {args.largest} side by side, {epochs} epochs of ipc 50"] = (
            time.perf_counter() - tic
        )
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
