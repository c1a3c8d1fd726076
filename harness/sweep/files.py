"""Sweep files: a sweep written down in TOML, for checked-in studies (format: docs/sweeps.md).

::

    task = "copy"
    cells = ["lstm", "rnn"]
    seeds = 3                      # a count, "10:15", or a list [0, 3, 7]
    reference = "lstm"

    [settings]                     # run settings; a list is swept
    seq_len = [100, 200]
    optimizer = "rmsprop"

    [task_options]                 # likewise
    copy_len = 10

    [cell_settings.rnn]            # one cell's own fixed settings
    hidden_size = 80

    [horizon]                      # the memory-horizon rule
    margin = 0.9

    [executor]                     # defaults for how to run it
    name = "local"
    jobs = 2
    unit_timeout = 7200            # seconds, or "none"

    [study]                        # for studies: what docs/reproductions.md says (ignored by the sweep)
    title = "..."
    [[claims]]
    cell = "lstm"
    seq_len = 100
    claim = "below_baseline"       # below_baseline, at_baseline or solves
    paper = "what the paper says, and where"
    untestable = "why"             # optional: the budget cannot test the claim; the page says so, not a verdict

A file and the command line fill the same :class:`SweepRequest`; an option
given on the command line replaces the file's value for that key. The request
remembers which keys came from which file (:attr:`SweepRequest.origins`), so
that a value found wrong later (an unknown cell, a task option the task does
not declare, an unknown executor) is reported as the file's key, not as a
command-line option nobody typed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.contract.errors import HarnessError
from harness.run.config import OPTIONS_BY_NAME
from harness.sweep.grid import HorizonRule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _whole(low: int):
    def ok(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= low:
            return None
        return f"must be a whole number >= {low}, got {value!r}"
    return ok


def _number(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return None
    return f"must be a number >= 0, got {value!r}"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else f"must be a string, got {value!r}"


def _table(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a table: [executor.slurm_params] with KEY = VALUE lines"


def _timeout(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ("none", "off"):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return None
    return f'must be a number of seconds > 0, or "none" for no limit; got {value!r}'


def _cluster(value: Any) -> str | None:
    return None if value in ("slurm", "local") else f'choose "slurm" or "local", got {value!r}'


EXECUTOR_CHECKS = {
    "name": _text, "jobs": _whole(1), "threads_per_unit": _whole(1), "gpus_per_unit": _number,
    "ray_address": _text, "slurm_partition": _text, "slurm_time": _whole(1), "slurm_params": _table,
    "submitit_cluster": _cluster, "unit_timeout": _timeout,
}
"""Each ``[executor]`` key's check: ``None`` when the value is fine, else what is wrong."""

EXECUTOR_KEYS = {
    "name": "the executor: local, ray, submitit, or a plugin's",
    "jobs": "units at once (local), array parallelism (Slurm)",
    "threads_per_unit": "torch and BLAS threads per unit",
    "gpus_per_unit": "GPUs per unit (fractions share a GPU)",
    "ray_address": "a running Ray cluster",
    "slurm_partition": "Slurm partition",
    "slurm_time": "Slurm time limit per unit, in minutes",
    "slurm_params": "extra Slurm parameters (a table of KEY = VALUE)",
    "submitit_cluster": "submitit's cluster: slurm or local (default: Slurm where there is one)",
    "unit_timeout": "seconds a unit may run before it is stopped and marked timeout, or \"none\" (default: a day)",
}
TOP_KEYS = {"task", "cells", "preset", "seeds", "reference", "out", "grad_at", "settings", "task_options",
            "cell_settings", "horizon", "executor", "study", "claims", "tune"}
STUDY_KEYS = {
    "title": "the study's name in docs/reproductions.md",
    "source": "the paper (and table or figure) it reproduces",
    "reduced": "empty when the file runs the published budget; else what was cut, and why",
    "full_command": "the one command that runs the full setting (on a GPU or a cluster), with its expected time",
}
CLAIM_KINDS = {
    "below_baseline": "the cell's test loss gets below the memoryless baseline",
    "at_baseline": "the cell stays at the memoryless baseline (learns nothing that needs memory)",
    "solves": "the cell solves the task (its documented criterion)",
}
CLAIM_KEYS = {"cell", "claim", "paper", "value", "seq_len", "where", "untestable"}


@dataclass
class SweepRequest:
    """Everything a sweep can be told, from a file, the command line, or both (the command line wins)."""

    task: str | None = None
    cells: list[str] | None = None
    preset: str | None = None
    seeds: list[int] | None = None
    reference: str | None = None
    out: str | None = None
    grad_at: list[int] | None = None
    settings: dict[str, list[Any]] = field(default_factory=dict)
    task_options: dict[str, list[Any]] = field(default_factory=dict)
    cell_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    horizon: dict[str, float] = field(default_factory=dict)
    tune: dict[str, list[Any]] = field(default_factory=dict)
    """``[tune]``: run settings or task options -> the candidate values (``--tune``)."""
    executor: dict[str, Any] = field(default_factory=dict)
    study: dict[str, str] = field(default_factory=dict)
    """A study's description (:data:`STUDY_KEYS`); the sweep ignores it, ``harness reproductions`` reads it."""
    claims: list[dict[str, Any]] = field(default_factory=list)
    """A study's published claims (:data:`CLAIM_KEYS`), each checked against the sweep's results."""
    origins: dict[str, str] = field(default_factory=dict)
    """Key (``seeds``, ``settings.lr``, ``task_options.copy_len``, ``executor.jobs``...) -> the file it was read
    from; keys given on the command line have none."""

    def keys(self) -> set[str]:
        """Every key this request sets, dotted as in :attr:`origins`."""
        keys = {name for name in ("task", "cells", "preset", "seeds", "reference", "out", "grad_at")
                if getattr(self, name) is not None}
        for table in ("settings", "task_options", "horizon", "executor"):
            keys |= {f"{table}.{name}" for name in getattr(self, table)}
        keys |= {f"cell_settings.{cell}.{name}" for cell, values in self.cell_settings.items() for name in values}
        return keys

    def merged(self, override: "SweepRequest") -> "SweepRequest":
        """This request with every key ``override`` sets replaced (tables key by key)."""
        out = SweepRequest(**{f.name: getattr(self, f.name) for f in fields(self)})
        replaced = override.keys()
        out.origins = {k: v for k, v in self.origins.items() if k not in replaced}
        for f in fields(self):
            if f.name == "origins":
                continue
            value = getattr(override, f.name)
            if isinstance(value, dict):
                if f.name == "cell_settings":
                    merged = {cell: dict(v) for cell, v in getattr(out, f.name).items()}
                    for cell, values in value.items():
                        merged.setdefault(cell, {}).update(values)
                    setattr(out, f.name, merged)
                else:
                    setattr(out, f.name, {**getattr(out, f.name), **value})
            elif value is not None:
                setattr(out, f.name, value)
        out.origins.update(override.origins)
        return out

    def to_toml(self) -> str:
        """The request as a sweep file (what ``sweep.toml`` in the sweep folder holds)."""
        lines = ["# The resolved sweep: the sweep file, if any, with the command line's options applied."]
        for key in ("task", "cells", "preset", "seeds", "reference", "grad_at"):
            value = getattr(self, key)
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        for table in ("settings", "task_options", "tune", "horizon", "executor"):
            values = getattr(self, table)
            if values:
                lines += ["", f"[{table}]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
                for k, v in values.items():
                    if isinstance(v, dict):
                        lines += ["", f"[{table}.{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
        for cell, values in self.cell_settings.items():
            lines += ["", f"[cell_settings.{_toml_key(cell)}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        if self.study:
            lines += ["", "[study]"] + [f"{k} = {_toml_value(v)}" for k, v in self.study.items()]
        for claim in self.claims:
            lines += ["", "[[claims]]"] + [f"{k} = {_toml_value(v)}" for k, v in claim.items()]
        return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if value is None:
        return '"none"'
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def load(path: Path | str) -> SweepRequest:
    """Read and check a sweep file; an unknown key or a bad value is one line naming the key and the fix."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"{path}: not valid TOML: {exc}") from None

    def bad(key: str, why: str) -> HarnessError:
        return HarnessError(f"{path}: {key}: {why}")

    request = _read(data, path, bad)
    request.origins = {key: str(path) for key in request.keys()}
    return request


def _read(data: dict[str, Any], path: Path, bad) -> SweepRequest:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown key; valid keys: {', '.join(sorted(TOP_KEYS))}")
    request = SweepRequest()
    for key in ("task", "preset", "reference", "out"):
        if key in data:
            if not isinstance(data[key], str):
                raise bad(key, "must be a string")
            setattr(request, key, data[key])
    if "cells" in data:
        cells = data["cells"]
        if isinstance(cells, str):
            cells = [c.strip() for c in cells.split(",") if c.strip()]
        if not isinstance(cells, list) or not cells or not all(isinstance(c, str) for c in cells):
            raise bad("cells", 'must be a list of cell names, e.g. cells = ["lstm", "rnn"]')
        request.cells = cells
    if "seeds" in data:
        request.seeds = _seeds(data["seeds"], bad)
    if "grad_at" in data:
        if not isinstance(data["grad_at"], list) or not all(isinstance(s, int) for s in data["grad_at"]):
            raise bad("grad_at", "must be a list of training steps, e.g. grad_at = [100, 1000]")
        request.grad_at = data["grad_at"]
    for table in ("settings", "task_options", "horizon", "executor", "cell_settings", "tune"):
        if table in data and not isinstance(data[table], dict):
            raise bad(table, f"must be a table: [{table}]")
    for name, value in data.get("tune", {}).items():
        option = OPTIONS_BY_NAME.get(name)
        values = _as_list(value)
        request.tune[name] = [_parse(option, v, f"tune.{name}", bad) for v in values] if option else values
    for name, value in data.get("settings", {}).items():
        option = OPTIONS_BY_NAME.get(name)
        if option is None or name == "seed":
            raise bad(f"settings.{name}", f"unknown setting; valid: {', '.join(o for o in OPTIONS_BY_NAME if o != 'seed')}"
                      + (" (seeds go in the top-level 'seeds')" if name == "seed" else ""))
        request.settings[name] = [_parse(option, v, f"settings.{name}", bad) for v in _as_list(value)]
        if len(request.settings[name]) > 1 and not option.sweepable:
            raise bad(f"settings.{name}", "cannot be swept; give one value")
    for name, value in data.get("task_options", {}).items():
        request.task_options[name] = _as_list(value)  # checked against the task's declarations by the sweep command
    for cell, values in data.get("cell_settings", {}).items():
        if not isinstance(values, dict):
            raise bad(f"cell_settings.{cell}", f"must be a table: [cell_settings.{cell}]")
        for name, value in values.items():
            option = OPTIONS_BY_NAME.get(name)
            if option is None or not option.sweepable:
                raise bad(f"cell_settings.{cell}.{name}", "unknown setting; a cell may set: "
                          + ", ".join(o.name for o in OPTIONS_BY_NAME.values() if o.sweepable))
            request.cell_settings.setdefault(cell, {})[name] = _parse(option, value, f"cell_settings.{cell}.{name}", bad)
    rule_keys = {f.name for f in fields(HorizonRule)}
    for name, value in data.get("horizon", {}).items():
        if name not in rule_keys:
            raise bad(f"horizon.{name}", f"unknown key; valid: {', '.join(sorted(rule_keys))}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
            raise bad(f"horizon.{name}", "must be a number between 0 and 1")
        request.horizon[name] = float(value)
    for name, value in data.get("executor", {}).items():
        if name not in EXECUTOR_KEYS:
            raise bad(f"executor.{name}", f"unknown key; valid: {', '.join(EXECUTOR_KEYS)}")
        problem = EXECUTOR_CHECKS[name](value)
        if problem:
            raise bad(f"executor.{name}", problem)
        request.executor[name] = value
    for name, value in data.get("study", {}).items():
        if name not in STUDY_KEYS:
            raise bad(f"study.{name}", f"unknown key; valid: {', '.join(STUDY_KEYS)}")
        if not isinstance(value, str):
            raise bad(f"study.{name}", "must be a string")
        request.study[name] = value
    claims = data.get("claims", [])
    if not isinstance(claims, list):
        raise bad("claims", "must be an array of tables: [[claims]]")
    for i, claim in enumerate(claims):
        where = f"claims[{i}]"
        unknown = sorted(set(claim) - CLAIM_KEYS)
        if unknown:
            raise bad(f"{where}.{unknown[0]}", f"unknown key; valid: {', '.join(sorted(CLAIM_KEYS))}")
        for key in ("cell", "claim", "paper"):
            if not isinstance(claim.get(key), str):
                raise bad(f"{where}.{key}", "is required, as a string")
        if claim["claim"] not in CLAIM_KINDS:
            raise bad(f"{where}.claim", f"choose one of {', '.join(CLAIM_KINDS)}")
        if "value" in claim and not isinstance(claim["value"], (int, float)):
            raise bad(f"{where}.value", "must be a number (the paper's, in the task's loss units)")
        if "seq_len" in claim and not isinstance(claim["seq_len"], int):
            raise bad(f"{where}.seq_len", "must be a whole number (one of the swept T)")
        if "untestable" in claim and not (isinstance(claim["untestable"], str) and claim["untestable"].strip()):
            raise bad(f"{where}.untestable", "must say why the budget cannot test the claim, as a string")
        if "where" in claim and not isinstance(claim["where"], dict):
            raise bad(f"{where}.where", "must be a table of other swept settings, e.g. where = { hidden_size = 40 }")
        request.claims.append(dict(claim))
    return request


def _parse(option, value: Any, key: str, bad) -> Any:
    try:
        return option.parse(value)
    except ValueError as exc:
        raise bad(key, str(exc)) from None


SEED_FORMS = 'give a count (5), a range ("10:15") or a list ([0, 3, 7]) of seeds from 0 to 2147483647'


def _seeds(value: Any, bad) -> list[int]:
    from harness.sweep.grid import parse_seeds

    if isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return parse_seeds(str(value))
        except HarnessError:  # its message names --seeds, which nobody typed here
            raise bad("seeds", f"{SEED_FORMS}; got {value!r}") from None
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool)
                                                 and 0 <= s <= 2**31 - 1 for s in value):
        return list(dict.fromkeys(value))
    raise bad("seeds", f"{SEED_FORMS}; got {value!r}")
