"""Target lists for photometry: the targets CSV of `lwa-cutout targets`.

Columns (names case-insensitive, first alias found wins):

| meaning | column | aliases |
|---|---|---|
| name | `common_name` | name, source, id |
| RA | `ra_current` | ra_deg, ra |
| Dec | `dec_current` | dec_deg, dec |
| Stokes to detect in (optional) | `detection_stokes` | I, V or both (also I+V); default I |
| sources to mask (optional) | `confusing_sources` | see below |

Positions are ICRS, in degrees ("83.633") or sexagesimal: RA "05h34m31.9s", "05:34:31.9" or
"05 34 31.9" (hours), Dec "+22d00m52s", "+22:00:52" or "+22 00 52" (degrees).

`confusing_sources` lists sources near the target, separated by ';'. An entry with a comma is a
position "ra,dec" (degrees or sexagesimal, e.g. "83.63,22.01" or "05:34:31.9,+22:00:52"; quote
the CSV cell). An entry without a comma is a position when it reads as one ("83.63 22.01",
"05 34 31.9 +22 00 52"), else a source name ("Crab", "3C 144") for the caller to resolve.

Every other column is kept, in file order, in each target's `row`. Blank lines and lines
starting with '#' are ignored. A malformed row (bad position, wrong number of cells, empty name,
unknown detection_stokes) is logged as a warning naming its line and skipped; the table records
it in `skipped`. A file without usable name / RA / Dec columns is an `LwaError`.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from lwa_common.catalogs import parse_dec_deg, parse_ra_deg
from lwa_common.errors import LwaError

__all__ = [
    "NAME_COLUMNS",
    "RA_COLUMNS",
    "DEC_COLUMNS",
    "DETECTION_STOKES",
    "ConfusingSource",
    "Target",
    "SkippedRow",
    "TargetTable",
    "read_targets",
    "parse_confusing_sources",
]

log = logging.getLogger(__name__)

NAME_COLUMNS: tuple[str, ...] = ("common_name", "name", "source", "id")
RA_COLUMNS: tuple[str, ...] = ("ra_current", "ra_deg", "ra")
DEC_COLUMNS: tuple[str, ...] = ("dec_current", "dec_deg", "dec")
STOKES_COLUMN = "detection_stokes"
CONFUSING_COLUMN = "confusing_sources"
DETECTION_STOKES: tuple[str, ...] = ("I", "V", "both")
_STOKES_ALIASES = {
    "i": "I",
    "v": "V",
    "both": "both",
    "i+v": "both",
    "iv": "both",
    "i,v": "both",
    "i/v": "both",
}


@dataclass(frozen=True)
class ConfusingSource:
    """A source to mask near a target: a position, or a name left for the caller to resolve."""

    label: str
    ra_deg: float | None = None
    dec_deg: float | None = None

    @property
    def has_position(self) -> bool:
        return self.ra_deg is not None and self.dec_deg is not None

    @property
    def coord(self) -> SkyCoord | None:
        if not self.has_position:
            return None
        return SkyCoord(self.ra_deg * u.deg, self.dec_deg * u.deg, frame="icrs")


@dataclass(frozen=True)
class Target:
    """One row of the targets CSV. `row` holds every column as read (text), in file order."""

    name: str
    ra_deg: float
    dec_deg: float
    coord: SkyCoord
    detection_stokes: str  # I / V / both
    confusing_sources: tuple[ConfusingSource, ...]
    row: dict[str, str]
    line: int

    def detect_in(self, stokes: str) -> bool:
        """Whether this target is searched for in Stokes `stokes` (I or V)."""
        return self.detection_stokes == "both" or self.detection_stokes == stokes.upper()


@dataclass(frozen=True)
class SkippedRow:
    line: int
    reason: str


@dataclass(frozen=True)
class TargetTable:
    """The usable targets of a file, the rows skipped, and which columns were used."""

    path: Path
    targets: tuple[Target, ...]
    skipped: tuple[SkippedRow, ...]
    columns: tuple[str, ...]  # every header name, in file order
    name_column: str
    ra_column: str
    dec_column: str
    stokes_column: str | None
    confusing_column: str | None

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Columns other than name / RA / Dec / detection_stokes / confusing_sources, in order."""
        used = {self.name_column, self.ra_column, self.dec_column, self.stokes_column, self.confusing_column}
        return tuple(c for c in self.columns if c not in used)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def coords(self) -> SkyCoord:
        """All target positions as one (vector) SkyCoord."""
        ra = np.array([t.ra_deg for t in self.targets], dtype=float)
        dec = np.array([t.dec_deg for t in self.targets], dtype=float)
        return SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")


def _position(text: str) -> tuple[float, float] | None:
    """(ra, dec) from '83.63,22.01', '83.63 22.01' or six sexagesimal parts; None if not one."""
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2:
            raise LwaError(f"confusing source '{text}' is not 'ra,dec'")
        return parse_ra_deg(parts[0]), parse_dec_deg(parts[1])
    tokens = text.split()
    if len(tokens) == 2:
        halves = [tokens[0]], [tokens[1]]
    elif len(tokens) == 6:
        halves = tokens[:3], tokens[3:]
    else:
        return None
    try:
        return parse_ra_deg(" ".join(halves[0])), parse_dec_deg(" ".join(halves[1]))
    except LwaError:
        return None


def parse_confusing_sources(text: str) -> tuple[ConfusingSource, ...]:
    """'83.63,22.01; 05:35:00,+21:50:00; Crab' -> positions and names (see the module doc)."""
    sources = []
    for entry in text.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        position = _position(entry)
        if position is None:
            sources.append(ConfusingSource(label=entry))
        else:
            sources.append(ConfusingSource(label=entry, ra_deg=position[0], dec_deg=position[1]))
    return tuple(sources)


def _pick(header: list[str], aliases: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    for alias in aliases:
        if alias in lowered:
            return lowered[alias]
    return None


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each CSV record, without blank and '#' comment lines."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            start = 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not cells or not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                    continue
                yield line, cells
    except FileNotFoundError:
        raise LwaError(f"targets file not found: {path}") from None
    except IsADirectoryError:
        raise LwaError(f"targets file {path} is a directory") from None
    except UnicodeDecodeError as err:
        raise LwaError(f"targets file {path} is not UTF-8 text (byte {err.start})") from None
    except csv.Error as err:
        raise LwaError(f"{path}: not a readable CSV: {err}") from None
    except OSError as err:
        raise LwaError(f"cannot read targets file {path}: {err.strerror}") from None


def _target(cells: list[str], line: int, header: list[str], columns: dict[str, str | None]) -> Target:
    if len(cells) != len(header):
        raise LwaError(f"{len(cells)} cells but the header has {len(header)}")
    row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
    name = row[columns["name"]]
    if not name:
        raise LwaError(f"empty {columns['name']}")
    ra = parse_ra_deg(row[columns["ra"]])
    dec = parse_dec_deg(row[columns["dec"]])
    stokes = "I"
    if columns["stokes"] is not None and row[columns["stokes"]]:
        value = re.sub(r"\s+", "", row[columns["stokes"]]).lower()
        if value not in _STOKES_ALIASES:
            raise LwaError(f"{columns['stokes']} '{row[columns['stokes']]}' is not I, V or both")
        stokes = _STOKES_ALIASES[value]
    confusing = ()
    if columns["confusing"] is not None and row[columns["confusing"]]:
        confusing = parse_confusing_sources(row[columns["confusing"]])
    return Target(
        name=name,
        ra_deg=ra,
        dec_deg=dec,
        coord=SkyCoord(ra * u.deg, dec * u.deg, frame="icrs"),
        detection_stokes=stokes,
        confusing_sources=confusing,
        row=row,
        line=line,
    )


def read_targets(path: str | Path) -> TargetTable:
    """Read a targets CSV (see the module doc): good rows become `Target`s, bad ones are skipped."""
    path = Path(path)
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise LwaError(f"targets file {path} is empty (no header line)")
    header_line, raw_header = first
    header = [h.strip() for h in raw_header]
    lowered = [h.lower() for h in header]
    duplicates = sorted({h for h in lowered if h and lowered.count(h) > 1})
    if duplicates:
        raise LwaError(f"{path}:{header_line}: duplicate column(s) {', '.join(duplicates)}")
    columns = {
        "name": _pick(header, NAME_COLUMNS),
        "ra": _pick(header, RA_COLUMNS),
        "dec": _pick(header, DEC_COLUMNS),
        "stokes": _pick(header, (STOKES_COLUMN,)),
        "confusing": _pick(header, (CONFUSING_COLUMN,)),
    }
    missing = [
        f"{what} ({' / '.join(aliases)})"
        for what, aliases in (("name", NAME_COLUMNS), ("RA", RA_COLUMNS), ("Dec", DEC_COLUMNS))
        if columns[what.lower()] is None
    ]
    if missing:
        raise LwaError(
            f"{path}:{header_line}: no {', '.join(missing)} column; header is: {', '.join(header) or '(empty)'}"
        )
    targets: list[Target] = []
    skipped: list[SkippedRow] = []
    for line, cells in records:
        try:
            targets.append(_target(cells, line, header, columns))
        except LwaError as err:
            log.warning("%s:%d: skipped row: %s", path, line, err)
            skipped.append(SkippedRow(line=line, reason=str(err)))
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            log.warning("%s:%d: target name '%s' appears more than once", path, target.line, target.name)
        seen.add(target.name)
    log.info("read %d targets from %s (%d rows skipped)", len(targets), path, len(skipped))
    return TargetTable(
        path=path,
        targets=tuple(targets),
        skipped=tuple(skipped),
        columns=tuple(header),
        name_column=columns["name"],
        ra_column=columns["ra"],
        dec_column=columns["dec"],
        stokes_column=columns["stokes"],
        confusing_column=columns["confusing"],
    )
