"""Why the harness flushes denormals to zero on the CPU: one LSTM training step, with and without.

    python benchmarks/bench_denormals.py                       # T = 100, 400, 750; about 2 minutes on 2 cores
    python benchmarks/bench_denormals.py --seq-len 400 --threads 2

A vanishing gradient passes through float32's denormal range (below 1.2e-38) on its way back in time, and x86
cores compute on denormals in microcode. Each setting runs in a fresh process (the flush-to-zero flag is
inherited by torch's thread pool when the pool starts, so it cannot be toggled fairly within one process):
nn.LSTM(2, 128) at its initialisation, batch 20 (the adding problem's shapes), forward + backward of the loss at
the last step, the median of ``--repeats`` steps after one warm-up step. The two settings of one length run
back to back; quote their ratio, not the absolute times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, statistics, sys, time, torch
T, threads, repeats, flush = (int(a) for a in sys.argv[1:5])
torch.set_flush_denormal(bool(flush))      # before the thread pool starts, as the harness does
torch.set_num_threads(threads)
torch.manual_seed(0)
lstm, head = torch.nn.LSTM(2, 128), torch.nn.Linear(128, 1)
x, y = torch.rand(T, 20, 2), torch.rand(20, 1)
def step():
    out, _ = lstm(x)
    (head(out[-1]) - y).pow(2).mean().backward()
step()
times = []
for _ in range(repeats):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times) * 1e3))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", default="100,400,750", help="comma-separated T")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"| T | denormals kept, ms/step | flushed, ms/step | ratio |  (threads {args.threads}, median of {args.repeats})")
    print("|---:|---:|---:|---:|")
    for T in (int(t) for t in args.seq_len.split(",")):
        kept, flushed = (json.loads(subprocess.run([sys.executable, "-c", CHILD, str(T), str(args.threads),
                                                    str(args.repeats), str(flush)], check=True, text=True,
                                                   capture_output=True).stdout) for flush in (0, 1))
        print(f"| {T} | {kept:.1f} | {flushed:.1f} | {kept / flushed:.1f}x |")


if __name__ == "__main__":
    main()
