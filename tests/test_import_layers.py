"""The package's imports run one way (``harness/__init__.py`` lists the layers): no circles among modules or
folders, no import from a lower layer to a higher one, and plugins (cells, tasks) use only the contract.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy import is still a dependency,
and it is how circles hide.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGES = ("harness", "cells", "tasks")
LAYERS = ("contract", "plugins", "measurements", "reports", "run", "sweep", "executors", "commands")
"""harness's sub-packages, bottom first: each may import its own layer and those below it."""
FACES = {"harness": 0, "harness.testing": 1, "harness.cli": len(LAYERS), "harness.__main__": len(LAYERS)}
"""Modules at harness's top level and the layer each stands on (``harness`` itself hands out the contract)."""
PLUGIN_MAY_IMPORT = ("harness", "harness.contract", "harness.testing")
"""What a built-in cell or task may import of the harness: what a third-party plugin may."""


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` (a package is its ``__init__.py``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``name`` imports, wherever the import statement stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from pkg import sub" imports the module pkg.sub; "from mod import name" imports mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # "import a.b.c" of a non-module: the nearest module above
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


@functools.cache
def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def folder_of(name: str, modules: dict[str, Path]) -> str:
    """The folder a module's file sits in, dotted (``harness.sweep`` for ``harness.sweep.grid``)."""
    path = modules[name]
    return ".".join(path.parent.relative_to(ROOT).parts)


def layer_of(name: str) -> int | None:
    """The layer index of a harness module (see :data:`LAYERS`), or ``None`` outside harness."""
    if name in FACES:
        return FACES[name]
    parts = name.split(".")
    if parts[0] != "harness":
        return None
    return LAYERS.index(parts[1])


def test_the_walk_finds_a_planted_circle_and_a_lazy_import(tmp_path):
    # The checker itself must see what it is there to catch: a circle through an import inside a function.
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "__init__.py").write_text("")
    (tmp_path / "harness" / "a.py").write_text("from harness.b import thing\n")
    (tmp_path / "harness" / "b.py").write_text("def thing():\n    from harness import a\n    return a\n")
    for package in ("cells", "tasks"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["harness.b"] == {"harness.a"}
    assert find_cycle(graph) == ["harness.a", "harness.b", "harness.a"]


def test_no_module_imports_itself_back_round_a_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_folder_imports_itself_back_round_a_circle():
    modules = module_files()
    folders: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        here = folder_of(name, modules)
        folders.setdefault(here, set()).update(folder_of(t, modules) for t in targets if folder_of(t, modules) != here)
    cycle = find_cycle(folders)
    assert cycle is None, "folders in a circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_itself_and_the_layers_below(layer):
    level = LAYERS.index(layer)
    upward = sorted(f"{name} -> {target}" for name, targets in import_graph().items()
                    if layer_of(name) == level and not name.startswith(f"harness.{layer}.__")
                    for target in targets if (layer_of(target) or 0) > level)
    assert not upward, "imports that run back up: " + "; ".join(upward)


def test_every_harness_module_stands_in_a_layer():
    strays = [name for name in module_files() if name.startswith("harness") and name not in FACES
              and name.split(".")[1] not in LAYERS]
    assert not strays, f"modules outside the layers {LAYERS}: {strays}"


def test_built_in_plugins_import_only_what_a_third_party_plugin_may():
    wrong = sorted(f"{name} -> {target}" for name, targets in import_graph().items()
                   if name.split(".")[0] in ("cells", "tasks")
                   for target in targets if target.startswith("harness")
                   and not any(target == ok or target.startswith(ok + ".") for ok in PLUGIN_MAY_IMPORT))
    assert not wrong, "a built-in plugin reaches past the contract: " + "; ".join(wrong)
