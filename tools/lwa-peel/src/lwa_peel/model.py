"""Peel directions: which sources to peel, where they are, and their DP3 sky model.

A TTCal sources.json (read by `lwa_common.catalogs.read_ttcal_sources`) becomes one *direction*
per source: a DP3 patch whose components are the source's point / Gaussian parts. DP3 reads the
makesourcedb text format directly (`sourcedb=model.skymodel`), so we write that.

Sky sources are kept when they are above `min_elevation_deg` at the MS mid-time, seen from the
array centre; the others are skipped with an INFO line naming them. TTCal's Sun / Moon / Jupiter
(no fixed position) are placed with the astropy ephemeris at that time.

RFI sources sit at fixed places on the ground (WGS84 or ITRF). Their apparent direction is the
az/el of the vector from the array centre to the emitter; they are in the near field, but we treat
them as far-field sources in that direction at the MS time, as TTCal does.

Spectra. DP3 applies a spectral law to Stokes I only (Q, U and V stay constant), and knows nothing
of tabulated RFI spectra or of our primary beam. So every component's apparent spectrum -- the
TTCal law (or the RFI table), times the Stokes I beam at the source's az/el when `beam` is given --
is evaluated at the MS channel frequencies and fitted with a log-polynomial about the band centre
(up to third order; exact for a power law, ~1e-7 for a beam-weighted curved spectrum over one
subband). Q, U, V are written at the band centre. This is our own few lines instead of a library
because the DP3 format needs exactly these terms.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from lwa_common.altaz import icrs_to_altaz
from lwa_common.catalogs import CatalogSource, RfiSource, linear_polynomial_flux, log_polynomial_flux
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.site import enu_basis, geocentric_m

__all__ = [
    "Component",
    "Direction",
    "Skipped",
    "sky_directions",
    "field_direction",
    "rfi_directions",
    "rfi_azel",
    "altaz_to_icrs",
    "fit_log_spectrum",
    "fit_linear_spectrum",
    "patch_name",
    "skymodel_text",
    "write_skymodel",
]

log = logging.getLogger(__name__)

_EPHEMERIS = {"Sun": "sun", "Moon": "moon", "Jupiter": "jupiter"}
_MAX_ORDER = 3


@dataclass(frozen=True)
class Component:
    """One DP3 sky-model component (fluxes in Jy at `ref_freq_hz`, axes FWHM in arcsec)."""

    name: str
    ra_deg: float
    dec_deg: float
    i_jy: float
    ref_freq_hz: float
    spectral_terms: tuple[float, ...] = ()
    q_jy: float = 0.0
    u_jy: float = 0.0
    v_jy: float = 0.0
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0
    # log-polynomial spectrum (DP3 LogarithmicSI=true), else an ordinary polynomial in nu/nu0 - 1:
    # wsclean's clean components of a residual (lwa_peel.selfcal), whose fluxes may be negative
    log_si: bool = True

    @property
    def is_gaussian(self) -> bool:
        return self.major_arcsec > 0.0

    def flux_at(self, freq_hz: float | np.ndarray) -> float | np.ndarray:
        """Stokes I as DP3 evaluates it (a polynomial about `ref_freq_hz`, logarithmic or not)."""
        law = log_polynomial_flux if self.log_si else linear_polynomial_flux
        return law(self.i_jy, self.ref_freq_hz, self.spectral_terms, freq_hz)


@dataclass(frozen=True)
class Direction:
    """One peel direction: a source (several components) and where the array sees it."""

    name: str  # the source name of the sources.json
    patch: str  # DP3 patch / direction name
    ra_deg: float
    dec_deg: float
    az_deg: float
    el_deg: float
    components: tuple[Component, ...] = field(default_factory=tuple)
    kind: str = "sky"  # sky / rfi / field (the fixed field patch)

    def flux_at(self, freq_hz: float) -> float:
        return float(sum(c.flux_at(freq_hz) for c in self.components))


@dataclass(frozen=True)
class Skipped:
    """A source left alone, and why."""

    name: str
    reason: str
    az_deg: float = math.nan
    el_deg: float = math.nan


# --------------------------------------------------------------------------- names, geometry


def patch_name(name: str, taken: set[str]) -> str:
    """A DP3-safe patch name from a source name ('Cyg A' -> 'CygA'), unique within `taken`."""
    base = re.sub(r"[^A-Za-z0-9_+\-.]", "", name) or "src"
    if base[0].isdigit() or base[0] in "+-.":
        base = f"s{base}"
    candidate, k = base, 2
    while candidate in taken:
        candidate = f"{base}_{k}"
        k += 1
    taken.add(candidate)
    return candidate


def altaz_to_icrs(az_deg: float, el_deg: float, *, time: Time, location: EarthLocation) -> SkyCoord:
    """The ICRS direction of a topocentric az/el (no refraction) at `time`."""
    frame = AltAz(obstime=time, location=location)
    return SkyCoord(az=az_deg * u.deg, alt=el_deg * u.deg, frame=frame).icrs


def _altaz(ra_deg: float, dec_deg: float, time: Time, location: EarthLocation) -> tuple[float, float]:
    """Azimuth and elevation [deg] of an ICRS direction: astropy's AltAz astrometry through erfa,
    without a per-process parse of the IERS tables (`lwa_common.altaz`)."""
    az, el = icrs_to_altaz(ra_deg, dec_deg, time=time, location=location)
    return float(az), float(el)


def _position(source: CatalogSource, time: Time, location: EarthLocation) -> tuple[float, float]:
    """(RA, Dec) of a sky source; ephemeris bodies as seen from the array at `time`."""
    if source.has_position:
        return source.ra_deg, source.dec_deg
    body = _EPHEMERIS.get(source.name)
    if body is None:
        raise LwaError(f"source '{source.name}' has no position")
    hor = get_body(body, time, location).transform_to(AltAz(obstime=time, location=location))
    icrs = altaz_to_icrs(float(hor.az.deg), float(hor.alt.deg), time=time, location=location)
    return float(icrs.ra.deg), float(icrs.dec.deg)


def rfi_azel(source: RfiSource, centre: EarthLocation) -> tuple[float, float, float]:
    """Azimuth (N through E), elevation (deg) and distance (m) of an RFI source from `centre`.

    The vector from the array centre to the emitter (both ITRF) is rotated into the local
    east-north-up frame of the centre (`lwa_common.site.enu_basis`), so Earth curvature is included.
    """
    d = geocentric_m(source.location) - geocentric_m(centre)
    east, north, up = (float(x) for x in enu_basis(centre) @ d)
    distance = float(np.linalg.norm(d))
    if distance < 1.0:
        raise LwaError(f"RFI source '{source.name}' sits at the array centre; it has no direction")
    az = math.degrees(math.atan2(east, north)) % 360.0
    el = math.degrees(math.atan2(up, math.hypot(east, north)))
    return az, el, distance


# --------------------------------------------------------------------------- spectra


def fit_log_spectrum(
    freqs_hz: np.ndarray, flux_jy: np.ndarray, ref_freq_hz: float
) -> tuple[float, tuple[float, ...]]:
    """(S0, terms) with log10 S = log10 S0 + sum terms[n] log10(nu/ref)^(n+1), least squares.

    Order min(3, channels - 1); every flux must be positive.
    """
    freqs = np.asarray(freqs_hz, dtype=float)
    flux = np.asarray(flux_jy, dtype=float)
    if np.any(~np.isfinite(flux)) or np.any(flux <= 0):
        raise LwaError("cannot fit a log-polynomial spectrum to non-positive fluxes")
    order = min(_MAX_ORDER, len(np.unique(freqs)) - 1)
    if order <= 0:
        return float(np.exp(np.mean(np.log(flux)))), ()
    c0, terms = _polynomial(np.log10(freqs / ref_freq_hz), np.log10(flux), order)
    return float(10.0 ** c0), terms


def fit_linear_spectrum(
    freqs_hz: np.ndarray, flux_jy: np.ndarray, ref_freq_hz: float
) -> tuple[float, tuple[float, ...]]:
    """(S0, terms) with S = S0 + sum terms[n] (nu/ref - 1)^(n+1), least squares, order
    min(3, channels - 1): DP3's `LogarithmicSI=false` law, for fluxes that may be negative."""
    x = np.asarray(freqs_hz, dtype=float) / ref_freq_hz - 1.0
    flux = np.asarray(flux_jy, dtype=float)
    if np.any(~np.isfinite(flux)):
        raise LwaError("cannot fit a polynomial spectrum to non-finite fluxes")
    order = min(_MAX_ORDER, len(np.unique(x)) - 1)
    if order <= 0:
        return float(np.mean(flux)), ()
    return _polynomial(x, flux, order)


def _polynomial(x: np.ndarray, y: np.ndarray, order: int) -> tuple[float, tuple[float, ...]]:
    """Least-squares polynomial y = c0 + sum terms[n] x^(n+1) of `order`, fitted in x scaled to
    [-1, 1] (a well-conditioned variable) and returned in x: (c0, terms)."""
    scale = max(float(np.max(np.abs(x))), 1e-12)
    coeffs = np.polynomial.polynomial.polyfit(x / scale, y, order)
    return float(coeffs[0]), tuple(float(c / scale**n) for n, c in enumerate(coeffs) if n > 0)


def _leaves(source: CatalogSource) -> list[CatalogSource]:
    if not source.components:
        return [source]
    out: list[CatalogSource] = []
    for part in source.components:
        out.extend(_leaves(part))
    return out


def _component(
    leaf: CatalogSource,
    name: str,
    freqs_hz: np.ndarray,
    ref_hz: float,
    gain: np.ndarray,
    ra_dec: tuple[float, float] | None = None,
) -> Component:
    flux = np.asarray(leaf.flux_at(freqs_hz), dtype=float) * gain
    linear = leaf.spectral_law == "linear"  # a refined model's clean components (lwa_peel.hourmodel)
    s0, terms = (fit_linear_spectrum if linear else fit_log_spectrum)(freqs_hz, flux, ref_hz)
    g0 = float(np.interp(ref_hz, freqs_hz, gain))
    ra, dec = ra_dec if ra_dec is not None else (leaf.ra_deg, leaf.dec_deg)
    return Component(
        name=name,
        ra_deg=ra,
        dec_deg=dec,
        i_jy=s0,
        ref_freq_hz=ref_hz,
        spectral_terms=terms,
        q_jy=float(leaf.flux_at(ref_hz, stokes="Q")) * g0,
        u_jy=float(leaf.flux_at(ref_hz, stokes="U")) * g0,
        v_jy=float(leaf.flux_at(ref_hz, stokes="V")) * g0,
        major_arcsec=leaf.major_arcsec if leaf.shape == "gaussian" else 0.0,
        minor_arcsec=(leaf.minor_arcsec or leaf.major_arcsec) if leaf.shape == "gaussian" else 0.0,
        pa_deg=leaf.pa_deg if leaf.shape == "gaussian" else 0.0,
        log_si=not linear,
    )


# --------------------------------------------------------------------------- selection


def sky_directions(
    sources: Sequence[CatalogSource],
    *,
    time: Time,
    location: EarthLocation,
    freqs_hz: np.ndarray,
    min_elevation_deg: float = 0.0,
    beam=None,
) -> tuple[list[Direction], list[Skipped]]:
    """Directions to peel for the sky sources above `min_elevation_deg` at `time`.

    `beam` (a `lwa_common.beam.BeamModel`, or None for none) multiplies each source's spectrum by
    the Stokes I response at its az/el, so the model is what the dipoles see.
    """
    freqs = np.asarray(freqs_hz, dtype=float)
    ref = float(np.mean(freqs))
    taken: set[str] = set()
    keep: list[Direction] = []
    skipped: list[Skipped] = []
    for source in sources:
        ra, dec = _position(source, time, location)
        az, el = _altaz(ra, dec, time, location)
        if el < min_elevation_deg:
            reason = f"elevation {el:.1f} deg is below {min_elevation_deg:g} deg"
            log.info("skipping %s: %s at %s (az %.1f deg)", source.name, reason, time.isot, az)
            skipped.append(Skipped(source.name, reason, az, el))
            continue
        gain = np.ones_like(freqs)
        if beam is not None:
            gain = np.asarray(beam.stokes_i(freqs, az, el), dtype=float)
            if not np.all(gain > 0):
                reason = f"zero beam response at az {az:.1f} el {el:.1f} deg"
                log.info("skipping %s: %s", source.name, reason)
                skipped.append(Skipped(source.name, reason, az, el))
                continue
        patch = patch_name(source.name, taken)
        leaves = _leaves(source)
        single = len(leaves) == 1
        # an ephemeris body takes its computed position; fixed sources keep their components'
        fixed = None if source.has_position else (ra, dec)
        try:
            comps = tuple(
                _component(leaf, patch if single else f"{patch}_{k}", freqs, ref, gain, fixed)
                for k, leaf in enumerate(leaves)
            )
        except LwaError as err:
            raise LwaError(f"source '{source.name}': {err}") from None
        keep.append(Direction(source.name, patch, ra, dec, az, el, comps, kind="sky"))
    return keep, skipped


def field_direction(
    sources: Sequence[CatalogSource],
    *,
    time: Time,
    location: EarthLocation,
    freqs_hz: np.ndarray,
    peeled: Sequence[Direction],
    min_flux_jy: float,
    exclude_deg: float,
    beam=None,
) -> Direction | None:
    """One fixed direction ("field", never solved) holding the catalogue sources to keep.

    Sources above the horizon whose apparent (beam-weighted) flux at the band centre reaches
    `min_flux_jy`, farther than `exclude_deg` from every peeled direction (they are the peeled
    sources' own entries). None when no source qualifies. Positions, elevations and the beam are
    computed for the whole catalogue at once (a full VLSSr has ~70 000 rows).
    """
    freqs = np.asarray(freqs_hz, dtype=float)
    ref = float(np.mean(freqs))
    cands = [s for s in sources if s.has_position]
    if not cands:
        return None
    coords = SkyCoord([s.ra_deg for s in cands] * u.deg, [s.dec_deg for s in cands] * u.deg)
    hor = coords.transform_to(AltAz(obstime=time, location=location))
    az, el = hor.az.deg, hor.alt.deg
    keep = el > 0
    if peeled:
        centres = SkyCoord([d.ra_deg for d in peeled] * u.deg, [d.dec_deg for d in peeled] * u.deg)
        keep &= coords.match_to_catalog_sky(centres)[1].deg > exclude_deg
    idx = np.flatnonzero(keep)
    gain = np.ones((idx.size, freqs.size))
    if beam is not None and idx.size:
        gain = np.asarray(beam.stokes_i(freqs[None, :], az[idx, None], el[idx, None]), dtype=float)
    k_ref = int(np.argmin(np.abs(freqs - ref)))
    apparent = np.array([float(cands[i].flux_at(freqs[k_ref])) for i in idx]) * gain[:, k_ref]
    chosen = [(cands[i], g, a) for i, g, a in zip(idx, gain, apparent, strict=True)
              if a >= min_flux_jy and np.all(g > 0)]
    if not chosen:
        return None
    comps: list[Component] = []
    for source, g, _ in chosen:
        for leaf in _leaves(source):
            try:
                comps.append(_component(leaf, f"field_{len(comps)}", freqs, ref, g))
            except LwaError as err:
                raise LwaError(f"field source '{source.name}': {err}") from None
    bright, _, peak = max(chosen, key=lambda c: c[2])
    log.info("field model: %d catalogue source(s) >= %g Jy apparent (brightest %s, %.1f Jy), kept fixed",
             len(chosen), min_flux_jy, bright.name, peak)
    b_az, b_el = _altaz(bright.ra_deg, bright.dec_deg, time, location)
    return Direction("field", "field", bright.ra_deg, bright.dec_deg, b_az, b_el, tuple(comps), kind="field")


def rfi_directions(
    sources: Sequence[RfiSource],
    *,
    time: Time,
    location: EarthLocation,
    freqs_hz: np.ndarray,
) -> tuple[list[Direction], list[Skipped]]:
    """Directions to peel for RFI sources with flux in the band of `freqs_hz`.

    No elevation cut: terrestrial emitters sit near the horizon and are received below it too.
    A source whose tabulated spectrum has no flux in the band is skipped (INFO line).
    """
    freqs = np.asarray(freqs_hz, dtype=float)
    ref = float(np.mean(freqs))
    taken: set[str] = set()
    keep: list[Direction] = []
    skipped: list[Skipped] = []
    for source in sources:
        az, el, dist = rfi_azel(source, location)
        flux = np.asarray(source.flux_at(freqs), dtype=float)
        good = flux > 0
        if not np.any(good):
            lo, hi = source.freqs_hz[0] / 1e6, source.freqs_hz[-1] / 1e6
            reason = (
                f"no flux in {freqs.min() / 1e6:.2f}-{freqs.max() / 1e6:.2f} MHz "
                f"(spectrum covers {lo:.2f}-{hi:.2f} MHz)"
            )
            log.info("skipping RFI source %s: %s", source.name, reason)
            skipped.append(Skipped(source.name, reason, az, el))
            continue
        if not np.all(good):
            log.warning(
                "RFI source %s has flux in %d of %d channels; the model extrapolates its spectrum",
                source.name, int(good.sum()), len(freqs),
            )
        icrs = altaz_to_icrs(az, el, time=time, location=location)
        ra, dec = float(icrs.ra.deg), float(icrs.dec.deg)
        patch = patch_name(source.name, taken)
        s0, terms = fit_log_spectrum(freqs[good], flux[good], ref)
        stokes = {key: float(source.flux_at(ref, stokes=key)) for key in ("Q", "U", "V")}
        comp = Component(patch, ra, dec, s0, ref, terms, stokes["Q"], stokes["U"], stokes["V"])
        log.info(
            "RFI source %s: az %.2f el %.2f deg, %.1f km away -> RA %.4f Dec %.4f deg at %s",
            source.name, az, el, dist / 1e3, ra, dec, time.isot,
        )
        keep.append(Direction(source.name, patch, ra, dec, az, el, (comp,), kind="rfi"))
    return keep, skipped


# --------------------------------------------------------------------------- writer


def _ra_text(ra_deg: float) -> str:
    hours = (ra_deg % 360.0) / 15.0
    h = int(hours)
    m = int((hours - h) * 60)
    s = (hours - h - m / 60) * 3600
    if s >= 59.9999995:  # rounding would print 60
        s, m = 0.0, m + 1
        if m == 60:
            m, h = 0, (h + 1) % 24
    return f"{h:02d}:{m:02d}:{s:010.7f}"


def _dec_text(dec_deg: float) -> str:
    sign = "-" if dec_deg < 0 else "+"
    a = abs(dec_deg)
    d = int(a)
    m = int((a - d) * 60)
    s = (a - d - m / 60) * 3600
    if s >= 59.999995:
        s, m = 0.0, m + 1
        if m == 60:
            m, d = 0, d + 1
    return f"{sign}{d:02d}.{m:02d}.{s:09.6f}"


_FORMAT = (
    "FORMAT = Name, Type, Patch, Ra, Dec, I, Q, U, V, MajorAxis, MinorAxis, Orientation, "
    "OrientationIsAbsolute, ReferenceFrequency, SpectralIndex='[]', LogarithmicSI='true'"
)


def skymodel_text(directions: Sequence[Direction], *, comment: str = "") -> str:
    """makesourcedb text: one patch per direction, one line per component."""
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += [_FORMAT, ""]
    for d in directions:
        lines.append(f"# {d.name} ({d.kind}): az {d.az_deg:.3f} el {d.el_deg:.3f} deg")
        lines.append(f", , {d.patch}, {_ra_text(d.ra_deg)}, {_dec_text(d.dec_deg)}")
        for c in d.components:
            kind = "GAUSSIAN" if c.is_gaussian else "POINT"
            terms = "[" + ", ".join(f"{t:.10g}" for t in c.spectral_terms) + "]"
            lines.append(
                f"{c.name}, {kind}, {d.patch}, {_ra_text(c.ra_deg)}, {_dec_text(c.dec_deg)}, "
                f"{c.i_jy:.10g}, {c.q_jy:.10g}, {c.u_jy:.10g}, {c.v_jy:.10g}, "
                f"{c.major_arcsec:.6g}, {c.minor_arcsec:.6g}, {c.pa_deg:.6g}, true, "
                f"{c.ref_freq_hz:.10g}, {terms}, {'true' if c.log_si else 'false'}"
            )
        lines.append("")
    return "\n".join(lines)


def write_skymodel(path: str | Path, directions: Sequence[Direction], *, comment: str = "") -> Path:
    """Write the DP3 sky model (`.skymodel`, read by DP3 without makesourcedb) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(skymodel_text(directions, comment=comment))
    return path
