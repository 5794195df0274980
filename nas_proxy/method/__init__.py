"""The method: the ConvNet family, DSA augmentation, Distribution Matching, and training a candidate.

- :func:`build_convnet` (``_model``): the ConvNet family of DC/DSA/DM from an :class:`~nas_proxy.space.ArchSpec`;
- :class:`DSA` (``_augment``): Siamese (condensation) or per-image (training) augmentation on whole batches;
- :func:`condense` (``_condense``): DM with a :class:`CondenseConfig` -> a :class:`CondensedSet`;
- :func:`train_candidate`, :func:`train_candidates` (``_train``): a candidate trained on a set with a
  :class:`TrainConfig`, scored on the validation split -> :class:`TrainResult`.

Example:
    >>> from nas_proxy.data import load_dataset
    >>> from nas_proxy.method import CondenseConfig, condense
    >>> syn = condense(load_dataset("digits"), CondenseConfig(ipc=1, iterations=1, batch_real=16), progress=False)
    >>> tuple(syn.images.shape)
    (10, 1, 16, 16)
"""

from __future__ import annotations

from nas_proxy.method._augment import DSA, DSAParams, check_dsa_strategy, resolve_strategy
from nas_proxy.method._condense import (
    COMPILE_AUTO_MIN_ITERATIONS,
    CondensedSet,
    checkpoint_path,
    condense,
    embedding_archs,
    matching_loss,
    resolve_compile,
    resolve_precision,
)
from nas_proxy.method._config import REFERENCE_DEFAULTS, CondenseConfig, TrainConfig
from nas_proxy.method._model import ConvNet, build_convnet, count_flops, count_params, init_parameters, network_size
from nas_proxy.method._readouts import READOUTS, Readout
from nas_proxy.method._train import (
    LearningCurve,
    TrainResult,
    accuracy,
    default_epochs,
    train_candidate,
    train_candidates,
    training_set,
)

__all__ = [
    "COMPILE_AUTO_MIN_ITERATIONS",
    "READOUTS",
    "REFERENCE_DEFAULTS",
    "CondenseConfig",
    "CondensedSet",
    "ConvNet",
    "DSA",
    "DSAParams",
    "LearningCurve",
    "Readout",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "build_convnet",
    "checkpoint_path",
    "check_dsa_strategy",
    "condense",
    "count_flops",
    "count_params",
    "default_epochs",
    "embedding_archs",
    "init_parameters",
    "matching_loss",
    "network_size",
    "resolve_compile",
    "resolve_precision",
    "resolve_strategy",
    "train_candidates",
    "train_candidate",
    "training_set",
]
