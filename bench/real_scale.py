"""Real-scale probe: one subband-hour of OVRO-LWA data, measured on a few integrations and extrapolated.

Simulates N real-size integrations with lwa-sim (every antenna of the real array, the demo sky of
docs/examples/demo_truth.yaml, 192 or 48 channels), runs the whole chain on them with
bin/run_hour.sh itself (local mode: the same CLIs and options as production, at the real image
size of lwa_common.config: 4096^2 at 1.875'), and reads from every step log the step's wall time,
CPU seconds and peak RSS (GNU time, written by run_hour.sh) and wsclean's own split of its time
(inversion, prediction, deconvolution; -vv puts wsclean's output in the step log). A dirty 512^2
image of the same concatenated MS gives the per-visibility gridding cost (the FFTs are negligible
there), which separates each wsclean pass into a fixed part (FFTs, w-layers) and a data part.
The extrapolation to a 360-integration hour on a node with C cores is written with its assumptions
into docs/performance.md, with the verdict against 3600 s per subband-hour (stretch 1800 s).

    .venv/bin/python bench/real_scale.py --mode laptop            # <= 30 min on 2 cores
    .venv/bin/python bench/real_scale.py --mode full --cores 32   # a cluster node

--gridder-check (also part of every run) compares the dirty images of wsclean's w-stacking and
wgridder with a direct Fourier sum of the same visibilities at point sources 0-80 deg from the
phase centre (small images).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
START = "2024-12-20T11:55:00"  # the demo's start: LST hour 17h-18h of 2024-12-20
HOUR_INTEGRATIONS = 360
BUDGET_S, STRETCH_S = 3600.0, 1800.0
# integrations and channels of the chain, the science configurations imaged (laptop: one cleaned deep
# I and one dirty V; the others are extrapolated from them), channel counts whose simulation rate is
# measured
MODES = {
    "laptop": {"n_int": 6, "n_channels": 48, "configurations": ("I-Deep-Taper-Robust-0", "V-Taper-Deep"),
               "sim_channels": (192, 48), "sim_n_int": 1},
    "full": {"n_int": 12, "n_channels": 192, "configurations": (), "sim_channels": (192, 48), "sim_n_int": 2},
}
TIME_RE = re.compile(r"# lwa-pipe rusage: wall (?P<wall>[\d.]+) s, user (?P<user>[\d.]+) s, "
                     r"system (?P<sys>[\d.]+) s, max_rss (?P<rss>\d+) KB")
WSCLEAN_SPLIT_RE = re.compile(r"Inversion: (\d+):(\d+):([\d.]+), prediction: (\d+):(\d+):([\d.]+), "
                              r"deconvolution: (\d+):(\d+):([\d.]+)")
PER_INTEGRATION = {"concat", "flag-rfi", "flag-hot", "flag-integrations", "snapshots", "movie", "peel-sky", "setup"}


def _bin_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{HERE / '.venv' / 'bin'}:{env['PATH']}"
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("LWA_SHARED_DATA", "/work/shared/data")
    return env


@dataclass
class Usage:
    wall_s: float
    cpu_s: float
    max_rss_gb: float


def run_measured(cmd: list[str], *, log: Path | None = None, cwd: Path | None = None) -> Usage:
    """Run `cmd` (run the bench itself with nice) and return its wall time, CPU seconds and peak RSS (its whole process tree)."""
    t0 = time.perf_counter()
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_bin_env(),
                                cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        if log:
            out.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"real_scale: error: {' '.join(cmd[:3])} ... failed (exit {proc.returncode}); log: {log}")
    return Usage(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024**2)


# ---- simulation -------------------------------------------------------------------------------
def lst_range_and_date(start: str, n_int: int, dt: float = 10.031) -> tuple[str, str]:
    """The LST hour holding the observation's middle and the date run_hour.sh maps it on (as bin/demo.sh)."""
    import astropy.units as u
    from astropy.time import Time

    from lwa_common.site import lst_hours, lst_to_utc

    t0 = Time(start, scale="utc")
    mid = t0 + n_int * dt / 2 * u.s
    hour = int(lst_hours(mid)) % 24
    for day in (0, -1):
        date = (mid + day * u.day).strftime("%Y-%m-%d")
        begin = lst_to_utc(float(hour), date)
        if begin <= t0 and mid - begin < 1 * u.hour:
            break
    return f"{hour:02d}h-{(hour + 1) % 24:02d}h", date


def simulate(out: Path, *, n_int: int, n_channels: int, spec: Path) -> dict:
    """lwa-sim observe with every antenna of the real array; its rate from its own per-integration log."""
    log = out.with_suffix(".log")
    use = run_measured(["lwa-sim", "observe", str(spec), "-o", str(out), "--start", START, "--n-int", str(n_int),
                        "--subband", "55", "--n-channels", str(n_channels), "--n-antennas", "352", "--layout",
                        "spread", "--overwrite", "-v"], log=log)
    text = log.read_text()
    sim = [float(x) for x in re.findall(r"simulated in [\d.]+ s \(CPU ([\d.]+) s", text)]
    wrote = [float(x) for x in re.findall(r"written in [\d.]+ s \(CPU ([\d.]+) s", text)]
    rows = [int(x) for x in re.findall(r"(\d+) rows x", text)]
    return {"n_int": n_int, "n_channels": n_channels, "rows": rows[0] if rows else 0,
            "simulate_cpu_s_per_int": float(np.mean(sim)), "write_cpu_s_per_int": float(np.mean(wrote)),
            "wall_s": use.wall_s, "cpu_s": use.cpu_s, "max_rss_gb": use.max_rss_gb,
            "ms_gb": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e9 / n_int}


# ---- the chain -----------------------------------------------------------------------------------
def run_chain(sim: Path, work: Path, *, n_int: int, configurations: tuple[str, ...]) -> Usage:
    """bin/run_hour.sh on the simulation (a config file keeps only `configurations` when given)."""
    rng, date = lst_range_and_date(START, n_int)
    config = []
    if configurations:
        from lwa_common.config import Config

        keep = [c for c in Config().imaging.configurations if c.name in configurations]
        rows = ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in c.__dict__.items()) + "}" for c in keep)
        (work.parent / "configurations.toml").write_text(f"[imaging]\nconfigurations = [{rows}]\n")
        config = ["--config", str(work.parent / "configurations.toml")]
    cmd = [str(HERE / "bin" / "run_hour.sh"), "--range", rng, "--date", date, "--subbands", "55", "--data", str(sim),
           "--workdir", str(work), "--targets", str(HERE / "docs" / "examples" / "demo_targets.csv"),
           "--catalog", str(sim / "catalog.csv"), "--hot-baselines", *config]
    return run_measured(cmd, log=work.parent / "run_hour.log")


def _hms(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass
class Step:
    name: str
    scope: str  # hour/subband or hour/all
    wall_s: float
    cpu_s: float
    max_rss_gb: float
    inversion_s: float = 0.0
    prediction_s: float = 0.0
    deconvolution_s: float = 0.0
    passes: int = 0  # gridding passes (PSF, image, model prediction) of all its wsclean runs
    iterations: int = 0  # CLEAN iterations of all its wsclean runs
    capped: int = 0  # runs that stopped on the iteration cap, not the threshold
    wsclean_runs: int = 0


PASS_MARKERS = (" == Constructing PSF ==", " == Constructing image ==", " == Converting model image to visibilities ==")


def read_steps(work: Path) -> list[Step]:
    """Every step log of a run_hour.sh work folder: GNU time's line and wsclean's own accounting."""
    steps = []
    for log in sorted(work.glob("*/*/logs/*.log")):
        text = log.read_text(errors="replace")
        m = TIME_RE.search(text)
        if not m:
            continue
        st = Step(log.stem, f"{log.parent.parent.parent.name}/{log.parent.parent.name}", float(m["wall"]),
                  float(m["user"]) + float(m["sys"]), int(m["rss"]) / 1024**2)
        for run in text.split("WSClean version")[1:]:
            st.wsclean_runs += 1
            st.passes += sum(run.count(k) for k in PASS_MARKERS)
            its = [int(x) for x in re.findall(r"Iteration (\d+),", run)]
            st.iterations += max(its, default=0)
            st.capped += "maximum number of iterations was reached" in run
            sp = WSCLEAN_SPLIT_RE.search(run)
            if sp:
                g = sp.groups()
                st.inversion_s += _hms(*g[0:3])
                st.prediction_s += _hms(*g[3:6])
                st.deconvolution_s += _hms(*g[6:9])
        steps.append(st)
    return steps


def gridding_rate(ms: Path, tmp: Path, *, cfg_gridder: list[str]) -> dict:
    """Seconds per 1e9 visibilities of one dirty inversion (512^2 over the same field: FFT negligible)."""
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        n_vis = t.nrows() * t.getcell("DATA", 0).shape[0]
    out = tmp / "rate"
    out.mkdir(exist_ok=True)
    log = out / "wsclean.log"
    use = run_measured(["wsclean", "-size", "512", "512", "-scale", "15amin", "-weight", "briggs", "0", "-pol", "I",
                        "-niter", "0", "-no-update-model-required", "-no-dirty", *cfg_gridder, "-name",
                        str(out / "rate"), str(ms)], log=log)
    m = WSCLEAN_SPLIT_RE.search(log.read_text())
    inv = _hms(*m.groups()[0:3]) if m else use.wall_s
    return {"n_vis": n_vis, "inversion_s": inv, "wall_s": use.wall_s, "cpu_s": use.cpu_s,
            "s_per_gvis_wall": inv / n_vis * 1e9, "s_per_gvis_cpu": use.cpu_s / n_vis * 1e9,
            "max_rss_gb": use.max_rss_gb}


# ---- the gridder check -----------------------------------------------------------------------------
def gridder_check(tmp: Path, *, size: int = 1024, scale_arcmin: float = 7.5, n_channels: int = 4) -> list[dict]:
    """Dirty images of w-stacking and wgridder vs a direct Fourier sum, at sources 0-80 deg from the centre.

    One integration of the real 352-antenna array, noiseless point sources of 100 Jy (no beam) at
    zenith distances 1-80 deg; natural weighting, autocorrelations and baselines beyond 80 % of the
    uv grid excluded (-minuv-l, -maxuv-l; the same cut in the sum). The sum is evaluated on a 9x9 pixel patch around each source.
    """
    import astropy.units as u
    import yaml
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.io import fits
    from astropy.time import Time
    from astropy.wcs import WCS
    from casacore.tables import table

    from lwa_common.site import ovro_location
    from lwa_common.sky import direction_cosines

    zds = [1.0, 20.0, 40.0, 60.0, 70.0, 80.0]
    azs = [0.0, 60.0, 120.0, 200.0, 260.0, 320.0]
    tmid = Time(START) + 10.031 / 2 * u.s
    frame = AltAz(obstime=tmid, location=ovro_location())
    c = SkyCoord(alt=(90 - np.array(zds)) * u.deg, az=np.array(azs) * u.deg, frame=frame).icrs
    spec = {"beam": False, "noise": {"sigma_jy": 0.0},
            "sources": [{"name": f"zd{int(z)}", "ra": float(s.ra.deg), "dec": float(s.dec.deg), "flux_jy": 100.0,
                         "spectral_index": 0.0} for z, s in zip(zds, c)]}
    (tmp / "gridder.yaml").write_text(yaml.safe_dump(spec))
    sim = tmp / "gridder-sim"
    run_measured(["lwa-sim", "observe", str(tmp / "gridder.yaml"), "-o", str(sim), "--start", START, "--n-int", "1",
                  "--subband", "55", "--n-channels", str(n_channels), "--n-antennas", "352", "--layout", "spread",
                  "--overwrite"], log=tmp / "gridder-sim.log")
    ms = next(sim.glob("*.ms"))
    max_uv = 0.8 / (2 * np.radians(scale_arcmin / 60))  # inside the uv grid of the image (wsclean drops the rest)
    images = {}
    for name, extra in (("w-stacking", []), ("wgridder", ["-use-wgridder"])):
        prefix = tmp / f"grid-{name}"
        use = run_measured(["wsclean", "-size", str(size), str(size), "-scale", f"{scale_arcmin}amin", "-weight",
                            "natural", "-pol", "I", "-niter", "0", "-minuv-l", "1", "-maxuv-l", f"{max_uv:.1f}",
                            "-no-update-model-required",
                            *extra, "-name", str(prefix), str(ms)], log=tmp / f"grid-{name}.log")
        data = fits.getdata(f"{prefix}-dirty.fits").squeeze().astype(float)
        images[name] = (data, use)
    header = fits.getheader(f"{tmp / 'grid-wgridder'}-dirty.fits")
    wcs = WCS(header).celestial
    with table(str(ms), ack=False) as t:
        uvw = t.getcol("UVW")
        d = t.getcol("DATA")
        flag = t.getcol("FLAG")
        with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as sw:
            freqs = sw.getcell("CHAN_FREQ", 0)
        with table(str(ms / "FIELD"), ack=False) as f:
            ra0, dec0 = f.getcell("PHASE_DIR", 0)[0]
    stokes_i = 0.5 * (d[:, :, 0] + d[:, :, 3])
    lam = 299_792_458.0 / freqs
    u_l, v_l, w_l = (uvw[:, i, None] / lam[None, :] for i in range(3))
    use_vis = (np.hypot(u_l, v_l) >= 1.0) & (np.hypot(u_l, v_l) <= max_uv) & ~flag[:, :, 0] & ~flag[:, :, 3]
    u_l, v_l, w_l, vis = u_l[use_vis], v_l[use_vis], w_l[use_vis], stokes_i[use_vis]
    rows = []
    for z, s in zip(zds, c):
        x0, y0 = (int(round(float(v))) for v in wcs.world_to_pixel(s))
        ys, xs = np.mgrid[y0 - 4:y0 + 5, x0 - 4:x0 + 5]
        sky = wcs.pixel_to_world(xs.ravel(), ys.ravel())
        l, m, n = direction_cosines(sky.ra.rad, sky.dec.rad, ra0, dec0)
        # the sign that puts lwa-sim's sources where wsclean (and the truth) puts them, with the MS's UVW
        phase = -2j * np.pi * (np.outer(l, u_l) + np.outer(m, v_l) + np.outer(n - 1, w_l))
        dft = (np.exp(phase) @ vis).real / len(vis)
        row = {"zenith_distance_deg": z, "dft_peak_jy": float(dft.max())}
        for name, (data, _) in images.items():
            patch = data[ys, xs].ravel()
            row[f"{name}_peak_jy"] = float(patch.max())
            row[f"{name}_max_abs_err_jy"] = float(np.max(np.abs(patch - dft)))
        rows.append(row)
    for name, (_, use) in images.items():
        rows[0][f"{name}_wall_s"] = use.wall_s
        rows[0][f"{name}_max_rss_gb"] = use.max_rss_gb
    return rows


# ---- the model ---------------------------------------------------------------------------------------
def amdahl_speedup(cores: int, efficiency_2: float) -> float:
    """Speed-up on `cores` from the parallel efficiency measured on 2 cores (Amdahl: serial fraction s)."""
    s2 = min(max(2 * efficiency_2, 1.0), 2.0)  # measured 2-core speed-up
    serial = 2.0 / s2 - 1.0
    return 1.0 / (serial + (1.0 - serial) / cores)


# Steps whose work grows with the integrations (and, for visibility steps, with the channels).
VIS_STEPS = {"concat", "flag-rfi", "flag-hot", "setup", "calibrate"}
IMAGE_PER_INTEGRATION = {"snapshots", "flag-integrations", "movie"}


def extrapolate(steps: list[Step], *, n_int: int, n_channels: int, rate: dict, cores: int, measured_cores: int,
                hour_channels: int) -> list[dict]:
    """Each step's wall seconds in a 360-integration hour of `hour_channels` channels on `cores` cores.

    The model (stated in docs/performance.md):
    - speed-up: Amdahl's law with the serial fraction implied by the step's own 2-core efficiency
      (CPU s / (wall s x 2)); on this busy shared machine that efficiency is low, so pessimistic;
    - visibility steps (concat, flaggers on the MS): CPU x integrations x channels;
    - per-integration image steps (snapshots, integration QA, movie): CPU x integrations; the
      snapshots' gridding data part also x channels;
    - science (wsclean): the CLEAN minor loops (wsclean's own deconvolution time) as measured and on
      one core (they stop on the threshold: a deeper image has more flux above it, an assumption
      stated in the doc); each gridding pass = a fixed part (FFTs, w-planes) as measured + a data
      part = the 512^2 probe's CPU s per visibility x the pass's visibilities, scaled to the hour;
    - per-image steps (pbcor, dewarp, cutouts, search, aggregation): as measured (same images).
    """
    f_int = HOUR_INTEGRATIONS / n_int
    f_ch = hour_channels / n_channels
    out = []
    for st in steps:
        eff = min(st.cpu_s / max(st.wall_s * measured_cores, 1e-9), 1.0)
        speed = amdahl_speedup(cores, eff)
        row = {"step": st.name, "scope": st.scope, "wall_s": st.wall_s, "cpu_s": st.cpu_s,
               "max_rss_gb": st.max_rss_gb, "efficiency_2": eff, "speedup": speed, "passes": st.passes,
               "iterations": st.iterations, "capped": st.capped, "deconvolution_s": st.deconvolution_s}
        if st.passes:
            data_cpu = min(rate["s_per_gvis_cpu"] * rate["n_vis"] / 1e9 * st.passes, st.cpu_s - st.deconvolution_s)
            other_cpu = max(st.cpu_s - st.deconvolution_s - data_cpu, 0.0)
            if st.name in IMAGE_PER_INTEGRATION:  # one pass per snapshot: everything grows with the integrations
                hour_cpu = (other_cpu + data_cpu * f_ch) * f_int
                deconv = 0.0
            else:
                hour_cpu = other_cpu + data_cpu * f_int * f_ch
                deconv = st.deconvolution_s
            row.update(kind="wsclean", data_cpu_s=data_cpu, hour_cpu_s=hour_cpu + deconv,
                       hour_wall_s=deconv + hour_cpu / speed)
        elif st.name in VIS_STEPS or st.name.startswith("peel"):
            hour_cpu = st.cpu_s * f_int * f_ch
            row.update(kind="per-integration", hour_cpu_s=hour_cpu,
                       hour_wall_s=hour_cpu / (cores if st.name.startswith("peel") else speed))
        elif st.name in IMAGE_PER_INTEGRATION:
            row.update(kind="per-integration", hour_cpu_s=st.cpu_s * f_int, hour_wall_s=st.cpu_s * f_int / speed)
        else:
            row.update(kind="per-image", hour_cpu_s=st.cpu_s, hour_wall_s=st.wall_s)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=list(MODES), default="laptop")
    ap.add_argument("--cores", type=int, default=32, help="cores of the node extrapolated to (default 32)")
    ap.add_argument("--n-int", type=int, default=None, help="integrations of the chain (default: the mode's)")
    ap.add_argument("--n-channels", type=int, default=None, help="channels of the chain (default: the mode's)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here as JSON")
    ap.add_argument("--gridder-check", action="store_true", help="only the gridder accuracy check")
    ap.add_argument("--skip-gridder-check", action="store_true")
    ap.add_argument("--skip-sim-rate", action="store_true")
    args = ap.parse_args()
    mode = dict(MODES[args.mode])
    n_int = args.n_int or mode["n_int"]
    n_channels = args.n_channels or mode["n_channels"]
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="real_scale_"))
    tmp.mkdir(parents=True, exist_ok=True)
    result: dict = {"mode": args.mode, "cores": args.cores, "n_int": n_int, "n_channels": n_channels,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine_cores": os.cpu_count()}
    try:
        if not args.skip_gridder_check or args.gridder_check:
            t0 = time.perf_counter()
            result["gridder_check"] = gridder_check(tmp)
            print(f"gridder check ({time.perf_counter() - t0:.0f} s):", file=sys.stderr)
            for row in result["gridder_check"]:
                print("  " + json.dumps(row), file=sys.stderr)
        if args.gridder_check:
            return
        spec = HERE / "docs" / "examples" / "demo_truth.yaml"
        if not args.skip_sim_rate:
            result["sim_rate"] = []
            for ch in mode["sim_channels"]:
                if ch == n_channels:
                    continue
                r = simulate(tmp / f"sim{ch}", n_int=mode["sim_n_int"], n_channels=ch, spec=spec)
                shutil.rmtree(tmp / f"sim{ch}", ignore_errors=True)
                result["sim_rate"].append(r)
                print(f"lwa-sim {ch} ch: {json.dumps(r)}", file=sys.stderr)
        sim = tmp / f"sim{n_channels}-chain"
        r = simulate(sim, n_int=n_int, n_channels=n_channels, spec=spec)
        result.setdefault("sim_rate", []).append(r)
        print(f"lwa-sim {n_channels} ch: {json.dumps(r)}", file=sys.stderr)
        work = tmp / "run"
        chain = run_chain(sim, work, n_int=n_int, configurations=mode["configurations"])
        result["chain"] = {"wall_s": chain.wall_s, "cpu_s": chain.cpu_s, "max_rss_gb": chain.max_rss_gb}
        steps = read_steps(work)
        result["steps"] = [st.__dict__ for st in steps]
        hour_ms = next(work.rglob("*-??h-??h.ms"), None) or next(work.rglob("55MHz-*.ms"))
        result["gridding_rate"] = gridding_rate(hour_ms, tmp, cfg_gridder=_config_gridder())
        for ch in (n_channels, 192 if n_channels != 192 else 48):
            result[f"hour_{ch}ch"] = extrapolate(steps, n_int=n_int, n_channels=n_channels,
                                                  rate=result["gridding_rate"], cores=args.cores,
                                                  measured_cores=os.cpu_count() or 1, hour_channels=ch)
    finally:
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=1))


def _config_gridder() -> list[str]:
    from lwa_common.config import load_config

    return ["-use-wgridder"] if getattr(load_config().imaging, "gridder", "") == "wgridder" else []


if __name__ == "__main__":
    main()
