"""The gradient-norm-over-time measurement against independent computations."""

import numpy as np
import pytest
import torch

from harness.measurements.gradflow import state_gradient_norms, summarise_curve
from harness.plugins.model import TaskModel, build_cell
from tasks import adding, copy_memory


def _model(registry, cell, task, H=5):
    torch.manual_seed(0)
    spec = registry.cell(cell)
    head = task.make_head(H)
    model = TaskModel(head, build_cell(spec, head.input_size, H)).double()
    return spec, model


def _perturbed_loss(model, task, batch, deltas):
    """Hand-written tanh RNN with an explicit perturbation added to every carried h_t."""
    rnn = model.cell.rnn
    x = model.head.embed(batch.x)
    h = torch.zeros(x.shape[1], rnn.hidden_size, dtype=x.dtype)
    hs = []
    for t in range(x.shape[0]):
        h = torch.tanh(x[t] @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T + rnn.bias_hh_l0) + deltas[t]
        hs.append(h)
    return task.memory_loss(model.head.readout(torch.stack(hs)), batch.y)  # what the measurement differentiates


@pytest.mark.parametrize("task", [adding.SPEC.build(8, 4, 0), copy_memory.SPEC.build(3, 4, 0)])
def test_rnn_norms_equal_autograd_on_explicit_perturbation(registry, task):
    spec, model = _model(registry, "rnn", task)
    batch = task.train_batch(0)
    batch.y = batch.y.double() if batch.y.is_floating_point() else batch.y
    norms = state_gradient_norms(model, spec, task, batch, layers=1, hidden_size=5)["h"]
    T, B = batch.x.shape[0], batch.x.shape[1]
    deltas = torch.zeros(T, B, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_perturbed_loss(model, task, batch, deltas), deltas)
    expected = grad.flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(norms, expected, rtol=1e-10, atol=1e-14)
    assert norms[0] > 0 and norms[0] < norms[-1]


def test_lstm_cell_state_norm_matches_finite_differences(registry):
    task = adding.SPEC.build(6, 3, 0)
    spec, model = _model(registry, "lstm", task, H=4)
    batch = task.train_batch(0)
    batch.y = batch.y.double()
    norms = state_gradient_norms(model, spec, task, batch, layers=1, hidden_size=4)
    assert set(norms) == {"h", "c"}
    # finite differences of the loss with respect to c_2, one coordinate at a time
    x = model.head.embed(batch.x)
    eps, t_probe = 1e-6, 2

    def loss_with_c_bump(b, j, eps_):
        state = None
        hs = []
        for t in range(x.shape[0]):
            _, state = model.cell(x[t:t + 1], state)
            if t == t_probe:
                c = state[1].clone()
                c[0, b, j] += eps_
                state = (state[0], c)
            hs.append(state[0][-1])
        return task.loss(model.head.readout(torch.stack(hs)), batch.y).item()

    with torch.no_grad():
        fd = np.array([[(loss_with_c_bump(b, j, eps) - loss_with_c_bump(b, j, -eps)) / (2 * eps)
                        for j in range(4)] for b in range(3)])
    assert norms["c"][t_probe] == pytest.approx(np.linalg.norm(fd), rel=1e-5)


def test_curve_summary_on_a_geometric_curve():
    T = 20
    norms = 0.5 ** np.arange(T - 1, -1, -1)        # grows towards the end: vanishes going back
    s = summarise_curve(norms)
    assert s.decay_per_step == pytest.approx(0.5)
    assert s.steps_to_10x == 4                      # 0.5**4 < 0.1 <= 0.5**3
    lstm_c = summarise_curve(np.append(0.5 ** np.arange(T - 2, -1, -1), 0.0))   # final c feeds nothing
    assert lstm_c.last == 1.0 and lstm_c.decay_per_step == pytest.approx(0.5)
    flat = summarise_curve(np.ones(10))
    assert flat.decay_per_step == pytest.approx(1.0) and np.isnan(flat.steps_to_10x)
    underflow = summarise_curve(np.append(np.zeros(5), 0.5 ** np.arange(T - 1, -1, -1)))   # float32 ran out
    assert underflow.first == 0.0 and underflow.decay_per_step == pytest.approx(0.5)
    floor = summarise_curve(np.append(np.full(50, 1.4e-43), 0.5 ** np.arange(T - 1, -1, -1)))  # stuck in denormals
    assert floor.decay_per_step == pytest.approx(0.5)
