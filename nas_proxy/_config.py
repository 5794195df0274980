"""Build a frozen config dataclass from a TOML table, naming the bad key on any error; settings as file keys."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from nas_proxy.errors import ConfigError, NasProxyError

T = TypeVar("T")

SEED_LIMIT = 2**31 - 1  # torch, numpy and Optuna's samplers all accept it (numpy's end at 2**32 - 1)


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message never echoes a huge value whole."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a number may take: above or at least a low end, below or at most a high end.

    ``why`` says where the high end comes from when it is a limit against typos (10**9 epochs train for
    days, 10**9 images per class exhaust memory) rather than part of the quantity's meaning: a message then
    names the end that was passed and why it is there. Without ``why`` a range with two ends is stated whole
    (``must be between 0 and 1 (1 excluded)``).
    """

    above: float | None = None
    at_least: float | None = None
    below: float | None = None
    at_most: float | None = None
    why: str = ""

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value`` (a finite int or float), or None."""
        low_ok = (self.above is None or value > self.above) and (self.at_least is None or value >= self.at_least)
        high_ok = (self.below is None or value < self.below) and (self.at_most is None or value <= self.at_most)
        if low_ok and high_ok:
            return None
        got = f", got {shown(value)}"
        low = self.above if self.above is not None else self.at_least
        high = self.below if self.below is not None else self.at_most
        if low is not None and high is not None and not self.why:
            excluded = [end for end, bound in ((low, self.above), (high, self.below)) if bound is not None]
            ends = f" ({excluded[0]} excluded)" if len(excluded) == 1 else " (both excluded)" if excluded else ""
            return f"must be between {low} and {high}{ends}{got}"
        if not low_ok:
            end = f">= {low}" if self.above is None else "positive" if low == 0 else f"above {low}"
            return f"must be {end}{got}"
        end = f"below {high}" if self.below is not None else f"at most {high}"
        return f"must be {end}{f' ({self.why})' if self.why else ''}{got}"


def bounded(default: Any = dataclasses.MISSING, **bounds: Any) -> Any:
    """A dataclass field whose value :func:`check_fields` keeps within :class:`Bounds`: ``bounded(10, above=0)``."""
    return dataclasses.field(default=default, metadata=bounds_metadata(**bounds))


def bounds_metadata(**bounds: Any) -> dict[str, Bounds]:
    """The metadata of a :func:`bounded` field: ``field(metadata=bounds_metadata(above=0))`` declares a bounded
    field without a default in a way type checkers see (they take any other value after ``=`` for a default)."""
    return {"bounds": Bounds(**bounds)}


def seed_field(default: int = 0) -> Any:
    """A field holding a seed: in the range torch, numpy and Optuna's samplers all accept."""
    return bounded(default, at_least=0, at_most=SEED_LIMIT, why="what torch, numpy and Optuna's samplers all accept")


def batch_field(default: int) -> Any:
    """A field holding a batch size (images per forward pass)."""
    return bounded(default, above=0, at_most=65_536, why="a larger batch exhausts memory before it helps")


def field_problem(f: dataclasses.Field[Any], value: Any) -> str | None:
    """What is wrong with ``value`` for field ``f`` by the :class:`Bounds` in its metadata, or None."""
    bounds = f.metadata.get("bounds")
    return None if bounds is None else bounds.problem(value)


def _check(value: Any, annotation: Any, section: str, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if not any(value == option and type(value) is type(option) for option in allowed):  # 1 is not True
            raise ConfigError(
                section, key, f"= {shown(value)} is not allowed; choose from {', '.join(map(repr, allowed))}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        for option in options:
            with contextlib.suppress(ConfigError):
                return _check(value, option, section, key)
        raise ConfigError(section, key, f"must be {' or '.join(map(_describe, options))}, got {shown(value)}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:  # an int past a float's range
            raise ConfigError(section, key, f"must be a finite number, got {shown(value)}") from None
    if annotation in (int, float, str, bool):
        if isinstance(value, bool) != (annotation is bool) or not isinstance(value, annotation):
            raise ConfigError(section, key, f"must be {annotation.__name__}, got {shown(value)}")
        if annotation is float and not math.isfinite(value):  # NaN passes every comparison: it must stop here
            raise ConfigError(section, key, f"must be a finite number, got {value!r}")
    return value


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(map(repr, typing.get_args(annotation)))
    return getattr(annotation, "__name__", str(annotation))


def check_fields(config: Any, section: str) -> None:
    """Check every field of a config dataclass against its annotation (types, ``Literal`` choices, floats
    finite) and its :func:`bounded` range.

    Called from each config's ``__post_init__``, so a config built in Python is checked like one
    read from TOML. An int given for a float field becomes a float.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        checked = _check(value, hints[f.name], section, f.name)
        if checked is not value:
            object.__setattr__(config, f.name, checked)  # frozen dataclass: the coerced value replaces the raw one
        problem = field_problem(f, checked)
        if problem is not None:
            raise ConfigError(section, f.name, problem)


def read_toml(path: Path, missing: str) -> dict[str, Any]:
    """Parse ``path``; a missing file raises ``missing`` (which names the fix), bad TOML names the file."""
    if not path.is_file():
        raise NasProxyError(missing)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NasProxyError(f"{path}: not valid TOML ({exc}); fix the file") from None


def config_from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """``cls(**data)`` after checking that every key exists on ``cls``; errors name ``where`` and the key.

    ``where`` prefixes error messages (e.g. ``"studies/x.toml: [condense]"``), so the user sees
    which file and key to fix. Values are checked by the config itself (:func:`check_fields` and
    its own rules).
    """
    if not isinstance(data, dict):
        raise NasProxyError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise NasProxyError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(fields)}")
    required = [
        name
        for name, f in fields.items()
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data
    ]
    if required:
        raise NasProxyError(f"{where}: missing key {required[0]!r}")
    try:
        return cls(**data)
    except ConfigError as exc:
        raise NasProxyError(f"{where}.{exc.key} {exc.problem}") from None


def keyed_settings(config: Any, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``config`` that name a cached file: all but ``skip``."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}


def positive(section: str, **values: int | float) -> None:
    """Check numbers that are no config field (a count passed to a call) as ``bounded(above=0)`` checks a field."""
    for key, value in values.items():
        problem = Bounds(above=0).problem(value)
        if problem is not None:
            raise ConfigError(section, key, problem)


def settings_key(*parts: object) -> str:
    """12 hex chars naming an artifact by the settings (JSON-serialisable) that produced it."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
