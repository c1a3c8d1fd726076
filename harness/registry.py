"""Find plugins, call their hooks, and keep what they register.

Plugins come from the ``harness`` entry-point group (built-ins included) and,
for tests or notebooks, from objects passed in directly. Each plugin's hooks
are called one plugin at a time, so that one that fails to import, raises or
registers nonsense is reported in one line and the rest keep working.

Environment variables:

* ``HARNESS_DISABLE_PLUGINS=a,b``: skip these entry points.
* ``HARNESS_PLUGINS=a,b``: load only these entry points (an allow-list).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable, Sequence

import pluggy

from harness import hookspecs
from harness.contract import CellSpec, TaskSpec
from harness.errors import HarnessError
from harness.executors.base import ExecutorSpec

ENTRY_POINT_GROUP = "harness"

_session_plugins: list[object] = []


def add_plugin(plugin: object) -> None:
    """Register a plugin object for this Python session (notebooks, tests): every later
    :func:`load_registry` includes it, as if it came from an entry point."""
    if plugin not in _session_plugins:
        _session_plugins.append(plugin)


def remove_plugin(plugin: object) -> None:
    """Undo :func:`add_plugin`."""
    if plugin in _session_plugins:
        _session_plugins.remove(plugin)


@dataclass(frozen=True)
class Source:
    """Where a registration came from."""

    plugin: str
    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version}" if self.version else self.package


@dataclass(frozen=True)
class Registered:
    spec: Any  # CellSpec or TaskSpec
    source: Source


@dataclass(frozen=True)
class PluginProblem:
    plugin: str
    package: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.package}) skipped: {self.reason}"


@dataclass
class Registry:
    cells: dict[str, Registered] = field(default_factory=dict)
    tasks: dict[str, Registered] = field(default_factory=dict)
    executors: dict[str, Registered] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    plugins: list[Source] = field(default_factory=list)

    def cell(self, name: str) -> CellSpec:
        if name not in self.cells:
            raise HarnessError(f"unknown cell {name!r}; valid cells: {', '.join(sorted(self.cells)) or '(none)'}")
        return self.cells[name].spec

    def task(self, name: str) -> TaskSpec:
        if name not in self.tasks:
            raise HarnessError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(self.tasks)) or '(none)'}")
        return self.tasks[name].spec

    def executor(self, name: str) -> ExecutorSpec:
        if name not in self.executors:
            raise HarnessError(f"unknown executor {name!r}; valid executors: "
                               f"{', '.join(sorted(self.executors)) or '(none)'}")
        return self.executors[name].spec

    def provenance(self, name: str, kind: str = "cell") -> dict[str, str]:
        """Which plugin, package and version supplied the cell (or task) ``name``."""
        source = (self.cells if kind == "cell" else self.tasks)[name].source
        return {"plugin": source.plugin, "package": source.package, "version": source.version}

    def parse_cells(self, text: str) -> list[CellSpec]:
        """``"lstm,rnn"`` -> specs, in order, without duplicates."""
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise HarnessError("--cells is empty; name at least one cell, e.g. --cells lstm,rnn")
        return [self.cell(n) for n in dict.fromkeys(names)]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _name_list(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def load_registry(
    extra_plugins: Sequence[object] = (),
    *,
    use_entry_points: bool = True,
    only: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
) -> Registry:
    """Load every plugin and collect its cells and tasks.

    :param extra_plugins: plugin objects registered in-process, after entry points.
    :param only: entry-point names to load (default: ``HARNESS_PLUGINS`` or all).
    :param disable: entry-point names to skip (default: ``HARNESS_DISABLE_PLUGINS``).
    """
    only_set = set(only) if only is not None else _name_list(os.environ.get("HARNESS_PLUGINS"))
    disabled = set(disable) if disable is not None else (_name_list(os.environ.get("HARNESS_DISABLE_PLUGINS")) or set())

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    sources: dict[str, Source] = {}

    if use_entry_points:
        seen: set[str] = set()
        for ep in _entry_points():
            if ep.name in seen:  # the same distribution can be visible twice (editable + path)
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else ""
            if ep.name in disabled or (only_set is not None and ep.name not in only_set):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # an import error in someone else's package must not stop us
                registry.problems.append(PluginProblem(ep.name, package, f"failed to import: {_one_line(exc)}"))
                continue
            sources[ep.name] = Source(ep.name, package, version)

    for obj in [*_session_plugins, *extra_plugins]:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        try:
            pm.register(obj, name=name)
        except Exception as exc:
            registry.problems.append(PluginProblem(name, "in-process", f"failed to register: {_one_line(exc)}"))
            continue
        sources[name] = Source(name, "in-process", "")

    registry.plugins = list(sources.values())
    _collect(pm, "register_cells", CellSpec, registry.cells, sources, registry)
    _collect(pm, "register_tasks", TaskSpec, registry.tasks, sources, registry)
    _collect(pm, "register_executors", ExecutorSpec, registry.executors, sources, registry)
    return registry


def _collect(pm, hook_name: str, spec_type: type, into: dict, sources: dict[str, Source], registry: Registry) -> None:
    kind = {CellSpec: "cell", TaskSpec: "task", ExecutorSpec: "executor"}[spec_type]
    # get_hookimpls() is in registration order: entry points first, so a built-in name cannot be taken over.
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        source = sources.get(impl.plugin_name, Source(impl.plugin_name, "?", ""))

        def register(spec: Any, _source: Source = source) -> None:
            if not isinstance(spec, spec_type):
                raise TypeError(f"register() expects a {spec_type.__name__}, got {type(spec).__name__}")
            if spec.name in into:
                other = into[spec.name].source
                registry.problems.append(
                    PluginProblem(_source.plugin, _source.package, f"{kind} {spec.name!r} is already registered by {other}")
                )
                return
            into[spec.name] = Registered(spec, _source)

        try:
            impl.function(register)
        except Exception as exc:
            registry.problems.append(PluginProblem(source.plugin, source.package, f"{hook_name} raised {_one_line(exc)}"))
