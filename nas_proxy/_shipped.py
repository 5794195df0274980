"""Study presets and search spaces shipped with the package, found by name from any folder.

They live in the repository's ``studies/`` and ``search_spaces/`` and install as the package
data ``nas_proxy.studies`` and ``nas_proxy.search_spaces`` (see ``pyproject.toml``), so an
installed wheel and an editable checkout resolve ``quickstart`` or ``nas720`` the same way.

Example:
    >>> from nas_proxy._shipped import find_toml
    >>> find_toml("quickstart", "studies").name
    'quickstart.toml'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from nas_proxy.errors import NasProxyError

Kind = Literal["studies", "search_spaces"]
_WHAT = {"studies": "study preset", "search_spaces": "search space"}


def shipped_names(kind: Kind) -> list[str]:
    """The names of the shipped ``kind`` files, e.g. ``['cifar10_dm_ipc50', 'fashion_mnist_dm', 'quickstart']``."""
    return sorted(
        Path(entry.name).stem
        for entry in resources.files(f"nas_proxy.{kind}").iterdir()
        if entry.name.endswith(".toml")
    )


def find_toml(name_or_path: str | Path, kind: Kind) -> Path:
    """A path to an existing file (kept as given), or the shipped file of that name (no ``.toml``)."""
    path = Path(name_or_path)
    names = ", ".join(shipped_names(kind))
    if path.suffix == ".toml" or path.is_file() or len(path.parts) > 1:
        if not path.is_file():
            raise NasProxyError(
                f"{_WHAT[kind]} not found: {path}; pass an existing .toml file or a shipped name ({names})"
            )
        return path
    shipped = resources.files(f"nas_proxy.{kind}") / f"{path.name}.toml"
    if not shipped.is_file():
        raise NasProxyError(
            f"unknown {_WHAT[kind]} {str(name_or_path)!r}; choose a shipped one ({names}) or pass a "
            f"path to a .toml file"
        )
    return Path(str(shipped))


def shipped_name(path: Path, kind: Kind) -> str | None:
    """The name under which ``path`` ships (``quickstart``), or None for a file of the user's own."""
    shipped = resources.files(f"nas_proxy.{kind}") / path.name
    return path.stem if shipped.is_file() and Path(str(shipped)).resolve() == path.resolve() else None
