"""lwa_common.parallel: the job's CPUs, the worker count, ordered maps and row blocks."""

from __future__ import annotations

import math
import os

import pytest

from lwa_common.parallel import job_cpus, map_ordered, row_blocks, worker_count


def test_job_cpus_from_slurm_else_affinity(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert job_cpus() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert job_cpus() == len(os.sched_getaffinity(0))


def test_worker_count_and_blocks(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert worker_count(0, 100) == 8 and worker_count(0, 3) == 3 and worker_count(2, 100) == 2
    assert worker_count(5, 0) == 1
    with pytest.raises(ValueError):
        worker_count(-1, 4)
    assert row_blocks(10, 4) == [(0, 4), (4, 8), (8, 10)] and row_blocks(0, 4) == []


def test_map_ordered_in_a_pool_keeps_order_and_raises():
    """The workers unpickle the function by name: a library function (a test module is not importable there)."""
    assert map_ordered(math.factorial, range(7), processes=2) == [math.factorial(x) for x in range(7)]
    assert map_ordered(math.factorial, [3], processes=4) == [6]  # one task: in this process
    with pytest.raises(ValueError, match="invalid literal"):
        map_ordered(int, ["1", "x"], processes=2)
