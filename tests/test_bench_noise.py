"""``bench`` marks noisy timings: repeats that spread widely, or a machine with more runnable threads than CPUs.

The rules are checked on fabricated timings and fabricated loads (``os.getloadavg`` and a fabricated ``/proc``);
one test makes a real load of its own (busy-loop processes) and checks that bench marks its rows. Nothing here
asserts a speed."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.commands.bench import format_bench, noise_warning
from harness.measurements import noise
from harness.measurements.bench import BENCH_COLUMNS, Shape, bench_cell
from harness.measurements.noise import LOAD_MARGIN, SPREAD_LIMIT, LoadSample, judge, other_load, sample_load

QUIET = LoadSample(load1=0.2, runnable_others=0.0)
TWO = (2, "affinity")


def timing(spread: float) -> tuple[float, float, float]:
    """(median, q25, q75) of 1 s with the given (q75 - q25) / median."""
    return 1.0, 1.0 - spread / 2, 1.0 + spread / 2


# ------------------------------------------------------------------ the rules, on fabricated inputs

def test_a_quiet_timing_is_not_noisy():
    verdict = judge(*timing(0.02), QUIET, QUIET, threads=1, cpus=TWO, machine_cpus=2)
    assert not verdict.noisy and verdict.reason == "" and verdict.spread == pytest.approx(0.02)


def test_a_wide_spread_is_noisy_and_the_limit_is_pyperfs_ten_percent_as_quartiles():
    assert SPREAD_LIMIT == pytest.approx(1.349 * 0.10, abs=1e-3)
    wide = judge(*timing(0.30), QUIET, QUIET, threads=1, cpus=TWO, machine_cpus=2)
    assert wide.noisy and wide.reason.startswith("repeats spread 30% of the median")
    assert not judge(*timing(0.13), QUIET, QUIET, threads=1, cpus=TWO, machine_cpus=2).noisy


def test_the_issues_machine_is_oversubscribed():
    """The report: load average 3.6 on a 2-CPU machine, bench with torch's 2 threads."""
    busy = LoadSample(load1=3.6, runnable_others=math.nan)
    verdict = judge(*timing(0.02), busy, busy, threads=2, cpus=TWO, machine_cpus=2)
    assert verdict.noisy and verdict.other_load == pytest.approx(1.6)
    assert "oversubscribed: other processes keep about 1.6 CPUs busy" in verdict.reason


def test_this_process_own_threads_are_not_counted_as_load():
    """A quiet machine after a minute of bench with 2 threads: the load average is about 2, all of it ours."""
    ours = LoadSample(load1=2.2, runnable_others=0.0)
    verdict = judge(*timing(0.02), ours, ours, threads=2, cpus=TWO, machine_cpus=2)
    assert not verdict.noisy and verdict.other_load == pytest.approx(0.2)
    assert 0.2 + 2 <= 2 + LOAD_MARGIN


def test_a_load_that_just_started_is_seen_by_the_runnable_count():
    """The 1-minute average has not caught up yet; the threads runnable before and after the pass have."""
    before = LoadSample(load1=0.3, runnable_others=4.0)
    after = LoadSample(load1=0.6, runnable_others=3.0)
    verdict = judge(*timing(0.02), before, after, threads=1, cpus=TWO, machine_cpus=2)
    assert verdict.noisy and verdict.other_load == pytest.approx(3.0)      # the lower of the two instants


def test_a_moments_spike_is_not_a_busy_machine():
    spike = LoadSample(load1=0.3, runnable_others=6.0)
    verdict = judge(*timing(0.02), spike, QUIET, threads=1, cpus=TWO, machine_cpus=2)
    assert not verdict.noisy


def test_more_threads_than_available_cpus_is_noisy_even_on_an_idle_machine():
    verdict = judge(*timing(0.02), QUIET, QUIET, threads=4, cpus=(2, "cgroup cpu.max"), machine_cpus=64)
    assert verdict.noisy and verdict.reason == "4 threads on 2 available CPUs (cgroup cpu.max)"


def test_a_job_on_a_few_cores_of_a_busy_node_is_not_flagged():
    """The load average counts the whole node: 60 busy CPUs of 64 leave room for a 4-thread job."""
    node = LoadSample(load1=60.0, runnable_others=56.0)
    verdict = judge(*timing(0.02), node, node, threads=4, cpus=(4, "affinity"), machine_cpus=64)
    assert not verdict.noisy
    full = LoadSample(load1=70.0, runnable_others=66.0)
    assert judge(*timing(0.02), full, full, threads=4, cpus=(4, "affinity"), machine_cpus=64).noisy


def test_without_load_figures_only_the_spread_is_judged():
    unknown = LoadSample(math.nan, math.nan)
    assert math.isnan(other_load(unknown, unknown, threads=1))
    assert not judge(*timing(0.02), unknown, unknown, threads=1, cpus=TWO, machine_cpus=2).noisy
    assert judge(*timing(0.5), unknown, unknown, threads=1, cpus=TWO, machine_cpus=2).noisy


def fake_proc(root: Path, running: int, own: dict[int, str]) -> Path:
    """A /proc with ``loadavg`` (``running`` runnable threads) and this process's threads in the given states."""
    (root / "self" / "task").mkdir(parents=True)
    (root / "loadavg").write_text(f"3.60 2.00 1.00 {running}/300 12345\n")
    for tid, state in own.items():
        (root / "self" / "task" / str(tid)).mkdir()
        (root / "self" / "task" / str(tid) / "stat").write_text(f"{tid} (py thread) x) {state} 1 1 1 0 -1\n")
    return root


def test_sample_load_reads_the_load_average_and_the_others_runnable_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(noise, "PROC", fake_proc(tmp_path, running=7, own={1: "R", 2: "S", 3: "R"}))
    monkeypatch.setattr(os, "getloadavg", lambda: (3.6, 2.0, 1.0))
    assert sample_load() == LoadSample(3.6, 5.0)             # 7 runnable, 2 of them this process's


def test_sample_load_without_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(noise, "PROC", tmp_path)               # no loadavg file
    monkeypatch.delattr(os, "getloadavg", raising=False)
    sample = sample_load()
    assert math.isnan(sample.load1) and math.isnan(sample.runnable_others)


# ------------------------------------------------------------------ bench marks its rows

def test_bench_marks_rows_under_a_fabricated_load(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(noise, "PROC", fake_proc(tmp_path / "busy", running=1, own={1: "R"}))
    monkeypatch.setattr(os, "getloadavg", lambda: (os.cpu_count() + 5.0, 1.0, 1.0))
    rows = bench_cell(registry.cell("rnn"), Shape(4, 2, 3, 4), torch.device("cpu"), torch.float32,
                      warmup=0, repeats=2, memory=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["noisy"] and "oversubscribed" in r["noise"] for r in rows)
    assert all(r["cpus"] >= 1 and r["other_load"] >= os.cpu_count() + 4 for r in rows)

    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    rows = bench_cell(registry.cell("rnn"), Shape(4, 2, 3, 4), torch.device("cpu"), torch.float32,
                      warmup=0, repeats=2, memory=False)
    assert all("oversubscribed" not in r["noise"] and r["other_load"] == 0 for r in rows)


@pytest.fixture
def busy_loops():
    """More busy-loop processes than the machine has CPUs, for the test's duration; killed at the end."""
    if not Path("/proc/loadavg").is_file():
        pytest.skip("needs Linux's /proc/loadavg")
    n = (os.cpu_count() or 1) + 2
    loop = "import sys\nsys.stdout.write('up\\n')\nsys.stdout.flush()\nwhile True: pass"
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-S", "-c", loop], stdout=subprocess.PIPE, text=True))
        for proc in procs:                                 # each says "up" once it is spinning
            assert proc.stdout.readline() == "up\n"
        yield n
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
            proc.stdout.close()


def test_bench_marks_rows_under_a_real_load(registry, busy_loops):
    rows = bench_cell(registry.cell("rnn"), Shape(4, 2, 3, 4), torch.device("cpu"), torch.float32,
                      warmup=0, repeats=3, memory=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["noisy"] and "oversubscribed" in r["noise"] for r in rows), [r["noise"] for r in rows]
    assert all(r["other_load"] >= busy_loops for r in rows)    # the loops themselves are seen, not only the machine


# ------------------------------------------------------------------ the table, the warning, the csv

def bench_table(noisy: dict[str, bool]) -> pd.DataFrame:
    rows = []
    for cell, is_noisy in noisy.items():
        for p, median in (("forward", 0.001), ("forward+backward", 0.003)):
            rows.append({"cell": cell, "device": "cpu", "dtype": "float32", "T": 10, "B": 2, "I": 3, "H": 4,
                         "layers": 1, "pass": p, "median_s": median, "q25_s": median * 0.8, "q75_s": median * 1.2,
                         "tokens_per_s": 20 / median, "us_per_step": median / 10 * 1e6, "repeats": 5,
                         "peak_mem_bytes": 3 * 2 ** 20, "noisy": is_noisy and p == "forward",
                         "noise": "oversubscribed: other processes keep about 3.0 CPUs busy beside this process's "
                                  "1 thread(s), on 2 CPUs" if is_noisy and p == "forward" else "",
                         "spread": 0.4, "other_load": 3.0 if is_noisy else 0.0, "cpus": 2, "status": "ok",
                         "gate": "passed", "gate_reference": "", "gate_error": math.nan, "gate_tolerance": 1e-3,
                         "reason": ""})
    return pd.DataFrame(rows, columns=BENCH_COLUMNS)


def test_the_table_marks_noisy_rows_and_shows_memory_in_mib():
    text = format_bench(bench_table({"lstm": False, "rnn": True}), "lstm")
    header, lstm, rnn = text.splitlines()
    assert "timing" in header and "fwd MiB" in header and "fwd+bwd MiB" in header
    assert "noisy" in rnn.split() and "noisy" not in lstm.split()
    assert lstm.split()[-1] == "1.00" and "3.00" in lstm.split()        # 3 MiB per pass; the ratio stays last


def test_one_warning_line_says_why_and_what_to_do():
    assert noise_warning(bench_table({"lstm": False})) == ""
    line = noise_warning(bench_table({"lstm": False, "rnn": True}))
    assert "\n" not in line and line.startswith("warning: 1 of 4 timings are noisy")
    assert "other processes kept up to 3.0 CPUs busy" in line
    assert "quiet machine" in line and "taskset" in line and "--repeats" in line


def test_bench_writes_the_noise_columns_and_warns(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(noise, "PROC", fake_proc(tmp_path / "busy", running=1, own={1: "R"}))
    monkeypatch.setattr(os, "getloadavg", lambda: (os.cpu_count() + 5.0, 1.0, 1.0))
    code, out, err = cli("bench", "--cells", "rnn", "--shapes", "4x2x3x4", "--repeats", "2", "--warmup", "0",
                         "--no-memory", "--out", tmp_path / "b")
    assert code == 0                                         # noisy timings do not change the exit status
    table = pd.read_csv(tmp_path / "b" / "bench.csv")
    assert table["noisy"].all() and table["noise"].str.contains("oversubscribed").all()
    assert "noisy" in out.splitlines()[1].split()
    assert sum(line.startswith("warning: 2 of 2 timings are noisy") for line in err.splitlines()) == 1


# ------------------------------------------------------------------ compare --fail-slower leaves noisy rows unjudged

def bench_folder(path: Path, tokens: float, noisy: bool) -> Path:
    table = bench_table({"lstm": noisy})
    table["median_s"] = 20 / tokens
    table["q25_s"], table["q75_s"] = table["median_s"] * 0.99, table["median_s"] * 1.01
    table["tokens_per_s"] = tokens
    table["noisy"] = noisy
    table["noise"] = "oversubscribed: other processes keep about 3.0 CPUs busy" if noisy else ""
    path.mkdir(parents=True)
    table.to_csv(path / "bench.csv", index=False)
    return path


def test_compare_does_not_fail_on_a_noisy_row(cli, tmp_path):
    base = bench_folder(tmp_path / "base", 1000.0, noisy=False)
    quiet_slow = bench_folder(tmp_path / "quiet", 500.0, noisy=False)
    noisy_slow = bench_folder(tmp_path / "noisy", 500.0, noisy=True)
    code, _, err = cli("compare", base, quiet_slow, "--fail-slower", "10%", "--out", tmp_path / "c1")
    assert code == 1 and err.count("regression:") == 2      # the same drop, quiet: both passes regress
    code, out, err = cli("compare", base, noisy_slow, "--fail-slower", "10%", "--out", tmp_path / "c2")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("not judged:")]
    assert len(lines) == 2 and "regression:" not in err
    assert all("tokens_per_s 1,000 -> 500 (-50.0%): noisy in NEW: oversubscribed" in line for line in lines)
    assert "2 not judged (noisy timings)" in out
    changes = pd.read_csv(tmp_path / "c2" / "changes.csv")
    assert (changes["verdict"] == "not judged").all()
    code, _, err = cli("compare", noisy_slow, base, "--fail-slower", "10%", "--out", tmp_path / "c3")
    assert code == 0 and err.count("noisy in BASE") == 2    # an improvement read off a noisy base is not judged either
