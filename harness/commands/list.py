"""List every registered cell and task, with the plugin (package, version and, for an editable install,
the folder) it comes from, then every plugin and what it registered.

Plugin problems (a module that fails to import, a hook that raises or is never
called, a name taken by an earlier plugin, a --plugins name that selects
nothing) are printed on stderr, one line each, and do not change the exit
status. Use HARNESS_DISABLE_PLUGINS=a,b or HARNESS_PLUGINS=a,b (an allow-list),
or --disable-plugins / --plugins before the command, to choose which entry
points load. docs/writing-a-cell-plugin.md explains each warning.
"""

from __future__ import annotations

import json
import sys

from harness.plugins.registry import load_registry
from harness.plugins.provenance import requirement_versions

HELP = "list the installed cells, tasks, sweep executors and plugins"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def _cell_facts(spec) -> dict:
    return {"devices": list(spec.devices), "dtypes": [str(d).removeprefix("torch.") for d in spec.dtypes],
            "max_layers": spec.max_layers, "state": list(spec.state_names), "exposes_gates": spec.exposes_gates,
            "whole_sequence": spec.whole_sequence, "reference": spec.reference,
            "requires": requirement_versions(spec.requires), "install": spec.install,
            "hidden_multiple": spec.hidden_multiple, "h_is_readout": spec.h_is_readout}


def _cell_line_parts(spec, source) -> tuple[str, str]:
    """``(note, bracket)`` of a cell's line: what to install when a package it computes with is missing, and
    where it comes from: ``mambapy 1.2.0; rnn-harness 0.1.0`` (the package it computes with, then the plugin)."""
    versions = requirement_versions(spec.requires)
    missing = [name for name, version in versions.items() if version is None]
    note = f" (not installed: {spec.install or ', '.join(missing)})" if missing else ""
    packages = [f"{name} {version}" for name, version in versions.items() if version is not None]
    return note, "; ".join([*packages, str(source)])


def main(args) -> int:
    registry = load_registry()
    for problem in registry.problems:  # stderr in both forms, so that a script parsing --json still shows them
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        data = {
            "cells": [{"name": n, "description": r.spec.description, **r.source.as_dict(), **_cell_facts(r.spec)}
                      for n, r in sorted(registry.cells.items())],
            "tasks": [{"name": n, "description": r.spec.description, **r.source.as_dict()}
                      for n, r in sorted(registry.tasks.items())],
            "executors": [{"name": n, "description": r.spec.description, **r.source.as_dict(),
                           "available": r.spec.unavailable_reason() is None}
                          for n, r in sorted(registry.executors.items())],
            "plugins": [{**s.as_dict(), "builtin": s.own, **registry.registered_by(s.plugin)}
                        for s in registry.plugins],
            "problems": [{"plugin": p.plugin, "package": p.package, "reason": p.reason, "line": str(p)}
                         for p in registry.problems],
        }
        print(json.dumps(data, indent=2))
        return 0
    for title, entries in (("cells", registry.cells), ("tasks", registry.tasks), ("executors", registry.executors)):
        print(f"{title}:")
        if not entries:
            print("  (none)")
        width = max((len(n) for n in entries), default=0)
        for name, reg in sorted(entries.items()):
            missing = reg.spec.unavailable_reason() if title == "executors" else None
            note, bracket = f" (not installed: {reg.spec.install})" if missing else "", str(reg.source)
            if title == "cells":
                note, bracket = _cell_line_parts(reg.spec, reg.source)
            print(f"  {name:<{width}}  {reg.spec.description}{note}  [{bracket}]")
    print("plugins:")
    width = max((len(s.plugin) for s in registry.plugins), default=0)
    for source in registry.plugins:
        made = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in registry.registered_by(source.plugin).items())
        print(f"  {source.plugin:<{width}}  {source}{' (built-in)' if source.own else ''}  -> {made or 'nothing'}")
    return 0
