"""Distribution Matching's objective and one iteration of it: :func:`matching_loss` (per class, the squared distance
between the mean embeddings of real and synthetic images, optionally relative and per block) with its helpers
:func:`class_means` and :func:`class_counts`, and :class:`_MatchingStep`, which draws a fresh random embedding, a
real batch per class and one Siamese DSA draw, and takes one SGD step on the synthetic images. The loop around it,
its checkpoints and its decisions (compile, precision, the embedding networks) are in ``_condense``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from nas_proxy import _accel
from nas_proxy._accel import autocast
from nas_proxy.data import Dataset
from nas_proxy.method._augment import DSA, resolve_strategy
from nas_proxy.method._config import CondenseConfig
from nas_proxy.method._model import build_convnet, init_parameters
from nas_proxy.space import ArchSpec


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
