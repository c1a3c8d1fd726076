"""Strict plugin checks: hooks that would never be called, and plugin names that select nothing.

pluggy silently ignores a function that is not marked ``@hookimpl``, and keeps
a marked one whose name no hook spec knows until ``check_pending`` is asked.
Either mistake means a plugin's cells never appear without a word, so the
registry reports both, one line each, when it loads the plugins.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Iterable

import pluggy

CLOSE = 0.85
"""How alike a name must be to a hook's to be taken for a misspelling (``register_cell``: 0.96; ``register_all``: 0.77)."""


def spec_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, caller in vars(pm.hook).items()
                  if not name.startswith("_") and caller.spec is not None)


def _suggestion(name: str, hooks: list[str]) -> str:
    close = difflib.get_close_matches(name, hooks, n=1, cutoff=CLOSE)
    return f"did you mean {close[0]!r}? " if close else ""


def unknown_hooks(pm: pluggy.PluginManager) -> list[tuple[str, str, str]]:
    """``(plugin name, hook name, advice)`` for every ``@hookimpl`` whose name no spec knows (what
    ``PluginManager.check_pending`` raises for, collected instead of raised)."""
    hooks = spec_names(pm)
    found = []
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            if not impl.optionalhook:
                found.append((impl.plugin_name, name, f"hook {name!r} is not a harness hook, so it is never called; "
                              f"{_suggestion(name, hooks)}the hooks are {', '.join(hooks)}"))
    return found


def unmarked_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Advice for each function of ``plugin`` named like a hook (exactly or nearly) but not marked ``@hookimpl``.

    Only functions defined by the plugin itself count (a module's own functions, an object's class
    methods), so that a helper imported from elsewhere is never blamed.
    """
    hooks = spec_names(pm)
    if inspect.ismodule(plugin):
        members = [(n, f) for n, f in vars(plugin).items()
                   if inspect.isfunction(f) and f.__module__ == plugin.__name__]
    else:
        members = [(n, f) for n, f in vars(type(plugin)).items() if inspect.isfunction(f)]
    advice = []
    for name, _ in members:
        if name.startswith("_") or pm.parse_hookimpl_opts(plugin, name) is not None:
            continue
        if name in hooks:
            advice.append(f"{name!r} is not decorated with @harness.hookimpl, so it is never called; add the decorator")
        elif difflib.get_close_matches(name, hooks, n=1, cutoff=CLOSE):
            advice.append(f"{name!r} is neither a harness hook nor decorated with @harness.hookimpl, so it is never "
                          f"called; {_suggestion(name, hooks)}(decorate it with @harness.hookimpl)")
    return advice


def unmatched_selectors(selectors: Iterable[str], names: Iterable[str]) -> list[str]:
    """The selectors (entry-point names, or ``DIST:NAME``) that match none of ``names``."""
    known = set(names)
    return sorted(s for s in selectors if s not in known)
