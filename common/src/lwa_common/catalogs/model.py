"""The source records of every catalogue reader and their spectral laws.

The log-polynomial law (TTCal, makesourcedb, Scaife & Heald 2012)::

    log10 S(nu) = log10 S0 + sum_n c[n] * log10(nu / nu0) ** (n + 1)

The ordinary polynomial (makesourcedb / wsclean with `LogarithmicSI = false`)::

    S(nu) = S0 + sum_n c[n] * (nu / nu0 - 1) ** (n + 1)

Q, U and V follow the same spectral factor as I (as in TTCal). A source made of several components
(TTCal "components", or a makesourcedb patch with `group_patches=True`) is one `CatalogSource` whose
`components` hold the parts; its `flux_at` is the sum of theirs. RFI sources of a TTCal file sit at a
place on the ground and carry a tabulated spectrum (`RfiSource`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord

from lwa_common.errors import LwaError

__all__ = ["CatalogSource", "RfiSource", "log_polynomial_flux", "linear_polynomial_flux", "source_coords",
           "fluxes_at"]

STOKES = ("I", "Q", "U", "V")


def _evaluate(result: np.ndarray) -> float | np.ndarray:
    return float(result) if result.ndim == 0 else result


def _check_freq(freq_hz: float | np.ndarray) -> np.ndarray:
    freq = np.asarray(freq_hz, dtype=float)
    if np.any(freq <= 0):
        raise LwaError(f"frequency must be positive, got {freq_hz!r} Hz")
    return freq


def log_polynomial_flux(
    s0: float, ref_hz: float, coeffs: Sequence[float], freq_hz: float | np.ndarray
) -> float | np.ndarray:
    """S0 * 10 ** sum_n coeffs[n] * log10(freq / ref) ** (n + 1); a float for a scalar frequency.

    >>> round(log_polynomial_flux(64.768, 150e6, [-0.387, -0.420, 0.181], 150e6), 3)
    64.768
    """
    freq = _check_freq(freq_hz)
    if len(coeffs) == 0:
        return _evaluate(np.full(freq.shape, float(s0)))
    x = np.log10(freq / ref_hz)
    exponent = np.zeros_like(x)
    for n, c in enumerate(coeffs):
        exponent = exponent + c * x ** (n + 1)
    return _evaluate(s0 * 10.0**exponent)


def linear_polynomial_flux(
    s0: float, ref_hz: float, coeffs: Sequence[float], freq_hz: float | np.ndarray
) -> float | np.ndarray:
    """S0 + sum_n coeffs[n] * (freq / ref - 1) ** (n + 1) (makesourcedb `LogarithmicSI = false`)."""
    freq = _check_freq(freq_hz)
    result = np.full(freq.shape, float(s0))
    if len(coeffs):
        r = freq / ref_hz - 1.0
        for n, c in enumerate(coeffs):
            result = result + c * r ** (n + 1)
    return _evaluate(result)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class CatalogSource:
    """One source of a sky model or reference catalogue (ICRS, fluxes in Jy at `ref_freq_hz`).

    `flux_jy` etc. are Stokes I/Q/U/V at `ref_freq_hz`. Axes are Gaussian FWHM in arcsec (0 for a
    point source), `pa_deg` east of north. `spectral_law` is "log" (log-polynomial) or "linear"
    (ordinary polynomial in nu/nu0 - 1). A composite source (`shape == "multi"`) sums its
    `components`; its position is their flux-weighted mean (or the makesourcedb patch position).
    TTCal's Sun / Moon / Jupiter have no fixed position: `ra_deg` and `dec_deg` are NaN.
    """

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    ref_freq_hz: float
    spectral_index: tuple[float, ...] = ()
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0
    q_jy: float = 0.0
    u_jy: float = 0.0
    v_jy: float = 0.0
    shape: str = "point"  # point / gaussian / multi
    spectral_law: str = "log"  # log / linear
    flux_err_jy: float = math.nan
    patch: str = ""
    catalog: str = ""  # ttcal / makesourcedb / vlssr / csv
    components: tuple[CatalogSource, ...] = ()

    @property
    def is_composite(self) -> bool:
        return bool(self.components)

    @property
    def has_position(self) -> bool:
        return math.isfinite(self.ra_deg) and math.isfinite(self.dec_deg)

    @property
    def coord(self) -> SkyCoord:
        if not self.has_position:
            raise LwaError(f"source '{self.name}' has no fixed position (it comes from the ephemeris)")
        return SkyCoord(self.ra_deg * u.deg, self.dec_deg * u.deg, frame="icrs")

    @property
    def stokes(self) -> dict[str, float]:
        """Stokes I, Q, U, V at `ref_freq_hz`."""
        return {"I": self.flux_jy, "Q": self.q_jy, "U": self.u_jy, "V": self.v_jy}

    def flux_at(self, freq_hz: float | np.ndarray, *, stokes: str = "I") -> float | np.ndarray:
        """Flux density (Jy) at `freq_hz` by this format's spectral law; arrays broadcast."""
        key = stokes.upper()
        if key not in STOKES:
            raise LwaError(f"unknown Stokes parameter '{stokes}' (expected one of I, Q, U, V)")
        if self.components:
            total: float | np.ndarray = 0.0
            for component in self.components:
                total = total + component.flux_at(freq_hz, stokes=key)
            return total
        s0 = self.stokes[key]
        law = log_polynomial_flux if self.spectral_law == "log" else linear_polynomial_flux
        return law(s0, self.ref_freq_hz, self.spectral_index, freq_hz)


@dataclass(frozen=True)
class RfiSource:
    """A terrestrial RFI source of a TTCal file: a place and a tabulated spectrum.

    `sys` is "WGS84" (`height_m` above the ellipsoid) or "ITRF" (`height_m` is the distance from
    the Earth's centre), as in TTCal. `freqs_hz` is strictly increasing; the Stokes tuples match it.
    """

    name: str
    lat_deg: float
    lon_deg: float
    height_m: float
    freqs_hz: tuple[float, ...]
    i_jy: tuple[float, ...]
    q_jy: tuple[float, ...] = ()
    u_jy: tuple[float, ...] = ()
    v_jy: tuple[float, ...] = ()
    sys: str = "WGS84"

    @property
    def location(self) -> EarthLocation:
        if self.sys == "ITRF":
            lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
            r = self.height_m
            return EarthLocation.from_geocentric(
                r * math.cos(lat) * math.cos(lon),
                r * math.cos(lat) * math.sin(lon),
                r * math.sin(lat),
                unit=u.m,
            )
        return EarthLocation.from_geodetic(self.lon_deg * u.deg, self.lat_deg * u.deg, self.height_m * u.m)

    def flux_at(self, freq_hz: float | np.ndarray, *, stokes: str = "I") -> float | np.ndarray:
        """Linear interpolation of the tabulated spectrum; 0 Jy outside the tabulated band."""
        key = stokes.upper()
        if key not in STOKES:
            raise LwaError(f"unknown Stokes parameter '{stokes}' (expected one of I, Q, U, V)")
        values = {"I": self.i_jy, "Q": self.q_jy, "U": self.u_jy, "V": self.v_jy}[key]
        freq = _check_freq(freq_hz)
        if not values:
            return _evaluate(np.zeros(freq.shape))
        return _evaluate(np.interp(freq, self.freqs_hz, values, left=0.0, right=0.0))


def composite_source(
    name: str,
    components: Sequence[CatalogSource],
    *,
    catalog: str,
    patch: str = "",
    position: tuple[float, float] | None = None,
) -> CatalogSource:
    """One source made of `components`: fluxes summed at the first component's frequency."""
    ref = components[0].ref_freq_hz
    if math.isfinite(ref) and ref > 0:
        stokes = {k: sum(float(c.flux_at(ref, stokes=k)) for c in components) for k in STOKES}
    else:
        stokes = {k: sum(c.stokes[k] for c in components) for k in STOKES}
    if position is None:
        placed = [c for c in components if c.has_position]
        if placed:
            ra = np.radians([c.ra_deg for c in placed])
            dec = np.radians([c.dec_deg for c in placed])
            weights = np.abs([c.flux_jy for c in placed])
            if not np.any(weights > 0):
                weights = np.ones(len(placed))
            x = np.sum(weights * np.cos(dec) * np.cos(ra))
            y = np.sum(weights * np.cos(dec) * np.sin(ra))
            z = np.sum(weights * np.sin(dec))
            position = (
                float(np.degrees(np.arctan2(y, x)) % 360.0),
                float(np.degrees(np.arctan2(z, np.hypot(x, y)))),
            )
        else:
            position = (math.nan, math.nan)
    return CatalogSource(
        name=name,
        ra_deg=position[0],
        dec_deg=position[1],
        flux_jy=stokes["I"],
        ref_freq_hz=ref,
        q_jy=stokes["Q"],
        u_jy=stokes["U"],
        v_jy=stokes["V"],
        shape="multi",
        patch=patch,
        catalog=catalog,
        components=tuple(components),
    )


def source_coords(sources: Sequence[CatalogSource]) -> SkyCoord:
    """All positions as one (vector) SkyCoord, ICRS."""
    ra = np.array([s.ra_deg for s in sources], dtype=float)
    dec = np.array([s.dec_deg for s in sources], dtype=float)
    return SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")


def fluxes_at(sources: Sequence[CatalogSource], freq_hz: float, *, stokes: str = "I") -> np.ndarray:
    """Flux density of every source at one frequency (Jy)."""
    return np.array([float(s.flux_at(freq_hz, stokes=stokes)) for s in sources], dtype=float)


# --------------------------------------------------------------------------- shared helpers of the readers


def read_catalog_text(path: Path, what: str, *, binary_ok: bool = False) -> str | None:
    """The file as text; a binary file is an error, or None with `binary_ok` (a FITS table ...)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LwaError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise LwaError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError as err:
        if binary_ok:
            return None
        raise LwaError(f"{what} {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise LwaError(f"cannot read {what} {path}: {err.strerror}") from None


def checked_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LwaError(f"'{what}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LwaError(f"'{what}' must be finite, got {value!r}")
    return float(value)


def float_of_text(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LwaError(f"{what} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise LwaError(f"{what} '{text}' is not finite")
    return value


def check_spectrum(ref_hz: float, coeffs: Sequence[float]) -> None:
    if coeffs and not (math.isfinite(ref_hz) and ref_hz > 0):
        raise LwaError(f"spectral index {list(coeffs)} needs a positive reference frequency, got {ref_hz}")


def spectral_coeffs(spectral_index: float | Sequence[float] | None) -> tuple[float, ...]:
    if spectral_index is None:
        return ()
    if isinstance(spectral_index, (int, float)):
        return (float(spectral_index),)
    return tuple(float(c) for c in spectral_index)
