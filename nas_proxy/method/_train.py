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

import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nas_proxy import _accel
from nas_proxy._accel import autocast
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import ArgumentError, NasProxyError
from nas_proxy.method._augment import DSA, resolve_strategy
from nas_proxy.method._condensed_set import CondensedSet
from nas_proxy.method._config import REFERENCE_DEFAULTS, TrainConfig
from nas_proxy.method._model import build_convnet, count_flops, count_params
from nas_proxy.space import ArchSpec


@dataclass(frozen=True)
class LearningCurve:
    """How one training run went, recorded at no extra pass over the data: ``losses`` the training loss of every
    optimiser step (kept on the device, read once at the end), ``val_acc`` the validation accuracy at the fractions
    of the run :func:`train_candidates` was asked for (``curve_at``), and at its end (1.0)."""

    losses: tuple[float, ...]
    val_acc: dict[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "val_acc": {str(k): v for k, v in self.val_acc.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearningCurve:
        return cls(tuple(map(float, data["losses"])), {float(k): float(v) for k, v in data["val_acc"].items()})


@dataclass(frozen=True)
class TrainResult:
    """What training one candidate measured; ``test_acc`` is None unless asked for."""

    arch: str
    val_acc: float
    test_acc: float | None
    params: int
    flops: int
    seconds: float
    epochs: int
    seed: int
    train_size: int
    curve: LearningCurve | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The result's numbers (its curve apart: :attr:`curve`)."""
        return {k: v for k, v in asdict(self).items() if k != "curve"}


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
    """The training split ``train`` names: ``full`` (``data.train``), ``subset:IPC`` (a class-balanced random real
    subset drawn with ``seed``) or the path of a condensed set (checked against ``data``).

    Example:
        >>> from nas_proxy import load_dataset
        >>> from nas_proxy.method import training_set
        >>> len(training_set("subset:3", load_dataset("digits")))
        30
    """
    if train == "full":
        return data.train
    if train.startswith("subset:"):
        try:
            ipc = int(train.split(":", 1)[1])
        except ValueError:
            raise ArgumentError(
                "training_set", "train", f"{train!r}: expected subset:<images per class>, e.g. subset:10"
            ) from None
        return data.sample_per_class(ipc, seed=seed)
    if re.fullmatch(r"\w+:[^/\\]*", train) and not Path(train).exists():  # KIND:N, no file: an unknown kind
        raise ArgumentError(
            "training_set", "train", f"{train!r}: expected full, subset:<images per class> or a condensed set file"
        )
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
    curve_at: Sequence[float] = (),
    warm: tuple[Split, TrainConfig] | None = None,
) -> TrainResult:
    """Train ``arch`` from scratch on ``train`` and score it on ``data.val`` (and ``data.test`` if asked).

    ``train`` is any labelled split: a condensed set's ``split()``, ``data.sample_per_class(ipc)``
    or ``data.train``. The seed fixes the initial weights, the batch order and the augmentation.
    ``curve_at``: fractions of the run (in (0, 1)) at which the result's :class:`LearningCurve` also holds the
    validation accuracy (each an evaluation pass). ``warm``: a (set, config) the network trains on first, then on
    ``train`` with ``config`` (a warm start: the condensed set, then a short run on the real data).
    """
    return train_candidates([arch], train, data, config, test=test, progress=progress, curve_at=curve_at, warm=warm)[0]


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
    curve_at: Sequence[float] = (),
    warm: tuple[Split, TrainConfig] | None = None,
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
    bad = next((f for f in curve_at if not 0 < f < 1), None)
    if bad is not None:
        raise ArgumentError("train_candidates", "curve_at", f"holds {bad}; each must be a fraction of a run, in (0, 1)")
    curve_at = tuple(sorted(set(curve_at)))
    device = data.train.x.device
    if device.type == "cpu":
        _accel.tune_cpu_allocator()
        if config.threads:
            torch.set_num_threads(config.threads)
    jobs = concurrent_jobs(config, device, len(archs))
    report = on_result or (lambda index, result: None)
    with _accel.deterministic(device, config.deterministic):
        if jobs > 1:
            return _train_concurrently(archs, train, data, config, test, progress, jobs, report, curve_at, warm)
        results = []
        for index, arch in enumerate(
            tqdm(archs, desc="train", unit="net", leave=False, disable=not progress or len(archs) == 1)
        ):
            results.append(_train_one(arch, train, data, config, test, progress and len(archs) == 1, curve_at, warm))
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
    curve_at: tuple[float, ...],
    warm: tuple[Split, TrainConfig] | None,
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
            futures = {
                pool.submit(_train_one, archs[i], train, data, config, test, False, curve_at, warm, stop): i
                for i in order
            }
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
                    result = future.result()
                    results[index] = result
                    report(index, result)
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
    curve_at: tuple[float, ...],
    warm: tuple[Split, TrainConfig] | None,
    stop: threading.Event | None = None,
) -> TrainResult:
    device = data.train.x.device
    if device.type != "cuda" or stop is None:
        return _train(arch, train, data, config, test, progress, curve_at, stop, warm)
    stream = torch.cuda.Stream(device)  # concurrent candidates: kernels of one fill gaps left by another
    stream.wait_stream(torch.cuda.current_stream(device))  # the data were written on the default stream
    with torch.cuda.stream(stream):
        return _train(arch, train, data, config, test, progress, curve_at, stop, warm)


def _train(
    arch: ArchSpec,
    train: Split,
    data: Dataset,
    config: TrainConfig,
    test: bool,
    progress: bool,
    curve_at: tuple[float, ...],
    stop: threading.Event | None,
    warm: tuple[Split, TrainConfig] | None = None,
) -> TrainResult:
    device = data.train.x.device
    precision = _accel.resolve_precision(config.precision, device)
    memory_format = _accel.memory_format(device, config.compile, arch.norm)
    tic = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator, device=device)
    net = net.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs leave out memory_format
    model = _accel.compile_fresh(net) if config.compile else net
    fit = functools.partial(_fit, net, model, data, generator, precision, memory_format, stop)
    if warm is not None:  # first the warm-start set with its own protocol (a fresh optimiser after it)
        fit(*warm, (), None)
    losses, val_curve = fit(train, config, curve_at, f"train {arch.id}" if progress else None)
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
        train_size=len(train),
        curve=LearningCurve(tuple(losses.tolist()), {**val_curve, 1.0: val_acc}),
    )


def _fit(
    net: torch.nn.Module,
    model: torch.nn.Module,
    data: Dataset,
    generator: torch.Generator,
    precision: str,
    memory_format: torch.memory_format,
    stop: threading.Event | None,
    train: Split,
    config: TrainConfig,
    curve_at: tuple[float, ...],
    desc: str | None,
) -> tuple[torch.Tensor, dict[float, float]]:
    """Train ``net`` (``model``: it, or it compiled) on ``train`` with ``config``'s optimiser and schedule; the loss
    of every step (on the device) and the validation accuracy after each ``curve_at`` fraction of the steps."""
    device = data.train.x.device
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
    losses = torch.zeros(steps, device=device)  # written in place every step, read once at the end: no waits
    checkpoints = {max(1, round(f * steps)): f for f in curve_at}  # after these many steps: a validation pass
    val_curve = {}
    step = 0
    for _ in tqdm(range(-(-steps // per_pass)), desc=desc, disable=desc is None, leave=False):
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
            # A partial last batch runs eagerly: one compiled graph per network, never one per batch size.
            forward = model if len(index) == config.batch_size else net
            with autocast(device, precision):
                loss = F.cross_entropy(forward(batch), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if cycle is not None:
                cycle.step()
            losses[step - 1] = loss.detach()
            if step in checkpoints and step < steps:
                val_curve[checkpoints[step]] = accuracy(net, data.val, config.eval_batch_size, precision)
                model.train()
    return losses, val_curve


__all__ = [
    "LearningCurve",
    "TrainResult",
    "accuracy",
    "concurrent_jobs",
    "default_epochs",
    "train_candidates",
    "train_candidate",
    "training_set",
]
