"""Benchmark `lwa-dewarp apply`: dewarping one all-sky image vs one scipy.ndimage.map_coordinates
call on the same grid (the bare resampling with no NaN handling, no screen evaluation).

Builds its own data in a temporary folder: a synthetic wsclean-like all-sky image (NaN beyond the
horizon) with sources moved by a smooth warp, a screen fitted on it, then times, side by side:

  apply    lwa_dewarp.apply_screen(data, header, screen)   (screen upsampling, NaN-aware resampling)
  baseline scipy.ndimage.map_coordinates(image, coords, order)  (coords precomputed, NaN -> 0)

timed interleaved, best of --repeat, for cubic (the default) and bilinear interpolation, plus the
file-to-file time of `dewarp_images` (read, resample, write) for reference. Prints
`bench dewarp-apply-cubic-...: ratio X goal <= 1.2 held|short` (issue 17; the default, cubic).

    .venv/bin/python bench/bench_dewarp.py [--size 2048] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import map_coordinates

from lwa_common.config import Dewarp
from lwa_common.fitsio import image_plane
from lwa_common.testing import allsky_header, bench_line, best_of, synthetic_image
from lwa_dewarp import apply_screen, dewarp_images, fit_screen, write_fit_products
from lwa_dewarp.apply import sample_coordinates
from lwa_dewarp.extract import celestial_wcs

GOAL = 1.2


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU (process) time of `repeat` runs; CPU time is the steadier
    number on a shared machine."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def _make_image(size: int, n_sources: int, seed: int = 1):
    """All-sky SIN image (horizon inside the frame), 3.3-px beam, sources moved by a smooth warp."""
    scale = 128.0 / size  # SIN all-sky: the horizon circle spans 2 rad = 114.6 deg
    header = allsky_header(size=size, scale_deg=scale, bmaj_deg=3.3 * scale, freq_mhz=56.0,
                           keywords={"STOKES": "I", "IMGCAT": "deep", "FREQMHZ": 56.0})
    wcs = celestial_wcs(header)
    rng = np.random.default_rng(seed)
    c = (size - 1) / 2.0
    r = 0.8 * math.degrees(1.0) / scale * np.sqrt(rng.uniform(size=n_sources))
    phi = rng.uniform(0, 2 * np.pi, n_sources)
    x, y = c + r * np.cos(phi), c + r * np.sin(phi)
    amp = 4.0  # pixels, > 1 beam
    dx = amp * np.sin(2.0 * (x - c) / size + 0.3)
    dy = amp * np.cos(2.5 * (y - c) / size)
    ra, dec = wcs.pixel_to_world_values(x, y)
    ora, odec = wcs.pixel_to_world_values(x + dx, y + dy)
    peaks = np.exp(rng.uniform(np.log(10.0), np.log(100.0), n_sources))
    image = synthetic_image(header, list(zip(ora, odec, peaks, strict=True)), noise=0.2, seed=seed)
    from lwa_common.catalogs import CatalogSource

    catalog = [CatalogSource(name=f"s{i}", ra_deg=float(ra[i]) % 360, dec_deg=float(dec[i]),
                             flux_jy=float(peaks[i] * (73.8 / 56.0) ** -0.8), ref_freq_hz=73.8e6)
               for i in range(n_sources)]
    return image, header, catalog, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels (science: 4096)")
    parser.add_argument("--sources", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    image, header, catalog, scale = _make_image(args.size, args.sources)
    print(f"image {args.size}^2 at {scale * 60:.2f}'/px, {args.sources} sources "
          f"(built in {time.perf_counter() - t0:.1f} s); NaN fraction {np.mean(np.isnan(image)):.3f}")
    t0 = time.perf_counter()
    fit = fit_screen((image, header), catalog)
    t_fit = time.perf_counter() - t0
    s = fit.summary
    print(f"fit_screen: {t_fit:.2f} s, {s['n_anchors']} anchors, screen factor {fit.screen.factor}, "
          f"median offset {s['median_offset_before_beams']:.2f} -> {s['median_offset_after_cv_beams']:.3f} beams "
          "(cross-validated)")
    screen = fit.screen
    plane = image_plane(image).astype(float)
    coords, same, _ = sample_coordinates(screen, header, plane.shape)
    filled = np.nan_to_num(plane, nan=0.0)
    print(f"same grid: {same}; timings are the best of {args.repeat}")
    apply_screen(image, header, screen)  # warm-up
    fns = {}
    for order, label in ((3, "cubic"), (1, "bilinear")):
        fns[f"apply {label}"] = lambda o=order: apply_screen(image, header, screen,
                                                               settings=replace(Dewarp(), interp_order=o))
        fns[f"floor {label}"] = lambda o=order: map_coordinates(filled, coords, order=o, mode="nearest")
    cpu: dict = {}
    best = best_of(fns, args.repeat, cpu=cpu)
    for label in ("cubic", "bilinear"):
        print(f"{label:8s}: apply_screen {best['apply ' + label]:.3f} s | one map_coordinates "
              f"{best['floor ' + label]:.3f} s | ratio {best['apply ' + label] / best['floor ' + label]:.2f} "
              f"(CPU {cpu['apply ' + label]:.3f} / {cpu['floor ' + label]:.3f} s: "
              f"{cpu['apply ' + label] / cpu['floor ' + label]:.2f})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "img.fits"
        fits.PrimaryHDU(image, header).writeto(path)
        write_fit_products(fit, screen_path=tmp / "screen.fits", qa_dir=tmp / "qa", plots=False)
        t_files, _ = _best(lambda: dewarp_images([path], screen=tmp / "screen.fits", output_dir=tmp / "out",
                                                 overwrite=True), args.repeat)
    print(f"dewarp_images (read + cubic resample + write one FITS): {t_files:.3f} s wall")
    bench_line(f"dewarp-apply-cubic-{args.size}", best["apply cubic"] / best["floor cubic"], GOAL)


if __name__ == "__main__":
    main()
