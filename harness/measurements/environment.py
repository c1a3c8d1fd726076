"""What machine and software a run used (``environment.json``), and preparing its CPU (``prepare_cpu``)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the checkout holding the harness code (``None`` outside git)."""
    where = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def blas_threads() -> dict[str, int]:
    """NumPy's BLAS/OpenMP pools and their thread counts, e.g. ``{"openblas": 2}``."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info

    return {info.get("internal_api", "?"): info.get("num_threads") for info in threadpool_info()}


def describe() -> dict:
    """Python, torch, numpy, triton versions; CPU and GPU names; threads; git commit."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "triton": _version("triton"),
        "harness": _version("rnn-harness"),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "blas_threads": blas_threads(),
        "gpu": gpu_name(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "git_commit": git_commit(),
    }


CGROUP = Path("/sys/fs/cgroup")
"""Where the process's cgroup files are (v2 ``cpu.max``, or v1 ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``)."""


def available_cpus() -> tuple[int, str]:
    """The CPUs this process may use, and what limits them: the smallest of its CPU affinity (``taskset``,
    containers), its cgroup's CPU quota (Docker ``--cpus``, Kubernetes limits; rounded up) and Slurm's
    ``SLURM_CPUS_PER_TASK``. -> ``(count >= 1, "affinity" | "cgroup quota" | "SLURM_CPUS_PER_TASK" | "cpu_count")``.

    A setting of the machine, never its momentary load: the harness sizes thread pools and ``--jobs`` from it.
    """
    try:
        limits = [(len(os.sched_getaffinity(0)), "affinity")]
    except AttributeError:  # not on Linux
        limits = [(os.cpu_count() or 1, "cpu_count")]
    quota = _cgroup_quota()
    if quota is not None:
        limits.append((quota, "cgroup quota"))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.strip().isdigit() and int(slurm) > 0:
        limits.append((int(slurm), "SLURM_CPUS_PER_TASK"))
    count, source = min(limits, key=lambda limit: limit[0])
    return max(1, count), source


def _cgroup_quota() -> int | None:
    """The cgroup's CPU quota in whole CPUs (rounded up), or ``None`` when there is none or it cannot be read."""
    try:
        v2 = CGROUP / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
        v1 = CGROUP / "cpu" / "cpu.cfs_quota_us"
        if v1.exists():
            quota = int(v1.read_text())
            period = int((CGROUP / "cpu" / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def threads_record(threads: int, given: bool) -> dict:
    """What ``environment.json`` and the run header say of the CPU threads: how many, why, and what was available."""
    cpus, limited_by = available_cpus()
    return {"threads": threads, "threads_from": "--threads" if given else "the default (docs/measurements.md)",
            "available_cpus": cpus, "available_cpus_limited_by": limited_by,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def threads_line(record: dict) -> str:
    """The run header's line about threads, e.g. ``cpu threads: 1 (the default; 2 CPUs available, by affinity)``."""
    more = "" if record["threads_from"] == "--threads" else "; --threads N for more, with slightly other numbers"
    return (f"cpu threads: {record['threads']} ({record['threads_from'].removesuffix(' (docs/measurements.md)')}; "
            f"{record['available_cpus']} CPU(s) available, by {record['available_cpus_limited_by']}{more})")


def prepare_cpu(threads: int | None) -> None:
    """Prepare the CPU for a run: flush denormals to zero, and set torch's thread count and NumPy's BLAS pool to
    ``threads`` (both, so CPU comparisons are fair; ``None`` leaves them).

    Flushing: gradients that vanish through time pass through float32's denormal range (below 1.2e-38), where
    x86 arithmetic is microcoded and about 100x slower. Backward through an LSTM at T = 400 ran 10x slower for
    it (docs/measurements.md); the numbers lost are ones that float32 cannot hold accurately anyway. The flag
    is per thread and torch's pool threads copy it when they start, so call this before any other torch work
    (``harness.run.execute`` and ``harness bench`` do; a sweep's unit is a fresh process).
    """
    torch.set_flush_denormal(True)
    if threads is None:
        return
    import numpy  # noqa: F401  (load the BLAS so that threadpoolctl can find it)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
