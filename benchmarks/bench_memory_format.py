"""Memory format per norm on a CPU: each norm's network trained channels-first and channels-last, in one run.

``nas_proxy._accel.memory_format`` picks channels_last for eager CPU training only where the
norm's kernels are faster in it; this measures that choice. Each architecture (depth 3, width
64, ReLU, every norm and pooling) trains with the same seed in both formats, alternated, and the
faster of ``--repeats`` runs counts.

    python benchmarks/bench_memory_format.py --dataset digits
    python benchmarks/bench_memory_format.py --dataset fashion_mnist --data-root ../shared/data
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch
from _common import publish

from nas_proxy import ArchSpec, _accel, load_dataset, train_candidate
from nas_proxy.method import TrainConfig
from nas_proxy.results._format import markdown_table

NORMS = ("none", "batchnorm", "groupnorm", "layernorm", "instancenorm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    data = load_dataset(args.dataset, args.data_root, val_fraction=0.02)  # a small split: training dominates
    train = data.sample_per_class(args.ipc, seed=0)
    chosen = _accel.memory_format  # what nas-proxy picks; replaced below by the format under test
    forced: dict[str, torch.memory_format] = {}
    _accel.memory_format = lambda *args, **kwargs: forced["format"]
    formats = {"channels_first": torch.contiguous_format, "channels_last": torch.channels_last}
    forced["format"] = torch.contiguous_format
    train_candidate(ArchSpec.parse("d1-w16-relu-none-maxpool"), train, data, TrainConfig(epochs=2))  # warm-up
    rows = []
    for norm in NORMS:
        for pool in ("maxpool", "avgpool"):
            arch = ArchSpec.parse(f"d3-w64-relu-{norm}-{pool}")
            seconds = {name: float("inf") for name in formats}
            for _ in range(args.repeats):
                for name, fmt in formats.items():
                    forced["format"] = fmt
                    seconds[name] = min(
                        seconds[name], train_candidate(arch, train, data, TrainConfig(epochs=args.epochs)).seconds
                    )
            pick = (
                "channels_last" if chosen(torch.device("cpu"), False, norm) == torch.channels_last else "channels_first"
            )
            rows.append(
                {
                    "arch": arch.id,
                    "channels_first_s": round(seconds["channels_first"], 2),
                    "channels_last_s": round(seconds["channels_last"], 2),
                    "last_vs_first": round(seconds["channels_first"] / seconds["channels_last"], 2),
                    "picked": pick,
                    "picked_vs_first": round(seconds["channels_first"] / seconds[pick], 2),
                }
            )
    notes = (
        f"{args.dataset}, {args.ipc} images per class, {args.epochs} epochs of the paper's protocol, fp32, "
        f"{torch.get_num_threads()} threads; seconds are the faster of {args.repeats} runs (training and scoring "
        f"{len(data.val)} validation images). `last_vs_first` > 1: channels_last is faster; `picked`: what "
        f"nas-proxy uses for that norm on a CPU."
    )
    publish(
        f"Memory format per norm on a CPU: {args.dataset}",
        markdown_table(pd.DataFrame(rows)),
        notes,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
