"""Shared wrapper for the cells backed by ``torch.nn.RNN``, ``nn.LSTM`` and ``nn.GRU``."""

from __future__ import annotations

from torch import Tensor, nn

from harness.contract import RecurrentCell, State


class TorchRecurrent(RecurrentCell):
    """Adapts a ``torch.nn`` recurrent module (time-major) to the cell contract.

    ``self.rnn`` holds the torch module, so its parameters keep torch's names
    (``weight_ih_l0``, ``bias_hh_l1``, ...) under the ``rnn.`` prefix.
    """

    def __init__(self, module_type: type[nn.RNNBase], input_size: int, hidden_size: int,
                 num_layers: int = 1, dropout: float = 0.0, **kwargs):
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.rnn = module_type(input_size, hidden_size, num_layers=num_layers,
                               dropout=dropout if num_layers > 1 else 0.0, **kwargs)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x: (T, B, I); state: tuple of (L, B, H) -> out (T, B, H), final state."""
        if len(self.state_names) == 1:
            out, h = self.rnn(x, None if state is None else state[0])
            return out, (h,)
        out, hc = self.rnn(x, None if state is None else tuple(state))
        return out, tuple(hc)

    def layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_ih (G*H, I_l), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,))`` of one layer."""
        r = self.rnn
        return (getattr(r, f"weight_ih_l{layer}"), getattr(r, f"weight_hh_l{layer}"),
                getattr(r, f"bias_ih_l{layer}"), getattr(r, f"bias_hh_l{layer}"))
