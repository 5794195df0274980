"""The score cache: every (architecture, seed) a proxy measured, kept in a table beside the study, so a score is
computed once whatever reads it (a study's trials, a comparison, the frontier) and an interrupted run continues."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from nas_proxy._io import SharedTable, read_table
from nas_proxy.artifacts import score_table_path
from nas_proxy.data import Dataset
from nas_proxy.method import (
    LearningCurve,
)
from nas_proxy.scoring._proxies import Measurement, Proxy
from nas_proxy.space import ArchSpec

SCORE_COLUMNS = ["arch", "seed", "value", "curve", "seconds", "fingerprint"]


def read_scores(path: str | Path) -> pd.DataFrame:
    """A cached table of measurements (empty, with the right columns, if there is none yet): ``value`` and, for a
    trained network, its learning ``curve`` (JSON)."""
    return read_table(
        path,
        SCORE_COLUMNS,
        "score table",
        "delete it to score again",
        dtype={"arch": str, "fingerprint": str, "curve": str},
    )


def _measurement(value: float, curve: Any) -> Measurement:
    return Measurement(float(value), LearningCurve.from_dict(json.loads(curve)) if isinstance(curve, str) else None)


def score_archs(
    proxy: Proxy, archs: list[ArchSpec], seed_values: list[int], data: Dataset, output: Path, *, progress: bool = True
) -> pd.DataFrame:
    """Score every (architecture, seed) on ``data``: measured if not yet in ``proxy``'s cached table (in the
    ``output`` folder, :func:`~nas_proxy.artifacts.score_table_path`, keyed by its measured settings), read out with
    the proxy's readout; return the rows asked for, with their ``score``."""
    table = SharedTable(score_table_path(output, proxy.name, proxy.measured_settings(), data), read_scores)

    def compute(pending: list[ArchSpec], seed: int, save: Callable[[int, dict[str, Any]], None]) -> None:
        def row(index: int, m: Measurement) -> None:
            curve = "" if m.curve is None else json.dumps(m.curve.to_dict())
            save(index, {"value": m.value, "curve": curve, "fingerprint": data.fingerprint})

        proxy.measure(pending, seed, row)

    rows = table.fill(archs, seed_values, compute, desc=f"score {proxy.name}", progress=progress)
    rows = rows[rows["arch"].isin([a.id for a in archs]) & rows["seed"].isin(seed_values)].copy()
    rows["score"] = [proxy.read(_measurement(v, c)) for v, c in zip(rows["value"], rows["curve"])]
    return rows


__all__ = [
    "SCORE_COLUMNS",
    "read_scores",
    "score_archs",
]
