"""Reference tables with RA, Dec and flux columns: CSV text, or any table astropy reads (FITS, VOTable, ECSV, ...)."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from lwa_common.catalogs.angles import parse_dec_deg, parse_ra_deg
from lwa_common.catalogs.model import (
    CatalogSource,
    check_spectrum,
    float_of_text,
    read_catalog_text,
    spectral_coeffs,
)
from lwa_common.errors import LwaError

__all__ = ["read_reference_csv", "read_astropy_table"]

log = logging.getLogger(__name__)

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


def find_columns(header: Sequence[str]) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for key, aliases in _CSV_COLUMNS.items():
        for alias in aliases:
            if alias in lowered:
                found[key] = lowered.index(alias)
                break
    return found


def parse_reference_csv(
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
    cols = find_columns(header)
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
                flux = float_of_text(cell("flux"), f"flux ({header[cols['flux']].strip()})")
            else:
                flux = float_of_text(cell("flux_mjy"), "flux_mjy") / 1000.0
            if cell("freq_hz"):
                ref = float_of_text(cell("freq_hz"), "reference frequency")
            elif cell("freq_mhz"):
                ref = float_of_text(cell("freq_mhz"), "reference frequency (MHz)") * 1e6
            else:
                ref = float(ref_freq_hz) if ref_freq_hz is not None else math.nan
            coeffs = (float_of_text(cell("alpha"), "alpha"),) if cell("alpha") else tuple(spectral_index)
            check_spectrum(ref, coeffs)
            major = float_of_text(cell("major"), "major") if cell("major") else 0.0
            minor = float_of_text(cell("minor"), "minor") if cell("minor") else 0.0
            pa = float_of_text(cell("pa"), "pa") if cell("pa") else 0.0
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
    coeffs = spectral_coeffs(spectral_index)
    sources = parse_reference_csv(
        read_catalog_text(path, "reference catalogue"), path, ref_freq_hz=ref_freq_hz, spectral_index=coeffs
    )
    log.info("read %d sources from %s", len(sources), path)
    return sources


def _column_values(table, name: str, what: str, parse, unit) -> list[float]:
    """The column as floats in `unit`: a Quantity converted, text parsed with `parse`, else numbers."""
    import astropy.units as u

    column = table[name]
    if getattr(column, "unit", None) is not None:
        try:
            return [float(v) for v in u.Quantity(column).to_value(unit)]
        except u.UnitConversionError as err:
            raise LwaError(f"{what} column '{name}': {err}") from None
    return [parse(v) for v in column]


def read_astropy_table(
    path: str | Path,
    *,
    ref_freq_hz: float | None = None,
    spectral_index: float | Sequence[float] | None = None,
) -> list[CatalogSource]:
    """Sources of any table astropy reads (FITS, VOTable, ECSV, IPAC, ...) with RA, Dec and flux columns.

    Column names as for `read_reference_csv`; columns with units (deg, hourangle, Jy, mJy) are
    converted, unitless ones are degrees and Jy (text positions may be sexagesimal).
    """
    import astropy.units as u
    from astropy.table import Table

    path = Path(path)
    try:
        table = Table.read(path)
    except Exception as err:  # astropy raises many types for "not a table I know"
        raise LwaError(f"astropy cannot read {path} as a table: {str(err).splitlines()[0] if str(err) else err}"
                       ) from None
    cols = {k: table.colnames[i] for k, i in find_columns(table.colnames).items()}
    flux_key = "flux" if "flux" in cols else "flux_mjy" if "flux_mjy" in cols else None
    if "ra" not in cols or "dec" not in cols or flux_key is None:
        raise LwaError(f"{path}: table has no RA / Dec / flux columns (columns: {', '.join(table.colnames)})")
    ra = _column_values(table, cols["ra"], "RA", parse_ra_deg, u.deg)
    dec = _column_values(table, cols["dec"], "Dec", parse_dec_deg, u.deg)
    flux = _column_values(table, cols[flux_key], "flux", lambda v: float_of_text(str(v), "flux"),
                          u.mJy if flux_key == "flux_mjy" else u.Jy)
    if flux_key == "flux_mjy":  # read in mJy (converted when the column has a unit)
        flux = [f / 1000.0 for f in flux]
    coeffs = spectral_coeffs(spectral_index)
    ref = float(ref_freq_hz) if ref_freq_hz is not None else math.nan
    check_spectrum(ref, coeffs)
    names = [str(v) for v in table[cols["name"]]] if "name" in cols else [f"{path.stem}:{i + 1}" for i in range(len(table))]
    sources = []
    for i, name in enumerate(names):
        r, d = ra[i] % 360.0, dec[i]
        if not -90.0 <= d <= 90.0:
            raise LwaError(f"{path}: row {i + 1}: Dec {d} is outside [-90, 90] deg")
        sources.append(CatalogSource(name=name, ra_deg=r, dec_deg=d, flux_jy=flux[i], ref_freq_hz=ref,
                                     spectral_index=coeffs, catalog="table"))
    log.info("read %d sources from %s (astropy table)", len(sources), path)
    return sources
