"""Build a frozen config dataclass from a TOML table, naming the bad key on any error; settings as file keys."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from nas_proxy.errors import ConfigError, NasProxyError

T = TypeVar("T")


def _check(value: Any, annotation: Any, section: str, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if not any(value == option and type(value) is type(option) for option in allowed):  # 1 is not True
            raise ConfigError(section, key, f"= {value!r} is not allowed; choose from {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        for option in options:
            with contextlib.suppress(ConfigError):
                return _check(value, option, section, key)
        raise ConfigError(section, key, f"must be {' or '.join(map(_describe, options))}, got {value!r}")
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if isinstance(value, bool) != (annotation is bool) or not isinstance(value, annotation):
            raise ConfigError(section, key, f"must be {annotation.__name__}, got {value!r}")
        return value
    return value


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " or ".join(map(repr, typing.get_args(annotation)))
    return getattr(annotation, "__name__", str(annotation))


def check_fields(config: Any, section: str) -> None:
    """Check every field of a config dataclass against its annotation: types and ``Literal`` choices.

    Called from each config's ``__post_init__``, so a config built in Python is checked like one
    read from TOML. An int given for a float field becomes a float.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        checked = _check(value, hints[f.name], section, f.name)
        if checked is not value:
            object.__setattr__(config, f.name, checked)  # frozen dataclass: the coerced value replaces the raw one


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


def keyed_settings(config: Any, *, skip: tuple[str, ...] = (), later: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of ``config`` that name a cached file: all but ``skip``, and the ``later`` ones (options added
    after such files were first written) only when they differ from their defaults, so those files keep their
    names."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    return {
        k: v for k, v in dataclasses.asdict(config).items() if k not in skip and not (k in later and v == defaults[k])
    }


def positive(section: str, **values: int | float) -> None:
    for key, value in values.items():
        if value <= 0:
            raise ConfigError(section, key, f"must be positive, got {value!r}")


def settings_key(*parts: object) -> str:
    """12 hex chars naming an artifact by the settings (JSON-serialisable) that produced it."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
