"""Synthetic per-subband all-sky images with lwa-pipe headers, for the lwa-stack tests."""

from __future__ import annotations

import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from lwa_common.fitsio import write_image
from lwa_common.subbands import subband_freqs
from lwa_common.testing import allsky_header, synthetic_image

CENTRE = (151.0, 37.24)


def centre_mhz(label: int) -> float:
    return float(subband_freqs(label, 1)[0] / 1e6)


def make_image(folder: Path, subband: int, *, stokes: str = "I", imgcat: str = "deep", interval: str = "deep",
               robust: float = 0.0, taper: float = 30.0, pbcor: bool = False, dewarped: bool = True,
               sources: list[tuple[float, float, float]] | None = None, noise: float = 1.0, seed: int | None = None,
               size: int = 200, scale_deg: float = 0.6, ra_deg: float = CENTRE[0], dec_deg: float = CENTRE[1],
               bmaj_deg: float = 2.0, name: str | None = None, spectral_index: float | None = None) -> Path:
    """Write one image as lwa-image would (keywords of ARCHITECTURE.md) and return its path.

    `sources` are (ra, dec, flux at 60 MHz); with `spectral_index` the flux scales as (f/60)^alpha.
    """
    freq = centre_mhz(subband)
    header = allsky_header(size=size, scale_deg=scale_deg, ra_deg=ra_deg, dec_deg=dec_deg, freq_mhz=freq,
                           bmaj_deg=bmaj_deg)
    srcs = []
    for ra, dec, flux in sources or []:
        srcs.append((ra, dec, flux * (freq / 60.0) ** (spectral_index or 0.0)))
    if seed is None:
        seed = subband * 1000 + zlib.crc32(repr((stokes, imgcat, interval, robust, taper, pbcor, dewarped)).encode()) % 997
    data = synthetic_image(header, srcs, noise=noise, seed=seed)
    conf = f"{stokes}-{imgcat}-{'Taper' if taper else 'NoTaper'}-Robust{robust:g}"
    name = name or (f"{subband}MHz-{conf}{'-' + interval if imgcat == '10min' else ''}-image"
                    f"{'-pbcorr' if pbcor else ''}{'_dewarped' if dewarped else ''}.fits")
    path = folder / f"{subband}MHz" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    keywords = {"STOKES": stokes, "IMGCAT": imgcat, "INTERVAL": interval, "NINTERVL": 1 if imgcat == "deep" else 6,
                "ROBUST": robust, "TAPER": taper, "PBCOR": pbcor, "DEWARPED": dewarped, "SUBBAND": f"{subband}MHz",
                "FREQMHZ": round(freq, 4), "DATE-OBS": "2024-12-20T12:00:00", "DATE-END": "2024-12-20T13:00:00",
                "MJD-MID": 60664.52}
    write_image(path, data, header, tool="lwa-image", keywords=keywords, argv=["test"])
    return path


def measured_rms(path: Path) -> float:
    from lwa_stack.noise import measure_image

    return measure_image(path).rms_jy


def pixel_of(path: Path, ra: float, dec: float) -> tuple[int, int]:
    from astropy.io import fits
    from astropy.wcs import WCS

    w = WCS(fits.getheader(path)).celestial
    x, y = w.all_world2pix([[ra, dec]], 0)[0]
    return int(round(float(x))), int(round(float(y)))


def value_at(path: Path, ra: float, dec: float) -> float:
    from lwa_common.fitsio import image_plane, read_image

    data, _ = read_image(path)
    x, y = pixel_of(path, ra, dec)
    return float(image_plane(data)[y, x])


def pixel_centre_world(path: Path, x: int, y: int) -> tuple[float, float]:
    from astropy.io import fits
    from astropy.wcs import WCS

    w = WCS(fits.getheader(path)).celestial
    ra, dec = w.all_pix2world([[x, y]], 0)[0]
    return float(ra), float(dec)


@pytest.fixture
def synth(tmp_path):
    """Helpers: synth.make(subband, **kw) writes under tmp_path/run; rms/value_at/pixel_of/world_of."""

    def _make(subband: int, *, folder: Path | None = None, **kw) -> Path:
        return make_image(folder or tmp_path / "run", subband, **kw)

    return SimpleNamespace(make=_make, rms=measured_rms, value_at=value_at, pixel_of=pixel_of,
                           world_of=pixel_centre_world, centre_mhz=centre_mhz, run=tmp_path / "run")
