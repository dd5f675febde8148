"""OVRO-LWA location, the local east-north-up frame, LST <-> UTC conversion and LST-hour splitting
(astropy)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time

from lwa_common.config import Site
from lwa_common.errors import LwaError

__all__ = [
    "ovro_location",
    "geocentric_m",
    "enu_basis",
    "lst_hours",
    "parse_lst_range",
    "lst_to_utc",
    "LstHour",
    "split_lst_range",
    "lst_hour_of",
    "altaz",
    "zenith_radec",
    "meridian_phase_centre",
]

SIDEREAL_RATIO = 1.002737909350795  # sidereal seconds per solar second


def ovro_location(site: Site | None = None) -> EarthLocation:
    site = site or Site()
    return EarthLocation.from_geodetic(site.lon_deg * u.deg, site.lat_deg * u.deg, site.height_m * u.m)


def geocentric_m(location: EarthLocation) -> np.ndarray:
    """ITRF (geocentric) x, y, z of `location` in metres, as a numpy vector."""
    return np.array([location.x.to_value(u.m), location.y.to_value(u.m), location.z.to_value(u.m)])


def enu_basis(location: EarthLocation) -> np.ndarray:
    """Rows east, north, up: the unit vectors of the local tangent frame at `location`, in ITRF axes.

    The frame of the WGS84 ellipsoid (geodetic latitude), so the Earth's curvature between two
    ITRF points is kept: `enu_basis(here) @ (there - here)` is the offset in (east, north, up), and
    `enu_basis(here).T @ enu` turns a local offset back into ITRF. Astropy's AltAz frame needs a
    time and a sky direction; a terrestrial emitter (the site's RFI list) has neither.
    """
    geo = location.to_geodetic("WGS84")
    lat, lon = np.radians(geo.lat.deg), np.radians(geo.lon.deg)
    return np.array([
        [-np.sin(lon), np.cos(lon), 0.0],
        [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
        [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)],
    ])


def lst_hours(time: Time, site: Site | None = None) -> np.ndarray | float:
    """Local apparent sidereal time at OVRO, in hours."""
    return Time(time, location=ovro_location(site)).sidereal_time("apparent").hour


def parse_lst_range(text: str) -> tuple[float, float]:
    """'10h-11h', '10h30m-12h', '10-11' -> (start, end) LST hours; end may wrap past 24 h."""
    match = re.fullmatch(r"\s*(\d+(?:h\d+m?)?h?)\s*-\s*(\d+(?:h\d+m?)?h?)\s*", text)
    if not match:
        raise LwaError(f"LST range '{text}' is not like '10h-11h' or '10h30m-12h'")

    def hours(part: str) -> float:
        h, _, rest = part.rstrip("h").partition("h")
        minutes = float(rest.rstrip("m")) if rest else 0.0
        return float(h) + minutes / 60.0

    start, end = hours(match.group(1)), hours(match.group(2))
    if not (0 <= start < 24 and 0 <= end <= 24):
        raise LwaError(f"LST range '{text}' must lie within 0h-24h")
    if end <= start:
        end += 24.0
    return start, end


def lst_to_utc(lst_hour: float, date: str, site: Site | None = None) -> Time:
    """The first UTC time on `date` (YYYY-MM-DD, UTC day) at which the LST equals `lst_hour`."""
    try:
        t0 = Time(f"{date}T00:00:00", scale="utc")
    except ValueError:
        raise LwaError(f"date '{date}' is not YYYY-MM-DD") from None
    lst0 = lst_hours(t0, site)
    dt_sidereal_h = (lst_hour - lst0) % 24.0
    t = t0 + (dt_sidereal_h / SIDEREAL_RATIO) * u.hour
    # one Newton step absorbs the nutation term of apparent sidereal time
    err = ((lst_hours(t, site) - lst_hour + 12.0) % 24.0) - 12.0
    return t - (err / SIDEREAL_RATIO) * u.hour


@dataclass(frozen=True)
class LstHour:
    lst_start_h: float
    lst_end_h: float
    utc_start: Time
    utc_end: Time

    @property
    def label(self) -> str:
        return f"{int(self.lst_start_h) % 24:02d}h"

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "lst_start_h": self.lst_start_h % 24,
            "lst_end_h": self.lst_end_h % 24 or 24.0,
            "utc_start": self.utc_start.isot,
            "utc_end": self.utc_end.isot,
        }


def split_lst_range(text: str, date: str, site: Site | None = None) -> list[LstHour]:
    """Split an LST range into LST hours with their UTC boundaries on `date`."""
    start, end = parse_lst_range(text)
    edges = [start]
    h = np.floor(start) + 1
    while h < end:
        edges.append(float(h))
        h += 1
    edges.append(end)
    first = lst_to_utc(start % 24, date, site)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        t_a = first + ((a - start) / SIDEREAL_RATIO) * u.hour
        t_b = first + ((b - start) / SIDEREAL_RATIO) * u.hour
        out.append(LstHour(a, b, t_a, t_b))
    return out


def lst_hour_of(start: Time, duration_s: float, site: Site | None = None) -> tuple[str, str]:
    """The LST hour holding the middle of an observation from `start` lasting `duration_s`, as the
    driver's `--range` ("10h-11h") and the `--date` on which its LST-to-UTC mapping (the first time
    on that date at that LST) finds the observation: that date, or the day before."""
    mid = start + duration_s / 2 * u.s
    hour = int(lst_hours(mid, site)) % 24
    for day in (0, -1):
        date = (mid + day * u.day).strftime("%Y-%m-%d")
        begin = lst_to_utc(float(hour), date, site)
        if begin <= start and mid - begin < 1 * u.hour:
            break
    return f"{hour:02d}h-{(hour + 1) % 24:02d}h", date


def altaz(coord: SkyCoord, time: Time, site: Site | None = None) -> SkyCoord:
    return coord.transform_to(AltAz(obstime=time, location=ovro_location(site)))


def zenith_radec(time: Time, site: Site | None = None) -> SkyCoord:
    """ICRS direction of the zenith at `time`."""
    loc = ovro_location(site)
    zen = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=AltAz(obstime=time, location=loc))
    return zen.icrs


def meridian_phase_centre(lst_start_h: float, lst_end_h: float, site: Site | None = None) -> SkyCoord:
    """Phase centre on the meridian at the middle of an LST span, at the OVRO latitude."""
    site = site or Site()
    ra_h = ((lst_start_h + lst_end_h) / 2.0) % 24.0
    return SkyCoord(ra=ra_h * 15 * u.deg, dec=site.lat_deg * u.deg, frame="icrs")
