"""What a task must provide: its data (:class:`Batch`), options, head, loss and metrics. Read with
``docs/writing-a-task.md``.

Shapes are time-major, as for cells (:mod:`harness.contract.cells`): a batch's ``x`` is ``(T, B, ...)`` in the
task's own layout, and its head maps it to the cell's ``(T, B, I)`` input and the cell's ``(T, B, H)`` output
to predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from harness.contract.cells import CellSpec, NAME


@dataclass
class Batch:
    """One batch of task data. ``x`` and ``y`` layouts are the task's own (time-major)."""

    x: Tensor
    y: Tensor

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.x.to(device), self.y.to(device))

    @property
    def batch_size(self) -> int:
        return int(self.x.shape[1])

    @property
    def seq_len(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TaskOption:
    """A task-specific option, set on the command line with ``--task-opt NAME=VALUE``.

    The declaration is the only place that states the option's default: the
    harness fills it in before the task is built, so a task reads
    ``cfg.options[name]`` and never restates it.
    """

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    exclusive_minimum: bool = False
    """``minimum < value`` rather than ``minimum <= value``."""
    none_words: tuple[str, ...] = ()
    """Words that mean "no value" (``none``): they parse to ``None``."""

    def value_of(self, value: Any) -> Any:
        """:func:`parse_value` with this declaration's type, bounds and choices (no name in its errors)."""
        return parse_value(value, self.type, minimum=self.minimum, maximum=self.maximum,
                           exclusive_minimum=self.exclusive_minimum, choices=self.choices, none_words=self.none_words)

    def parse(self, value: Any) -> Any:
        """``value`` (text from the command line or a Python value) -> the declared type, checked against
        the bounds and choices; :class:`ValueError` naming the option otherwise."""
        try:
            return self.value_of(value)
        except ValueError as exc:
            raise ValueError(f"{self.name}={value}: {exc}") from None


def parse_value(value: Any, kind: type, *, minimum: float | None = None, maximum: float | None = None,
                exclusive_minimum: bool = False, choices: Sequence[Any] | None = None,
                none_words: Sequence[str] = ()) -> Any:
    """One option's value, from command-line text or Python, converted to ``kind`` and checked; the one parser
    behind task options and run settings. :class:`ValueError` says what is allowed (the caller names the option).

    ``none_words`` (e.g. ``("none", "off")``) are text that means "no value": they give ``None``.
    """
    if isinstance(value, str) and value.strip().lower() in none_words:
        return None
    try:
        if kind is bool:
            value = _BOOL_WORDS[value.strip().lower()] if isinstance(value, str) else value
            if not isinstance(value, bool):
                raise ValueError
        elif kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
            raise ValueError
        else:
            value = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, KeyError):
        what = {int: "an integer", float: "a number", bool: "true or false"}.get(kind, kind.__name__)
        raise ValueError(f"expected {what}{' or ' + none_words[0] if none_words else ''}, got {value!r}") from None
    if choices is not None and value not in choices:
        raise ValueError(f"choose one of {', '.join(map(str, choices))}, got {value!r}")
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    if too_low or (maximum is not None and value > maximum):
        low, high = (int(minimum), int(maximum)) if kind is int else (minimum, maximum)
        allowed = f"> {low:g} and <= {high:g}" if exclusive_minimum else f"between {low} and {high}"
        raise ValueError(f"must be {allowed}, got {value!r}")
    return value


_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def resolve_task_options(declared: Sequence[TaskOption], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option: the given value (parsed and checked) or the declared default.

    :raises ValueError: an unknown name (the message lists the valid ones) or a bad value.
    """
    by_name = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(sorted(by_name)) or "(this task has none)"
        raise ValueError(f"{unknown[0]}: unknown option; valid options: {valid}")
    return {name: (opt.parse(given[name]) if name in given else opt.default) for name, opt in by_name.items()}


@dataclass(frozen=True)
class TaskConfig:
    """What a task factory receives."""

    seq_len: int
    batch_size: int
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)


class TaskHead(nn.Module):
    """The task-owned layers around the cell: input encoding and readout."""

    input_size: int

    def embed(self, x: Tensor) -> Tensor:
        """Task input -> ``(T, B, I)`` float cell input."""
        raise NotImplementedError

    def readout(self, h: Tensor) -> Tensor:
        """Cell output ``(T, B, H)`` -> predictions in the layout ``Task.loss`` expects."""
        raise NotImplementedError


class Task:
    """A training problem with a known memoryless baseline.

    Data must be a deterministic function of the seed and the step, so that
    every cell in a run sees the same stream.
    """

    name: str = ""
    baseline: float = float("nan")
    """Loss of the best predictor that ignores the inputs' history."""
    accuracy_name: str = "accuracy"
    """What ``accuracy`` measures for this task, for the summary."""
    loss_unit: str = "task loss"
    """What the loss measures, for axis labels: e.g. ``"cross-entropy per step (nats)"``."""
    solved_rule: str = ""
    """The documented criterion behind :meth:`solved`, in words."""
    carries_state: bool = False
    """A stream task, trained with truncated backpropagation through time (language modelling). Then training
    batch ``step + 1`` continues the B streams of batch ``step``: the runner passes the cell's final state of
    one training batch, detached (no gradient flows back into the previous window), as the initial state of the
    next, and never resets it (a task whose stream wraps around its data says what the state means there). Each
    held-out split is evaluated as one pass over its consecutive batches, the state carried from zeros at the
    split's start, with loss and metrics averaged over the batches weighted by :meth:`n_predicted` (exact for
    per-token means; no split's predictions are held in memory at once). ``False``: every batch starts from
    zeros and a split's predictions are concatenated, as before. Gradient flow is measured from a zero state on
    the first validation batch either way (docs/writing-a-task.md)."""

    def n_predicted(self, y: Tensor) -> int:
        """How many predictions the targets ``y`` of one batch hold: a batch's weight when a :attr:`carries_state`
        task is evaluated. ``y.numel()`` by default; a task that pads targets counts only the real ones."""
        return int(y.numel())

    def make_head(self, hidden_size: int) -> TaskHead:
        raise NotImplementedError

    def train_batch(self, step: int) -> Batch:
        """The batch for training step ``step`` (0-based), identical for every cell."""
        raise NotImplementedError

    def eval_batches(self, split: str) -> Iterable[Batch]:
        """Held-out batches: ``split`` is ``"val"`` (logged during training) or ``"test"`` (final)."""
        raise NotImplementedError

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def memory_loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """The part of the loss that needs memory; the gradient-flow measurement differentiates it.

        The whole loss by default. A task whose loss also scores steps that need
        no memory overrides it (``copy``: the recall steps only), so that those
        steps' own readout terms do not mask how much signal reaches ``t = 0``.
        """
        return self.loss(pred, y)

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        """At least ``{"accuracy": ...}``."""
        raise NotImplementedError

    def solved(self, test_metrics: Mapping[str, float]) -> bool:
        return False

    def config(self) -> dict[str, Any]:
        """Extra facts for the run's ``config.json`` (splits, vocabulary size, ...)."""
        return {}

    def artifacts(self, model: nn.Module, cell_spec: CellSpec, device: torch.device) -> dict[str, Any]:
        """Optional extra tables (name -> pandas DataFrame) written after a cell trains."""
        return {}

    def findings(self, run: Mapping[str, Any]) -> list[str]:
        """Optional lines about the task's own tables (those :meth:`artifacts` wrote), in plain words;
        ``harness run`` prints them after the verdicts.

        :param run: the finished run folder as :func:`harness.reports.results.read_run` loads it (table name -> DataFrame).
        """
        return []


@dataclass(frozen=True)
class TaskSpec:
    """Everything the harness needs to know about a task before building it."""

    name: str
    description: str
    factory: Callable[[TaskConfig], Task]
    options: Sequence[TaskOption] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The run settings where this task departs from the global defaults of
    :data:`harness.run.config.RUN_OPTIONS` (``seq_len``, ``steps``, ``lr``, ...); only those."""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Named sets of run defaults (``--preset NAME``), e.g. a paper's settings. A preset may hold a
    ``task_options`` mapping too; options given with ``--task-opt`` still win."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise ValueError(f"task name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'")
        if not callable(self.factory):
            raise ValueError(f"task {self.name!r}: factory must be callable")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r}: option names must be unique, got {names}")
        for option in self.options:  # a default that its own declaration refuses is a plugin bug
            option.parse(option.default)

    def build(self, seq_len: int, batch_size: int, seed: int, options: Mapping[str, Any] | None = None) -> "Task":
        """The task, with ``options`` checked against the declarations and every default filled in."""
        return self.factory(TaskConfig(seq_len, batch_size, seed, resolve_task_options(self.options, options or {})))
