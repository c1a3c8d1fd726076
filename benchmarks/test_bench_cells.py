"""pytest-benchmark suite over the built-in cells (not part of the default test run).

    python -m pytest benchmarks/test_bench_cells.py --benchmark-only --benchmark-group-by=param:shape

Forward and forward+backward at the shapes of docs/benchmarks.md, CPU. Compare
cells within one run only; the machine's load moves every number.
"""

import pytest
import torch

from harness.measurements.bench import Shape
from harness.plugins.model import build_cell
from harness.plugins.registry import load_registry

SHAPES = [Shape(100, 64, 32, 128), Shape(200, 128, 64, 256), Shape(100, 32, 256, 512)]
CELLS = ["rnn", "lstm", "gru"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("cell_name", CELLS)
@pytest.mark.parametrize("direction", ["forward", "forward+backward"])
def test_cell_throughput(benchmark, registry, cell_name, shape, direction):
    torch.manual_seed(0)
    cell = build_cell(registry.cell(cell_name), shape.I, shape.H)
    x = torch.randn(shape.T, shape.B, shape.I, requires_grad=direction != "forward")

    def forward():
        with torch.no_grad():
            return cell(x)[0]

    def forward_backward():
        cell.zero_grad(set_to_none=True)
        out, _ = cell(x)
        out.sum().backward()
        return out

    out = benchmark.pedantic(forward if direction == "forward" else forward_backward, rounds=5, warmup_rounds=1)
    assert out.shape == (shape.T, shape.B, shape.H)
    benchmark.extra_info["tokens_per_s"] = shape.T * shape.B / benchmark.stats.stats.median
