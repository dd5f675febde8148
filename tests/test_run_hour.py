"""bin/run_hour.sh end to end: a simulated two-subband LST hour, locally and through real Slurm.

The local run and the Slurm run must make the same products; a subband whose data are broken
fails without blocking the aggregation of the others; the pre-flight audit stops before any work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
RUN_HOUR = REPO / "bin" / "run_hour.sh"
START = "2024-12-20T11:56:00"  # LST ~10h01m at OVRO
SPEC = {
    "noise": {"sigma_jy": 1.0},
    "sources": [
        {"name": "bright", "ra": "10h05m00s", "dec": "+52d00m00s", "flux_jy": 300, "spectral_index": -0.8},
        {"name": "cp-star", "ra": "10h30m00s", "dec": "+40d00m00s", "flux_jy": 60, "v_frac": 0.5},
    ],
    "transients": [{"name": "burst", "ra": "10h15m00s", "dec": "+36d00m00s", "flux_jy": 12, "stokes": "V",
                    "intervals": [1]}],
    "n_intervals": 3,
}
QUICK = ["--image-size", "192", "--image-scale-deg", "0.6", "--niter-scale", "0.002"]


def _env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def hour_data(sim_cache, tmp_path_factory):
    """55 and 73 MHz simulated, plus a 64 MHz subband whose MS are all corrupt."""
    data, truth = sim_cache("run_hour", SPEC, start=START, n_int=6, subbands=(55, 73), n_channels=4,
                            n_antennas=40)
    root = tmp_path_factory.mktemp("hour_data")
    for ms in data.glob("*.ms"):
        os.symlink(ms, root / ms.name)
        if ms.name.endswith("_55MHz.ms"):
            broken = root / ms.name.replace("_55MHz", "_64MHz")
            broken.mkdir()
            (broken / "table.dat").write_bytes(b"not a casacore table")
    targets = root.parent / "targets.csv"
    targets.write_text("common_name,ra_current,dec_current,detection_stokes\ncp-star,157.5,40.0,both\n")
    config = root.parent / "quick.toml"
    config.write_text("[imaging]\nintervals_out = 3\n")
    return root, truth, targets, config


def _run(args: list[str], timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUN_HOUR), *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout, check=False)


def _args(hour_data, workdir: Path, *extra: str) -> list[str]:
    data, _, targets, config = hour_data
    return ["--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55,64,73", "--data", str(data),
            "--workdir", str(workdir), "--targets", str(targets), "--config", str(config), *QUICK, *extra]


def _products(workdir: Path) -> dict[str, Path]:
    """Science products by relative path (not logs, job files, state, MS)."""
    out = {}
    for p in workdir.rglob("*"):
        rel = p.relative_to(workdir)
        if p.is_dir() or any(part.endswith(".ms") or part in ("logs", "jobs", "ms", "state.json.d") for part in rel.parts):
            continue
        if p.suffix in (".fits", ".csv", ".png", ".mp4", ".html", ".json") and p.name not in ("state.json",):
            out[str(rel)] = p
    return out


@pytest.fixture(scope="module")
def local_run(hour_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("local")
    res = _run(_args(hour_data, work))
    assert res.returncode == 0, res.stderr[-3000:]
    return work, res


@pytest.mark.slow
def test_local_run_makes_every_product(local_run, hour_data):
    work, res = local_run
    truth = hour_data[1]
    for sb in ("55MHz", "73MHz"):
        images = work / "10h" / sb / "images"
        names = sorted(p.name for p in images.glob(f"{sb}-*-image.fits"))
        assert len(names) == 4 + 1 + 3 + 3, names  # 4 deep I + deep V + 3 intervals x (I, V)
        assert len(list(images.glob("*-image-pbcorr.fits"))) == len(names)
        h = fits.getheader(images / f"{sb}-V-Taper-10min-t0002-image.fits")
        assert (h["STOKES"], h["IMGCAT"], h["INTERVAL"], h["SUBBAND"], h["PBCOR"]) == ("V", "10min", "t0002", sb, False)
        assert h["DATE-OBS"].startswith(truth["observation"]["intervals"][1]["start"][:16])
        assert (work / "10h" / sb / "transients" / "candidates.csv").exists()
        assert (work / "10h" / sb / "photometry" / "cp-star" / "cp-star_photometry.csv").exists()
        assert list((work / "10h" / sb / "movies").glob("*.mp4"))
        assert (work / "10h" / sb / "logs" / "science.log").read_text().startswith("$ lwa-image science")
        wsclean_log = (work / "10h" / sb / "logs" / "science.wsclean.log").read_text()
        assert "$ wsclean " in wsclean_log and "Writing" in wsclean_log  # wsclean's own output is kept
        assert "$ aoflagger " in (work / "10h" / sb / "logs" / "flag-rfi.aoflagger.log").read_text()
    # the burst (interval 2 of 3, Stokes V) is found in the 55 MHz transient search, in t0002 only
    import pandas as pd

    cands = pd.read_csv(work / "10h" / "55MHz" / "transients" / "candidates.csv")
    near = cands[(np.hypot((cands.ra - 153.75) * np.cos(np.radians(36)), cands.dec - 36.0) < 1.0) & (cands.sign > 0)]
    assert set(near.interval) == {"t0002"}, cands[["interval", "ra", "dec", "snr"]]
    # aggregation ran on what exists; the broken subband is reported, not fatal
    assert (work / "10h" / "weblog" / "index.html").exists()
    assert list((work / "10h" / "Wideband").glob("Wideband_*.fits"))
    assert list((work / "10h" / "Wideband" / "solar").glob("*/*_photometry.csv"))  # bodies on the stacks
    assert "subband 64MHz, LST 10h failed" in res.stderr
    state = json.loads((work / "state.json").read_text())
    assert state["subbands"]["10h/64MHz"]["status"] == "failed"
    assert state["subbands"]["10h/55MHz"]["image"] == "done"
    assert state["hours"]["10h"]["aggregate"] == "done"


@pytest.mark.slow
def test_weblog_in_a_real_browser(local_run, tmp_path_factory):
    """Headless Chromium opens the run's weblog, follows every link, sees no console error and no
    blank page; one screenshot per page type is kept under the test's output."""
    from lwa_common.config import load_config
    from lwa_stack.browser import check_weblog, find_chromium
    from lwa_stack.qa import collect_run

    if find_chromium() is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed (bin/setup.sh installs it)")
    if find_chromium() is None:
        pytest.skip("chromium not installed")
    work, _ = local_run
    weblog = work / "10h" / "weblog"
    shots = tmp_path_factory.mktemp("weblog_screenshots")
    res = check_weblog(weblog / "index.html", shots)
    assert res.ok, res.problems()
    kinds = {"index", "stage", "images", "transients", "targets", "target", "noise", "files"}
    assert kinds <= set(res.screenshots), res.screenshots
    assert all(p.stat().st_size > 5000 for p in res.screenshots.values())
    stage_pages = {p for p in res.pages if p.startswith("stages/")}
    assert len(stage_pages) >= 3 * 10 + 6  # every stage of every subband, and the run-wide ones
    # every product of the run is reachable from index.html within two clicks
    index_links = set(re.findall(r'href="([^"#]+)"', (weblog / "index.html").read_text()))
    one_click = {(weblog / urllib.parse.unquote(h)).resolve() for h in index_links}
    two_clicks = set(one_click)
    for page in [p for p in one_click if p.suffix == ".html"]:
        for h in re.findall(r'(?:href|src)="([^"#]+)"', page.read_text()):
            two_clicks.add((page.parent / urllib.parse.unquote(h)).resolve())
    products = [p.resolve() for p in _products(work / "10h").values() if "weblog" not in p.parts]
    missing = [str(p) for p in products if p not in two_clicks]
    assert not missing, missing[:10]
    # the failed subband shows as failed, not "not run"; color with one band per band is not "FAILED"
    run = collect_run(work / "10h", cfg=load_config())
    assert run.get("setup", "64MHz").label == "FAILED"
    assert run.get("color", "run").label != "FAILED"
    assert res.screenshots["index"].exists()


@pytest.mark.slow
def test_rerun_is_safe_and_skips_finished_steps(local_run, hour_data):
    work, _ = local_run
    before = {k: p.stat().st_mtime for k, p in _products(work).items() if "55MHz/images" in k}
    res = _run(_args(hour_data, work))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "science: done before with the same command and inputs, skipped" in res.stderr
    after = {k: p.stat().st_mtime for k, p in _products(work).items() if "55MHz/images" in k}
    assert before == after


@pytest.mark.slow
def test_force_reruns_a_step_and_everything_after(local_run, hour_data):
    work, _ = local_run
    images = work / "10h" / "55MHz" / "images"
    deep = images / "55MHz-I-Deep-Taper-Robust-0-image.fits"
    pbcorr = images / "55MHz-I-Deep-Taper-Robust-0-image-pbcorr.fits"
    t_deep, t_pbcorr = deep.stat().st_mtime, pbcorr.stat().st_mtime
    res = _run(_args(hour_data, work, "--force", "pbcor"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "[10h/55MHz] science: done before with the same command and inputs, skipped" in res.stderr
    for later in ("pbcor", "targets", "transients", "gather"):  # the forced step, the ones after, the hour's
        assert f"] {later}: lwa-" in res.stderr, later
    assert deep.stat().st_mtime == t_deep and pbcorr.stat().st_mtime > t_pbcorr
    log = (work / "10h" / "55MHz" / "logs" / "pbcor.log").read_text().splitlines()
    assert log[0].startswith("$ lwa-image pbcor") and any(line.startswith("# start 20") for line in log)
    end = [line for line in log if line.startswith("# lwa-pipe step ")]
    assert len(end) == 1 and end[0] is log[-1], log[-3:]  # one closing line, the one the weblog reads
    assert log[-1].startswith("# lwa-pipe step pbcor: exit 0 after ") and ", end 20" in log[-1]
    assert any(" INFO " in line for line in log)  # tools run at INFO with ISO-8601 times
    state = json.loads((work / "state.json").read_text())
    assert state["steps"]["10h/55MHz/pbcor"]["status"] == "done"


@pytest.mark.slow
def test_resume_science_reuses_images(local_run, hour_data):
    work, _ = local_run
    deep = work / "10h" / "55MHz" / "images" / "55MHz-I-Deep-Taper-Robust-0-image.fits"
    t_image = deep.stat().st_mtime
    pbcor = deep.with_name(deep.name.replace("-image.fits", "-image-pbcorr.fits"))
    t_pb = pbcor.stat().st_mtime
    res = _run(_args(hour_data, work, "--resume-science"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert deep.stat().st_mtime == t_image  # imaging not rerun
    assert pbcor.stat().st_mtime > t_pb  # science steps rerun
    assert "lwa-image science" not in res.stderr


def test_audit_stops_before_any_work(tmp_path, hour_data):
    data = hour_data[0]
    res = _run(["--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55,82", "--data", str(data),
                "--workdir", str(tmp_path / "w"), "--targets", str(tmp_path / "missing.csv"),
                "--bp-table", str(tmp_path / "none.B")])
    assert res.returncode == 1
    assert "82MHz LST 10h" in res.stderr and "missing.csv" in res.stderr and "none.B" in res.stderr
    assert not (tmp_path / "w" / "10h").exists()


def test_usage_errors_exit_2(tmp_path):
    assert _run(["--range", "10h-11h"]).returncode == 2
    assert _run(["--bogus"]).returncode == 2


# ---- Slurm ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_run_matches_local_run(slurm_wait, local_run, hour_data, tmp_path):
    local_work, _ = local_run
    work = tmp_path / "slurm"
    res = _run(_args(hour_data, work, "--slurm", "--cpus", "1", "--mem", "4G"), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    agg_job = res.stdout.strip().splitlines()[-1]
    assert slurm_wait(agg_job, timeout=1500) == "COMPLETED", (work / "jobs").glob("*.out")
    deps = (work / "10h" / "image_jobs.dep").read_text().split()
    assert len(deps) == 3  # one Image job per subband, the broken one included
    states = [slurm_wait(j, 10) for j in deps]
    assert sorted(states) == ["COMPLETED", "COMPLETED", "FAILED"]
    # the dependency chain: each Image job waited on its Setup job
    state = json.loads((work / "state.json").read_text())
    assert state["mode"] == "slurm"
    for sb in ("55MHz", "73MHz"):
        assert int(state["subbands"][f"10h/{sb}"]["previous_job"]) < int(state["subbands"][f"10h/{sb}"]["image_job"])
    local, remote = _products(local_work), _products(work)
    assert set(remote) == set(local)
    for rel in [r for r in local if r.endswith("-image-pbcorr.fits") and "Deep" in r]:
        a, b = fits.getdata(local[rel]), fits.getdata(remote[rel])
        assert np.nanmax(np.abs(a - b)) <= 1e-3 * np.nanmax(np.abs(a)), rel
    assert shutil.which("sbatch")


def test_help_lists_the_options():
    res = _run(["--help"])
    assert res.returncode == 0
    for option in ("--range", "--slurm", "--resume-science", "--peel-sky", "--archive", "--config"):
        assert option in res.stdout


@pytest.mark.slow
def test_killed_run_then_rerun_gives_the_same_products(local_run, hour_data, tmp_path):
    """kill -9 of the whole driver (its process group, as a node crash or scancel does) in the middle
    of the 55 MHz science step; a rerun finishes and makes the same products as an uninterrupted run."""
    work = tmp_path / "crash"
    proc = subprocess.Popen(["bash", str(RUN_HOUR), *_args(hour_data, work)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    science_log = work / "10h" / "55MHz" / "logs" / "science.log"
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and proc.poll() is None:
        if science_log.exists() and "# start" in science_log.read_text():
            time.sleep(3)  # wsclean is running
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the driver ended before the science step could be interrupted"
    os.killpg(proc.pid, 9)
    proc.wait(timeout=60)
    assert "# lwa-pipe step science:" not in science_log.read_text()  # it really died mid-step

    res = _run(_args(hour_data, work))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[10h/55MHz] concat: done before" in res.stderr  # finished steps are kept
    reference, rerun = _products(local_run[0]), _products(work)
    assert set(rerun) == set(reference), set(rerun) ^ set(reference)
    for rel, path in reference.items():
        if path.suffix == ".fits" and "/images/" in rel:
            a, b = fits.getdata(path), fits.getdata(rerun[rel])
            scale = np.nanmax(np.abs(a))
            assert np.nanmax(np.abs(a - b)) <= 1e-3 * scale, rel
    leftovers = [p for p in work.rglob("*")
                 if p.name.startswith(".wsclean-") or (p.name.startswith(".") and p.name.endswith(".tmp"))]
    assert not leftovers, leftovers
