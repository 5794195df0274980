"""Distribution Matching (Zhao & Bilen, WACV 2023): learn a few synthetic images per class.

Every iteration draws a fresh randomly initialised ConvNet, embeds ``batch_real`` real
images per class and the synthetic images (the same DSA draw per class on both), and
takes one SGD step on the synthetic pixels to shrink the sum over classes of the squared
distance between mean embeddings. All classes share one batched forward pass; the loss
is still per class.

Example:
    >>> from nas_proxy import CondenseConfig, condense, load_dataset
    >>> data = load_dataset("digits")
    >>> syn = condense(data, CondenseConfig(ipc=2, iterations=3, embed_arch="d2-w32-relu-instancenorm-avgpool"),
    ...                progress=False)
    >>> syn.images.shape
    torch.Size([20, 1, 16, 16])
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from nas_proxy import _accel
from nas_proxy._accel import Precision, autocast
from nas_proxy._config import config_from_dict, positive
from nas_proxy._io import atomic_torch_save, write_png_grid
from nas_proxy.augment import DSA
from nas_proxy.data import Dataset, Split
from nas_proxy.errors import NasProxyError
from nas_proxy.model import build_convnet, init_parameters
from nas_proxy.space import DEFAULT_ARCH, ArchSpec

FORMAT = "nas-proxy-condensed/1"
_CHECKPOINT_FORMAT = "nas-proxy-condense-checkpoint/1"
# Settings that may change between a checkpoint and its resumption without changing the result.
_RESUMABLE = {"iterations", "checkpoint_every"}


@dataclass(frozen=True)
class CondenseConfig:
    """Settings of one DM run; the defaults are the paper's.

    ``precision="auto"`` runs the embedding passes under bfloat16 autocast where the device runs
    bf16 natively (on a CPU only together with ``compile``: eager bf16 is slower there), fp32
    elsewhere; ``compile`` wraps the embedding in ``torch.compile`` (one
    compilation, then every iteration faster). ``benchmarks/RESULTS.md`` has the speed of each and
    the accuracy of the sets they make.
    """

    ipc: int = 10
    iterations: int = 20_000
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    init: Literal["real", "noise"] = "real"
    embed_arch: str = DEFAULT_ARCH.id
    dsa_strategy: str = "auto"  # "auto": the dataset's strategy; "none": no augmentation
    seed: int = 0
    precision: Precision = "auto"
    compile: bool = False
    real_chunk: int = 256  # real images per forward pass: bounds memory, exact for per-sample norms
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        positive("condense", ipc=self.ipc, batch_real=self.batch_real, lr_img=self.lr_img,
                 real_chunk=self.real_chunk, checkpoint_every=self.checkpoint_every)
        if self.iterations < 0:
            raise NasProxyError(f"condense.iterations must be >= 0, got {self.iterations}")
        if not 0 <= self.momentum < 1:
            raise NasProxyError(f"condense.momentum must be in [0, 1), got {self.momentum}")
        _accel.check_precision("condense", self.precision)
        ArchSpec.parse(self.embed_arch)
        DSA(self._strategy("color"))  # validates the strategy's op names

    def _strategy(self, dataset_default: str) -> str:
        return dataset_default if self.dsa_strategy == "auto" else self.dsa_strategy

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[condense]") -> CondenseConfig:
        return config_from_dict(cls, data, where)


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
        atomic_torch_save({"format": FORMAT, "images": self.images.cpu(), "labels": self.labels.cpu(),
                           "meta": self.meta}, path)
        if png:
            mean = torch.tensor(self.meta["mean"]).view(1, -1, 1, 1)
            std = torch.tensor(self.meta["std"]).view(1, -1, 1, 1)
            write_png_grid(self.images.cpu() * std + mean, rows=self.meta["num_classes"], path=path.with_suffix(".png"))
        return path

    @classmethod
    def load(cls, path: str | Path, data: Dataset | None = None) -> CondensedSet:
        """Read a set written by :meth:`save`; with ``data``, check it was condensed from that data set."""
        path = Path(path)
        if not path.is_file():
            raise NasProxyError(f"condensed set not found: {path}; create it with `nas-proxy condense ... --out {path}`")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            assert blob["format"] == FORMAT
            syn = cls(blob["images"], blob["labels"], blob["meta"])
            assert syn.images.ndim == 4 and len(syn.images) == len(syn.labels)
        except Exception:
            raise NasProxyError(
                f"{path} is not a readable nas-proxy condensed set (corrupt or another format); "
                f"re-create it with `nas-proxy condense`") from None
        if data is not None:
            meta = syn.meta
            if meta.get("dataset") != data.name:
                raise NasProxyError(f"{path} was condensed from {meta.get('dataset')!r}, not {data.name!r}; "
                                    f"condense {data.name!r} or pass --dataset {meta.get('dataset')}")
            shape = tuple(syn.images.shape[1:])
            if shape != (data.channels, data.image_size, data.image_size):
                raise NasProxyError(f"{path} holds {shape} images but {data.name} has "
                                    f"{(data.channels, data.image_size, data.image_size)}; re-condense it")
            if int(syn.labels.max()) >= data.num_classes:
                raise NasProxyError(f"{path} has labels beyond {data.name}'s {data.num_classes} classes; re-condense it")
        return syn


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sum of ``features`` per class, as (num_classes, dim) float32; divide by the counts for means."""
    sums = torch.zeros(num_classes, features.shape[1], device=features.device, dtype=torch.float32)
    return sums.index_add(0, labels, features.float())


def matching_loss(embed: Callable[[torch.Tensor], torch.Tensor], real_x: torch.Tensor, real_y: torch.Tensor,
                  syn_x: torch.Tensor, syn_y: torch.Tensor, num_classes: int, *, chunk: int,
                  precision: str = "fp32") -> torch.Tensor:
    """Sum over classes of ||mean embed(real_c) - mean embed(syn_c)||^2, real side without gradients.

    Real images go through ``embed`` in chunks of ``chunk`` (exact unless the network uses batch
    statistics; callers pass the whole batch as one chunk then).
    """
    with torch.no_grad(), autocast(real_x.device, precision):
        real_sum = sum(class_means(embed(c), y, num_classes) for c, y in zip(real_x.split(chunk), real_y.split(chunk)))
    real_count = torch.bincount(real_y, minlength=num_classes).clamp_min(1).unsqueeze(1)
    with autocast(syn_x.device, precision):
        syn_sum = class_means(embed(syn_x), syn_y, num_classes)
    syn_count = torch.bincount(syn_y, minlength=num_classes).clamp_min(1).unsqueeze(1)
    return ((real_sum / real_count - syn_sum / syn_count) ** 2).sum()


def _versions() -> dict[str, str]:
    from nas_proxy import __version__

    return {"nas_proxy": __version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version()}


def _initial_images(data: Dataset, config: CondenseConfig, generator: torch.Generator) -> torch.Tensor:
    real = data.sample_per_class(config.ipc, generator=generator).x.clone()
    if config.init == "noise":
        return torch.randn(real.shape, generator=generator).to(real.device)
    return real


def condense(data: Dataset, config: CondenseConfig = CondenseConfig(), *, checkpoint: str | Path | None = None,
             resume: bool = False, progress: bool = True) -> CondensedSet:
    """Run DM on ``data.train`` (never its val or test split) and return the condensed set.

    With ``checkpoint``, the state (images, optimiser momentum, generator) is written there
    atomically every ``config.checkpoint_every`` iterations, and ``resume=True`` continues from
    it; the result is the same as an uninterrupted run with the same seed. The checkpoint is
    removed when the run completes.
    """
    device = data.train.x.device
    if device.type == "cpu":
        _accel.tune_cpu_allocator()
    precision = _accel.resolve_precision(config.precision, device)
    if config.precision == "auto" and device.type == "cpu" and not config.compile:
        precision = "fp32"  # eager bf16 condensation is slower than fp32 on a CPU (benchmarks/RESULTS.md)
    arch = ArchSpec.parse(config.embed_arch)
    strategy = config._strategy(data.dsa_strategy)
    dsa = DSA(strategy)
    generator = torch.Generator().manual_seed(config.seed)
    labels = torch.arange(data.num_classes, device=device).repeat_interleave(config.ipc)
    images = _initial_images(data, config, generator)
    images.requires_grad_(True)
    optimizer = torch.optim.SGD([images], lr=config.lr_img, momentum=config.momentum)
    net = build_convnet(arch, data.channels, data.num_classes, data.image_size, generator=generator, device=device)
    net.train()
    net.requires_grad_(False)
    net = net.to(memory_format=_accel.memory_format(device, config.compile))
    embed = torch.compile(net.embed, dynamic=False) if config.compile else net.embed
    # Batch norm couples the images of a forward pass: keep the real batch whole, as the paper does.
    chunk = data.num_classes * config.batch_real if arch.norm == "batchnorm" else config.real_chunk

    start, losses, elapsed = 0, [], 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume and checkpoint is not None and checkpoint.is_file():
        state = _load_checkpoint(checkpoint, data, config)
        with torch.no_grad():
            images.copy_(state["images"].to(device))
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, losses, elapsed = state["iteration"], list(state["losses"]), state["elapsed"]

    per_class = [index.to(device) for index in data.class_indices()]
    bar = tqdm(total=config.iterations, initial=start, desc=f"condense {data.name} ipc{config.ipc}",
               disable=not progress, dynamic_ncols=True)
    tic = time.perf_counter()
    for iteration in range(start, config.iterations):
        init_parameters(net, generator)  # a fresh random embedding network every iteration
        real_index = torch.cat([index[torch.randperm(len(index), generator=generator)[: config.batch_real].to(device)]
                                for index in per_class])
        real_x, real_y = data.train.x[real_index], data.train.y[real_index]
        # One DSA draw per class, shared by its real and synthetic images: replay the generator state.
        replay = torch.Generator().set_state(generator.get_state())
        with torch.no_grad():
            real_x = dsa.siamese(real_x, real_y, data.num_classes, generator)
        syn_x = dsa.siamese(images, labels, data.num_classes, replay)
        loss = matching_loss(embed, real_x, real_y, syn_x, labels, data.num_classes, chunk=chunk,
                             precision=precision)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        done = iteration + 1
        if checkpoint is not None and (done % config.checkpoint_every == 0) and done < config.iterations:
            atomic_torch_save({"format": _CHECKPOINT_FORMAT, "iteration": done, "images": images.detach().cpu(),
                               "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                               "losses": losses, "elapsed": elapsed + time.perf_counter() - tic,
                               "config": dataclasses.asdict(config), "fingerprint": data.fingerprint}, checkpoint)
    bar.close()
    elapsed += time.perf_counter() - tic
    meta = {
        "dataset": data.name, "fingerprint": data.fingerprint, "num_classes": data.num_classes,
        "channels": data.channels, "image_size": data.image_size, "mean": list(data.mean), "std": list(data.std),
        "ipc": config.ipc, "iterations": config.iterations, "seed": config.seed, "dsa_strategy": strategy,
        "precision": precision,
        "config": dataclasses.asdict(config), "losses": losses, "final_loss": losses[-1] if losses else None,
        "seconds": elapsed, "device": str(device), "versions": _versions(),
        "command": " ".join(sys.argv),
    }
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return CondensedSet(images.detach().cpu(), labels.cpu(), meta)


def _load_checkpoint(path: Path, data: Dataset, config: CondenseConfig) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["format"] == _CHECKPOINT_FORMAT
    except Exception:
        raise NasProxyError(f"checkpoint {path} is unreadable (corrupt or another format); delete it to start over"
                            ) from None
    if state["fingerprint"] != data.fingerprint:
        raise NasProxyError(f"checkpoint {path} was made from other data ({data.name} differs); delete it "
                            f"to start over")
    saved = state["config"]
    for key, value in dataclasses.asdict(config).items():
        if key not in _RESUMABLE and saved.get(key) != value:
            raise NasProxyError(f"checkpoint {path} has {key}={saved.get(key)!r} but this run asks for {value!r}; "
                                f"use the same settings or delete the checkpoint")
    if state["iteration"] > config.iterations:
        raise NasProxyError(f"checkpoint {path} is at iteration {state['iteration']}, past the requested "
                            f"{config.iterations}; ask for at least that many iterations")
    return state
