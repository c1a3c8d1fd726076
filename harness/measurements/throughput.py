"""Timing: training-step throughput for ``run``, and forward/backward timing for ``bench``.

On CUDA every measurement synchronises the device (or uses CUDA events), so the
time is the GPU's, not the launch queue's. Warm-up iterations are never timed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Accumulates wall time and tokens of training steps after ``warmup`` steps."""

    def __init__(self, device: torch.device, warmup: int = 5):
        self.device = device
        self.warmup = warmup
        self.seen = 0
        self.seconds = 0.0
        self.tokens = 0
        self._t0 = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self._t0 = time.perf_counter()

    def stop(self, tokens: int) -> None:
        synchronize(self.device)
        elapsed = time.perf_counter() - self._t0
        self.seen += 1
        if self.seen > self.warmup:
            self.seconds += elapsed
            self.tokens += tokens

    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class Timing:
    """Seconds per call over the repeats: median and spread."""

    median: float
    q25: float
    q75: float
    minimum: float
    repeats: int


def time_call(fn: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 10) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
    qs = statistics.quantiles(samples, n=4) if len(samples) >= 2 else [samples[0]] * 3
    return Timing(statistics.median(samples), qs[0], qs[2], min(samples), len(samples))
