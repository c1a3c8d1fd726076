"""In-process test plugins: cells that misbehave on purpose, a well-behaved outsider, and an in-process executor."""

from __future__ import annotations

import torch
from torch import nn

from cells._lstm_parameters import LSTMParameters
from harness import CellSpec, RecurrentCell, hookimpl
from harness.contract.executors import ExecutorSpec


class HandRNN(RecurrentCell):
    """A hand-written tanh RNN: h_t = tanh(x_t W^T + h_{t-1} U^T + b). Subclasses break one thing each."""

    state_names = ("h",)

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.w = nn.Linear(input_size, hidden_size)
        self.u = nn.Linear(hidden_size, hidden_size, bias=False)
        self.training_calls = 0

    def forward(self, x, state=None):
        """x: (T, B, I) -> out (T, B, H), (h (1, B, H),)."""
        h = torch.zeros(x.shape[1], self.hidden_size, dtype=x.dtype, device=x.device) if state is None else state[0][0]
        outs = []
        for t in range(x.shape[0]):
            h = self.act(self.w(x[t]) + self.u(h))
            outs.append(h)
        if self.training and torch.is_grad_enabled():
            self.training_calls += 1
            self.misbehave()
        out = torch.stack(outs)
        return out, (out[-1:].clone(),)

    def act(self, z):
        return torch.tanh(z)

    def misbehave(self):
        pass


class NaNAfterThree(HandRNN):
    def forward(self, x, state=None):
        out, st = super().forward(x, state)
        if self.training_calls > 3:
            out = out * float("nan")
        return out, st


class Raising(HandRNN):
    def misbehave(self):
        raise RuntimeError("boom inside the plugin")


class InterruptOnThird(HandRNN):
    def misbehave(self):
        if self.training_calls == 3:
            raise KeyboardInterrupt


class OutsiderPlugin:
    """Registered in-process: a cell from outside the core."""

    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="outsider-rnn", description="hand-written tanh RNN from a test plugin",
                          factory=HandRNN, max_layers=1))


class MisbehavingPlugin:
    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="nan-cell", description="turns NaN at step 4", factory=NaNAfterThree, max_layers=1))
        register(CellSpec(name="raising-cell", description="raises in training", factory=Raising, max_layers=1))
        register(CellSpec(name="interrupt-cell", description="Ctrl-C at step 3", factory=InterruptOnThird, max_layers=1))


class RaisingHookPlugin:
    @hookimpl
    def register_cells(self, register):
        raise ImportError("optional dependency missing")


class HandLSTM(LSTMParameters):
    """nn.LSTM's equations by hand, on nn.LSTM's parameter layout (gate order i, f, g, o). One layer per call."""

    cell_name = "hand-lstm"
    order = (0, 1, 2, 3)
    """Which chunk of the pre-activations each of i, f, g, o reads; the swapped subclass gets it wrong."""

    def forward(self, x, state=None):
        """x: (T, B, I) -> out (T, B, H), (h, c) each (L, B, H)."""
        h0, c0 = state if state is not None else self.initial_state(x.shape[1], x)
        layer_in, hs, cs = x, [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(k)
            h, c, outs = h0[k], c0[k], []
            for t in range(x.shape[0]):
                z = (layer_in[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
                i, f, g, o = (z[j] for j in self.order)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            layer_in = torch.stack(outs)
            hs.append(h)
            cs.append(c)
        return layer_in, (torch.stack(hs), torch.stack(cs))


class SwappedGatesLSTM(HandLSTM):
    """Reads the input gate's pre-activation as the forget gate's and the other way round: fast to write, wrong."""

    order = (1, 0, 2, 3)
    calls = 0
    """Forward calls, all instances together: the bench test checks that a wrong cell is never timed."""

    def forward(self, x, state=None):
        type(self).calls += 1
        return super().forward(x, state)


class LSTMReferencePlugin:
    """Two hand-written LSTMs that declare ``lstm`` as their reference: one right, one with swapped gates."""

    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="hand-lstm", description="nn.LSTM by hand", factory=HandLSTM,
                          state_names=("h", "c"), reference="lstm"))
        register(CellSpec(name="swapped-lstm", description="input and forget gates swapped", factory=SwappedGatesLSTM,
                          state_names=("h", "c"), reference="lstm"))


class CountingExecutor:
    """Runs every unit in this process, in order, and counts them (an executor plugin, as a user would write)."""

    ran: list[str] = []

    def __init__(self, settings):
        self.settings = settings

    def run(self, units, work, done):
        for unit in units:
            CountingExecutor.ran.append(unit.label)
            done(work(unit))


class CountingPlugin:
    @hookimpl
    def register_executors(self, register):
        register(ExecutorSpec(name="counting", description="in-process, counts units", factory=CountingExecutor))
