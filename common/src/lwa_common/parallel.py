"""Work of one step side by side in processes, sized from the job's CPUs.

The per-integration Python steps (lwa-flag hot-baselines and integrations) read the whole hour
once; on a cluster node their work splits into blocks (row blocks of the MS, snapshot files) that
run in a process pool. `concurrent.futures.ProcessPoolExecutor` is the pool; what it does not
give, and this module does, is the job's CPU count (Slurm's `SLURM_CPUS_PER_TASK`, else this
process's affinity mask, which `taskset` and cgroups set: `os.cpu_count()` would see the whole
node) and an ordered map that runs in this process when one worker suffices (no pool start-up on
a laptop or for one block).

Results are identical whatever the process count when the caller's blocks do not depend on it
(`row_blocks` cuts by a fixed number of rows) and it combines the block results in block order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

__all__ = ["job_cpus", "worker_count", "imap_ordered", "map_ordered", "row_blocks"]

T = TypeVar("T")


def job_cpus() -> int:
    """CPUs this process may use: the Slurm job's (``SLURM_CPUS_PER_TASK``), else its affinity mask."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def worker_count(processes: int, n_tasks: int) -> int:
    """Processes for `n_tasks` blocks: `processes` (0 = one per CPU of the job), at most one per block."""
    if processes < 0:
        raise ValueError(f"processes must be >= 0 (0 = one per CPU of the job), got {processes}")
    return max(1, min(processes or job_cpus(), n_tasks))


def imap_ordered(fn: Callable[..., T], tasks: Iterable[Any], *, processes: int = 0) -> Iterator[T]:
    """`fn(t)` for each of `tasks`, yielded in task order, from `worker_count(processes, len(tasks))` processes.

    One worker: in this process (no start-up cost). The workers are forked (no imports to repeat,
    and as direct children their CPU time counts in this process's rusage, which run_hour.sh's
    GNU time reports; a forkserver's workers would be lost to it), so call this with no casacore
    table open; `fn` must be a module-level function, its tasks and results picklable. An
    exception in a task is raised here.
    """
    tasks = list(tasks)
    n = worker_count(processes, len(tasks))
    if n <= 1:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork")) as pool:
        yield from pool.map(fn, tasks)


def map_ordered(fn: Callable[..., T], tasks: Iterable[Any], *, processes: int = 0) -> list[T]:
    """`[fn(t) for t in tasks]` side by side (`imap_ordered`)."""
    return list(imap_ordered(fn, tasks, processes=processes))


def row_blocks(n_rows: int, block_rows: int) -> Sequence[tuple[int, int]]:
    """(start, stop) of consecutive blocks of `block_rows` rows covering `n_rows` (the last shorter)."""
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    return [(s, min(s + block_rows, n_rows)) for s in range(0, n_rows, block_rows)]
