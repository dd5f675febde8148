"""Apply a bandpass and an XY-phase table to measurement sets (casatasks applycal).

Each MS is calibrated on its own; one that fails (unreadable, its frequencies not covered by
the tables, other antennas) is reported and listed in ``failed.txt`` while the rest go on. By
default the MS is copied into the output folder and the copy gets CORRECTED_DATA (written under a
temporary name, renamed when complete); ``in_place`` writes CORRECTED_DATA into the input MS. The
input is only ever read as files (copied first, every check made on the copy), so an MS in a
read-only archive is neither written nor locked.

Tables as the observatory makes them: a table may hold several spectral windows (one per subband).
For each MS the window holding all its channels is chosen by frequency (a table none of whose
windows holds them is refused for that MS, naming the windows), and its solutions are put on the
MS's channel grid: a channel of the MS (e.g. one of 48 frequency-averaged channels) gets the mean of
the unflagged solutions of the table channels whose centres lie in it (4 of a 192-channel table),
never the nearest one; an MS channel holding no table channel centre (a coarser table) takes the
table channel it lies in. For Xf tables the mean is normalised to unit modulus (a pure phase).
The resampled one-window tables are written next to the work and applied with applycal; a table
already on the MS's grid (one row per antenna, in window 0 whose channels are the MS's, unchanged by
the resampling) is applied as it is, since writing it again costs more than applycal itself.

applycal assumes the canonical correlation order XX,XY,YX,YY: on an MS written in another order
(XX,YY,XY,YX from some correlators) it applies the Y gains to the wrong products. Such an MS has its
correlation axis put in canonical order for applycal and restored afterwards, so the result is
identical to calibrating the same data stored in canonical order (tests/test_unusual_ms.py).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_calib.caltables import CalTable, CalWindow, antenna_key, read_caltable, table_windows, write_caltable
from lwa_calib.casa_env import casa_log, run_task
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, make_dirs
from lwa_common.ms import check_ms, check_ms_output, ms_output, open_table
from lwa_common.progress import progress
from lwa_common.provenance import stamp_ms

__all__ = ["ApplyResult", "apply_tables", "check_tables_cover", "choose_window", "resample_solutions", "applycal"]

log = logging.getLogger(__name__)

FAILED_LIST = "failed.txt"


@dataclass
class ApplyResult:
    succeeded: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    failed_list: Path | None = None


def _ms_window(ms: Path) -> tuple[np.ndarray, np.ndarray]:
    with open_table(ms / "SPECTRAL_WINDOW") as sw:
        if sw.nrows() != 1:
            raise LwaError(f"{ms}: {sw.nrows()} spectral windows; lwa-calib apply takes one-subband MS")
        return (np.asarray(sw.getcell("CHAN_FREQ", 0), dtype=float),
                np.abs(np.asarray(sw.getcell("CHAN_WIDTH", 0), dtype=float)))


def choose_window(ms_freqs: np.ndarray, ms_widths: np.ndarray, windows: list[CalWindow], *, what: str) -> CalWindow:
    """The window holding every channel of the MS (the narrowest when several do); LwaError if none."""
    lo, hi = float(np.min(ms_freqs - ms_widths / 2)), float(np.max(ms_freqs + ms_widths / 2))
    holding = []
    for w in windows:
        wlo, whi = w.edges_hz
        tol = 1.0 + 1e-3 * float(np.min(np.abs(w.widths_hz))) if w.widths_hz.size else 1.0
        if lo >= wlo - tol and hi <= whi + tol:
            holding.append(w)
    if not holding:
        raise LwaError(f"its channels ({lo / 1e6:.3f}-{hi / 1e6:.3f} MHz) are not in any window of {what} "
                       f"({'; '.join(w.describe() for w in windows)})")
    return min(holding, key=lambda w: w.edges_hz[1] - w.edges_hz[0])


def resample_solutions(tab: CalTable, ms_freqs: np.ndarray, ms_widths: np.ndarray, *,
                       phase_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`tab`'s solutions on the MS's channels: values[ant, chan, pol] and flags (see the module doc)."""
    n_ant, _, npol = tab.values.shape
    values = np.zeros((n_ant, ms_freqs.size, npol), dtype=tab.values.dtype)
    flags = np.ones((n_ant, ms_freqs.size, npol), dtype=bool)
    tab_half = np.abs(np.diff(tab.freqs_hz)).min() / 2 if tab.freqs_hz.size > 1 else np.inf
    for i, (f, w) in enumerate(zip(ms_freqs, ms_widths)):
        inside = np.flatnonzero(np.abs(tab.freqs_hz - f) < w / 2 * (1 + 1e-9))
        if inside.size == 0:
            nearest = int(np.argmin(np.abs(tab.freqs_hz - f)))
            if abs(tab.freqs_hz[nearest] - f) > tab_half * (1 + 1e-6):
                raise LwaError(f"{tab.path.name}: no solution covers {f / 1e6:.4f} MHz")
            inside = np.array([nearest])
        v, good = tab.values[:, inside, :], ~tab.flags[:, inside, :]
        n = good.sum(axis=1)
        mean = np.where(n > 0, (v * good).sum(axis=1) / np.maximum(n, 1), 0)
        if phase_only:
            amp = np.abs(mean)
            mean = np.divide(mean, amp, out=np.zeros_like(mean), where=amp > 0)
        values[:, i, :] = mean
        flags[:, i, :] = n == 0
    return values, flags


def check_tables_cover(ms: str | Path, tables: list[CalTable]) -> list[CalWindow]:
    """The window of each table holding the MS's channels; `LwaError` if none does or antennas differ."""
    ms = Path(ms)
    check_ms(ms)
    with open_table(ms / "ANTENNA") as at:
        ms_names = [antenna_key(n) for n in at.getcol("NAME")]
    freqs, widths = _ms_window(ms)
    chosen = []
    for tab in tables:
        window = choose_window(freqs, widths, table_windows(tab.path), what=tab.path.name)
        with open_table(tab.path / "ANTENNA") as at:
            tab_names = [antenna_key(n) for n in at.getcol("NAME")]
        if tab_names != ms_names:
            raise LwaError(f"{ms}: its {len(ms_names)} antennas differ from the {len(tab_names)} of {tab.path.name}")
        chosen.append(window)
    return chosen


def _on_ms_grid(tab: CalTable, sub: CalTable, window: CalWindow, values: np.ndarray, flags: np.ndarray,
                freqs: np.ndarray, n_ant: int) -> bool:
    """Whether applying `tab` itself gives the data what its regridded copy (`values`, `flags`) would.

    True when the table is already the one-window table `_tables_on_ms_grid` would write: one
    solution row per antenna of the MS, all in spectral window 0 whose channels are the MS's, and
    the regridding changes no unflagged solution nor any flag. Values under flagged solutions may
    differ (regridding zeroes them): applycal flags those data whatever the value (measured).
    """
    if window.spw != 0 or not np.array_equal(window.freqs_hz, freqs) or not np.array_equal(sub.antennas,
                                                                                            np.arange(n_ant)):
        return False
    with open_table(tab.path) as t:
        if t.nrows() != n_ant or np.any(t.getcol("SPECTRAL_WINDOW_ID") != 0):
            return False
    good = ~flags
    return bool(np.array_equal(flags, sub.flags) and np.array_equal(values[good], sub.values[good]))


def _tables_on_ms_grid(ms: Path, tables: list[CalTable], workdir: Path) -> list[Path]:
    """Each table, or a one-window table holding its solutions on `ms`'s channels (written into `workdir`).

    A table already on the MS's grid (`_on_ms_grid`) is applied as it is: writing the same table
    again costs more than the applycal itself.
    """
    windows = check_tables_cover(ms, tables)
    freqs, widths = _ms_window(ms)
    with open_table(ms / "ANTENNA") as at:
        n_ant = at.nrows()
    out = []
    for tab, window in zip(tables, windows):
        kind = "Xf" if tab.viscal.startswith("Xf") else "B"
        sub = read_caltable(tab.path, expect=kind, spw=window.spw)
        values, flags = resample_solutions(sub, freqs, widths, phase_only=kind == "Xf")
        if _on_ms_grid(tab, sub, window, values, flags, freqs, n_ant):
            log.info("%s: %s is on its channel grid, applied as it is", ms.name, tab.path.name)
            out.append(tab.path)
            continue
        full_v = np.zeros((n_ant, freqs.size, values.shape[2]), dtype=values.dtype)
        full_f = np.ones(full_v.shape, dtype=bool)
        full_v[sub.antennas], full_f[sub.antennas] = values, flags
        path = workdir / f"{tab.path.name}.spw{window.spw}"
        write_caltable(path, template_ms=ms, kind=kind, values=full_v, flags=full_f, overwrite=True)
        log.info("%s: %s window %s -> %d channels", ms.name, tab.path.name, window.describe(), freqs.size)
        out.append(path)
    return out


def applycal(ms: str | Path, *, bp_table: str | Path, xy_table: str | Path | None) -> None:
    """casatasks.applycal of the B (+ Xf) table into CORRECTED_DATA of `ms` (no parallactic angle).

    Solutions are taken nearest in time (a bandpass holds one interval) and nearest in frequency
    (`apply_tables` first puts the tables on the data's channel grid); flagged solutions flag the
    data (calflag).
    """
    tables = [str(bp_table)] + ([str(xy_table)] if xy_table else [])
    kwargs = dict(vis=str(ms), gaintable=tables, interp=["nearest,nearest"] * len(tables),
                  calwt=[False] * len(tables), parang=False, applymode="calflag", flagbackup=False)
    run_task("applycal", **kwargs)
    with open_table(ms) as t:
        if "CORRECTED_DATA" not in t.colnames():
            raise LwaError(f"{ms}: applycal wrote no CORRECTED_DATA (see the CASA log)")


CANONICAL_CORR = (9, 10, 11, 12)  # casacore Stokes codes XX XY YX YY


def _permute_corr(ms: Path, perm: list[int]) -> None:
    """Reorder the correlation axis of every per-correlation column and of POLARIZATION."""
    with open_table(ms / "POLARIZATION", readonly=False) as pt:
        pt.putcell("CORR_TYPE", 0, np.asarray(pt.getcell("CORR_TYPE", 0))[perm])
        prod = np.asarray(pt.getcell("CORR_PRODUCT", 0))
        pt.putcell("CORR_PRODUCT", 0, np.take(prod, perm, axis=0 if prod.shape[0] == len(perm) else 1))
    with open_table(ms, readonly=False) as t:
        for col in t.colnames():
            if col in ("DATA", "FLAG", "WEIGHT", "SIGMA", "MODEL_DATA", "CORRECTED_DATA", "WEIGHT_SPECTRUM",
                       "SIGMA_SPECTRUM") and t.iscelldefined(col, 0):
                t.putcol(col, t.getcol(col)[..., perm])


@contextmanager
def _canonical_order(ms: Path) -> Iterator[None]:
    """Inside the block `ms` holds its correlations as XX,XY,YX,YY; its own order is restored after."""
    with open_table(ms / "POLARIZATION") as pt:
        corr = [int(c) for c in pt.getcell("CORR_TYPE", 0)]
    if tuple(corr) == CANONICAL_CORR or sorted(corr) != sorted(CANONICAL_CORR):
        yield
        return
    to_canonical = [corr.index(c) for c in CANONICAL_CORR]
    log.info("%s: correlations %s put in canonical order for applycal", ms.name, corr)
    _permute_corr(ms, to_canonical)
    try:
        yield
    finally:
        _permute_corr(ms, [CANONICAL_CORR.index(c) for c in corr])


def _calibrate(ms: Path, tables: list[CalTable]) -> None:
    with tempfile.TemporaryDirectory(prefix=".caltables.", dir=ms.parent) as work, _canonical_order(ms):
        grid = _tables_on_ms_grid(ms, tables, Path(work))
        applycal(ms, bp_table=grid[0], xy_table=grid[1] if len(grid) > 1 else None)


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
        make_dirs(outdir)
        default_list = outdir / FAILED_LIST
        targets = [outdir / n for n in names]
        for src, dst in zip(ms_paths, targets):
            check_ms_output(src, dst, overwrite=overwrite)
    failed_path = Path(failed_list) if failed_list else default_list
    logfile = Path(casa_logfile) if casa_logfile else failed_path.parent / "lwa-calib-casa.log"

    result = ApplyResult(failed_list=failed_path)
    with casa_log(logfile):
        for src, dst in progress(list(zip(ms_paths, targets)), what="apply", logger=log):
            try:
                if not src.is_dir():
                    raise LwaError(f"not found: {src}" if not src.exists() else f"{src} is not an MS folder")
                with ms_output(src, None if in_place else dst, in_place=in_place, overwrite=overwrite) as target:
                    _calibrate(target, tables)
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
