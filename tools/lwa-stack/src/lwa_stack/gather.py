"""Gather every detection of one or more runs into one summary (CSV + JSON).

What is scanned (recursively under each RUNDIR; hidden folders skipped), each table read by its
schema in `lwa_common.products`:

* `*_photometry.csv` (`PHOTOMETRY`, lwa-cutout; or `LEGACY_PHOTOMETRY`, the earlier pipeline's, told
  apart by the detection column `detected` / `Detection`): rows whose detection column is true
  (True/true/1/yes) are detections. The name is the table's name field, else the file name's
  subject (`{name}_photometry.csv`). A file under a folder whose name contains "solar" (e.g.
  `SolarSystem/`), or whose subject is a solar-system body (Sun, Moon, Mercury ... Neptune), gives
  `kind = solar_system`; otherwise `kind = target`. A CSV without a detection column is reported
  and skipped.
* `candidates.csv` (`CANDIDATES`, lwa-transient): every row is a transient candidate
  (`kind = transient`) except those lwa-transient classed as bi-lobe PSF artefacts
  (`class = artefact`, counted in `files.transient_artefacts`); a `Detection` column, when
  present, filters as above.

Summary columns (`DETECTIONS_SUMMARY`): `kind`, `run`, `name`, `subband`, `freq_mhz`, `stokes`,
`flux_jy`, `snr`, `ra_deg`, `dec_deg`, `source_file`, then every other column of the inputs (union,
blank where absent). Each is filled from the table's own `fields`; `ra_deg`/`dec_deg` are parsed to
degrees whatever the input text (`10h30m00s`, `09:40:00`, `153.75`).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.products import (
    CANDIDATES,
    DETECTIONS_SUMMARY,
    LEGACY_PHOTOMETRY,
    PHOTOMETRY,
    Table,
    find_tables,
    is_blank,
    photometry_schema,
)

__all__ = ["SUMMARY_COLUMNS", "SOLAR_BODIES", "is_solar", "detection_column", "scan_run", "gather", "truthy",
           "write_summary", "parse_angle_deg"]

log = logging.getLogger(__name__)

SOLAR_BODIES = frozenset({"sun", "moon", "mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune"})
SUMMARY_COLUMNS = DETECTIONS_SUMMARY.columns
_FIELDS = ("name", "subband", "freq_mhz", "stokes", "flux_jy", "snr", "ra_deg", "dec_deg")


def truthy(value: Any) -> bool:
    """True/1/yes (any case) or a true bool/number; everything else (NaN, blank) is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return not math.isnan(value) and value != 0
    return str(value).strip().lower() in ("true", "t", "1", "yes", "y")


def detection_column(columns) -> str | None:
    """The detection flag column of a photometry table (by its schema: `detected`, `Detection`), or None."""
    schema = photometry_schema(columns)
    return schema.detection if schema is not None else None


def is_solar(path: Path, root: Path, name: str) -> bool:
    """A table of a solar-system body: under a `solar` folder of `root`, or named after a body."""
    parts = [p.lower() for p in path.relative_to(root).parts[:-1]]
    return any("solar" in p for p in parts) or name.strip().lower() in SOLAR_BODIES


def _record(row: dict[str, Any], table: Table, *, kind: str, run: str, source: Path, default_name: str
            ) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": kind, "run": run}
    for name in _FIELDS:
        rec[name] = table.value(row, name)
    if rec["name"] is None:
        rec["name"] = default_name
    # positions as numbers whatever the input text was (`10h30m00s`, `09:40:00`, `153.75`)
    rec["ra_deg"] = parse_angle_deg(rec["ra_deg"], ra=True)
    rec["dec_deg"] = parse_angle_deg(rec["dec_deg"], ra=False)
    rec["source_file"] = str(source)
    for key, value in row.items():
        if key not in rec:
            rec[key] = value
    return rec


def parse_angle_deg(value: Any, *, ra: bool) -> float | None:
    """Degrees from a number or a text, parsed by astropy: `153.75` is degrees; sexagesimal RA
    (`10h30m00s`, `10:30:00`, `10 30 00`) is hours unless it says `d`; Dec is degrees. None if blank or
    unreadable (with a warning)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    if is_blank(value):
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    try:
        if number is not None:
            angle = Angle(number, unit=u.deg)
        else:
            hours = ra and "d" not in text.lower() and "°" not in text
            angle = Angle(text, unit=u.hourangle if hours else u.deg)
        deg = float(angle.wrap_at(360 * u.deg).deg if ra else angle.deg)
    except (ValueError, TypeError, u.UnitsError) as err:
        log.warning("unreadable %s %r (%s); left blank", "RA" if ra else "Dec", value, err)
        return None
    if not ra and not -90.0 <= deg <= 90.0:
        log.warning("Dec %r is outside [-90, 90] deg; left blank", value)
        return None
    return round(deg, 6)


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        log.warning("skipping unreadable %s: %s", path, err)
        return None


def _tables(root: Path, table: Table, counts: Counter, key: str) -> Iterator[tuple[Path, pd.DataFrame]]:
    """Every readable `table` product under `root` with its rows, counted in `counts[key]` (the
    unreadable ones, skipped with a warning, in `counts["unreadable"]`)."""
    for path in find_tables(root, table):
        df = _read_csv(path)
        if df is None:
            counts["unreadable"] += 1
            continue
        counts[key] += 1
        yield path, df


def scan_run(rundir: str | Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Detections of one run and counts of the files scanned."""
    root = Path(rundir)
    if not root.is_dir():
        raise LwaError(f"run folder not found: {root}")
    run = root.resolve().name
    out: list[dict[str, Any]] = []
    counts = Counter()
    for path, df in _tables(root, PHOTOMETRY, counts, "photometry_files"):
        table = photometry_schema(df.columns)
        if table is None:
            log.warning("%s has no Detection/detected column; skipped", path)
            counts["no_detection_column"] += 1
            continue
        default = PHOTOMETRY.subject(path)
        for row in df.to_dict("records"):
            if not truthy(row[table.detection]):
                continue
            name = str(table.value(row, "name", default))
            kind = "solar_system" if is_solar(path, root, name) else "target"
            out.append(_record(row, table, kind=kind, run=run, source=path, default_name=default))
    for path, df in _tables(root, CANDIDATES, counts, "candidate_files"):
        for row in df.to_dict("records"):
            if LEGACY_PHOTOMETRY.detection in row and not truthy(row[LEGACY_PHOTOMETRY.detection]):
                continue
            if str(row.get("class", "")).strip().lower() == "artefact":
                counts["transient_artefacts"] += 1
                continue
            out.append(_record(row, CANDIDATES, kind="transient", run=run, source=path,
                               default_name=path.parent.name))
    return out, dict(counts)


def gather(rundirs: Sequence[str | Path]) -> dict[str, Any]:
    """Scan every run; the summary dict (`detections` is a list of records)."""
    detections: list[dict[str, Any]] = []
    files = Counter()
    for rundir in rundirs:
        recs, counts = scan_run(rundir)
        detections.extend(recs)
        files.update(counts)
    by_kind = Counter(d["kind"] for d in detections)
    log.info("gathered %d detections (%s) from %d photometry and %d candidate files", len(detections),
             ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) or "none",
             files["photometry_files"], files["candidate_files"])
    return {"runs": [str(Path(r)) for r in rundirs], "n_detections": len(detections),
            "counts": dict(sorted(by_kind.items())), "files": dict(files), "detections": detections}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def write_summary(summary: dict[str, Any], outdir: str | Path, *, overwrite: bool = False,
                  stem: str = DETECTIONS_SUMMARY.stem) -> list[Path]:
    """`{stem}.csv` and `{stem}.json` in `outdir` (atomic)."""
    outdir = Path(outdir)
    csv_path, json_path = outdir / f"{stem}.csv", outdir / f"{stem}.json"
    for p in (csv_path, json_path):
        if p.exists() and not overwrite:
            raise LwaError(f"output exists: {p} (use --overwrite to replace it)")
    records = [{k: _clean(v) for k, v in d.items()} for d in summary["detections"]]
    extra: list[str] = []
    for rec in records:
        extra += [k for k in rec if k not in SUMMARY_COLUMNS and k not in extra]
    df = pd.DataFrame(records, columns=[*SUMMARY_COLUMNS, *extra])
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps({**summary, "detections": records}, indent=1, default=str))
    return [csv_path, json_path]
