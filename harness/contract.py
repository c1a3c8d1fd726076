"""What a cell and a task must provide. Read with ``docs/cell-contract.md``.

Shapes, everywhere in the harness, are time-major:

* ``T`` time steps, ``B`` batch, ``I`` input features, ``H`` hidden units,
  ``L`` stacked layers.
* A cell maps ``x: (T, B, I)`` and an optional state to ``out: (T, B, H)``
  (the top layer's hidden output at every step) and the final state.
* A state is a tuple of tensors, each ``(L, B, H)``, named by
  :attr:`CellSpec.state_names`; ``h`` always comes first. This is exactly
  ``torch.nn.LSTM``'s ``(h, c)`` layout, and ``(h,)`` for an RNN or GRU.
* ``out[t]`` equals the top layer of ``h`` after step ``t``. The harness relies
  on this to measure gradients through the carried state.

A cell may compute step by step or consume the whole sequence in one call
(a fused kernel); the contract is the same. A cell must accept any ``T >= 1``,
so that the harness can unroll it one step per call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]
"""A recurrent state: one ``(L, B, H)`` tensor per name in ``CellSpec.state_names``."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class RecurrentCell(nn.Module):
    """Base class for cells. Subclasses implement :meth:`forward`.

    Constructor signature used by the harness (via ``CellSpec.factory``)::

        factory(input_size: int, hidden_size: int, num_layers: int = 1,
                dropout: float = 0.0) -> RecurrentCell

    ``dropout`` is applied between stacked layers (never after the top one),
    as ``torch.nn.LSTM`` does.
    """

    state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the sequence.

        :param x: ``(T, B, I)`` inputs.
        :param state: ``None`` (zeros) or a tuple of ``(L, B, H)`` tensors.
        :returns: ``out (T, B, H)`` and the final state, same layout as ``state``.
        """
        raise NotImplementedError

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zeros of shape ``(L, B, H)`` for every state name, on ``like``'s device and dtype."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(like.new_zeros(shape) for _ in self.state_names)

    def gate_activations(self, x: Tensor, state: State | None = None) -> dict[str, Tensor]:
        """Per-step gate activations, for cells whose spec sets ``exposes_gates``.

        :returns: name -> ``(L, T, B, H)``. Names come from the vocabulary in
            :mod:`harness.gates` (textbook LSTM: ``input``, ``forget``, ``cell``,
            ``output``; the seeds': ``learn``, ``forget``, ``remember``, ``use``;
            GRU: ``reset``, ``update``, ``candidate``); other names are kept too.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose gate activations")


@dataclass(frozen=True)
class CellSpec:
    """Everything the harness needs to know about a cell before building it."""

    name: str
    """Unique, lower-case name used on the command line (``--cells NAME``)."""
    description: str
    """One line, shown by ``python -m harness list``."""
    factory: Callable[..., nn.Module]
    """``factory(input_size, hidden_size, num_layers=1, dropout=0.0)`` -> a module following the contract."""
    state_names: tuple[str, ...] = ("h",)
    """Names of the carried state tensors; ``("h", "c")`` for LSTM-like cells."""
    devices: tuple[str, ...] = ("cpu", "cuda")
    """Device types the cell runs on."""
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    """Parameter/input dtypes the cell supports."""
    max_layers: int | None = None
    """How many layers the factory can stack itself; ``None`` for any. With
    ``1`` the harness stacks single-layer cells (with dropout between them)."""
    exposes_gates: bool = False
    """Whether the module implements :meth:`RecurrentCell.gate_activations`."""
    whole_sequence: bool = False
    """Informational: the cell consumes the whole sequence in one call (a fused kernel)."""
    availability: Callable[[str], str | None] | None = None
    """Optional check ``availability(device_type) -> reason or None``, for needs
    the static fields cannot express (a compiler, an environment switch)."""
    color: str | None = None
    """Optional ``"#rrggbb"`` colour for this cell in every figure; without one, a colour is derived from the name."""
    reference: str | None = None
    """Optional name of a cell that computes the same function from the same parameters (``"lstm"`` for a cell with
    ``nn.LSTM``'s parameter layout). ``harness bench`` checks the cell against it numerically before timing it."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"cell name {self.name!r} must be lower-case letters, digits, '-', '_' or '.'")
        if self.color is not None and not _COLOR.match(str(self.color)):
            raise ValueError(f"cell {self.name!r}: color must be '#rrggbb', got {self.color!r}")
        if not callable(self.factory):
            raise ValueError(f"cell {self.name!r}: factory must be callable")
        if not self.state_names or self.state_names[0] != "h":
            raise ValueError(f"cell {self.name!r}: state_names must start with 'h'")
        if self.max_layers is not None and self.max_layers < 1:
            raise ValueError(f"cell {self.name!r}: max_layers must be >= 1 or None")

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """Why this cell cannot run on ``device`` with ``dtype``; ``None`` when it can."""
        if device.type not in self.devices:
            return f"{self.name} runs on {', '.join(self.devices)} only, not {device.type}"
        if dtype not in self.dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            return f"{self.name} supports {names} only, not {str(dtype).removeprefix('torch.')}"
        if self.availability is not None:
            return self.availability(device.type)
        return None


# ---------------------------------------------------------------- tasks


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

        :param run: the finished run folder as :func:`harness.results.read_run` loads it (table name -> DataFrame).
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
    :data:`harness.run.RUN_OPTIONS` (``seq_len``, ``steps``, ``lr``, ...); only those."""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Named sets of run defaults (``--preset NAME``), e.g. a paper's settings. A preset may hold a
    ``task_options`` mapping too; options given with ``--task-opt`` still win."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
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
