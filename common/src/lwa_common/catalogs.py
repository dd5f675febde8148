"""Sky models and reference catalogues: one frozen record per source, with its spectral law.

| reader | format | spectrum `flux_at(freq_hz)` |
|---|---|---|
| `read_ttcal_sources` | TTCal sources.json (A-team models for peeling; RFI sources) | log-polynomial |
| `read_makesourcedb` | makesourcedb / BBS / wsclean sky model text | log-polynomial, or ordinary polynomial when `LogarithmicSI` is false |
| `read_vlssr` | VLSSr `FullVLSSCatalog.text` (73.8 MHz) | flat, or one spectral index you give |
| `read_reference_csv` | any CSV with ra / dec / flux columns | flat, or an `alpha` column |
| `read_reference_catalog` | one of the three above (or TTCal JSON), chosen by content | |

The log-polynomial law (TTCal, makesourcedb, Scaife & Heald 2012)::

    log10 S(nu) = log10 S0 + sum_n c[n] * log10(nu / nu0) ** (n + 1)

The ordinary polynomial (makesourcedb / wsclean with `LogarithmicSI = false`)::

    S(nu) = S0 + sum_n c[n] * (nu / nu0 - 1) ** (n + 1)

Q, U and V follow the same spectral factor as I (as in TTCal). A source made of several components
(TTCal "components", or a makesourcedb patch with `group_patches=True`) is one `CatalogSource` whose
`components` hold the parts; its `flux_at` is the sum of theirs.

RFI sources of a TTCal file sit at a place on the ground (WGS84 or ITRF) and carry a tabulated
spectrum; they are `RfiSource` records whose `flux_at` interpolates linearly in frequency and is 0
outside the tabulated band.

Angles: `parse_ra_deg` / `parse_dec_deg` read degrees ("83.63", "83.63deg") or sexagesimal
("05h34m31.9s", "05:34:31.9", "05 34 31.9" are hours for RA; "+22d00m52s", "+22:00:52",
"+22 00 52" are degrees for Dec; makesourcedb's dotted "48.13.00.061" is always degrees).

Bad input raises `LwaError` naming the file and the line (text formats) or the source (JSON).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation, SkyCoord

from lwa_common.errors import LwaError

__all__ = [
    "CatalogSource",
    "RfiSource",
    "VLSSR_FREQ_HZ",
    "log_polynomial_flux",
    "linear_polynomial_flux",
    "parse_ra_deg",
    "parse_dec_deg",
    "read_ttcal_sources",
    "read_makesourcedb",
    "read_vlssr",
    "read_reference_csv",
    "read_reference_catalog",
    "source_coords",
    "fluxes_at",
]

log = logging.getLogger(__name__)

VLSSR_FREQ_HZ = 73.8e6
_STOKES = ("I", "Q", "U", "V")
_EPHEMERIS_NAMES = ("Sun", "Moon", "Jupiter")  # TTCal places these itself at the observing time


# --------------------------------------------------------------------------- spectral laws


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
        if key not in _STOKES:
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
        if key not in _STOKES:
            raise LwaError(f"unknown Stokes parameter '{stokes}' (expected one of I, Q, U, V)")
        values = {"I": self.i_jy, "Q": self.q_jy, "U": self.u_jy, "V": self.v_jy}[key]
        freq = _check_freq(freq_hz)
        if not values:
            return _evaluate(np.zeros(freq.shape))
        return _evaluate(np.interp(freq, self.freqs_hz, values, left=0.0, right=0.0))


def _composite(
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
        stokes = {k: sum(float(c.flux_at(ref, stokes=k)) for c in components) for k in _STOKES}
    else:
        stokes = {k: sum(c.stokes[k] for c in components) for k in _STOKES}
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


# --------------------------------------------------------------------------- angles

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_RE = re.compile(rf"([+-]?{_NUMBER}(?:[eE][+-]?\d+)?)\s*(deg|rad)?")
_LETTER_RE = re.compile(rf"([+-]?)({_NUMBER})\s*([hd])\s*(?:({_NUMBER})\s*m\s*)?(?:({_NUMBER})\s*s?)?")
_SEPARATED_RE = re.compile(rf"([+-]?)(\d+)(?:\s*:\s*|\s+)({_NUMBER})(?:(?:\s*:\s*|\s+)({_NUMBER}))?")
_DOTTED_RE = re.compile(rf"([+-]?)(\d+)\.(\d+)\.({_NUMBER})")


def _sexagesimal(sign: str, whole: str, minutes: str | None, seconds: str | None, text: str) -> float:
    if minutes is not None and "." in whole:
        raise LwaError(f"cannot parse angle '{text}': a fractional first part cannot have minutes")
    if seconds is not None and minutes is not None and "." in minutes:
        raise LwaError(f"cannot parse angle '{text}': fractional minutes cannot have seconds")
    m = float(minutes) if minutes is not None else 0.0
    s = float(seconds) if seconds is not None else 0.0
    if m >= 60.0 or s >= 60.0:
        raise LwaError(f"cannot parse angle '{text}': minutes and seconds must be below 60")
    value = float(whole) + m / 60.0 + s / 3600.0
    return -value if sign == "-" else value


def _parse_angle(value: Any, *, hours_default: bool, what: str) -> float:
    """Degrees from a number or a text; `hours_default`: colon/space sexagesimal are hours."""
    if isinstance(value, bool):
        raise LwaError(f"cannot parse {what} {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise LwaError(f"cannot parse {what} {value!r}: not a finite number")
        return float(value)
    text = str(value).strip().strip("'\"").strip()
    if not text:
        raise LwaError(f"{what} is empty")
    norm = text.lower().replace("\u00b0", "d").replace("\u2032", "m").replace("'", "m").replace("\u2033", "s")
    norm = norm.replace('"', "s").replace("\u2212", "-")
    match = _PLAIN_RE.fullmatch(norm)
    if match:
        number = float(match.group(1))
        return math.degrees(number) if match.group(2) == "rad" else number
    match = _DOTTED_RE.fullmatch(norm)
    if match:
        return _sexagesimal(match.group(1), match.group(2), match.group(3), match.group(4), text)
    match = _LETTER_RE.fullmatch(norm)
    if match:
        sign, whole, unit, minutes, seconds = match.groups()
        degrees = _sexagesimal(sign, whole, minutes, seconds, text)
        return degrees * 15.0 if unit == "h" else degrees
    match = _SEPARATED_RE.fullmatch(norm)
    if match:
        degrees = _sexagesimal(match.group(1), match.group(2), match.group(3), match.group(4), text)
        return degrees * 15.0 if hours_default else degrees
    raise LwaError(
        f"cannot parse {what} '{text}' (expected degrees like 83.63 or sexagesimal like "
        f"{'05h34m31.9s / 05:34:31.9' if hours_default else '+22d00m52s / +22:00:52'})"
    )


def parse_ra_deg(value: Any) -> float:
    """Right ascension in degrees, in [0, 360): numbers are degrees, h:m:s and 'h m s' are hours.

    A negative value (wsclean writes RA -04:00:29.9) wraps round. Raises `LwaError`.

    >>> round(parse_ra_deg("05h34m31.94s"), 6), parse_ra_deg("83.5")
    (83.633083, 83.5)
    """
    degrees = _parse_angle(value, hours_default=True, what="RA")
    if not -360.0 <= degrees <= 360.0:
        raise LwaError(f"RA {value!r} is outside [0h, 24h) / [0, 360) deg")
    return degrees % 360.0


def parse_dec_deg(value: Any) -> float:
    """Declination in degrees: numbers are degrees, d:m:s / 'd m s' / d.m.s are degrees.

    >>> round(parse_dec_deg("-00:30:00"), 6), round(parse_dec_deg("+48.13.00.061"), 6)
    (-0.5, 48.216684)
    """
    degrees = _parse_angle(value, hours_default=False, what="Dec")
    if not -90.0 <= degrees <= 90.0:
        raise LwaError(f"Dec {value!r} is outside [-90, 90] deg")
    return degrees


# --------------------------------------------------------------------------- shared helpers


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LwaError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise LwaError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError as err:
        raise LwaError(f"{what} {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise LwaError(f"cannot read {what} {path}: {err.strerror}") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LwaError(f"'{what}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LwaError(f"'{what}' must be finite, got {value!r}")
    return float(value)


def _float_text(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LwaError(f"{what} '{text}' is not a number") from None
    if not math.isfinite(value):
        raise LwaError(f"{what} '{text}' is not finite")
    return value


def _check_spectrum(ref_hz: float, coeffs: Sequence[float]) -> None:
    if coeffs and not (math.isfinite(ref_hz) and ref_hz > 0):
        raise LwaError(f"spectral index {list(coeffs)} needs a positive reference frequency, got {ref_hz}")


# --------------------------------------------------------------------------- TTCal JSON


def _ttcal_entry(entry: Any, label: str, catalog: str) -> CatalogSource | RfiSource:
    if not isinstance(entry, dict):
        raise LwaError(f"{label}: expected a JSON object, got {type(entry).__name__}")
    name = str(entry.get("name", ""))
    try:
        if "components" in entry:
            parts = entry["components"]
            if not isinstance(parts, list) or not parts:
                raise LwaError("'components' must be a non-empty list")
            components = []
            for k, part in enumerate(parts):
                part_name = part.get("name", "") if isinstance(part, dict) else ""
                sub = f"{label} component {k}" + (f" ('{part_name}')" if part_name else "")
                component = _ttcal_entry(part, sub, catalog)
                if isinstance(component, RfiSource):
                    raise LwaError(f"{sub}: an RFI source cannot be a component")
                components.append(component)
            return _composite(name, components, catalog=catalog)
        if "rfi-frequencies" in entry or "rfi-I" in entry:
            return _ttcal_rfi(entry, name)
        return _ttcal_sky(entry, name, catalog)
    except LwaError as err:
        if str(err).startswith(label):
            raise
        raise LwaError(f"{label}: {err}") from None


def _ttcal_sky(entry: dict[str, Any], name: str, catalog: str) -> CatalogSource:
    for key in ("I", "freq", "index"):
        if key not in entry:
            raise LwaError(f"missing key '{key}'")
    if "ra" in entry and "dec" in entry:
        ra, dec = parse_ra_deg(entry["ra"]), parse_dec_deg(entry["dec"])
    elif name in _EPHEMERIS_NAMES:
        ra = dec = math.nan
    else:
        raise LwaError(f"missing key '{'ra' if 'ra' not in entry else 'dec'}'")
    index = entry["index"]
    if isinstance(index, (int, float)) and not isinstance(index, bool):
        index = [index]
    if not isinstance(index, list):
        raise LwaError(f"'index' must be a list of numbers, got {index!r}")
    coeffs = tuple(_number(c, "index") for c in index)
    freq = _number(entry["freq"], "freq")
    if freq <= 0:
        raise LwaError(f"'freq' must be positive, got {freq}")
    gauss_keys = ("major-fwhm", "minor-fwhm", "position-angle")
    present = [k for k in gauss_keys if k in entry]
    if present and len(present) != 3:
        missing = [k for k in gauss_keys if k not in entry]
        raise LwaError(f"a Gaussian needs {', '.join(gauss_keys)}; missing {', '.join(missing)}")
    gaussian = len(present) == 3
    return CatalogSource(
        name=name,
        ra_deg=ra,
        dec_deg=dec,
        flux_jy=_number(entry["I"], "I"),
        ref_freq_hz=freq,
        spectral_index=coeffs,
        major_arcsec=_number(entry["major-fwhm"], "major-fwhm") if gaussian else 0.0,
        minor_arcsec=_number(entry["minor-fwhm"], "minor-fwhm") if gaussian else 0.0,
        pa_deg=_number(entry["position-angle"], "position-angle") if gaussian else 0.0,
        q_jy=_number(entry.get("Q", 0.0), "Q"),
        u_jy=_number(entry.get("U", 0.0), "U"),
        v_jy=_number(entry.get("V", 0.0), "V"),
        shape="gaussian" if gaussian else "point",
        catalog=catalog,
    )


def _increasing_subsequence(values: Sequence[float]) -> list[int]:
    """Indices of a longest strictly increasing subsequence (drops the fewest out-of-order points)."""
    tails: list[int] = []  # index of the smallest tail of an increasing run of each length
    previous = [-1] * len(values)
    for i, v in enumerate(values):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if values[tails[mid]] < v:
                lo = mid + 1
            else:
                hi = mid
        previous[i] = tails[lo - 1] if lo else -1
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    keep = []
    i = tails[-1] if tails else -1
    while i >= 0:
        keep.append(i)
        i = previous[i]
    return keep[::-1]


def _ttcal_rfi(entry: dict[str, Any], name: str) -> RfiSource:
    for key in ("rfi-frequencies", "rfi-I", "lat", "long", "el"):
        if key not in entry:
            raise LwaError(f"RFI source: missing key '{key}'")
    system = str(entry.get("sys", "WGS84")).upper()
    if system not in ("WGS84", "ITRF"):
        raise LwaError(f"'sys' must be WGS84 or ITRF, got {entry['sys']!r}")
    freqs = entry["rfi-frequencies"]
    if not isinstance(freqs, list) or not freqs:
        raise LwaError("'rfi-frequencies' must be a non-empty list")
    freqs = [_number(f, "rfi-frequencies") for f in freqs]
    stokes: dict[str, list[float]] = {}
    for key in _STOKES:
        values = entry.get(f"rfi-{key}")
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != len(freqs):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise LwaError(
                f"'rfi-{key}' must be a list as long as 'rfi-frequencies' ({len(freqs)}), got {got}"
            )
        stokes[key] = [_number(v, f"rfi-{key}") for v in values]
    keep = _increasing_subsequence(freqs)
    if len(keep) < len(freqs):
        dropped = sorted(set(range(len(freqs))) - set(keep))
        shown = ", ".join(f"#{i} ({freqs[i]:g} Hz)" for i in dropped[:5])
        log.warning("RFI source '%s': ignoring %d out-of-order frequencies: %s", name, len(dropped), shown)
    lat = _number(entry["lat"], "lat")
    if not -90.0 <= lat <= 90.0:
        raise LwaError(f"'lat' must be within [-90, 90], got {lat}")
    return RfiSource(
        name=name,
        lat_deg=lat,
        lon_deg=_number(entry["long"], "long"),
        height_m=_number(entry["el"], "el"),
        freqs_hz=tuple(freqs[i] for i in keep),
        i_jy=tuple(stokes["I"][i] for i in keep),
        q_jy=tuple(stokes["Q"][i] for i in keep) if "Q" in stokes else (),
        u_jy=tuple(stokes["U"][i] for i in keep) if "U" in stokes else (),
        v_jy=tuple(stokes["V"][i] for i in keep) if "V" in stokes else (),
        sys=system,
    )


def _parse_ttcal(text: str, path: Path) -> list[CatalogSource | RfiSource]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LwaError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise LwaError(f"{path}: expected a JSON list of sources, got a {type(data).__name__}")
    sources = []
    for index, entry in enumerate(data):
        name = entry.get("name", "") if isinstance(entry, dict) else ""
        label = f"{path}: source {index}" + (f" ('{name}')" if name else "")
        sources.append(_ttcal_entry(entry, label, "ttcal"))
    return sources


def read_ttcal_sources(path: str | Path) -> list[CatalogSource | RfiSource]:
    """Sources of a TTCal sources.json: `CatalogSource` for the sky, `RfiSource` for RFI.

    Keys: name, ra, dec (sexagesimal strings, e.g. "19h59m29.990s" "+40d43m57.53s"), I, Q, U, V
    (Jy) at freq (Hz), index (log-polynomial coefficients); a Gaussian adds major-fwhm, minor-fwhm
    (arcsec) and position-angle (deg); "components" groups several under one name. RFI sources
    give sys, lat, long, el and rfi-frequencies with rfi-I (rfi-Q/U/V optional); out-of-order
    frequencies are dropped with a warning.
    """
    path = Path(path)
    sources = _parse_ttcal(_read_text(path, "TTCal sources file"), path)
    n_rfi = sum(isinstance(s, RfiSource) for s in sources)
    log.info("read %d sky and %d RFI sources from %s", len(sources) - n_rfi, n_rfi, path)
    return sources


# --------------------------------------------------------------------------- makesourcedb

_FORMAT_RE = re.compile(r"#?\s*(?:\((?P<paren>.*)\)\s*=\s*format|format\s*=\s*(?P<plain>.*))", re.IGNORECASE)
_MSDB_FIELDS = {
    "name": "name",
    "type": "type",
    "patch": "patch",
    "ra": "ra",
    "dec": "dec",
    "i": "i",
    "q": "q",
    "u": "u",
    "v": "v",
    "referencefrequency": "ref",
    "spectralindex": "si",
    "logarithmicsi": "logsi",
    "majoraxis": "major",
    "minoraxis": "minor",
    "orientation": "pa",
}


def _split_fields(line: str) -> list[str]:
    """Split on commas outside [...] and quotes."""
    fields, current, depth, quote = [], [], 0, ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
            current.append(char)
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "[":
            depth += 1
            current.append(char)
        elif char == "]":
            depth = max(depth - 1, 0)
            current.append(char)
        elif char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].strip()
    return text


def _format_columns(spec: str) -> tuple[list[str], dict[str, str]]:
    columns, defaults = [], {}
    for item in _split_fields(spec):
        key, _, default = item.partition("=")
        key = key.strip().lower()
        if not key:
            raise LwaError("empty column name in the format line")
        columns.append(_MSDB_FIELDS.get(key, key))
        if default.strip():
            defaults[columns[-1]] = _unquote(default)
    for needed, label in (("ra", "Ra"), ("dec", "Dec"), ("i", "I")):
        if needed not in columns:
            raise LwaError(f"format line has no '{label}' column")
    return columns, defaults


def _spectral_index(text: str) -> tuple[float, ...]:
    body = text.strip()
    if body.startswith("["):
        if not body.endswith("]"):
            raise LwaError(f"SpectralIndex '{text}' has no closing ']'")
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",")] if body.strip() else []
    return tuple(_float_text(p, "SpectralIndex value") for p in parts)


def _msdb_source(values: dict[str, str]) -> CatalogSource:
    name = values.get("name", "")
    shape = values.get("type", "point").lower() or "point"
    if shape not in ("point", "gaussian"):
        raise LwaError(f"source '{name}': Type '{values.get('type')}' is not supported (POINT, GAUSSIAN)")
    for needed, label in (("ra", "Ra"), ("dec", "Dec"), ("i", "I")):
        if not values.get(needed):
            raise LwaError(f"source '{name}': no {label} value")
    coeffs = _spectral_index(values.get("si", ""))
    ref = _float_text(values["ref"], "ReferenceFrequency") if values.get("ref") else math.nan
    _check_spectrum(ref, coeffs)
    logsi = values.get("logsi", "true").strip().lower() or "true"
    if logsi not in ("true", "false", "1", "0", "t", "f"):
        raise LwaError(f"LogarithmicSI '{values['logsi']}' is not true or false")
    optional = {
        key: _float_text(values[key], label) if values.get(key) else 0.0
        for key, label in (
            ("q", "Q"),
            ("u", "U"),
            ("v", "V"),
            ("major", "MajorAxis"),
            ("minor", "MinorAxis"),
            ("pa", "Orientation"),
        )
    }
    return CatalogSource(
        name=name,
        ra_deg=parse_ra_deg(values["ra"]),
        dec_deg=parse_dec_deg(values["dec"]),
        flux_jy=_float_text(values["i"], "I"),
        ref_freq_hz=ref,
        spectral_index=coeffs,
        major_arcsec=optional["major"] if shape == "gaussian" else 0.0,
        minor_arcsec=optional["minor"] if shape == "gaussian" else 0.0,
        pa_deg=optional["pa"] if shape == "gaussian" else 0.0,
        q_jy=optional["q"],
        u_jy=optional["u"],
        v_jy=optional["v"],
        shape=shape,
        spectral_law="log" if logsi in ("true", "1", "t") else "linear",
        patch=values.get("patch", ""),
        catalog="makesourcedb",
    )


def _parse_makesourcedb(text: str, path: Path, *, group_patches: bool) -> list[CatalogSource]:
    columns: list[str] | None = None
    defaults: dict[str, str] = {}
    sources: list[CatalogSource] = []
    patch_positions: dict[str, tuple[float, float]] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fmt = _FORMAT_RE.fullmatch(line)
        if fmt and columns is None:
            try:
                columns, defaults = _format_columns(fmt.group("paren") or fmt.group("plain") or "")
            except LwaError as err:
                raise LwaError(f"{path}:{lineno}: {err}") from None
            continue
        if line.startswith("#"):
            continue
        if columns is None:
            raise LwaError(
                f"{path}:{lineno}: data before the format line (expected 'FORMAT = Name, Type, Ra, Dec, I, ...')"
            )
        fields = _split_fields(line)
        if len(fields) > len(columns):
            raise LwaError(f"{path}:{lineno}: {len(fields)} fields but the format has {len(columns)} columns")
        values = dict(defaults)
        for column, value in zip(columns, fields, strict=False):
            value = _unquote(value)
            if value:
                values[column] = value
        given = dict(zip(columns, fields, strict=False))
        try:
            if not given.get("name") and not given.get("type"):  # a patch line: ", , Patch, ra, dec"
                patch = values.get("patch", "")
                if patch and given.get("ra") and given.get("dec"):
                    patch_positions[patch] = (parse_ra_deg(given["ra"]), parse_dec_deg(given["dec"]))
                continue
            if not given.get("name"):
                raise LwaError("a source needs a Name")
            sources.append(_msdb_source(values))
        except LwaError as err:
            raise LwaError(f"{path}:{lineno}: {err}") from None
    if columns is None:
        raise LwaError(f"{path}: no format line ('FORMAT = Name, Type, Ra, Dec, I, ...') found")
    if not group_patches:
        return sources
    grouped: list[CatalogSource] = []
    members: dict[str, list[CatalogSource]] = {}
    order: list[str | CatalogSource] = []
    for source in sources:
        if not source.patch:
            order.append(source)
            continue
        if source.patch not in members:
            members[source.patch] = []
            order.append(source.patch)
        members[source.patch].append(source)
    for item in order:
        if isinstance(item, CatalogSource):
            grouped.append(item)
        else:
            grouped.append(
                _composite(
                    item,
                    members[item],
                    catalog="makesourcedb",
                    patch=item,
                    position=patch_positions.get(item),
                )
            )
    return grouped


def read_makesourcedb(path: str | Path, *, group_patches: bool = False) -> list[CatalogSource]:
    """Sources of a makesourcedb / BBS / wsclean sky model.

    The format line (`FORMAT = Name, Type, Ra, Dec, I, ...` or `# (Name, ...) = format`) names
    the columns and may give defaults (`ReferenceFrequency='150.e6'`). Ra is hh:mm:ss (hours) or
    dd.mm.ss (degrees), Dec dd.mm.ss or dd:mm:ss, SpectralIndex `[c0, c1, ...]`, MajorAxis /
    MinorAxis FWHM in arcsec, Orientation in degrees. Patch lines (`, , Patch, ra, dec`) are not
    sources; `group_patches=True` returns one composite source per patch (at the patch position).
    """
    path = Path(path)
    sources = _parse_makesourcedb(_read_text(path, "sky model"), path, group_patches=group_patches)
    log.info("read %d sources from %s", len(sources), path)
    return sources


# --------------------------------------------------------------------------- VLSSr text

# Data line of FullVLSSCatalog.text (NVSS-style listing, one line of values and one of errors):
#   RA(2000) h m s   Dec(2000) d m s   Dist   Flux(Jy)   Major  Minor  PA   [flag]  Field  X_pix Y_pix
#   00 00 00.37 +25 05 19.9  0.05   0.71 <78.1 <76.3     0 C0000P24  ...
# the error line below it has the errors under the matching columns (RA s, Dec ", flux Jy, ...).
# Columns are read as whitespace-separated tokens; when two run together (a wide flux), the
# fixed character columns of the listing are used instead: distance [23:29], flux [29:36],
# major [36:42], minor [42:48], PA [48:54].
_FIXED_COLUMNS = ((23, 29), (29, 36), (36, 42), (42, 48), (48, 54))
_GLUED_RE = re.compile(r"<?[-+]?\d*\.\d+[-+]?\d*\.\d*\S*")
_VLSSR_RE = re.compile(
    r"\s*(\d{1,2})\s+(\d{1,2})\s+(\d{1,2}(?:\.\d*)?)\s+([+-]?\d{1,2})\s+(\d{1,2})\s+(\d{1,2}(?:\.\d*)?)(?=\s|$)(.*)"
)
_TOKEN_RE = re.compile(r"(<\s*)?([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?=\s|$)|\S+")
_NUMERIC_LINE_RE = re.compile(r"\s*(?:<?\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:\s+|$))+")


def _vlssr_line(match: re.Match[str], line: str) -> tuple[dict[str, Any], tuple[int, int]]:
    """The fields of one data line (for `CatalogSource`) and the columns its flux occupies."""
    hh, mm, ss, dd, dm, ds, rest = match.groups()
    if int(hh) >= 24 or int(mm) >= 60 or float(ss) >= 60 or int(dm) >= 60 or float(ds) >= 60:
        raise LwaError(f"position '{line[: match.start(7)].strip()}' is out of range")
    negative = dd.startswith("-")
    dec = abs(int(dd)) + int(dm) / 60.0 + float(ds) / 3600.0
    dec = -dec if negative else dec
    if dec > 90.0 or dec < -90.0:
        raise LwaError(f"Dec {dd} {dm} {ds} is outside [-90, 90]")
    ra = 15.0 * (int(hh) + int(mm) / 60.0 + float(ss) / 3600.0)
    offset = match.start(7)
    numbers: list[tuple[float, tuple[int, int]]] = []
    glued = False
    for token in _TOKEN_RE.finditer(rest):
        if token.group(2) is None:
            # the field name (the numbers after it are pixel positions), or two columns run together
            glued = _GLUED_RE.fullmatch(token.group(0)) is not None
            break
        numbers.append((float(token.group(2)), (offset + token.start(2), offset + token.end(2))))
    if glued:
        numbers = _fixed_columns(line)
    if not numbers:
        raise LwaError("no flux after the position (expected RA h m s, Dec d m s, [distance], flux, ...)")
    flux_index = 0 if len(numbers) == 1 else 1  # columns: distance, flux, major, minor, PA
    flux, flux_span = numbers[flux_index]
    shape_values = [n for n, _ in numbers[flux_index + 1 : flux_index + 4]]
    major, minor, pa = (shape_values + [0.0, 0.0, 0.0])[:3]
    sign = "-" if negative else "+"
    name = f"VLSSr J{int(hh):02d}{int(mm):02d}{int(float(ss)):02d}{sign}{abs(int(dd)):02d}{int(dm):02d}{int(float(ds)):02d}"
    fields = {
        "name": name,
        "ra_deg": ra,
        "dec_deg": dec,
        "flux_jy": flux,
        "major_arcsec": major,
        "minor_arcsec": minor,
        "pa_deg": pa,
        "shape": "gaussian" if major > 0 else "point",
        "catalog": "vlssr",
    }
    return fields, flux_span


def _fixed_columns(line: str) -> list[tuple[float, tuple[int, int]]]:
    numbers = []
    for start, end in _FIXED_COLUMNS:
        text = line[start:end].replace("<", "").strip()
        try:
            numbers.append((float(text), (start, end)))
        except ValueError:
            break
    if len(numbers) < 2:
        raise LwaError(f"cannot read distance and flux from columns 24-36 of '{line.strip()}'")
    return numbers


def _error_under(line: str, span: tuple[int, int]) -> float:
    """The number of an error line whose characters overlap the columns `span` of the data line."""
    for token in _TOKEN_RE.finditer(line):
        if token.group(2) is None:
            continue
        start, end = token.start(2), token.end(2)
        if start < span[1] and end > span[0]:
            return float(token.group(2))
    return math.nan


def _parse_vlssr(
    text: str, path: Path, *, ref_freq_hz: float, spectral_index: Sequence[float]
) -> list[CatalogSource]:
    coeffs = tuple(float(c) for c in spectral_index)
    _check_spectrum(ref_freq_hz, coeffs)
    sources: list[CatalogSource] = []
    pending: tuple[dict[str, Any], tuple[int, int]] | None = None
    skipped = 0

    def finish(error: float = math.nan) -> None:
        sources.append(
            CatalogSource(**pending[0], flux_err_jy=error, ref_freq_hz=ref_freq_hz, spectral_index=coeffs)
        )

    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _VLSSR_RE.match(line)
        if match:
            if pending is not None:
                finish()
            try:
                pending = _vlssr_line(match, line)
            except LwaError as err:
                raise LwaError(f"{path}:{lineno}: {err}") from None
            continue
        if pending is not None and _NUMERIC_LINE_RE.fullmatch(line):
            finish(_error_under(line, pending[1]))
        else:
            skipped += 1
            if pending is not None:
                finish()
        pending = None
    if pending is not None:
        finish()
    if not sources:
        raise LwaError(f"{path}: no VLSSr data lines (RA h m s  Dec d m s  distance  flux ...) found")
    log.debug("%s: skipped %d header/page lines", path, skipped)
    return sources


def read_vlssr(
    path: str | Path,
    *,
    ref_freq_hz: float = VLSSR_FREQ_HZ,
    spectral_index: float | Sequence[float] | None = None,
) -> list[CatalogSource]:
    """Sources of the VLSSr catalogue text (`FullVLSSCatalog.text`, Lane et al. 2014).

    Data lines: RA h m s, Dec d m s, distance from the pointing, integrated flux (Jy), then
    major, minor (arcsec, '<' upper limits kept as the value), PA (deg), field and pixel
    position; the line below carries the errors (the flux error becomes `flux_err_jy`). Page and
    column headers are skipped; a line with a position but no flux is an error. A line with
    only one number after the position takes it as the flux. Fluxes are at `ref_freq_hz`;
    `spectral_index` (e.g. -0.8) gives `flux_at` a power law, else it is flat.
    """
    path = Path(path)
    sources = _parse_vlssr(
        _read_text(path, "VLSSr catalogue"),
        path,
        ref_freq_hz=ref_freq_hz,
        spectral_index=_coeffs(spectral_index),
    )
    log.info("read %d VLSSr sources from %s", len(sources), path)
    return sources


# --------------------------------------------------------------------------- reference CSV

_CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "ra": ("ra", "ra_deg", "raj2000", "ra_j2000"),
    "dec": ("dec", "dec_deg", "dej2000", "decj2000", "dec_j2000"),
    "flux": ("flux_jy", "flux", "s", "total_flux", "int_flux", "peak", "peak_flux"),
    "flux_mjy": ("flux_mjy",),
    "name": ("name", "source", "id", "common_name"),
    "major": ("major_arcsec", "major", "maj"),
    "minor": ("minor_arcsec", "minor", "min"),
    "pa": ("pa_deg", "pa"),
    "alpha": ("alpha", "spectral_index", "si"),
    "freq_hz": ("ref_freq_hz", "freq_hz"),
    "freq_mhz": ("ref_freq_mhz", "freq_mhz"),
}


def _find_columns(header: Sequence[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for key, aliases in _CSV_COLUMNS.items():
        for alias in aliases:
            if alias in lowered:
                found[key] = lowered.index(alias)
                break
    return found


def _parse_reference_csv(
    text: str, path: Path, *, ref_freq_hz: float | None, spectral_index: Sequence[float]
) -> list[CatalogSource]:
    lines = text.splitlines()
    rows = [
        (n, line)
        for n, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise LwaError(f"{path}: empty CSV (no header)")
    header_line, header_text = rows[0]
    header = next(csv.reader([header_text]))
    cols = _find_columns(header)
    missing = [k for k in ("ra", "dec") if k not in cols]
    if "flux" not in cols and "flux_mjy" not in cols:
        missing.append("flux")
    if missing:
        raise LwaError(
            f"{path}:{header_line}: CSV header has no {' / '.join(missing)} column "
            f"(RA: {', '.join(_CSV_COLUMNS['ra'])}; Dec: {', '.join(_CSV_COLUMNS['dec'])}; "
            f"flux: {', '.join(_CSV_COLUMNS['flux'])}, flux_mjy)"
        )
    sources = []
    for lineno, line in rows[1:]:
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            raise LwaError(f"{path}:{lineno}: {len(cells)} fields but the header has {len(header)}")

        def cell(key: str, cells: list[str] = cells) -> str:
            return cells[cols[key]].strip() if key in cols else ""

        try:
            ra, dec = parse_ra_deg(cell("ra")), parse_dec_deg(cell("dec"))
            if "flux" in cols:
                flux = _float_text(cell("flux"), f"flux ({header[cols['flux']].strip()})")
            else:
                flux = _float_text(cell("flux_mjy"), "flux_mjy") / 1000.0
            if cell("freq_hz"):
                ref = _float_text(cell("freq_hz"), "reference frequency")
            elif cell("freq_mhz"):
                ref = _float_text(cell("freq_mhz"), "reference frequency (MHz)") * 1e6
            else:
                ref = float(ref_freq_hz) if ref_freq_hz is not None else math.nan
            coeffs = (_float_text(cell("alpha"), "alpha"),) if cell("alpha") else tuple(spectral_index)
            _check_spectrum(ref, coeffs)
            major = _float_text(cell("major"), "major") if cell("major") else 0.0
            minor = _float_text(cell("minor"), "minor") if cell("minor") else 0.0
            pa = _float_text(cell("pa"), "pa") if cell("pa") else 0.0
        except LwaError as err:
            raise LwaError(f"{path}:{lineno}: {err}") from None
        sources.append(
            CatalogSource(
                name=cell("name") or f"{path.stem}:{lineno}",
                ra_deg=ra,
                dec_deg=dec,
                flux_jy=flux,
                ref_freq_hz=ref,
                spectral_index=coeffs,
                major_arcsec=major,
                minor_arcsec=minor,
                pa_deg=pa,
                shape="gaussian" if major > 0 else "point",
                catalog="csv",
            )
        )
    return sources


def read_reference_csv(
    path: str | Path,
    *,
    ref_freq_hz: float | None = None,
    spectral_index: float | Sequence[float] | None = None,
) -> list[CatalogSource]:
    """Sources of a CSV with RA, Dec and flux columns (names case-insensitive).

    RA: ra, ra_deg, raj2000; Dec: dec, dec_deg, dej2000; flux (Jy): flux_jy, flux, S, total_flux,
    int_flux, peak, peak_flux (or flux_mjy). Optional: name (name/source/id/common_name),
    major/minor (arcsec), pa (deg), alpha (spectral index), ref_freq_hz or freq_mhz. Positions in
    degrees or sexagesimal. `ref_freq_hz` / `spectral_index` apply where the file has none. Lines
    starting with '#' are comments; a malformed row is an error naming its line.
    """
    path = Path(path)
    coeffs = _coeffs(spectral_index)
    sources = _parse_reference_csv(
        _read_text(path, "reference catalogue"), path, ref_freq_hz=ref_freq_hz, spectral_index=coeffs
    )
    log.info("read %d sources from %s", len(sources), path)
    return sources


def _coeffs(spectral_index: float | Sequence[float] | None) -> tuple[float, ...]:
    if spectral_index is None:
        return ()
    if isinstance(spectral_index, (int, float)):
        return (float(spectral_index),)
    return tuple(float(c) for c in spectral_index)


# --------------------------------------------------------------------------- dispatcher


def _looks_like_csv(lines: Iterable[str]) -> bool:
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "," not in line:
            return False
        cols = _find_columns(next(csv.reader([line])))
        return "ra" in cols and "dec" in cols
    return False


def read_reference_catalog(
    path: str | Path,
    *,
    ref_freq_hz: float | None = None,
    spectral_index: float | Sequence[float] | None = None,
) -> list[CatalogSource]:
    """Read a reference catalogue whatever its format, chosen by content.

    A JSON list is a TTCal file (sky sources only), a format line means makesourcedb, a header
    with ra/dec columns means CSV, and lines like `hh mm ss.s +dd mm ss.s ...` mean VLSSr text.
    `ref_freq_hz` (default 73.8 MHz for VLSSr) and `spectral_index` apply to VLSSr and CSV.
    """
    path = Path(path)
    text = _read_text(path, "reference catalogue")
    coeffs = _coeffs(spectral_index)
    lines = text.splitlines()
    if text.lstrip().startswith("["):
        kind = "ttcal"
        sources = [s for s in _parse_ttcal(text, path) if isinstance(s, CatalogSource)]
    elif any(_FORMAT_RE.fullmatch(line.strip()) for line in lines[:200]):
        kind = "makesourcedb"
        sources = _parse_makesourcedb(text, path, group_patches=False)
    elif _looks_like_csv(lines):
        kind = "csv"
        sources = _parse_reference_csv(text, path, ref_freq_hz=ref_freq_hz, spectral_index=coeffs)
    elif any(_VLSSR_RE.match(line) for line in lines):
        kind = "vlssr"
        sources = _parse_vlssr(
            text,
            path,
            ref_freq_hz=VLSSR_FREQ_HZ if ref_freq_hz is None else ref_freq_hz,
            spectral_index=coeffs,
        )
    else:
        raise LwaError(
            f"cannot tell the format of catalogue {path}: expected a CSV with ra/dec/flux columns, "
            "VLSSr text, a makesourcedb sky model or a TTCal JSON file"
        )
    log.info("read %d sources from %s (%s)", len(sources), path, kind)
    return sources
