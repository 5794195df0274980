"""Train one architecture on a (small) training set and score it on the validation split.

The protocol is the paper's evaluation protocol (METHOD.md): SGD lr 0.01, momentum 0.9,
weight decay 5e-4, batch 256, cross-entropy, learning rate x0.1 after half the optimiser steps
(the optimiser keeps its momentum, unlike the authors' code), per-image DSA; or, for full-data
training, a one-cycle schedule (``schedule = "onecycle"``) over however many steps the run has. The whole training
set lives on the device as one tensor; batches are index gathers, no DataLoader, and nothing in
the loop waits on the device. Where the hardware runs bf16 natively the passes run under bf16
autocast (``precision="auto"``); ``benchmarks/RESULTS.md`` has the speed and the accuracy.

Example:
    >>> from nas_proxy import ArchSpec, load_dataset, train_candidate
    >>> from nas_proxy.method import TrainConfig
    >>> data = load_dataset("digits")
    >>> train = data.sample_per_class(5, seed=0)
    >>> result = train_candidate(ArchSpec.parse("d2-w32-relu-instancenorm-avgpool"), train, data,
    ...                      TrainConfig(epochs=5))
    >>> 0.0 <= result.val_acc <= 1.0
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nas_proxy import _accel
from nas_proxy._accel import autocast
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import ArgumentError, NasProxyError
from nas_proxy.method._augment import DSA, resolve_strategy
from nas_proxy.method._condense import CondensedSet
from nas_proxy.method._config import REFERENCE_DEFAULTS, TrainConfig
from nas_proxy.method._model import build_convnet, count_flops, count_params
from nas_proxy.space import ArchSpec


@dataclass(frozen=True)
class TrainResult:
    """What one proxy evaluation measured; ``test_acc`` is None unless asked for."""

    arch: str
    val_acc: float
    test_acc: float | None
    params: int
    flops: int
    seconds: float
    epochs: int
    seed: int
    train_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def accuracy(net: torch.nn.Module, split: Split, batch_size: int = 2048, precision: str = "fp32") -> float:
    """Top-1 accuracy of ``net`` (in eval mode) on ``split``; ``precision`` is ``fp32`` or ``bf16``."""
    if len(split) == 0:
        raise NasProxyError("the validation split is empty; use a val_fraction above 0")
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.x.device)
    with autocast(split.x.device, precision):
        for x, y in zip(split.x.split(batch_size), split.y.split(batch_size)):
            correct += (net(x).argmax(1) == y).sum()
    return correct.item() / len(split)


def training_set(train: str, data: Dataset, seed: int = 0) -> Split:
    """The training split ``train`` names: ``full`` (``data.train``), ``random:IPC`` (a class-balanced random real
    subset drawn with ``seed``) or the path of a condensed set (checked against ``data``).

    Example:
        >>> from nas_proxy import load_dataset
        >>> from nas_proxy.method import training_set
        >>> len(training_set("random:3", load_dataset("digits")))
        30
    """
    if train == "full":
        return data.train
    if train.startswith("random:"):
        try:
            ipc = int(train.split(":", 1)[1])
        except ValueError:
            raise ArgumentError(
                "training_set", "train", f"{train!r}: expected random:<images per class>, e.g. random:10"
            ) from None
        return data.sample_per_class(ipc, seed=seed)
    return CondensedSet.load(train, data).split(data.train.x.device)


def default_epochs(spec: str) -> int:
    """Epochs for training on the set ``spec`` names (:func:`training_set`) when none are given: full data needs the
    reference protocol's (``REFERENCE_DEFAULTS``), not the paper's 1000 for a few images per class."""
    return REFERENCE_DEFAULTS["epochs"] if spec == "full" else TrainConfig().epochs


def train_candidate(
    arch: ArchSpec,
    train: Split,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    test: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train ``arch`` from scratch on ``train`` and score it on ``data.val`` (and ``data.test`` if asked).

    ``train`` is any labelled split: a condensed set's ``split()``, ``data.sample_per_class(ipc)``
    or ``data.train``. The seed fixes the initial weights, the batch order and the augmentation.
    """
    return train_candidates([arch], train, data, config, test=test, progress=progress)[0]


def concurrent_jobs(config: TrainConfig, device: torch.device, candidates: int) -> int:
    """How many of ``candidates`` :func:`train_candidates` trains at once: ``config.jobs``, or by default one per
    CPU thread on a CPU (each single-threaded) and one on CUDA. Compiled networks train one at a time:
    ``torch.compile`` is not safe to run from several threads at once."""
    if config.compile:
        return 1
    jobs = config.jobs or ((config.threads or torch.get_num_threads()) if device.type == "cpu" else 1)
    return max(1, min(jobs, candidates))


def train_candidates(
    archs: Sequence[ArchSpec],
    train: Split,
    data: Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    test: bool = False,
    progress: bool = False,
    on_result: Callable[[int, TrainResult], None] | None = None,
) -> list[TrainResult]:
    """Train several architectures on ``train`` with the same settings and seed; results in ``archs``' order.

    Each result equals :func:`train_candidate`'s for that architecture (bit for bit on a CPU: the tests
    check it); only the execution differs. ``config.jobs`` candidates train at once, each in its own
    thread: on a CPU with one kernel thread each (small networks use two cores better side by side
    than one kernel across both), on CUDA each on its own stream. The longest candidates start
    first, so the last one does not run alone. ``seconds`` of a result is its own wall time; the
    batch's throughput is ``len(archs)`` over its wall time. ``on_result(i, result)`` runs in the
    caller's thread as each candidate finishes (``archs[i]``), so a caller can save it before the
    others end: a crash then loses only the candidates in flight.

    Example:
        >>> from nas_proxy import ArchSpec, load_dataset
        >>> from nas_proxy.method import TrainConfig, train_candidates
        >>> data = load_dataset("digits")
        >>> archs = [ArchSpec.parse(a) for a in ("d1-w32-relu-none-avgpool", "d2-w32-relu-batchnorm-maxpool")]
        >>> results = train_candidates(archs, data.sample_per_class(5, seed=0), data, TrainConfig(epochs=5, jobs=2))
        >>> [r.arch for r in results] == [a.id for a in archs]
        True
    """
    device = data.train.x.device
    if device.type == "cpu":
        _accel.tune_cpu_allocator()
        if config.threads:
            torch.set_num_threads(config.threads)
    jobs = concurrent_jobs(config, device, len(archs))
    report = on_result or (lambda index, result: None)
    with _accel.deterministic(device, config.deterministic):
        if jobs > 1:
            return _train_concurrently(archs, train, data, config, test, progress, jobs, report)
        results = []
        for index, arch in enumerate(
            tqdm(archs, desc="train", unit="net", leave=False, disable=not progress or len(archs) == 1)
        ):
            results.append(_train_one(arch, train, data, config, test, progress and len(archs) == 1))
            report(index, results[-1])
        return results


class _Stopped(Exception):
    """Raised inside a candidate's thread when the batch is abandoned (Ctrl-C or another candidate failed)."""


def _train_concurrently(
    archs: Sequence[ArchSpec],
    train: Split,
    data: Dataset,
    config: TrainConfig,
    test: bool,
    progress: bool,
    jobs: int,
    report: Callable[[int, TrainResult], None],
) -> list[TrainResult]:
    device = data.train.x.device
    size = (data.channels, data.num_classes, data.image_size)
    order = sorted(range(len(archs)), key=lambda i: -count_flops(archs[i], *size))  # longest first
    stop = threading.Event()
    results: list[TrainResult | None] = [None] * len(archs)
    kernel_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # read by each new thread at its first kernel: the pool starts below
    try:
        with ThreadPoolExecutor(jobs, thread_name_prefix="nas-proxy-train") as pool:
            futures = {pool.submit(_train_one, archs[i], train, data, config, test, False, stop): i for i in order}
            try:
                for future in tqdm(
                    as_completed(futures),
                    total=len(futures),
                    desc="train",
                    unit="net",
                    disable=not progress,
                    leave=False,
                ):
                    index = futures[future]
                    results[index] = future.result()
                    report(index, results[index])
            except BaseException:  # Ctrl-C or a failed candidate: the others stop at their next step
                stop.set()
                for future in futures:
                    future.cancel()
                raise
    finally:
        if device.type == "cpu":
            torch.set_num_threads(kernel_threads)
    return [r for r in results if r is not None]


def _train_one(
    arch: ArchSpec,
    train: Split,
    data: Dataset,
    config: TrainConfig,
    test: bool,
    progress: bool,
    stop: threading.Event | None = None,
) -> TrainResult:
    device = data.train.x.device
    if device.type != "cuda" or stop is None:
        return _train(arch, train, data, config, test, progress, stop)
    stream = torch.cuda.Stream(device)  # concurrent candidates: kernels of one fill gaps left by another
    stream.wait_stream(torch.cuda.current_stream(device))  # the data were written on the default stream
    with torch.cuda.stream(stream):
        return _train(arch, train, data, config, test, progress, stop)


def _train(
    arch: ArchSpec,
    train: Split,
    data: Dataset,
    config: TrainConfig,
    test: bool,
    progress: bool,
    stop: threading.Event | None,
) -> TrainResult:
    device = data.train.x.device
    if device.type == "cuda" and not config.deterministic:
        torch.backends.cudnn.benchmark = True  # one batch shape (two at most) for the whole run
    precision = _accel.resolve_precision(config.precision, device)
    memory_format = _accel.memory_format(device, config.compile, arch.norm)
    tic = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator, device=device)
    net = net.to(memory_format=memory_format)
    model = torch.compile(net, dynamic=False) if config.compile else net
    x, y = train.x.to(device, memory_format=memory_format), train.y.to(device)
    dsa = DSA(resolve_strategy(config.dsa_strategy, data.dsa_strategy))
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    per_pass, steps = config.batches(len(x)), config.optimiser_steps(len(x))
    # Counted in steps, not epochs, so a 1-epoch run on full data also decays halfway through it. Never at step 0:
    # a run of a single step (or one so short that the fraction rounds to 0) trains at the configured rate.
    decay_step = max(1, int(steps * config.lr_decay_at)) if config.schedule == "step" else -1
    cycle = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.lr, total_steps=steps, pct_start=config.warmup, cycle_momentum=False
        )
        if config.schedule == "onecycle" and steps > 1
        else None
    )
    step = 0
    for _ in tqdm(range(-(-steps // per_pass)), desc=f"train {arch.id}", disable=not progress, leave=False):
        model.train()
        order = _accel.to_device(torch.randperm(len(x), generator=generator), device)
        for index in order.split(config.batch_size)[: steps - step]:
            if stop is not None and stop.is_set():
                raise _Stopped
            if step == decay_step:
                for group in optimizer.param_groups:  # decay in place: momentum carries over
                    group["lr"] = config.lr * 0.1
            step += 1
            batch = dsa.per_image(x[index], generator) if dsa.families else x[index]
            with autocast(device, precision):
                loss = F.cross_entropy(model(batch), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cycle is not None:
                cycle.step()
    # Scored eagerly: a compiled network would compile again for every evaluation batch shape.
    net = net.to(memory_format=_accel.memory_format(device, False, arch.norm))
    val_acc = accuracy(net, data.val, config.eval_batch_size, precision)
    test_acc = accuracy(net, data.test, config.eval_batch_size, precision) if test else None
    return TrainResult(
        arch=arch.id,
        val_acc=val_acc,
        test_acc=test_acc,
        params=count_params(net),
        flops=count_flops(arch, data.channels, data.num_classes, data.image_size),
        seconds=time.perf_counter() - tic,
        epochs=config.epochs,
        seed=config.seed,
        train_size=len(x),
    )


__all__ = [
    "TrainResult",
    "accuracy",
    "concurrent_jobs",
    "default_epochs",
    "train_candidates",
    "train_candidate",
    "training_set",
]
