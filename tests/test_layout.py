"""The package's shape (issues 15, 24): subpackages along the data flow, each importing only the stages
before it; a small public API; the tests mirror the layout; every command is a Python call a notebook
can make."""

import ast
import importlib
import re
from pathlib import Path

import pytest

import nas_proxy

PACKAGE = Path(nas_proxy.__file__).parent
TESTS = Path(__file__).parent
# The data flow, first to last. A module may import from its own layer and the ones before it, never
# from a later one: the layering is what rules out an import circle between stages. The top-level
# private helpers (_config, _io, ...) and errors form the bottom; cli sits on top.
LAYERS = [
    "helpers",
    "data",
    "space",
    "method",
    "config",
    "artifacts",
    "reference",
    "scoring",
    "study",
    "results",
    "cli",
]
SUBPACKAGES = [name for name in LAYERS if (PACKAGE / name / "__init__.py").exists()]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    """The layer of a dotted module name (``nas_proxy.method._train`` -> ``method``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in LAYERS:
        return parts[1]
    return "helpers"  # _config, _io, _accel, _interrupt, _shipped, _records, _version, _flags, errors


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, anywhere in the file (also inside functions), except for type checking."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for stmt in ast.walk(tree)
        if isinstance(stmt, ast.If) and getattr(stmt.test, "id", None) == "TYPE_CHECKING"
        for node in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            # `from pkg import _submodule` imports the submodule; any other name comes from the module itself
            names = submodules + ([node.module] if len(submodules) < len(node.names) else [])
        else:
            continue
        found |= {name for name in names if name in MODULES}
    return found - {_module_name(path)}


def test_subpackages_follow_the_data_flow():
    assert SUBPACKAGES == ["data", "space", "method", "reference", "scoring", "study", "results", "cli"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "nas_proxy"))
def test_no_module_imports_a_later_stage(module):
    """Imports go down the data flow only (so no circle between stages) and never through the package's
    own ``__init__``, which imports every stage."""
    mine = LAYERS.index(_layer(module))
    later = {dep for dep in _imports(MODULES[module]) if _layer(dep) == "package" or LAYERS.index(_layer(dep)) > mine}
    assert not later, f"{module} imports {sorted(later)}"


def test_no_import_circle_between_modules():
    graph = {name: _imports(path) for name, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph.get(name, ())):
            assert state.get(dep) != "open", " -> ".join([*trail, name, dep])
            if dep not in state:
                visit(dep, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_modules_inside_a_subpackage_are_private():
    """A subpackage's API is its curated ``__init__``; its modules are ``_``-prefixed implementation."""
    public = [
        m
        for m in MODULES
        if _layer(m) in SUBPACKAGES and len(m.split(".")) == 3 and not m.split(".")[-1].startswith("_")
    ]
    assert not public


@pytest.mark.parametrize("name", ["nas_proxy", *(f"nas_proxy.{p}" for p in SUBPACKAGES)])
def test_each_init_exports_what_it_imports(name):
    module = importlib.import_module(name)
    assert module.__doc__ and ">>>" in module.__doc__, f"{name}: a docstring with a runnable example"
    assert sorted(module.__all__) == sorted(set(module.__all__)), f"{name}: a name twice in __all__"
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ names {attr}, which it does not have"


def test_the_package_exports_entry_points_only():
    assert len(nas_proxy.__all__) <= 25
    for name in (
        "load_preset",
        "load_dataset",
        "condense",
        "run_search",
        "make_report",
        "run_frontier",
        "ConfigError",
        "NasProxyError",
    ):
        assert name in nas_proxy.__all__


def test_tests_mirror_the_layout():
    folders = sorted(p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(SUBPACKAGES)
    for folder in folders:
        assert list((TESTS / folder).glob("test_*.py")), folder


def _commands() -> dict[str, object]:
    """Each sub-command of ``nas-proxy`` and the handler it runs."""
    import argparse

    from nas_proxy.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sub.get_default("run") for name, sub in action.choices.items()}


def test_every_command_names_its_python_calls_and_they_are_exported():
    """A command is a few Python calls: its handler's docstring names them (``:func:`~nas_proxy.make_report```),
    and each named call exists and is exported by a public module (the package or a subpackage), so a notebook
    can make it too."""
    commands = _commands()
    assert {"condense", "train", "search", "reference", "report", "compare"} <= set(commands)
    for command, handler in commands.items():
        named = re.findall(r":(func|meth):`~?([\w.]+)`", handler.__doc__ or "")
        assert any(kind == "func" for kind, _ in named), f"{command}: {handler.__name__} names no Python call"
        for kind, dotted in named:
            parts = dotted.split(".")
            owner_parts = parts[:-1] if kind == "func" else parts[:-2]
            assert not any(p.startswith("_") for p in owner_parts), f"{command}: {dotted} is not a public path"
            owner = importlib.import_module(".".join(owner_parts))
            target = getattr(owner, parts[-1]) if kind == "func" else getattr(getattr(owner, parts[-2]), parts[-1])
            assert callable(target), f"{command}: {dotted} is not callable"
            assert parts[len(owner_parts)] in owner.__all__, f"{command} calls {dotted}, which is not exported"


def test_the_wheel_ships_every_subpackage():
    """pyproject.toml lists the packages the wheel holds: a subpackage missing there installs a broken command."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    subpackages = {f"nas_proxy.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages <= listed, f"add {sorted(subpackages - listed)} to [tool.setuptools].packages"
