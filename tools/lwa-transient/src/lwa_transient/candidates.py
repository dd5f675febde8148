"""A search's candidates: the `candidates.csv` row (`Candidate`, columns from
`lwa_common.products.CANDIDATES`), the run's result, the catalogue cross-match that classes a
candidate `known`, and the CSV written atomically and read back.

Why its own module: every rule of the search (bi-lobe, sidelobe, echo, trend, fainter) marks
these rows, and the CSV format is the contract with lwa-stack and lwa-db; keeping them apart from
the image work lets each rule module import the row without the search.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from lwa_common.catalogs import read_reference_catalog
from lwa_common.io import atomic_path
from lwa_common.products import CANDIDATES

__all__ = ["CSV_COLUMNS", "Candidate", "SearchResult", "Catalog", "candidate_pixel", "sep_deg", "write_csv",
           "read_candidates"]

log = logging.getLogger(__name__)

CSV_COLUMNS = CANDIDATES.columns


@dataclass
class Candidate:
    """One row of candidates.csv."""

    stokes: str
    interval: str
    ra: float
    dec: float
    jname: str
    peak_jy: float
    rms_jy: float
    snr: float
    sign: int
    bilobe: bool
    klass: str
    catalog_match: str
    image: str
    subband: str
    freq_mhz: float
    x: float
    y: float
    partner_snr: float = math.nan
    partner_ratio: float = math.nan
    partner_sep_arcmin: float = math.nan
    catalog_sep_arcmin: float = math.nan
    cutout: str = ""
    png: str = ""
    reason: str = ""  # why an artefact: bilobe, sidelobe (of a brighter V source), fainter (than deep V), echo, trend
    beam_arcmin: float = math.nan  # BMAJ of the searched image: the unit of every radius
    folder: str = ""  # J0553+31
    reference: str = field(default="", repr=False)  # deep I used for the difference / the I panel
    # V: the image(s) subtracted from a 10 min V: the deep V, or the others of the weighted mean (`VReference`)
    subtracted: tuple[str, ...] = field(default=(), repr=False)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("klass")
        return {k: _fmt(k, d[k]) for k in CSV_COLUMNS}


_DECIMALS = {"beam_arcmin": 3, "ra": 6, "dec": 6, "x": 2, "y": 2, "snr": 2, "partner_snr": 2, "partner_ratio": 3,
             "partner_sep_arcmin": 2, "catalog_sep_arcmin": 2, "freq_mhz": 4}


def _fmt(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.{_DECIMALS[key]}f}" if key in _DECIMALS else f"{value:.6g}"
    return value


@dataclass
class SearchResult:
    candidates: list[Candidate]
    csv: Path
    products: list[Path]
    n_images: int
    skipped: list[str]

    def summary(self) -> dict[str, Any]:
        classes: dict[str, int] = {}
        for c in self.candidates:
            classes[c.klass] = classes.get(c.klass, 0) + 1
        return {"csv": str(self.csv), "n_candidates": len(self.candidates), "by_class": classes,
                "n_images": self.n_images, "skipped_images": self.skipped,
                "outputs": [str(self.csv), *map(str, self.products)]}


def candidate_pixel(c: Candidate, shape: tuple[int, ...]) -> tuple[int, int]:
    """The (y, x) pixel nearest the candidate, clipped to an image of `shape`."""
    return min(max(round(c.y), 0), shape[0] - 1), min(max(round(c.x), 0), shape[1] - 1)


def sep_deg(a: Candidate, b: Candidate) -> float:
    """The angular separation of two candidates (degrees)."""
    ra1, dec1, ra2, dec2 = (math.radians(v) for v in (a.ra, a.dec, b.ra, b.dec))
    cos = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2)
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


class Catalog:
    """A reference catalogue read once, for the 2′ cross-match."""

    def __init__(self, path: Path):
        self.path = path
        self.sources = [src for src in read_reference_catalog(path) if src.has_position]
        if not self.sources:
            log.warning("catalogue %s holds no source with a position: no cross-match", path)
        self.coords = SkyCoord([src.ra_deg for src in self.sources] * u.deg,
                               [src.dec_deg for src in self.sources] * u.deg) if self.sources else None

    def match(self, cands: list[Candidate], radius_beams: float) -> None:
        if self.coords is None or not cands:
            return
        pos = SkyCoord([c.ra for c in cands] * u.deg, [c.dec for c in cands] * u.deg)
        idx, sep, _ = pos.match_to_catalog_sky(self.coords)
        for c, i, s in zip(cands, np.atleast_1d(idx), np.atleast_1d(sep.arcmin), strict=True):
            if s <= radius_beams * c.beam_arcmin:
                c.catalog_match = self.sources[int(i)].name
                c.catalog_sep_arcmin = float(s)
                if c.klass != "artefact":
                    c.klass = "known"


def write_csv(path: Path, cands: Sequence[Candidate]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for c in cands:
        writer.writerow(c.row())
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


def read_candidates(path: str | Path) -> list[dict[str, str]]:
    """The rows of a candidates.csv (strings), for tests and downstream tools."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
