"""Benchmark `lwa-image pbcor` against reading, multiplying and writing the same images.

Builds wsclean-like all-sky images (SIN centred on the zenith, NaN beyond the horizon, our
keywords) in a temporary folder: the deep Stokes I and V images and the I and V images of
--intervals 10 min intervals (one beam time per interval, shared by its I and V image, as in a run).
Then times, interleaved and best of --repeat:

* in process: `lwa_image.pbcor_images` on the deep I and V image (beam cache emptied before each
  call, so the beam is evaluated once for the pair) vs the floor of the same work: astropy reads
  each image, multiplies it by a precomputed beam array and writes it (`fits.open` + `*` +
  `fits.writeto`);
* CLI: `lwa-image pbcor` on every image (process start-up included) vs one Python process doing
  the floor's read + multiply + write of every image (start-up included too).

    .venv/bin/python bench/bench_pbcor.py [--size 4096] [--intervals 2] [--repeat 3]

Prints `bench NAME: ratio X goal <= 1.5 held|short` per figure.
"""

from __future__ import annotations

import argparse
import logging
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

GOAL = 1.5
START = Time("2024-12-20T12:00:00", scale="utc")
FLOOR = """
import sys
import astropy.units as u
import numpy as np
from astropy.io import fits
beam = np.load(sys.argv[1])
for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):
    with fits.open(src, memmap=False) as hdul:
        data, header = hdul[0].data, hdul[0].header
    fits.writeto(dst, data * beam, header, overwrite=True)
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
        beam = np.array(beam_mod.beam_for_image(fits.getheader(deep[0])))
        np.save(tmp / "beam.npy", beam)

        def ours() -> None:
            beam_mod._PIXEL_BEAMS.clear()
            pbcor_images(deep, outdir=out, overwrite=True)

        def floor() -> None:
            for path in deep:
                with fits.open(path, memmap=False) as hdul:
                    data, header = hdul[0].data, hdul[0].header
                fits.writeto(out / f"floor-{path.name}", data * beam, header, overwrite=True)

        def cli() -> None:
            result = run_cli(["lwa-image", "pbcor", *map(str, paths), "--output", str(out), "--overwrite"])
            if result.returncode:
                raise SystemExit(f"lwa-image pbcor failed: {result.stderr.strip()}")

        def cli_floor() -> None:
            pairs = [str(p) for path in paths for p in (path, out / f"floor-{path.name}")]
            subprocess.run([sys.executable, "-c", FLOOR, str(tmp / "beam.npy"), *pairs], check=True)

        best = best_of({"ours": ours, "floor": floor, "cli": cli, "cli_floor": cli_floor}, args.repeat)
    print(f"{len(paths)} images of {args.size}^2 (deep I, V and {args.intervals} x 10 min I, V), "
          f"{beam_mod._PIXEL_BEAM_STEP} px beam grid; best of {args.repeat}")
    print(f"in process, deep I + V: pbcor_images {best['ours']:.3f} s | read + multiply + write "
          f"{best['floor']:.3f} s")
    print(f"CLI, all {len(paths)} images: lwa-image pbcor {best['cli']:.3f} s | one Python process reading, "
          f"multiplying and writing them {best['cli_floor']:.3f} s")
    bench_line(f"pbcor-{args.size}-deep-I-V", best["ours"] / best["floor"], GOAL)
    bench_line(f"pbcor-{args.size}-cli-{len(paths)}-images", best["cli"] / best["cli_floor"], GOAL)


if __name__ == "__main__":
    main()
