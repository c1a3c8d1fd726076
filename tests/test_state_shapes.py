"""States of any shape: the declaration (``state_shapes()``), everything that reads states (the conformance kit, the
gradient measurement, stacking, the bench gate, ``harness run``), and the docs' matrix-state example, as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness import CellSpec, hookimpl
from harness.measurements import correctness
from harness.measurements.gradflow import state_gradient_norms
from harness.plugins import testing as kit
from harness.plugins.model import CellContractError, Stacked, TaskModel, build_cell, state_shapes, zero_state
from tasks import adding

from fake_cells import HandRNN

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DOC = ROOT / "docs" / "writing-a-cell-plugin.md"
CONTRACT_DOC = ROOT / "docs" / "cell-contract.md"
EXAMPLE_BLOCK = re.compile(r"<!-- example: (?P<name>\S+) -->\s*\n```[^\n]*\n(?P<body>.*?)\n```", re.DOTALL)
TINY = ["--steps", "4", "--seq-len", "3", "--hidden-size", "4", "--batch-size", "4", "--no-progress", "--no-plots"]


def example_source() -> str:
    return {m["name"]: m["body"] for m in EXAMPLE_BLOCK.finditer(PLUGIN_DOC.read_text())}["decay_attention.py"] + "\n"


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The docs page's ``decay_attention.py``, imported from a file holding exactly that block."""
    path = tmp_path_factory.mktemp("example") / "decay_attention.py"
    path.write_text(example_source())
    spec = importlib.util.spec_from_file_location("decay_attention", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spec(example) -> CellSpec:
    specs = []
    example.register_cells(specs.append)
    assert [s.name for s in specs] == ["decay-attention"]
    return specs[0]


def test_the_docs_matrix_state_example_passes_the_conformance_kit(spec):
    kit.check_cell(spec)


def test_the_contract_page_shows_the_example_as_it_is_tested():
    """docs/cell-contract.md quotes the example's declaration; the quote must be the tested code."""
    contract = CONTRACT_DOC.read_text()
    for line in ('    state_names = ("h", "S")',
                 '        return {"h": (self.hidden_size,), "S": (self.d_k, self.hidden_size)}   # trailing shapes after (L, B)'):
        assert line in example_source() and line in contract


def test_initial_state_and_zero_state_follow_the_declaration(example, spec):
    torch.manual_seed(0)
    cell = example.DecayAttention(3, 5, d_k=2)
    assert cell.state_shapes() == {"h": (5,), "S": (2, 5)}
    h, S = cell.initial_state(7, torch.zeros(1, dtype=torch.float64))
    assert h.shape == (1, 7, 5) and S.shape == (1, 7, 2, 5) and S.dtype == torch.float64 and not S.any()
    zeros = zero_state(spec, 1, 7, 5, torch.zeros(1), state_shapes(spec, cell, 5))
    assert [tuple(z.shape) for z in zeros] == [(1, 7, 5), (1, 7, 2, 5)]
    assert [tuple(z.shape) for z in zero_state(spec, 2, 3, 5, torch.zeros(1))] == [(2, 3, 5), (2, 3, 5)]  # no shapes


def test_a_plain_module_without_a_declaration_keeps_l_b_h():
    class Plain(torch.nn.Module):
        def forward(self, x, state=None):
            return x, (x[-1:],)

    spec = CellSpec(name="plain", description="", factory=Plain, state_names=("h", "c"))
    assert state_shapes(spec, Plain(), 6) == {"h": (6,), "c": (6,)}


def _perturbed_loss(model, task, batch, deltas):
    """The example's recurrence written out, with ``deltas[t]`` added to S_t as it is carried into step t + 1
    (step t's own output is h_t's: the measurement's derivative for a state other than h)."""
    cell = model.cell
    x = model.head.embed(batch.x)
    S = torch.zeros(x.shape[1], cell.d_k, cell.hidden_size, dtype=x.dtype)
    g = torch.sigmoid(cell.decay).unsqueeze(-1)
    hs = []
    for t in range(x.shape[0]):
        q, k = cell.qk(x[t]).chunk(2, dim=-1)
        S = g * S + k.unsqueeze(-1) * cell.v(x[t]).unsqueeze(1)
        hs.append(torch.tanh(torch.einsum("bk,bkv->bv", q, S)))
        S = S + deltas[t]
    return task.memory_loss(model.head.readout(torch.stack(hs)), batch.y)


def test_gradient_norms_of_a_matrix_state_are_frobenius_norms_over_batch_and_trailing_dims(example, spec):
    task = adding.SPEC.build(6, 3, 0)
    torch.manual_seed(0)
    head = task.make_head(4)
    model = TaskModel(head, example.DecayAttention(head.input_size, 4, d_k=3)).double()
    with torch.no_grad():
        model.cell.decay.fill_(2.0)  # keep most of the memory: a gradient that reaches back
    batch = task.train_batch(0)
    batch.y = batch.y.double()
    norms = state_gradient_norms(model, spec, task, batch, layers=1, hidden_size=4)
    assert set(norms) == {"h", "S"}
    deltas = torch.zeros(6, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_perturbed_loss(model, task, batch, deltas), deltas)
    expected = grad.flatten(1).norm(dim=1).numpy()                       # over (B, d_k, d_v) at each t
    assert norms["S"] == pytest.approx(expected, rel=1e-10, abs=1e-15)
    per_sample = grad.flatten(2).norm(dim=2)                             # (T, B): each sample's own norm
    assert norms["S"] == pytest.approx(per_sample.square().sum(1).sqrt().numpy(), rel=1e-10)
    assert norms["S"][-1] == 0 and 0 < norms["S"][0] < norms["S"][-2]  # the last S feeds no later step
    # h is not read back (h_is_readout): its gradient is the readout's own term, zero where adding scores nothing
    assert norms["h"][:-1] == pytest.approx([0.0] * 5) and norms["h"][-1] > 0


class TransposedState(HandRNN):
    """Declares S as (3, H) but returns it transposed: (H, 3)."""

    state_names = ("h", "S")

    def state_shapes(self):
        return {"h": (self.hidden_size,), "S": (3, self.hidden_size)}

    def forward(self, x, state=None):
        out, (h,) = super().forward(x, None if state is None else state[:1])
        S = out[-1].unsqueeze(-1).expand(-1, -1, 3)                       # (B, H, 3)
        return out, (h, S.unsqueeze(0))


BROKEN = CellSpec(name="transposed", description="returns S transposed", factory=TransposedState,
                  state_names=("h", "S"), max_layers=1)
SHAPE_LINE = ("transposed returned state 'S' of shape (1, 2, 4, 3), but its state_shapes() declares (L, B, 3, 4) "
              "= (1, 2, 3, 4)")


def test_a_state_that_disagrees_with_its_declaration_fails_the_kit_in_one_line():
    with pytest.raises(kit.ConformanceError) as failure:
        kit.check_cell(BROKEN)
    assert str(failure.value) == SHAPE_LINE


class BrokenPlugin:
    @hookimpl
    def register_cells(self, register):
        register(BROKEN)


def test_run_fails_only_that_cell_and_names_the_state_and_both_shapes(example, plugins, cli, tmp_path):
    plugins(BrokenPlugin(), example)
    code, out, err = cli("run", "--cells", "transposed,decay-attention,rnn", "--task", "adding", "--out",
                         tmp_path / "r", *TINY)
    assert code == 1
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert summary["status"].tolist() == ["failed", "ok", "ok"]
    grads = pd.read_csv(tmp_path / "r" / "gradnorms.csv")
    assert set(grads[grads["cell"] == "decay-attention"]["state"]) == {"h", "S"}
    expected = ("harness run: transposed failed: CellContractError: transposed returned state 'S' of shape "
                "(1, 2, 4, 3), but its state_shapes() declares (L, B, 3, 4) = (1, 2, 3, 4)")
    assert expected in err.splitlines() and sum("transposed" in line for line in err.splitlines()) == 1
    assert "Traceback" not in out + err


@pytest.mark.parametrize("declared, message", [
    ({"h": (5,)}, "state_shapes() must name exactly the states ('h', 'S'), got ['h']"),
    ({"h": (6,), "S": (2, 5)}, "declares h as (6,), but h must be (H,) = (5,)"),
    ({"h": (5,), "S": (2, 0)}, "gives state 'S' the shape (2, 0); write a tuple of positive integers"),
])
def test_a_bad_declaration_is_refused_in_one_line(example, spec, declared, message):
    class Declares(example.DecayAttention):
        def state_shapes(self):
            return declared

    bad = CellSpec(name="bad", description="", factory=Declares, state_names=("h", "S"), max_layers=1)
    with pytest.raises(CellContractError, match=re.escape(message)):
        state_shapes(bad, Declares(3, 5, d_k=2), 5)
    with pytest.raises(kit.ConformanceError, match=re.escape(message)):
        kit.check_shapes_and_state(bad, hidden_size=5)


def test_stacked_layers_join_shaped_states_along_l(example, spec):
    torch.manual_seed(0)
    cell = build_cell(spec, 3, 4, layers=2).double().eval()
    assert isinstance(cell, Stacked) and cell.state_shapes() == {"h": (4,), "S": (4, 4)}
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, (h, S) = cell(x)
    assert h.shape == (2, 2, 4) and S.shape == (2, 2, 4, 4)
    first, mid = cell(x[:2])
    second, (h2, S2) = cell(x[2:], mid)
    torch.testing.assert_close(torch.cat([first, second]), out)
    torch.testing.assert_close(S2, S)


def test_stacked_layers_must_declare_the_same_shapes(example):
    layers = [example.DecayAttention(3, 4, d_k=2), example.DecayAttention(4, 4, d_k=3)]
    with pytest.raises(CellContractError, match="layer 0 .* layer 1"):
        Stacked(layers, ("h", "S"), 0.0).state_shapes()


def test_the_bench_gate_checks_shaped_states(spec):
    cpu = torch.device("cpu")
    verdict = correctness.check(spec, 6, 3, 2, 4, 1, cpu, torch.float32)
    assert verdict.gate == correctness.PASSED, verdict.reason
    broken = correctness.check(BROKEN, 6, 2, 3, 4, 1, cpu, torch.float32)
    assert broken.gate == correctness.INCORRECT
    assert "returned state 'S' of shape (1, 2, 4, 3), but its state_shapes() declares" in broken.reason
    # Without h_is_readout the unread initial h is what a kernel that drops a state looks like: incorrect.
    strict = CellSpec(name="strict", description="", factory=spec.factory, state_names=("h", "S"), max_layers=1)
    verdict = correctness.check(strict, 6, 3, 2, 4, 1, cpu, torch.float32)
    assert verdict.gate == correctness.INCORRECT and "the initial h got no gradient" in verdict.reason


def test_hidden_multiple_is_enforced_in_one_line_and_the_kit_picks_multiples():
    def heads_of_four(input_size, hidden_size, num_layers=1, dropout=0.0):
        assert hidden_size % 4 == 0, "the kit must pick whole heads"
        return HandRNN(input_size, hidden_size, num_layers, dropout)

    spec = CellSpec(name="four-heads", description="", factory=heads_of_four, max_layers=1, hidden_multiple=4)
    with pytest.raises(CellContractError, match=r"^four-heads needs a hidden size that is a multiple of 4, got 6; "
                                                r"use e\.g\. --hidden-size 4$"):
        build_cell(spec, 3, 6)
    kit.check_cell(spec)  # the kit's sizes 3 and 4 become 4
    with pytest.raises(ValueError, match="hidden_multiple must be a positive integer"):
        CellSpec(name="zero", description="", factory=HandRNN, hidden_multiple=0)


class NeedsPackage:
    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="needs-pkg", description="computes with a package that is not installed",
                          factory=HandRNN, max_layers=1, requires=("surely-not-installed-dist",),
                          install="pip install 'rnn-harness[nothing]'"))


def test_a_cell_whose_package_is_missing_is_listed_and_skipped_in_one_line(plugins, cli, tmp_path):
    plugins(NeedsPackage())
    code, out, _ = cli("list")
    assert code == 0
    assert re.search(r"^  needs-pkg +computes with .* \(not installed: pip install 'rnn-harness\[nothing\]'\)  \[",
                     out, re.MULTILINE)
    code, out, err = cli("run", "--cells", "needs-pkg", "--task", "adding", "--out", tmp_path / "r", *TINY)
    assert code == 1
    line = ("harness run: needs-pkg skipped: needs-pkg needs the package surely-not-installed-dist, which is not "
            "installed; install it with: pip install 'rnn-harness[nothing]'")
    assert line in err.splitlines() and "Traceback" not in out + err


def test_list_shows_the_version_of_a_package_a_cell_computes_with(plugins, cli):
    class NeedsPytest:
        @hookimpl
        def register_cells(self, register):
            register(CellSpec(name="needs-pytest", description="computes with pytest", factory=HandRNN,
                              requires=("pytest",)))

    plugins(NeedsPytest())
    code, out, _ = cli("list")
    assert code == 0
    assert re.search(rf"^  needs-pytest +computes with pytest  \[pytest {re.escape(pytest.__version__)}; ", out,
                     re.MULTILINE)


def test_a_recurrent_cell_that_declares_nothing_gets_h_for_every_name_of_its_spec():
    """RecurrentCell's default state_shapes() reads the class's state_names; a spec may name more (an older plugin
    whose class kept the default ("h",)): the spec's names win, each (H,)."""
    spec = CellSpec(name="lstm-like", description="", factory=HandRNN, state_names=("h", "c"))
    assert state_shapes(spec, HandRNN(3, 5), 5) == {"h": (5,), "c": (5,)}
