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
WSTACK_OVER_WGRIDDER = 2.0  # #23: a dirty 4096^2 image, one core: 49-67 s with w-stacking, 30 s with the wgridder
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
    from astropy.time import Time

    from lwa_common.site import lst_hour_of

    return lst_hour_of(Time(start, scale="utc"), n_int * dt)


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
    n_int: int = 0  # integrations it was measured on, when not the run's (a step re-measured on its own)
    fixed_cpu_s: float = 0.0  # CPU that does not grow with the data (start-up, plots): measured on 1 integration
    processes: bool = False  # its growing part runs side by side in processes over the job's cores


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
            splits = WSCLEAN_SPLIT_RE.findall(run)  # cumulative: printed after every interval
            if splits:
                g = splits[-1]
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
def gridder_check(tmp: Path, *, size: int = 1024, scale_arcmin: float = 7.5, n_channels: int = 4,
                  accuracies: tuple[float, ...] = ()) -> list[dict]:
    """Dirty images of w-stacking and wgridder vs a direct Fourier sum, at sources 0-80 deg from the centre.

    One integration of the real 352-antenna array, noiseless point sources of 100 Jy (no beam) at
    zenith distances 1-80 deg; natural weighting, autocorrelations and baselines beyond 80 % of the
    uv grid excluded (-minuv-l, -maxuv-l; the same cut in the sum). The sum is evaluated on a 9x9 pixel patch around each source.
    `accuracies`: more wgridder images at these ``-wgridder-accuracy`` values (wsclean's default 1e-4),
    side by side in the same run (their CPU seconds in the first row).
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
    variants = [("w-stacking", []), ("wgridder", ["-use-wgridder"])]
    variants += [(f"wgridder-{a:g}", ["-use-wgridder", "-wgridder-accuracy", f"{a:g}"]) for a in accuracies]
    for name, extra in variants:
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
        rows[0][f"{name}_cpu_s"] = use.cpu_s
        rows[0][f"{name}_max_rss_gb"] = use.max_rss_gb
    return rows


# ---- the CLEAN probe --------------------------------------------------------------------------------
# The cleaned deep I (I-Deep-Taper-Robust-0) as lwa-image science runs it, with config overrides side by
# side in one run; the floor is the same wsclean without CLEAN (its gridding and FFTs only).
CLEAN_PROBE_RUNS = (
    ("w-stacking, CLEAN above 10 deg, -local-rms (main's defaults)",
     {"gridder": "wstack", "clean_horizon_deg": 0.0, "local_rms": True}),
    ("wgridder, CLEAN above 15 deg, -local-rms",
     {"gridder": "wgridder", "clean_horizon_deg": 15.0, "local_rms": True}),
    ("wgridder, CLEAN above 10 deg, no -local-rms (fast sub-minor loop)",
     {"gridder": "wgridder", "clean_horizon_deg": 0.0, "local_rms": False}),
    ("w-stacking, CLEAN above 10 deg, no -local-rms (fast sub-minor loop)",
     {"gridder": "wstack", "clean_horizon_deg": 0.0, "local_rms": False}),
)


def clean_probe(tmp: Path, *, n_int: int = 3, n_channels: int = 48, size: int = 2048, niter: int = 5000,
                threads: int = 1) -> list[dict]:
    """CPU seconds of the cleaned deep I's wsclean with each of CLEAN_PROBE_RUNS, and of its dirty floor.

    `n_int` real-size integrations (352 antennas, the demo sky) concatenated as the chain does,
    imaged at `size`^2 over the real field (1.875' x 4096 / size), CLEAN capped at `niter`
    iterations so every run does comparable work; `threads` wsclean threads (-j). The deconvolution
    CPU is wsclean's deconvolution share of the wall x the run's CPU.
    """
    import dataclasses

    from lwa_common.config import Config
    from lwa_image.science import wsclean_science_args

    sim = tmp / "probe-sim"
    simulate(sim, n_int=n_int, n_channels=n_channels, spec=HERE / "docs" / "examples" / "demo_truth.yaml")
    ms = tmp / "probe.ms"
    run_measured(["lwa-image", "concat", *map(str, sorted(sim.glob("*.ms"))), "-o", str(ms)], log=tmp / "probe-concat.log")
    base = Config().imaging
    conf = next(c for c in base.configurations if c.name == "I-Deep-Taper-Robust-0")
    scale = 0.03125 * 4096 / size
    first = CLEAN_PROBE_RUNS[0][1]
    runs = [("the floor: the first without CLEAN", first, 0), *((label, o, niter) for label, o in CLEAN_PROBE_RUNS)]
    rows = []
    for i, (label, overrides, n) in enumerate(runs):
        imaging = dataclasses.replace(base, **overrides, threads=threads)
        args = wsclean_science_args(conf, imaging, size=size, scale_deg=scale, niter=n, intervals_out=1,
                                    data_column="DATA")
        out = tmp / f"probe{i}"
        out.mkdir(exist_ok=True)
        use = run_measured(["wsclean", *args, "-name", str(out / "p"), str(ms)], log=out / "wsclean.log")
        text = (out / "wsclean.log").read_text()
        m = WSCLEAN_SPLIT_RE.search(text)
        decon_share = _hms(*m.groups()[6:9]) / max(use.wall_s, 1e-9) if m else 0.0
        image = out / "p-image.fits" if n else out / "p-dirty.fits"
        rows.append({"run": label, "overrides": overrides, "cpu_s": use.cpu_s, "wall_s": use.wall_s,
                     "deconvolution_cpu_s": decon_share * use.cpu_s, "max_rss_gb": use.max_rss_gb,
                     "major_cycles": len(re.findall(r"== Deconvolving", text)),
                     "iterations": max((int(x) for x in re.findall(r"Iteration (\d+)", text)), default=0),
                     **_image_stats(image)})
        print("  " + json.dumps(rows[-1]), file=sys.stderr)
    return rows


def clean_probe_table(rows: list[dict]) -> list[str]:
    """The CLEAN probe's rows as a markdown table, each run's CPU as a ratio to the floor (rows[0])."""
    floor = rows[0]["cpu_s"]
    out = ["| run | CPU s | x floor | deconvolution CPU s | peak RSS GB | major cycles | image RMS Jy (min) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['run']} | {r['cpu_s']:.1f} | {r['cpu_s'] / floor:.2f} | {r['deconvolution_cpu_s']:.1f} | "
                   f"{r['max_rss_gb']:.2f} | {r['major_cycles']} | {r['image_rms_jy']:.3f} ({r['image_min_jy']:.1f}) |")
    return [*out, ""]


def _image_stats(path: Path) -> dict:
    """Robust RMS (1.4826 MAD) and extremes of an image's finite pixels: a diverged CLEAN shows at once."""
    from astropy.io import fits

    data = fits.getdata(path).astype(float)
    good = data[np.isfinite(data)]
    mad = float(np.median(np.abs(good - np.median(good))))
    return {"image_rms_jy": 1.4826 * mad, "image_max_jy": float(good.max()), "image_min_jy": float(good.min())}


# ---- the model ---------------------------------------------------------------------------------------
# Steps whose work grows with the integrations (and, for visibility steps, with the channels), and the
# steps that run threaded (wsclean's gridding and FFTs, AOFlagger); everything else is one core.
VIS_STEPS = {"concat", "flag-rfi", "flag-hot", "calibrate"}
IMAGE_PER_INTEGRATION = {"snapshots", "flag-integrations", "movie"}
THREADED = {"flag-rfi", "snapshots", "science"}
ONCE_PER_HOUR = {"dewarp-fit", "gather", "report", "db-ingest", "archive"}


def science_factors(steps: list[Step], configurations: tuple[str, ...],
                    assumed_deep_i_passes: int = 11) -> tuple[dict[str, float], int, int]:
    """How the measured science step scales to all 7 configurations, and the images made / in all.

    Laptop mode images one cleaned deep I (P_I gridding passes) and the dirty deep V (2 passes: PSF,
    image). All 7: four cleaned deep I (4 P_I), the cleaned 10-min I (6 intervals of P_I passes each,
    a sixth of the data each), the dirty deep V (2) and the dirty 10-min V (6 x 2, a sixth of the data
    each); the CLEAN iterations of each 10-min interval are taken as those of the deep image
    (pessimistic: its noise is higher, its threshold too).
    """
    from lwa_common.config import Config

    everything = Config().imaging.configurations
    n_all = sum(Config().imaging.intervals_out if c.span == "10min" else 1 for c in everything)
    if not configurations:
        return {}, n_all, n_all
    sci = next((s for s in steps if s.name == "science"), None)
    if sci is None:
        return {}, len(configurations), n_all
    if sci.iterations:  # the cleaned deep I was measured: its passes
        p_i, measured = max(sci.passes - 2, 1), sci.passes
    else:  # only the dirty V finished: a cleaned deep I assumed to take 1 + 2 x 5 major cycles
        p_i, measured = assumed_deep_i_passes, sci.passes
    fixed = (4 * p_i + 6 * p_i + 2 + 12) / measured
    data = (4 * p_i + p_i + 2 + 2) / measured
    return {"fixed": fixed, "data": data, "iterations": 10.0, "deep_i_passes": p_i}, len(configurations), n_all


def extrapolate(steps: list[Step], *, n_int: int, n_channels: int, rate: dict, hour_channels: int,
                science_factor: dict[str, float], n_images: int, hour_images: int) -> list[dict]:
    """Each step's CPU seconds in a 360-integration hour of `hour_channels` channels (see MODEL).

    `science_factor` scales the measured science step to all configurations ("passes", "iterations":
    all / measured), `n_images`/`hour_images` the per-image steps.
    """
    f_ch = hour_channels / n_channels
    out = []
    for st in steps:
        f_int = HOUR_INTEGRATIONS / (st.n_int or n_int)
        row = {"step": st.name, "scope": st.scope, "wall_s": st.wall_s, "cpu_s": st.cpu_s, "max_rss_gb": st.max_rss_gb,
               "passes": st.passes, "iterations": st.iterations, "capped": st.capped,
               "threaded": st.name in THREADED or st.processes, "n_int": st.n_int or n_int,
               "processes": st.processes}
        share = st.cpu_s / max(st.wall_s, 1e-9)  # CPU the step got per wall second (here: a shared machine)
        if st.passes:
            deconv_cpu = min(st.deconvolution_s * share, st.cpu_s)
            per_pass = rate["n_vis"] / (n_int if st.name in IMAGE_PER_INTEGRATION else 1)  # a snapshot: one integration
            data_cpu = min(rate["s_per_gvis_cpu"] * per_pass / 1e9 * st.passes, st.cpu_s - deconv_cpu)
            fixed_cpu = st.cpu_s - deconv_cpu - data_cpu
            if st.name in IMAGE_PER_INTEGRATION:  # one pass per snapshot: all of it grows with the integrations
                grid_cpu, clean_cpu = (fixed_cpu + data_cpu * f_ch) * f_int, 0.0
            else:
                grid_cpu = (fixed_cpu * science_factor.get("fixed", 1.0)
                            + data_cpu * f_int * f_ch * science_factor.get("data", 1.0))
                clean_cpu = deconv_cpu * science_factor.get("iterations", 1.0)
            row.update(kind="wsclean", fixed_cpu_s=fixed_cpu, data_cpu_s=data_cpu, deconvolution_cpu_s=deconv_cpu,
                       hour_threaded_cpu_s=grid_cpu, hour_serial_cpu_s=clean_cpu)
        elif st.name in VIS_STEPS or st.name in IMAGE_PER_INTEGRATION:
            grows = (st.cpu_s - st.fixed_cpu_s) * f_int * (f_ch if st.name in VIS_STEPS else 1.0)
            row.update(kind="per-integration", **_split(st.name, grows, fixed=st.fixed_cpu_s, processes=st.processes))
        else:
            cpu = st.cpu_s * (1.0 if st.name in ONCE_PER_HOUR else hour_images / n_images)
            row.update(kind="per-image", **_split(st.name, cpu))
        row["hour_cpu_s"] = row["hour_threaded_cpu_s"] + row["hour_serial_cpu_s"]
        out.append(row)
    return out


def _split(name: str, cpu: float, *, fixed: float = 0.0, processes: bool = False) -> dict[str, float]:
    """A step's hour CPU as threaded (over the node's cores) and serial; `fixed` (start-up) is serial."""
    parallel = name in THREADED or processes
    return {"hour_threaded_cpu_s": cpu if parallel else 0.0, "hour_serial_cpu_s": fixed + (0.0 if parallel else cpu)}


def clean_wall_units(slots: int) -> float:
    """CLEAN units on the critical path when `slots` wsclean runs go side by side (the science step).

    lwa-image science side by side: every interval of a 10-min configuration is its own wsclean run,
    the beam reference (I-Deep-Taper-Robust-0) first, then the other deep runs and the dirty V runs,
    and the six 10-min I intervals as soon as the reference is written. Each cleaned run is one unit
    (four deep I, six 10-min I intervals: pessimistic, an interval has a sixth of the data); the
    dirty V runs hold a slot for no CLEAN. List scheduling of those runs on `slots` slots.
    """
    if slots <= 1:
        return 10.0
    free = [0.0] * slots  # when each slot is next free
    ends = {}
    queue = [("ref", 1.0, None)] + [("deep", 1.0, None)] * 3 + [("v", 0.0, None)] * 7 + [("int", 1.0, "ref")] * 6
    for name, length, after in queue:
        k = min(range(slots), key=free.__getitem__)
        start = max(free[k], ends.get(after, 0.0))
        free[k] = start + length
        ends.setdefault(name, free[k])
    return max(free)


def hour_wall(rows: list[dict], *, cores: int, efficiency: float, side_by_side: bool = False,
              cores_per_run: int = 4) -> float:
    """Wall seconds of the chain: threaded CPU over cores x efficiency, serial CPU on one core each.

    The science step's serial CLEAN is 10 units (four deep I, six 10-min intervals). One
    configuration at a time they add up; side by side (imaging.parallel_configurations, one wsclean
    run per `cores_per_run` cores) the critical path sets the wall (`clean_wall_units`: 2 of the 10
    on 32 cores, the reference deep I then one 10-min interval).
    """
    total = 0.0
    for r in rows:
        serial = r["hour_serial_cpu_s"]
        if r["step"].startswith("science") and side_by_side:
            serial *= clean_wall_units(cores // cores_per_run) / 10
        total += r["hour_wall_s"] if "hour_wall_s" in r else r["hour_threaded_cpu_s"] / (cores * efficiency) + serial
    return total


# ---- the report -------------------------------------------------------------------------------------
MODEL = """\
**Model.** Every number is CPU seconds measured on the N simulated integrations (GNU time around
each step, so wsclean's and AOFlagger's threads are included), scaled to the hour: visibility steps
(concat, flaggers) x integrations x channels; per-integration image steps (snapshots, integration
QA, movie) x integrations; per-image steps (pbcor, dewarp, cutouts, search, aggregation) x the
images of all 7 configurations / the images made. A wsclean step is split with wsclean's own
accounting: its CLEAN minor loops (deconvolution time x the step's CPU share) and its gridding
passes; each pass = a fixed part (FFTs, w-planes: as measured) + a data part (the CPU seconds per
visibility of a dirty 512^2 image of the same MS, where the FFTs are negligible, x the pass's
visibilities) that grows with the hour's visibilities. CLEAN stops on its threshold (auto-mask 3 sigma,
auto-threshold 0.5 sigma; the caps only bound a runaway): its iterations are taken as measured
(assumed: a deeper hour has more flux above the threshold, so this is the uncertain term). In laptop
mode the science step images one cleaned deep I and the dirty deep V; the other five configurations
are scaled from them (factors in the JSON: four more deep I, six 10-min intervals with the deep
image's passes and iterations each, pessimistic). Wall on a node with C cores: threaded CPU
(wsclean gridding and FFTs, AOFlagger) / (C x E) with E the parallel efficiency, serial CPU (CLEAN
minor loops, the Python steps, casacore concat) on one core. E cannot be measured here: this
2-core machine is shared (load average 20-40 during the run), so CPU / (wall x 2) measures the
machine's load, not the tools' scaling; E = 0.5 is assumed (the measured 2-core values are listed).
The CLEAN row's wall is the sum of its units one configuration at a time; side by side (the default)
it is the critical path of the wsclean runs on C / 4 slots (`clean_wall_units`: 2 of the 10 units on
32 cores, the beam-reference deep I then one 10-min interval)."""


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.1f}"


def write_doc(path: Path, result: dict, *, cores: int, efficiency: float) -> None:
    """docs/performance.md: the per-step table, the model, the totals and the verdict."""
    n_int, n_ch = result["n_int"], result["n_channels"]
    lines = [
        "# Performance at real scale",
        "",
        f"Written by `bench/real_scale.py --mode {result['mode']}` ({result['date']}; {result['machine_cores']}-core "
        f"shared machine). Chain: {n_int} simulated integrations of the real array (352 antennas, {n_ch} channels, "
        "the demo sky), run by `bin/run_hour.sh` itself (same CLIs and options), images 4096^2 at 1.875'.",
        "Budget: one subband-hour (360 integrations) in <= 3600 s on a 32-core node; stretch 1800 s (two "
        "subbands per node).",
        "",
    ]
    if result.get("notes"):
        lines += [result["notes"], ""]
    sims = result.get("sim_rate", [])
    if sims:
        lines += ["## Simulation rate (lwa-sim, vectorised)", "",
                  "| channels | rows | simulate CPU s / integration | write CPU s / integration | MS GB / integration "
                  "| peak RSS GB |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['n_channels']} | {r['rows']} | {r['simulate_cpu_s_per_int']:.1f} | "
                  f"{r['write_cpu_s_per_int']:.1f} | {r['ms_gb']:.2f} | {r['max_rss_gb']:.1f} |" for r in sims]
        lines.append("")
    gc = result.get("gridder_check")
    if gc:
        lines += ["## Which gridder is right far from the phase centre", "",
                  "Dirty images (1024^2 at 7.5', natural weighting, one integration of 352 antennas, 4 channels) of "
                  "100 Jy point sources at 1-80 deg from the phase centre (zenith), against a direct Fourier sum "
                  "of the same visibilities on a 9x9-pixel patch around each (the same uv cut).", "",
                  "| zenith distance | DFT peak Jy | w-stacking peak (err) | wgridder peak (err) "
                  "| w-stacking max abs err Jy | wgridder max abs err Jy |", "|---|---|---|---|---|---|"]
        extra = sorted((k[len("wgridder-"):-len("_max_abs_err_jy")] for k in gc[0]
                        if k.startswith("wgridder-") and k.endswith("_max_abs_err_jy")), key=float, reverse=True)
        if extra:  # the wgridder at tighter -wgridder-accuracy, same run
            lines[-2] += "".join(f" wgridder {a} max abs err Jy |" for a in extra)
            lines[-1] += "---|" * len(extra)
        for r in gc:
            d = r["dft_peak_jy"]
            lines.append(
                f"| {r['zenith_distance_deg']:.0f} deg | {d:.2f} | {r['w-stacking_peak_jy']:.2f} "
                f"({100 * (r['w-stacking_peak_jy'] / d - 1):+.2f} %) | {r['wgridder_peak_jy']:.2f} "
                f"({100 * (r['wgridder_peak_jy'] / d - 1):+.2f} %) | {r['w-stacking_max_abs_err_jy']:.2f} "
                f"| {r['wgridder_max_abs_err_jy']:.2f} |" + "".join(f" {r[f'wgridder-{a}_max_abs_err_jy']:.2f} |"
                                                                    for a in extra))
        if extra and "wgridder_cpu_s" in gc[0]:
            cpu = ", ".join(f"{name} {gc[0][f'{key}_cpu_s']:.1f}" for name, key in
                            (("w-stacking", "w-stacking"), ("wgridder 1e-4", "wgridder"),
                             *((f"wgridder {a}", f"wgridder-{a}") for a in extra)))
            lines += ["", f"CPU s of each dirty image (side by side in one run): {cpu}."]
        lines += ["", GRIDDER_VERDICT, ""]
    lines += ["## Per step", "", MODEL, ""]
    for ch in (192, 48):
        rows = result.get(f"hour_{ch}ch")
        if not rows:
            continue
        lines += [f"### Extrapolated to a {ch}-channel subband-hour on {cores} cores (E = {efficiency})", "",
                  "| step | kind | measured wall s | CPU s | CPU s per integration (image) | peak RSS GB "
                  "| 2-core efficiency | hour CPU s | hour wall s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            per = r["cpu_s"] / (r.get("n_int") or n_int) if r["kind"] != "per-image" else r["cpu_s"]
            wall = r["hour_threaded_cpu_s"] / (cores * efficiency) + r["hour_serial_cpu_s"]
            eff = r["cpu_s"] / max(r["wall_s"] * result["machine_cores"], 1e-9)
            extra = f" ({r['passes']} passes, {r['iterations']} CLEAN it.)" if r.get("passes") else ""
            if r.get("n_int", n_int) != n_int:  # re-measured on its own (the levers work)
                extra += f" (re-measured on {r['n_int']} integrations{', in processes' if r.get('processes') else ''})"
            lines.append(f"| {r['step']}{extra} | {r['kind']} | {_fmt(r['wall_s'])} | {_fmt(r['cpu_s'])} | "
                         f"{per:.2f} | {r['max_rss_gb']:.2f} | {eff:.2f} | {_fmt(r['hour_cpu_s'])} | {_fmt(wall)} |")
        assumed = [clean_row_for_config(a, result.get("clean_probe") or [], local_rms=_config_local_rms(),
                                        gridder="wgridder" if _config_gridder() else "wstack")
                   for a in result.get(f"assumed_{ch}ch", [])]
        for a in assumed:  # stages not measured by this run, with their source
            wall = a.get("hour_wall_s", a["hour_threaded_cpu_s"] / (cores * efficiency) + a["hour_serial_cpu_s"])
            lines.append(f"| {a['step']} | not measured: {a['source']} | | | | {a.get('max_rss_gb', '')} | | "
                         f"{_fmt(a['hour_threaded_cpu_s'] + a['hour_serial_cpu_s'])} | {_fmt(wall)} |")
            rows = [*rows, {**a, "hour_cpu_s": a["hour_threaded_cpu_s"] + a["hour_serial_cpu_s"]}]
        gridder = result.get("gridder", "wgridder")
        other = "wstack" if gridder == "wgridder" else "wgridder"
        k = WSTACK_OVER_WGRIDDER if other == "wstack" else 1 / WSTACK_OVER_WGRIDDER
        swapped = [{**r, "hour_threaded_cpu_s": r["hour_threaded_cpu_s"] * (k if r.get("kind") == "wsclean" else 1.0)}
                   for r in rows]
        default = "wgridder" if _config_gridder() else "wstack"
        for label, rs in ((f"gridder {gridder} (as measured)", rows), (f"gridder {other} (wsclean gridding x {k:.2g}, "
                                                                        "the ratio #23 measured)", swapped)):
            label += ", the pipeline's default" if label.split()[1] == default else ""
            seq = hour_wall(rs, cores=cores, efficiency=efficiency)
            par = hour_wall(rs, cores=cores, efficiency=efficiency, side_by_side=True)
            cpu = sum(r["hour_threaded_cpu_s"] + r["hour_serial_cpu_s"] for r in rs)
            lines += ["", f"**Total, {ch} channels, {label}:** {_fmt(cpu)} CPU s; wall {_fmt(seq)} s with the "
                      f"configurations one after another, {_fmt(par)} s side by side (the default on a "
                      f"{cores}-core node). Budget 3600 s: **{'inside' if par <= BUDGET_S else 'outside'}** "
                      f"({par / BUDGET_S:.2f}x); stretch 1800 s: **{'inside' if par <= STRETCH_S else 'outside'}**."]
        lines.append("")
    lines += [LEVERS, "", CLEAN_PROBE, ""]
    if result.get("clean_probe"):
        lines += clean_probe_table(result["clean_probe"])
    lines += [PEEL, "", MEMORY, ""]
    path.write_text("\n".join(lines) + "\n")


LEVERS = """\
## Verdict and levers

**Outside the budget** (totals above). The largest terms now: CLEAN (its 10 units of ~1,015 CPU s,
2 on the critical path), the science gridding passes (0.34 CPU us per gridded visibility per pass,
about 60 full-data passes for the 7 configurations) and the snapshots' cost per integration.

In the pipeline now (science unchanged):
- **Every wsclean run side by side** (`imaging.parallel_configurations`, 0 = one per 4 CPUs of the
  job: 8 on a 32-core node, 1 on a laptop, so the scenario suite is unaffected), wsclean's threads
  and `-abs-mem` shared out. Side by side, each interval of a 10-min configuration is its own
  wsclean run (`-interval`, the same time steps as that interval of `-intervals-out`), and a run
  restored with a deep image's beam starts as soon as that image is written: the CLEAN wall is the
  reference deep I then one 10-min interval, 2 of the 10 units (it was the 10-min run's six
  intervals in one wsclean, 6 of 10). The same images as one at a time (tools/lwa-image test).
- **CLEAN stops on its threshold** (auto-threshold 0.5, auto-mask 3): the caps (500k/150k/50k) only
  bound a runaway. The iteration count of an hour-deep image is the model's uncertain term.
- **Peel converges** on a sky with the A-team (the `ateam` work): 64 CPU s per 192-channel MS instead
  of #23's 266 (the peel rows).
- **Per-job Slurm resources** (`[cluster] jobs`, `peel_tasks`), wsclean threads and memory from the
  job, AOFlagger's read mode from the job (below).
- **flag-hot and flag-integrations side by side** (the `levers` work; `hot_baselines.processes`,
  `snapshot_qa.processes`, 0 = one process per CPU of the job): the MS in fixed 256 MB row blocks
  added in block order, the snapshots one per process; the same flags to the bit whatever the
  process count (lwa-flag test; at real size the flags and CSVs equal main's). Re-measured at real
  size (48 channels) on 1 and 8 integrations: each step is ~2.4-2.5 CPU s of start-up and plots
  (the first run's rows scaled that x 60 as if it grew with the data) plus 0.18 (flag-hot) and 1.2
  (flag-integrations, 4096^2 snapshots) CPU s per integration; 48-channel hour wall: flag-hot 229
  -> 6.5 s (66 s serially), flag-integrations 467 -> 30 s (443 s serially). Not in processes: the
  integration QA's test of a high frame (its neighbours' median image, ~2.5 CPU s per frame at
  4096^2), here two of eight frames (the demo sky's bursts), which the model counts as parallel.
- **Snapshots** re-measured at 4096^2 on 8 integrations (the `levers` work, 2026-12-07 15:20, load
  ~9): 10.2 CPU s per integration with the wgridder, against 21.4 in the first run at load 20-40:
  the snapshot row's fall (482 -> 230 s wall at 48 channels) is the machine, not the code.

Left (not done; the estimated gain on the 48-channel hour):
- **CLEAN without `-local-rms`** (`imaging.local_rms = false`; the probe below): wsclean 3.1's fast
  multiscale sub-minor loop, which crashes with `-local-rms`; the auto-mask and threshold then follow
  the image's global RMS. The probe's deconvolution of the same 5,000 iterations: 11.6 CPU s instead
  of 40.6 with w-stacking (9.1 instead of 37.8 with the wgridder): the CLEAN row x 0.29, its side-by-side
  wall on the 48-channel hour 2,030 s -> ~590 s (`bench/real_scale.py` computes that row from the probe when the
  config has `local_rms = false`). Every goal measured on the five skies where it could hurt held
  as on main ("The wgridder's V candidates and CLEAN without `-local-rms`" above). Not the default:
  the fast loop's CLEAN depends on wsclean's thread count (`pol_vbursts`' tapered deep I, 512^2,
  10,000 iterations: deterministic at one `-j`, but `-j 1` against `-j 2` differ by 0.83 of the
  image's MAD, 0.06 with `-local-rms`), so the side-by-side science step (fewer threads per run) no
  longer makes the images of one at a time (`tools/lwa-image` test: 0.52 of the noise, limit 0.5).
  Worse, uncapped it diverges: the same image with the pipeline's own cap (500,000 iterations
  instead of the demo's 2 %), w-stacking, one thread: with `-local-rms` it stops on its threshold
  after 14,903 iterations (image MAD 0.059 Jy, -j 2 the same to 0.003 of it); without, it runs to
  the cap (MAD 4.4 Jy with -j 1, 1,794 Jy with -j 2), the residual's peak at 72-74 deg from the
  phase centre (16-18 deg elevation, where the wgridder's CLEAN diverged with `-local-rms`: "Cause
  and fix"), and with CLEAN above 15 deg too (MAD 34 Jy after 27,613 iterations). The demo's 2 %
  cap stops it before it shows, so the scenario goals cannot see it. Not a lever with wsclean 3.1;
  a wsclean 3.4+ has the fast loop with a local RMS.
- **Concatenation without the copy** (0.74 CPU s per 48-channel integration, serial): rephase each
  working copy in place as array tasks and concatenate virtually (casacore ConcatTable): ~ -250 s.
- **flag-hot and flag-integrations** run serially over the hour (0.64 and 1.3 CPU s per integration):
  chunks in parallel, ~ -650 s.
- **Snapshots** cost two 4096^2 inversions per integration whatever the data (21 CPU s per
  integration with the wgridder): the bad-integration QA needs only their RMS, so 2048^2 at 3.75'
  would cost a quarter, ~ -350 s (a QA and movie change the demo-size scenario suite cannot check:
  its snapshots are 512^2).
- **Concatenation without the copy** (re-measured with main's code on 1 and 8 real-size
  integrations: 1.6 CPU s of start-up and 0.44 per 48-channel integration, serial: ~160 s of the
  48-channel hour, the most this can gain): rephase each working copy in place as array tasks and
  concatenate virtually (casacore ConcatTable); AOFlagger (flag-rfi over the hour) and wsclean
  would then read a virtual table. Not done.
- **Snapshots at half the pixels** (`[snapshot_qa] size = 2048`, `scale_arcmin = 3.75`: the same
  field) serve the QA as well (8 real-size integrations: frame RMS within 0.2 % of 4096^2's, the
  same bursts kept) and pay only with the wgridder: 53.0 against 81.8 CPU s (6.6 against 10.2 per
  integration; ~ -80 s wall on the 48-channel hour, and flag-integrations reads a quarter of the
  pixels: 3.7 against 12.2 CPU s). With w-stacking 160.3 against 127.7 CPU s (one integration
  19.4 against 15.0, the same 37 w-layers), so the default stays 4096^2: set it with the wgridder.
- **The wgridder is the default** (sixth round; `imaging.gridder = "wstack"` for w-stacking): half
  the gridding CPU (the "gridder wgridder" totals above: 48 channels 5,210 s instead of 6,881 s side
  by side) and ~0.6 GB instead of ~2 GB at 2048^2 (~10 GB at 4096^2, above the 8 GB job) per
  wsclean run; the cleaned deep I of the CLEAN probe (below) costs 69.9 CPU s instead of 128.9. Its
  CLEAN divergence near the horizon is fixed by `imaging.clean_horizon_deg = 15`, the default with
  it (above: "Cause and fix"). What decided it is the science: it is right for Stokes I far from
  the phase centre and w-stacking is not ("Which gridder is right" above), and a sky written after
  the rounds (`south_flare`, sources down to 20 deg elevation) failed the flux goal with w-stacking
  (sources below 30 deg elevation 2.9 % low, median, up to 8 %) and passes with the wgridder
  (+0.02 %). `ateam_rms` is scored against an imaged control (1.24x with the wgridder on
  `ateam_bursts`); `ateam_peel`'s `transient_false` is a noise draw (docs/science.md).
- **Fewer gridding passes**: the seven configurations grid the same visibilities ~60 times;
  `-mgain` above 0.8 (fewer major cycles) or baseline-dependent averaging (`-baseline-averaging`:
  the short baselines dominate the 352-antenna array) cut the data term; both change the science.
- **`-parallel-deconvolution`** is no lever in wsclean 3.1: with `-local-rms` and multiscale its fast
  sub-minor loop crashes (exit 134, as without it), and with `-no-multiscale-fast-subminor` a 512^2
  test ran 10 major cycles instead of 5 and 4x the deconvolution time (every sub-image stopped on
  its iteration cap). A newer wsclean (3.4+) is the way to the fast sub-minor loop.
- **192 channels** cost 4x the gridding of the archive's 48-channel product. Science cost of 48
  channels: radial bandwidth smearing of (95.7 kHz / 55 MHz) x l, about 5' at 60 deg from the phase
  centre (half an 11.5' beam: peaks there roughly 10 % low, flux conserved) against 1.3' at 192."""


CLEAN_PROBE = """\
## What CLEAN costs (probe)

The cleaned deep I's options, one wsclean each (`-j 1`, the wgridder), on 3 real-size integrations
(352 antennas, 48 channels, the demo sky), 2048^2 at 1.875' (a quarter of the pixels), CLEAN capped
at 5,000 iterations (every run reached it in 5 major cycles),
2026-12-07 on the shared machine (load 10-16: CPU seconds are the figure; the deconvolution's CPU
is wsclean's deconvolution share of the wall x the run's CPU):

| run | CPU s | deconvolution CPU s | peak RSS |
|---|---|---|---|
| the pipeline's: multiscale (8 scales), `-local-rms`, `-no-multiscale-fast-subminor` | 79.5 | 42 | 0.62 GB |
| the same with `-multiscale-max-scales 4` | 80.3 | 38 | 0.53 GB |
| multiscale (8 scales) without `-local-rms` (wsclean's fast sub-minor loop) | 53.7 | 11 | 0.69 GB |
| multiscale (8 scales) without `-local-rms`, `-no-multiscale-fast-subminor` | 77.0 | 34 | 0.61 GB |

CLEAN's cost is its slow sub-minor loop, which `-local-rms` forces in wsclean 3.1 (the fast one
crashes with it): 3x the deconvolution CPU of the fast loop for the same iterations; the local-RMS
map itself adds about a quarter. The large scales (up to 1,003 px) are never chosen and cost
little. The lever is wsclean's fast sub-minor loop with a local RMS (a newer wsclean, 3.4+) or a
CLEAN without `-local-rms` (a science change: the auto-mask and threshold then follow the global
RMS, which the bright sources' sidelobes raise near them): about -3/4 of the CLEAN row.

Measured again side by side by `bench/real_scale.py --clean-probe` (2026-12-07 12:28-13:05 UTC,
load 6-8): the cleaned deep I (I-Deep-Taper-Robust-0) exactly as `lwa-image science` builds it
(`wsclean_science_args`) with config overrides, 3 real-size integrations (352 antennas, 48
channels, the demo sky), 2048^2 at 3.75' (the real field at half the resolution), one thread, CLEAN
capped at 5,000 iterations (every run reached the cap, so the images are not comparable: the RMS
column only shows that none diverged). The floor is the first run's wsclean without CLEAN (its
dirty image and PSF, w-stacking):"""


PEEL = """\
## Peel at real size (measured)

One 10-s integration of the real array (352 antennas, 192 channels; the `ateam_peel` sky: Cyg A and
Cas A as ~100 resolved components, mismatched from the shipped model), `lwa-peel sky` with the
shipped A-team model, one core (`taskset`), on the shared machine at load ~20 (so CPU seconds, not
wall, are the figure):

| run | DDECal iterations | CPU s (user + sys) | peak RSS | A-team power left | field sources 4-12 deg from the A-team, change median / max |
|---|---|---|---|---|---|
| defaults (per-channel solutions) | 14, converged | 62.8 | 3.9 GB | 3.3e-5 | 1.3 % / 3.1 % |
| `--field` (the field catalogue kept fixed) | 14, converged | ~65 | 4.3 GB | 3.2e-5 | 0.34 % / 1.7 % |

The simulation of that integration took 4.9 GB. The peel job's request (2 CPUs, 8 GB) is above both
peaks. The power left at real size (3.3e-5) is above the goal of 1e-5 that the demo-size scenario
meets (1.9e-7): with antennas over the whole array the shipped model's missing structure sets the
floor (2.3e-5 / 7.5e-6 in noiseless single-integration tests with the exact field).

Since then `--field` peels twice (`peel.field_refine`): the first pass's output gives each field
source's position (the ionosphere moves them arcminutes from the catalogue), the second peels the
original data with the field moved there. At demo size that takes the RMS near the A-team from
1.77x to 1.21x the sky without it; at real size (one integration) the power left is 2.1e-5 (12 of
25 field sources kept at their catalogue positions by the fit).

Then the A-team's model is refined from the data (`peel.model_refine_rounds`, lwa-peel README):
after a pass, each source's residual (its own gains applied inverted, phase-shifted to it by DP3)
is CLEANed around it by wsclean and the clean components join its model for the next pass. The
same integration, `--field` with the field-position fit, one core (`taskset`), GNU time, power
left and field change as `lwa-sim score` computes them (against the sky simulated without the
A-team, same noise; the 9 field sources within 12 deg):

| `model_refine_rounds` | DDECal passes, iterations | CPU s (user + sys) | peak RSS | A-team power left | field within 12 deg, median / max |
|---|---|---|---|---|---|
| 0 (before) | 2, 14 each, converged | 186 | 4.3 GB | 2.1e-5 | 0.53 % / 1.20 % |
| 1 | 2, 14 each | 198 | 4.3 GB | 1.1e-5 | 0.30 % / 0.93 % |
| 2 (default) | 3, 14 each | 349 | 4.3 GB | 6.0e-6 | 0.38 % / 0.80 % |

The goal (1e-5) is met with two rounds. A round's imaging costs ~12 CPU s per MS (both sources: a
DP3 pass writing a 16-channel rephased residual and a 64^2 wsclean); the second round's cost is its
DDECal pass and a second field fit. The peel rows above use it: with the field fit and two rounds
it is 349 CPU s per 192-channel MS, 5.5x one pass (x 360 MS: ~126,000 CPU s per 192-channel hour,
~3,900 s wall as 32 array tasks; ~1/4 of that at 48 channels if linear, not measured).

Now the model is refined once per subband-hour (`lwa-peel refine-model`, `peel.model_refine_once`,
lwa-peel README): the two rounds run on one MS (the middle one of the hour), the clean components
are divided by the beam at that time and stored intrinsic, and every MS's peel uses that model
with no round (its field fit and final pass: 2 DDECal passes). The same sky at real size, one
core, GNU time; the model refined from the 01:00 integration and used on one simulated 45 minutes
later (Cyg A and Cas A elsewhere in the beam):

| run | DDECal passes, iterations | CPU s (user + sys) | peak RSS | A-team power left | field within 12 deg, median / max |
|---|---|---|---|---|---|
| `refine-model` on the 01:00 MS (two rounds; once per subband-hour) | 2, 14 each | 295 | 4.3 GB | | |
| 01:00 (the refining MS), refined once, no round | 2, 14 each | 188 | 4.3 GB | 6.0e-6 | 0.38 % / 0.80 % |
| 01:45, refined once at 01:00, no round | 2, 14 each | 205 | 4.3 GB | 4.7e-6 | 0.30 % / 0.63 % |
| 01:45, the shipped model, no round | 2, 14 each | 181 | 4.3 GB | 1.6e-5 | 0.63 % / 1.21 % |
| 01:45, the shipped model, two rounds in the MS (as before) | 3, 14 each | 320 | 4.3 GB | 4.8e-6 | 0.21 % / 0.59 % |

The model refined 45 minutes earlier peels as well as two rounds in that MS itself. CPU seconds
moved with the machine's load by ~10 % (the 01:45 runs of the shipped model ran at load ~4, the
others at ~10-20). The peel rows above use it: 205 CPU s per 192-channel MS (349 with the rounds in every MS) plus
295 once before the Peel array (on the critical path): x 360 MS, ~74,100 CPU s and ~2,600 s wall
per 192-channel hour on 32 cores (was ~126,000 and ~3,900). Lever left (not measured): fit the
field positions once per hour too (the per-MS peel would be one pass, ~65 CPU s), if the
ionosphere holds still long enough."""


MEMORY = """\
## Memory and the Slurm requests

Peak RSS per step at real image size (GNU time, the step and its children; 6 integrations of 352
antennas, 48 channels, 4096^2): concat 0.39 GB, flag-hot 0.34 GB, flag-rfi 1.54 GB (AOFlagger read
the whole MS into memory), flag-integrations 1.74 GB, snapshots 0.39 GB (both at 4096^2; with
2048^2 snapshots 0.38 and 0.20 GB on 8 integrations) and the dirty deep V 0.87 GB with the wgridder, the cleaned deep I above 1.7 GB when stopped; lwa-sim 1.25 GB per 192-channel
integration; w-stacking: 10.0-10.8 GB per 4096^2 wsclean whatever the data (#23). How they grow with
the hour: wsclean's images are fixed and its visibility buffers are bounded by `-abs-mem`, which
lwa-image now sets from the job (`imaging.slurm_mem_fraction` x `--mem`, shared among the
configurations run at once); AOFlagger's automatic mode would read the whole hour (55 GB at 48
channels, 210 GB at 192) into memory because in a job it sees the whole node, so lwa-flag rfi asks
for `-indirect-read` inside a job whose memory the MS does not fit twice; concat and flag-hot work
per MS / per chunk (flag-hot and flag-integrations in one process per CPU of the job, each holding
one block's 16 MB buffers or one snapshot: 0.43 and 2.0 GB for the largest process with 2 at 4096^2,
where the neighbours' median image of a burst's frame dominates). Requests (`[cluster] jobs`, with margin over the peaks): setup 2 CPUs 4 GB (one
MS at a time), peel 2 CPUs 8 GB (DDECal 5.0 GB per MS, #23) x 16 tasks, image 32 CPUs 96 GB (8
wsclean runs side by side: ~1-2 GB each with the wgridder, still room for 8 w-stacking runs at ~10.8
GB = 86 GB), aggregate 4 CPUs 16 GB.
`tests/test_archive_tree.py` checks that the dry-run job graph carries them."""


GRIDDER_VERDICT = """\
**For Stokes I the wgridder is right; w-stacking loses flux far from the centre.** The wgridder's
peak matches the direct sum to 0.05 % out to 70 deg and 0.2 % at 80 deg, its whole patch to 0.06 Jy
(of 100) out to 70 deg; w-stacking's peak is low by 0.3 % at 40 deg, 1 % at 60, 1.6 % at 70 and 3 %
at 80 deg. At 80 deg (the edge of the 10 deg horizon mask) the wgridder's sidelobe pixels 2-4 px
from the peak differ from the sum by up to 10 Jy while its peak is right. The I difference #23 saw
beyond 50 deg is w-stacking's error.

**Why the wgridder made false V candidates.** With the wgridder, the CI sky `pol_vbursts` (seed
101) had 47 false V candidates instead of 1. Cause: the pixels below wsclean's `-horizon-mask` (10
deg elevation; `-horizon-mask` is only a CLEAN mask, the image keeps them). On that sky's MS (512^2
at 0.25 deg, dirty V-Taper-10min interval 3 minus V-Taper-Deep), the 5-sigma pixels of the
difference by distance from the phase centre:

| zenith distance | pixels | w-stacking > 5 sigma | wgridder > 5 sigma |
|---|---|---|---|
| 0-80 deg | 160,033 | 164 | 137 |
| 80-90 deg (below the mask) | 5,012 | 11 | 126 |
| beyond 90 deg (not on the sky) | 97,099 | 15 | 3,823 |

Above the mask the two gridders agree (difference RMS within 5 %, the same normalisation: equal
WSCNORMF, PSF peaks 1.0, 10-min / deep scale 1.044 vs 1.050). Below it the wgridder's pixels are
structured and change with the time range, and lwa-transient searched them. `lwa-image science`
now writes every pixel below the horizon mask as NaN (`imaging.blank_below_horizon`, header
`HORIZON`, as the primary-beam corrected images already are). With the wgridder and that blanking,
both CI skies ran the whole chain (2026-12-07): `pol_vbursts` 0 false V candidates (70 marked
artefact), 4/4 bursts, flux 27/27 (median 0.6 %), target V -1.7 to -3.8 %; `iono_rfi_hot` every goal
passed (3/3, 0 false, flags 100 % / 1.27 %, dewarp 1.474 -> 0.007 beam, flux 29/30, median 1.0 %,
target V -3.7 %).

**The wgridder's CLEAN divergence (2026-12-07 first round).** In that `pol_vbursts` run the
multiscale CLEAN of both tapered deep I images diverged (I-Deep-Taper-Robust-0: image MAD 7.4 Jy
against 0.06 in a w-stacking run of the same sky, peak 551 Jy; the residual peak alternating in
sign and growing per major cycle at one pixel 77 deg from the phase centre). With w-stacking and the
blanking, `pol_vbursts` and `iono_rfi_hot` scored as on main, so `imaging.blank_below_horizon` is on
by default (with either gridder).

**Cause and fix (2026-12-07 second round, `perf`).** Reproduced with the wgridder on `pol_vbursts`
(seed 101): both tapered deep I diverged again (I-Deep-Taper-Robust-0 MAD 95,475 Jy, -0.75 MAD 24
Jy; the untapered deep I and the 10-min I converged), all CLEAN components at scale 0 on pixels
(475-479, 287): 77 deg from the phase centre, 13 deg elevation; 23 major cycles, the residual
peak multiplied by about -3 per cycle. The same wsclean alone on that MS (14.8 CPU s):

| the tapered deep I (512^2, CLEAN cap 10,000) | major cycles | image MAD Jy |
|---|---|---|
| wgridder, `-horizon-mask 10deg`, `-local-rms` (as the pipeline ran it) | 23 | 114,935 (diverged) |
| the same, `-wgridder-accuracy 1e-5` | 23 | 119,459 (diverged) |
| the same, `-wgridder-accuracy 1e-6` | 23 | 161,356 (diverged) |
| wgridder, CLEAN above 12 deg elevation (`-horizon-mask 12deg`) | 9 | 0.044 |
| wgridder, CLEAN above 15 deg elevation (Robust 0 and -0.75) | 9 | 0.044, 0.048 |
| wgridder, no `-local-rms` (fast sub-minor loop) | 7 | 0.096 |
| w-stacking, `-local-rms` (main) | 9 | 0.040 |
| w-stacking, no `-local-rms` | 8 | 0.160 |

**Not the gridder's accuracy.** A tighter `-wgridder-accuracy` does not stop it (above), and a
round trip (wsclean `-predict` of a 1 Jy model pixel, imaged back dirty with the same weighting and
taper) gives 1.044 at the diverging pixel with the wgridder at 1e-4 and 1.046 at 1e-6, against
1.06 with w-stacking; 1.106 / 1.110 / 1.09 at 0.983 (just above the 10 deg mask), 1.000 within 40
deg. So near the horizon the response of a point source is not the central PSF (peak 1) that
CLEAN's minor loop subtracts, with either gridder; with the wgridder and `-local-rms` the major
cycles there did not converge. The gridder check above, with the wgridder at tighter accuracy in the
same run: the 80 deg patch error falls from 9.98 Jy (1e-4) to 8.93 (1e-5) and 4.60 (1e-6), the peak
stays within 0.2 % of the sum; the CPU of those dirty images is 0.96, 1.10 and 1.09 s.
**Fix: `imaging.clean_horizon_deg`** (the cleaned configurations' `-horizon-mask`; the blanking stays
at `horizon_mask_deg`, computed from the image's SIN geometry: the same pixels as wsclean's mask).
The whole chain at demo size (`bin/demo.sh ... --config FILE --score`, 2026-12-07) on the three
skies where it could hurt, against main's numbers (docs/science.md):

| goal | `pol_vbursts` main | wgridder, CLEAN above 15 deg | `iono_rfi_hot` main | wgridder, CLEAN above 15 deg | `ateam_peel` main | wgridder, CLEAN above 15 deg |
|---|---|---|---|---|---|---|
| `transient_recall` | 4/4 | 4/4 | 3/3 | 3/3 | n/a | n/a |
| `transient_false` (per 10) | 0.0 | 0.0 | 0.0 | 0.0 | 0.83 | **1.67 (fail)** |
| `flag_recall`, `flag_false` | n/a, 0.00 % | n/a, 0.00 % | 100 %, 0.00 % | 100 %, 0.00 % | n/a, 0.00 % | n/a, 0.00 % |
| `dewarp_residual` (held out) | n/a | n/a | 86 % (fail) | 86 % (fail) | n/a | n/a |
| `dewarp_no_harm` | pass | pass (27 sources, 0.003 beam) | pass | pass (1.474 -> 0.007 beam) | pass | pass (0.151 -> 0.003) |
| `flux` (<= 5 %, median) | 27/27, 0.6 % | 27/27, 0.6 % | 29/30, 0.6 % | 29/30, 0.9 % | 25/25, 0.6 % | 25/25, 0.7 % |
| `target_v` | +0.1 to +0.7 % | -0.1 to +1.3 % | +0.8 % | +0.8 % | - | - |
| `ateam_power`, `ateam_field`, `ateam_rms` | | | | | 3.0e-8, 0.07/0.40 %, 1.17x | 3.0e-8, 0.07/0.40 %, 1.43x |

So that round **the wgridder stayed an option** (the default since the sixth round: "Verdict and
levers"): its CLEAN converges with `clean_horizon_deg =
15` and `pol_vbursts` and `iono_rfi_hot` keep every goal (the first with all 27 astrometry sources
back, against 0 when the tapered deep I diverged), but `ateam_peel` had 2 false candidates in 12
images instead of 1: two Stokes V candidates at 5.08 and 5.14 sigma in the dirty 10-min V images
(J011133+781058 in t0005, J071438+623125 in t0006; far from Cyg A and Cas A), which CLEAN does not
touch: the gridder's V images, not the CLEAN mask. Its `ateam_rms` rose from 1.17x to 1.43x (the goal
is 1.5x). To use it: `[imaging] gridder = "wgridder"` and `clean_horizon_deg = 15.0`.
**Without `-local-rms`** (`imaging.local_rms = false`, with the wgridder and CLEAN above 10 deg; the
other lever for CLEAN's cost) the tapered deep I also converged; whole chain: `pol_vbursts` every
goal (4/4, 0 false with 68 V and 62 I candidates marked artefact against 57 and 17 with
`-local-rms`, flux 27/27 median 0.7 %, 27 astrometry sources, target V -0.1 to +1.3 %);
`iono_rfi_hot` every goal as main (3/3, 0 false, flags 100 % / 0.00 %, dewarp 1.471 -> 0.007 beam,
held-out 86 % as main, flux 29/30 median 1.0 %, target V +0.8 %). Not run on `ateam_peel` (its
false candidates are the wgridder's V images anyway), so not the default.

**The wgridder's V candidates and CLEAN without `-local-rms` (2026-12-07 third round, `wgridder`).**
The two 5.1-sigma V candidates of `ateam_peel` (seed 2222) are noise, not a defect of the wgridder's
images. On the same peeled MS (the chain with the wgridder; its dirty V configurations imaged again
by wsclean with each gridder, the run's blanking and dewarp screen, searched by `lwa-transient search`
as the chain does): w-stacking's images give 1 false candidate, J011118+781056 at -5.08 sigma in
t0005, the wgridder's first one (J011131+781103, -5.09): the same noise peak (main's V images of that
sky: its one false candidate). The second (J071439+623127, t0006, 68 deg from the phase centre) is 4.50
sigma in w-stacking's image (wsclean's 28 w-layers), 4.87 with 256 w-layers, 5.10 in the wgridder's
(5.07 at `-wgridder-accuracy 1e-6`): w-stacking's image moves towards the wgridder's as its
w-layers get finer. Per pixel, S/N of the 10-min V differences, wgridder minus w-stacking (28
layers) on that MS: RMS 0.03 sigma within 30 deg of the phase centre, 0.13 at 45-60 deg, 0.20 at
60-70, 0.30 at 70-80 (with 256 layers: 0.02, 0.06, 0.11, 0.22); `-wgridder-accuracy 1e-6` against
1e-4: 0.01, 0.02, 0.03, 0.09. In those V differences of both gridders the S/N (difference minus the search's
background, over its RMS map) has standard deviation 0.98-1.00 and kurtosis within 0.05 of a
Gaussian's; no structure near the A-team, the pole or the horizon.
The rate of such peaks, from 8 noise-only simulations (seeds 1-8: the `ateam_peel` observation with
one steady 35 Jy source and the same SEFD, no Stokes V; 48 difference images per gridder), against
the true noise (the scatter of each interval's difference over the 8 seeds):

| | w-stacking | wgridder |
|---|---|---|
| true noise / the search's RMS map, per 32 px block (median; p10-p90), 0-30 / 30-45 / 45-60 / 60-70 / 70-80 deg | 1.00 / 1.00 / 1.00 / 1.00 / 1.01 (0.96-1.06) | 1.00 / 1.00 / 0.99 / 1.00 / 1.01 (0.96-1.06) |
| S/N std, kurtosis (all pixels) | 0.999, +0.005 | 0.999, +0.009 |
| peaks >= 4 / 4.5 / 5 sigma in 48 images | 322 / 32 / 3 | 354 / 41 / 4 |
| of the >= 4 sigma ones at 75-80 deg from the phase centre | 17 | 34 |
| >= 5 sigma peaks per sky (6 V differences) | 0.38 | 0.50 |

So the RMS map is the true noise (within 1 %) with either gridder, and the noise is Gaussian; the
wgridder's images hold 10 % more peaks above 4 sigma (half of the extra ones at 10-15 deg
elevation, where w-stacking's w-layers smooth the image) and ~30 % more above 4.5 sigma. A sky of
6 V images then has ~0.4-0.5 false V candidates from noise alone, and fails `transient_false` (2 in
12 images) with a probability of 1 - e^-L (1 + L): 6 % with w-stacking, 9 % with the wgridder.
`ateam_peel` seed 2222 is such a draw (with w-stacking its second peak is at 4.5 sigma). No fix in
the images: the goal has little margin at the 5-sigma threshold with ~10,000 beams per image.

The whole chain at demo size with the candidate defaults, against main's numbers (docs/science.md);
`ateam_*` skies with the shipped peel model and `--control`. "wgridder, no local RMS": `gridder =
"wgridder"`, `clean_horizon_deg = 15`, `local_rms = false`. "no local RMS": w-stacking, `local_rms
= false` (the runs of the A-team skies re-ran the chain after the peel on the peeled MS of the
wgridder runs: the peel does not depend on the imaging options, so the peel goals are the same):

| goal | `ateam_peel` main / no local RMS / wgridder, no local RMS | `ateam_bursts` main / no local RMS / wgridder, no local RMS | `loud_bursts` main / no local RMS / wgridder, no local RMS | `pol_vbursts` main / no local RMS | `iono_rfi_hot` main / no local RMS |
|---|---|---|---|---|---|
| `transient_recall` | n/a | 5/5 / 5/5 / 5/5 | 11/11 / 11/11 / 11/11 | 4/4 / 4/4 | 3/3 / 3/3 |
| `transient_false` (per 10) | 0.83 / 0.83 / **1.67 (fail)** | 0.0 / 0.0 / 0.0 | 0.0 / 0.0 / 0.0 | 0.0 / 0.0 | 0.0 / 0.0 |
| `flag_recall`, `flag_false` | n/a, 0.00 % (all) | n/a, 0.00 % (all) | n/a, 0.00 % (all) | n/a, 0.00 % / 0.00 % | 100 %, 0.00 % / 100 %, 0.00 % |
| `dewarp_residual` (held out), `dewarp_no_harm` | n/a, pass (all) | n/a, pass (all) | n/a, pass (all) | n/a, pass / pass | 86 % (fail), pass / 86 % (fail), pass |
| `flux` (<= 5 %, median, point-source fit) | 25/25, 0.6 % (free fit) / 25/25, 0.6 % / 25/25, 0.2 % | 16/16, 0.5 % / 16/16, 0.5 % / 16/16, 0.2 % | 10/10, 0.3 % / 10/10, 0.3 % / 10/10, 0.4 % | 27/27, 0.6 % (free fit) / 27/27, 0.4 % | 29/30, 0.6 % / 29/30, 0.5 % |
| `target_v` | - | - | +3.3 % / +3.3 % / +3.4 % | +0.1 to +0.7 % / -0.1 to +1.2 % | +0.8 % / +0.8 % |
| `ateam_power`, `ateam_field` (median / max) | 1.0e-8, 0.09 / 0.20 % (all) | 7.2e-7, 0.16 / 0.29 % (all) | | | |
| `ateam_rms` (estimated control) | 1.05x / 1.06x / 1.12x | 1.33x / 1.40x / **1.61x (fail)** | | | |

With the A-team skies the peel is the same in every column (the peel goals too). "No local RMS" (w-stacking,
`local_rms = false`) keeps every goal on all five skies, at main's values but for `ateam_bursts`'
`ateam_rms` (1.33x -> 1.40x, the goal is 1.5x). The wgridder (with `clean_horizon_deg =
15`, with or without `-local-rms`; `pol_vbursts` and `iono_rfi_hot` with it: the second round above,
not re-run) keeps every goal on `loud_bursts` and fails two: `ateam_peel`'s `transient_false` (the noise
draw above) and `ateam_bursts`' `ateam_rms`, 1.61x with and without `-local-rms`. That goal's
control is estimated from the run's own image, sqrt(run^2 - excess^2), with the peel's excess
(0.046 Jy, measured on dirty pixels of the peeled minus control visibilities: the same in every
column): the wgridder's deep I is quieter 3-10 deg from the A-team (0.058 Jy against 0.065 with
w-stacking; `ateam_peel` 0.047 against 0.063), which makes the estimated control quieter still
(0.036 against 0.046 Jy) and the ratio larger. Against an imaged control (the chain without the peel on the control simulation, same config;
`lwa-sim score --control-run`) `ateam_bursts` reads 1.24x with the wgridder without `-local-rms`
(control 0.047 Jy) and 1.15x with w-stacking without it (control 0.057 Jy): the goal holds with
either, and the estimate is what fails. Main's 1.33x is the estimate too. So the gridder stays w-stacking.
`local_rms = false` is not the default either, though it kept every goal at demo size: wsclean
3.1's fast multiscale loop makes a CLEAN that depends on the thread count, and on `pol_vbursts`'
tapered deep I it diverges when CLEAN is not stopped by the demo's 2 % cap (Verdict and levers,
below).
"""


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
    ap.add_argument("--wgridder-accuracy", type=float, nargs="*", default=[1e-5, 1e-6],
                    help="more wgridder images in the gridder check at these -wgridder-accuracy values "
                         "(default 1e-5 1e-6; wsclean's own 1e-4 is the 'wgridder' column)")
    ap.add_argument("--skip-sim-rate", action="store_true")
    ap.add_argument("--clean-probe", action="store_true",
                    help="only the CLEAN probe: the cleaned deep I with CLEAN_PROBE_RUNS side by side (2048^2)")
    ap.add_argument("--efficiency", type=float, default=0.5, help="parallel efficiency of threaded steps on the node")
    ap.add_argument("--doc", type=Path, default=HERE / "docs" / "performance.md", help="the report written")
    ap.add_argument("--extra-logs", type=Path, nargs="*", default=[],
                    help="with --report-only: more run folders whose step logs join the table")
    ap.add_argument("--report-only", type=Path, default=None,
                    help="rewrite the report from a JSON written by an earlier run (with its --workdir)")
    args = ap.parse_args()
    if args.report_only:
        _report_only(args)
        return
    mode = dict(MODES[args.mode])
    n_int = args.n_int or mode["n_int"]
    n_channels = args.n_channels or mode["n_channels"]
    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="real_scale_"))
    tmp.mkdir(parents=True, exist_ok=True)
    result: dict = {"mode": args.mode, "cores": args.cores, "n_int": n_int, "n_channels": n_channels,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine_cores": os.cpu_count()}
    try:
        if args.clean_probe:
            result["clean_probe"] = rows = clean_probe(tmp)
            floor = rows[0]["cpu_s"]
            print(f"CLEAN probe (CPU s, ratio to the floor {floor:.1f} s: the same wsclean without CLEAN):")
            for r in rows[1:]:
                print(f"  {r['run']:55s} {r['cpu_s']:7.1f} s  x{r['cpu_s'] / floor:5.2f}  deconvolution "
                      f"{r['deconvolution_cpu_s']:6.1f} s  image RMS {r['image_rms_jy']:.3g} Jy")
            return
        if not args.skip_gridder_check or args.gridder_check:
            t0 = time.perf_counter()
            result["gridder_check"] = gridder_check(tmp, accuracies=tuple(args.wgridder_accuracy))
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
        hour_ms = next(p for p in (work / "10h" / "55MHz").glob("*.ms") if p.is_dir())
        result["gridding_rate"] = gridding_rate(hour_ms, tmp, cfg_gridder=_config_gridder())
        factors, n_images, hour_images = science_factors(steps, mode["configurations"])
        result["science_factors"] = factors
        for ch in sorted({n_channels, 192, 48}):
            result[f"hour_{ch}ch"] = extrapolate(steps, n_int=n_int, n_channels=n_channels,
                                                  rate=result["gridding_rate"], hour_channels=ch,
                                                  science_factor=factors, n_images=n_images,
                                                  hour_images=hour_images)
    finally:
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    if "steps" in result:
        write_doc(args.doc, result, cores=args.cores, efficiency=args.efficiency)
    print(json.dumps(result, indent=1))


def _merge_science(steps: list[Step]) -> list[Step]:
    """Science configurations measured as separate runs (science-<CONFIG> logs) count as one step."""
    parts = [s for s in steps if s.name.startswith("science-")]
    if not parts:
        return steps
    merged = Step("science", parts[0].scope, sum(p.wall_s for p in parts), sum(p.cpu_s for p in parts),
                  max(p.max_rss_gb for p in parts))
    for key in ("inversion_s", "prediction_s", "deconvolution_s", "passes", "iterations", "capped", "wsclean_runs"):
        setattr(merged, key, sum(getattr(p, key) for p in parts))
    return [s for s in steps if s not in parts] + [merged]


def _report_only(args: argparse.Namespace) -> None:
    """Recompute the model from an earlier run's JSON and step logs, then write the report."""
    result = json.loads(args.report_only.read_text())
    mode = MODES[result["mode"]]
    if args.workdir is not None:  # the step logs of that run
        steps = read_steps(args.workdir / "run") + [s for extra in args.extra_logs for s in read_steps(extra)]
        steps = _merge_science(steps)
    else:  # the steps the JSON holds
        steps = [Step(**d) for d in result["steps"]]
    result["steps"] = [st.__dict__ for st in steps]
    factors, n_images, hour_images = science_factors(steps, mode["configurations"])
    result["science_factors"] = factors
    for ch in (192, 48):
        result[f"hour_{ch}ch"] = extrapolate(steps, n_int=result["n_int"], n_channels=result["n_channels"],
                                              rate=result["gridding_rate"], hour_channels=ch, science_factor=factors,
                                              n_images=n_images, hour_images=hour_images)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    write_doc(args.doc, result, cores=args.cores, efficiency=args.efficiency)


CLEAN_ROW = "science: CLEAN minor loops"


def fast_loop_ratio(probe: list[dict], gridder: str) -> tuple[float, dict, dict] | None:
    """Deconvolution CPU of wsclean's fast sub-minor loop (no -local-rms) over the slow one's
    (-local-rms), from the CLEAN probe's runs of `gridder` (the same 5,000 iterations), with the
    two runs; None when the probe lacks either."""
    runs = [r for r in probe if r.get("iterations") and r["overrides"].get("gridder") == gridder]
    slow = next((r for r in runs if r["overrides"].get("local_rms")), None)
    fast = next((r for r in runs if not r["overrides"].get("local_rms")), None)
    if slow is None or fast is None or slow["deconvolution_cpu_s"] <= 0:
        return None
    return fast["deconvolution_cpu_s"] / slow["deconvolution_cpu_s"], fast, slow


def clean_row_for_config(row: dict, probe: list[dict], *, local_rms: bool, gridder: str) -> dict:
    """The assumed CLEAN row as the pipeline's defaults run it: measured with -local-rms (the slow
    sub-minor loop); without it (imaging.local_rms false) scaled by the probe's fast/slow ratio."""
    ratio = None if local_rms or row.get("step") != CLEAN_ROW else fast_loop_ratio(probe, gridder)
    if ratio is None:
        return row
    k, fast, slow = ratio
    note = (f"; the pipeline's default has no -local-rms (imaging.local_rms false): x {k:.2f}, the fast "
            f"sub-minor loop's deconvolution CPU against the slow one's in the CLEAN probe ({gridder}: "
            f"{fast['deconvolution_cpu_s']:.1f} against {slow['deconvolution_cpu_s']:.1f} CPU s for the same "
            f"{fast['iterations']:,} iterations, {fast['major_cycles']} and {slow['major_cycles']} major cycles)")
    return {**row, "step": f"{CLEAN_ROW} (fast sub-minor loop)", "source": row["source"] + note,
            "hour_threaded_cpu_s": row["hour_threaded_cpu_s"] * k, "hour_serial_cpu_s": row["hour_serial_cpu_s"] * k}


def _config_local_rms() -> bool:
    from lwa_common.config import load_config

    return bool(getattr(load_config().imaging, "local_rms", True))


def _config_gridder() -> list[str]:
    from lwa_common.config import load_config

    return ["-use-wgridder"] if getattr(load_config().imaging, "gridder", "") == "wgridder" else []


if __name__ == "__main__":
    main()
