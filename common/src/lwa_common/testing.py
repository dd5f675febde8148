"""Helpers for tests and benchmarks: where the shared reference data lives, run a CLI, measure a
source in an image. Simulation itself is `lwa_sim` (tests import it directly)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = [
    "shared_data_dir", "system_cfg_path", "run_cli", "fit_point_source", "allsky_header", "synthetic_image",
    "best_of", "bench_line",
]


def shared_data_dir() -> Path:
    """`$LWA_SHARED_DATA`, else `../shared/data` beside the repository checkout."""
    env = os.environ.get("LWA_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data"
        if (parent / ".git").exists() and candidate.exists():
            return candidate
    return here.parents[4] / "shared" / "data"


def system_cfg_path() -> Path:
    return shared_data_dir() / "ovro-lwa" / "system_cfg.yml"


def run_cli(args: list[str], *, cwd: Path | None = None, env: dict | None = None, timeout: float = 1200
            ) -> subprocess.CompletedProcess:
    """Run an installed console script (by name) the way a user would, capturing output."""
    exe = Path(sys.executable).parent / args[0]
    cmd = [str(exe) if exe.exists() else args[0], *args[1:]]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def best_of(fn, repeat: int, *, cpu: dict | None = None):
    """Best wall-clock time of `repeat` calls of `fn` (the benchmarks' timer).

    `fn` is one callable (returns its best time in seconds) or a mapping name -> callable: then
    the callables run interleaved (a, b, c, a, b, c, ...), so that a change of machine load
    touches every figure alike, and the best time of each is returned under its name. `cpu`, a
    dict, receives the best CPU time (user + system, this process and the children it waited for:
    a CLI's too) under the same names: on a loaded machine it shows the work without the waiting.
    """
    import resource
    import time

    def cpu_used() -> float:
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                       resource.getrusage(resource.RUSAGE_CHILDREN)))

    fns = fn if isinstance(fn, dict) else {None: fn}
    times: dict = {name: [] for name in fns}
    cpus: dict = {name: [] for name in fns}
    for _ in range(max(repeat, 1)):
        for name, call in fns.items():
            c0, t0 = cpu_used(), time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(cpu_used() - c0)
    if cpu is not None:
        cpu.update({name: min(t) for name, t in cpus.items()})
    best = {name: min(t) for name, t in times.items()}
    return best if isinstance(fn, dict) else best[None]


def bench_line(name: str, ratio: float, goal: float) -> str:
    """Print and return a benchmark's verdict: `bench NAME: ratio X goal <= Y held|short`."""
    line = f"bench {name}: ratio {ratio:.2f} goal <= {goal:g} {'held' if ratio <= goal else 'short'}"
    print(line, flush=True)  # noqa: T201 - the benchmarks' contract is this printed line
    return line


def fit_point_source(image: np.ndarray, x0: float, y0: float, *, box: int = 7) -> dict[str, float]:
    """Fit a 2-D Gaussian + offset around pixel (x0, y0); returns x, y, peak, sigmas, converged.

    The project's one fitter (`lwa_common.fitting.fit_gaussian`, free shape started at 1.5 px);
    the box is centred on the brightest pixel within `box`/2 of the guess so that a small position
    error does not bias the fit. ValueError when there is nothing to fit.
    """
    from lwa_common.fitting import fit_gaussian

    xi, yi = int(round(float(x0))), int(round(float(y0)))
    h = box // 2
    sub = image[max(yi - h, 0): yi + h + 1, max(xi - h, 0): xi + h + 1]
    dy, dx = np.unravel_index(np.nanargmax(sub), sub.shape)
    xc, yc = max(xi - h, 0) + dx, max(yi - h, 0) + dy
    fit = fit_gaussian(image, xc, yc, sigma_x=1.5, sigma_y=1.5, half_box=h, centre_reach=h, sigma_range=(0.1, 10.0))
    if fit is None:
        raise ValueError(f"no Gaussian fit at ({x0}, {y0})")
    return {"x": fit.x, "y": fit.y, "peak": fit.amplitude, "sx": fit.sigma_x, "sy": fit.sigma_y,
            "converged": fit.converged}


def allsky_header(*, size: int = 256, scale_deg: float = 0.5, ra_deg: float = 151.0, dec_deg: float = 37.24,
                  freq_mhz: float = 56.0, bmaj_deg: float = 0.3, date_obs: str = "2024-12-20T12:00:00",
                  keywords: dict | None = None):
    """A wsclean-like 4-axis SIN header (RA, DEC, FREQ, STOKES) with our keywords."""
    from astropy.io import fits

    h = fits.Header()
    h["NAXIS"] = 4
    for i, n in enumerate((size, size, 1, 1), start=1):
        h[f"NAXIS{i}"] = n
    h["CTYPE1"], h["CRPIX1"], h["CRVAL1"], h["CDELT1"], h["CUNIT1"] = "RA---SIN", size // 2 + 1, ra_deg, -scale_deg, "deg"
    h["CTYPE2"], h["CRPIX2"], h["CRVAL2"], h["CDELT2"], h["CUNIT2"] = "DEC--SIN", size // 2 + 1, dec_deg, scale_deg, "deg"
    h["CTYPE3"], h["CRPIX3"], h["CRVAL3"], h["CDELT3"], h["CUNIT3"] = "FREQ", 1, freq_mhz * 1e6, 4.6e6, "Hz"
    h["CTYPE4"], h["CRPIX4"], h["CRVAL4"], h["CDELT4"] = "STOKES", 1, 1, 1
    h["BMAJ"], h["BMIN"], h["BPA"] = bmaj_deg, bmaj_deg, 0.0
    h["BUNIT"] = "JY/BEAM"
    h["DATE-OBS"] = date_obs
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    for k, v in (keywords or {}).items():
        h[k] = v
    return h


def synthetic_image(header, sources: list[tuple[float, float, float]], *, noise: float = 0.0,
                    seed: int = 0):
    """Image for `header`: Gaussian restoring-beam sources (ra_deg, dec_deg, peak_jy) + noise.

    Off-sky pixels (outside the SIN horizon) are NaN, like wsclean's all-sky images with a horizon mask.
    """
    from astropy.wcs import WCS

    w = WCS(header).celestial
    ny, nx = header["NAXIS2"], header["NAXIS1"]
    rng = np.random.default_rng(seed)
    img = noise * rng.standard_normal((ny, nx))
    sigma_px = header["BMAJ"] / abs(header["CDELT2"]) / np.sqrt(8 * np.log(2))
    yy, xx = np.mgrid[0:ny, 0:nx]
    for ra, dec, peak in sources:
        x, y = w.all_world2pix([[ra, dec]], 0)[0]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue  # below the SIN horizon: not in this image
        img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma_px**2))
    lon, _ = w.all_pix2world(xx, yy, 0)
    img[~np.isfinite(lon)] = np.nan
    return img[None, None].astype(np.float32)
