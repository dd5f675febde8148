"""Benchmark: `lwa-cutout targets` photometry is independent of the image size (issue 17: <= 1.05).

Builds two synthetic image sets over the same sky (deep I, deep V, 6 x 10 min I and V; wsclean-like
all-sky SIN headers with our keywords), at --size and at --size / 4 pixels, in a temporary folder,
then times `run_targets` on N targets (cutouts written, PNGs off) on each, interleaved and best of
--repeat. The photometry of a target needs only the pixels around it, so the floor of the big set's
work is the small set's time: the ratio big / small is what the images' size costs (reads,
whole-image work). Also prints the time to read every image (astropy) and the cost per target per
image. Prints `bench cutout-...: ratio X goal <= 1.05 held|short` (the issue's figure is 4096^2 /
1024^2). The photometry is single-threaded Python in this process, so the CPU-time ratio (this
process) is printed too: on a loaded machine the wall ratio of best of 2 swung 0.85-1.15 between
runs. Usage: python bench/bench_cutout.py [--size 2048] [--targets 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common.fitsio import update_keywords
from lwa_common.testing import allsky_header, bench_line, best_of
from lwa_cutout import PhotometrySettings, run_targets

GOAL = 1.05


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
    where = np.random.default_rng(1)  # the same targets at every image size
    ra = 151.0 + where.uniform(-25, 25, n_targets)
    dec = 37.0 + where.uniform(-20, 20, n_targets)
    csv = folder / "targets.csv"
    csv.write_text("name,ra,dec,detection_stokes\n" + "".join(
        f"T{i},{r:.4f},{d:.4f},both\n" for i, (r, d) in enumerate(zip(ra, dec, strict=True))))
    return images, csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = {"big": args.size, "small": args.size // 4}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sets = {}
        for key, size in sizes.items():
            (folder / key).mkdir()
            sets[key] = build(folder / key, size, args.targets)
        files = sorted(sets["big"][0].glob("*.fits"))
        runs = []

        def read_all() -> None:
            for path in files:
                with fits.open(path, memmap=False) as hdul:
                    hdul[0].data  # noqa: B018 - the read itself

        def tool(key: str) -> None:
            images, csv = sets[key]
            runs.append(run_targets([csv], images=[images], output_dir=folder / key / "out",
                                    settings=PhotometrySettings(png=False), overwrite=True))

        tool("small")  # warm-up: imports, page cache
        cpu: dict = {}
        best = best_of({"big": lambda: tool("big"), "small": lambda: tool("small"), "read": read_all}, args.repeat,
                       cpu=cpu)
        measured = sum(1 for r in runs[-1].results if r.rows)
    print(f"{len(files)} images, {args.targets} targets ({measured} above 30 deg); best of {args.repeat}")
    print(f"lwa-cutout targets (no PNG) on {sizes['big']}^2 images   {best['big']:8.2f} s")
    print(f"lwa-cutout targets (no PNG) on {sizes['small']}^2 images   {best['small']:8.2f} s")
    print(f"read every {sizes['big']}^2 image                         {best['read']:8.2f} s")
    print(f"CPU time                  big {cpu['big']:.2f} s | small {cpu['small']:.2f} s | "
          f"ratio {cpu['big'] / cpu['small']:.3f}")
    if measured:
        print(f"per target per image ({sizes['small']}^2)                 "
              f"{1e3 * best['small'] / (measured * len(files)):8.1f} ms")
    bench_line(f"cutout-{sizes['big']}-vs-{sizes['small']}-{args.targets}-targets", best["big"] / best["small"],
               GOAL)

if __name__ == "__main__":
    main()
