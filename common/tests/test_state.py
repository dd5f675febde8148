"""Run state under concurrency: separate processes, nothing lost, the file always valid JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from lwa_common.state import read_state, records_dir, update_state
from lwa_common.testing import run_cli

N_WRITERS = 64

# each writer waits for the go file, then records its key exactly as a driver job does
_WRITER = """
import sys, time
from pathlib import Path
from lwa_common.state import parse_assignments, update_state
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
update_state(sys.argv[1], parse_assignments(sys.argv[3:]))
"""

# reads the view as fast as it can until told to stop; prints reads and invalid reads
_READER = """
import json, sys
from pathlib import Path
view, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads = bad = 0
while not stop.exists():
    try:
        text = view.read_text()
    except FileNotFoundError:
        if reads:
            bad += 1  # the view vanished after it had existed
        continue
    reads += 1
    try:
        json.loads(text)
    except ValueError:
        bad += 1
print(reads, bad)
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    state = tmp_path / "run" / "state.json"
    update_state(state, {"range": "10h-11h"})
    go, stop = tmp_path / "go", tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(state), str(stop)], stdout=subprocess.PIPE,
                              text=True)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(state), str(go),
                                 f"subbands.sb{i}.peel=done", f"subbands.sb{i}.job={1000 + i}"])
               for i in range(N_WRITERS)]
    time.sleep(2.0)  # let every interpreter start and wait at the barrier
    go.touch()
    assert [w.wait(timeout=300) for w in writers] == [0] * N_WRITERS
    stop.touch()
    reads, bad = map(int, reader.communicate(timeout=60)[0].split())
    assert reads > 0 and bad == 0
    view = json.loads(state.read_text())
    want = {f"sb{i}": {"peel": "done", "job": str(1000 + i)} for i in range(N_WRITERS)}
    assert view["subbands"] == want and view["range"] == "10h-11h"
    assert read_state(state) == view
    assert len(list(records_dir(state).glob("*.json"))) == N_WRITERS + 1
    assert not [p for p in state.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_later_value_wins_and_cli_prints_state(tmp_path):
    state = tmp_path / "state.json"
    assert run_cli(["lwa-common", "state", str(state), "subbands.55MHz.failed=concat"]).returncode == 0
    assert run_cli(["lwa-common", "state", str(state), "subbands.55MHz.failed=science", "x=1"]).returncode == 0
    res = run_cli(["lwa-common", "state", str(state)])
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["subbands"]["55MHz"]["failed"] == "science" and shown["x"] == "1"
    res = run_cli(["lwa-common", "state", str(state), "x.y=2"])
    assert res.returncode == 1 and "crosses a non-table value" in res.stderr


def test_state_written_before_records_is_kept(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"range": "10h-11h", "subbands": {"55MHz": {"image": "done"}}}))
    merged = update_state(state, {"subbands.73MHz.image": "done"})
    assert merged["subbands"] == {"55MHz": {"image": "done"}, "73MHz": {"image": "done"}}
    assert json.loads(state.read_text())["range"] == "10h-11h"
