"""Sweep executors: the speed-up of --jobs 2 over --jobs 1, and each executor's fixed cost per unit.

    python benchmarks/bench_executors.py                 # both parts, about 10 minutes on 2 cores
    python benchmarks/bench_executors.py --part overhead # only the fixed cost per unit
    python benchmarks/bench_executors.py --part overhead --busy 2   # the same beside 2 busy processes

Part 1 runs the same 8-unit sweep (lstm and gru on copy, T = 10 and 20, 2 seeds,
6,000 steps: over 20 s each on one thread, quiet) with
--jobs 1 (one unit at a time) and with --jobs 2 (two at a time), back to back,
each in a fresh folder. Every unit has one thread in both, so the numbers are
the same and only the wall time differs.

Part 2 times sweeps of tiny units (1 step, H = 8, T = 5) on each executor: the
wall time per unit is then almost all fixed cost (worker start, imports, the run
folder, the engine's own bookkeeping). Two sweeps per executor, of 2 and of 6
units, separate the per-unit cost (the slope) from the one-off start-up (the
intercept), such as starting a local Ray cluster.

Every sweep is a separate ``python -m harness sweep`` process, as a user would run it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = [sys.executable, "-m", "harness", "sweep", "--task", "copy", "--no-plots", "--no-progress"]
EIGHT_UNITS = ["--cells", "lstm,gru", "--seq-len", "10,20", "--seeds", "2", "--steps", "6000"]
TINY = ["--cells", "lstm", "--seq-len", "5", "--steps", "1", "--hidden-size", "8", "--batch-size", "4",
        "--task-opt", "eval_size=16"]
EXECUTORS = {"local": ["--executor", "local", "--jobs", "2"], "ray": ["--executor", "ray", "--jobs", "2"],
             "submitit": ["--executor", "submitit", "--jobs", "2"]}


def timed(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([*SWEEP, *args, "--out", str(out)], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"sweep failed ({done.returncode}): {' '.join(args)}\n{done.stderr[-2000:]}")
    return elapsed


def speedup(root: Path, repeats: int) -> None:
    import pandas as pd

    walls: dict[int, list[float]] = {1: [], 2: []}
    units: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeats):
        for jobs in (1, 2):
            out = root / f"jobs{jobs}-{r}"
            walls[jobs].append(timed([*EIGHT_UNITS, "--jobs", str(jobs)], out))
            units[jobs] += pd.read_csv(out / "units.csv")["wall_s"].tolist()
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print("| sweep of 8 units, 1 thread each | wall s (median of %d) | unit wall s (median) | units' walls summed |"
          % repeats)
    print("|---|---|---|---|")
    for jobs, wall in ((1, one), (2, two)):
        print(f"| --jobs {jobs} | {wall:.1f} | {statistics.median(units[jobs]):.1f} | "
              f"{sum(units[jobs]) / repeats:.1f} |")
    print(f"\nspeed-up of --jobs 2 over --jobs 1: {one / two:.2f}x")
    # What two workers could do at best with the units as they ran side by side: the engine's own costs (one - the
    # units' sum at --jobs 1) plus the 2-job units, longest first, on 2 workers. The gap to it is the engine's.
    engine = one - sum(units[1]) / repeats
    ideal = engine + two_worker_makespan(units[2][:len(units[2]) // repeats])
    print(f"the engine's own time at --jobs 1: {engine:.1f} s; the best --jobs 2 could do with these units: "
          f"{ideal:.1f} s ({one / ideal:.2f}x)\n")


def two_worker_makespan(walls: list[float]) -> float:
    """Longest-first on two workers: the wall time of running ``walls`` two at a time."""
    load = [0.0, 0.0]
    for w in sorted(walls, reverse=True):
        load[load.index(min(load))] += w
    return max(load)


def startup(root: Path, repeats: int) -> None:
    """What the local executor adds to one unit: a 1-unit sweep against the same unit as 'harness run', alternated."""
    run = [sys.executable, "-m", "harness", "run", "--task", "copy", "--no-plots", "--no-progress", *TINY[:-2]]
    walls: dict[str, list[float]] = {"run": [], "sweep": []}
    for r in range(repeats):
        start = time.perf_counter()
        subprocess.run([*run, "--task-opt", "eval_size=16", "--out", str(root / f"run-{r}")], capture_output=True,
                       check=True)
        walls["run"].append(time.perf_counter() - start)
        walls["sweep"].append(timed([*TINY, "--seeds", "1", "--jobs", "1"], root / f"sweep1-{r}"))
    one, many = statistics.median(walls["run"]), statistics.median(walls["sweep"])
    print(f"| one tiny unit (median of {repeats}) | wall s |\n|---|---|\n| harness run | {one:.2f} |\n"
          f"| harness sweep, local executor | {many:.2f} |\n\nthe sweep's own start-up: {many - one:.2f} s\n")


def overhead(root: Path, executors: list[str]) -> None:
    print("| executor | start-up s (intercept) | fixed cost per unit s (slope) | 2 units s | 6 units s |")
    print("|---|---|---|---|---|")
    for name in executors:
        args = EXECUTORS[name]
        small = timed([*TINY, "--seeds", "2", *args], root / f"{name}-2")
        large = timed([*TINY, "--seeds", "6", *args], root / f"{name}-6")
        per_unit = (large - small) / 4
        print(f"| {name} | {small - 2 * per_unit:.1f} | {per_unit:.2f} | {small:.1f} | {large:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["speedup", "overhead", "startup", "both"], default="both",
                   help="both: speedup, startup and overhead")
    p.add_argument("--repeats", type=int, default=1, help="runs of each --jobs setting, alternated (default 1)")
    p.add_argument("--executors", default=",".join(EXECUTORS), help="for the overhead part (default: all)")
    p.add_argument("--busy", type=int, default=0, help="run beside this many busy processes (default 0)")
    args = p.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.part in ("speedup", "both"):
                speedup(Path(tmp), args.repeats)
            if args.part in ("startup", "both"):
                startup(Path(tmp), max(3, args.repeats))
            if args.part in ("overhead", "both"):
                overhead(Path(tmp), args.executors.split(","))
    finally:
        for spinner in spinners:
            spinner.kill()


if __name__ == "__main__":
    main()
