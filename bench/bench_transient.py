"""Benchmark lwa-transient's search of one image against one full-image `astropy.stats.mad_std`.

Builds one 4096² all-sky Stokes V 10 min image (SIN, 1.875'/px, NaN beyond the horizon,
beam-correlated noise, a few bursts) plus a deep I image with bright sources in a temporary
folder, then times, side by side in one run:

1. the local RMS map alone (`lwa_transient.local_background_rms`: 32 px block MAD + smoothing +
   interpolation) vs `astropy.stats.mad_std(image, ignore_nan=True)` on the same array;
2. the search of that one V image from FITS (`lwa_transient.search_images` on the V image: header
   selection, read, local RMS, A-team caps, peaks of both signs, bi-lobe test, CSV; no cutouts)
   vs the same `mad_std`;
3. for reference, the search of the V image with the deep I image (bright-source masks too).

Prints the times and the ratios (lwa-transient / mad_std; lower is better).

    /work/venv/bin/python bench/bench_transient.py [--size 4096] [--repeat 3]
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

from lwa_common.testing import allsky_header, best_of
from lwa_transient import SearchParams, local_background_rms, search_images

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
        hv = allsky_header(size=n, scale_deg=scale, bmaj_deg=0.25, keywords={**KW, "STOKES": "V", "IMGCAT": "10min",
                                                                            "INTERVAL": "t0001"})
        hd = allsky_header(size=n, scale_deg=scale, bmaj_deg=0.25, keywords={**KW, "STOKES": "I", "IMGCAT": "deep",
                                                                            "INTERVAL": "deep"})
        bursts = [(151.0 + 3 * k, 30.0 + 2 * k, 10.0 * (-1) ** k) for k in range(8)]
        bright = [(140.0 + 4 * k, 45.0 - 3 * k, 2000.0 / (k + 1)) for k in range(10)]
        vdir, both = tmp / "v", tmp / "both"
        vdir.mkdir()
        both.mkdir()
        v = make_image(hv, bursts, 1.0, 1)
        fits.writeto(vdir / "v.fits", v, hv)
        fits.writeto(both / "v.fits", v, hv)
        fits.writeto(both / "deepI.fits", make_image(hd, bright, 0.4, 2), hd)
        plane = v[0, 0]
        params = SearchParams(products=False)
        count = {}

        def search(folder: Path, key: str) -> None:
            res = search_images([folder], output=tmp / f"out_{key}", params=params, overwrite=True)
            count[key] = len(res.candidates)

        t_mad = best_of(lambda: mad_std(plane, ignore_nan=True), args.repeat)
        t_rms = best_of(lambda: local_background_rms(plane, box=32), args.repeat)
        t_search = best_of(lambda: search(vdir, "v"), args.repeat)
        t_both = best_of(lambda: search(both, "both"), args.repeat)
        print(f"image {n}x{n} float32, {np.isfinite(plane).mean():.0%} on the sky")
        print(f"astropy mad_std (full image, ignore_nan)      {t_mad:8.3f} s")
        print(f"local RMS map (32 px blocks)                  {t_rms:8.3f} s   ratio {t_rms / t_mad:5.2f}")
        print(f"search of the V image from FITS               {t_search:8.3f} s   ratio {t_search / t_mad:5.2f}"
              f"   ({count['v']} candidates, {len(bursts)} injected)")
        print(f"search V + deep I masks (2 images)            {t_both:8.3f} s   ratio {t_both / t_mad:5.2f}"
              f"   ({count['both']} candidates)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
