"""Peak memory per pass: known allocations are reported to the byte (give or take Python's own bookkeeping),
and ``nn.LSTM``'s forward+backward, which keeps its activations for the backward pass, grows linearly in T."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.measurements.bench import Shape, bench_cell
from harness.measurements.memory import peak_memory

CPU = torch.device("cpu")
MiB = 2 ** 20
SLACK = 64 * 1024
"""Python objects made during a pass (frames, the tensors' Python wrappers) count too: a few kilobytes."""


def test_the_peak_of_known_torch_allocations_on_the_cpu():
    def allocate():
        a = torch.empty(MiB, dtype=torch.uint8) * 0      # 1 MiB, plus 1 MiB for the product; the first dies at once
        b = torch.empty(3 * MiB, dtype=torch.uint8)       # live beside a: peak 4 MiB
        del a, b
        c = torch.empty(2 * MiB, dtype=torch.uint8)      # after both died: no new peak
        return c.numel()

    peak = peak_memory(allocate, CPU)
    assert 4 * MiB <= peak <= 4 * MiB + SLACK


def test_numpy_arrays_count_too():
    def allocate():
        return np.ones(MiB // 8 * 5).sum()                 # 5 MiB of float64

    peak = peak_memory(allocate, CPU)
    assert 5 * MiB <= peak <= 5 * MiB + SLACK


def test_memory_live_before_the_pass_is_not_counted():
    kept = torch.ones(8 * MiB, dtype=torch.uint8)

    def use():
        return (kept[:MiB] + 1).numel()                     # reads 8 MiB that exist already, allocates 1 MiB

    assert MiB <= peak_memory(use, CPU) <= MiB + SLACK


def test_memory_freed_during_the_pass_does_not_offset_new_allocations():
    """A pass that drops what existed before it (bench's old gradients) is charged for what it allocates."""
    holder = [torch.ones(4 * MiB, dtype=torch.uint8)]

    def swap():
        holder.clear()
        holder.append(torch.ones(2 * MiB, dtype=torch.uint8))

    assert 2 * MiB <= peak_memory(swap, CPU) <= 2 * MiB + SLACK


def lstm_peaks(device: torch.device, registry, lengths=(64, 128, 256)) -> dict[str, list[float]]:
    """bench's peak_mem_bytes of ``lstm`` (B = 4, I = 8, H = 32) at each T, per pass."""
    peaks: dict[str, list[float]] = {"forward": [], "forward+backward": []}
    for T in lengths:
        for row in bench_cell(registry.cell("lstm"), Shape(T, 4, 8, 32), device, torch.float32, warmup=0,
                              repeats=1):
            assert row["status"] == "ok", row["reason"]
            peaks[row["pass"]].append(row["peak_mem_bytes"])
    return peaks


def assert_linear(peaks: list[float], added_steps_bytes: int, at_least: float, rel: float = 0.05) -> None:
    """Peaks at T, 2T, 4T: the second doubling adds twice what the first did (linear in T: the constant part
    cancels), and the first adds at least ``at_least`` times ``added_steps_bytes``, the bytes of a (T, B, H)
    tensor over the T steps it added."""
    small, medium, large = peaks
    first, second = medium - small, large - medium
    assert second == pytest.approx(2 * first, rel=rel)
    assert first >= at_least * added_steps_bytes


def test_lstm_forward_backward_memory_is_linear_in_T(registry):
    peaks = lstm_peaks(CPU, registry)
    per_step = 4 * 32 * 4                                   # one (B, H) float32 slice: 512 bytes
    # forward+backward keeps the gates and states of every step for backward: several (T, B, H) tensors' worth
    assert_linear(peaks["forward+backward"], per_step * 64, at_least=4)
    # the forward pass without autograd holds the output (T, B, H) at least
    assert_linear(peaks["forward"], per_step * 64, at_least=1)
    assert all(fb > f for fb, f in zip(peaks["forward+backward"], peaks["forward"]))


@pytest.mark.gpu
def test_the_peak_of_known_cuda_allocations():
    device = torch.device("cuda")
    kept = torch.empty(16 * MiB, dtype=torch.uint8, device=device)

    def allocate():
        a = torch.empty(MiB, dtype=torch.uint8, device=device)
        b = torch.empty(3 * MiB, dtype=torch.uint8, device=device)
        del a, b
        return torch.empty(2 * MiB, dtype=torch.uint8, device=device).numel()

    assert peak_memory(allocate, device) == 4 * MiB         # the caching allocator counts whole tensors
    del kept


@pytest.mark.gpu
def test_lstm_forward_backward_memory_is_linear_in_T_on_cuda(registry):
    peaks = lstm_peaks(torch.device("cuda"), registry, lengths=(256, 512, 1024))
    per_step = 4 * 32 * 4
    assert_linear(peaks["forward+backward"], per_step * 256, at_least=4, rel=0.1)  # cuDNN's workspace rounds
