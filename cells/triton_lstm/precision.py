"""tf32x3, the fp32 kernels' tensor-core arithmetic, emulated on the CPU to measure its accuracy without a GPU.

With TF32 off (torch's default for fp32 matmuls), the kernels run their fp32
``tl.dot`` as ``input_precision="tf32x3"``: each operand ``a`` is split into a
high part ``hi = tf32(a)`` (the nearest value with TF32's 10-bit mantissa) and
a low remainder ``lo = a - hi``, and the product is ``hi·hi + (lo·hi + hi·lo)``:
three TF32 tensor-core products accumulated in fp32 (``lo·lo``, about 2^-22
of the product, is dropped). :func:`tf32x3_matmul` does the same in torch
(TF32 values multiply exactly in fp32, so an fp32 matmul of them is a TF32
product), and :func:`measure` runs it as the recurrent product of the naive
reference LSTM (``naive.py``), forward and backward, against float64
``nn.LSTM`` and autograd.

This is an **emulation**, not a measurement of the kernel: an ``mma``'s
internal accumulation order and rounding differ from the CPU's, and the low
parts are assumed to reach the tensor core truncated to TF32 (it ignores the
13 low mantissa bits of an fp32 operand). The real kernel is checked against
the same float64 reference, with :data:`TF32X3_TOLERANCE`, by a GPU test in
tests/test_triton_lstm.py.

Regenerate the table in docs/triton-lstm.md (several minutes on one core)::

    python -m cells.triton_lstm.precision
"""

from __future__ import annotations

import sys
import time

import torch
from torch import Tensor, nn

from cells.triton_lstm.naive import Matmul, naive_backward, naive_forward

TF32X3_TOLERANCE = 1e-5
"""Largest :func:`scaled_error` allowed for fp32 with tf32x3, forward and gradients, at the benchmark's sizes."""
BATCHES = (1, 16, 64, 256)
HIDDEN_SIZES = (128, 256, 512)
"""The benchmark's sizes that run on the kernels (H = 1024 falls back to cuDNN); T = 256, I = H."""
STEPS = 256


def round_tf32(x: Tensor) -> Tensor:
    """fp32 -> the nearest TF32 value (10 mantissa bits), ties away from zero (PTX ``cvt.rna.tf32.f32``)."""
    return ((x.contiguous().view(torch.int32) + 0x1000) & -0x2000).view(torch.float32)


def truncate_tf32(x: Tensor) -> Tensor:
    """fp32 -> TF32 by dropping the 13 low mantissa bits."""
    return (x.contiguous().view(torch.int32) & -0x2000).view(torch.float32)


def tf32_matmul(a: Tensor, b: Tensor) -> Tensor:
    """One TF32 product (what ``allow_tf32`` gives), for comparison."""
    return round_tf32(a) @ round_tf32(b)


def tf32x3_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` as ``input_precision="tf32x3"`` computes it: ``hi·hi + (lo·hi + hi·lo)``."""
    a_hi, b_hi = round_tf32(a), round_tf32(b)
    a_lo, b_lo = truncate_tf32(a - a_hi), truncate_tf32(b - b_hi)
    return a_hi @ b_hi + (a_lo @ b_hi + a_hi @ b_lo)


def scaled_error(value: Tensor, reference: Tensor) -> float:
    """Largest absolute difference, relative to ``max(1, max |reference|)`` (absolute for values up to 1)."""
    diff = (value.double().cpu() - reference.double().cpu()).abs().max().item()
    return diff / max(1.0, reference.abs().max().item())


VARIANTS: dict[str, Matmul] = {"fp32": torch.matmul, "tf32x3": tf32x3_matmul, "tf32": tf32_matmul}
"""Recurrent products compared: exact fp32 products (the error floor of fp32), tf32x3 and a single TF32 product."""


def measure(batch: int, hidden: int, steps: int = STEPS, seed: int = 0) -> dict[str, tuple[float, float]]:
    """-> for each of :data:`VARIANTS`, ``(forward error, gradient error)``: the largest :func:`scaled_error` of
    ``out, h_T, c_T``, and of the gradients of a random objective w.r.t. ``x, h0, c0`` and every parameter, of an
    fp32 LSTM (``I = H``) against float64 ``nn.LSTM`` and autograd."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ref = nn.LSTM(hidden, hidden).double()
    x = torch.randn(steps, batch, hidden, generator=gen, dtype=torch.float64, requires_grad=True)
    h0, c0 = (0.5 * torch.randn(batch, hidden, generator=gen, dtype=torch.float64) for _ in range(2))
    h0.requires_grad_()
    c0.requires_grad_()
    d_out, d_h, d_c = (torch.randn(*shape, generator=gen, dtype=torch.float64)
                       for shape in ((steps, batch, hidden), (batch, hidden), (batch, hidden)))
    out, (h, c) = ref(x, (h0[None], c0[None]))
    loss = (out * d_out).sum() + (h[0] * d_h).sum() + (c[0] * d_c).sum()
    w_ih, w_hh, b_ih, b_hh = (ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0, ref.bias_hh_l0)
    grads = torch.autograd.grad(loss, [x, h0, c0, w_ih, w_hh, b_ih])
    expected = {"forward": (out, h[0], c[0]), "backward": grads}

    def f32(t: Tensor) -> Tensor:
        return t.detach().float()

    results = {}
    with torch.no_grad():
        for name, matmul in VARIANTS.items():
            hs, cs, gates = naive_forward(f32(x), f32(h0), f32(c0), f32(w_ih), f32(w_hh), f32(b_ih), f32(b_hh),
                                          matmul=matmul)
            mine = naive_backward(f32(d_out), f32(d_h), f32(d_c), f32(x), f32(w_ih), f32(w_hh), hs, cs, gates,
                                  matmul=matmul)
            forward = max(map(scaled_error, (hs[1:], hs[-1], cs[-1]), expected["forward"]))
            backward = max(map(scaled_error, [mine[k] for k in ("x", "h0", "c0", "w_ih", "w_hh", "b")],
                               expected["backward"]))
            results[name] = (forward, backward)
    return results


def main() -> int:
    torch.set_num_threads(1)
    print(f"Emulated on the CPU (torch {torch.__version__}), T={STEPS}, I=H, seed 0: largest scaled error against "
          "float64 nn.LSTM\n")
    names = list(VARIANTS)
    print("| B | H | " + " | ".join(f"forward {n}" for n in names) + " | "
          + " | ".join(f"gradients {n}" for n in names) + " |")
    print("|---:|---:|" + "---:|" * (2 * len(names)))
    worst = 0.0
    for hidden in HIDDEN_SIZES:
        for batch in BATCHES:
            start = time.time()
            errors = measure(batch, hidden)
            worst = max(worst, *errors["tf32x3"])
            print(f"| {batch} | {hidden} | " + " | ".join(f"{errors[n][0]:.1e}" for n in names) + " | "
                  + " | ".join(f"{errors[n][1]:.1e}" for n in names) + " |", flush=True)
            print(f"  ({time.time() - start:.0f} s)", file=sys.stderr)
    print(f"\nlargest tf32x3 error {worst:.2e}; TF32X3_TOLERANCE = {TF32X3_TOLERANCE:g}")
    return 0 if worst <= TF32X3_TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
