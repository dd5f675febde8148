"""ICRS -> topocentric azimuth/elevation with erfa, on a cached copy of astropy's IERS table.

Why own code: astropy's AltAz transform is these same erfa calls (``apco`` for the observer's
astrometry context, then ``atciqz`` + ``atioq`` per direction), but every process first parses the
whole IERS-A and IERS-B tables with astropy's ASCII reader (0.7-1.6 s CPU; issue 17: the
`lwa-image pbcor` and `lwa-peel` processes spent more on it than on their work) and builds frames
(~30 ms per transform). Here `erfa.apco13` gets UT1-UTC and polar motion interpolated (linearly,
leap-second jumps removed: astropy's own rule in ``IERS._interpolate``) from a compact copy of
astropy's Earth-orientation table. The copy is written once to the user cache (``lwa-pipe/``) and
reused while it is younger than astropy's ``iers.conf.auto_max_age`` (astropy's own staleness
rule) and was made by the same astropy version; a time outside it takes astropy's values (with
astropy's warnings). Pressure 0: no refraction, as the pipeline's AltAz frames. Agrees with
astropy's ``SkyCoord.transform_to(AltAz)`` to well under a milliarcsecond (tests).
"""

from __future__ import annotations

import functools
import time as _clock
from pathlib import Path
from typing import Any

import erfa
import numpy as np

from lwa_common.config import Site
from lwa_common.io import atomic_path, user_cache_dir

__all__ = ["icrs_to_altaz", "earth_orientation"]

_ARCSEC = np.pi / (180.0 * 3600.0)


def _eop_cache_path() -> Path:
    import astropy

    return user_cache_dir() / f"iers-eop-astropy-{astropy.__version__}.npz"


def _build_eop_cache(path: Path) -> dict[str, np.ndarray]:
    """MJD, UT1-UTC [s] and polar motion [arcsec] of every complete row of astropy's table, saved."""
    from astropy.utils import iers

    table = iers.earth_orientation_table.get()
    cols = {name: np.ma.getdata(table[col].value).astype(float)
            for name, col in (("mjd", "MJD"), ("ut1_utc", "UT1_UTC"), ("pm_x", "PM_x"), ("pm_y", "PM_y"))}
    good = np.ones(len(table), bool)
    for name, col in (("ut1_utc", "UT1_UTC"), ("pm_x", "PM_x"), ("pm_y", "PM_y")):
        good &= ~np.ma.getmaskarray(table[col]) & np.isfinite(cols[name])
    eop = {name: values[good] for name, values in cols.items()}
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **eop)
    except OSError:
        pass  # an unwritable cache only costs the next process the parse
    return eop


@functools.lru_cache(maxsize=1)
def _eop_table() -> dict[str, np.ndarray]:
    """The cached Earth-orientation table, rebuilt from astropy's when missing or stale."""
    from astropy.utils import iers

    path = _eop_cache_path()
    try:
        fresh = _clock.time() - path.stat().st_mtime < float(iers.conf.auto_max_age or 30.0) * 86400.0
    except OSError:
        fresh = False
    if fresh:
        try:
            with np.load(path) as npz:
                return {name: npz[name] for name in ("mjd", "ut1_utc", "pm_x", "pm_y")}
        except (OSError, KeyError, ValueError):
            pass
    return _build_eop_cache(path)


def earth_orientation(time: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(UT1-UTC [s], xp [rad], yp [rad]) at `time` (astropy Time, UTC), as astropy would use them."""
    eop = _eop_table()
    utc = time.utc
    mjd = (utc.jd1 - 2400000.5) + utc.jd2
    mjd = np.atleast_1d(np.asarray(mjd, float))
    i = np.searchsorted(eop["mjd"], mjd, side="right")
    if np.any(i == 0) or np.any(i >= eop["mjd"].size):
        return _astropy_orientation(time)
    i0, i1 = i - 1, i
    frac = (mjd - eop["mjd"][i0]) / (eop["mjd"][i1] - eop["mjd"][i0])

    def lerp(values: np.ndarray, leap: bool = False) -> np.ndarray:
        step = values[i1] - values[i0]
        if leap:  # a leap second is a 1 s jump of UT1-UTC at the second point: not interpolated
            step = step - np.round(step)
        return values[i0] + frac * step

    shape = np.shape(utc.jd1)
    return (lerp(eop["ut1_utc"], leap=True).reshape(shape), (lerp(eop["pm_x"]) * _ARCSEC).reshape(shape),
            (lerp(eop["pm_y"]) * _ARCSEC).reshape(shape))


def _astropy_orientation(time: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Astropy's own values (and warnings) for a time outside the cached table."""
    from astropy.coordinates.builtin_frames.utils import get_dut1utc, get_polar_motion

    xp, yp = get_polar_motion(time)
    return np.asarray(get_dut1utc(time), float), np.asarray(xp, float), np.asarray(yp, float)


def _geodetic(location: Any) -> tuple[float, float, float]:
    """(east longitude [rad], geodetic latitude [rad], height [m]) of a Site, an EarthLocation or None (OVRO)."""
    if location is None or isinstance(location, Site):
        site = location or Site()
        return np.radians(site.lon_deg), np.radians(site.lat_deg), float(site.height_m)
    lon, lat, height = location.to_geodetic("WGS84")
    return float(lon.to_value("rad")), float(lat.to_value("rad")), float(height.to_value("m"))


def icrs_to_altaz(ra_deg: Any, dec_deg: Any, *, time: Any, location: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (N through E) and elevation [deg] of ICRS directions at one `time` (astropy Time).

    `location` is an EarthLocation, a `config.Site` or None (the OVRO-LWA site). The same erfa
    astrometry as astropy's AltAz frame without refraction (annual and diurnal aberration, light
    deflection, precession-nutation, Earth rotation with UT1, polar motion); vectorised over the
    directions. Returns numpy arrays of the directions' shape.
    """
    elong, phi, height = _geodetic(location)
    utc = time.utc
    if np.ndim(utc.jd1):
        raise ValueError("icrs_to_altaz takes one time; call it per time")
    dut1, xp, yp = (float(v) for v in earth_orientation(time))
    astrom, _eo = erfa.apco13(utc.jd1, utc.jd2, dut1, elong, phi, height, xp, yp, 0.0, 0.0, 0.0, 1.0)
    ri, di = erfa.atciqz(np.radians(np.asarray(ra_deg, float)), np.radians(np.asarray(dec_deg, float)), astrom)
    aob, zob, _hob, _dob, _rob = erfa.atioq(ri, di, astrom)
    return np.degrees(aob), 90.0 - np.degrees(zob)
