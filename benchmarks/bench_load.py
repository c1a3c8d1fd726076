"""The main job on a quiet machine and beside busy processes: how much slower, and whether the numbers change.

    python benchmarks/bench_load.py                      # about 10 minutes on 2 cores
    python benchmarks/bench_load.py --steps 3000 --threads 1

Runs ``python -m harness run --cells lstm,rnn --task copy --steps N`` (the README's main job, with fewer steps by
default) under three conditions, which this script makes itself:

* ``quiet``: nothing else running (check the load average it prints before trusting the figures);
* ``busy``: beside 2 busy processes (``python -c "while True: pass"``), as on a shared laptop;
* ``4x``: beside enough busy processes that 4 runnable threads compete for each available CPU.

for each thread setting given (``default`` is the harness's own choice, one thread; ``2`` and ``2-passive`` are two
threads with OpenMP's default and passive wait policies, the alternatives it was chosen against). It reports each
wall time, its ratio to the quiet run of the same setting, and whether the summary's numbers (every column but the
timing ones) are bit-identical to that quiet run. Goals (docs/benchmarks.md): busy <= 2x quiet at the defaults,
<= 6x at 4x oversubscription, and the same numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.measurements.environment import available_cpus  # noqa: E402
from harness.reports.columns import TIMING  # noqa: E402

SETTINGS = {"default": ([], {}), "2": (["--threads", "2"], {}), "2-passive": (["--threads", "2"],
                                                                             {"OMP_WAIT_POLICY": "PASSIVE"})}


def spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.kill()
    for p in processes:
        p.wait()


def main_job(steps: int, extra: list[str], env: dict[str, str], out: Path) -> float:
    command = [sys.executable, "-m", "harness", "run", "--cells", "lstm,rnn", "--task", "copy", "--steps", str(steps),
               "--no-progress", "--no-plots", "--out", str(out), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def numbers(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "summary.csv").drop(columns=list(TIMING))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="training steps per cell (default 1000)")
    parser.add_argument("--threads", default="default,2,2-passive",
                        help=f"comma-separated settings among {', '.join(SETTINGS)} (default: all)")
    parser.add_argument("--conditions", default="quiet,busy,4x",
                        help="comma-separated conditions among quiet, busy, 4x (default: all; quiet comes first)")
    args = parser.parse_args()
    cpus, limited_by = available_cpus()
    print(f"{cpus} CPUs available (by {limited_by}); load average before: {os.getloadavg()[0]:.2f}; "
          f"main job with --steps {args.steps}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.threads.split(","):
            extra, env = SETTINGS[name]
            threads = 2 if "2" in name else 1
            conditions = {"quiet": 0, "busy": 2, "4x": max(1, 4 * cpus - threads)}
            conditions = {name: busy for name, busy in conditions.items() if name in args.conditions.split(",")}
            quiet = None
            for condition, busy in conditions.items():
                out = Path(tmp) / f"{name}-{condition}"
                load = spinners(busy)
                try:
                    time.sleep(0.5 if busy else 0)  # let the spinners reach the scheduler
                    wall = main_job(args.steps, extra, env, out)
                finally:
                    stop(load)
                same = True if quiet is None else numbers(out).equals(numbers(quiet[1]))
                quiet = quiet or (wall, out)
                rows.append({"threads": name, "condition": condition, "busy_processes": busy, "wall_s": wall,
                             "x_quiet": wall / quiet[0], "same_numbers": same})
                print(f"  {name:>10} {condition:>6} ({busy} busy): {wall:7.1f} s, {wall / quiet[0]:5.2f}x quiet, "
                      f"numbers {'identical' if same else 'DIFFER'}", flush=True)
    table = pd.DataFrame(rows)
    print("\n| threads | condition | busy processes | wall s | × quiet (same threads) | same numbers |")
    print("|---|---|---|---|---|---|")
    for r in table.itertuples(index=False):
        print(f"| {r.threads} | {r.condition} | {r.busy_processes} | {r.wall_s:.1f} | {r.x_quiet:.2f} | "
              f"{'yes' if r.same_numbers else 'no'} |")
    default_quiet = table[(table.threads == "default") & (table.condition == "quiet")]["wall_s"]
    if len(default_quiet) and "2" in set(table.threads):
        two = table[(table.threads == "2") & (table.condition == "quiet")]["wall_s"]
        print(f"\nquiet: default {default_quiet.iloc[0]:.1f} s against 2 threads {two.iloc[0]:.1f} s "
              f"({default_quiet.iloc[0] / two.iloc[0]:.2f}x)")


if __name__ == "__main__":
    main()
