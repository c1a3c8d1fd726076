"""In-process test plugins: cells that misbehave on purpose, and a well-behaved outsider."""

from __future__ import annotations

import torch
from torch import nn

from harness import CellSpec, RecurrentCell, hookimpl


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
