"""Shared simulations and products for the lwa-image tests (session-cached, built on demand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

START = "2024-12-20T12:00:00"  # zenith near RA 151 deg, Dec +37.4 deg
SCALE_DEG = 0.07  # restoring beam ~0.3 deg: ~4 px per beam
SIZE = 256


def _grid(size: int = SIZE, scale_deg: float = SCALE_DEG, **imaging):
    """The config with a test grid: [imaging] size/scale_deg (and `imaging`), [snapshot_qa] the same."""
    from lwa_common.config import load_config

    return load_config(overrides={"imaging": {"size": size, "scale_deg": scale_deg, **imaging},
                                  "snapshot_qa": {"size": size, "scale_arcmin": scale_deg * 60}})


@pytest.fixture(scope="session")
def grid():
    """`grid(size, scale_deg, **imaging)`: a Config imaging (and snapshotting) on that grid."""
    return _grid

MAIN_SPEC = {
    "sources": [
        {"name": "A", "ra": "09h52m00s", "dec": "+40d00m00s", "flux_jy": 200, "spectral_index": -0.7},
        {"name": "B", "ra": "10h20m00s", "dec": "+34d00m00s", "flux_jy": 120, "spectral_index": -0.7,
         "v_frac": 0.3},
        {"name": "C", "ra": "09h48m00s", "dec": "+33d00m00s", "flux_jy": 90, "spectral_index": -0.7,
         "v_frac": -0.25},
    ],
}
# one bright source low in the south (elevation ~40 deg, beam ~0.48): the primary-beam test
PB_SPEC = {"sources": [{"name": "P", "ra": "10h05m00s", "dec": "-12d30m00s", "flux_jy": 250,
                        "spectral_index": -0.7}]}


@pytest.fixture(scope="session")
def main_sim(sim_cache):
    """12 integrations (2 per 10min interval), 48 antennas, 4 channels; A, B (V+), C (V-)."""
    return sim_cache("lwa_image_main", MAIN_SPEC, start=START, n_int=12, n_antennas=48, n_channels=4)


@pytest.fixture(scope="session")
def pb_sim(sim_cache):
    """2 integrations with one 250 Jy source at ~40 deg elevation in the south."""
    return sim_cache("lwa_image_pb", PB_SPEC, start=START, n_int=2, n_antennas=48, n_channels=4)


@pytest.fixture(scope="session")
def main_ms_list(main_sim) -> list[Path]:
    return sorted(main_sim[0].glob("*.ms"))


@pytest.fixture(scope="session")
def hour_ms(main_ms_list, tmp_path_factory) -> Path:
    """The 12 integrations concatenated (default centre: meridian at the middle of the data)."""
    from lwa_image import concat_ms

    out = tmp_path_factory.mktemp("hour") / "hour.ms"
    concat_ms(main_ms_list, out)
    return out


@pytest.fixture(scope="session")
def science_run(hour_ms, tmp_path_factory):
    """All 7 configurations at 256^2 with 1 % of the CLEAN iterations; (paths, timings)."""
    from lwa_image import Timings, run_science

    out = tmp_path_factory.mktemp("science")
    timings = Timings()
    paths = run_science(hour_ms, out, imaging=_grid().imaging, niter_scale=0.01, timings=timings)
    return paths, timings


@pytest.fixture(scope="session")
def snapshot_run(hour_ms, tmp_path_factory) -> list[Path]:
    from lwa_image import run_snapshots

    out = tmp_path_factory.mktemp("snapshots")
    return run_snapshots(hour_ms, out, settings=_grid().snapshot_qa, imaging=_grid().imaging)


def load(path: Path) -> tuple[np.ndarray, fits.Header, WCS]:
    with fits.open(path) as hdul:
        data = np.asarray(hdul[0].data[0, 0], dtype=float)
        header = hdul[0].header.copy()
    return data, header, WCS(header).celestial


def beam_fit(image: np.ndarray, header: fits.Header, x0: float, y0: float, *, box: int = 9,
             sign: float = 1.0) -> dict[str, float]:
    """Fit the header's restoring beam (shape fixed) + offset near (x0, y0): position and peak.

    The restored image of a point source is exactly that Gaussian, so the amplitude is the flux;
    a free-shape fit (lwa_common.testing.fit_point_source) can settle in a local minimum on an
    elongated beam. `sign=-1` fits a negative source.
    """
    from astropy.modeling import fitting, models

    img = sign * image
    scale = abs(header["CDELT2"])
    sig_maj = header["BMAJ"] / scale / np.sqrt(8 * np.log(2))
    sig_min = header["BMIN"] / scale / np.sqrt(8 * np.log(2))
    h = box // 2
    xi, yi = int(round(x0)), int(round(y0))
    sub = img[yi - h: yi + h + 1, xi - h: xi + h + 1]
    dy, dx = np.unravel_index(np.nanargmax(sub), sub.shape)
    xc, yc = xi - h + dx, yi - h + dy
    yy, xx = np.mgrid[yc - h: yc + h + 1, xc - h: xc + h + 1]
    cut = img[yc - h: yc + h + 1, xc - h: xc + h + 1]
    g = models.Gaussian2D(amplitude=float(cut.max()), x_mean=xc, y_mean=yc, x_stddev=sig_maj, y_stddev=sig_min,
                          theta=np.radians(90.0 + header["BPA"]))
    g.x_stddev.fixed = g.y_stddev.fixed = g.theta.fixed = True
    fit = fitting.LevMarLSQFitter()(g + models.Const2D(0.0), xx, yy, cut)
    return {"x": float(fit[0].x_mean.value), "y": float(fit[0].y_mean.value),
            "peak": sign * float(fit[0].amplitude.value)}


@pytest.fixture
def measure():
    """(load, beam_fit) helpers for tests."""
    return load, beam_fit
