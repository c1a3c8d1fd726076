"""Gradient norm over time: how much of the loss's signal reaches each step.

For every step ``t`` we record ``||dL/dh_t||`` (and ``||dL/dc_t||`` for
LSTM-like cells), where ``h_t`` is the state the recurrence carries after step
``t`` and the derivative is the total one: through the readout at ``t`` *and*
through every later step.

How: the cell is unrolled one step per call (``T = 1``), each call receiving
the previous call's state. The readout reads the top layer of each carried
``h_t`` (the contract guarantees ``out[t] == h_t[-1]``), so every path from
``h_t`` to the loss runs through that one tensor, and ``autograd.grad`` on it
is the total derivative. This works for any cell that accepts an initial
state, fused whole-sequence kernels included.

For stacked cells the norms are those of the top layer's state. A norm is the
Frobenius norm over ``(B, ...)`` of the gradient of the batch-mean loss: over
the batch and every trailing dimension the cell declares for that state
(``(B, H)`` for an ``(L, B, H)`` state, ``(B, D, N)`` for an SSM state). With
``g_b`` the gradient of sample ``b``'s own loss, that is
``sqrt(sum_b ||g_b||_F^2) / B``: the per-sample norms combined in quadrature,
scaled by the batch mean.

The loss differentiated is ``Task.memory_loss``: the whole loss unless the
task says which part needs memory (for ``copy``: the recall steps only, so that
the blank steps' own readout terms do not mask how much of the recall signal
reaches step ``t``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from harness.contract.cells import CellSpec
from harness.contract.tasks import Batch, Task
from harness.plugins.model import TaskModel, check_step_output, state_shapes


def state_gradient_norms(model: TaskModel, spec: CellSpec, task: Task, batch: Batch,
                         layers: int, hidden_size: int) -> dict[str, np.ndarray]:
    """-> state name -> ``(T,)`` array of ``||dL/d state_t||`` (top layer, Frobenius over ``(B, ...)``), ``t = 0..T-1``."""
    was_training = model.training
    model.eval()  # no dropout: the measurement must be repeatable
    try:
        x = model.head.embed(batch.x)                       # (T, B, I)
        T, B = x.shape[:2]
        shapes = state_shapes(spec, model.cell, hidden_size)
        state = tuple(x.new_zeros((layers, B, *shapes[n])) for n in spec.state_names)
        carried: list[tuple[Tensor, ...]] = []
        for t in range(T):
            out, state = model.cell(x[t:t + 1], state)
            if t == 0:
                check_step_output(spec, out, state, 1, B, hidden_size, layers, shapes)
            state = tuple(state)
            carried.append(state)
        h_top = torch.stack([s[0][-1] for s in carried])    # (T, B, H): readout reads the carried state
        pred = model.head.readout(h_top)
        loss = task.memory_loss(pred, batch.y)
        flat = [s for st in carried for s in st]
        grads = torch.autograd.grad(loss, flat, allow_unused=True)
    finally:
        model.train(was_training)
    n = len(spec.state_names)
    norms: dict[str, np.ndarray] = {}
    for k, name in enumerate(spec.state_names):
        per_t = []
        for t in range(T):
            g = grads[t * n + k]
            per_t.append(0.0 if g is None else g[-1].detach().double().norm().item())  # over (B, ...)
        norms[name] = np.asarray(per_t)
    return norms


@dataclass(frozen=True)
class CurveSummary:
    """One number (or three) for a gradient-norm curve."""

    first: float           # ||dL/d s_0||
    last: float            # ||dL/d s_t|| at the last t where it is non-zero (normally T-1)
    decay_per_step: float  # (first / last) ** (1 / t_last) over the non-zero norms: < 1 vanishing, > 1 exploding
    steps_to_10x: float    # steps back from the peak until the norm is 10x smaller; nan if it never is


MEASURABLE = float(np.finfo(np.float32).tiny)  # 1.18e-38: float32's smallest normal number


def summarise_curve(norms: np.ndarray) -> CurveSummary:
    """Summarise ``||dL/d s_t||`` over ``t`` (see :class:`CurveSummary`).

    ``last`` is the last *non-zero* norm: the final ``c`` of an LSTM feeds nothing
    after it (the readout reads ``h``), so its gradient is exactly 0 there. Norms
    below :data:`MEASURABLE` (0 or float32 denormals) are left out of the decay.
    """
    norms = np.asarray(norms, dtype=float)
    first = float(norms[0]) if len(norms) else float("nan")
    positive = np.nonzero(norms >= MEASURABLE)[0]
    if len(positive) == 0:
        return CurveSummary(first, 0.0, float("nan"), float("nan"))
    t_last = int(positive[-1])
    last = float(norms[t_last])
    # Over a long sequence a vanishing gradient leaves float32's normal range at the first steps: it sinks into
    # denormals, where it stops shrinking (a flat floor near 1e-43), then rounds to 0. The decay is measured over
    # the steps where the norm is still a normal float32, not over that floor.
    t_first = int(positive[0])
    if t_last == t_first or not math.isfinite(last):
        decay = float("nan")
    else:
        decay = (float(norms[t_first]) / last) ** (1.0 / (t_last - t_first))
    peak = int(np.argmax(norms))
    below = np.nonzero(norms[:peak + 1][::-1] < norms[peak] / 10.0)[0]
    steps = float(below[0]) if len(below) else float("nan")
    return CurveSummary(first, last, decay, steps)
