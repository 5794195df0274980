"""Distribution Matching (Zhao & Bilen, WACV 2023): learn a few synthetic images per class.

Every iteration draws a fresh randomly initialised ConvNet, embeds ``batch_real`` real
images per class and the synthetic images (the same DSA draw per class on both), and
takes one SGD step on the synthetic pixels to shrink the sum over classes of the squared
distance between mean embeddings. All classes share one batched forward pass; the loss
is still per class.

This module runs the loop (:func:`condense`) and makes its decisions (compile, precision, the embedding
networks); one iteration is in ``_matching``, the set and its file in ``_condensed_set``, the checkpoint in
``_checkpoint``.

Example:
    >>> from nas_proxy.method import CondenseConfig
    >>> from nas_proxy import condense, load_dataset
    >>> data = load_dataset("digits")
    >>> syn = condense(data, CondenseConfig(ipc=2, iterations=3, batch_real=32,
    ...                                     embed_arch="d2-w32-relu-instancenorm-avgpool"), progress=False)
    >>> syn.images.shape, len(syn.meta["losses"])
    (torch.Size([20, 1, 16, 16]), 3)
"""

from __future__ import annotations

import dataclasses
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nas_proxy import _accel
from nas_proxy._io import atomic_torch_save
from nas_proxy._version import __version__
from nas_proxy.data import Dataset
from nas_proxy.errors import NasProxyError
from nas_proxy.method._checkpoint import _CHECKPOINT_FORMAT, _load_checkpoint
from nas_proxy.method._condensed_set import CondensedSet
from nas_proxy.method._config import CondenseConfig
from nas_proxy.method._matching import _MatchingStep
from nas_proxy.method._model import feature_sizes
from nas_proxy.space import ArchSpec, load_search_space

# ``compile = "auto"`` compiles runs of at least this many iterations. CPU: measured on a 2-core
# AVX2 CPU (benchmarks/RESULTS.md, 'Condensation: compile = "auto"'): compiling the embedding
# (forward and backward, cold cache) costs 20-23 s once and saves, against eager fp32 (the CPU's
# choice when not compiled), 0.22 s per iteration on digits (16 px, the smallest shipped images;
# paid back after 92 iterations) to 1.1 s on FashionMNIST (after 21). 1000 is 10x the worst
# payback, for 2 threads and slower machines; with native bf16 compiling saves more (bf16 + compile).
# CUDA: not measured (no GPU lent); about a minute of compilation against a few ms per iteration
# pays back after roughly 10,000 iterations. Other devices never compile under "auto".
COMPILE_AUTO_MIN_ITERATIONS = {"cpu": 1000, "cuda": 10_000}


def embedding_archs(config: CondenseConfig, image_size: int) -> list[ArchSpec]:
    """The networks DM draws its embedding from: ``embed_arch``, or every one of ``embed_space`` that fits the
    images (none pools them below 1 px)."""
    if not config.embed_space:
        return [ArchSpec.parse(config.embed_arch)]
    archs = []
    for arch in load_search_space(config.embed_space).archs():
        try:
            feature_sizes(arch, image_size)
        except NasProxyError:
            continue
        archs.append(arch)
    if not archs:
        raise NasProxyError(
            f"no network of [condense] embed_space {config.embed_space!r} fits {image_size} px "
            f"images; choose a space of shallower or unpooled networks"
        )
    return archs


def _versions() -> dict[str, str]:
    return {
        "nas_proxy": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _initial_images(data: Dataset, config: CondenseConfig, generator: torch.Generator) -> torch.Tensor:
    real = data.sample_per_class(config.ipc, generator=generator).x.clone()
    if config.init == "noise":
        return torch.randn(real.shape, generator=generator).to(real.device)
    return real


def resolve_compile(config: CondenseConfig, device: torch.device | str) -> bool:
    """Whether ``config`` compiles the embedding on ``device``.

    ``"auto"`` compiles runs of at least :data:`COMPILE_AUTO_MIN_ITERATIONS` iterations, where
    ``torch.compile`` can build kernels (a C++ compiler on a CPU, Triton on CUDA).

    Example:
        >>> resolve_compile(CondenseConfig(iterations=100), "cpu"), resolve_compile(CondenseConfig(compile=True), "cpu")
        (False, True)
    """
    if config.embed_space:
        return False  # a new network every iteration: nothing to compile once
    if config.compile != "auto":
        return bool(config.compile)
    device = torch.device(device)
    threshold = COMPILE_AUTO_MIN_ITERATIONS.get(device.type)
    return threshold is not None and config.iterations >= threshold and _accel.can_compile(device.type)


def resolve_precision(config: CondenseConfig, device: torch.device | str, compiled: bool) -> str:
    """The precision ``config`` runs in on ``device``; on a CPU ``"auto"`` is bf16 only when compiled."""
    device = torch.device(device)
    if config.precision == "auto" and device.type == "cpu" and not compiled:
        return "fp32"  # eager bf16 condensation is slower than fp32 on a CPU (benchmarks/RESULTS.md)
    return _accel.resolve_precision(config.precision, device)


def condense(
    data: Dataset,
    config: CondenseConfig = CondenseConfig(),
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> CondensedSet:
    """Run DM on ``data.train`` (never its val or test split) and return the condensed set.

    With ``checkpoint``, the state (images, optimiser momentum, generator) is written there
    atomically every ``config.checkpoint_every`` iterations, and ``resume=True`` continues from
    it; the result is the same as an uninterrupted run with the same seed. The checkpoint is
    removed when the run completes. The set's ``meta`` records what ran: ``compile`` (the
    resolved decision) and ``precision``.
    """
    with _accel.deterministic(data.train.x.device, config.deterministic):
        return _condense(data, config, checkpoint, resume, progress)


def _compile_decision(
    config: CondenseConfig, device: torch.device, state: dict[str, Any] | None, checkpoint: Path | None
) -> bool:
    """resolve_compile(), except that a resumed ``"auto"`` run keeps the decision it began with."""
    compiled = resolve_compile(config, device)
    if state is None:
        return compiled
    began: bool = state["compiled"]
    if began == compiled:
        return compiled
    if config.compile == "auto":
        return began  # e.g. --iterations raised past the threshold: finish as it began
    word = {True: "on", False: "off"}
    raise NasProxyError(
        f"checkpoint {checkpoint} was made with compile {word[began]} but this run asks for compile "
        f"{word[compiled]}; use the same setting (or auto) or delete the checkpoint to start over"
    )


LOSS_BLOCK = 50  # DM iterations between reads of the matching loss (each read waits for the device)


def _condense(
    data: Dataset, config: CondenseConfig, checkpoint: str | Path | None, resume: bool, progress: bool
) -> CondensedSet:
    device = data.train.x.device
    if device.type == "cpu":
        _accel.tune_cpu_allocator()
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    state = None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = _load_checkpoint(checkpoint, data, config)
    compiled = _compile_decision(config, device, state, checkpoint)
    precision = resolve_precision(config, device, compiled)
    archs = embedding_archs(config, data.image_size)
    generator = torch.Generator().manual_seed(config.seed)
    labels = torch.arange(data.num_classes, device=device).repeat_interleave(config.ipc)
    images = _initial_images(data, config, generator)
    images.requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum)

    # DM's embedding networks are random every iteration and never compared across devices: on CUDA their
    # weights are drawn there, from a generator of their own, instead of on the host and copied every iteration.
    init_generator = generator if device.type == "cpu" else torch.Generator(device).manual_seed(config.seed)
    per_class = [index.cpu() for index in data.class_indices()]  # set-up: one read
    step = _MatchingStep(
        data, config, images, labels, optimizer, per_class, archs, generator, init_generator, compiled, precision
    )

    start, losses, elapsed = _restore(state, images, optimizer, generator, init_generator)

    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc=f"condense {data.name} ipc{config.ipc}",
        disable=not progress,
        dynamic_ncols=True,
    )
    pending: list[torch.Tensor] = []  # this block's losses, still on the device

    def read_losses(done: int) -> None:
        """Read the block's losses (one wait on the device per block, not per iteration); stop at a non-finite one."""
        values = torch.stack(pending).tolist() if pending else []
        pending.clear()
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                bar.close()
                raise _diverged(done - len(values) + offset + 1, config, checkpoint, f"its matching loss is {value}")
        losses.extend(values)
        if values:
            bar.set_postfix(loss=f"{values[-1]:.3f}", refresh=False)

    tic = time.perf_counter()
    for iteration in range(start, config.iterations):
        pending.append(step())
        bar.update(1)
        done = iteration + 1
        at_checkpoint = checkpoint is not None and done % config.checkpoint_every == 0 and done < config.iterations
        if at_checkpoint or len(pending) == LOSS_BLOCK or done == config.iterations:
            read_losses(done)
        if at_checkpoint:
            assert checkpoint is not None  # at_checkpoint says so
            _check_finite(images, done, config, checkpoint, bar)
            atomic_torch_save(
                {
                    "format": _CHECKPOINT_FORMAT,
                    "iteration": done,
                    "images": images.detach().cpu(),
                    "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(),
                    **({} if init_generator is generator else {"init_generator": init_generator.get_state()}),
                    "losses": losses,
                    "elapsed": elapsed + time.perf_counter() - tic,
                    "config": dataclasses.asdict(config),
                    "compiled": compiled,
                    "fingerprint": data.fingerprint,
                },
                checkpoint,
            )
    _check_finite(images, config.iterations, config, checkpoint, bar)
    bar.close()
    elapsed += time.perf_counter() - tic
    meta = _meta(data, config, step.dsa.strategy, precision, compiled, losses, elapsed)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return CondensedSet(images.detach().cpu(), labels.cpu(), meta)


def _restore(
    state: dict[str, Any] | None,
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    init_generator: torch.Generator,
) -> tuple[int, list[float], float]:
    """Put a checkpoint's images, optimiser and generators back; its iteration, losses so far and seconds (a new
    run's, without one)."""
    if state is None:
        return 0, [], 0.0
    with torch.no_grad():
        images.copy_(state["images"].to(images.device))
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    if "init_generator" in state and init_generator is not generator:
        init_generator.set_state(state["init_generator"])
    return state["iteration"], list(state["losses"]), state["elapsed"]


def _meta(
    data: Dataset,
    config: CondenseConfig,
    dsa_strategy: str,
    precision: str,
    compiled: bool,
    losses: list[float],
    elapsed: float,
) -> dict[str, Any]:
    """What a condensed set records of how it was made: the data, the settings, the losses and the cost."""
    device = data.train.x.device
    return {
        "dataset": data.name,
        "fingerprint": data.fingerprint,
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_size": data.image_size,
        "mean": list(data.mean),
        "std": list(data.std),
        "ipc": config.ipc,
        "iterations": config.iterations,
        "seed": config.seed,
        "dsa_strategy": dsa_strategy,
        "precision": precision,
        "compile": compiled,
        "deterministic": config.deterministic,
        "config": dataclasses.asdict(config),
        "losses": losses,
        "final_loss": losses[-1] if losses else None,
        "seconds": elapsed,
        "device": str(device),
        "versions": _versions(),
        "command": " ".join(sys.argv),
    }


def _diverged(iteration: int, config: CondenseConfig, checkpoint: Path | None, what: str) -> NasProxyError:
    """The error of a run whose images or loss stopped being finite: nothing of it is saved from then on."""
    # Its checkpoint (finite, but resuming it diverges again, and not with another lr_img) is left for the user.
    again = f"delete {checkpoint} and run again" if checkpoint is not None and checkpoint.exists() else "run again"
    return NasProxyError(
        f"condensation diverged at iteration {iteration} ({what}): its steps on the images are too large; "
        f"lower [condense].lr_img (now {config.lr_img:g}), e.g. tenfold, and {again}"
    )


def _check_finite(
    images: torch.Tensor, iteration: int, config: CondenseConfig, checkpoint: Path | None, bar: tqdm[Any]
) -> None:
    """Stop before a set or checkpoint holding NaN or inf is saved (one wait on the device: checked only then)."""
    if not bool(torch.isfinite(images).all()):
        bar.close()
        raise _diverged(iteration, config, checkpoint, "its images hold NaN or infinite values")
