"""What machine and software a run used (``environment.json``), preparing its CPU (``prepare_cpu``), and the CPUs
this process may use (``available_cpus``)."""

from __future__ import annotations

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


# ------------------------------------------------------------------ CPUs this process may use

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup file systems are mounted (tests point it at a folder of their own)."""
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
"""This process's cgroup membership, one ``id:controllers:path`` line per hierarchy."""


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _quota_cpus(quota: float, period: float) -> int:
    """Whole CPUs a CFS quota lets run without throttling: 1.5 CPUs' worth of quota keeps one thread busy
    without a pause, two threads would be throttled a quarter of the time."""
    return max(1, int(quota // period))


def _upwards(root: Path, inner: str) -> list[Path]:
    """``root/inner`` and each of its parents up to ``root`` (a quota on any ancestor applies too). When the
    path is not there (a cgroup namespace shows its own root as ``/``), ``root`` alone."""
    folder = root / inner.strip("/")
    if not folder.is_dir():
        return [root]
    found = [folder]
    while folder != root and root in folder.parents:
        folder = folder.parent
        found.append(folder)
    return found


def _cgroup_limit() -> tuple[int, str] | None:
    """The smallest CPU quota on this process's cgroup or its ancestors: v2 ``cpu.max`` (``"max 100000"`` or
    ``"200000 100000"``), v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota ``-1``: none)."""
    try:
        lines = PROC_SELF_CGROUP.read_text().splitlines()
    except OSError:
        return None
    limits: list[tuple[int, str]] = []
    for line in lines:
        _, controllers, inner = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":                                            # v2, the unified hierarchy
            for folder in _upwards(CGROUP_ROOT, inner):
                try:
                    quota, period = (folder / "cpu.max").read_text().split()[:2]
                except (OSError, ValueError):
                    continue
                if quota != "max" and float(period) > 0:
                    limits.append((_quota_cpus(float(quota), float(period)), "cgroup cpu.max"))
        elif "cpu" in controllers.split(","):                           # v1, the cpu controller's hierarchy
            mount = next((CGROUP_ROOT / name for name in (controllers, "cpu") if (CGROUP_ROOT / name).is_dir()), None)
            if mount is None:
                continue
            for folder in _upwards(mount, inner):
                quota, period = _read_int(folder / "cpu.cfs_quota_us"), _read_int(folder / "cpu.cfs_period_us")
                if quota is not None and period and quota > 0:
                    limits.append((_quota_cpus(quota, period), "cgroup cpu.cfs_quota_us"))
    return min(limits, key=lambda limit: limit[0]) if limits else None


def available_cpus() -> tuple[int, str]:
    """How many CPUs this process can keep busy at once, and which limit decided it.

    The smallest of: the CPUs in its affinity mask (``os.sched_getaffinity``; ``taskset``, Slurm's and
    containers' cpusets), its cgroup's CPU quota in whole CPUs (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``, on its own cgroup or any ancestor; Docker's ``--cpus``, Kubernetes' limits) and
    ``SLURM_CPUS_PER_TASK``. Where the system offers no affinity mask, the machine's CPU count stands in.

    :returns: ``(cpus, source)``, ``source`` one of ``"affinity"``, ``"cpu_count"``, ``"cgroup cpu.max"``,
        ``"cgroup cpu.cfs_quota_us"``, ``"SLURM_CPUS_PER_TASK"``; on a tie the earlier in this list.
    """
    try:
        candidates = [(len(os.sched_getaffinity(0)), "affinity")]
    except (AttributeError, OSError):
        candidates = [(os.cpu_count() or 1, "cpu_count")]
    quota = _cgroup_limit()
    if quota:
        candidates.append(quota)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and int(slurm) > 0:
        candidates.append((int(slurm), "SLURM_CPUS_PER_TASK"))
    return min(candidates, key=lambda candidate: candidate[0])        # min keeps the first of equals
