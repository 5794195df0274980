"""Distribution Matching (Zhao & Bilen, WACV 2023): learn a few synthetic images per class.

Every iteration draws a fresh randomly initialised ConvNet, embeds ``batch_real`` real
images per class and the synthetic images (the same DSA draw per class on both), and
takes one SGD step on the synthetic pixels to shrink the sum over classes of the squared
distance between mean embeddings. All classes share one batched forward pass; the loss
is still per class.

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
import errno
import math
import pickle
import platform
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from nas_proxy import _accel
from nas_proxy._accel import autocast
from nas_proxy._io import atomic_torch_save, atomic_write
from nas_proxy._version import __version__
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import NasProxyError
from nas_proxy.method._augment import DSA, resolve_strategy
from nas_proxy.method._config import CondenseConfig
from nas_proxy.method._model import build_convnet, feature_sizes, init_parameters
from nas_proxy.space import ArchSpec, load_search_space

FORMAT = "nas-proxy-condensed/1"
_CHECKPOINT_FORMAT = "nas-proxy-condense-checkpoint/1"
# Settings that may change between a checkpoint and its resumption without changing the result.
# ``compile`` is compared by its resolved value in condense() ("auto" and true are the same run if
# "auto" compiles); ``deterministic`` changes bitwise repeatability on CUDA, not the result.
_RESUMABLE = {"iterations", "checkpoint_every", "compile", "deterministic"}

# ``compile = "auto"`` compiles runs of at least this many iterations. CPU: measured on a 2-core
# AVX2 CPU (benchmarks/RESULTS.md, 'Condensation: compile = "auto"'): compiling the embedding
# (forward and backward, cold cache) costs 20-23 s once and saves, against eager fp32 (the CPU's
# choice when not compiled), 0.22 s per iteration on digits (16 px, the smallest shipped images;
# paid back after 92 iterations) to 1.1 s on FashionMNIST (after 21). 1000 is 10x the worst
# payback, for 2 threads and slower machines; with native bf16 compiling saves more (bf16 + compile).
# CUDA: not measured (no GPU lent); about a minute of compilation against a few ms per iteration
# pays back after roughly 10,000 iterations. Other devices never compile under "auto".
COMPILE_AUTO_MIN_ITERATIONS = {"cpu": 1000, "cuda": 10_000}


def _write_png_grid(images: torch.Tensor, rows: int, path: str | Path, pad: int = 1) -> Path:
    """Write ``images`` (N, C, H, W) with values in [0, 1] as a ``rows`` x ceil(N/rows) PNG grid."""
    images = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = images.shape
    cols = -(-n // rows)
    grid = torch.ones(3, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].expand(3, h, w)
    pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))


def checkpoint_path(path: str | Path) -> Path:
    """Where an interrupted condensation that will write ``path`` keeps its state: ``<path>.ckpt``."""
    path = Path(path)
    return path.with_name(path.name + ".ckpt")


@dataclass
class CondensedSet:
    """Synthetic images (normalised like the real data), their labels and provenance."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, device: str | torch.device = "cpu") -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def save(self, path: str | Path, png: bool = True) -> Path:
        """Write the set atomically to ``path``, and a PNG grid (a row per class) beside it."""
        path = Path(path)
        atomic_torch_save(
            {"format": FORMAT, "images": self.images.cpu(), "labels": self.labels.cpu(), "meta": self.meta}, path
        )
        if png:
            mean = torch.tensor(self.meta["mean"]).view(1, -1, 1, 1)
            std = torch.tensor(self.meta["std"]).view(1, -1, 1, 1)
            _write_png_grid(
                self.images.cpu() * std + mean, rows=self.meta["num_classes"], path=path.with_suffix(".png")
            )
        return path

    @classmethod
    def load(cls, path: str | Path, data: Dataset | None = None) -> CondensedSet:
        """Read a set written by :meth:`save`; with ``data``, check it was condensed from that data set."""
        path = Path(path)
        if not path.is_file():
            raise NasProxyError(
                f"condensed set not found: {path}; create it with `nas-proxy condense ... --out {path}`"
            )
        blob = _read(path, "condensed set", "re-create it with `nas-proxy condense`")
        problem = _set_problem(blob)
        if problem:
            raise NasProxyError(
                f"{path} is not a readable nas-proxy condensed set ({problem}); "
                f"{_newer_hint(blob, FORMAT)}re-create it with `nas-proxy condense`"
            )
        syn = cls(blob["images"], blob["labels"], blob["meta"])
        if data is not None:
            meta = syn.meta
            if meta.get("dataset") != data.name:
                raise NasProxyError(
                    f"{path} was condensed from {meta.get('dataset')!r}, not {data.name!r}; "
                    f"condense {data.name!r} or pass --dataset {meta.get('dataset')}"
                )
            shape = tuple(syn.images.shape[1:])
            if shape != (data.channels, data.image_size, data.image_size):
                raise NasProxyError(
                    f"{path} holds {shape} images but {data.name} has "
                    f"{(data.channels, data.image_size, data.image_size)}; re-condense it"
                )
            if int(syn.labels.max()) >= data.num_classes:
                raise NasProxyError(
                    f"{path} has labels beyond {data.name}'s {data.num_classes} classes; re-condense it"
                )
        return syn


def _read(path: Path, what: str, fix: str) -> Any:
    """``torch.load`` of tensors and plain containers only; a failure becomes one line saying what went wrong.

    The file may be unreadable (permissions, a disk error), cut short or not a PyTorch file at all (a crash
    while it was copied, the wrong path), or hold objects no nas-proxy file holds (another program's file):
    each asks for something else, so each says so.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # torch's zip reader, seeking past the end of a file cut short
            raise NasProxyError(f"{path} is cut short or corrupt (its zip archive ends early); {fix}") from None
        raise NasProxyError(
            f"cannot read the {what} {path} ({exc.strerror or exc}); check the file's permissions and the disk"
        ) from None
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a pickle of classes: loading it would run their code
            raise NasProxyError(
                f"{path} holds Python objects that no nas-proxy {what} holds (another program's file?); {fix}"
            ) from None
        raise NasProxyError(f"{path} is cut short or is not a PyTorch file (not a pickle of tensors); {fix}") from None
    except Exception as exc:  # zip errors (RuntimeError), EOFError, KeyError, ...: torch.load names no common type
        raise NasProxyError(f"{path} is cut short or is not a PyTorch file ({_first_line(exc)}); {fix}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text and text[0] else type(exc).__name__


def _newer_hint(blob: Any, expected: str) -> str:
    """For a file of a later format version than this nas-proxy reads: how to read it instead of re-making it."""
    name, _, version = expected.rpartition("/")
    found = blob.get("format") if isinstance(blob, dict) else None
    if isinstance(found, str) and found.startswith(name + "/"):
        theirs = found.rpartition("/")[2]
        if theirs.isdigit() and int(theirs) > int(version):
            return f"it was written by a newer nas-proxy than this one ({__version__}): upgrade nas-proxy, or "
    return ""


def _format_problem(blob: Any, expected: str, fields: dict[str, type]) -> str:
    """Why ``blob`` (what ``torch.load`` returned) is not an ``expected`` file; "" if it is.

    Explicit checks, not ``assert``: they must hold under ``python -O`` too.
    """
    if not isinstance(blob, dict) or "format" not in blob:
        return "another kind of file: it has no 'format' entry"
    if blob["format"] != expected:
        return f"format {blob['format']!r}, expected {expected!r}"
    for key, kind in fields.items():
        if key not in blob:
            return f"it has no {key!r}"
        if not isinstance(blob[key], kind):
            return f"its {key!r} is of type {type(blob[key]).__name__}, expected {kind.__name__}"
    return ""


_CHECKPOINT_FIELDS = {
    "iteration": int,
    "images": torch.Tensor,
    "optimizer": dict,
    "generator": torch.Tensor,
    "losses": list,
    "elapsed": float,
    "config": dict,
    "fingerprint": str,
}


def _set_problem(blob: Any) -> str:
    """Why ``blob`` is not a condensed set :meth:`CondensedSet.save` wrote; "" if it is one."""
    problem = _format_problem(blob, FORMAT, {"images": torch.Tensor, "labels": torch.Tensor, "meta": dict})
    if problem:
        return problem
    images, labels = blob["images"], blob["labels"]
    if images.ndim != 4 or not images.is_floating_point():
        return f"images of shape {tuple(images.shape)} and type {images.dtype}, expected float (N, C, H, W)"
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        return f"labels of shape {tuple(labels.shape)} and type {labels.dtype}, expected integer (N,)"
    if len(images) != len(labels) or not len(images):
        return f"{len(images)} images and {len(labels)} labels"
    if int(labels.min()) < 0:
        return "negative labels"
    if len(labels.unique()) < 2:  # nothing to tell apart: every network trained on it scores at chance
        return "images of one class only; a set needs at least 2"
    if not bool(torch.isfinite(images).all()):
        return "its images hold NaN or infinite values"
    return ""


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sum of ``features`` per class, as (num_classes, dim) float32; divide by the counts for means."""
    sums = torch.zeros(num_classes, features.shape[1], device=features.device, dtype=torch.float32)
    return sums.index_add(0, labels, features.float())


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images per class (at least 1, to divide by), as a (num_classes, 1) float32 column on ``labels``' device.
    Summed with ``index_add``: ``bincount`` reads the labels' range back from the device, a wait every iteration."""
    ones = torch.ones(len(labels), device=labels.device, dtype=torch.float32)
    counts = torch.zeros(num_classes, device=labels.device, dtype=torch.float32).index_add(0, labels, ones)
    return counts.clamp_min(1).unsqueeze(1)


def matching_loss(
    embed: Callable[[torch.Tensor], torch.Tensor | list[torch.Tensor]],
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    syn_x: torch.Tensor,
    syn_y: torch.Tensor,
    num_classes: int,
    *,
    chunk: int,
    precision: str = "fp32",
    relative: bool = False,
) -> torch.Tensor:
    """Sum over classes of ||mean embed(real_c) - mean embed(syn_c)||^2, real side without gradients.

    ``relative``: that distance over the sum of the real class means' squared norms, so networks and
    blocks of any width, map size or activation scale weigh alike (raw distances of the 720 space's
    networks span five decades); when ``embed`` returns the features of several blocks (a list,
    ``[condense] match = "blocks"``), the mean of the blocks' relative distances.
    Real images go through ``embed`` in chunks of ``chunk`` (exact unless the network uses batch
    statistics; callers pass the whole batch as one chunk then).
    """

    def sums(x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        features = embed(x)
        return [class_means(f, y, num_classes) for f in (features if isinstance(features, list) else [features])]

    with torch.no_grad(), autocast(real_x.device, precision):
        chunks = [sums(c, y) for c, y in zip(real_x.split(chunk), real_y.split(chunk))]
        real_sum = [sum(block) for block in zip(*chunks)]
    real_count = class_counts(real_y, num_classes)
    with autocast(syn_x.device, precision):
        syn_sum = sums(syn_x, syn_y)
    syn_count = class_counts(syn_y, num_classes)
    real_mean = [r / real_count for r in real_sum]
    distances = [((r - s / syn_count) ** 2).sum() for r, s in zip(real_mean, syn_sum)]
    if not relative:
        return cast(torch.Tensor, sum(distances))
    return cast(
        torch.Tensor, sum(d / r.pow(2).sum().clamp_min(1e-12) for d, r in zip(distances, real_mean)) / len(distances)
    )


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
    began = state.get("compiled", state["config"].get("compile"))  # older checkpoints hold a bool
    if not isinstance(began, bool) or began == compiled:
        return compiled
    if config.compile == "auto":
        return began  # e.g. --iterations raised past the threshold: finish as it began
    word = {True: "on", False: "off"}
    raise NasProxyError(
        f"checkpoint {checkpoint} was made with compile {word[began]} but this run asks for compile "
        f"{word[compiled]}; use the same setting (or auto) or delete the checkpoint to start over"
    )


LOSS_BLOCK = 50  # DM iterations between reads of the matching loss (each read waits for the device)


@dataclass
class _MatchingStep:
    """One DM iteration: a fresh random embedding, a real batch per class, one Siamese DSA draw, one SGD step on
    the images. It reads nothing back from the device (a test runs it on the meta device, where any read
    raises): the loss stays there, and the groups the draw augments by are built once, on the host."""

    data: Dataset
    config: CondenseConfig
    images: torch.Tensor
    labels: torch.Tensor
    optimizer: torch.optim.Optimizer
    per_class: list[torch.Tensor]  # the training images' indices of each class, on the host
    archs: list[ArchSpec]
    generator: torch.Generator  # batches, augmentations, which of archs embeds
    init_generator: torch.Generator  # the embedding's weights (on the device: see _condense)
    compiled: bool
    precision: str
    real_groups: torch.Tensor = field(init=False)  # host: the class of each real image, in the batch's order
    syn_groups: torch.Tensor = field(init=False)  # host: the class of each synthetic image
    dsa: DSA = field(init=False)
    relative: bool = field(init=False)  # several networks or blocks: each distance on its own scale
    embedding: tuple[torch.nn.Module, Callable[[torch.Tensor], Any], int] = field(init=False)

    def __post_init__(self) -> None:
        drawn = [min(self.config.batch_real, len(index)) for index in self.per_class]
        self.real_groups = torch.arange(len(drawn)).repeat_interleave(torch.tensor(drawn))
        self.syn_groups = torch.arange(self.data.num_classes).repeat_interleave(self.config.ipc)
        self.dsa = DSA(resolve_strategy(self.config.dsa_strategy, self.data.dsa_strategy))
        self.relative = bool(self.config.embed_space) or self.config.match == "blocks"
        self.embedding = self.network(self.archs[0])

    def network(self, arch: ArchSpec) -> tuple[torch.nn.Module, Callable[[torch.Tensor], Any], int]:
        """A fresh ``arch``, its embedding and the real images per forward pass."""
        data, config, device = self.data, self.config, self.images.device
        net = build_convnet(
            arch, data.channels, data.num_classes, data.image_size, generator=self.init_generator, device=device
        )
        net.train()
        net.requires_grad_(False)
        # torch's stubs leave out Module.to's memory_format, which it takes (as Tensor.to does)
        net = net.to(memory_format=_accel.memory_format(device, self.compiled))  # type: ignore[call-overload]
        embed = net.block_embeddings if config.match == "blocks" else net.embed
        # Batch norm couples the images of a forward pass: keep the real batch whole, as the paper does (every
        # class in one batch, so its statistics span several classes, as the authors advise).
        chunk = data.num_classes * config.batch_real if arch.norm == "batchnorm" else config.real_chunk
        return net, (_accel.compile_fresh(embed) if self.compiled else embed), chunk

    def __call__(self) -> torch.Tensor:
        """Take one step; the matching loss, detached, still on the device."""
        data, config, generator = self.data, self.config, self.generator
        if len(self.archs) == 1:  # a fresh random embedding network every iteration: re-initialised, or drawn
            init_parameters(self.embedding[0], self.init_generator)
        else:
            self.embedding = self.network(self.archs[int(torch.randint(len(self.archs), (), generator=generator))])
        _, embed, chunk = self.embedding
        # Drawn on the host from the host's indices, then one copy: no per-class transfer, no wait.
        drawn = [
            index[torch.randperm(len(index), generator=generator)[: config.batch_real]] for index in self.per_class
        ]
        real_index = _accel.to_device(torch.cat(drawn), self.images.device)
        real_x, real_y = data.train.x[real_index], data.train.y[real_index]
        # One DSA draw per class, applied to its real and its synthetic images alike (the Siamese twins).
        draw = self.dsa.siamese_draw(data.num_classes, (data.image_size, data.image_size), generator)
        with torch.no_grad():
            real_x = draw.apply(real_x, self.real_groups)
        syn_x = draw.apply(self.images, self.syn_groups)
        loss = matching_loss(
            embed,
            real_x,
            real_y,
            syn_x,
            self.labels,
            data.num_classes,
            chunk=chunk,
            precision=self.precision,
            relative=self.relative,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


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

    start, losses, elapsed = 0, [], 0.0
    if state is not None:
        with torch.no_grad():
            images.copy_(state["images"].to(device))
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        if "init_generator" in state and init_generator is not generator:
            init_generator.set_state(state["init_generator"])
        start, losses, elapsed = state["iteration"], list(state["losses"]), state["elapsed"]

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
    meta = {
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
        "dsa_strategy": step.dsa.strategy,
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
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return CondensedSet(images.detach().cpu(), labels.cpu(), meta)


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


def _load_checkpoint(path: Path, data: Dataset, config: CondenseConfig) -> dict[str, Any]:
    state: dict[str, Any] = _read(path, "checkpoint", "delete it to start over")
    problem = _format_problem(state, _CHECKPOINT_FORMAT, _CHECKPOINT_FIELDS)
    if problem:
        raise NasProxyError(
            f"checkpoint {path} is unreadable ({problem}); {_newer_hint(state, _CHECKPOINT_FORMAT)}"
            f"delete it to start over"
        )
    if state["fingerprint"] != data.fingerprint:
        raise NasProxyError(
            f"checkpoint {path} was made from other data ({data.name} differs); delete it to start over"
        )
    saved = state["config"]
    defaults = dataclasses.asdict(CondenseConfig())  # a checkpoint older than an option ran at its default
    for key, value in dataclasses.asdict(config).items():
        if key not in _RESUMABLE and saved.get(key, defaults[key]) != value:
            raise NasProxyError(
                f"checkpoint {path} has {key}={saved.get(key)!r} but this run asks for {value!r}; "
                f"use the same settings or delete the checkpoint"
            )
    if state["iteration"] > config.iterations:
        raise NasProxyError(
            f"checkpoint {path} is at iteration {state['iteration']}, past the requested "
            f"{config.iterations}; ask for at least that many iterations"
        )
    return state
