"""Command-line flags built from the config classes, and argparse with bad input as one line (:mod:`nas_proxy.cli`)."""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from nas_proxy._config import Bounds, shown


def config_options(
    parser: argparse.ArgumentParser, cls: type, helps: dict[str, str], title: str
) -> argparse._ArgumentGroup:
    """One flag per field of ``cls`` named in ``helps`` (``--lr-img`` for ``lr_img``), defaulting to the class's own
    default; a ``Literal`` field offers its values as choices, a bool field is a switch."""
    group = parser.add_argument_group(title)
    defaults, hints = cls(), typing.get_type_hints(cls)
    for name, text in helps.items():
        default, flag = getattr(defaults, name), "--" + name.replace("_", "-")
        if isinstance(default, bool):
            assert default is False, f"{cls.__name__}.{name}: a switch turns a setting on; give it a --no- flag"
            group.add_argument(flag, action="store_true", help=text)
            continue
        choices = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Literal else None
        group.add_argument(
            flag, type=type(default), default=default, choices=choices, help=f"{text} (default: {default})"
        )
    return group


def from_options(cls: type, args: argparse.Namespace, helps: dict[str, str], **fixed: Any) -> Any:
    """``cls`` built from the flags :func:`config_options` added (and ``fixed`` values); it checks itself."""
    return cls(**{name: getattr(args, name) for name in helps if name not in fixed}, **fixed)


def numbers(kind: type) -> Any:
    """An argparse ``type`` for a comma-separated list of ``kind`` (``--short 0.02,0.05``)."""

    def parse(text: str) -> list[Any]:
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None

    return parse


def integer(bounds: Bounds) -> Callable[[str], int]:
    """An argparse ``type`` for an integer within ``bounds`` (``--bootstrap``, ``--threads``): a bad one is the
    parser's one line, before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)}: expected a whole number") from None
        problem = bounds.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` call: its flags and keywords."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def option(*flags: str, **kwargs: Any) -> Option:
    return Option(flags, kwargs)


@dataclass(frozen=True)
class OneOf:
    """Options of which exactly one is given (``reference --archs`` or ``--import``)."""

    options: tuple[Option, ...]


@dataclass(frozen=True)
class ConfigFlags:
    """One flag per field of a config class named in ``helps`` (:func:`config_options`)."""

    cls: type
    helps: dict[str, str]
    title: str
    extra: tuple[Option, ...] = ()  # flags of the same table that config_options cannot build (choices, defaults)


def add_option(parser: argparse.ArgumentParser | Any, entry: Option | OneOf | ConfigFlags) -> None:
    """Add ``entry`` to ``parser``: one option, a required choice of one, or a config's flags."""
    if isinstance(entry, Option):
        parser.add_argument(*entry.flags, **entry.kwargs)
    elif isinstance(entry, OneOf):
        group = parser.add_mutually_exclusive_group(required=True)
        for one in entry.options:
            group.add_argument(*one.flags, **one.kwargs)
    else:
        group = config_options(parser, entry.cls, entry.helps, entry.title)
        for one in entry.extra:
            group.add_argument(*one.flags, **one.kwargs)


class Parser(argparse.ArgumentParser):
    """argparse with bad input as one line, like every other error of the tool."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


__all__ = [
    "ConfigFlags",
    "OneOf",
    "Option",
    "Parser",
    "add_option",
    "config_options",
    "from_options",
    "integer",
    "numbers",
    "option",
]
