"""The VLSSr catalogue text (`FullVLSSCatalog.text`, Lane et al. 2014, 73.8 MHz)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lwa_common.catalogs.model import CatalogSource, check_spectrum, read_catalog_text, spectral_coeffs
from lwa_common.errors import LwaError

__all__ = ["VLSSR_FREQ_HZ", "read_vlssr"]

log = logging.getLogger(__name__)

VLSSR_FREQ_HZ = 73.8e6

# Data line of FullVLSSCatalog.text (NVSS-style listing, one line of values and one of errors):
#   RA(2000) h m s   Dec(2000) d m s   Dist   Flux(Jy)   Major  Minor  PA   [flag]  Field  X_pix Y_pix
#   00 00 00.37 +25 05 19.9  0.05   0.71 <78.1 <76.3     0 C0000P24  ...
# the error line below it has the errors under the matching columns (RA s, Dec ", flux Jy, ...).
# Columns are read as whitespace-separated tokens; when two run together (a wide flux), the
# fixed character columns of the listing are used instead: distance [23:29], flux [29:36],
# major [36:42], minor [42:48], PA [48:54].
_FIXED_COLUMNS = ((23, 29), (29, 36), (36, 42), (42, 48), (48, 54))
_GLUED_RE = re.compile(r"<?[-+]?\d*\.\d+[-+]?\d*\.\d*\S*")
VLSSR_RE = re.compile(
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


def parse_vlssr(
    text: str, path: Path, *, ref_freq_hz: float, spectral_index: Sequence[float]
) -> list[CatalogSource]:
    coeffs = tuple(float(c) for c in spectral_index)
    check_spectrum(ref_freq_hz, coeffs)
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
        match = VLSSR_RE.match(line)
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
    sources = parse_vlssr(
        read_catalog_text(path, "VLSSr catalogue"),
        path,
        ref_freq_hz=ref_freq_hz,
        spectral_index=spectral_coeffs(spectral_index),
    )
    log.info("read %d VLSSr sources from %s", len(sources), path)
    return sources
