"""The settings of a run, declared once: every option's type, default, bounds and help (:data:`RUN_OPTIONS`),
and their resolution into a :class:`RunConfig` (:func:`resolve_config`).

Settings are resolved in one place, in rising priority:

1. the global defaults declared in :data:`RUN_OPTIONS`;
2. the task's ``TaskSpec.defaults`` (only where it departs from them);
3. a named preset (``TaskSpec.presets``), which may also choose task options;
4. the values given by the caller.

Task options come from their ``TaskOption`` declarations, then the preset,
then the caller, and are checked once, here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import torch

from harness.contract.errors import HarnessError
from harness.contract.tasks import TaskOption, TaskSpec, resolve_task_options

DEFAULT_THREADS = 1
"""CPU threads per run (and per sweep unit) unless ``--threads`` says otherwise. Why one: docs/measurements.md,
"Threads"; ``benchmarks/bench_load.py`` measures it quiet and beside busy processes."""

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


class GradStepError(HarnessError):
    """A ``--grad-at`` step outside ``0..steps``; a sweep names its file's ``grad_at`` instead of the flag."""

    def __init__(self, message: str, step: int, steps: int):
        super().__init__(message)
        self.step, self.steps = step, steps


@dataclass(frozen=True)
class RunOption(TaskOption):
    """One setting of a run, declared once for ``run``, ``sweep`` and Python: a :class:`TaskOption` (type,
    default, bounds, help) that the harness owns, and whether ``harness sweep`` may sweep it."""

    sweepable: bool = True
    """Whether ``harness sweep`` accepts a comma list of values for it."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """A value (Python, or command-line text) -> the checked value; :class:`ValueError` saying what is
        allowed otherwise (without the option's name, which the caller adds)."""
        if value is None and (self.none_words or self.default is None):
            return None
        return self.value_of(value)

    def check(self, value: Any) -> Any:
        """:meth:`parse`, with a :class:`HarnessError` that names the option."""
        try:
            return self.parse(value)
        except ValueError as exc:
            raise HarnessError(f"{self.flag}: {exc}") from None


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("steps", int, 1000, "training steps per cell", 1, 10_000_000),
    RunOption("seq_len", int, 50, "sequence length T (copy: the delay T)", 1, 100_000),
    RunOption("batch_size", int, 64, "sequences per training batch", 1, 65_536),
    RunOption("hidden_size", int, 64, "hidden units H per layer", 1, 16_384),
    RunOption("match_params", int, None, "give each cell the hidden width at which its model (the task's head and "
              "the cell) has about this many trainable parameters, within 2%% or the nearest reachable; the widths "
              "are printed and recorded (instead of --hidden-size)", 1, 1_000_000_000),
    RunOption("layers", int, 1, "stacked layers L", 1, 64),
    RunOption("dropout", float, 0.0, "dropout between stacked layers (0 to 0.99)", 0.0, 0.99),
    RunOption("lr", float, 1e-3, "learning rate", 0.0, 10.0, exclusive_minimum=True),
    RunOption("optimizer", str, "adam", "optimiser", choices=tuple(sorted(OPTIMIZERS))),
    RunOption("clip", float, 1.0, "clip the gradient norm to this value ('none' to disable); the norm before "
              "clipping is logged", 0.0, 1e6, exclusive_minimum=True, none_words=("none", "off")),
    RunOption("seed", int, 0, "seed for data and weights", 0, 2**31 - 1, sweepable=False),
    RunOption("device", str, "cpu", "where to train: cpu, cuda or auto (a GPU when there is one)",
              choices=("cpu", "cuda", "auto"), sweepable=False),
    RunOption("dtype", str, "float32", "parameter and input dtype", choices=tuple(sorted(DTYPES)), sweepable=False),
    RunOption("threads", int, DEFAULT_THREADS, "CPU threads for torch and NumPy's BLAS (default 1: the thread "
              "count changes the numbers slightly, so it is fixed rather than taken from the machine or its load, "
              "and one thread does not collapse beside other jobs; docs/measurements.md); recorded in "
              "environment.json", 1, 1024, sweepable=False),
    RunOption("log_every", int, None, "log train/val loss every N steps (default: steps/30)", 1, 10_000_000,
              sweepable=False),
)
OPTIONS_BY_NAME: dict[str, RunOption] = {o.name: o for o in RUN_OPTIONS}
SWEEPABLE: tuple[str, ...] = tuple(o.name for o in RUN_OPTIONS if o.sweepable)


@dataclass
class RunConfig:
    """The resolved settings of one run; written to ``config.json``. Build it with :func:`resolve_config`."""

    task: str
    cells: list[str]
    preset: str | None
    seed: int
    steps: int
    seq_len: int
    batch_size: int
    hidden_size: int
    layers: int
    dropout: float
    lr: float
    optimizer: str
    clip: float | None
    device: str
    dtype: str
    threads: int | None
    log_every: int
    grad_steps: list[int]
    task_options: dict[str, Any]
    warmup: int = 5
    """Training steps the throughput timer leaves out (warm-up)."""
    match_params: int | None = None
    """``--match-params N``: each cell's width is chosen so that its model has about N parameters."""
    cell_hidden: dict[str, int] = field(default_factory=dict)
    """Per-cell hidden widths where they depart from :attr:`hidden_size` (what ``--match-params`` chose)."""

    def hidden_for(self, cell: str) -> int:
        """The hidden width ``cell`` trains with."""
        return self.cell_hidden.get(cell, self.hidden_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def resolve_device(name: str) -> torch.device:
    """``cpu`` / ``cuda`` / ``auto`` -> a device, or a one-line error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HarnessError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu (or auto)")
    return torch.device(name)


def task_defaults(task_spec: TaskSpec, preset: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run settings and task options that apply before the caller's values: global defaults, then the task's,
    then the preset's. -> ``(settings, preset_task_options)``."""
    settings = {o.name: o.default for o in RUN_OPTIONS}
    unknown = sorted(set(task_spec.defaults) - set(settings))
    if unknown:
        raise HarnessError(f"task {task_spec.name}'s defaults set unknown setting(s) {', '.join(unknown)}; "
                           f"valid: {', '.join(settings)}")
    settings.update(task_spec.defaults)
    preset_options: dict[str, Any] = {}
    if preset is not None:
        presets = task_spec.presets or {}
        if preset not in presets:
            valid = ", ".join(sorted(presets)) or "(this task has none)"
            raise HarnessError(f"unknown preset {preset!r} for task {task_spec.name}; valid presets: {valid}")
        chosen = dict(presets[preset])
        preset_options = dict(chosen.pop("task_options", {}))
        unknown = sorted(set(chosen) - set(settings))
        if unknown:
            raise HarnessError(f"preset {preset!r} of task {task_spec.name} sets unknown setting(s) {', '.join(unknown)}")
        settings.update(chosen)
    return settings, preset_options


def resolve_config(task_spec: TaskSpec, cells: Sequence[str], *, preset: str | None = None,
                   settings: Mapping[str, Any] | None = None, task_options: Mapping[str, Any] | None = None,
                   grad_at: Sequence[int] = ()) -> RunConfig:
    """Every setting of a run, resolved and checked (see the module docstring for the order).

    :param settings: the caller's values of :data:`RUN_OPTIONS`, by name (``clip=None``: no clipping).
    :param task_options: the caller's task options (values or command-line text).
    :param grad_at: extra training steps at which to record gradient norms over time.
    """
    given = dict(settings or {})
    unknown = sorted(set(given) - set(OPTIONS_BY_NAME))
    if unknown:
        raise HarnessError(f"unknown setting {unknown[0]!r}; valid settings: {', '.join(OPTIONS_BY_NAME)}")
    if given.get("match_params") is not None and given.get("hidden_size") is not None:
        raise HarnessError("--match-params chooses each cell's hidden width; give it or --hidden-size, not both")
    values, preset_options = task_defaults(task_spec, preset)
    values.update(given)
    values = {name: OPTIONS_BY_NAME[name].check(value) for name, value in values.items()}
    device = resolve_device(values["device"])
    steps = values["steps"]
    grad_steps = sorted(set(int(s) for s in grad_at))
    for step in grad_steps:
        if not 0 <= step <= steps:
            raise GradStepError(f"--grad-at {step}: each entry must be a step between 0 and {steps}", step, steps)
    try:
        options = resolve_task_options(task_spec.options, {**preset_options, **dict(task_options or {})})
    except ValueError as exc:
        raise HarnessError(f"--task-opt {exc}") from None
    return RunConfig(task=task_spec.name, cells=list(dict.fromkeys(cells)), preset=preset, seed=values["seed"],
                     steps=steps, seq_len=values["seq_len"], batch_size=values["batch_size"],
                     hidden_size=values["hidden_size"], layers=values["layers"], dropout=values["dropout"],
                     lr=values["lr"], optimizer=values["optimizer"], clip=values["clip"], device=str(device),
                     dtype=values["dtype"], threads=values["threads"],
                     log_every=values["log_every"] or max(1, steps // 30), grad_steps=grad_steps,
                     task_options=options, match_params=values["match_params"])
