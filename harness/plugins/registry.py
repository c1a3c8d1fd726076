"""Find plugins, call their hooks, and keep what they register.

Plugins come from the ``harness`` entry-point group (built-ins included) and,
for tests or notebooks, from objects passed in directly. Each plugin's hooks
are called one plugin at a time, so that one that fails to import, raises or
registers nonsense is reported in one line and the rest keep working.

Precedence, whatever order Python happens to discover entry points in: when
two plugins register the same name, the first in this order keeps it:

1. this project's own cells and tasks (``rnn-harness``; see :mod:`harness.plugins.provenance`);
2. installed plugins, by distribution name, then entry-point name (both compared case-folded);
3. plugin objects registered from Python, in the order they were added.

The other registration is dropped with one warning that names both packages;
the rest of that plugin's registrations stand.

Environment variables (``harness --plugins`` / ``--disable-plugins`` set them for one command):

* ``HARNESS_DISABLE_PLUGINS=a,b``: skip these entry points.
* ``HARNESS_PLUGINS=a,b``: load only these entry points (an allow-list).

A name selects every entry point of that name; ``DIST:NAME`` selects one
distribution's. A name that selects nothing is reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Sequence

import pluggy

from harness.contract import hookspecs
from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError, one_line
from harness.contract.executors import ExecutorSpec
from harness.contract.tasks import TaskSpec
from harness.plugins import checks
from harness.plugins.provenance import (IN_PROCESS, Source, distribution_name, distribution_version, editable_path,
                                        is_own, normalize, requirement_versions)

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
class Registered:
    spec: Any  # CellSpec, TaskSpec or ExecutorSpec
    source: Source


@dataclass(frozen=True)
class PluginProblem:
    """One line for the user: what went wrong with a plugin and what was dropped because of it."""

    plugin: str
    package: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.package}): {self.reason}" if self.plugin else self.reason


@dataclass
class Registry:
    cells: dict[str, Registered] = field(default_factory=dict)
    tasks: dict[str, Registered] = field(default_factory=dict)
    executors: dict[str, Registered] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    plugins: list[Source] = field(default_factory=list)
    """Every plugin that loaded, in precedence order."""

    def _unknown(self, kind: str, name: str, known: Iterable[str]) -> HarnessError:
        hint = "; see the plugin warnings above" if self.problems else ""
        return HarnessError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(known)) or '(none)'}{hint}")

    def cell(self, name: str) -> CellSpec:
        if name not in self.cells:
            raise self._unknown("cell", name, self.cells)
        return self.cells[name].spec

    def task(self, name: str) -> TaskSpec:
        if name not in self.tasks:
            raise self._unknown("task", name, self.tasks)
        return self.tasks[name].spec

    def executor(self, name: str) -> ExecutorSpec:
        if name not in self.executors:
            raise self._unknown("executor", name, self.executors)
        return self.executors[name].spec

    def provenance(self, name: str, kind: str = "cell") -> dict[str, Any]:
        """Which plugin, package, version and (editable installs) folder supplied the cell (or task) ``name``; for a
        cell that computes with other packages (``CellSpec.requires``), their versions too, under ``requires``."""
        registered = (self.cells if kind == "cell" else self.tasks)[name]
        facts: dict[str, Any] = registered.source.as_dict()
        if kind == "cell" and registered.spec.requires:
            facts["requires"] = requirement_versions(registered.spec.requires)
        return facts

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin registered: ``{"cells": [...], "tasks": [...], "executors": [...]}`` (empty kinds left out)."""
        kinds = {"cells": self.cells, "tasks": self.tasks, "executors": self.executors}
        found = {kind: sorted(n for n, r in entries.items() if r.source.plugin == plugin)
                 for kind, entries in kinds.items()}
        return {kind: names for kind, names in found.items() if names}

    def parse_cells(self, text: str) -> list[CellSpec]:
        """``"lstm,rnn"`` -> specs, in order, without duplicates."""
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise HarnessError("--cells is empty; name at least one cell, e.g. --cells lstm,rnn")
        return [self.cell(n) for n in dict.fromkeys(names)]


def _name_list(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _selector(text: str) -> str:
    """A plugin selector in canonical form: ``NAME``, or ``DIST:NAME`` with the distribution name normalised."""
    dist, sep, name = text.rpartition(":")
    return f"{normalize(dist)}:{name}" if sep else text


def _entry_points() -> Iterable[metadata.EntryPoint]:
    """Every ``harness`` entry point of every distribution on the path. Not ``metadata.entry_points()``: that
    keeps only the first distribution of each name, so a package calling itself rnn-harness, placed first on
    the path, would hide the real built-ins."""
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                yield ep


@dataclass
class _Plugin:
    """A plugin on its way into the plugin manager."""

    obj: object
    source: Source
    rank: tuple
    """Sort key for precedence (the module docstring's order)."""


def _discover(only: set[str] | None, disabled: set[str], problems: list[PluginProblem]) -> list[_Plugin]:
    """Load the selected entry points; report selectors that match nothing and modules that fail to import."""
    groups: dict[tuple[str, str, str], list[metadata.EntryPoint]] = {}
    for ep in _entry_points():  # the same distribution can be visible twice (a checkout's egg-info + its install)
        groups.setdefault((normalize(distribution_name(ep)), ep.name, ep.value), []).append(ep)
    labels = {key: {key[1], f"{key[0]}:{key[1]}"} for key in groups}
    known = set().union(*labels.values()) if labels else set()
    for what, selectors in (("HARNESS_PLUGINS (--plugins)", only or set()),
                            ("HARNESS_DISABLE_PLUGINS (--disable-plugins)", disabled)):
        for name in checks.unmatched_selectors(selectors, known):
            installed = ", ".join(sorted({key[1] for key in groups})) or "(none)"
            problems.append(PluginProblem("", "", f"{what}: {name!r} matches no plugin entry point, so it selects "
                                                  f"nothing; installed entry points: {installed}"))
    loaded = []
    for key, eps in groups.items():
        if labels[key] & disabled or (only is not None and not labels[key] & only):
            continue
        ep = eps[0]
        package, version = distribution_name(ep), distribution_version(ep)
        try:
            obj = ep.load()
        except Exception as exc:  # an import error in someone else's package must not stop us
            problems.append(PluginProblem(ep.name, f"{package} {version}".strip(),
                                          f"failed to import ({one_line(exc)}); nothing from it is registered"))
            continue
        own, path = is_own(ep), editable_path(ep)
        rank = (0, "", ep.name) if own else (1, normalize(package), ep.name)
        loaded.append(_Plugin(obj, Source(ep.name, package, version, path, own), rank))
    return sorted(loaded, key=lambda p: p.rank)


def load_registry(
    extra_plugins: Sequence[object] = (),
    *,
    use_entry_points: bool = True,
    only: Iterable[str] | None = None,
    disable: Iterable[str] | None = None,
) -> Registry:
    """Load every plugin and collect its cells, tasks and executors (precedence: the module docstring).

    :param extra_plugins: plugin objects registered in-process, after entry points.
    :param only: entry-point names to load (default: ``HARNESS_PLUGINS`` or all).
    :param disable: entry-point names to skip (default: ``HARNESS_DISABLE_PLUGINS``).
    """
    only_set = set(only) if only is not None else _name_list(os.environ.get("HARNESS_PLUGINS"))
    disabled = set(disable) if disable is not None else (_name_list(os.environ.get("HARNESS_DISABLE_PLUGINS")) or set())
    only_set = None if only_set is None else {_selector(s) for s in only_set}
    disabled = {_selector(s) for s in disabled}

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    candidates = _discover(only_set, disabled, registry.problems) if use_entry_points else []
    for index, obj in enumerate([*_session_plugins, *extra_plugins]):
        name = getattr(obj, "__name__", None) or type(obj).__name__
        candidates.append(_Plugin(obj, Source(name, IN_PROCESS, ""), (2, "", f"{index:06d}")))

    ranks: dict[str, tuple] = {}
    sources: dict[str, Source] = {}
    for plugin in candidates:
        source = plugin.source
        if source.plugin in sources:  # two distributions with one entry-point name: qualify the later one
            name, n = f"{normalize(source.package)}:{source.plugin}", 2
            while name in sources:
                name, n = f"{normalize(source.package)}:{source.plugin}#{n}", n + 1
            source = Source(name, source.package, source.version, source.path, source.own)
        label = source.label
        for advice in checks.unmarked_hooks(pm, plugin.obj):
            registry.problems.append(PluginProblem(source.plugin, label, advice))
        try:
            pm.register(plugin.obj, name=source.plugin)
        except Exception as exc:
            registry.problems.append(PluginProblem(source.plugin, label, f"failed to register ({one_line(exc)}); "
                                                                         "nothing from it is registered"))
            continue
        sources[source.plugin] = source
        ranks[source.plugin] = plugin.rank
    for plugin_name, _hook, advice in checks.unknown_hooks(pm):
        registry.problems.append(PluginProblem(plugin_name, sources[plugin_name].label, advice))

    registry.plugins = list(sources.values())
    for hook_name, spec_type, into in (("register_cells", CellSpec, registry.cells),
                                       ("register_tasks", TaskSpec, registry.tasks),
                                       ("register_executors", ExecutorSpec, registry.executors)):
        impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(), key=lambda impl: ranks[impl.plugin_name])
        for impl in impls:
            _collect(impl.function, hook_name, spec_type, into, sources[impl.plugin_name], registry.problems)
    return registry


_KINDS = {CellSpec: "cell", TaskSpec: "task", ExecutorSpec: "executor"}


def _collect(hook: Callable, hook_name: str, spec_type: type, into: dict[str, Registered], source: Source,
             problems: list[PluginProblem]) -> None:
    """Call one plugin's hook and keep what it registers, unless the name is taken (earlier plugins win) or the
    hook raises (then nothing it registered is kept)."""
    kind = _KINDS[spec_type]
    mine: dict[str, Registered] = {}

    def register(spec: Any) -> None:
        if not isinstance(spec, spec_type):
            raise TypeError(f"register() expects a {spec_type.__name__}, got {type(spec).__name__}")
        if spec.name in mine:
            problems.append(PluginProblem(source.plugin, source.label, f"{kind} {spec.name!r} registered twice; "
                                                                      "the first registration stands"))
            return
        mine[spec.name] = Registered(spec, source)

    try:
        hook(register)
    except Exception as exc:
        dropped = f"the {kind}s it had registered ({', '.join(mine)}) are dropped" if mine else "it registered nothing"
        problems.append(PluginProblem(source.plugin, source.label, f"{hook_name} raised {one_line(exc)}; {dropped}"))
        return
    for name, registered in mine.items():
        if name in into:
            problems.append(PluginProblem(source.plugin, source.label, _clash(kind, name, into[name].source)))
            continue
        into[name] = registered


def _clash(kind: str, name: str, winner: Source) -> str:
    """Why a name was refused, naming the package that keeps it and how to choose the other."""
    if winner.own:
        return (f"{kind} {name!r} dropped: the name belongs to the built-in from {winner.label} (built-ins always win); "
                f"this plugin's other registrations stand; rename the {kind} to use it")
    if winner.package == IN_PROCESS:
        return (f"{kind} {name!r} dropped: plugin {winner.plugin!r} (in-process), added earlier, registered it first; "
                "this plugin's other registrations stand")
    return (f"{kind} {name!r} dropped: plugin {winner.plugin!r} ({winner.label}) registered it first (installed plugins "
            f"go in order of distribution name); this plugin's other registrations stand; to use this one instead, "
            f"add --disable-plugins {normalize(winner.package)}:{winner.plugin.rpartition(':')[2]}")
