"""TTCal sources.json: A-team models for peeling (sky sources) and RFI sources."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lwa_common.catalogs.angles import parse_dec_deg, parse_ra_deg
from lwa_common.catalogs.model import (
    STOKES,
    CatalogSource,
    RfiSource,
    checked_number,
    composite_source,
    read_catalog_text,
)
from lwa_common.errors import LwaError

__all__ = ["read_ttcal_sources"]

log = logging.getLogger(__name__)

_EPHEMERIS_NAMES = ("Sun", "Moon", "Jupiter")  # TTCal places these itself at the observing time


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
            return composite_source(name, components, catalog=catalog)
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
    coeffs = tuple(checked_number(c, "index") for c in index)
    freq = checked_number(entry["freq"], "freq")
    if freq <= 0:
        raise LwaError(f"'freq' must be positive, got {freq}")
    gauss_keys = ("major-fwhm", "minor-fwhm", "position-angle")
    present = [k for k in gauss_keys if k in entry]
    if present and len(present) != 3:
        missing = [k for k in gauss_keys if k not in entry]
        raise LwaError(f"a Gaussian needs {', '.join(gauss_keys)}; missing {', '.join(missing)}")
    gaussian = len(present) == 3
    law = str(entry.get("spectral-law", "log"))
    if law not in ("log", "linear"):
        raise LwaError(f"'spectral-law' must be log or linear, got {law!r}")
    return CatalogSource(
        name=name,
        ra_deg=ra,
        dec_deg=dec,
        flux_jy=checked_number(entry["I"], "I"),
        ref_freq_hz=freq,
        spectral_index=coeffs,
        major_arcsec=checked_number(entry["major-fwhm"], "major-fwhm") if gaussian else 0.0,
        minor_arcsec=checked_number(entry["minor-fwhm"], "minor-fwhm") if gaussian else 0.0,
        pa_deg=checked_number(entry["position-angle"], "position-angle") if gaussian else 0.0,
        q_jy=checked_number(entry.get("Q", 0.0), "Q"),
        u_jy=checked_number(entry.get("U", 0.0), "U"),
        v_jy=checked_number(entry.get("V", 0.0), "V"),
        shape="gaussian" if gaussian else "point",
        spectral_law=law,
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
    freqs = [checked_number(f, "rfi-frequencies") for f in freqs]
    stokes: dict[str, list[float]] = {}
    for key in STOKES:
        values = entry.get(f"rfi-{key}")
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != len(freqs):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise LwaError(
                f"'rfi-{key}' must be a list as long as 'rfi-frequencies' ({len(freqs)}), got {got}"
            )
        stokes[key] = [checked_number(v, f"rfi-{key}") for v in values]
    keep = _increasing_subsequence(freqs)
    if len(keep) < len(freqs):
        dropped = sorted(set(range(len(freqs))) - set(keep))
        shown = ", ".join(f"#{i} ({freqs[i]:g} Hz)" for i in dropped[:5])
        log.warning("RFI source '%s': ignoring %d out-of-order frequencies: %s", name, len(dropped), shown)
    lat = checked_number(entry["lat"], "lat")
    if not -90.0 <= lat <= 90.0:
        raise LwaError(f"'lat' must be within [-90, 90], got {lat}")
    return RfiSource(
        name=name,
        lat_deg=lat,
        lon_deg=checked_number(entry["long"], "long"),
        height_m=checked_number(entry["el"], "el"),
        freqs_hz=tuple(freqs[i] for i in keep),
        i_jy=tuple(stokes["I"][i] for i in keep),
        q_jy=tuple(stokes["Q"][i] for i in keep) if "Q" in stokes else (),
        u_jy=tuple(stokes["U"][i] for i in keep) if "U" in stokes else (),
        v_jy=tuple(stokes["V"][i] for i in keep) if "V" in stokes else (),
        sys=system,
    )


def parse_ttcal(text: str, path: Path) -> list[CatalogSource | RfiSource]:
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
    (arcsec) and position-angle (deg); "components" groups several under one name. Our own
    optional key "spectral-law": "linear" makes `index` ordinary polynomial coefficients in
    nu/freq - 1 (fluxes may be negative: `lwa-peel refine-model`'s clean components). RFI sources
    give sys, lat, long, el and rfi-frequencies with rfi-I (rfi-Q/U/V optional); out-of-order
    frequencies are dropped with a warning.
    """
    path = Path(path)
    sources = parse_ttcal(read_catalog_text(path, "TTCal sources file"), path)
    n_rfi = sum(isinstance(s, RfiSource) for s in sources)
    log.info("read %d sky and %d RFI sources from %s", len(sources) - n_rfi, n_rfi, path)
    return sources
