"""The method's settings: how DM condenses a set (``[condense]``) and how a candidate trains (``[training]``).

Each config checks its own values, so one built in Python is checked like one read from TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import torch

from nas_proxy._accel import Precision
from nas_proxy._config import (
    SEED_LIMIT,
    batch_field,
    bounded,
    check_fields,
    config_from_dict,
    keyed_settings,
    seed_field,
)
from nas_proxy.errors import ConfigError, NasProxyError
from nas_proxy.method._augment import check_dsa_strategy
from nas_proxy.space import DEFAULT_ARCH, ArchSpec, load_search_space

# Upper limits against typos (10**9 epochs would train for ever, 10**9 images exhaust memory before any check),
# generous for real use; each says why it is there.
EPOCHS_LIMIT = 100_000
STEPS_LIMIT = 10_000_000
_LONGER = "longer would run for weeks"
# A step size or decay past float32's range cannot scale float32 parameters or images: torch raises.
_FLOAT32 = {"at_most": torch.finfo(torch.float32).max, "why": "the largest float32, the parameters' type"}
_THREADS = {"at_least": 0, "at_most": 1024, "why": "more than any machine's CPU threads"}


@dataclass(frozen=True)
class CondenseConfig:
    """Settings of one DM run; the defaults are the paper's.

    ``precision="auto"`` runs the embedding passes under bfloat16 autocast where the device runs
    bf16 natively (on a CPU only when the embedding is compiled: eager bf16 is slower there), fp32
    elsewhere; ``compile`` wraps the embedding in ``torch.compile`` (one compilation, then every
    iteration faster): true, false, or ``"auto"``, which compiles runs of at least
    :data:`COMPILE_AUTO_MIN_ITERATIONS` iterations (see :func:`resolve_compile`), so the paper's
    20,000 compile and a 100-iteration quickstart does not. ``deterministic`` asks CUDA for
    deterministic kernels (:func:`nas_proxy._accel.deterministic`); a CPU run is repeatable
    without it. ``benchmarks/RESULTS.md`` has the speed of each and the accuracy of the sets
    they make.
    """

    # MNIST's largest class holds 6,742 training images: no supported data set's holds 10,000
    ipc: int = bounded(10, above=0, at_most=10_000, why="no class of a supported data set holds more images")
    iterations: int = bounded(20_000, at_least=0, at_most=1_000_000, why=f"50 times the paper's 20,000; {_LONGER}")
    lr_img: float = bounded(1.0, above=0, **_FLOAT32)
    momentum: float = bounded(0.5, at_least=0, below=1)
    batch_real: int = batch_field(256)
    init: Literal["real", "noise"] = "real"
    embed_arch: str = DEFAULT_ARCH.id
    dsa_strategy: str = "auto"  # "auto": the dataset's strategy; "none": no augmentation
    seed: int = seed_field()
    precision: Precision = "auto"
    compile: Literal["auto", True, False] = "auto"
    # real images per forward pass: bounds memory, exact for per-sample norms
    real_chunk: int = batch_field(256)
    checkpoint_every: int = bounded(500, above=0)
    deterministic: bool = False
    # Each iteration's embedding network: "" the one `embed_arch` (the paper's), or drawn from this search space
    # (a shipped name or a TOML path), so the set is matched in the networks a study will train on it.
    embed_space: str = ""
    # What is matched: "last" the features the classifier sees (the paper's); "blocks" the features after every
    # block. With embed_space or "blocks" the loss is relative (each distance over the real means' squared norm:
    # matching_loss), about 1/5000 of the paper's raw loss for its ConvNet on FashionMNIST, so lr_img scales up.
    match: Literal["last", "blocks"] = "last"

    def __post_init__(self) -> None:
        check_fields(self, "[condense]")
        try:
            ArchSpec.parse(self.embed_arch)
        except NasProxyError as exc:
            raise ConfigError("[condense]", "embed_arch", f"= {self.embed_arch!r}: {exc}") from None
        check_dsa_strategy("[condense]", self.dsa_strategy)
        if self.embed_space:
            try:
                load_search_space(self.embed_space)
            except NasProxyError as exc:
                raise ConfigError("[condense]", "embed_space", f"= {self.embed_space!r}: {exc}") from None
            if self.compile is True:
                raise ConfigError(
                    "[condense]",
                    "compile",
                    'must be false or "auto" with embed_space: a compiled '
                    "embedding is one fixed network, and embed_space draws a new one every iteration",
                )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[condense]") -> CondenseConfig:
        return config_from_dict(cls, data, where)


@dataclass(frozen=True)
class TrainConfig:
    """Settings for training a candidate; the defaults are the paper's (1000 epochs on a DM set).

    ``precision="auto"`` trains under bfloat16 autocast where the device runs bf16 natively (CUDA
    since Ampere, CPUs with AVX512-BF16 or AMX) and in fp32 elsewhere; ``"fp32"``/``"bf16"`` force
    one. ``compile`` wraps the network in ``torch.compile``: a one-off cost of about 10 s per
    architecture on a CPU that pays back over long runs (the paper's 1000 epochs), not over a
    few dozen steps. ``threads`` sets PyTorch's CPU threads (0 leaves PyTorch's default).
    ``deterministic`` makes CUDA training bit-repeatable for the same seed (deterministic cuDNN
    and PyTorch kernels, no cuDNN autotuning: :func:`nas_proxy._accel.deterministic`); a CPU run
    is bit-identical without it. It changes how a result is computed, not what is expected, so
    like ``compile`` and ``threads`` it is not part of :meth:`protocol` (cache keys). ``jobs`` is how
    many candidates :func:`train_candidates` trains at once (0: one per CPU thread on a CPU, one on
    CUDA, where concurrent streams have not been measured yet); it changes only the speed.
    """

    epochs: int = bounded(1000, above=0, at_most=EPOCHS_LIMIT, why=f"100 times the paper's 1000; {_LONGER}")
    # 0: `epochs` passes over the training set; N: exactly N optimiser steps (batches drawn pass by pass) whatever
    # the set's size, so sets of different sizes train at the same cost and a tiny set gets enough steps.
    steps: int = bounded(0, at_least=0, at_most=STEPS_LIMIT, why=_LONGER)
    lr: float = bounded(0.01, above=0, **_FLOAT32)
    momentum: float = bounded(0.9, at_least=0, below=1)
    weight_decay: float = bounded(5e-4, at_least=0, **_FLOAT32)
    batch_size: int = batch_field(256)
    lr_decay_at: float = bounded(0.5, above=0, at_most=1)  # `schedule = "step"`: x0.1 after this fraction of the steps
    # "step": the paper's (lr, then lr/10 from lr_decay_at); "onecycle": warm up to lr over the first `warmup` of the
    # steps, then cosine decay (torch's OneCycleLR, momentum kept): the usual full-data schedule, compressed into
    # however many steps the run has, so a short run ends annealed like a long one.
    schedule: Literal["step", "onecycle"] = "step"
    warmup: float = bounded(0.15, above=0, below=1)
    dsa_strategy: str = "auto"  # "auto": the dataset's strategy; "none": no augmentation
    seed: int = seed_field()
    precision: Precision = "auto"
    compile: bool = False
    eval_batch_size: int = batch_field(2048)
    threads: int = bounded(0, **_THREADS)
    deterministic: bool = False
    jobs: int = bounded(0, **_THREADS)

    def __post_init__(self) -> None:
        check_fields(self, "[training]")
        check_dsa_strategy("[training]", self.dsa_strategy)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[training]") -> TrainConfig:
        return config_from_dict(cls, data, where)

    def seed_values(self, count: int) -> list[int]:
        """``count`` consecutive seeds from ``seed``: the one rule for a score's or a reference's seeds."""
        if self.seed + count - 1 > SEED_LIMIT:  # each becomes a TrainConfig's seed
            raise ConfigError(
                "[training]",
                "seed",
                f"= {self.seed} leaves no room for the {count} seeds from it (each at most {SEED_LIMIT}); "
                f"use a seed of at most {SEED_LIMIT - count + 1}",
            )
        return list(range(self.seed, self.seed + count))

    def batches(self, images: int) -> int:
        """Batches in one pass over a set of ``images`` (the last may be short)."""
        return -(-images // self.batch_size)

    def optimiser_steps(self, images: int) -> int:
        """Optimiser steps of training on a set of ``images``: ``steps``, or ``epochs`` passes of its batches."""
        return self.steps or self.epochs * self.batches(images)

    def presentations(self, images: int) -> int:
        """Images that training on a set of ``images`` feeds the network (its cost, in images)."""
        passes, rest = divmod(self.optimiser_steps(images), self.batches(images))
        return passes * images + min(rest * self.batch_size, images)

    def key_settings(self) -> dict[str, Any]:
        """The settings that change a result (not the seed or how it is executed): cache keys."""
        return keyed_settings(self, skip=("seed", "threads", "eval_batch_size", "compile", "deterministic", "jobs"))


class ProtocolDefaults(TypedDict):
    """The :class:`TrainConfig` fields a protocol's defaults set."""

    epochs: int
    precision: Precision


# Full data needs far fewer epochs than the 1000 of a 10-image-per-class set: the [reference] protocol's defaults.
REFERENCE_DEFAULTS: ProtocolDefaults = {"epochs": 50, "precision": "fp32"}
