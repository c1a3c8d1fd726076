"""``lfru-lstm``: one step worked out by hand, gradients against finite differences, the gate view, and
exactly where it departs from the textbook LSTM. (The conformance kit runs in ``test_cells_contract.py``.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from cells.lfru_lstm import GATE_NAMES, LFRULSTM
from harness.plugins.model import Stacked, build_cell


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _hand_cell() -> LFRULSTM:
    """I = 1, H = 2, float64, with the weights written out below (row blocks n, i, f, v)."""
    cell = LFRULSTM(1, 2).double()
    t = lambda values: torch.tensor(values, dtype=torch.float64)   # not float32: 0.1 must stay 0.1 to 1e-12
    with torch.no_grad():
        cell.weight_hh.copy_(t([[0.1, 0.2], [-0.3, 0.4],       # W_n, STM columns
                                [0.5, -0.1], [0.2, 0.3],       # W_i
                                [-0.4, 0.6], [0.1, -0.2],      # W_f
                                [0.3, 0.3], [-0.5, 0.1]]))     # W_v
        cell.weight_ih.copy_(t([[0.3], [-0.6], [0.8], [0.1], [-0.2], [0.5], [0.4], [0.7]]))  # E column
        cell.bias.copy_(t([0.05, -0.05, 0.1, 0.0, 1.0, -1.0, 0.0, 0.2]))
        cell.weight_u.copy_(t([[0.9, 0.0], [0.5, -1.2]]))    # not symmetric: W_u (f*LTM), not its transpose
        cell.bias_u.copy_(t([0.1, -0.3]))
    return cell


def test_one_step_matches_the_equations_worked_by_hand():
    # E = 0.5, STM_0 = (0.2, -0.4), LTM_0 = (1.0, -0.5). Each pre-activation is W [STM, E] + b, unit by unit:
    #   n: 0.1*0.2 + 0.2*-0.4 + 0.3*0.5 + 0.05 = 0.14        -0.3*0.2 + 0.4*-0.4 - 0.6*0.5 - 0.05 = -0.57
    #   i: 0.5*0.2 - 0.1*-0.4 + 0.8*0.5 + 0.1  = 0.64         0.2*0.2 + 0.3*-0.4 + 0.1*0.5 + 0.0  = -0.03
    #   f: -0.4*0.2 + 0.6*-0.4 - 0.2*0.5 + 1.0 = 0.58         0.1*0.2 - 0.2*-0.4 + 0.5*0.5 - 1.0  = -0.65
    #   v: 0.3*0.2 + 0.3*-0.4 + 0.4*0.5 + 0.0  = 0.14        -0.5*0.2 + 0.1*-0.4 + 0.7*0.5 + 0.2  = 0.41
    N = [math.tanh(0.14), math.tanh(-0.57)]
    i = [sig(0.64), sig(-0.03)]
    f = [sig(0.58), sig(-0.65)]
    V = [sig(0.14), sig(0.41)]
    kept = [f[0] * 1.0, f[1] * -0.5]                                  # forget gate: f * LTM_0
    learn = [i[0] * N[0], i[1] * N[1]]                                # learn gate: i * N
    ltm = [kept[0] + learn[0], kept[1] + learn[1]]                    # remember gate
    U = [math.tanh(0.9 * kept[0] + 0.0 * kept[1] + 0.1),              # use: tanh(W_u (f * LTM_0) + b_u)
         math.tanh(0.5 * kept[0] - 1.2 * kept[1] - 0.3)]
    stm = [U[0] * V[0], U[1] * V[1]]                                  # use gate = new STM
    assert stm == pytest.approx([0.315370, 0.133766], abs=1e-6)      # the same numbers, rounded, for the reader
    assert ltm == pytest.approx([0.732139, -0.425310], abs=1e-6)

    cell = _hand_cell()
    x = torch.tensor([[[0.5]]], dtype=torch.float64)                  # (T, B, I) = (1, 1, 1)
    state = (torch.tensor([[[0.2, -0.4]]], dtype=torch.float64), torch.tensor([[[1.0, -0.5]]], dtype=torch.float64))
    out, (h, c) = cell(x, state)
    expected = {"learn": learn, "forget": f, "remember": ltm, "use": stm, "input": i, "cell": N, "output": V}
    torch.testing.assert_close(out[0, 0], torch.tensor(stm, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(h[0, 0], torch.tensor(stm, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(c[0, 0], torch.tensor(ltm, dtype=torch.float64), rtol=0, atol=1e-12)
    gates = cell.gate_activations(x, state)
    assert tuple(gates) == GATE_NAMES
    for name, values in expected.items():
        torch.testing.assert_close(gates[name][0, 0, 0], torch.tensor(values, dtype=torch.float64),
                                   rtol=0, atol=1e-12, msg=name)


def test_gradients_of_a_two_layer_stack_match_finite_differences():
    """Beyond the kit's one-layer check: two layers stacked by the harness, a random (h, c), four steps."""
    torch.manual_seed(0)
    cell = build_cell(_spec(), 2, 3, layers=2).double().eval()
    assert isinstance(cell, Stacked)
    names, params = zip(*((n, p.detach().clone().requires_grad_(True)) for n, p in cell.named_parameters()))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    h0, c0 = (torch.randn(2, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True) for _ in range(2))

    def run(x, h0, c0, *values):
        out, (h, c) = functional_call(cell, dict(zip(names, values)), (x, (h0, c0)))
        return out, h, c

    assert torch.autograd.gradcheck(run, (x, h0, c0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_gate_view_is_the_cell_it_describes(layers):
    torch.manual_seed(0)
    cell = build_cell(_spec(), 3, 4, layers=layers).double().eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 2, 3, dtype=torch.float64, generator=gen)
    state = tuple(torch.randn(layers, 2, 4, dtype=torch.float64, generator=gen) for _ in range(2))
    out, (h, c) = cell(x, state)
    gates = cell.gate_activations(x, state)
    assert all(g.shape == (layers, 6, 2, 4) for g in gates.values())
    torch.testing.assert_close(gates["use"][-1], out)                                # use gate output = STM_t = out
    torch.testing.assert_close(gates["remember"][:, -1], c)                          # remember gate = LTM_T
    torch.testing.assert_close(gates["learn"], gates["input"] * gates["cell"])
    assert ((gates["forget"] > 0) & (gates["forget"] < 1)).all()
    # The use gate reads the memory that survived forgetting, f_t * LTM_{t-1}, through its own layer:
    top = cell.layers[-1] if layers > 1 else cell
    ltm_prev = torch.cat([state[1][-1:], gates["remember"][-1, :-1]])               # LTM_{t-1}, (T, B, H)
    U = torch.tanh((gates["forget"][-1] * ltm_prev) @ top.weight_u.T + top.bias_u)
    torch.testing.assert_close(gates["output"][-1] * U, out)


def test_equals_the_textbook_lstm_exactly_where_the_docs_say():
    """With the candidate N (the LSTM's g) switched off, W_u = identity and b_u = 0, both cells compute
    h_t = o * tanh(f * c_{t-1}) and agree; switch the candidate back on and they part, because the textbook
    output reads c_t = f * c_{t-1} + i * g while the use gate still reads f * c_{t-1}."""
    from cells.lstm import TorchLSTM
    torch.manual_seed(0)
    I, H = 3, 4
    lstm = TorchLSTM(I, H).double()
    lfru = LFRULSTM(I, H).double()

    def copy_weights(zero_candidate: bool) -> None:
        r = lstm.rnn
        with torch.no_grad():
            if zero_candidate:
                for p in (r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0):
                    p[2 * H:3 * H] = 0
            order = lambda t: torch.cat([t[2 * H:3 * H], t[:H], t[H:2 * H], t[3 * H:]])   # i,f,g,o -> n,i,f,v
            lfru.weight_ih.copy_(order(r.weight_ih_l0))
            lfru.weight_hh.copy_(order(r.weight_hh_l0))
            lfru.bias.copy_(order(r.bias_ih_l0 + r.bias_hh_l0))
            lfru.weight_u.copy_(torch.eye(H))
            lfru.bias_u.zero_()

    x = torch.randn(7, 2, I, dtype=torch.float64)
    state = (torch.randn(1, 2, H, dtype=torch.float64), torch.randn(1, 2, H, dtype=torch.float64))
    copy_weights(zero_candidate=True)
    torch.testing.assert_close(lfru(x, state)[0], lstm(x, state)[0])
    torch.manual_seed(1)
    lstm = TorchLSTM(I, H).double()
    copy_weights(zero_candidate=False)
    assert (lfru(x, state)[0] - lstm(x, state)[0]).abs().max() > 1e-3


def test_parameter_count_and_initial_range():
    """4H(I + H + 1) + H(H + 1): one bias per gate, plus the use gate's H x H layer. (nn.LSTM: 4H(I + H + 2).)"""
    I, H = 5, 7
    torch.manual_seed(0)
    cell = LFRULSTM(I, H)
    assert sum(p.numel() for p in cell.parameters()) == 4 * H * (I + H + 1) + H * (H + 1)
    bound = 1 / math.sqrt(H)
    for name, p in cell.named_parameters():
        assert p.abs().max() <= bound and p.std() > bound / 4, name


def test_dropout_acts_between_stacked_layers_in_training_only():
    torch.manual_seed(0)
    cell = build_cell(_spec(), 3, 16, layers=2, dropout=0.5)
    x = torch.randn(5, 4, 3)
    cell.train()
    assert not torch.equal(cell(x)[0], cell(x)[0])
    cell.eval()
    torch.testing.assert_close(cell(x)[0], cell(x)[0], rtol=0, atol=0)


def _spec():
    from cells.lfru_lstm import SPEC
    return SPEC
