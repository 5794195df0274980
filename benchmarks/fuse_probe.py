"""Fused candidates on a CPU (issue 36, item 3): do several networks in one set of kernels train faster?

Eight networks of one architecture (the seeds of one candidate, the simplest case to fuse) train for a few
optimiser steps on FashionMNIST-sized batches, measured in the same run in three ways:

- ``one at a time``: each network with its own optimiser, every kernel thread (the baseline);
- ``vmap``: the eight networks' weights stacked (``torch.func.stack_module_state``) and one vmapped forward and
  backward per step through ``functional_call`` (PyTorch's own way to run an ensemble);
- ``grouped``: one network with every layer's channels stacked and ``groups=8`` convolutions (written here for
  the plain networks: instance, batch or no norm), the kernel a fused ConvNet would launch.

It prints each one's seconds and the ratio to the baseline, and the largest weight difference between ``vmap`` and
the baseline after the same steps (the same arithmetic, rounded differently).

    python benchmarks/fuse_probe.py                   # the CPU
    python benchmarks/fuse_probe.py --device cuda     # where fusing is meant to pay: launches, not arithmetic
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from _common import publish
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nas_proxy import ArchSpec
from nas_proxy.method import build_convnet

ARCHS = (
    "d2-w16-relu-instancenorm-avgpool",
    "d3-w32-relu-batchnorm-maxpool",
    "d3-w64-relu-none-avgpool",
    "d3-w128-relu-instancenorm-avgpool",
)


def _grouped(arch: ArchSpec, copies: int) -> nn.Module:
    layers: list[nn.Module] = []
    channels = 1
    for block in range(arch.depth):
        width = copies * arch.width
        layers.append(nn.Conv2d(copies * channels, width, 3, padding=3 if block == 0 else 1, groups=copies))
        norm = {"instancenorm": nn.GroupNorm(width, width), "batchnorm": nn.BatchNorm2d(width)}.get(arch.norm)
        layers += [norm if norm is not None else nn.Identity(), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2) if arch.pooling == "maxpool" else nn.AvgPool2d(2))
        channels = arch.width
    return nn.Sequential(*layers)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # GPU work is queued: time it done
    return time.perf_counter()


def measure(arch_id: str, copies: int, steps: int, batch: int, device: torch.device) -> dict[str, float]:
    arch = ArchSpec.parse(arch_id)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(steps, copies, batch, 1, 28, 28, generator=gen).to(device)
    y = torch.randint(10, (steps, copies, batch), generator=gen).to(device)
    nets = [
        build_convnet(arch, 1, 10, 28, generator=torch.Generator().manual_seed(s), device=device) for s in range(copies)
    ]
    sgd = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)

    alone = [copy.deepcopy(net) for net in nets]
    optimisers = [torch.optim.SGD(net.parameters(), **sgd) for net in alone]
    tic = _clock(device)
    for step in range(steps):
        for i, (net, optimiser) in enumerate(zip(alone, optimisers)):
            loss = F.cross_entropy(net(x[step, i]), y[step, i])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    one_at_a_time = _clock(device) - tic

    params, buffers = stack_module_state([copy.deepcopy(net) for net in nets])
    params = {k: v.detach().requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(nets[0]).to("meta")
    optimiser = torch.optim.SGD(list(params.values()), **sgd)

    def forward(p, b, images):
        return functional_call(base, (p, b), (images,))

    tic = _clock(device)
    for step in range(steps):
        out = vmap(forward)(params, buffers, x[step])
        loss = F.cross_entropy(out.flatten(0, 1), y[step].flatten(), reduction="sum") / batch
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    vmapped = _clock(device) - tic
    named = [dict(net.named_parameters()) for net in alone]
    apart = max(float((params[k][i] - named[i][k]).abs().max()) for k in params for i in range(copies))

    grouped = _grouped(arch, copies).to(device)
    features = grouped(torch.zeros(1, copies, 28, 28, device=device)).shape
    head = torch.zeros(copies, 10, features[1] // copies * features[2] * features[3], device=device, requires_grad=True)
    optimiser = torch.optim.SGD([*grouped.parameters(), head], **sgd)
    tic = _clock(device)
    for step in range(steps):
        stacked = x[step].permute(1, 0, 2, 3, 4).reshape(batch, copies, 28, 28)
        logits = torch.einsum("bsf,skf->bsk", grouped(stacked).reshape(batch, copies, -1), head)
        loss = F.cross_entropy(logits.reshape(-1, 10), y[step].T.reshape(-1), reduction="sum") / batch
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    grouped_s = _clock(device) - tic
    return {"one": one_at_a_time, "vmap": vmapped, "grouped": grouped_s, "apart": apart}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    lines = [
        "| architecture | one at a time (s) | vmap (s, speed-up) | grouped (s, speed-up) | vmap's weights apart |",
        "|---|---|---|---|---|",
    ]
    for arch in ARCHS:
        measure(arch, args.copies, 2, args.batch, device)  # warm-up: allocator, oneDNN's primitives
        m = measure(arch, args.copies, args.steps, args.batch, device)
        lines.append(
            f"| {arch} | {m['one']:.2f} | {m['vmap']:.2f} ({m['one'] / m['vmap']:.2f}x) | "
            f"{m['grouped']:.2f} ({m['one'] / m['grouped']:.2f}x) | {m['apart']:.1e} |"
        )
        print(lines[-1], flush=True)
    publish(
        f"Fused candidates on a CPU: {args.copies} networks of one architecture in one set of kernels",
        "\n".join(lines),
        f"{args.copies} copies, {args.steps} SGD steps of batch {args.batch} on 28 px images, after 2 warm-up steps; "
        f"each way in the same run, on {device}.",
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
