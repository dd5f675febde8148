"""Fixtures of the cross-tool tests: a real single-node Slurm on localhost."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False, timeout=30)
    return out.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split())


@pytest.fixture(scope="session")
def slurm():
    """A running Slurm: the one on this machine, or one brought up by bin/slurm-localhost.sh (root).

    In CI (CI=true) failing to bring it up is a test failure, not a skip.
    """
    if _slurm_up():
        return
    if os.geteuid() == 0:
        res = subprocess.run(["bash", str(REPO / "bin" / "slurm-localhost.sh")], capture_output=True, text=True,
                             check=False, timeout=600)
        if res.returncode == 0 and _slurm_up():
            return
        why = f"bin/slurm-localhost.sh failed: {res.stderr.strip()[-500:]}"
    else:
        why = "Slurm is not running and starting it needs root (bin/slurm-localhost.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def _wait_for_job(job: str, timeout: float) -> str:
    """The final state of Slurm job `job` (COMPLETED, FAILED, CANCELLED...), waiting up to `timeout` s."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=False).stdout
        state = next((w.split("=", 1)[1] for w in out.split() if w.startswith("JobState=")), "")
        if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            return state
        time.sleep(2)
    raise AssertionError(f"Slurm job {job} did not finish in {timeout} s")


@pytest.fixture(scope="session")
def slurm_wait(slurm):
    """wait(job, timeout) -> the job's final state, on the running Slurm."""
    return _wait_for_job
