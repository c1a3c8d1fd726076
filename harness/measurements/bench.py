"""``harness bench``: forward and forward+backward throughput of cells at given shapes.

Each shape is ``T x B x I x H``. For every cell and shape we first check the
cell at that shape (:mod:`harness.measurements.correctness`: its contract and, when it
declares one, its reference cell); a cell that fails is ``incorrect`` and is
not timed. Then we build the cell alone (no task head), run ``warmup`` untimed
calls, time ``repeats`` calls and report the median, the quartiles and tokens
per second (``B * T / median``). The backward pass differentiates
``out.sum()`` with respect to the input and every parameter.

Two more figures per pass: its peak memory (:mod:`harness.measurements.memory`,
in one untimed call after the gate and before the timing), and whether its
timing is ``noisy`` (:mod:`harness.measurements.noise`: the repeats spread
widely, or the machine was oversubscribed by the load sampled just before and
just after the timed calls).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from harness.contract.cells import CellSpec
from harness.contract.errors import HarnessError, one_line
from harness.measurements import correctness
from harness.measurements.environment import available_cpus
from harness.measurements.memory import peak_memory
from harness.measurements.noise import judge, sample_load
from harness.measurements.throughput import time_call
from harness.plugins.model import build_cell

BENCH_COLUMNS = ["cell", "device", "dtype", "T", "B", "I", "H", "layers", "pass", "median_s", "q25_s", "q75_s",
                 "tokens_per_s", "us_per_step", "repeats", "peak_mem_bytes", "noisy", "noise", "spread", "other_load",
                 "cpus", "status", "gate", "gate_reference", "gate_error", "gate_tolerance", "reason"]
FAILED_STATUSES = ("failed", "incorrect")
"""Statuses that make ``bench`` exit 1: the cell raised, or computed the wrong thing."""
DEFAULT_SHAPES = "100x64x32x128,200x128x64x256,100x32x256x512"


@dataclass(frozen=True)
class Shape:
    T: int
    B: int
    I: int
    H: int

    def __str__(self) -> str:
        return f"{self.T}x{self.B}x{self.I}x{self.H}"


def parse_shapes(text: str) -> list[Shape]:
    """``"100x64x32x128,200x128x64x256"`` -> shapes (T x B x I x H)."""
    shapes = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)x(\d+)", part)
        if not m:
            raise HarnessError(f"bad shape {part!r}: write T x B x I x H, e.g. 100x64x32x128")
        dims = tuple(int(v) for v in m.groups())
        if min(dims) < 1 or max(dims) > 1_000_000:
            raise HarnessError(f"bad shape {part!r}: every size must be between 1 and 1000000")
        shapes.append(Shape(*dims))
    return shapes


def bench_cell(spec: CellSpec, shape: Shape, device: torch.device, dtype: torch.dtype, layers: int = 1,
               warmup: int = 3, repeats: int = 10, seed: int = 0, reference: CellSpec | None = None,
               memory: bool = True) -> list[dict[str, Any]]:
    """Rows for the forward and forward+backward passes of one cell at one shape, after the correctness gate.

    :param reference: the cell to check against numerically (see :func:`reference_for`); ``None``: the
        contract checks only.
    :param memory: measure each pass's peak memory (one extra, untimed call of each).
    """
    base = {"cell": spec.name, "device": device.type, "dtype": str(dtype).removeprefix("torch."),
            **{"T": shape.T, "B": shape.B, "I": shape.I, "H": shape.H}, "layers": layers}
    reason = spec.unavailable_reason(device, dtype)
    if reason:
        return [{**base, "pass": p, "status": "skipped", "reason": reason} for p in ("forward", "forward+backward")]
    try:
        verdict = correctness.check(spec, shape.T, shape.B, shape.I, shape.H, layers, device, dtype, reference, seed)
        base.update(gate=verdict.gate, gate_reference=verdict.reference, gate_error=verdict.error,
                    gate_tolerance=verdict.tolerance)
        if verdict.gate != correctness.PASSED:
            return [{**base, "pass": p, "status": "incorrect", "reason": verdict.reason}
                    for p in ("forward", "forward+backward")]
    except Exception as exc:  # the cell raised while being checked: a failure, reported like one raised when timed
        return _failed(base, exc)
    torch.manual_seed(seed)
    try:
        cell = build_cell(spec, shape.I, shape.H, layers).to(device=device, dtype=dtype)
        x = torch.randn(shape.T, shape.B, shape.I, device=device, dtype=dtype)
        x_grad = x.clone().requires_grad_(True)

        def forward() -> None:
            with torch.no_grad():
                cell(x)

        def forward_backward() -> None:
            cell.zero_grad(set_to_none=True)
            x_grad.grad = None
            out, _ = cell(x_grad)
            out.sum().backward()

        passes: list[tuple[str, Callable[[], None]]] = [("forward", forward), ("forward+backward", forward_backward)]
        peaks = {name: peak_memory(fn, device) if memory else math.nan for name, fn in passes}
        cpus = available_cpus()
        threads = torch.get_num_threads()
        rows = []
        for name, fn in passes:
            before = sample_load()
            t = time_call(fn, device, warmup=warmup, repeats=repeats)
            noise = judge(t.median, t.q25, t.q75, before, sample_load(), threads, cpus, os.cpu_count() or cpus[0])
            rows.append({**base, "pass": name, "median_s": t.median, "q25_s": t.q25, "q75_s": t.q75,
                         "tokens_per_s": shape.B * shape.T / t.median, "us_per_step": t.median / shape.T * 1e6,
                         "repeats": t.repeats, "peak_mem_bytes": peaks[name], "noisy": noise.noisy,
                         "noise": noise.reason, "spread": noise.spread, "other_load": noise.other_load,
                         "cpus": cpus[0], "status": "ok", "reason": ""})
        return rows
    except Exception as exc:  # a broken cell is reported, the others are still timed
        return _failed(base, exc)


def _failed(base: dict[str, Any], exc: Exception) -> list[dict[str, Any]]:
    reason = one_line(exc)
    return [{**base, "pass": p, "status": "failed", "reason": reason} for p in ("forward", "forward+backward")]


def reference_for(spec: CellSpec, cells: Mapping[str, CellSpec], device: torch.device) -> tuple[CellSpec | None, str]:
    """The spec ``spec.reference`` names, if it can run here (on ``device`` or the CPU, in float64 or float32).

    :returns: ``(reference, "")``, or ``(None, why not)`` when the spec names one that cannot be used;
        ``(None, "")`` when it names none.
    """
    if not spec.reference:
        return None, ""
    reference = cells.get(spec.reference)
    if reference is None:
        return None, f"its reference {spec.reference!r} is not registered here"
    if correctness.reference_setting(reference, device) is None:
        why = reference.unavailable_reason(device, torch.float32)
        return None, f"its reference {spec.reference!r} cannot run here ({why})"
    return reference, ""
