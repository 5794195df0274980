"""The row of every results table: one way of ranking the reference architectures, measured."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nas_proxy.reference import Agreement


@dataclass(frozen=True)
class Ranked:
    """A ranking's name, its agreement with the reference and what it cost.

    ``cost`` is in the table's unit: seconds in a comparison, a fraction of training the whole space once in the
    frontier; a report's calibration estimates have none. ``setup`` is the one-off part a comparison shows apart
    (condensation, scoring a fit's architectures). ``reference_archs`` is the number of reference architectures a
    fitted ranking learnt from (their runs are part of its cost), ``reference_cost`` their share of the cost.
    """

    name: str
    agreement: Agreement
    family: str = ""
    cost: float = math.nan
    setup: float = 0.0
    reference_archs: int | None = None
    reference_cost: float | None = None

    @property
    def needs_reference(self) -> bool:
        """Whether the ranking was fitted on reference runs: the calibrated family (and nothing else) is."""
        return self.family == "calibrated"

    def figures(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The agreement's figures as flat columns: all of them, or ``keys`` (NaN where one was not measured)."""
        row = self.agreement.row()
        return row if keys is None else {key: row.get(key, math.nan) for key in keys}


__all__ = ["Ranked"]
