"""The method: the ConvNet family, DSA augmentation, Distribution Matching, and training a candidate.

- :func:`build_convnet` (``_model``): the ConvNet family of DC/DSA/DM from an :class:`~nas_proxy.space.ArchSpec`;
- :class:`DSA` (``_augment``): Siamese (condensation) or per-image (training) augmentation on whole batches;
- :func:`condense` (``_condense``): DM with a :class:`CondenseConfig` -> a :class:`CondensedSet` (``_condensed_set``);
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

from nas_proxy.method._augment import DSA
from nas_proxy.method._condense import condense
from nas_proxy.method._condensed_set import CondensedSet
from nas_proxy.method._config import CondenseConfig, TrainConfig
from nas_proxy.method._model import ConvNet, build_convnet, count_flops, count_params
from nas_proxy.method._readouts import READOUTS, Readout
from nas_proxy.method._train import LearningCurve, TrainResult, train_candidate, train_candidates, training_set

__all__ = [
    "READOUTS",
    "CondenseConfig",
    "CondensedSet",
    "ConvNet",
    "DSA",
    "LearningCurve",
    "Readout",
    "TrainConfig",
    "TrainResult",
    "build_convnet",
    "condense",
    "count_flops",
    "count_params",
    "train_candidates",
    "training_set",
    "train_candidate",
]
