"""copy's gate tables: per step (gates.csv) and per phase (copy_gates.csv), their sentences, and a tiny real run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness import CellSpec, RecurrentCell
from harness.cli import main
from harness.plugins.model import TaskModel
from harness.reports import plots
from harness.reports.results import read_run
from tasks import copy_gates
from tasks.copy_memory import SPEC as COPY

T, N, K, B = 4, 2, 3, 5  # delay, symbols to copy, alphabet, test sequences: 8 steps, H = K + 2 = 5
H = K + 2


class KnownGates(RecurrentCell):
    """Gates known from the input and the step. ``out`` is the one-hot input itself, so that a readout set to
    the identity predicts the input symbol (and blank for the delimiter, whose channel it drops).

    Top layer, per step t of a sequence numbered b in the batch (mean over H in brackets):

    * ``forget``: 0.5 + 0.01 t on every unit;
    * ``input``: units 0, .25, .5, .75, 1 (0.5) at a symbol, 0.1 elsewhere;
    * ``cell`` (the candidate): -1 at the delimiter, 0 elsewhere;
    * ``phase``: 0.3, a gate named like one of the table's own columns;
    * ``dwell``: the sequence's first symbol / 10, a name outside the vocabulary.

    The layer below holds 9 everywhere: the tables must show the top layer.
    """

    state_names = ("h",)

    def forward(self, x, state=None):
        """x: (T, B, H) one-hot -> out = x, (h (2, B, H),)."""
        return x, (x[-1:].repeat(2, 1, 1),)

    def gate_activations(self, x, state=None):
        """x: (T, B, H) -> name -> (2, T, B, H)."""
        steps, batch, units = x.shape
        t = torch.arange(steps, dtype=x.dtype).view(-1, 1, 1).expand(steps, batch, units)
        symbol = x[..., 1:K + 1].sum(-1, keepdim=True).expand(steps, batch, units)
        delimiter = x[..., K + 1:].expand(steps, batch, units)
        spread = torch.linspace(0, 1, units, dtype=x.dtype)
        first = (x[0] * torch.arange(units, dtype=x.dtype)).sum(-1).view(1, -1, 1).expand(steps, batch, units)
        top = {"forget": 0.5 + 0.01 * t, "input": symbol * spread + (1 - symbol) * 0.1, "cell": -delimiter,
               "phase": torch.full_like(x, 0.3), "dwell": first / 10}
        return {name: torch.stack([torch.full_like(x, 9.0), value]) for name, value in top.items()}


GATED = CellSpec("known-gates", "test cell with known gates", KnownGates, exposes_gates=True)


def known_model(task):
    head = task.make_head(H)
    with torch.no_grad():  # the identity readout: the logit of symbol s is the input's one-hot channel s
        head.out.weight.copy_(torch.eye(K + 1, H))
        head.out.bias.zero_()
    return TaskModel(head, KnownGates(H, H, num_layers=2)).train()


@pytest.fixture
def task():
    return COPY.build(T, 8, 0, {"n_symbols": K, "copy_len": N, "eval_size": B})


def test_phases_name_every_step_and_the_delay_counts_every_blank_before_the_delimiter():
    assert copy_gates.phases(T, N) == ["symbols"] * 2 + ["delay"] * 3 + ["delimiter"] + ["recall"] * 2
    assert copy_gates.phases(1, 3) == ["symbols"] * 3 + ["delimiter"] + ["recall"] * 3  # T = 1: no delay
    assert copy_gates.shown([0, 3, 4, 1], n_symbols=3) == ["_", "3", ">", "1"]


def test_step_table_holds_the_first_test_sequence_with_its_known_gates(task, monkeypatch):
    monkeypatch.setattr(copy_gates, "CHUNK", 2)  # 5 sequences read in chunks of 2, 2 and 1, joined in order
    model = known_model(task)
    tables = task.artifacts(model, GATED, torch.device("cpu"))
    assert model.training                                                    # training mode restored
    steps = tables["gates"]
    x = next(iter(task.eval_batches("test"))).x
    symbols = [str(s) for s in x[:N, 0].tolist()]
    assert list(steps.columns) == ["sequence", "position", "token", "phase", "target", "predicted",
                                   "forget", "input", "candidate", "phase_gate", "dwell"]
    assert steps.sequence.eq(0).all() and steps.position.tolist() == list(range(T + 2 * N))
    assert steps.phase.tolist() == copy_gates.phases(T, N)
    assert steps.token.tolist() == symbols + ["_"] * 3 + [">"] + ["_"] * 2
    assert steps.target.tolist() == ["_"] * (T + N) + symbols
    assert steps.predicted.tolist() == symbols + ["_"] * 6                  # the identity readout echoes the input
    assert steps.forget.tolist() == pytest.approx([0.5 + 0.01 * t for t in range(8)], abs=1e-6)
    assert steps.input.tolist() == pytest.approx([0.5, 0.5] + [0.1] * 6, abs=1e-6)
    assert steps.candidate.tolist() == pytest.approx([0] * 5 + [-1] + [0] * 2, abs=1e-6)
    assert steps.phase_gate.tolist() == pytest.approx([0.3] * 8, abs=1e-6)
    assert steps.dwell.tolist() == pytest.approx([x[0, 0].item() / 10] * 8, abs=1e-6)  # sequence 0's own


def test_phase_table_averages_each_phase_over_the_whole_test_batch(task, monkeypatch):
    monkeypatch.setattr(copy_gates, "CHUNK", 2)
    summary = task.artifacts(known_model(task), GATED, torch.device("cpu"))["copy_gates"]
    first = next(iter(task.eval_batches("test"))).x[0].double().mean().item()   # mean first symbol of the 5
    assert list(summary.columns) == ["gate", "symbols", "delay", "delimiter", "recall", "sequences"]
    assert summary.gate.tolist() == ["forget", "input", "candidate", "phase_gate", "dwell"]
    assert summary.sequences.eq(B).all()
    want = {"forget": [0.505, 0.53, 0.55, 0.565], "input": [0.5, 0.1, 0.1, 0.1], "candidate": [0, 0, -1, 0],
            "phase_gate": [0.3] * 4, "dwell": [first / 10] * 4}
    for row in summary.itertuples(index=False):
        assert [row.symbols, row.delay, row.delimiter, row.recall] == pytest.approx(want[row.gate], abs=1e-6), row.gate


def test_a_cell_without_gates_gets_no_tables(task):
    plain = CellSpec("plain", "no gates", KnownGates)
    assert task.artifacts(known_model(task), plain, torch.device("cpu")) == {}
    assert task.findings({}) == []                                           # no copy_gates.csv: nothing to say


def test_findings_say_the_forget_gate_over_the_delay_and_the_input_gate_at_symbols_and_blanks(task):
    summary = task.artifacts(known_model(task), GATED, torch.device("cpu"))["copy_gates"]
    summary.insert(0, "cell", "known-gates")                                 # as the runner writes it
    gru = pd.DataFrame({"cell": "g", "gate": ["candidate", "reset", "update"], "symbols": [0.0, 0.4, 0.25],
                        "delay": [0.0, 0.6, 0.875], "delimiter": 0.5, "recall": 0.5, "sequences": B})
    lines = task.findings({"copy_gates": pd.concat([summary, gru], ignore_index=True)})
    assert lines == [
        f"Gate means on the {B} test sequences (top layer, averaged over its hidden units; every phase in "
        "copy_gates.csv):",
        "  known-gates's forget gate averages 0.530 over the 3 blank steps of the delay; its input gate averages "
        "0.500 at the 2 symbols against 0.100 at the blanks.",
        "  g has no forget or input gate; at the blanks against at the symbols: reset 0.600 against 0.400, "
        "update 0.875 against 0.250.",
    ]
    no_delay = copy_gates.phase_table({"forget": torch.ones(3, 2), "input": torch.full((3, 2), 0.25)},
                                      copy_gates.phases(1, 1))
    assert math.isnan(no_delay.delay.iloc[0]) and no_delay.delimiter.iloc[0] == 1.0
    no_delay.insert(0, "cell", "c")
    assert copy_gates.sentences(no_delay, delay=1, copy_len=1)[1] == "  c's input gate averages 0.250 at the 1 symbol."


def test_tiny_copy_run_writes_gate_tables_for_lstm_only_and_plot_draws_them(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--cells", "lstm,rnn", "--task", "copy", "--steps", "6", "--seq-len", "3", "--hidden-size",
                 "8", "--batch-size", "8", "--log-every", "3", "--task-opt", "eval_size=16", "--task-opt",
                 "copy_len=4", "--no-progress", "--no-plots", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    steps, summary = pd.read_csv(out / "gates.csv"), pd.read_csv(out / "copy_gates.csv")
    assert set(steps.cell) == {"lstm"} and set(summary.cell) == {"lstm"}     # rnn exposes no gates
    assert steps.phase.tolist() == copy_gates.phases(3, 4)                   # one sequence, T + 2N = 11 steps
    assert summary.gate.tolist() == ["forget", "input", "output", "candidate", "learn", "remember", "use"]
    assert summary.sequences.eq(16).all()
    forget = summary.set_index("gate").at["forget", "delay"]
    assert f"lstm's forget gate averages {forget:.3f} over the 2 blank steps of the delay" in printed
    assert printed.index("lstm's forget gate") > printed.index("rnn did")   # after the verdicts
    assert not (out / "figures").exists()

    assert main(["plot", str(out)]) == 0
    assert (out / "figures" / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](figures/gates.png)" in (out / "report.md").read_text()
    fig = plots.gate_heatmap(read_run(out))
    unit = next(ax for ax in fig.axes if ax.images)
    np.testing.assert_allclose(unit.images[0].get_array(), steps[["forget", "input", "output"]].to_numpy().T)
    ticks = unit.get_xticklabels()
    assert [t.get_text() for t in ticks] == steps.token.astype(str).tolist() and ticks[0].get_rotation() == 0
    assert "sequence" in unit.get_xlabel()
    with pytest.raises(ValueError, match="sequence '3' is not in gates.csv"):
        plots.gate_heatmap(read_run(out), review="3")


def test_results_doc_names_every_column_of_both_copy_tables():
    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    section = text[text.index("## Gate tables"):text.index("## `bench.csv`")]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    assert set(copy_gates.STEP_COLUMNS) | set(copy_gates.SUMMARY_COLUMNS) <= documented
