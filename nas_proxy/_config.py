"""Build a frozen config dataclass from a TOML table, naming the bad key on any error."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from nas_proxy.errors import NasProxyError

T = TypeVar("T")


def _check(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise NasProxyError(f"{where} = {value!r} is not allowed; choose from {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        last: NasProxyError | None = None
        for option in typing.get_args(annotation):
            if option is type(None):
                continue
            try:
                return _check(value, option, where)
            except NasProxyError as exc:
                last = exc
        raise last  # type: ignore[misc]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if isinstance(value, bool) != (annotation is bool) or not isinstance(value, annotation):
            raise NasProxyError(f"{where} must be {annotation.__name__}, got {value!r}")
        return value
    return value


def read_toml(path: Path, missing: str) -> dict[str, Any]:
    """Parse ``path``; a missing file raises ``missing`` (which names the fix), bad TOML names the file."""
    if not path.is_file():
        raise NasProxyError(missing)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise NasProxyError(f"{path}: not valid TOML ({exc}); fix the file") from None


def config_from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """``cls(**data)`` after checking every key exists on ``cls`` and every value's type.

    ``where`` prefixes error messages (e.g. ``"studies/x.toml: [condense]"``), so the user sees
    which file and key to fix.
    """
    if not isinstance(data, dict):
        raise NasProxyError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise NasProxyError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(fields)}")
    values = {key: _check(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    return cls(**values)


def positive(where: str, **values: int | float) -> None:
    for key, value in values.items():
        if value <= 0:
            raise NasProxyError(f"{where}.{key} must be positive, got {value!r}")
