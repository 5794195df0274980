"""The data stage's settings: the ``[data]`` table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nas_proxy._config import bounded, check_fields, config_from_dict, seed_field, shown
from nas_proxy.data._own import no_path, own_name, own_source
from nas_proxy.errors import ConfigError


def val_fraction_problem(value: object) -> str | None:
    """What is wrong with a validation fraction, or None: the one rule, a number in [0, 1) (0: no validation
    split, for data loaded only to train on; a study needs one, :class:`DataConfig`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value < 1):
        return f"must be a number in [0, 1), got {value!r}"
    return None


@dataclass(frozen=True)
class DataConfig:
    """Which data set and which validation carve-out: the ``[data]`` table.

    ``dataset`` is a built-in name, ``folder:PATH`` or ``arrays:PATH.npz`` (your own files; a
    relative PATH is read from the current folder) or a torchvision class name.
    ``val_fraction`` of each class of the official training data is held out for validation
    (the split a proxy is scored on), drawn with ``split_seed``; the test set is never used for
    search. ``image_size`` resizes every image to that square; 0 keeps the size stored (a
    folder's images must then share one). :func:`~nas_proxy.load_dataset` takes it.
    """

    dataset: str = "digits"
    val_fraction: float = 0.1
    split_seed: int = seed_field()
    image_size: int = bounded(
        0, at_least=0, at_most=1024, why="a ConvNet's classifier on larger images outgrows a machine's memory"
    )

    def __post_init__(self) -> None:
        check_fields(self, "[data]")
        problem = no_path(self.dataset)
        if problem is not None:
            raise ConfigError("[data]", "dataset", f"= {shown(self.dataset)} {problem}")
        problem = val_fraction_problem(self.val_fraction)
        if problem is None and self.val_fraction == 0:  # every proxy is scored on the validation split
            problem = "must be above 0: a study scores its candidates on the validation split"
        if problem is not None:
            raise ConfigError("[data]", "val_fraction", problem)

    @property
    def file_stem(self) -> str:
        """The data set's part of a file name: ``dataset`` as written, or for your own files the name they load as
        (``folder:my_images``), since a path's folders would become folders of the file name."""
        own = own_source(self.dataset)
        return self.dataset if own is None else own_name(*own)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[data]") -> DataConfig:
        return config_from_dict(cls, data, where)
