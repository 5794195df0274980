"""The package's shape (issue 15): no import circle, no module above 450 lines, every command a Python call
the package exports."""

import ast
from pathlib import Path

import pytest

import nas_proxy

PACKAGE = Path(nas_proxy.__file__).parent
MODULES = {path.stem: path for path in PACKAGE.glob("*.py")}


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, anywhere in the file (also inside functions), except for type checking."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
               and getattr(stmt.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "nas_proxy":  # a submodule, or the package's own
            names = [f"nas_proxy.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "nas_proxy":
                found.add(parts[1] if len(parts) > 1 and parts[1] in MODULES else "__init__")
    return found - {path.stem}


def test_no_module_imports_itself_back():
    graph = {name: _imports(path) for name, path in MODULES.items() if name != "__init__"}
    assert all("__init__" not in deps for deps in graph.values()), \
        {name: deps for name, deps in graph.items() if "__init__" in deps}  # the package imports every module
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


def test_configs_sit_at_the_bottom():
    public = {m for m in MODULES if not m.startswith("_")} - {"__init__", "errors"}
    vocabulary = {"space", "augment"}  # the architecture ids and DSA op families the configs' checks use
    assert _imports(MODULES["config"]) & public <= vocabulary
    for name in vocabulary:
        assert not _imports(MODULES[name]) & public, name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_above_450_lines(name):
    assert len(MODULES[name].read_text().splitlines()) <= 450


def _commands() -> dict[str, object]:
    """Each sub-command of ``nas-proxy`` and the handler it runs."""
    import argparse

    from nas_proxy.cli import build_parser

    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sub.get_default("run") for name, sub in action.choices.items()}


def test_every_command_names_its_python_calls_and_they_are_exported():
    """A command is a few Python calls: its handler's docstring names them (``:func:`~nas_proxy.make_report```),
    and each named call exists and is part of the package's public API, so a notebook can make it too."""
    import importlib
    import re

    commands = _commands()
    assert {"condense", "evaluate", "search", "reference", "report", "compare"} <= set(commands)
    for command, handler in commands.items():
        named = re.findall(r":(func|meth):`~?([\w.]+)`", handler.__doc__ or "")
        assert any(kind == "func" for kind, _ in named), f"{command}: {handler.__name__} names no Python call"
        for kind, dotted in named:
            module_name, _, attr = dotted.rpartition(".")
            owner_name = module_name if kind == "func" else module_name.rpartition(".")[0]
            owner = importlib.import_module(owner_name)
            target = getattr(owner, attr) if kind == "func" else getattr(getattr(owner, module_name.rpartition(".")[2]),
                                                                          attr)
            assert callable(target), f"{command}: {dotted} is not callable"
            if kind == "func":
                assert attr in nas_proxy.__all__, f"{command} calls {dotted}, which nas_proxy does not export"
