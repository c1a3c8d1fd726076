"""Can a timing be trusted? ``bench`` marks a timed pass ``noisy`` when its repeats spread widely or when the
machine was oversubscribed while it ran (docs/measurements.md, "Noisy timings").

The two rules, and why these thresholds:

* **spread**: ``(q75 - q25) / median`` of the timed calls at or above :data:`SPREAD_LIMIT` (13.5%). pyperf
  warns when the standard deviation reaches 10% of the mean (``format_checks`` in ``pyperf/_cli.py``); for
  normally distributed timings the interquartile range is 1.349 standard deviations, so 13.5% is the same
  limit stated on the quartiles, which one slow call (a page fault, a preemption) does not move the way it
  moves a standard deviation. pyperf also warns when the minimum or maximum lies 50% from the mean; bench
  reports the median, which a lone outlier does not shift, so that rule is left out.
* **oversubscribed**: more runnable threads than CPUs. Two cases:

  - this process times with more threads than it has CPUs (:func:`~harness.measurements.environment.available_cpus`:
    affinity, cgroup quota, Slurm), so its own threads queue;
  - the other processes' load plus this process's threads exceed the machine's CPUs by more than
    :data:`LOAD_MARGIN` (half a CPU, for daemons). The other processes' load is the larger of two estimates,
    each from a sample taken before and one taken after the pass: the 1-minute load average minus this
    process's threads (the average counts them too, once they have run for a while; the higher sample), and the
    threads runnable at that instant that are not this process's (``/proc/loadavg``; the lower sample, so
    that a moment's spike is not a busy machine). The load average reacts within seconds only to load
    that stays; the instant count sees a load that started a moment ago. pyperf records both with every
    run (``load_avg_1min`` and ``runnable_threads`` in ``pyperf/_collect_metadata.py``) without a limit.
    Both are counted over the whole machine (Linux does not scope them to a cgroup or cpuset), so they are
    compared with the machine's CPUs: a job given 4 of a node's 64 cores is not flagged because other jobs
    keep the other 60 busy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

SPREAD_LIMIT = 0.135
"""Largest ``(q75 - q25) / median`` of a quiet timing: pyperf's 10% standard deviation, as a quartile range."""
LOAD_MARGIN = 0.5
"""CPUs of load beyond the machine's CPUs that still count as quiet (system daemons)."""
PROC = Path("/proc")


@dataclass(frozen=True)
class LoadSample:
    """The machine's load at one instant."""

    load1: float
    """1-minute load average (NaN where the system has none)."""
    runnable_others: float
    """Threads runnable right now that are not this process's (NaN without ``/proc``)."""


def _own_running_threads() -> int:
    """This process's threads in state R (running or runnable) right now, from ``/proc/self/task/*/stat``."""
    count = 0
    for stat in (PROC / "self" / "task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:                       # the thread ended between listing and reading
            continue
        if text[text.rindex(")") + 2:].startswith("R"):   # the name in parentheses may hold spaces
            count += 1
    return count


def sample_load() -> LoadSample:
    """The 1-minute load average and the threads of other processes runnable now."""
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        load1 = math.nan
    try:
        running = int((PROC / "loadavg").read_text().split()[3].split("/")[0])
        others = max(0, running - _own_running_threads())
    except (OSError, ValueError, IndexError):
        others = math.nan
    return LoadSample(float(load1), float(others))


@dataclass(frozen=True)
class Noise:
    """Whether one timed pass is noisy, and why."""

    noisy: bool
    reason: str
    """One line, the rules that fired joined by ``"; "``; empty when quiet."""
    spread: float
    """``(q75 - q25) / median``."""
    other_load: float
    """Estimated CPUs kept busy by other processes (NaN when neither load figure exists)."""


def _finite(values) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def other_load(before: LoadSample, after: LoadSample, threads: int) -> float:
    """CPUs the other processes keep busy: the larger of the load average (higher sample) minus ``threads`` and
    the instant count of their runnable threads (lower sample); at least 0, NaN when neither exists."""
    estimates = []
    averages = _finite([before.load1, after.load1])
    if averages:
        estimates.append(max(averages) - threads)
    instants = _finite([before.runnable_others, after.runnable_others])
    if instants:
        estimates.append(min(instants))
    return max(0.0, *estimates) if estimates else math.nan


def judge(median: float, q25: float, q75: float, before: LoadSample, after: LoadSample, threads: int,
          cpus: tuple[int, str], machine_cpus: int) -> Noise:
    """Apply the two rules of this module to one pass.

    :param median, q25, q75: seconds per call over the timed repeats.
    :param before, after: :func:`sample_load` just before and just after the pass.
    :param threads: threads this process computes with (torch's intra-op threads).
    :param cpus: :func:`~harness.measurements.environment.available_cpus`.
    :param machine_cpus: the machine's CPUs (``os.cpu_count()``), which the load figures count.
    """
    reasons = []
    spread = (q75 - q25) / median if median > 0 else math.nan
    if spread >= SPREAD_LIMIT:
        reasons.append(f"repeats spread {spread:.0%} of the median (quiet: below {SPREAD_LIMIT:.1%})")
    available, source = cpus
    if threads > available:
        reasons.append(f"{threads} threads on {available} available CPUs ({source})")
    others = other_load(before, after, threads)
    if math.isfinite(others) and others + threads > machine_cpus + LOAD_MARGIN:
        reasons.append(f"oversubscribed: other processes keep about {others:.1f} CPUs busy beside this process's "
                       f"{threads} thread(s), on {machine_cpus} CPUs")
    return Noise(bool(reasons), "; ".join(reasons), spread, others)


ADVICE = "run on a quiet machine, pin the benchmark to idle cores (taskset -c), or raise --repeats"
"""What to do about noisy timings, as the warnings say it."""
