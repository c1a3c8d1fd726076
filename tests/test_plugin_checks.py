"""Strict plugin checks: every plugin mistake that used to be silent is one line that says what was dropped."""

from __future__ import annotations

import types

from harness import CellSpec, hookimpl
from harness.plugins.registry import load_registry
from fake_cells import HandRNN


def _module(name: str, **functions) -> types.ModuleType:
    """A plugin module whose functions are defined 'in' it (their ``__module__`` is the module's name)."""
    module = types.ModuleType(name)
    for attr, fn in functions.items():
        fn.__module__ = name
        fn.__name__ = attr
        setattr(module, attr, fn)
    return module


def _boom():
    """A fresh hook function each time (``@hookimpl`` marks the function object itself)."""
    def register_cells(register):
        register(CellSpec(name="boomcell", description="never seen", factory=HandRNN))
    return register_cells


def warning_lines(err: str, word: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:") and word in line]


def test_a_misspelt_hook_is_reported_in_one_line(plugins, cli):
    plugins(_module("misspelt_plugin", register_cell=hookimpl(_boom())))
    code, out, err = cli("list")
    assert code == 0 and "boomcell" not in out
    lines = warning_lines(err, "misspelt_plugin")
    assert len(lines) == 1
    assert "hook 'register_cell' is not a harness hook, so it is never called" in lines[0]
    assert "did you mean 'register_cells'?" in lines[0]


def test_a_hook_without_hookimpl_is_reported(plugins, cli):
    plugins(_module("unmarked_plugin", register_cells=_boom()))
    code, out, err = cli("list")
    assert code == 0 and "boomcell" not in out
    lines = warning_lines(err, "unmarked_plugin")
    assert len(lines) == 1 and "'register_cells' is not decorated with @harness.hookimpl" in lines[0]


def test_a_misspelt_hook_without_hookimpl_is_reported_but_helpers_are_not():
    def register_all(register):  # a helper: not close enough to any hook's name to be blamed
        pass

    plugin = _module("sloppy_plugin", register_cell=_boom(), register_all=register_all)
    problems = [str(p) for p in load_registry([plugin]).problems]
    assert len(problems) == 1 and "'register_cell' is neither a harness hook nor decorated" in problems[0]
    assert "did you mean 'register_cells'?" in problems[0]


def test_an_unknown_plugins_name_is_reported(cli, monkeypatch):
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)
    code, out, err = cli("--plugins", "lstm,copy,lsmt", "list")
    assert code == 0 and "  lstm " in out
    lines = warning_lines(err, "'lsmt'")
    assert len(lines) == 1 and "matches no plugin entry point" in lines[0] and "installed entry points:" in lines[0]
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "gruu")
    _, _, err = cli("list")
    assert len(warning_lines(err, "HARNESS_DISABLE_PLUGINS (--disable-plugins): 'gruu' matches no")) == 1


def test_an_unknown_cell_points_at_the_plugin_warnings(plugins, cli, tmp_path):
    plugins(_module("misspelt_again", register_cell=hookimpl(_boom())))
    code, _, err = cli("run", "--cells", "boomcell", "--task", "adding", "--out", tmp_path / "r")
    assert code == 2
    errors = [line for line in err.splitlines() if not line.startswith("warning:")]
    assert errors == [errors[0]] and "unknown cell 'boomcell'" in errors[0] and "see the plugin warnings above" in errors[0]
    assert len(warning_lines(err, "register_cell")) == 1


def test_a_hook_that_raises_drops_exactly_what_it_registered():
    class HalfDone:
        @hookimpl
        def register_cells(self, register):
            register(CellSpec(name="half-a", description="registered before the error", factory=HandRNN))
            raise RuntimeError("optional dependency missing")

        @hookimpl
        def register_tasks(self, register):
            pass

    reg = load_registry([HalfDone()])
    assert "half-a" not in reg.cells
    lines = [str(p) for p in reg.problems]
    assert lines == ["plugin 'HalfDone' (in-process): register_cells raised RuntimeError: optional dependency "
                     "missing; the cells it had registered (half-a) are dropped"]


def test_a_name_registered_twice_by_one_plugin_keeps_the_first():
    class Twice:
        @hookimpl
        def register_cells(self, register):
            register(CellSpec(name="dup", description="first", factory=HandRNN))
            register(CellSpec(name="dup", description="second", factory=HandRNN))

    reg = load_registry([Twice()])
    assert reg.cells["dup"].spec.description == "first"
    assert [p.reason for p in reg.problems] == ["cell 'dup' registered twice; the first registration stands"]
