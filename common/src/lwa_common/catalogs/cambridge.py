"""The Cambridge 3C and 4C catalogues as shipped with LSL (`3c.dat`, `4c.dat`): fixed width, B1950.

Columns (0-based character ranges, as LSL's `lsl.catalog` reads them):

| file | name | RA h m s (B1950) | Dec sign, d, m (B1950) | flux (Jy) | at |
|---|---|---|---|---|---|
| 3c.dat (Edge et al. 1959, 471 sources) | `3C` + [0:3] | [12:14] [15:17] [18:22] | [27] [28:30] [31:35] | first number in [37:47] | 159 MHz |
| 4c.dat (Pilkington & Scott 1965; Gower et al. 1967, 4 844 sources) | `4C` + [0:8] | [10:12] [13:15] [16:20] | [22] [23:25] [26:30] | first number of [30:40] | 178 MHz |

Positions are precessed from FK4 B1950 to ICRS with astropy (`SkyCoord(...).transform_to("icrs")`).
4C sources that are also 3C sources keep that name as an alias in `patch` ("3C3").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import FK4, SkyCoord

from lwa_common.catalogs.model import CatalogSource, check_spectrum, read_catalog_text, spectral_coeffs
from lwa_common.errors import LwaError

__all__ = ["C3C_FREQ_HZ", "C4C_FREQ_HZ", "read_3c", "read_4c", "is_3c", "is_4c", "precess_b1950"]

log = logging.getLogger(__name__)

C3C_FREQ_HZ = 159e6
C4C_FREQ_HZ = 178e6

_LAYOUT = {  # name, RA h, m, s, Dec sign, d, m, flux field, name prefix
    "3c": ((0, 3), (12, 14), (15, 17), (18, 22), 27, (28, 30), (31, 35), (37, 47), "3C"),
    "4c": ((0, 8), (10, 12), (13, 15), (16, 20), 22, (23, 25), (26, 30), (30, 40), "4C"),
}
_NUMBER_RE = re.compile(r"\d+\.?\d*")
_DOTS = {"3c": (20, 33), "4c": (3, 18, 28)}  # where a data line has decimal points


def precess_b1950(ra_deg: Sequence[float], dec_deg: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """FK4 B1950 positions (deg) as ICRS (J2000) positions (deg)."""
    coord = SkyCoord(np.asarray(ra_deg, float) * u.deg, np.asarray(dec_deg, float) * u.deg,
                     frame=FK4(equinox="B1950")).transform_to("icrs")
    return coord.ra.deg, coord.dec.deg


def _looks_like(kind: str, lines: Sequence[str]) -> bool:
    data = [line for line in lines[:50] if line.strip()]
    good = 0
    for line in data:
        try:
            if all(len(line) > i and line[i] == "." for i in _DOTS[kind]):
                _row(kind, line)
                good += 1
        except LwaError:
            pass
    return bool(data) and good >= 0.8 * len(data)


def is_3c(lines: Sequence[str]) -> bool:
    """Are these the lines of LSL's 3c.dat?"""
    return _looks_like("3c", lines)


def is_4c(lines: Sequence[str]) -> bool:
    """Are these the lines of LSL's 4c.dat?"""
    return _looks_like("4c", lines)


def _field(line: str, span: tuple[int, int]) -> str:
    return line[span[0]:span[1]].strip()


def _row(kind: str, line: str) -> tuple[str, float, float, float, str]:
    name, rh, rm, rs, sign, dd, dm, flux, prefix = _LAYOUT[kind]
    try:
        ra = 15.0 * (int(_field(line, rh)) + int(_field(line, rm)) / 60.0 + float(_field(line, rs)) / 3600.0)
        dec = int(_field(line, dd)) + float(_field(line, dm)) / 60.0
        value = float(_NUMBER_RE.search(line[flux[0]:flux[1]]).group(0))
    except (ValueError, IndexError, AttributeError):
        raise LwaError(f"not a {prefix} catalogue line: '{line.rstrip()}'") from None
    if line[sign] == "-":
        dec = -dec
    if not (0 <= ra < 360 and -90 <= dec <= 90 and math.isfinite(value)):
        raise LwaError(f"position or flux out of range: '{line.rstrip()}'")
    alias = line[64:].strip().rstrip("*").strip() if kind == "4c" else ""
    return prefix + _field(line, name), ra, dec, value, alias


def parse_cambridge(kind: str, text: str, path: Path, *, spectral_index: Sequence[float]) -> list[CatalogSource]:
    ref = C3C_FREQ_HZ if kind == "3c" else C4C_FREQ_HZ
    coeffs = tuple(spectral_index)
    check_spectrum(ref, coeffs)
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(_row(kind, line))
        except LwaError as err:
            raise LwaError(f"{path}:{lineno}: {err}") from None
    if not rows:
        raise LwaError(f"{path}: no {kind.upper()} catalogue lines")
    ra, dec = precess_b1950([r[1] for r in rows], [r[2] for r in rows])
    return [CatalogSource(name=name, ra_deg=float(a), dec_deg=float(d), flux_jy=flux, ref_freq_hz=ref,
                          spectral_index=coeffs, patch=alias, catalog=kind)
            for (name, _, _, flux, alias), a, d in zip(rows, ra, dec, strict=True)]


def read_3c(path: str | Path, *, spectral_index: float | Sequence[float] | None = None) -> list[CatalogSource]:
    """Sources of LSL's 3c.dat (159 MHz fluxes, positions precessed B1950 -> ICRS)."""
    path = Path(path)
    sources = parse_cambridge("3c", read_catalog_text(path, "3C catalogue"), path, spectral_index=spectral_coeffs(spectral_index))
    log.info("read %d 3C sources from %s", len(sources), path)
    return sources


def read_4c(path: str | Path, *, spectral_index: float | Sequence[float] | None = None) -> list[CatalogSource]:
    """Sources of LSL's 4c.dat (178 MHz fluxes, positions precessed B1950 -> ICRS)."""
    path = Path(path)
    sources = parse_cambridge("4c", read_catalog_text(path, "4C catalogue"), path, spectral_index=spectral_coeffs(spectral_index))
    log.info("read %d 4C sources from %s", len(sources), path)
    return sources
