"""Benchmark lwa-transient's I-difference search of one interval against the floor of that work.

Builds a 4096² all-sky deep Stokes I image (SIN, 1.875'/px, NaN beyond the horizon, beam-correlated
noise, bright sources) and a 10 min Stokes I image of the same sky (+ its own noise and a few bursts)
in a temporary folder, then times, interleaved and best of --repeat in one run:

* the search: `lwa_transient.search_images` on the two images (header selection, reads, the
  difference 10 min - deep, the local background and RMS of the deep I (its bright-source masks)
  and of the difference (the detection), deep-source and A-team masks, peaks, CSV; no cutouts);
* the floor of that whole work, done the fastest honest way: reading both images (astropy), one
  subtraction, the median and MAD of every 32 px block of the difference (`block_statistics`: two
  block sorts, the search's local noise estimate before its smoothing and interpolation to pixels)
  and of the deep I (the same estimate, which the search needs for its bright-source masks), then
  every pixel thresholded against its own block's background and RMS broadcast (no full-size maps),
  the deep I's sources above 30 sigma masked the same way, and the pixels left listed
  (`np.flatnonzero`, no island grouping);
* for reference: the search of a Stokes V image alone and `astropy.stats.mad_std` of it.

Wall and CPU (process) times are both best of --repeat, interleaved; the ratio of the line is the
wall ratio, the CPU ratio is printed beside it (steadier on a loaded machine).

Prints `bench transient-i-difference-...: ratio X goal <= 2 held|short` (issue 17).

    .venv/bin/python bench/bench_transient.py [--size 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std
from astropy.wcs import WCS, FITSFixedWarning
from scipy import ndimage

from lwa_common.testing import allsky_header, bench_line, best_of
from lwa_transient import SearchOptions, search_images
from lwa_transient.rms import block_statistics

GOAL = 2.0
KW = {"TAPER": 30.0, "ROBUST": 0.0, "PBCOR": False, "DEWARPED": True, "SUBBAND": "55MHz", "FREQMHZ": 55.0}


def make_image(header: fits.Header, sources: list[tuple[float, float, float]], noise: float, seed: int) -> np.ndarray:
    """Beam-correlated noise + Gaussian beams (drawn in small boxes, so that building stays quick)."""
    n = header["NAXIS1"]
    rng = np.random.default_rng(seed)
    beam_px = header["BMAJ"] / abs(header["CDELT2"])
    sigma = beam_px / 2.3548
    img = ndimage.gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma / np.sqrt(2))
    img *= noise / img.std()
    w = WCS(header).celestial
    h = int(6 * sigma) + 1
    for ra, dec, peak in sources:
        x, y = w.all_world2pix([[ra, dec]], 0)[0]
        xi, yi = int(round(x)), int(round(y))
        yy, xx = np.mgrid[yi - h: yi + h + 1, xi - h: xi + h + 1]
        img[yi - h: yi + h + 1, xi - h: xi + h + 1] += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    yy, xx = np.mgrid[0:n, 0:n]
    r2 = ((xx - n / 2) ** 2 + (yy - n / 2) ** 2) * header["CDELT2"] ** 2
    img[r2 > np.degrees(1.0) ** 2 * 0.98] = np.nan  # beyond the SIN horizon
    return img[None, None]


def _block_threshold(image: np.ndarray, nsigma: float, box: int = 32) -> np.ndarray:
    """Pixels `nsigma` x their block's RMS above their block's median (`block_statistics`, broadcast
    over each block: the image is a whole number of blocks here)."""
    median, rms, _ = block_statistics(image, box=box)
    ny, nx = image.shape
    blocks = image.reshape(ny // box, box, nx // box, box)
    with np.errstate(invalid="ignore"):
        return ((blocks - median[:, None, :, None]) >= nsigma * rms[:, None, :, None]).reshape(ny, nx)


def main() -> None:
    warnings.simplefilter("ignore", FITSFixedWarning)
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.size
    scale = 128.0 / n  # horizon to horizon, 0.03125 deg/px at 4096
    tmp = Path(tempfile.mkdtemp(prefix="bench_transient_"))
    try:
        def header(stokes: str, imgcat: str, interval: str) -> fits.Header:
            return allsky_header(size=n, scale_deg=scale, bmaj_deg=0.25,
                                 keywords={**KW, "STOKES": stokes, "IMGCAT": imgcat, "INTERVAL": interval})

        bursts = [(151.0 + 3 * k, 30.0 + 2 * k, 10.0 * (-1) ** k) for k in range(8)]
        bright = [(140.0 + 4 * k, 45.0 - 3 * k, 2000.0 / (k + 1)) for k in range(10)]
        idiff, vdir = tmp / "idiff", tmp / "v"
        idiff.mkdir()
        vdir.mkdir()
        deep = make_image(header("I", "deep", "deep"), bright, 0.4, 2)
        ten = deep + make_image(header("I", "10min", "t0001"), [(ra, dec, abs(f)) for ra, dec, f in bursts], 1.0, 3)
        fits.writeto(idiff / "deepI.fits", deep, header("I", "deep", "deep"))
        fits.writeto(idiff / "t1I.fits", ten, header("I", "10min", "t0001"))
        v = make_image(header("V", "10min", "t0001"), bursts, 1.0, 1)
        fits.writeto(vdir / "v.fits", v, header("V", "10min", "t0001"))
        options = SearchOptions(products=False)
        count = {}

        def search(folder: Path, key: str) -> None:
            res = search_images([folder], output=tmp / f"out_{key}", options=options, overwrite=True)
            count[key] = len(res.candidates)

        def floor() -> None:
            planes = []
            for name in ("t1I.fits", "deepI.fits"):
                with fits.open(idiff / name, memmap=False) as hdul:
                    planes.append(hdul[0].data[0, 0])
            diff = planes[0] - planes[1]
            above = _block_threshold(diff, 7.0)  # the search's i_sigma
            above &= ~_block_threshold(planes[1], 30.0)  # its lowest deep-I mask level
            np.flatnonzero(above)

        plane = v[0, 0]
        search(idiff, "i")  # warm-up: imports, page cache
        cpu: dict[str, float] = {}
        best = best_of({"search": lambda: search(idiff, "i"), "floor": floor,
                        "v": lambda: search(vdir, "v"), "mad": lambda: mad_std(plane, ignore_nan=True)},
                       args.repeat, cpu=cpu)
        print(f"images {n}x{n} float32, {np.isfinite(plane).mean():.0%} on the sky; best of {args.repeat}")
        print(f"I-difference search (10 min I - deep I) {best['search']:8.3f} s   ({count['i']} candidates, "
              f"{len(bursts)} bursts)")
        print(f"floor: 2 reads, subtract, block stats of both, threshold, list {best['floor']:8.3f} s")
        print(f"CPU: search {cpu['search']:.3f} s, floor {cpu['floor']:.3f} s, "
              f"ratio {cpu['search'] / cpu['floor']:.2f}")
        print(f"V search alone {best['v']:.3f} s ({count['v']} candidates); mad_std of the V image {best['mad']:.3f} s")
        bench_line(f"transient-i-difference-{n}", best["search"] / best["floor"], GOAL)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
