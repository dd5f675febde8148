"""Benchmark `lwa-image pbcor` against the floor of its work: read, evaluate the beam, divide, write.

What the tool does per image: read it, find its frequency and mid-time in the header, evaluate the
Stokes I beam on its pixels at that time (ICRS -> az/el rotation for the time, the beam model at
the nodes of a 16-pixel grid, bilinear in between where the grid shows that this is good to
3e-4, refined down to single pixels near the horizon and the elevation/response cuts, NaN below
them; one evaluation shared by the I and V image of a time), divide, write atomically with
provenance.

The floor does the least of that work: astropy reads each image and its header; per time the
beam is evaluated once on the same 16-pixel node grid with the library's fastest pieces (erfa
rotation, `_PixelBeam`: pixel -> az/el -> beam model), NaN at nodes below the cuts, and
upsampled bilinearly with no refinement and no smoothness check (so it is a lower bound: less
work than the tool's, never a slow stand-in); then `data / beam` and `fits.writeto`. Until
2026-12 the floor multiplied by a beam computed before the timing, which left out the per-time
beam the tool must evaluate.

Builds wsclean-like all-sky images (SIN centred on the zenith, NaN beyond the horizon, our
keywords) in a temporary folder: the deep Stokes I and V images and the I and V images of
--intervals 10 min intervals (one beam time per interval, shared by its I and V image, as in a run).
Then times, interleaved and best of --repeat:

* in process: `lwa_image.pbcor_images` on the deep I and V image (beam cache emptied before each
  call, so the beam is evaluated once for the pair) vs the floor on the same pair (its beam cache
  emptied too);
* CLI: `lwa-image pbcor` on every image (process start-up included) vs one Python process doing
  the floor on every image (start-up and imports included too).

    .venv/bin/python bench/bench_pbcor.py [--size 4096] [--intervals 2] [--repeat 3]

Prints wall and CPU (user + system, of this process and its children) per figure, the load, and
`bench NAME: ratio X goal <= 1.5 held|short` per figure (the ratio of wall times).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common import beam as beam_mod
from lwa_common.site import zenith_radec
from lwa_common.testing import allsky_header, bench_line, best_of, run_cli
from lwa_image import pbcor_images
from lwa_image.pbcor import pbcor_name

GOAL = 1.5
START = Time("2024-12-20T12:00:00", scale="utc")
FLOOR_BEAM = """
import warnings
import numpy as np
from astropy.time import Time
from astropy.wcs import WCS
from lwa_common import beam as beam_mod
from lwa_common.config import PrimaryBeam
warnings.filterwarnings("ignore", message=".*datfix")


def floor_beam(header, shape, cache):
    key = (header["MJD-MID"], header["CRVAL3"])  # the mid-time and wsclean's FREQ axis [Hz]
    if key not in cache:
        time = Time(header["MJD-MID"], format="mjd", scale="utc")
        exact = beam_mod._PixelBeam(WCS(header).celestial, beam_mod._icrs_to_enu(time, None), beam_mod.load_beam(),
                                    header["CRVAL3"])
        step, (ny, nx) = beam_mod._PIXEL_BEAM_STEP, shape
        gy, gx = np.mgrid[0: ny + 1: step, 0: nx + 1: step].astype(float)
        response, el = exact(gx, gy)
        with np.errstate(invalid="ignore"):
            keep = (el >= PrimaryBeam.min_elevation_deg) & (response >= PrimaryBeam.min_response)
        nodes = np.where(keep, response, np.nan).astype(np.float32)[None]
        cache[key] = beam_mod._bilinear_upsample(nodes, step)[0, :ny, :nx]
    return cache[key]


def floor_files(pairs):
    from astropy.io import fits

    cache = {}
    for src, dst in pairs:
        with fits.open(src, memmap=False) as hdul:
            data, header = hdul[0].data, hdul[0].header
        fits.writeto(dst, data / floor_beam(header, data.shape[-2:], cache), header, overwrite=True)
"""
FLOOR = FLOOR_BEAM + """
import sys
floor_files(zip(sys.argv[1::2], sys.argv[2::2]))
"""


def build(folder: Path, size: int, intervals: int) -> list[Path]:
    """Deep I/V and per-interval I/V images, NaN beyond the horizon; the phase centre is the zenith
    at the middle of the hour."""
    zen = zenith_radec(START + 1800 * u.s)
    scale = 0.03125 * 4096 / size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    off_sky = np.hypot(xx - size / 2, yy - size / 2) * np.radians(scale) > 1.0
    paths = []
    for k in range(intervals + 1):
        tag, t0, length = ("deep", START, 3600) if k == 0 else (f"t{k:04d}", START + (k - 1) * 600 * u.s, 600)
        for stokes in ("I", "V"):
            header = allsky_header(size=size, scale_deg=scale, ra_deg=zen.ra.deg, dec_deg=zen.dec.deg,
                                   freq_mhz=55.0, date_obs=t0.isot, keywords={
                                       "STOKES": stokes, "IMGCAT": "deep" if k == 0 else "10min", "INTERVAL": tag,
                                       "DATE-END": (t0 + length * u.s).isot,
                                       "MJD-MID": t0.mjd + length / 2 / 86400, "PBCOR": False})
            data = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
            data[off_sky] = np.nan
            paths.append(folder / f"{tag}-{stokes}-image.fits")
            fits.writeto(paths[-1], data[None, None], header)
    return paths


def _check_floor(image: Path, floor_out: Path, tool_out: Path) -> None:
    """The floor does the tool's work: its beam agrees with the tool's (median relative difference
    < 1e-3 where both are finite; they differ most in the cells the tool refines along the cuts)."""
    floor_data, tool_data = fits.getdata(floor_out), fits.getdata(tool_out)
    both = np.isfinite(floor_data) & np.isfinite(tool_data) & (np.abs(fits.getdata(image)) > 1e-3)
    rel = np.abs(floor_data[both] / tool_data[both] - 1.0)
    print(f"floor vs tool on {both.mean():.1%} of pixels: median |rel. diff| {np.median(rel):.1e}, "
          f"99.9th percentile {np.percentile(rel, 99.9):.1e}")
    if np.median(rel) > 1e-3:
        raise SystemExit("the floor's beam differs from the tool's: it is not the same work")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--intervals", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_pbcor_") as tmp:
        tmp = Path(tmp)
        paths = build(tmp, args.size, args.intervals)
        deep = paths[:2]
        out = tmp / "out"
        out.mkdir()
        pbcor_images(deep, outdir=out, overwrite=True)  # warm-up: imports, IERS tables, the beam file
        scope: dict = {}
        exec(FLOOR_BEAM, scope)  # noqa: S102 - the floor's own code, shared with its CLI process
        floor_files = scope["floor_files"]

        def ours() -> None:
            beam_mod._PIXEL_BEAMS.clear()
            pbcor_images(deep, outdir=out, overwrite=True)

        def floor() -> None:
            floor_files((path, out / f"floor-{path.name}") for path in deep)

        def cli() -> None:
            result = run_cli(["lwa-image", "pbcor", *map(str, paths), "--output", str(out), "--overwrite"])
            if result.returncode:
                raise SystemExit(f"lwa-image pbcor failed: {result.stderr.strip()}")

        def cli_floor() -> None:
            pairs = [str(p) for path in paths for p in (path, out / f"floor-{path.name}")]
            subprocess.run([sys.executable, "-c", FLOOR, *pairs], check=True)

        floor()
        _check_floor(deep[0], out / f"floor-{deep[0].name}", out / pbcor_name(deep[0]).name)
        cpu_best: dict[str, float] = {}
        best = best_of({"ours": ours, "floor": floor, "cli": cli, "cli_floor": cli_floor}, args.repeat,
                       cpu=cpu_best)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{len(paths)} images of {args.size}^2 (deep I, V and {args.intervals} x 10 min I, V), "
          f"{beam_mod._PIXEL_BEAM_STEP} px beam grid; best of {args.repeat}")
    print(f"in process, deep I + V: pbcor_images {best['ours']:.3f} s ({cpu_best['ours']:.3f} s CPU) | floor: read + "
          f"beam + divide + write {best['floor']:.3f} s ({cpu_best['floor']:.3f} s CPU); CPU ratio "
          f"{cpu_best['ours'] / cpu_best['floor']:.2f}")
    print(f"CLI, all {len(paths)} images: lwa-image pbcor {best['cli']:.3f} s ({cpu_best['cli']:.3f} s CPU) | one "
          f"Python process doing the floor on them {best['cli_floor']:.3f} s ({cpu_best['cli_floor']:.3f} s CPU); "
          f"CPU ratio {cpu_best['cli'] / cpu_best['cli_floor']:.2f}")
    bench_line(f"pbcor-{args.size}-deep-I-V", best["ours"] / best["floor"], GOAL)
    bench_line(f"pbcor-{args.size}-cli-{len(paths)}-images", best["cli"] / best["cli_floor"], GOAL)


if __name__ == "__main__":
    main()
