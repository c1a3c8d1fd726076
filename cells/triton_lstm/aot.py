"""Compile the kernels ahead of time for an NVIDIA GPU, without one, and report what each compiled kernel uses.

What is compiled is what a real launch would compile. The launches are recorded
by running the cell's own host code on ``device="meta"`` tensors
(:func:`function.record_launches`: same padding, tiles and constants), and
Triton's own argument binder specialises them as it would at launch time
(16-byte aligned pointers and integers divisible by 16 marked
``tt.divisibility = 16``, an integer equal to 1 made a constant).

Registers and spills come from ``ptxas -v`` (Triton's bundled ptxas, run again
on the PTX with Triton's flags), because ``CompiledKernel.n_regs`` and
``n_spills`` are filled in by the CUDA driver, which is absent here; the
register count is cross-checked against ``cuobjdump --dump-resource-usage`` of
Triton's own cubin, so a drift between the two ptxas runs is caught. Shared
memory is Triton's own allocation (``metadata.shared``).

Regenerate the table in docs/triton-lstm.md (about a minute the first time,
seconds once Triton's cache holds the kernels)::

    python -m cells.triton_lstm.aot
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import torch

from cells.triton_lstm import function, runtime

CAPABILITY = 90
"""sm_90: H100 / H200."""
SHARED_LIMIT = 227 * 1024
"""Shared memory one block may use on sm_90 (228 KiB per SM, 1 KiB reserved)."""
HIDDEN_SIZES = (64, 128, 256, 512)
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
STEPS, BATCH = 256, 64
"""The shape compiled: the benchmark's ``T``, and four programs. (Neither changes the code beyond its
divisibility by 16, as long as neither is 1.)"""


@dataclass(frozen=True)
class Report:
    """One compiled kernel: where it came from and what it uses per block."""

    kernel: str
    dtype: torch.dtype
    hidden: int
    tiles: function.Tiles
    precision: str | None
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    shared: int
    tensor_cores: str
    """The tensor-core instructions in the PTX, e.g. ``mma.sync m16n8k16 bf16`` (empty: none)."""
    divisibility: bool
    on_chip_before_loop: int
    """Shared-memory allocations (``ttg.local_alloc``) made before the time loop: where resident ``W_hh`` lives."""


def unavailable_reason() -> str | None:
    """Why this Triton build cannot compile for an NVIDIA target (one line), or ``None``."""
    if not runtime.triton_installed():
        return runtime.NO_TRITON_REASON
    if importlib.util.find_spec("triton.backends.nvidia") is None:
        return "this Triton build has no NVIDIA backend (triton.backends.nvidia)"
    try:
        from triton import knobs
        from triton.backends.nvidia.compiler import get_ptxas

        tools = (get_ptxas(CAPABILITY), knobs.nvidia.cuobjdump)
    except Exception as error:  # a Triton without these knobs, or a tool that does not run
        return f"this Triton build cannot locate ptxas/cuobjdump ({type(error).__name__}: {error})"
    if any(tool is None or not os.access(tool.path, os.X_OK) for tool in tools):
        return "this Triton build ships no usable ptxas/cuobjdump for sm_90"
    return None


def record(hidden: int, dtype: torch.dtype, steps: int = STEPS, batch: int = BATCH) -> list[function.Launch]:
    """The forward (gates saved, as in training) and backward launches of one layer ``I = H``, fp32 with TF32 off."""
    meta = torch.device("meta")
    x = torch.empty(steps, batch, hidden, dtype=dtype, device=meta)
    state = torch.empty(batch, hidden, dtype=dtype, device=meta)
    w_ih, w_hh = (torch.empty(4 * hidden, hidden, dtype=dtype, device=meta) for _ in range(2))
    bias = torch.empty(4 * hidden, dtype=dtype, device=meta)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with function.record_launches() as launches:
            hs, cs, gates = function._forward_padded(x, state, state, w_ih, w_hh, bias, bias, True, None)
            function.backward_sequence(torch.empty_like(x), None, None, x, w_hh, hs, cs, gates)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return launches


def compile_launch(launch: function.Launch, capability: int = CAPABILITY):
    """``triton.compile`` of one recorded launch for ``sm_<capability>``, specialised by Triton's launch binder."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = getattr(runtime.load_kernels(False), launch.kernel)
    target = GPUTarget("cuda", capability, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.meta)
    options, signature, constexprs, attrs = kernel._pack_args(backend, launch.meta, bound, specialization, options)
    return triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{os.path.basename(command[0])} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout + done.stderr


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in:\n{text}")
    return int(found.group(1))


def resources(compiled, capability: int = CAPABILITY) -> dict[str, int]:
    """Registers, spills and stack from ``ptxas -v``; registers checked against cuobjdump of Triton's cubin."""
    from triton import knobs
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        ptx, cubin = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
        with open(ptx, "w") as f:
            f.write(compiled.asm["ptx"])
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        fmad = [] if compiled.metadata.enable_fp_fusion else ["--fmad=false"]
        log = _run([get_ptxas(capability).path, "-lineinfo", *fmad, "-v", "--regAllocOptLevel=2",
                    f"--gpu-name={sm_arch_from_capability(capability)}", ptx, "-o", os.path.join(tmp, "again.cubin")])
        usage = _run([knobs.nvidia.cuobjdump.path, "--dump-resource-usage", cubin])
    found = {"registers": _number(r"Used (\d+) registers", log),
             "spill_stores": _number(r"(\d+) bytes spill stores", log),
             "spill_loads": _number(r"(\d+) bytes spill loads", log),
             "stack": _number(r"(\d+) bytes stack frame", log)}
    theirs = _number(r"REG:(\d+)", usage)
    if theirs != found["registers"]:
        raise RuntimeError(f"ptxas -v says {found['registers']} registers, Triton's cubin has {theirs}: "
                           "the flags here no longer match Triton's (backends/nvidia/compiler.py make_cubin)")
    return found


def tensor_core_instructions(ptx: str) -> str:
    """The distinct tensor-core instructions (``mma.sync`` and Hopper's ``wgmma``) in ``ptx``, one phrase each."""
    found = re.findall(r"\b(wgmma\.mma_async|mma\.sync)\.[\w.]*?(m\d+n\d+k\d+)[\w.]*?\.(tf32|bf16|f16|f64)\b", ptx)
    return ", ".join(sorted({" ".join(f) for f in found}))


def _allocations_before_loop(compiled) -> int:
    ttgir = compiled.asm["ttgir"]
    loop = ttgir.find("scf.for")  # none when T = 1 is a constant: the time loop is gone
    return ttgir[:loop if loop >= 0 else len(ttgir)].count("ttg.local_alloc")


def report(hidden: int, dtype: torch.dtype, capability: int = CAPABILITY, steps: int = STEPS,
           batch: int = BATCH) -> list[Report]:
    """Compile the forward and backward kernels of one configuration and measure them."""
    reports = []
    tiles = function.choose_tiles(hidden, dtype)
    for launch in record(hidden, dtype, steps, batch):
        compiled = compile_launch(launch, capability)
        ptx = compiled.asm["ptx"]
        # H is padded to a multiple of 16: the launch's divisibility hint must reach the IR
        divisible = "%H: i32 {tt.divisibility = 16 : i32}" in compiled.asm["ttir"]
        reports.append(Report(launch.kernel, dtype, hidden, tiles, launch.meta["PRECISION"],
                              shared=compiled.metadata.shared, tensor_cores=tensor_core_instructions(ptx),
                              divisibility=divisible, on_chip_before_loop=_allocations_before_loop(compiled),
                              **resources(compiled, capability)))
    return reports


def markdown(reports: list[Report]) -> str:
    """The table of docs/triton-lstm.md."""
    lines = ["| dtype | H | kernel | tiles B×H×K, warps | W_hh | `tl.dot` precision | registers | spills (bytes) | "
             "shared (KiB) | tensor-core instructions |",
             "|---|---:|---|---|---|---|---:|---:|---:|---|"]
    for r in reports:
        t = r.tiles
        lines.append(f"| {str(r.dtype).removeprefix('torch.')} | {r.hidden} | {r.kernel.split('_')[1]} | "
                     f"{t.block_b}×{t.block_h}×{t.block_k}, {t.num_warps} | {'resident' if t.resident else 'streamed'} "
                     f"| {r.precision or 'default'} | {r.registers} | {r.spill_stores + r.spill_loads} | "
                     f"{r.shared / 1024:.0f} | {r.tensor_cores or 'none'} |")
    return "\n".join(lines)


def main() -> int:
    reason = unavailable_reason()
    if reason:
        print(f"triton-lstm aot: {reason}", file=sys.stderr)
        return 2
    import triton
    from triton.backends.nvidia.compiler import get_ptxas

    reports = [r for dtype in DTYPES for hidden in HIDDEN_SIZES for r in report(hidden, dtype)]
    print(f"sm_{CAPABILITY}, Triton {triton.__version__}, ptxas {get_ptxas(CAPABILITY).version}, "
          f"T={STEPS}, B={BATCH}, fp32 with TF32 off\n")
    print(markdown(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
