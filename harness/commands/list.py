"""List every registered cell and task, with the plugin (package and version) it comes from.

Plugins that failed to load are listed after, one line each. Use
HARNESS_DISABLE_PLUGINS=a,b or HARNESS_PLUGINS=a,b (an allow-list) to choose
which entry points load.
"""

from __future__ import annotations

import json
import sys

from harness.registry import load_registry

HELP = "list the installed cells, tasks and plugins"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def _cell_facts(spec) -> dict:
    return {"devices": list(spec.devices), "dtypes": [str(d).removeprefix("torch.") for d in spec.dtypes],
            "max_layers": spec.max_layers, "state": list(spec.state_names), "exposes_gates": spec.exposes_gates,
            "whole_sequence": spec.whole_sequence}


def main(args) -> int:
    registry = load_registry()
    if args.json:
        data = {
            "cells": [{"name": n, "description": r.spec.description, "plugin": r.source.plugin,
                       "package": r.source.package, "version": r.source.version, **_cell_facts(r.spec)}
                      for n, r in sorted(registry.cells.items())],
            "tasks": [{"name": n, "description": r.spec.description, "plugin": r.source.plugin,
                       "package": r.source.package, "version": r.source.version}
                      for n, r in sorted(registry.tasks.items())],
            "problems": [{"plugin": p.plugin, "package": p.package, "reason": p.reason} for p in registry.problems],
        }
        print(json.dumps(data, indent=2))
        return 0
    for title, entries in (("cells", registry.cells), ("tasks", registry.tasks)):
        print(f"{title}:")
        if not entries:
            print("  (none)")
        width = max((len(n) for n in entries), default=0)
        for name, reg in sorted(entries.items()):
            print(f"  {name:<{width}}  {reg.spec.description}  [{reg.source}]")
    for problem in registry.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
