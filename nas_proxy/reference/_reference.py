"""Full-data reference accuracies: the ranking a proxy is measured against.

A :class:`~nas_proxy.ReferenceConfig` (a preset's ``[reference]`` table) holds the full-data
training protocol (any :class:`~nas_proxy.TrainConfig` key; ``epochs`` defaults to 50 here) and
how reference architectures are drawn (``sample_seed``, optionally a ``search_space`` inside the
study's to draw from, ``seeds`` per architecture). The table itself is a CSV, one row per
(architecture, seed), at the path :func:`~nas_proxy.artifacts.reference_table_path` names for a
preset. Architectures train side by side (:func:`~nas_proxy.train_candidates`, ``jobs`` at once)
and the table is rewritten atomically as each one finishes, so an interrupted run loses at most
the architectures in flight and a second run skips what is done.

Example:
    >>> from pathlib import Path
    >>> from nas_proxy import load_dataset, load_preset, run_reference
    >>> from nas_proxy.artifacts import reference_table_path
    >>> from nas_proxy.study import select_archs
    >>> _ = Path("tiny.toml").write_text('''
    ... [study]
    ... name = "tiny"
    ...
    ... [data]
    ... dataset = "digits"
    ...
    ... [reference]
    ... epochs = 1
    ... ''')
    >>> preset = load_preset("tiny.toml")
    >>> data = load_dataset(preset.data)
    >>> archs = select_archs("d1-w32-relu-none-avgpool", preset.space(), preset.reference)
    >>> path = reference_table_path(preset.study.output, preset.data, preset.reference)
    >>> table = run_reference(preset.reference, data, archs, path, progress=False)
    >>> table[["arch", "seed", "epochs", "train_size"]].values.tolist()
    [['d1-w32-relu-none-avgpool', 0, 1, 1293]]
    >>> len(run_reference(preset.reference, data, archs, path, progress=False))  # done
    1
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from nas_proxy._config import SEED_LIMIT, shown
from nas_proxy._io import SharedTable, atomic_write, check_writable, read_table
from nas_proxy.artifacts import is_imported_table, reference_table_path
from nas_proxy.config import Preset, ReferenceConfig
from nas_proxy.data import Dataset
from nas_proxy.data._dataset import default_dsa_strategy
from nas_proxy.errors import NasProxyError
from nas_proxy.method import TrainResult, train_candidates
from nas_proxy.method._augment import resolve_strategy
from nas_proxy.method._model import network_size
from nas_proxy.reference._agreement import N_BOOT, Agreement, rank_agreement
from nas_proxy.space import DEFAULT_ARCH, ArchSpec, SearchSpace, load_search_space

COLUMNS = [
    "arch",
    "seed",
    "val_acc",
    "test_acc",
    "params",
    "flops",
    "seconds",
    "epochs",
    "train_size",
    "device",
    "fingerprint",
]


# A ranking one pass over the data gives measures how fast a network starts to learn, not where it
# ends: on FashionMNIST one epoch ranks the 720 space at Spearman ~0.55 against converged training
# (benchmarks/RESULTS.md); the shared 6-epoch table and the quickstart's 50 epochs have converged.
MIN_TRUTH_EPOCHS = 5


def read_reference(path: str | Path) -> pd.DataFrame:
    """The reference table at ``path`` (empty, with the right columns, if there is none yet)."""
    return read_table(
        path,
        COLUMNS,
        "reference table",
        "move it away and run `nas-proxy reference` again",
        dtype={"arch": str, "device": str, "fingerprint": str},
    )  # hex may look numeric


def check_same_data(table: pd.DataFrame, data: Dataset, path: Path) -> None:
    """Refuse a reference table built on other data than ``data`` (another copy, another version)."""
    other = set(table["fingerprint"].dropna()) - {data.fingerprint} if "fingerprint" in table else set()
    if other:
        raise NasProxyError(
            f"{path} was built on other data (fingerprint {sorted(other)[0]}, now "
            f"{data.fingerprint}); move it away (new data needs a new [study].name) or load the data it was built on "
            f"(--data-root, or your own files as they were)"
        )


# What a cell of each numeric column must hold, said as "<column> <cell> is not ...".
_CELLS: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    "seed": (
        f"a whole number in 0..{SEED_LIMIT} (the seed the row was trained with)",
        lambda v: v.between(0, SEED_LIMIT) & (v == np.floor(v)),
    ),
    "test_acc": ("an accuracy in [0, 1] (a fraction, not a percentage)", lambda v: v.between(0, 1)),
    "val_acc": ("an accuracy in [0, 1] (a fraction, not a percentage)", lambda v: v.between(0, 1)),
    "seconds": ("a number of seconds >= 0; leave the cell empty if unknown", lambda v: v.ge(0) & np.isfinite(v)),
    "epochs": (
        "a whole number of epochs >= 0; leave the cell empty if unknown",
        lambda v: v.ge(0) & np.isfinite(v) & (v == np.floor(v)),
    ),
}


def _parse(text: str) -> ArchSpec | None:
    try:
        return ArchSpec.parse(text)
    except (NasProxyError, ValueError):  # ValueError: a depth or width of more digits than int() reads
        return None


def import_reference(
    source: str | Path, path: str | Path, data: Dataset, space: SearchSpace, *, metric: str, protocol: str = ""
) -> pd.DataFrame:
    """Make the table at ``source`` (a CSV trained elsewhere) the reference at ``path``; return it.

    ``path`` is where a preset keeps it (:func:`~nas_proxy.artifacts.imported_table_path`); ``space`` is
    the study's search space and ``metric`` the column ranked by (``[reference].metric``).

    ``source`` has columns ``arch``, ``seed``, ``test_acc`` and optionally ``val_acc``,
    ``seconds`` and ``epochs``; ``protocol`` is a note on how it was trained, kept beside it. Every
    cell is checked first (ids in the study's space, seeds whole numbers in [0, 2**31), accuracies in
    [0, 1], seconds and epochs empty or >= 0, no (arch, seed) twice however its id is spelt); the
    first bad one raises one line naming its line, column and value, and nothing is written. Report,
    compare and search then use it in place of a computed table; ``--import`` again replaces it.
    """
    source, path = Path(source), Path(path)
    raw = _read_import(source, metric)
    codes, parsed, numbers = _check_cells(raw, source, space, metric)
    archs, rows, seeds = _check_duplicates(source, codes, parsed, numbers)
    table = _imported_table(archs, rows, seeds, numbers, data)
    _write_import(path, table, source, protocol)
    return read_reference(path)


def _read_import(source: Path, metric: str) -> pd.DataFrame:
    """The cells of the CSV at ``source`` as written, every optional column present (empty when absent).

    Refuses a missing file, a table without rows and one without the ``metric`` column before any cell is checked.
    """
    if not source.is_file():
        raise NasProxyError(f"no file to import at {source}; pass the path of a CSV with columns arch, seed, test_acc")
    raw = read_table(
        source,
        ["arch", "seed", "test_acc"],
        "reference table to import",
        "it needs columns arch, seed, test_acc (val_acc optional)",
        dtype=str,  # each cell as written: a bad one is reported as the file has it
    )
    if raw.empty:
        raise NasProxyError(f"{source}: no rows to import")
    if metric not in raw:
        raise NasProxyError(
            f'{source}: lacks column {metric!r}, which [reference].metric ranks by; add it or set metric = "test_acc"'
        )
    return raw.reindex(columns=[*raw.columns, *(c for c in _CELLS if c not in raw)])  # optional ones absent: empty


def _check_cells(
    raw: pd.DataFrame, source: Path, space: SearchSpace, metric: str
) -> tuple[np.ndarray, list[ArchSpec | None], dict[str, pd.Series]]:
    """Each row's arch code (into the parsed ids) and each numeric column as floats, every cell checked first.

    The first bad cell (the first bad row's first bad column) raises one line naming its line, column and value,
    so that nothing is written from a table with a bad cell.
    """
    # Column by column, not row by row: a table may hold millions of rows but few distinct ids, each parsed once.
    codes, spellings = pd.factorize(raw["arch"])  # code -1: an empty cell, which the appended False refuses
    parsed = [_parse(text) for text in spellings]
    known = np.array([arch is not None for arch in parsed] + [False])[codes]
    inside = np.array([arch is not None and arch in space for arch in parsed] + [False])[codes]
    numbers = {column: pd.to_numeric(raw[column], errors="coerce").astype(float) for column in _CELLS}

    def cell(column: str, i: int) -> str:  # a number unquoted (a whole one as an int), other text quoted; nan: empty
        number = float(numbers[column].iloc[i])
        return shown(raw[column].iloc[i] if math.isnan(number) else int(number) if number.is_integer() else number)

    def arch_problem(i: int) -> str:
        if not known[i]:
            return (
                f"arch {shown(raw['arch'].iloc[i])} is not an architecture id; write it as "
                f"d<depth>-w<width>-<activation>-<norm>-<pooling>, e.g. {DEFAULT_ARCH.id}"
            )
        return (
            f"{shown(parsed[codes[i]].id)} is not in the study's search space {space.name!r}; "
            f"import only architectures of it"
        )

    bad = {"arch": ~inside}  # the first check names the first bad row's first bad cell
    for column, (_, valid) in _CELLS.items():
        bad[column] = np.where(raw[column].isna(), column in ("seed", metric), ~valid(numbers[column]))
    first = {column: int(mask.argmax()) for column, mask in bad.items() if mask.any()}
    if first:
        i = min(first.values())
        column = next(c for c, row in first.items() if row == i)
        problem = arch_problem(i) if column == "arch" else f"{column} {cell(column, i)} is not {_CELLS[column][0]}"
        raise NasProxyError(f"{source}, line {i + 2}: {problem}")
    return codes, parsed, numbers


def _check_duplicates(
    source: Path, codes: np.ndarray, parsed: list[ArchSpec | None], numbers: dict[str, pd.Series]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical ids, each row's index into them and each row's seed; refused when an (arch, seed) comes twice
    however its id is spelt, since the table keeps one row per (arch, seed)."""
    # Duplicates by canonical id: D1-W32-... and d1-w32-... name one architecture.
    # every spelling is an architecture of the space here: a row of any other raised above
    ids = [arch.id for arch in cast(list[ArchSpec], parsed)]
    archs, arch_codes = np.unique(np.array(ids, dtype=np.object_), return_inverse=True)
    rows = arch_codes[codes]
    seeds = numbers["seed"].to_numpy().astype(np.int64)
    duplicated = pd.Series(rows * (SEED_LIMIT + 1) + seeds).duplicated()
    if duplicated.any():
        i = int(duplicated.to_numpy().argmax())
        earlier = int(np.flatnonzero((rows == rows[i]) & (seeds == seeds[i]))[0])
        raise NasProxyError(
            f"{source}, line {i + 2}: {archs[rows[i]]} seed {seeds[i]} appears twice (lines {earlier + 2} and "
            f"{i + 2}); keep one row per (arch, seed)"
        )
    return archs, rows, seeds


def _imported_table(
    archs: np.ndarray, rows: np.ndarray, seeds: np.ndarray, numbers: dict[str, pd.Series], data: Dataset
) -> pd.DataFrame:
    """The checked rows in the reference table's columns: each architecture's size on ``data`` (computed once per
    id), no training size or fingerprint, the device "imported"."""
    sizes = np.array([network_size(ArchSpec.parse(arch), data) for arch in archs], dtype=np.int64).reshape(-1, 2)
    return pd.DataFrame(
        {
            "arch": archs[rows],
            "seed": seeds,
            "val_acc": numbers["val_acc"],
            "test_acc": numbers["test_acc"],
            "params": sizes[rows, 0],
            "flops": sizes[rows, 1],
            "seconds": numbers["seconds"],
            "epochs": numbers["epochs"].astype("Int64"),
            "train_size": math.nan,
            "device": "imported",
            "fingerprint": math.nan,
        },
        columns=COLUMNS,
    )


def _write_import(path: Path, table: pd.DataFrame, source: Path, protocol: str) -> None:
    """Write ``table`` at ``path`` and, beside it, the note of where it came from and how it was trained."""
    note = {"source": str(source.resolve()), "protocol": protocol or f"imported from {source.name}", "rows": len(table)}
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))  # the table first: no note without its table
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(note, indent=1) + "\n"))


def reference_protocol(config: ReferenceConfig, path: Path, dataset: str) -> str:
    """How the reference table at ``path`` was trained: the imported note, or ``config``'s protocol on the data set
    named ``dataset`` (whose DSA strategy ``auto`` stands for)."""
    if is_imported_table(path):
        note = path.with_suffix(".json")
        return json.loads(note.read_text())["protocol"] if note.is_file() else f"imported ({path})"
    training = config.training
    strategy = resolve_strategy(training.dsa_strategy, default_dsa_strategy(dataset))
    return (
        f"{training.epochs} epochs on the full training data, lr {training.lr} (x0.1 at {training.lr_decay_at:g} of "
        f"the steps), batch {training.batch_size}, augmentation {strategy}"
    )


def protocol_warning(config: ReferenceConfig, path: Path) -> str | None:
    """A warning when the table at ``path`` is computed with a protocol too short to be a reference (its ranking has
    not converged)."""
    if is_imported_table(path):
        return None
    epochs = config.training.epochs
    if epochs >= MIN_TRUTH_EPOCHS:
        return None
    return (
        f"[reference] trains {epochs} epoch(s): too short for a ranking that has converged (it ranks how fast "
        f"networks start to learn); use epochs >= {MIN_TRUTH_EPOCHS} (fewer images if need be), check with "
        f"benchmarks/reference_convergence.py, or import a converged table with --import"
    )


def seed_ceiling(
    table: pd.DataFrame, metric: str = ReferenceConfig.metric, *, n_boot: int = N_BOOT, seed: int = 0
) -> Agreement | None:
    """How well the reference's first seed ranks its second (:func:`rank_agreement`): the best a proxy can do.

    None when the table has fewer than two seeds of at least four architectures.
    """
    seeds = sorted(table["seed"].unique())
    if len(seeds) < 2:
        return None
    wide = table.pivot_table(index="arch", columns="seed", values=metric).dropna(subset=seeds[:2])
    if len(wide) < 4:
        return None
    return rank_agreement(wide[seeds[0]], wide[seeds[1]], n_boot=n_boot, seed=seed)


def reference_accuracy(table: pd.DataFrame, metric: str = ReferenceConfig.metric) -> pd.Series:
    """Mean ``metric`` over seeds, one value per architecture id."""
    return table.groupby("arch")[metric].mean().rename("reference")


def fit_seeds(table: pd.DataFrame, config: ReferenceConfig) -> list[int]:
    """The reference seeds a calibration learns from: those ``config`` names (``[reference].seeds``) that the table
    holds, or every seed it holds when it holds none of them."""
    held = sorted(set(table["seed"]))
    return [s for s in config.seed_values if s in held] or held


def fit_reference(table: pd.DataFrame, config: ReferenceConfig) -> pd.Series:
    """What a calibration learns from: the mean ``config.metric`` over :func:`fit_seeds`. A table imported with
    more seeds than the preset pays for is still scored against the mean of all of them."""
    return reference_accuracy(table[table["seed"].isin(fit_seeds(table, config))], config.metric)


def preset_reference(preset: Preset, data: Dataset) -> tuple[Path, pd.DataFrame]:
    """The preset's reference table and its path, refused when it is empty or was built on other data than
    ``data``."""
    path = reference_table_path(preset.study.output, preset.data, preset.reference)
    table = read_reference(path)
    if table.empty:
        elsewhere = preset.study.elsewhere()  # a study run from another folder: said, not started again
        if elsewhere:
            raise NasProxyError(f"no reference table in {preset.study.output.resolve()}: {elsewhere}")
        raise NasProxyError(
            f"no reference table at {path}; import one with `nas-proxy reference {preset.ref} "
            f"--import FILE.csv` or train one with --archs 30"
        )
    check_same_data(table, data, path)
    return path, table


def reference_space(space: SearchSpace, config: ReferenceConfig) -> SearchSpace:
    """The space ``--archs N`` draws from: ``[reference].search_space``, which must lie inside the study's ``space``."""
    if not config.search_space:
        return space
    sub = load_search_space(config.search_space)
    outside = next((arch for arch in sub.archs() if arch not in space), None)
    if outside is not None:
        raise NasProxyError(
            f"[reference].search_space {sub.name!r} holds {outside.id}, which is not "
            f"in the study's space {space.name!r}; use a sub-space of it"
        )
    return sub


def run_reference(
    config: ReferenceConfig, data: Dataset, archs: list[ArchSpec], path: str | Path, *, progress: bool = True
) -> pd.DataFrame:
    """Train each architecture on the full training data for every reference seed; return the table at ``path``.

    ``path`` is where a preset keeps it (:func:`~nas_proxy.artifacts.reference_table_path`). Rows already in
    the table are skipped, so re-running after a crash continues where it stopped.
    """
    path = Path(path)
    table = read_reference(path)
    check_same_data(table, data, path)
    check_writable(path.parent, "[study].out_dir")  # before minutes of training
    if is_imported_table(path):  # rows trained here would mix two protocols in one reference
        missing = [arch.id for arch in archs if arch.id not in set(table["arch"])]
        if missing:
            raise NasProxyError(
                f"the reference table is imported ({path}) and lacks {missing[0]}; import a table "
                f"that has it, or move {path.name} away to train with [reference]"
            )
        return table

    def train(pending: list[ArchSpec], seed: int, save: Callable[[int, dict[str, Any]], None]) -> None:
        def row(i: int, result: TrainResult) -> None:
            save(i, {**result.to_dict(), "device": str(data.train.x.device), "fingerprint": data.fingerprint})

        training = dataclasses.replace(config.training, seed=seed)
        train_candidates(pending, data.train, data, training, test=True, on_result=row)

    return SharedTable(path, read_reference).fill(archs, config.seed_values, train, desc="reference", progress=progress)


__all__ = [
    "MIN_TRUTH_EPOCHS",
    "check_same_data",
    "fit_reference",
    "fit_seeds",
    "import_reference",
    "preset_reference",
    "protocol_warning",
    "read_reference",
    "reference_accuracy",
    "reference_protocol",
    "reference_space",
    "run_reference",
    "seed_ceiling",
]
