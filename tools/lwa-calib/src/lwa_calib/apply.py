"""Apply a bandpass and an XY-phase table to measurement sets (casatasks applycal).

Each MS is calibrated on its own; one that fails (unreadable, its frequencies not covered by
the tables, other antennas) is reported and listed in ``failed.txt`` while the rest go on. By
default the MS is copied into the output folder and the copy gets CORRECTED_DATA (written under a
temporary name, renamed when complete); ``in_place`` writes CORRECTED_DATA into the input MS.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_calib.caltables import CalTable, antenna_key, read_caltable
from lwa_calib.casa_env import casa_log, run_task
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output
from lwa_common.ms import check_ms, open_table
from lwa_common.provenance import stamp_ms

__all__ = ["ApplyResult", "apply_tables", "check_tables_cover", "applycal"]

log = logging.getLogger(__name__)

FAILED_LIST = "failed.txt"


@dataclass
class ApplyResult:
    succeeded: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    failed_list: Path | None = None


def _freq_ranges(ms: Path) -> list[np.ndarray]:
    with open_table(ms / "SPECTRAL_WINDOW") as sw:
        return [np.asarray(sw.getcell("CHAN_FREQ", r), dtype=float) for r in range(sw.nrows())]


def check_tables_cover(ms: str | Path, tables: list[CalTable]) -> None:
    """Raise `LwaError` unless every table covers the MS's channels and has its antennas."""
    ms = Path(ms)
    check_ms(ms)
    with open_table(ms / "ANTENNA") as at:
        ms_names = [antenna_key(n) for n in at.getcol("NAME")]
    for tab in tables:
        lo, hi = tab.freqs_hz.min(), tab.freqs_hz.max()
        df = np.min(np.diff(np.sort(tab.freqs_hz))) if tab.freqs_hz.size > 1 else 0.0
        for spw, freqs in enumerate(_freq_ranges(ms)):
            tol = max(df, np.min(np.abs(np.diff(freqs))) if freqs.size > 1 else 0.0) / 2 + 1.0
            if freqs.min() < lo - tol or freqs.max() > hi + tol:
                raise LwaError(
                    f"{ms}: spw {spw} ({freqs.min() / 1e6:.3f}-{freqs.max() / 1e6:.3f} MHz) is not in "
                    f"{tab.path.name} ({lo / 1e6:.3f}-{hi / 1e6:.3f} MHz)"
                )
        with open_table(tab.path / "ANTENNA") as at:
            tab_names = [antenna_key(n) for n in at.getcol("NAME")]
        if tab_names != ms_names:
            raise LwaError(f"{ms}: its {len(ms_names)} antennas differ from the {len(tab_names)} of {tab.path.name}")


def applycal(ms: str | Path, *, bp_table: str | Path, xy_table: str | Path | None) -> None:
    """casatasks.applycal of the B (+ Xf) table into CORRECTED_DATA of `ms` (no parallactic angle).

    Solutions are taken nearest in time (a bandpass holds one interval) and nearest in frequency
    (tables and data share the channel grid); flagged solutions flag the data (calflag).
    """
    tables = [str(bp_table)] + ([str(xy_table)] if xy_table else [])
    kwargs = dict(vis=str(ms), gaintable=tables, interp=["nearest,nearest"] * len(tables),
                  calwt=[False] * len(tables), parang=False, applymode="calflag", flagbackup=False)
    run_task("applycal", **kwargs)
    with open_table(ms) as t:
        if "CORRECTED_DATA" not in t.colnames():
            raise LwaError(f"{ms}: applycal wrote no CORRECTED_DATA (see the CASA log)")


def apply_tables(
    ms_list: list[str | Path], *, bp_table: str | Path, xy_table: str | Path | None,
    outdir: str | Path | None = None, in_place: bool = False, overwrite: bool = False,
    failed_list: str | Path | None = None, casa_logfile: str | Path | None = None,
) -> ApplyResult:
    """Calibrate every MS of `ms_list`; return which succeeded and which failed (with why).

    Tables are read first: a missing or corrupt table is an `LwaError` before any work. With
    `in_place` False the calibrated copies go to `outdir/<name>.ms`; existing copies need
    `overwrite`. `failed.txt` (one "path<TAB>reason" line per failure, empty when none) is written
    to `failed_list`, default `outdir/failed.txt` (with `in_place`: beside the first MS).
    """
    if not ms_list:
        raise LwaError("no MS given")
    if in_place == (outdir is not None):
        raise LwaError("give either an output folder (-o) or --in-place")
    bp = read_caltable(bp_table, expect="B")
    tables = [bp]
    if xy_table is not None:
        tables.append(read_caltable(xy_table, expect="Xf"))
    ms_paths = [Path(p) for p in ms_list]
    names = [p.name for p in ms_paths]
    if len(set(names)) != len(names):
        raise LwaError("two input MS share a name; their copies would collide")
    if in_place:
        default_list = ms_paths[0].resolve().parent / FAILED_LIST
        targets = ms_paths
    else:
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        default_list = outdir / FAILED_LIST
        targets = [outdir / n for n in names]
        for src, dst in zip(ms_paths, targets):
            if dst.resolve() == src.resolve():
                raise LwaError(f"output {dst} is the input; use --in-place to calibrate it where it is")
            check_output(dst, overwrite=overwrite)
    failed_path = Path(failed_list) if failed_list else default_list
    logfile = Path(casa_logfile) if casa_logfile else failed_path.parent / "lwa-calib-casa.log"

    result = ApplyResult(failed_list=failed_path)
    with casa_log(logfile):
        for src, dst in zip(ms_paths, targets):
            try:
                check_tables_cover(src, tables)
                if in_place:
                    applycal(src, bp_table=bp.path, xy_table=tables[1].path if len(tables) > 1 else None)
                else:
                    with atomic_path(dst, directory=True) as tmp:
                        shutil.copytree(src, tmp, symlinks=True)
                        applycal(tmp, bp_table=bp.path, xy_table=tables[1].path if len(tables) > 1 else None)
                stamp_ms(dst, tool="lwa-calib", message=f"lwa-calib apply: {bp.path.name}"
                         + (f" + {tables[1].path.name}" if len(tables) > 1 else ""))
                result.succeeded.append(dst)
                log.info("calibrated %s", dst)
            except (LwaError, OSError, RuntimeError) as err:
                reason = str(err).replace("\n", " ")
                log.info("FAILED %s: %s", src, reason)
                result.failed.append((src, reason))
    with atomic_path(failed_path) as tmp:
        tmp.write_text("".join(f"{p}\t{why}\n" for p, why in result.failed))
    log.info("apply: %d calibrated, %d failed (listed in %s)", len(result.succeeded), len(result.failed),
             failed_path)
    return result
