"""`read_reference_catalog`: one reader for every catalogue format the field uses, chosen by content."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from lwa_common.catalogs.cambridge import is_3c, is_4c, parse_cambridge
from lwa_common.catalogs.makesourcedb import FORMAT_RE, parse_makesourcedb
from lwa_common.catalogs.model import CatalogSource, read_catalog_text, spectral_coeffs
from lwa_common.catalogs.table import find_columns, parse_reference_csv, read_astropy_table
from lwa_common.catalogs.ttcal import parse_ttcal
from lwa_common.catalogs.vlssr import VLSSR_FREQ_HZ, VLSSR_RE, parse_vlssr
from lwa_common.errors import LwaError

__all__ = ["ACCEPTED_FORMATS", "read_reference_catalog"]

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = (
    "a CSV with ra/dec/flux columns",
    "VLSSr text (FullVLSSCatalog.text)",
    "a makesourcedb / BBS / wsclean sky model",
    "a TTCal sources.json",
    "the 3C or 4C catalogue as shipped with LSL (3c.dat, 4c.dat)",
    "a table astropy reads (FITS, VOTable, ECSV, IPAC ...) with ra/dec/flux columns",
)


def _looks_like_csv(lines: Iterable[str]) -> bool:
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "," not in line:
            return False
        cols = find_columns(next(csv.reader([line])))
        return "ra" in cols and "dec" in cols
    return False


def read_reference_catalog(
    path: str | Path,
    *,
    ref_freq_hz: float | None = None,
    spectral_index: float | Sequence[float] | None = None,
) -> list[CatalogSource]:
    """Read a reference catalogue whatever its format (`ACCEPTED_FORMATS`), chosen by content.

    A JSON list is a TTCal file (sky sources only), a format line means makesourcedb, a header
    with ra/dec columns means CSV, LSL's fixed-width 3C / 4C lines are those catalogues (B1950,
    precessed), lines like `hh mm ss.s +dd mm ss.s ...` mean VLSSr text, and anything else is
    handed to astropy's table reader. `ref_freq_hz` (default 73.8 MHz for VLSSr) and
    `spectral_index` apply where the file gives none (3C/4C: 159 / 178 MHz).
    """
    path = Path(path)
    text = read_catalog_text(path, "reference catalogue", binary_ok=True)
    coeffs = spectral_coeffs(spectral_index)
    lines = text.splitlines() if text is not None else []
    if text is None:
        kind, sources = "table", _astropy_or_unknown(path, ref_freq_hz, coeffs)
    elif text.lstrip().startswith("["):
        kind = "ttcal"
        sources = [s for s in parse_ttcal(text, path) if isinstance(s, CatalogSource)]
    elif any(FORMAT_RE.fullmatch(line.strip()) for line in lines[:200]):
        kind, sources = "makesourcedb", parse_makesourcedb(text, path, group_patches=False)
    elif _looks_like_csv(lines):
        kind = "csv"
        sources = parse_reference_csv(text, path, ref_freq_hz=ref_freq_hz, spectral_index=coeffs)
    elif is_3c(lines) or is_4c(lines):
        kind = "3c" if is_3c(lines) else "4c"
        sources = parse_cambridge(kind, text, path, spectral_index=coeffs)
    elif any(VLSSR_RE.match(line) for line in lines):
        kind = "vlssr"
        sources = parse_vlssr(text, path, ref_freq_hz=VLSSR_FREQ_HZ if ref_freq_hz is None else ref_freq_hz,
                               spectral_index=coeffs)
    else:
        kind, sources = "table", _astropy_or_unknown(path, ref_freq_hz, coeffs)
    log.info("read %d sources from %s (%s)", len(sources), path, kind)
    return sources


def _astropy_or_unknown(path: Path, ref_freq_hz: float | None, coeffs: tuple[float, ...]) -> list[CatalogSource]:
    try:
        return read_astropy_table(path, ref_freq_hz=ref_freq_hz, spectral_index=coeffs)
    except LwaError as err:
        raise LwaError(f"cannot tell the format of catalogue {path} ({err}); accepted: "
                       + "; ".join(ACCEPTED_FORMATS)) from None
