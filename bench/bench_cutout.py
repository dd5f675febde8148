"""Benchmark: `lwa-cutout targets` photometry against the floor of reading the same images.

Builds one synthetic image set (deep I, deep V, 6 x 10 min I and V; wsclean-like all-sky SIN
headers with our keywords) in a temporary folder, then times side by side in one run:

* baseline: reading every image once (`lwa_common.fitsio.read_image`), the I/O floor any
  photometry tool pays;
* lwa-cutout: `run_targets` on N targets (cutouts written, PNGs off), the whole step.

Prints both times and their ratio (how many times the I/O floor the photometry costs), and the
cost per target per image. Usage: python bench/bench_cutout.py [--size 2048] [--targets 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common.fitsio import read_image, update_keywords
from lwa_common.testing import allsky_header
from lwa_cutout import PhotometrySettings, run_targets


def _write(path: Path, header: fits.Header, data: np.ndarray, keywords: dict) -> None:
    h = update_keywords(header.copy(), keywords)
    fits.writeto(path, data[None, None].astype(np.float32), h, overwrite=True)


def build(folder: Path, size: int, n_targets: int) -> tuple[Path, Path]:
    scale = 115.0 / size  # horizon to horizon
    header = allsky_header(size=size, scale_deg=scale, bmaj_deg=4 * scale, freq_mhz=56.0)
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.05, (size, size)).astype(np.float32)
    start = Time("2024-12-20T12:00:00", scale="utc")
    common = {"PBCOR": True, "DEWARPED": True, "SUBBAND": "55MHz", "FREQMHZ": 56.0, "ROBUST": 0.0, "TAPER": 30.0}
    images = folder / "images"
    images.mkdir()
    for stokes in ("I", "V"):
        _write(images / f"deep-{stokes}.fits", header, base, {
            **common, "STOKES": stokes, "IMGCAT": "deep", "INTERVAL": "deep", "NINTERVL": 1,
            "DATE-OBS": start.isot, "DATE-END": (start + 3600 / 86400).isot, "MJD-MID": start.mjd + 1 / 48})
        for k in range(6):
            t0 = start + k * 600 / 86400
            _write(images / f"t{k + 1}-{stokes}.fits", header, np.roll(base, 7 * (k + 1), axis=0), {
                **common, "STOKES": stokes, "IMGCAT": "10min", "INTERVAL": f"t{k + 1:04d}", "NINTERVL": 6,
                "DATE-OBS": t0.isot, "DATE-END": (t0 + 600 / 86400).isot, "MJD-MID": t0.mjd + 300 / 86400})
    ra = 151.0 + rng.uniform(-25, 25, n_targets)
    dec = 37.0 + rng.uniform(-20, 20, n_targets)
    csv = folder / "targets.csv"
    csv.write_text("name,ra,dec,detection_stokes\n" + "".join(
        f"T{i},{r:.4f},{d:.4f},both\n" for i, (r, d) in enumerate(zip(ra, dec, strict=True))))
    return images, csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--targets", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images, csv = build(folder, args.size, args.targets)
        files = sorted(images.glob("*.fits"))
        t0 = time.perf_counter()
        for path in files:
            read_image(path)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = run_targets([csv], images=[images], output_dir=folder / "out", settings=PhotometrySettings(png=False))
        t_tool = time.perf_counter() - t0
        measured = sum(1 for r in run.results if r.rows)
    print(f"{len(files)} images of {args.size}^2, {args.targets} targets ({measured} above 30 deg)")
    print(f"baseline: read every image           {t_read:8.2f} s")
    print(f"lwa-cutout targets (no PNG)          {t_tool:8.2f} s")
    print(f"ratio tool / read                    {t_tool / t_read:8.1f}")
    if measured:
        print(f"per target per image                 {1e3 * (t_tool - t_read) / (measured * len(files)):8.1f} ms")


if __name__ == "__main__":
    main()
