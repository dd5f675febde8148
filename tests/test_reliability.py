"""Interrupted work leaves nothing half-written (issue 16, items 4 and 5).

* Ctrl-C (SIGINT) or SIGTERM to `lwa-sim observe` while it writes: exit 130/143 with one line, and the
  output folder holds only complete measurement sets (no temporary folder, no half-written MS).
* A Slurm job of bin/run_hour.sh cancelled with `scancel` in the middle of its science step: the
  input data unchanged, a readable step log, no partial or temporary products, and a rerun completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from astropy.io import fits

from lwa_common.ms import check_ms

REPO = Path(__file__).resolve().parents[1]
RUN_HOUR = REPO / "bin" / "run_hour.sh"


def _env() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "MPLBACKEND": "Agg",
            "OPENBLAS_NUM_THREADS": "1"}


def _digest(root: Path) -> dict[str, str]:
    """Content hash of every file under `root` (symbolic links followed)."""
    out = {}
    for dirpath, _, files in os.walk(root, followlinks=True):
        for name in files:
            path = Path(dirpath, name)
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _temporaries(root: Path) -> list[Path]:
    """What an interrupted writer could leave: atomic_path's hidden temp folders, wsclean scratch."""
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".part", ".old")) or p.name.startswith(".wsclean-")]


# ---- SIGINT / SIGTERM to lwa-sim observe ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "complete_before"),
                         [(signal.SIGINT, 130, 0), (signal.SIGINT, 130, 2), (signal.SIGTERM, 143, 1)],
                         ids=["sigint-first-write", "sigint-later", "sigterm"])
def test_interrupted_simulation_leaves_only_complete_ms(tmp_path, system_cfg, sig, code, complete_before):
    out = tmp_path / "sim"
    out.mkdir()  # the user's folder: it stays, holding only complete MS
    (out / "notes.txt").write_text("mine\n")
    n_int, n_ant = 8, 16
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "lwa-sim"), "observe", "-o", str(out), "--start", "2024-12-20T12:00:00",
         "--n-int", str(n_int), "--n-channels", "4", "--n-antennas", str(n_ant), "--system-cfg", str(system_cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        written = [p for p in out.iterdir() if p.name != "notes.txt"]
        done = [p for p in written if p.suffix == ".ms" and not p.name.startswith(".")]
        if (complete_before == 0 and written) or (complete_before and len(done) >= complete_before):
            break  # complete_before 0: the first MS is being written now
        time.sleep(0.02)
    assert proc.poll() is None, "the simulation ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert re.fullmatch(r"lwa-sim: (interrupted|terminated by signal \d+)", lines[0]), lines[0]
    assert not _temporaries(out), _temporaries(out)
    assert (out / "notes.txt").read_text() == "mine\n"
    complete = sorted(out.glob("*.ms"))
    assert len(complete) >= complete_before and len(complete) < n_int
    for ms in complete:  # every MS left is whole: opens, every row and column readable
        check_ms(ms)
        from casacore.tables import table

        with table(str(ms), ack=False) as t:
            assert t.nrows() == n_ant * (n_ant + 1) // 2, ms
            assert t.getcol("DATA").shape[0] == t.nrows()
    assert not (out / "truth.json").exists()  # written last: an interrupted run has no truth


# ---- scancel of a run_hour.sh Slurm job in the middle of its science step ------------------------
SPEC = {"noise": {"sigma_jy": 1.0},
        "sources": [{"name": "bright", "ra": "10h05m00s", "dec": "+52d00m00s", "flux_jy": 300}]}
QUICK = ["--image-size", "192", "--image-scale-deg", "0.6", "--niter-scale", "0.002"]


def _wsclean_running(work: Path) -> bool:
    """A wsclean process working in `work` (its command line names the folder) is alive."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"wsclean") and any(str(work).encode() in a for a in args):
            return True
    return False


@pytest.mark.slow
@pytest.mark.slurm
def test_scancel_mid_step_then_rerun(slurm_wait, sim_cache, tmp_path):
    sim, _ = sim_cache("scancel", SPEC, start="2024-12-20T11:56:00", n_int=3, subbands=(55,), n_channels=4,
                       n_antennas=32)
    data = tmp_path / "data"
    data.mkdir()
    for ms in sim.glob("*.ms"):
        os.symlink(ms, data / ms.name)
    config = tmp_path / "quick.toml"
    config.write_text("[imaging]\nintervals_out = 3\n")
    work = tmp_path / "work"
    args = ["bash", str(RUN_HOUR), "--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55",
            "--data", str(data), "--workdir", str(work), "--config", str(config), *QUICK, "--slurm",
            "--cpus", "1", "--mem", "4G"]
    before = _digest(data)

    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    image_job = (work / "10h" / "image_jobs.dep").read_text().split()[0]
    science_log = work / "10h" / "55MHz" / "logs" / "science.log"
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline:  # the first wsclean of the science step: 7+ more follow it
        if science_log.exists() and "# start" in science_log.read_text() and _wsclean_running(work):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the science step never started: {sorted((work / 'jobs').glob('*.out'))}")
    subprocess.run(["scancel", image_job], check=True, timeout=60)
    assert slurm_wait(image_job, timeout=300) == "CANCELLED"
    time.sleep(2)

    assert _digest(data) == before  # inputs intact
    text = science_log.read_text(encoding="utf-8")  # a readable log: the command, its start, no end line
    assert text.startswith("$ lwa-image science") and "# start" in text
    assert "# lwa-pipe step science:" not in text
    assert not (science_log.parent / ".science.done").exists()
    assert not _temporaries(work), _temporaries(work)
    for image in (work / "10h" / "55MHz" / "images").glob("*.fits"):  # whatever is there is complete
        with fits.open(image) as hdul:
            assert hdul[0].data is not None and hdul[0].header["IMGCAT"], image
    json.loads((work / "state.json").read_text())

    res = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    agg_job = res.stdout.strip().splitlines()[-1]
    assert slurm_wait(agg_job, timeout=1800) == "COMPLETED", sorted((work / "jobs").glob("*.out"))
    assert "# lwa-pipe step science: exit 0" in science_log.read_text()
    assert (work / "10h" / "55MHz" / "images" / "55MHz-I-Deep-Taper-Robust-0-image.fits").exists()
    assert (work / "10h" / "weblog" / "index.html").exists()
    assert not _temporaries(work), _temporaries(work)
    assert _digest(data) == before


# ---- SIGINT while a tool waits on wsclean / DP3: the child ends, nothing is left ---------------
def _descendants(pid: int) -> dict[int, str]:
    """Live descendant processes of `pid`: {pid: command name}."""
    parent_of, names = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z":
            parent_of[int(stat.parent.name)], names[int(stat.parent.name)] = int(fields[1]), name
    found, frontier = {}, {pid}
    while frontier:
        frontier = {p for p, pp in parent_of.items() if pp in frontier and p not in found}
        found.update({p: names[p] for p in frontier})
    return found


CATALOGUE_SKY = '[{"name": "CygA", "ra": "19h59m28.3s", "dec": "+40d44m02s", "I": 16000, "freq": 55e6, "index": [-0.8]}]'


@pytest.mark.slow
@pytest.mark.parametrize(("command", "child"), [
    ("lwa-image science {ms} -o {out} --only I-Deep-Taper-Robust-0", "wsclean"),
    ("lwa-peel sky {ms} --sources {sources} -o {out}/peeled.ms --max-iterations 5000 --tolerance 1e-12", "DP3"),
], ids=["wsclean", "dp3"])
def test_sigint_ends_the_external_tool_and_leaves_nothing(command, child, sim_cache, tmp_path):
    sim, _ = sim_cache("sigint_child", SPEC, start="2024-12-20T11:56:00", n_int=2, n_channels=8, n_antennas=48)
    ms = sorted(sim.glob("*.ms"))[0]
    before = _digest(ms)
    sources = tmp_path / "sources.json"
    sources.write_text(CATALOGUE_SKY)
    out = tmp_path / "out"
    argv = command.format(ms=ms, out=out, sources=sources).split()
    proc = subprocess.Popen([str(Path(sys.executable).parent / argv[0]), *argv[1:]], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline, seen = time.monotonic() + 300, {}
    while time.monotonic() < deadline and proc.poll() is None and not seen:
        seen = {p: n for p, n in _descendants(proc.pid).items() if n.startswith(child)}
        time.sleep(0.02)
    assert seen, f"{child} never ran: {proc.communicate()[1][-2000:]}"
    proc.send_signal(signal.SIGINT)  # at once: DP3 runs for a few seconds only
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    time.sleep(0.5)
    assert not set(seen) & set(_descendants(1)), f"{child} still running"
    assert not out.exists(), sorted(out.rglob("*"))  # the run made this folder: it goes, with everything in it
    assert _digest(ms) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sources.json"]  # no casa.log, parset or skymodel
