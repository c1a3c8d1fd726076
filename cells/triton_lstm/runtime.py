"""Where the kernels run: the interpreter switch, availability, and loading the kernels in the right mode.

Triton decides, when a function is decorated with ``@triton.jit``, whether it
will be compiled for the GPU or run by its Python interpreter; it reads
``TRITON_INTERPRET`` (``triton.knobs.runtime.interpret`` in Triton >= 3.3) at
that moment, and for ``triton.language``'s own library functions at
``import triton``. Setting the variable later does nothing to what was
already decorated, and another module (another test, ``torch._inductor``) may
have imported triton first. So this package never relies on import order:

* ``import cells.triton_lstm`` does not import triton at all;
* :func:`load_kernels` executes ``kernels.py`` with the interpreter knob set
  explicitly for the occasion, once per mode, so a process can hold compiled
  kernels (CUDA tensors) and interpreted ones (CPU tensors) side by side.

The user-facing switch is ``HARNESS_TRITON_INTERPRET=1`` (or Triton's own
``TRITON_INTERPRET=1``): without it the cell declines the CPU, in one line,
because the interpreter is exact but very slow.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch

SWITCH = "HARNESS_TRITON_INTERPRET"
_TRUE = {"1", "true", "yes", "on"}

CPU_REASON = (f"triton-lstm needs a CUDA GPU; set {SWITCH}=1 (or TRITON_INTERPRET=1) "
              "to run it through Triton's slow CPU interpreter")
NO_TRITON_REASON = "triton-lstm needs the triton package (pip install 'triton>=3.0')"

_kernels: dict[bool, ModuleType] = {}
_warned: set[str] = set()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def interpreter_requested() -> bool:
    """``HARNESS_TRITON_INTERPRET`` or ``TRITON_INTERPRET`` is set to 1/true/yes/on."""
    return _flag(SWITCH) or _flag("TRITON_INTERPRET")


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def unavailable_reason(device_type: str) -> str | None:
    """``CellSpec.availability``: one line saying why the cell cannot run on ``device_type``, or ``None``."""
    if not triton_installed():
        return NO_TRITON_REASON
    if device_type == "cuda":
        return None
    if device_type == "cpu":
        return None if interpreter_requested() else CPU_REASON
    return f"triton-lstm runs on cuda (or on cpu through Triton's interpreter), not {device_type}"


def use_interpreter(device: torch.device) -> bool:
    """CPU tensors always go through the interpreter; CUDA ones only if ``TRITON_INTERPRET=1`` asks for it."""
    return device.type == "cpu" or _flag("TRITON_INTERPRET")


def check_device(device: torch.device) -> None:
    """Raise ``RuntimeError`` with the one-line reason when the kernels cannot run on ``device``;
    warn (once per process) when they will run through the interpreter."""
    reason = unavailable_reason(device.type)
    if reason:
        raise RuntimeError(reason)
    if use_interpreter(device):
        warn_once("interpreter", "triton-lstm is running through Triton's interpreter: exact but very slow "
                                 "(use small sizes; on a GPU without TRITON_INTERPRET the kernels are compiled)")


def warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


@contextmanager
def _interpret_mode(triton, on: bool) -> Iterator[None]:
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:  # Triton >= 3.3: the knob; scope() restores it and TRITON_INTERPRET afterwards
        with knobs.runtime.scope():
            knobs.runtime.interpret = on
            yield
        return
    old = os.environ.get("TRITON_INTERPRET")  # older Triton reads the variable when decorating
    os.environ["TRITON_INTERPRET"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = old


def load_kernels(interpret: bool) -> ModuleType:
    """``kernels.py`` with every ``@triton.jit`` function interpreted (``True``) or compiled (``False``)."""
    if interpret not in _kernels:
        import triton

        name = f"{__package__}._kernels_{'interpreted' if interpret else 'compiled'}"
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("kernels.py"))
        module = importlib.util.module_from_spec(spec)
        with _interpret_mode(triton, interpret):
            spec.loader.exec_module(module)
        _kernels[interpret] = module
    return _kernels[interpret]
