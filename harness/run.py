"""A run, defined once: one task, some cells, one seed, one set of settings -> one run folder.

Everything that starts a run goes through here: ``harness run`` on the command
line, each unit of ``harness sweep`` and a notebook::

    from harness.run import run
    result = run("copy", ["lstm", "rnn"], steps=500)      # -> RunResult(folder, config, rows, ...)

Settings are resolved in one place (:func:`resolve_config`), in rising priority:

1. the global defaults declared in :data:`RUN_OPTIONS`;
2. the task's ``TaskSpec.defaults`` (only where it departs from them);
3. a named preset (``TaskSpec.presets``), which may also choose task options;
4. the values given by the caller.

Task options come from their ``TaskOption`` declarations, then the preset,
then the caller, and are checked once, here. :func:`execute` then trains the
cells and writes the folder: ``config.json``, ``environment.json``, the tables
and (unless told not to) the figures and ``report.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from harness.contract import CellSpec, Task, TaskOption, TaskSpec, resolve_task_options
from harness.errors import HarnessError, one_line
from harness.registry import Registry, load_registry
from harness.results import RunWriter, default_run_folder
from harness.runner import OPTIMIZERS, Runner, make_task

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


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
    RunOption("threads", int, None, "CPU threads for torch and NumPy's BLAS (default: torch's choice, usually the "
              "core count); recorded in environment.json", 1, 1024, sweepable=False),
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
    values, preset_options = task_defaults(task_spec, preset)
    values.update(given)
    values = {name: OPTIONS_BY_NAME[name].check(value) for name, value in values.items()}
    device = resolve_device(values["device"])
    steps = values["steps"]
    grad_steps = sorted(set(int(s) for s in grad_at))
    for step in grad_steps:
        if not 0 <= step <= steps:
            raise HarnessError(f"--grad-at {step}: each entry must be a step between 0 and {steps}")
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
                     task_options=options)


def prepare_cpu(threads: int | None) -> None:
    """Prepare the CPU for a run: flush denormals to zero, and set torch's thread count and NumPy's BLAS pool to
    ``threads`` (both, so CPU comparisons are fair; ``None`` leaves them).

    Flushing: gradients that vanish through time pass through float32's denormal range (below 1.2e-38), where
    x86 arithmetic is microcoded and about 100x slower. Backward through an LSTM at T = 400 ran 10x slower for
    it (docs/measurements.md); the numbers lost are ones that float32 cannot hold accurately anyway. The flag
    is per thread and torch's pool threads copy it when they start, so call this before any other torch work
    (``execute`` and ``bench`` do; a sweep's unit is a fresh process).
    """
    torch.set_flush_denormal(True)
    if threads is None:
        return
    import numpy  # noqa: F401  (load the BLAS so that threadpoolctl can find it)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


@dataclass
class RunResult:
    """What :func:`execute` did: the folder, the settings, the task and one summary row per cell."""

    folder: Path
    config: RunConfig
    task: Task
    rows: list[dict[str, Any]] = field(default_factory=list)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; every finished table is on disk in :attr:`folder`."""

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder


def _quiet(_: str) -> None:
    pass


def execute(cfg: RunConfig, registry: Registry, *, out: Path | None = None, results_root: Path = Path("results"),
            progress: bool = True, say: Callable[[str], None] = _quiet, warn: Callable[[str], None] = _quiet,
            plots: bool = True, live_failures: bool = True) -> RunResult:
    """Train ``cfg.cells`` on ``cfg.task`` and write the run folder.

    :param out: the folder to create (default ``results_root/<time>-<task>``); a folder holding a run is refused.
    :param say: receives progress lines (the folder); ``warn`` receives problems: a cell that failed, diverged or
        was skipped as it happens (unless ``live_failures`` is off, for a caller that reports them itself from
        the returned rows), and figures that could not be made.
    :raises RunInterrupted: on Ctrl-C, after the finished tables are written.
    """
    task_spec = registry.task(cfg.task)
    specs: list[CellSpec] = [registry.cell(name) for name in cfg.cells]
    prepare_cpu(cfg.threads)
    task = make_task(task_spec, cfg)  # before the folder: bad data or options leave nothing behind
    writer = RunWriter(out if out is not None else default_run_folder(Path(results_root), cfg.task))
    provenance = {name: registry.provenance(name) for name in cfg.cells}
    writer.write_json("config.json", {**cfg.to_dict(), "task_config": task.config(), "baseline": task.baseline,
                                      "solved_rule": task.solved_rule, "accuracy": task.accuracy_name,
                                      "loss_unit": task.loss_unit, "cell_sources": provenance,
                                      "colors": {spec.name: spec.color for spec in specs},
                                      "task_source": registry.provenance(cfg.task, kind="task")})
    from harness.environment import describe
    writer.write_json("environment.json", describe())
    say(f"run folder: {writer.folder}")
    runner = Runner(cfg, task_spec, specs, writer, progress=progress, say=say,
                    warn=warn if live_failures else _quiet, task=task, provenance=provenance)
    result = RunResult(writer.folder, cfg, task)
    try:
        result.rows = runner.run()
    except KeyboardInterrupt:
        writer.flush()
        raise RunInterrupted(writer.folder) from None
    finally:
        writer.flush()
    if plots:
        _plots(writer.folder, warn)
    return result


def _plots(folder: Path, warn: Callable[[str], None]) -> None:
    """Figures and report.md; a plotting problem is reported in one line and never costs the run."""
    try:
        from harness.report import render
        render(folder)
    except Exception as exc:
        warn(f"figures not made ({one_line(exc)}); the tables are intact, "
             f"retry with 'harness plot {folder}'")


def run(task: str, cells: Sequence[str] | str, *, out: Path | str | None = None, preset: str | None = None,
        task_options: Mapping[str, Any] | None = None, grad_at: Sequence[int] = (), registry: Registry | None = None,
        progress: bool = True, plots: bool = True, say: Callable[[str], None] = _quiet,
        warn: Callable[[str], None] = _quiet, **settings: Any) -> RunResult:
    """Resolve the settings and execute the run: the one entry point for the CLI, sweep units and notebooks.

    ``settings`` are :data:`RUN_OPTIONS` by name (``steps=500, lr=3e-3, seed=1``). ``cells`` is a list of names
    or a comma-separated string.
    """
    registry = registry if registry is not None else load_registry()
    names = [c.strip() for c in (cells.split(",") if isinstance(cells, str) else cells) if c.strip()]
    if not names:
        raise HarnessError("no cells given; name at least one, e.g. --cells lstm,rnn")
    task_spec = registry.task(task)
    for name in names:
        registry.cell(name)  # an unknown name fails here, in one line, before anything runs
    cfg = resolve_config(task_spec, names, preset=preset, settings=settings, task_options=task_options,
                         grad_at=grad_at)
    return execute(cfg, registry, out=Path(out) if out is not None else None, progress=progress, say=say, warn=warn,
                   plots=plots)

