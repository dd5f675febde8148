"""`lwa-cutout solar-system`: the Moon and the planets, measured like targets.

Positions come from astropy's built-in ephemeris (`get_body` with `solar_system_ephemeris` set
to "builtin": no download, good to a few arcsec for the planets and ~10 arcsec for the Moon, far
below an OVRO-LWA beam). Each body is placed at every image's mid-time (`MJD-MID`), as seen from
OVRO (topocentric, which matters for the Moon: up to 1 deg of parallax). The direction is used as
ICRS coordinates; what separates the two (annual aberration, <= 20.5") is negligible here.

Angular diameters use the equatorial radii of the IAU WGCCRE 2015 report (Archinal et al. 2018,
Celest. Mech. Dyn. Astr. 130, 22) and the Moon's mean radius.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
from astropy.coordinates import AltAz, get_body, solar_system_ephemeris
from astropy.time import Time

from lwa_common.config import Imaging, Site
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints
from lwa_common.site import ovro_location
from lwa_cutout.images import find_sets
from lwa_cutout.photometry import PhotometrySettings, Placement, Subject, SubjectResult, run_photometry

__all__ = ["BODIES", "RADIUS_KM", "BODY_COLUMNS", "Ephemeris", "ephemeris", "body_subjects", "run_solar_system"]

log = logging.getLogger(__name__)

BODIES: tuple[str, ...] = ("moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune")
RADIUS_KM: dict[str, float] = {
    "moon": 1737.4,
    "mercury": 2440.53,
    "venus": 6051.8,
    "mars": 3396.19,
    "jupiter": 71492.0,
    "saturn": 60268.0,
    "uranus": 25559.0,
    "neptune": 24764.0,
}
BODY_COLUMNS: tuple[str, ...] = ("ephem_ra_deg", "ephem_dec_deg", "distance_au", "diameter_arcsec", "ephem_elevation_deg")


@dataclass(frozen=True)
class Ephemeris:
    """A body as seen from the site at one time."""

    body: str
    mjd: float
    ra_deg: float
    dec_deg: float
    distance_au: float
    diameter_arcsec: float
    elevation_deg: float
    azimuth_deg: float

    def placement(self) -> Placement:
        columns = {
            "ephem_ra_deg": self.ra_deg,
            "ephem_dec_deg": self.dec_deg,
            "distance_au": self.distance_au,
            "diameter_arcsec": self.diameter_arcsec,
            "ephem_elevation_deg": self.elevation_deg,
        }
        keywords = {
            "BODY": (self.body.capitalize(), "solar-system body"),
            "BODYRA": (round(self.ra_deg, 7), "[deg] ephemeris RA (topocentric, OVRO)"),
            "BODYDEC": (round(self.dec_deg, 7), "[deg] ephemeris Dec (topocentric, OVRO)"),
            "BODYDIST": (round(self.distance_au, 10), "[AU] distance from OVRO"),
            "BODYDIAM": (round(self.diameter_arcsec, 3), "[arcsec] angular diameter"),
            "BODYEL": (round(self.elevation_deg, 3), "[deg] elevation at BODYMJD"),
            "BODYMJD": (round(self.mjd, 8), "time of the ephemeris (image MJD-MID)"),
            "EPHEM": ("astropy builtin", "ephemeris used"),
        }
        return Placement(self.ra_deg, self.dec_deg, columns, keywords)


@functools.lru_cache(maxsize=4096)
def _ephemeris_cached(body: str, mjd: float, site: Site) -> Ephemeris:
    time = Time(mjd, format="mjd", scale="utc")
    location = ovro_location(site)
    with solar_system_ephemeris.set("builtin"):
        coord = get_body(body, time, location)
    horizontal = coord.transform_to(AltAz(obstime=time, location=location))
    distance_km = float(coord.distance.to(u.km).value)
    diameter = 2.0 * math.degrees(math.asin(min(RADIUS_KM[body] / distance_km, 1.0))) * 3600.0
    return Ephemeris(
        body=body,
        mjd=mjd,
        ra_deg=float(coord.ra.deg),
        dec_deg=float(coord.dec.deg),
        distance_au=float(coord.distance.to(u.AU).value),
        diameter_arcsec=diameter,
        elevation_deg=float(horizontal.alt.deg),
        azimuth_deg=float(horizontal.az.deg),
    )


def ephemeris(body: str, mjd: float, *, site: Site | None = None) -> Ephemeris:
    """Topocentric position, distance and angular diameter of `body` at `mjd` (UTC)."""
    key = body.strip().lower()
    if key not in RADIUS_KM:
        raise LwaError(f"unknown body '{body}'; known: {', '.join(BODIES)}")
    return _ephemeris_cached(key, float(mjd), site or Site())


def body_subjects(bodies: Sequence[str] = BODIES, *, site: Site | None = None) -> list[Subject]:
    """One moving `Subject` per body; detected in I or V (Jupiter's bursts are circularly polarised)."""
    site = site or Site()
    subjects = []
    for body in bodies:
        key = body.strip().lower()
        if key not in RADIUS_KM:
            raise LwaError(f"unknown body '{body}'; known: {', '.join(BODIES)}")

        def place(mjd: float, _key: str = key) -> Placement:
            return ephemeris(_key, mjd, site=site).placement()

        subjects.append(Subject(name=key.capitalize(), ra_deg=math.nan, dec_deg=math.nan, detection_stokes="both",
                                ephemeris=place))
    return subjects


def run_solar_system(
    *,
    images: Sequence[str | Path],
    output_dir: str | Path,
    fallback_dirs: Sequence[str | Path] = (),
    bodies: Sequence[str] = BODIES,
    settings: PhotometrySettings | None = None,
    default_intervals: int = Imaging.intervals_out,
    overwrite: bool = False,
    hints: ImageHints | None = None,
    argv: list[str] | None = None,
) -> list[SubjectResult]:
    """Photometry of the solar-system `bodies` above the elevation limit in every image set."""
    settings = settings or PhotometrySettings()
    subjects = body_subjects(bodies, site=settings.site)
    sets = find_sets(images, fallback_dirs=fallback_dirs, exclude=[Path(output_dir)],
                     default_intervals=default_intervals, hints=hints)
    return run_photometry(subjects, sets, output_dir=output_dir, settings=settings, overwrite=overwrite, argv=argv,
                          kind="body", extra_columns=BODY_COLUMNS)
