"""Every tool's entry point (lwa_common.cli.run_main): signals and failures end cleanly.

A tool is run as a real process; it waits on an external child inside `atomic_path` when it is
signalled. The child must be gone, nothing partial left behind, and the exit status 130 (SIGINT) or
143 (SIGTERM), with one line on stderr and no traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TOOL = textwrap.dedent("""
    import subprocess, sys
    from pathlib import Path
    import click
    from lwa_common.cli import run_main
    from lwa_common.io import atomic_path

    @click.group()
    def cli():
        "A tool."

    @cli.command()
    @click.argument("out")
    def work(out):
        with atomic_path(out) as tmp:
            tmp.write_text("partial")
            child = subprocess.Popen(["sleep", "60"])
            Path(out + ".pid").write_text(str(child.pid))
            try:
                child.wait()
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()

    @cli.command()
    def boom():
        raise TypeError("a bug")

    run_main(cli)
""")


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    script = tmp_path / "tool.py"
    script.write_text(TOOL)
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_child_and_leaves_nothing(tmp_path, sig, code):
    out = tmp_path / "out" / "product.fits"
    proc = _start(tmp_path, "work", str(out))
    pid_file = Path(str(out) + ".pid")
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    time.sleep(0.2)
    assert not _alive(child)
    assert not out.exists()
    assert not out.parent.exists()  # the run created this folder: it goes, temp folder and all


def test_unexpected_exception_is_one_line(tmp_path):
    proc = _start(tmp_path, "boom")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == "tool.py: error: unexpected TypeError: a bug (rerun with -vv for the traceback)"


def test_missing_ms_extra_is_one_line_naming_the_fix(tmp_path):
    """An MS command without python-casacore (lwa-common installed without [ms]): one line with the fix."""
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent("""
        import sys
        import click
        from lwa_common.cli import run_main
        sys.modules["casacore"] = None  # as if python-casacore were not installed

        @click.group()
        def cli():
            "A tool."

        @cli.command()
        def work():
            from casacore.tables import table  # noqa: F401

        run_main(cli)
    """))
    res = subprocess.run([sys.executable, str(script), "work"], capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == ("tool.py: error: this command needs python-casacore, which is not installed: "
                                  "pip install 'lwa-common[ms]'")
