"""Synthetic all-sky images with a known analytic warp (fast; no wsclean)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from lwa_common.catalogs import CatalogSource
from lwa_common.testing import allsky_header, synthetic_image
from lwa_dewarp.screen import equidistant_wcs, offset_by

FREQ_MHZ = 56.0
ALPHA = -0.8


@dataclass
class WarpedSky:
    header: fits.Header
    image: np.ndarray  # (1, 1, ny, nx) float32, NaN beyond the horizon
    catalog: list[CatalogSource]  # true positions, 73.8 MHz fluxes
    true_xy: np.ndarray  # (n, 2) true pixel positions
    obs_xy: np.ndarray  # (n, 2) observed (warped) pixel positions
    peaks: np.ndarray
    warp: object  # callable (x, y) -> (dx, dy) in pixels

    @property
    def wcs(self) -> WCS:
        return WCS(self.header).celestial

    @property
    def beam_px(self) -> float:
        return self.header["BMAJ"] / abs(self.header["CDELT2"])


def sky_warp(header: fits.Header, field):
    """The pixel warp (x, y) -> (dx, dy) of a field of local sky offsets: `field(xp, yp)` gives
    (dRA cos Dec, dDec) in image pixel units at pixel (xp, yp) of the equidistant plane (the
    ionosphere is smooth on the sky, not in the SIN projection's squeezed pixels)."""
    wcs = WCS(header).celestial
    plane = equidistant_wcs(wcs)
    unit = abs(header["CDELT2"]) * 60.0

    def warp(x, y):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        ra, dec = wcs.pixel_to_world_values(x, y)
        fx, fy = (np.broadcast_to(f, x.shape) for f in field(*plane.world_to_pixel_values(ra, dec)))
        x2, y2 = wcs.world_to_pixel_values(*offset_by(ra, dec, fx * unit, fy * unit))
        return x2 - x, y2 - y

    return warp


def make_warped_sky(*, n: int = 30, size: int = 256, scale_deg: float = 0.5, bmaj_deg: float = 1.5,
                    amplitude_px: float = 5.0, noise: float = 0.3, seed: int = 1, warp=None, field=None,
                    max_radius: float = 0.85, min_sep_px: float = 20.0, keywords: dict | None = None) -> WarpedSky:
    """`n` sources at random true positions inside `max_radius` of the horizon circle (at least
    `min_sep_px` apart), drawn at positions moved by a smooth analytic warp: `warp(x, y)` in
    pixels, or `field` of sky offsets (`sky_warp`; default: sinusoids and a gradient,
    ~`amplitude_px`)."""
    rng = np.random.default_rng(seed)
    header = allsky_header(size=size, scale_deg=scale_deg, bmaj_deg=bmaj_deg, freq_mhz=FREQ_MHZ,
                           keywords={"STOKES": "I", "IMGCAT": "deep", "FREQMHZ": FREQ_MHZ, **(keywords or {})})
    wcs = WCS(header).celestial
    c = (size - 1) / 2.0
    horizon_px = np.degrees(1.0) / scale_deg  # SIN: horizon at 1 radian of direction cosine
    if warp is None and field is None:
        def field(x, y):
            u, v = (np.asarray(x) - c) / size, (np.asarray(y) - c) / size
            return (amplitude_px * (0.8 * np.sin(2.2 * u + 0.4) + 0.5 * np.cos(3.0 * v) + 0.3 * v),
                    amplitude_px * (0.7 * np.cos(2.5 * (u + v) + 1.0) - 0.3 + 0.4 * u))
    if warp is None:
        warp = sky_warp(header, field)
    true_xy = []
    while len(true_xy) < n:
        r = max_radius * horizon_px * np.sqrt(rng.uniform())
        phi = rng.uniform(0, 2 * np.pi)
        p = np.array([c + r * np.cos(phi), c + r * np.sin(phi)])
        if all(np.hypot(*(p - q)) > min_sep_px for q in true_xy):
            true_xy.append(p)
    true_xy = np.array(true_xy)
    dx, dy = warp(true_xy[:, 0], true_xy[:, 1])
    obs_xy = true_xy + np.column_stack([dx, dy])
    peaks = np.exp(rng.uniform(np.log(8.0), np.log(80.0), n))
    true_ra, true_dec = wcs.pixel_to_world_values(true_xy[:, 0], true_xy[:, 1])
    obs_ra, obs_dec = wcs.pixel_to_world_values(obs_xy[:, 0], obs_xy[:, 1])
    image = synthetic_image(header, list(zip(obs_ra, obs_dec, peaks, strict=True)), noise=noise, seed=seed)
    s738 = peaks * (73.8 / FREQ_MHZ) ** ALPHA  # so that the alpha-scaled flux at 56 MHz is the peak
    catalog = [CatalogSource(name=f"src{i:02d}", ra_deg=float(true_ra[i]) % 360.0, dec_deg=float(true_dec[i]),
                             flux_jy=float(s738[i]), ref_freq_hz=73.8e6, catalog="csv") for i in range(n)]
    return WarpedSky(header, image, catalog, true_xy, obs_xy, peaks, warp)


def write_catalog_csv(path, sources: list[CatalogSource]) -> None:
    lines = ["name,ra,dec,flux"] + [f"{s.name},{s.ra_deg:.6f},{s.dec_deg:.6f},{s.flux_jy:.4f}" for s in sources]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def warped_sky() -> WarpedSky:
    return make_warped_sky()


@pytest.fixture
def make_sky():
    return make_warped_sky


@pytest.fixture
def write_csv():
    return write_catalog_csv


@pytest.fixture
def run_inprocess(capsys):
    """Run `lwa-dewarp ARGS` through `main`'s error handling in this process (fast; for the must-fail
    cases): returns (exit code, stdout, stderr). Root log handlers are restored afterwards."""
    import logging

    from lwa_common.cli import run_main
    from lwa_dewarp.cli import cli

    def run(args: list[str]) -> tuple[int, str, str]:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            with pytest.raises(SystemExit) as exc:
                run_main(cli, [str(a) for a in args])
        finally:
            for h in list(root.handlers):
                if h not in handlers:
                    root.removeHandler(h)
            for h in handlers:
                if h not in root.handlers:
                    root.addHandler(h)
            root.setLevel(level)
        cap = capsys.readouterr()
        return int(exc.value.code or 0), cap.out, cap.err

    return run


def write_vlssr_text(path, sources: list[CatalogSource]) -> None:
    """`sources` in the fixed-column layout of the distributed FullVLSSCatalog.text."""
    lines = ['  RA(2000)  Dec(2000) Dist(")  Flux  Major Minor  PA  Field    X_pix  Y_pix',
             ' h  m    s    d  m   s   Ori     Jy    "     "    deg', ""]
    for s in sources:
        hh, rem = divmod(s.ra_deg / 15.0 * 3600.0, 3600.0)
        mm, ss = divmod(rem, 60.0)
        sign = "-" if s.dec_deg < 0 else "+"
        dd, rem = divmod(abs(s.dec_deg) * 3600.0, 3600.0)
        dm, ds = divmod(rem, 60.0)
        lines.append(f"{int(hh):02d} {int(mm):02d} {ss:05.2f} {sign}{int(dd):02d} {int(dm):02d} {ds:04.1f}"
                     f"{0.5:6.2f}{s.flux_jy:7.2f}{'<80':>6s}{'<75':>6s}{0:6.0f} C1000P37  {512.0:7.1f}{512.0:7.1f}")
        lines.append(f"{'':6s}{0.1:5.2f}{'':8s}{1.0:4.1f}{'':7s}{0.1:6.2f}{'':6s}{'4.1':>6s}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def write_vlssr():
    return write_vlssr_text
