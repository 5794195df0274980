"""Architecture specs and search spaces.

An :class:`ArchSpec` names one ConvNet of the family in METHOD.md; its canonical id
(``d3-w128-relu-instancenorm-avgpool``) is what studies, caches and tables store.
A :class:`SearchSpace` is the product of choices per axis, kept as data in
``search_spaces/*.toml``.

Example:
    >>> from nas_proxy import ArchSpec
    >>> arch = ArchSpec.parse("d3-w128-relu-instancenorm-avgpool")
    >>> arch.depth, arch.norm, str(arch)
    (3, 'instancenorm', 'd3-w128-relu-instancenorm-avgpool')
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from nas_proxy._config import bounds_metadata, field_problem, read_toml, shown
from nas_proxy._shipped import find_toml
from nas_proxy.errors import NasProxyError

ACTIVATIONS = ("sigmoid", "relu", "leakyrelu")
NORMS = ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm")
POOLINGS = ("none", "maxpool", "avgpool")
AXES = ("depth", "width", "activation", "norm", "pooling")
_VALUES: dict[str, tuple[str, ...]] = {"activation": ACTIVATIONS, "norm": NORMS, "pooling": POOLINGS}
# Up to 99 digits: int() refuses thousands, and any number past the limits (ArchSpec) is named as too large.
_ID = re.compile(r"^d(\d{1,99})-w(\d{1,99})-([a-z]+)-([a-z]+)-([a-z]+)$")


@dataclass(frozen=True, order=True)
class ArchSpec:
    """One ConvNet: ``depth`` blocks of conv(``width``) -> ``norm`` -> ``activation`` -> ``pooling``."""

    # Limits against typos: a depth of 10**20 would build layers until memory runs out.
    depth: int = field(
        metadata=bounds_metadata(above=0, at_most=16, why="4 times the deepest network of the paper's space")
    )
    width: int = field(
        metadata=bounds_metadata(above=0, at_most=4096, why="16 times the widest network of the paper's space")
    )
    activation: str
    norm: str
    pooling: str

    def __post_init__(self) -> None:
        for axis, allowed in _VALUES.items():
            value = getattr(self, axis)
            if value not in allowed:
                raise NasProxyError(f"unknown {axis} {shown(value)}; choose from {', '.join(allowed)}")
        for axis in ("depth", "width"):
            problem = _size_problem(axis, getattr(self, axis))
            if problem is not None:
                raise NasProxyError(f"{axis} {problem}")

    @property
    def id(self) -> str:
        return f"d{self.depth}-w{self.width}-{self.activation}-{self.norm}-{self.pooling}"

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, arch_id: str) -> ArchSpec:
        """Parse a canonical id such as ``d3-w128-relu-instancenorm-avgpool``."""
        match = _ID.match(arch_id.strip().lower())
        if match is None:
            raise NasProxyError(
                f"cannot parse architecture id {shown(arch_id)}; expected "
                f"d<depth>-w<width>-<activation>-<norm>-<pooling>, e.g. {DEFAULT_ARCH.id}"
            )
        depth, width, activation, norm, pooling = match.groups()
        return cls(int(depth), int(width), activation, norm, pooling)


def _size_problem(axis: str, value: object) -> str | None:
    """What is wrong with ``value`` as an architecture's ``depth`` or ``width``, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a positive integer, got {shown(value)}"
    return field_problem(_FIELDS[axis], value)


_FIELDS = {f.name: f for f in fields(ArchSpec)}


DEFAULT_ARCH = ArchSpec(3, 128, "relu", "instancenorm", "avgpool")


@dataclass(frozen=True)
class SearchSpace:
    """The product of the choices per axis; iterates in a fixed canonical order.

    Example:
        >>> from nas_proxy import load_search_space
        >>> space = load_search_space("nas720")
        >>> len(space), space.archs()[0].id
        (720, 'd1-w32-sigmoid-none-none')
    """

    name: str
    depth: tuple[int, ...]
    width: tuple[int, ...]
    activation: tuple[str, ...]
    norm: tuple[str, ...]
    pooling: tuple[str, ...]
    description: str = ""

    def choices(self) -> dict[str, tuple[Any, ...]]:
        return {axis: getattr(self, axis) for axis in AXES}

    def archs(self) -> list[ArchSpec]:
        return [ArchSpec(*values) for values in itertools.product(*self.choices().values())]

    def __len__(self) -> int:
        return len(self.depth) * len(self.width) * len(self.activation) * len(self.norm) * len(self.pooling)

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, ArchSpec) and all(getattr(arch, a) in getattr(self, a) for a in AXES)

    def sample(self, n: int, seed: int, where: Callable[[ArchSpec], bool] | None = None) -> list[ArchSpec]:
        """``n`` distinct architectures drawn uniformly without replacement with ``seed``.

        ``where`` keeps only the architectures it accepts (for example a cost cap) before drawing.
        """
        archs = [arch for arch in self.archs() if where is None or where(arch)]
        if not 0 < n <= len(archs):
            kept = "" if where is None else " after the filter"
            raise NasProxyError(
                f"cannot sample {n} architectures from space {self.name!r}: it holds {len(archs)}{kept}; ask for fewer"
            )
        order = torch.randperm(len(archs), generator=torch.Generator().manual_seed(seed))
        return [archs[i] for i in order[:n].tolist()]

    def spread(self, n: int, seed: int, among: Sequence[ArchSpec] | None = None) -> list[ArchSpec]:
        """``n`` architectures (of ``among``, default the whole space) spread over every axis's choices.

        Greedy: each next one is the candidate whose choices are the least used so far (counted per
        axis relative to that axis's number of choices), then the farthest (in differing axes) from
        the nearest already chosen; ``seed`` breaks the remaining ties. A calibration fitted on a
        reference spread this way sees every choice about equally often, which a uniform draw of
        few architectures does not guarantee.

        Example:
            >>> from nas_proxy import load_search_space
            >>> picked = load_search_space("nas720").spread(12, seed=0)
            >>> sorted({a.pooling for a in picked}), len({a.norm for a in picked})
            (['avgpool', 'maxpool', 'none'], 5)
        """
        pool = list(among) if among is not None else self.archs()
        if not 0 < n <= len(pool):
            raise NasProxyError(f"cannot spread {n} architectures over {len(pool)}; ask for between 1 and {len(pool)}")
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed)).tolist()
        pool = [pool[i] for i in order]
        levels = {axis: {v: i for i, v in enumerate(getattr(self, axis))} for axis in AXES}
        codes = torch.tensor([[levels[axis][getattr(a, axis)] for axis in AXES] for a in pool])
        sizes = torch.tensor([len(levels[axis]) for axis in AXES])
        counts = torch.zeros(len(AXES), int(sizes.max()))
        nearest = torch.full((len(pool),), len(AXES) + 1.0)  # differing axes to the nearest chosen one
        free = torch.ones(len(pool), dtype=torch.bool)
        chosen = []
        for _ in range(n):
            use = (counts.gather(1, codes.T) * sizes[:, None]).sum(0)  # how used each candidate's choices are
            key = torch.where(free, use * (len(AXES) + 2) - nearest, torch.inf)
            best = int(torch.argmin(key))  # the first of equals: the seeded order breaks ties
            chosen.append(best)
            free[best] = False
            counts[torch.arange(len(AXES)), codes[best]] += 1
            nearest = torch.minimum(nearest, (codes != codes[best]).sum(1).float())
        return [pool[i] for i in chosen]


def load_search_space(name_or_path: str | Path) -> SearchSpace:
    """Load a search space by name (a shipped one: ``nas720``, ``nas720_cpu``, ``small``) or from a TOML file.

    The file holds ``name``, an optional ``description`` and a ``[choices]`` table with one
    non-empty list per axis (depth, width, activation, norm, pooling).
    """
    path = find_toml(name_or_path, "search_spaces")
    raw = read_toml(path, f"search space file not found: {path}; pass a .toml path or a shipped name")
    return _parse_space(raw, path)


def _parse_space(raw: dict[str, Any], path: Path) -> SearchSpace:
    unknown = sorted(set(raw) - {"name", "description", "choices"})
    if unknown:
        raise NasProxyError(f"{path}: unknown key {unknown[0]!r}; allowed keys are name, description, [choices]")
    choices = raw.get("choices")
    if not isinstance(choices, dict):
        raise NasProxyError(f"{path}: missing [choices] table with keys {', '.join(AXES)}")
    unknown = sorted(set(choices) - set(AXES))
    if unknown:
        raise NasProxyError(f"{path}: unknown key choices.{unknown[0]!r}; allowed keys are {', '.join(AXES)}")
    values: dict[str, tuple[Any, ...]] = {}
    for axis in AXES:
        if axis not in choices:
            raise NasProxyError(f"{path}: missing key choices.{axis}")
        items = choices[axis]
        if not isinstance(items, list) or not items:
            raise NasProxyError(f"{path}: choices.{axis} must be a non-empty list")
        kind = int if axis in ("depth", "width") else str
        for item in items:
            if isinstance(item, bool) or not isinstance(item, kind):
                raise NasProxyError(f"{path}: choices.{axis} holds {item!r}; expected {kind.__name__} values")
            if axis in _VALUES and item not in _VALUES[axis]:
                raise NasProxyError(
                    f"{path}: choices.{axis} holds unknown value {shown(item)}; choose from {', '.join(_VALUES[axis])}"
                )
            problem = _size_problem(axis, item) if kind is int else None
            if problem is not None:
                raise NasProxyError(f"{path}: choices.{axis}: every {axis} {problem}")
        if len(set(items)) != len(items):
            raise NasProxyError(f"{path}: choices.{axis} lists a value twice")
        values[axis] = tuple(items)
    name = raw.get("name", path.stem)
    if not isinstance(name, str):
        raise NasProxyError(f"{path}: name must be a string")
    return SearchSpace(name=name, description=str(raw.get("description", "")), **values)
