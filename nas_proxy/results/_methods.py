"""The methods the frontier measures, and what each costs: the zero-cost scores and every trained method of a
family (its training set and budget, a small object with its cost rule), scored on the reference architectures
through the score cache.

Example:
    >>> from nas_proxy.results._methods import trained_methods
    >>> [m.label for m in trained_methods(["dm", "short"], ipcs=[10], dm_ipcs=[10], short=[0.05], samples=[])]
    ['dm ipc 10', 'short 5%']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from nas_proxy.config import Preset
from nas_proxy.data import Dataset
from nas_proxy.method import READOUTS, CondenseConfig, TrainConfig, count_flops
from nas_proxy.method._condense import embedding_archs
from nas_proxy.scoring import Proxy, TrainedProxy, dm_proxy, score_archs, short_proxy, subset_proxy
from nas_proxy.scoring._proxies import ZeroCostProxy
from nas_proxy.space import ArchSpec, SearchSpace

FAMILIES = ("zero-cost", "subset", "dm", "short", "sample", "warm", "ensemble", "halving", "calibrated")
ZERO_COST = ("grad_norm", "naswot", "synflow")
ZERO_COST_PASSES = {"grad_norm": 3, "naswot": 1, "synflow": 3}  # image passes per batch image (backward = 2)
IPCS = (1, 10, 50)
SHORT = (0.02, 0.05, 0.1, 0.2)  # fractions of the reference's optimiser steps
SAMPLES = (0.01, 0.05, 0.1)  # fractions of the training data
READOUT = "val_acc"  # the readout of a method's plain label; the others are named after it


def short_label(fraction: float) -> str:
    """The method name of short training at ``fraction`` of the reference's steps: ``short 5%``, ``short 2.5%``."""
    return f"short {100 * fraction:.4g}%"


def sample_label(fraction: float) -> str:
    """The method name of training on a sample of ``fraction`` of the training data: ``sample 5%``."""
    return f"sample {100 * fraction:.4g}%"


def read_as(label: str, readout: str) -> str:
    return label if readout == READOUT else f"{label} {readout}"


def sample_ipc(data: Dataset, fraction: float) -> int:
    """Images per class of a class-balanced sample holding ``fraction`` of the training data (at least 1)."""
    return max(1, round(fraction * len(data.train) / data.num_classes))


def short_epochs(reference: TrainConfig, fraction: float, images: int) -> float:
    """``fraction`` of the ``reference`` protocol's optimiser steps on ``images`` training images, as passes (the
    budget of :func:`~nas_proxy.scoring.short_proxy`)."""
    passes = reference.optimiser_steps(images) / reference.batches(images)
    # 12 digits: 0.05 x 6 is 0.30000000000000004 in floating point, and the score cache is keyed on the value
    return float(f"{fraction * passes:.12g}")


@dataclass(frozen=True)
class Protocols:
    """What the frontier's trained methods are built from: how a candidate trains (``[training]``), the full-data
    protocol (``[reference]``'s), the condensation (``[condense]``) and the folder that caches sets and scores."""

    training: TrainConfig
    reference: TrainConfig
    condense: CondenseConfig
    output: Path

    @classmethod
    def of(cls, preset: Preset) -> Protocols:
        return cls(preset.training, preset.reference.training, preset.condense, preset.study.output)


class Costs:
    """Arithmetic of each kind of work, relative to the reference training of one architecture or the space."""

    def __init__(self, protocols: Protocols, space: SearchSpace, data: Dataset, archs: Sequence[ArchSpec]) -> None:
        size = (data.channels, data.num_classes, data.image_size)
        self.flops = pd.Series({a.id: count_flops(a, *size) for a in archs}, dtype=float)
        self.space_flops = float(sum(count_flops(a, *size) for a in space.archs()))
        # per FLOP of the arch: what the reference trains, epochs or steps
        self.reference_images = protocols.reference.presentations(len(data.train)) * 3
        self.val = len(data.val)
        embedding = embedding_archs(protocols.condense, data.image_size)  # one drawn per iteration: their mean
        self.embed_flops = float(np.mean([count_flops(a, *size) for a in embedding]))
        self.classes = data.num_classes

    def per_arch(self, train_images: float, evaluations: int = 1) -> float:
        """Training on ``train_images`` image presentations, then ``evaluations`` passes over the validation split."""
        return (3 * train_images + evaluations * self.val) / self.reference_images

    def of_archs(self, archs: Sequence[str], seeds: int = 1) -> float:
        """Reference runs of ``archs`` as a fraction of the whole space's."""
        return seeds * float(self.flops[list(archs)].sum()) / self.space_flops

    def share(self, archs: Iterable[str]) -> float:
        """The share of the reference architectures' arithmetic that ``archs`` hold (for a promoted fraction)."""
        return float(self.flops[list(archs)].sum() / self.flops.sum())

    def condensation(self, ipc: int, iterations: int, batch_real: int) -> float:
        """DM: per iteration and class, a forward pass of the real batch, forward and backward of the synthetic."""
        work = iterations * self.classes * (batch_real + 3 * ipc) * self.embed_flops
        return work / (self.space_flops * self.reference_images)


@dataclass(frozen=True)
class Trained:
    """One trained method of a family: what a candidate trains on, and its cost rule (the image presentations one
    candidate trains on; a one-off setup such as condensation)."""

    family: ClassVar[str]

    @property
    def label(self) -> str:
        raise NotImplementedError

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        """The proxy that trains it: the protocols with this method's training set and budget."""
        raise NotImplementedError

    def images(self, p: Protocols, data: Dataset) -> float:
        raise NotImplementedError

    def setup(self, p: Protocols, costs: Costs) -> float:
        return 0.0


@dataclass(frozen=True)
class Subset(Trained):
    """A network trained on a random real subset of ``ipc`` images per class ([training] protocol)."""

    ipc: int
    family: ClassVar[str] = "subset"

    @property
    def label(self) -> str:
        return f"subset ipc {self.ipc}"

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        return subset_proxy(self.ipc, p.training, data)

    def images(self, p: Protocols, data: Dataset) -> float:
        return p.training.presentations(self.ipc * data.num_classes)


@dataclass(frozen=True)
class DM(Subset):
    """The same on the preset's DM set of ``ipc`` images per class; condensing it is the setup."""

    family: ClassVar[str] = "dm"

    @property
    def label(self) -> str:
        return f"dm ipc {self.ipc}"

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        condense = dataclasses.replace(p.condense, ipc=self.ipc)
        return dm_proxy(condense, p.training, data, p.output, progress=progress)

    def setup(self, p: Protocols, costs: Costs) -> float:
        return costs.condensation(self.ipc, p.condense.iterations, p.condense.batch_real)


@dataclass(frozen=True)
class Short(Trained):
    """The reference's protocol on the full training data, cut to ``fraction`` of its optimiser steps."""

    fraction: float
    family: ClassVar[str] = "short"

    @property
    def label(self) -> str:
        return short_label(self.fraction)

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        return short_proxy(p.reference, short_epochs(p.reference, self.fraction, len(data.train)), data)

    def images(self, p: Protocols, data: Dataset) -> float:
        return self.proxy(p, data, progress=False).config.presentations(len(data.train))


@dataclass(frozen=True)
class Sample(Trained):
    """The reference's protocol, all its epochs, on a class-balanced sample of ``fraction`` of the training data."""

    fraction: float
    family: ClassVar[str] = "sample"

    @property
    def label(self) -> str:
        return sample_label(self.fraction)

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        ipc = sample_ipc(data, self.fraction)
        return TrainedProxy(
            name="sample",
            trains_on={"ipc": ipc},
            config=p.reference,
            data=data,
            training_set=lambda seed: data.sample_per_class(ipc, seed=seed),
        )

    def images(self, p: Protocols, data: Dataset) -> float:
        return p.reference.presentations(sample_ipc(data, self.fraction) * data.num_classes)


@dataclass(frozen=True)
class Warm(Trained):
    """A network trained on the DM set of ``ipc`` ([training] protocol), then ``short`` at ``fraction`` from there."""

    ipc: int
    fraction: float
    family: ClassVar[str] = "warm"

    @property
    def label(self) -> str:
        return f"dm ipc {self.ipc} + {short_label(self.fraction)}"

    def proxy(self, p: Protocols, data: Dataset, progress: bool) -> TrainedProxy:
        syn = DM(self.ipc).proxy(p, data, progress)
        short = Short(self.fraction).proxy(p, data, progress)
        return dataclasses.replace(
            short, name="warm", warm_on=syn.trains_on, warm_config=syn.config, warm_split=syn.training_set(0)
        )

    def images(self, p: Protocols, data: Dataset) -> float:
        return DM(self.ipc).images(p, data) + Short(self.fraction).images(p, data)

    def setup(self, p: Protocols, costs: Costs) -> float:
        return DM(self.ipc).setup(p, costs)


def trained_methods(
    families: Sequence[str],
    ipcs: Sequence[int],
    dm_ipcs: Sequence[int],
    short: Sequence[float],
    samples: Sequence[float],
) -> list[Trained]:
    """Every trained method the ``families`` need, in the order they are scored: short training is scored for the
    halving and calibrated families too (their rungs and features)."""
    wanted = set(families)
    return [
        *(Subset(ipc) for ipc in (ipcs if "subset" in wanted else ())),
        *(DM(ipc) for ipc in (dm_ipcs if "dm" in wanted else ())),
        *(Short(f) for f in (short if {"short", "halving", "calibrated"} & wanted else ())),
        *(Warm(ipc, f) for ipc in (dm_ipcs if "warm" in wanted else ()) for f in short),
        *(Sample(f) for f in (samples if "sample" in wanted else ())),
    ]


@dataclass(frozen=True)
class Scored:
    """One base method's scores on the reference architectures and its cost per architecture, as a fraction of
    that architecture's reference training (the same for every architecture: both scale with its FLOPs)."""

    label: str
    scores: pd.Series
    cost: float
    setup: float = 0.0  # one-off arithmetic (condensation), as a fraction of the whole space's reference cost
    readout: str | None = None  # a trained method's: how its runs were read (nas_proxy.method.READOUTS)
    method: Trained | None = None  # None: a zero-cost score


def _score(proxy: Proxy, archs: list[ArchSpec], p: Protocols, data: Dataset, progress: bool) -> pd.Series:
    """Each architecture's score at ``[training].seed``, read from or added to the score cache."""
    rows = score_archs(proxy, archs, [p.training.seed], data, p.output, progress=progress)
    return rows.groupby("arch")["score"].mean()


def base_scores(
    preset: Preset,
    data: Dataset,
    archs: list[ArchSpec],
    families: Sequence[str] = FAMILIES,
    ipcs: Sequence[int] = IPCS,
    short: Sequence[float] = SHORT,
    progress: bool = True,
    dm_ipcs: Sequence[int] | None = None,
    samples: Sequence[float] = SAMPLES,
    readouts: Sequence[str] = (READOUT,),
) -> dict[str, Scored]:
    """Every base method the ``families`` need, scored (or read from the cache) on ``archs``, by label
    (``grad_norm``, ``subset ipc 10``, ``dm ipc 10``, ``short 5%``, ``sample 5%``; a trained one read out
    otherwise than by its final accuracy: ``short 5% tse_e``). Every readout of a method reads the same runs."""
    protocols = Protocols.of(preset)
    costs = Costs(protocols, preset.space(), data, archs)
    out: list[Scored] = []
    if {"zero-cost", "ensemble", "calibrated"} & set(families):
        for name in ZERO_COST:
            passes = ZERO_COST_PASSES[name] * (1 if name == "synflow" else preset.score.batch_size)
            zero = ZeroCostProxy(name=name, batch_size=preset.score.batch_size, data=data)
            out.append(Scored(name, _score(zero, archs, protocols, data, progress), passes / costs.reference_images))
    for method in trained_methods(families, ipcs, ipcs if dm_ipcs is None else dm_ipcs, short, samples):
        proxy = method.proxy(protocols, data, progress)
        images, setup = method.images(protocols, data), method.setup(protocols, costs)
        for readout in readouts:  # the same runs (one cache), read each way
            reader = READOUTS[readout]
            scores = _score(dataclasses.replace(proxy, readout=reader), archs, protocols, data, progress)
            cost = costs.per_arch(images, 1 + len(reader.val_points))
            out.append(Scored(read_as(method.label, readout), scores, cost, setup, readout, method))
    return {scored.label: scored for scored in out}


__all__ = [
    "Costs",
    "Protocols",
    "DM",
    "FAMILIES",
    "IPCS",
    "READOUT",
    "SAMPLES",
    "SHORT",
    "Sample",
    "Scored",
    "Short",
    "Subset",
    "Trained",
    "Warm",
    "ZERO_COST",
    "ZERO_COST_PASSES",
    "base_scores",
    "read_as",
    "sample_ipc",
    "sample_label",
    "short_label",
    "short_epochs",
    "trained_methods",
]
