"""lwa-cutout fixtures: a simulated hour imaged with the real wsclean, and synthetic images."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from lwa_common.fitsio import update_keywords
from lwa_common.testing import allsky_header, synthetic_image

START = "2024-12-20T12:00:00"  # zenith near RA 151 deg, Dec +37.4 deg; LST ~10h05m
CONFUSER_SEP_ARCMIN = 17.0  # inside the search radius (BMAJ ~15' + 3'), outside the target's 1-FWHM mask

# A 5 Jy target, a Stokes-V burst in interval 4 (index 3), and a 4 Jy source with a 12 Jy
# neighbour. beam: false, so the images are already "PB-corrected" (PBCOR = T).
SIM_SPEC = {
    "beam": False,
    "noise": {"sigma_jy": 2.0},
    "sources": [
        {"name": "T5", "ra": 155.0, "dec": 40.0, "flux_jy": 5.0, "spectral_index": 0.0},
        {"name": "C", "ra": 146.0, "dec": 35.0, "flux_jy": 4.0, "spectral_index": 0.0},
        {"name": "Cx", "ra": 146.0 + CONFUSER_SEP_ARCMIN / 60 / np.cos(np.radians(35.0)), "dec": 35.0,
         "flux_jy": 12.0, "spectral_index": 0.0},
    ],
    "transients": [{"name": "VS", "ra": 152.0, "dec": 33.0, "flux_jy": 3.0, "spectral_index": 0.0, "stokes": "V",
                    "intervals": [3]}],
}
WSCLEAN_COMMON = ["-size", "256", "256", "-scale", "0.08", "-pol", "I,V", "-niter", "20000", "-auto-threshold", "0.5",
                  "-auto-mask", "3", "-mgain", "0.8", "-weight", "briggs", "0", "-no-update-model-required"]


def _concat_ms(files: list[Path], out: Path) -> Path:
    """One MS with every integration, all phased to the middle integration's zenith.

    lwa-sim writes one MS per integration, each phased to its own zenith; wsclean would image them
    together with the first one's phase centre (smearing an hour) and `-intervals-out` needs one
    MS holding all the time steps. The simulated MS are only read.
    """
    from pyuvdata import UVData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvs = [UVData.from_file(str(f)) for f in files]
        cat = next(iter(uvs[len(uvs) // 2].phase_center_catalog.values()))
        for uv in uvs:
            uv.phase(lon=cat["cat_lon"], lat=cat["cat_lat"], cat_name="common", cat_type="sidereal")
        full = uvs[0].fast_concat(uvs[1:], axis="blt")
        full.write_ms(str(out), clobber=True)
    return out


def _stamp(src: Path, dst: Path, keywords: dict) -> Path:
    with fits.open(src) as hdul:
        header = update_keywords(hdul[0].header.copy(), keywords)
        fits.writeto(dst, hdul[0].data, header, overwrite=True)
    return dst


def _times(start: str, end: str) -> dict:
    t0, t1 = Time(start, scale="utc"), Time(end, scale="utc")
    return {"DATE-OBS": t0.isot, "DATE-END": t1.isot, "MJD-MID": (t0.mjd + t1.mjd) / 2}


@pytest.fixture(scope="session")
def sim_images(sim_cache, tmp_path_factory):
    """Deep I/V and 6 x (10 min) I/V wsclean images of the simulated hour, with our keywords.

    Returns (images_dir, truth). The "10 min" intervals are one 10 s integration each here.
    """
    out, truth = sim_cache("cutout_targets", SIM_SPEC, n_int=6, n_antennas=64, n_channels=8, start=START)
    work = tmp_path_factory.mktemp("cutout_wsclean")
    ms = _concat_ms(sorted(out.glob("*.ms")), work / "hour.ms")
    for name, extra in (("deep", []), ("iv", ["-intervals-out", "6"])):
        cmd = ["wsclean", "-quiet", *WSCLEAN_COMMON, *extra, "-name", str(work / name), str(ms)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    images = tmp_path_factory.mktemp("cutout_images")
    obs = truth["observation"]
    freq = float(np.mean(obs["subbands"][0]["freqs_hz"])) / 1e6
    common = {"PBCOR": True, "DEWARPED": False, "SUBBAND": "55MHz", "FREQMHZ": freq, "TAPER": 0.0, "ROBUST": 0.0}
    deep_times = _times(obs["start"], obs["end"])
    _stamp(work / "deep-I-image.fits", images / "55MHz-I-Deep-image.fits",
           {**common, **deep_times, "STOKES": "I", "IMGCAT": "deep", "INTERVAL": "deep", "NINTERVL": 1,
            "CONFIG": "I-Deep-NoTaper-Robust-0"})
    _stamp(work / "deep-V-dirty.fits", images / "55MHz-V-Deep-image.fits",
           {**common, **deep_times, "STOKES": "V", "IMGCAT": "deep", "INTERVAL": "deep", "NINTERVL": 1,
            "CONFIG": "V-Deep"})
    for k, interval in enumerate(obs["intervals"]):
        times = _times(interval["start"], interval["end"])
        tag = f"t{k + 1:04d}"
        for stokes, product, config in (("I", "image", "I-10min"), ("V", "dirty", "V-10min")):
            _stamp(work / f"iv-t{k:04d}-{stokes}-{product}.fits", images / f"55MHz-{config}-{tag}-image.fits",
                   {**common, **times, "STOKES": stokes, "IMGCAT": "10min", "INTERVAL": tag, "NINTERVL": 6,
                    "CONFIG": config})
    shutil.rmtree(ms)
    return images, truth


def write_allsky(path: Path, sources, *, stokes: str = "I", category: str = "deep", interval: str = "deep",
                 date_obs: str = START, minutes: float = 60.0, freq_mhz: float = 56.0, noise: float = 0.05,
                 seed: int = 0, size: int = 256, scale_deg: float = 0.5, bmaj_deg: float = 2.0,
                 keywords: dict | None = None, **header_kw) -> Path:
    """A synthetic wsclean-like all-sky image with our keywords (for fast tests)."""
    t0 = Time(date_obs, scale="utc")
    t1 = t0 + minutes / 1440.0
    mid = Time((t0.mjd + t1.mjd) / 2, format="mjd", scale="utc")
    zen_ra = 151.0 + (mid.mjd - Time(START).mjd) * 360.985647
    header = allsky_header(size=size, scale_deg=scale_deg, ra_deg=zen_ra, dec_deg=37.24, freq_mhz=freq_mhz,
                           bmaj_deg=bmaj_deg, date_obs=t0.isot, **header_kw)
    update_keywords(header, {"STOKES": stokes, "IMGCAT": category, "INTERVAL": interval, "DATE-END": t1.isot,
                             "MJD-MID": mid.mjd, "FREQMHZ": freq_mhz, "SUBBAND": f"{int(freq_mhz) - 1}MHz",
                             "PBCOR": True, "DEWARPED": False, "ROBUST": 0.0, "TAPER": 30.0,
                             "NINTERVL": 1 if category == "deep" else 6, **(keywords or {})})
    data = synthetic_image(header, sources, noise=noise, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.writeto(path, data, header, overwrite=True)
    return path


@pytest.fixture
def allsky(tmp_path):
    """`write_allsky` bound to this test's tmp_path: allsky("name.fits", sources, **kw)."""

    def make(name: str, sources, **kw) -> Path:
        return write_allsky(tmp_path / name, sources, **kw)

    return make
