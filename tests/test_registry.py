"""Plugins: entry points, in-process registration, and plugins that fail."""

import textwrap
from importlib import metadata

from harness.plugins.registry import load_registry
from fake_cells import OutsiderPlugin, RaisingHookPlugin


def test_builtins_register_through_entry_points():
    reg = load_registry()
    for cell in ("rnn", "lstm", "gru"):
        assert reg.cells[cell].source.package == "rnn-harness"
        assert reg.cells[cell].source.version
    assert {"copy", "adding"} <= set(reg.tasks)


def test_a_cell_from_an_outside_entry_point_is_listed_and_runs(tmp_path, monkeypatch, cli):
    (tmp_path / "outside_plugin.py").write_text(textwrap.dedent('''
        from cells.rnn import VanillaRNN
        from harness import CellSpec, hookimpl

        @hookimpl
        def register_cells(register):
            register(CellSpec(name="outside", description="an RNN from outside the core", factory=VanillaRNN))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    real = metadata.entry_points
    fake = metadata.EntryPoint("outside", "outside_plugin", "harness")
    monkeypatch.setattr("harness.plugins.registry._entry_points", lambda: [*real(group="harness"), fake])
    code, out, _ = cli("list")
    assert code == 0 and "outside" in out and "an RNN from outside the core" in out
    code, out, err = cli("run", "--cells", "outside", "--task", "adding", "--steps", "3", "--seq-len", "4",
                         "--hidden-size", "4", "--out", tmp_path / "run", "--no-progress")
    assert code == 0, err
    assert "outside" in (tmp_path / "run" / "summary.csv").read_text()


def test_a_plugin_that_fails_to_import_is_one_line_and_skipped(monkeypatch, cli):
    real = metadata.entry_points
    broken = metadata.EntryPoint("broken", "no_such_module_anywhere", "harness")
    monkeypatch.setattr("harness.plugins.registry._entry_points", lambda: [broken, *real(group="harness")])
    code, out, err = cli("list")
    assert code == 0 and "lstm" in out
    lines = [l for l in err.splitlines() if "broken" in l]
    assert len(lines) == 1 and "failed to import" in lines[0] and "no_such_module_anywhere" in lines[0]


def test_in_process_plugins_and_hooks_that_raise(plugins):
    plugins(OutsiderPlugin(), RaisingHookPlugin())
    reg = load_registry()
    assert reg.cells["outsider-rnn"].source.package == "in-process"
    assert any("optional dependency missing" in str(p) for p in reg.problems)
    assert "lstm" in reg.cells


def test_duplicate_names_are_refused_not_overwritten(plugins):
    from cells.rnn import VanillaRNN
    from harness import CellSpec, hookimpl

    class Impostor:
        @hookimpl
        def register_cells(self, register):
            register(CellSpec(name="lstm", description="not really", factory=VanillaRNN))

    plugins(Impostor())
    reg = load_registry()
    assert reg.cells["lstm"].spec.description != "not really"
    lines = [str(p) for p in reg.problems]
    assert len(lines) == 1 and "cell 'lstm' dropped" in lines[0] and "built-in from rnn-harness" in lines[0]
    assert "(in-process)" in lines[0]


def test_disable_and_allow_list(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "gru")
    assert "gru" not in load_registry().cells
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS")
    monkeypatch.setenv("HARNESS_PLUGINS", "lstm,copy")
    reg = load_registry()
    assert set(reg.cells) == {"lstm"} and set(reg.tasks) == {"copy"}
