"""``available_cpus()``: the smallest of the affinity mask, the cgroup CPU quota and ``SLURM_CPUS_PER_TASK``.

Every source is fabricated: the affinity through ``os.sched_getaffinity``, the cgroup files in a folder of the
test's own (``CGROUP_ROOT``, ``PROC_SELF_CGROUP``), Slurm through the environment."""

from __future__ import annotations

import os

import pytest

from harness.measurements import environment
from harness.measurements.environment import available_cpus


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine of 8 CPUs in the affinity mask, no cgroup quota and no Slurm, until a test says otherwise."""
    root = tmp_path / "cgroup"
    root.mkdir()
    membership = tmp_path / "self-cgroup"
    monkeypatch.setattr(environment, "CGROUP_ROOT", root)
    monkeypatch.setattr(environment, "PROC_SELF_CGROUP", membership)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)

    def write(relative: str, text: str) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def member_of(lines: str) -> None:
        membership.write_text(lines)

    return write, member_of


def test_the_affinity_mask_alone(machine):
    assert available_cpus() == (8, "affinity")


def test_without_an_affinity_call_the_cpu_count_stands_in(machine, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cpus() == (6, "cpu_count")


def test_a_cgroup_v2_quota_in_whole_cpus(machine):
    write, member_of = machine
    member_of("0::/job.slice/step\n")
    write("cpu.max", "max 100000\n")                       # the root: no limit
    write("job.slice/step/cpu.max", "350000 100000\n")     # 3.5 CPUs of quota keep 3 threads busy unthrottled
    assert available_cpus() == (3, "cgroup cpu.max")


def test_a_quota_on_an_ancestor_cgroup_applies(machine):
    write, member_of = machine
    member_of("0::/job.slice/step\n")
    write("job.slice/cpu.max", "200000 100000\n")
    write("job.slice/step/cpu.max", "max 100000\n")
    assert available_cpus() == (2, "cgroup cpu.max")


def test_a_quota_below_one_cpu_still_leaves_one(machine):
    write, member_of = machine
    member_of("0::/\n")                                    # a cgroup namespace: the container sees its own root
    write("cpu.max", "50000 100000\n")
    assert available_cpus() == (1, "cgroup cpu.max")


def test_a_cgroup_v1_quota(machine):
    write, member_of = machine
    member_of("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n")
    write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert available_cpus() == (3, "cgroup cpu.cfs_quota_us")


def test_a_cgroup_v1_without_quota_leaves_the_affinity(machine):
    write, member_of = machine
    member_of("4:cpu,cpuacct:/\n")
    write("cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write("cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert available_cpus() == (8, "affinity")


def test_slurm_cpus_per_task(machine, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert available_cpus() == (4, "SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "many")    # not a count: ignored
    assert available_cpus() == (8, "affinity")


def test_the_smallest_limit_wins_and_a_tie_names_the_first(machine, monkeypatch):
    write, member_of = machine
    member_of("0::/job\n")
    write("job/cpu.max", "600000 100000\n")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert available_cpus() == (2, "affinity")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(5)), raising=False)
    assert available_cpus() == (5, "affinity")             # affinity and Slurm both say 5: the affinity is named


def test_unreadable_cgroup_files_are_no_limit(machine):
    write, member_of = machine
    member_of("0::/job\n")
    write("job/cpu.max", "garbage\n")
    assert available_cpus() == (8, "affinity")
