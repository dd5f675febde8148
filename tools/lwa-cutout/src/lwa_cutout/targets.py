"""`lwa-cutout targets`: photometry of the targets of one or more target CSVs.

The CSV format is `lwa_common.targets` (name / RA / Dec aliases, degrees or sexagesimal,
`detection_stokes`, `confusing_sources`, extra columns kept, malformed rows reported with their
line number and skipped). A confusing source given by name (not by position) is looked up in an
optional reference catalogue (`lwa_common.catalogs.read_reference_catalog`); names that stay
unresolved are reported and not masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lwa_common.catalogs import CatalogSource, read_reference_catalog
from lwa_common.config import Imaging
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints
from lwa_common.targets import Target, TargetTable, read_targets
from lwa_cutout.images import find_sets
from lwa_cutout.photometry import PhotometrySettings, Subject, SubjectResult, run_photometry

__all__ = ["TargetsRun", "read_target_files", "target_subjects", "run_targets"]

log = logging.getLogger(__name__)


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


@dataclass
class TargetsRun:
    """What `run_targets` did: the tables read, the per-target results."""

    tables: list[TargetTable] = field(default_factory=list)
    results: list[SubjectResult] = field(default_factory=list)

    @property
    def skipped_rows(self) -> list[str]:
        return [f"{t.path}:{s.line}: {s.reason}" for t in self.tables for s in t.skipped]

    def summary(self) -> dict:
        return {
            "targets": len(self.results),
            "measured": [r.subject.name for r in self.results if r.rows],
            "skipped_elevation": {r.subject.name: r.skipped for r in self.results if r.skipped},
            "skipped_rows": self.skipped_rows,
            "detections": {r.subject.name: r.detected_rows for r in self.results if r.detected_rows},
            "csv": [str(r.csv) for r in self.results if r.rows],
            "outputs": [str(p) for r in self.results for p in r.outputs],
        }


def read_target_files(paths: Sequence[str | Path]) -> list[TargetTable]:
    """Read every targets CSV (an unusable file is an LwaError; bad rows are skipped and logged)."""
    return [read_targets(p) for p in paths]


def _resolve(target: Target, catalog: dict[str, CatalogSource]) -> tuple[tuple[str, float, float], ...]:
    out = []
    for source in target.confusing_sources:
        if source.has_position:
            out.append((source.label, float(source.ra_deg), float(source.dec_deg)))
            continue
        match = catalog.get(_key(source.label))
        if match is not None and match.has_position:
            out.append((source.label, match.ra_deg, match.dec_deg))
        else:
            log.warning("target '%s' (line %d): confusing source '%s' has no position%s: not masked", target.name,
                        target.line, source.label, "" if catalog else " (give --confusing-catalog to resolve names)")
    return tuple(out)


def target_subjects(tables: Sequence[TargetTable], *, catalog: Sequence[CatalogSource] = ()) -> list[Subject]:
    """One `Subject` per target row, confusing-source names resolved against `catalog`."""
    lookup = {_key(s.name): s for s in catalog}
    subjects = []
    for table in tables:
        for target in table:
            subjects.append(Subject(
                name=target.name,
                ra_deg=target.ra_deg,
                dec_deg=target.dec_deg,
                detection_stokes=target.detection_stokes,
                confusing=_resolve(target, lookup),
                row=dict(target.row),
            ))
    return subjects


def run_targets(
    target_files: Sequence[str | Path],
    *,
    images: Sequence[str | Path],
    output_dir: str | Path,
    fallback_dirs: Sequence[str | Path] = (),
    settings: PhotometrySettings | None = None,
    confusing_catalog: str | Path | None = None,
    default_intervals: int = Imaging.intervals_out,
    overwrite: bool = False,
    hints: ImageHints | None = None,
    argv: list[str] | None = None,
) -> TargetsRun:
    """Photometry of every target of `target_files` on the images under `images` (see module docs)."""
    output_dir = Path(output_dir)
    tables = read_target_files(target_files)
    catalog = read_reference_catalog(confusing_catalog) if confusing_catalog else []
    subjects = target_subjects(tables, catalog=catalog)
    run = TargetsRun(tables=tables)
    if not subjects:
        skipped = [f"{t.path}:{row.line}: {row.reason}" for t in tables for row in t.skipped]
        raise LwaError(f"no usable target in {', '.join(str(p) for p in target_files)}"
                       + (f" (every row skipped; first: {skipped[0]})" if skipped else " (no rows)"))
    sets = find_sets(images, fallback_dirs=fallback_dirs, exclude=[output_dir],
                     default_intervals=default_intervals, hints=hints)
    run.results = run_photometry(subjects, sets, output_dir=output_dir, settings=settings, overwrite=overwrite,
                                 argv=argv, kind="target")
    return run
