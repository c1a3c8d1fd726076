"""The harness's state-carrying protocol (``Task.carries_state``), on a tiny fake stream task.

``echo``: B streams of random symbols; the target at every step is the input one step earlier, so the target at
the start of window k is the last input of window k - 1. Only a state carried across windows can predict it.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import Batch, CellSpec, Task, TaskHead, TaskOption, TaskSpec, hookimpl
from harness.contract import seeding
from harness.plugins.model import TaskModel
from harness.run.execute import run
from harness.run.runner import evaluate

K = 4            # symbols
IGNORE = -100


class EchoHead(TaskHead):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.input_size = K
        self.out = nn.Linear(hidden_size, K)

    def embed(self, x):
        """x: (T, B) -> (T, B, K) one-hot."""
        return F.one_hot(x, K).to(self.out.weight.dtype)

    def readout(self, h):
        """h: (T, B, H) -> (T, B, K) logits."""
        return self.out(h)


class EchoTask(Task):
    """Windows of T steps over B fixed random streams; y_t = x_{t-1} (the first target of a stream is ignored)."""

    name = "echo"
    baseline = math.log(K)
    accuracy_name = "echo accuracy"

    def __init__(self, cfg):
        self.T, self.B = cfg.seq_len, cfg.batch_size
        self.carries_state = cfg.options["carry"]
        g = seeding.generator(cfg.seed, seeding.TRAIN)
        self.train = torch.randint(0, K, (cfg.options["length"], self.B), generator=g)         # (N, B)
        self.val = torch.randint(0, K, (cfg.options["length"], 4), generator=seeding.generator(cfg.seed, seeding.VAL))

    def make_head(self, hidden_size):
        return EchoHead(hidden_size)

    @staticmethod
    def targets(stream):
        """(N, B) inputs -> (N, B) targets: the previous input; the stream's first step has none."""
        y = torch.roll(stream, 1, dims=0)
        y[0] = IGNORE
        return y

    def train_batch(self, step):
        n = self.train.shape[0] // self.T
        k = step % n
        return Batch(self.train[k * self.T:(k + 1) * self.T], self.targets(self.train)[k * self.T:(k + 1) * self.T])

    def eval_batches(self, split):
        y = self.targets(self.val)
        for start in range(0, self.val.shape[0], self.T):
            yield Batch(self.val[start:start + self.T], y[start:start + self.T])

    def loss(self, pred, y):
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1), ignore_index=IGNORE)

    def n_predicted(self, y):
        return int((y != IGNORE).sum())

    def metrics(self, pred, y):
        real = y != IGNORE
        right = (pred.argmax(-1) == y) & real
        first = int(right[0].sum()) / max(1, int(real[0].sum()))                          # window starts only
        return {"accuracy": int(right.sum()) / int(real.sum()), "start_accuracy": first}


RECORDS: list[dict] = []


class RecordingRNN(nn.Module):
    """A tanh RNN that records, for every training call, the state it was given and the state it returned."""

    state_names = ("h",)

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, num_layers)

    def forward(self, x, state=None):
        out, h = self.rnn(x, None if state is None else state[0])
        if self.training and torch.is_grad_enabled():
            given = None if state is None else state[0]
            RECORDS.append({"given": None if given is None else given.clone(),
                            "given_grad_fn": None if given is None else given.grad_fn,
                            "given_requires_grad": None if given is None else given.requires_grad,
                            "returned": h.detach().clone()})
        return out, (h,)


class Plugin:
    @hookimpl
    def register_tasks(self, register):
        register(TaskSpec(name="echo", description="echo the previous symbol (test)", factory=EchoTask,
                          options=(TaskOption("carry", bool, True, "carry the state"),
                                   TaskOption("length", int, 240, "stream length"))))

    @hookimpl
    def register_cells(self, register):
        register(CellSpec(name="recorder", description="records its states (test)", factory=RecordingRNN))


@pytest.fixture
def echo(plugins):
    plugins(Plugin())
    RECORDS.clear()
    yield
    RECORDS.clear()


def _run(tmp_path, cells, carry, **settings):
    return run("echo", cells, out=tmp_path / "run", plots=False, progress=False, task_options={"carry": carry},
               **{"steps": 4, "seq_len": 3, "batch_size": 5, "hidden_size": 6, "log_every": 100, **settings})


def test_each_training_batch_starts_from_the_previous_batchs_final_state_detached(echo, tmp_path):
    result = _run(tmp_path, ["recorder"], True)
    assert result.rows[0]["status"] == "ok"
    assert len(RECORDS) == 4                                   # one per training step
    assert RECORDS[0]["given"] is None                         # the first batch starts from zeros
    for before, now in zip(RECORDS, RECORDS[1:]):
        assert torch.equal(now["given"], before["returned"])  # carried exactly
        assert now["given_grad_fn"] is None and now["given_requires_grad"] is False   # detached: no backward into it


def test_a_stateless_task_starts_every_batch_from_zeros(echo, tmp_path):
    _run(tmp_path, ["recorder"], False)
    assert len(RECORDS) == 4 and all(r["given"] is None for r in RECORDS)


def test_carrying_the_state_lets_a_cell_predict_across_the_window_edge(echo, tmp_path):
    # Window starts need the previous window's last input: reachable only through the carried state.
    accuracy = {}
    for carry in (True, False):
        result = _run(tmp_path / str(carry), ["lstm"], carry, steps=300, seq_len=2, batch_size=16, hidden_size=16,
                      lr=1e-2, log_every=300)
        task = result.task
        metrics = pd.read_csv(result.folder / "metrics.csv")
        accuracy[carry] = metrics[metrics["metric"] == "val_start_accuracy"]["value"].iloc[-1]
        assert result.rows[0]["status"] == "ok" and task.carries_state is carry
    assert accuracy[True] > 0.95 and accuracy[False] < 0.5, accuracy


class _Identity(nn.Module):
    """A 'cell' whose state is a running sum of its inputs: out_t = h_t = h_{t-1} + x_t."""

    state_names = ("h",)

    def forward(self, x, state=None):
        h = torch.zeros_like(x[0]) if state is None else state[0][0]
        outs = []
        for t in range(x.shape[0]):
            h = h + x[t]
            outs.append(h)
        out = torch.stack(outs)
        return out, (out[-1:],)


def test_evaluation_carries_the_state_through_a_split_and_weights_batches_by_their_predictions():
    # The running-sum cell makes every prediction depend on the whole split so far; windows of unequal length
    # (3, 3, 1) and a padded target make an unweighted mean of the batch means differ from the per-token mean.
    class Head(TaskHead):
        input_size = 2

        def embed(self, x):
            return F.one_hot(x, 2).double()

        def readout(self, h):
            return torch.log_softmax(torch.stack([h[..., 0] - h[..., 1], h[..., 1] - h[..., 0]], -1) / 3, -1)

    task = EchoTask.__new__(EchoTask)
    task.carries_state = True
    x = torch.tensor([[0, 1, 1, 0, 0, 1, 1]]).T                # (7, 1): one stream
    y = torch.tensor([[IGNORE, 0, 1, 1, 0, 0, 1]]).T
    batches = [Batch(x[s:s + 3], y[s:s + 3]) for s in range(0, 7, 3)]
    model = TaskModel(Head(), _Identity())
    whole = model(x)                                           # one pass from zeros over the whole split
    expected_loss = task.loss(whole, y).item()
    got = evaluate(model, task, batches, torch.device("cpu"))
    assert got["loss"] == pytest.approx(expected_loss, rel=1e-12)
    assert got["accuracy"] == pytest.approx(task.metrics(whole, y)["accuracy"], rel=1e-12)
    unweighted = sum(task.loss(model.forward_with_state(b.x, None)[0], b.y).item() for b in batches) / 3
    assert abs(unweighted - expected_loss) > 1e-3             # the test can tell the two apart
    # Not carried (each window from zeros), the same windows give another loss: the state really is passed.
    fresh = [task.loss(model(b.x), b.y).item() * task.n_predicted(b.y) for b in batches]
    assert abs(sum(fresh) / 6 - expected_loss) > 1e-3


def test_forward_with_state_matches_forward_and_returns_the_final_state():
    head = EchoHead(5)
    model = TaskModel(head, nn.LSTM(K, 5))
    x = torch.randint(0, K, (6, 3))
    pred, (h, c) = model.forward_with_state(x)
    assert torch.equal(pred, model(x)) and h.shape == c.shape == (1, 3, 5)
    second, _ = model.forward_with_state(x[3:], tuple(s for s in model.forward_with_state(x[:3])[1]))
    assert torch.allclose(second, pred[3:], atol=1e-6)
