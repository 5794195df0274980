"""The data stage's settings: the ``[data]`` table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas_proxy._config import check_fields, config_from_dict
from nas_proxy.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Which data set and which validation carve-out: the ``[data]`` table.

    ``val_fraction`` of each class of the official training data is held out for validation
    (the split a proxy is scored on), drawn with ``split_seed``; the test set is never used for
    search. :func:`~nas_proxy.load_dataset` takes it.
    """

    dataset: str = "digits"
    val_fraction: float = 0.1
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "[data]")
        if not 0 < self.val_fraction < 1:
            raise ConfigError("[data]", "val_fraction", f"must be between 0 and 1, got {self.val_fraction}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[data]") -> DataConfig:
        return config_from_dict(cls, data, where)
