"""The data stage's settings: the ``[data]`` table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nas_proxy._config import check_fields, config_from_dict, seed_field
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

    ``val_fraction`` of each class of the official training data is held out for validation
    (the split a proxy is scored on), drawn with ``split_seed``; the test set is never used for
    search. :func:`~nas_proxy.load_dataset` takes it.
    """

    dataset: str = "digits"
    val_fraction: float = 0.1
    split_seed: int = seed_field()

    def __post_init__(self) -> None:
        check_fields(self, "[data]")
        problem = val_fraction_problem(self.val_fraction)
        if problem is None and self.val_fraction == 0:  # every proxy is scored on the validation split
            problem = "must be above 0: a study scores its candidates on the validation split"
        if problem is not None:
            raise ConfigError("[data]", "val_fraction", problem)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[data]") -> DataConfig:
        return config_from_dict(cls, data, where)
