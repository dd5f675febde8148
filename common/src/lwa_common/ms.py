"""MeasurementSet helpers over python-casacore: the MS contracts every tool uses.

`check_ms` (a usable MS, before any work), `ms_info` -> `MsInfo` (what an MS holds, read once),
`ms_output` (write a copy or modify in place, atomically), `flag_chunks` (what is flagged, read in
row chunks), `data_column`, `ms_time_range`. The
concatenation is `lwa_common.msconcat`, the phase rotation `lwa_common.phasing`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output
from lwa_common.naming import subband_label
from lwa_common.subbands import subband_of_freq

if TYPE_CHECKING:  # astropy (0.15-0.3 s) is imported where a Time or a location is made: a tool that only
    # reads and flags an MS (lwa-flag rfi) starts without it
    from astropy.coordinates import EarthLocation
    from astropy.time import Time

__all__ = [
    "open_table",
    "check_ms",
    "MsInfo",
    "ms_info",
    "TimeRange",
    "interval_bounds",
    "data_column",
    "ms_time_range",
    "LINEAR_POLS",
    "check_ms_output",
    "ms_output",
    "flag_chunks",
]

log = logging.getLogger(__name__)

LINEAR_POLS = (9, 10, 11, 12)  # XX XY YX YY in casacore's Stokes enumeration
FLAG_CHUNK_BYTES = 128 * 2**20  # FLAG elements (one byte each) read at a time by flag_chunks


def open_table(path: str | Path, *, readonly: bool = True):
    """casacore table, or an LwaError naming the path."""
    from casacore.tables import table

    path = Path(path)
    if not path.exists():
        raise LwaError(f"not found: {path}")
    try:
        return table(str(path), readonly=readonly, ack=False)
    except RuntimeError as err:
        raise LwaError(f"cannot open {path} as a casacore table: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"


MS_SUBTABLES = ("ANTENNA", "SPECTRAL_WINDOW", "POLARIZATION", "DATA_DESCRIPTION", "FIELD")


def check_ms(path: str | Path, *, need_pols: tuple[int, ...] = LINEAR_POLS) -> None:
    """Fail early when `path` is not a usable MS: not a folder, no rows, a column whose storage
    cannot be read, a missing subtable, missing pols, no data column."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LwaError(f"{path}: not a Measurement Set (a file, not a folder)")
    with open_table(path) as t:
        if t.nrows() == 0:
            raise LwaError(f"{path}: MS has no rows")
        cols = set(t.colnames())
        if not {"DATA", "CORRECTED_DATA"} & cols:
            raise LwaError(f"{path}: MS has neither DATA nor CORRECTED_DATA")
        for col in [c for c in ("DATA", "FLAG", "UVW", "TIME") if c in cols]:
            try:
                t.getcell(col, 0)
            except RuntimeError as err:
                raise LwaError(f"{path}: column {col} cannot be read ({_first_line(err)})") from None
    for sub in MS_SUBTABLES:
        if not (path / sub).is_dir():
            raise LwaError(f"{path}: MS has no {sub} subtable")
        with open_table(path / sub) as st:
            if st.nrows() == 0:
                raise LwaError(f"{path}: MS subtable {sub} has no rows")
    with open_table(path / "POLARIZATION") as pt:
        corr = list(pt.getcell("CORR_TYPE", 0))
    missing = [p for p in need_pols if p not in corr]
    if missing:
        raise LwaError(f"{path}: MS lacks polarisations {missing} (has {corr}); need XX XY YX YY")


def data_column(path: str | Path, preferred: str = "CORRECTED_DATA") -> str:
    """`preferred` when present (and filled), else DATA with a warning."""
    with open_table(path) as t:
        cols = t.colnames()
        if preferred in cols:
            try:
                t.getcell(preferred, 0)
                return preferred
            except RuntimeError:
                pass
        if "DATA" in cols:
            if preferred != "DATA":
                log.warning("%s: no %s, using DATA", path, preferred)
            return "DATA"
    raise LwaError(f"{path}: MS has neither {preferred} nor DATA")


@dataclass(frozen=True)
class TimeRange:
    """The data in one product: first sample start to last sample end (UTC)."""

    start: Time
    end: Time
    first_centroid: Time

    @property
    def mid(self) -> Time:
        return self.start + (self.end - self.start) / 2

    def keywords(self) -> dict[str, object]:
        return _time_keywords(self.start, self.end)[0]


def _time_keywords(start: Time, end: Time) -> list[dict[str, object]]:
    """DATE-OBS, DATE-END and MJD-MID of each range `start`..`end` (Times, one value or arrays)."""
    mid = start + (end - start) / 2
    return [{"DATE-OBS": str(a), "DATE-END": str(b), "MJD-MID": float(m)}
            for a, b, m in zip(np.atleast_1d(start.utc.isot), np.atleast_1d(end.utc.isot),
                               np.atleast_1d(mid.utc.mjd), strict=True)]


@dataclass(frozen=True)
class MsInfo:
    """What the tools need to know about one MS, read once (`ms_info`).

    Times are the unique TIME values (casacore: sample centroids, MJD seconds), sorted, with the
    INTERVAL of each; frequencies are the channels of the first spectral window.
    """

    path: Path
    times_s: np.ndarray
    exposure_s: np.ndarray
    freqs_hz: np.ndarray
    columns: tuple[str, ...]
    subband: str = ""
    nrows: int = 0
    n_spw: int = 1
    antenna_names: tuple[str, ...] = ()
    antenna_itrf_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    phase_dirs_rad: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (ra, dec) per FIELD row
    corr_types: tuple[int, ...] = ()  # casacore Stokes enumeration (9 10 11 12 = XX XY YX YY)

    @property
    def n_times(self) -> int:
        return int(self.times_s.size)

    @property
    def n_antennas(self) -> int:
        return len(self.antenna_names)

    @property
    def freq_mhz(self) -> float:
        return float(np.mean(self.freqs_hz) / 1e6)

    @property
    def phase_dir_deg(self) -> tuple[float, float]:
        """(ra, dec) of the first field, degrees."""
        ra, dec = self.phase_dirs_rad[0]
        return float(np.degrees(ra) % 360.0), float(np.degrees(dec))

    @property
    def time_start(self) -> Time:
        return self.whole().start

    @property
    def time_end(self) -> Time:
        return self.whole().end

    @property
    def time_mid(self) -> Time:
        return self.whole().mid

    @property
    def array_centre(self) -> EarthLocation:
        """Mean antenna position; LwaError when the positions are not geocentric ITRF."""
        pos = np.asarray(self.antenna_itrf_m, dtype=float)
        if pos.ndim != 2 or pos.shape[0] == 0 or pos.shape[1] != 3 or not np.all(np.isfinite(pos)):
            raise LwaError(f"{self.path}: ANTENNA POSITION is not a list of ITRF x, y, z")
        centre_xyz = pos.mean(axis=0)
        if np.linalg.norm(centre_xyz) < 6.0e6:
            raise LwaError(f"{self.path}: antenna positions are not geocentric ITRF (|mean| < 6000 km)")
        import astropy.units as u
        from astropy.coordinates import EarthLocation

        return EarthLocation.from_geocentric(*centre_xyz, unit=u.m)

    def range_of(self, first: int, stop: int) -> TimeRange:
        """Time range of time steps first .. stop-1."""
        if not 0 <= first < stop <= self.n_times:
            raise LwaError(f"{self.path}: time steps {first}..{stop - 1} outside 0..{self.n_times - 1}")
        t0 = self.times_s[first] - self.exposure_s[first] / 2
        t1 = self.times_s[stop - 1] + self.exposure_s[stop - 1] / 2
        return TimeRange(_time(t0), _time(t1), _time(self.times_s[first]))

    def whole(self) -> TimeRange:
        return self.range_of(0, self.n_times)

    def intervals(self, count: int) -> list[TimeRange]:
        """The time range of each of wsclean's `count` intervals (`interval_bounds`)."""
        return [self.range_of(a, b) for a, b in interval_bounds(self.n_times, count)]

    def interval_keywords(self, count: int) -> list[dict[str, object]]:
        """`TimeRange.keywords` of each of `intervals(count)`, computed on arrays in one go: astropy
        Time costs ~0.4 ms per scalar range, paid once per snapshot run instead of per interval."""
        bounds = np.array(interval_bounds(self.n_times, count))
        first, last = bounds[:, 0], bounds[:, 1] - 1
        return _time_keywords(_time(self.times_s[first] - self.exposure_s[first] / 2),
                              _time(self.times_s[last] + self.exposure_s[last] / 2))


def _time(mjd_s: float | np.ndarray) -> Time:
    from astropy.time import Time

    return Time(mjd_s / 86400.0, format="mjd", scale="utc")


def interval_bounds(n_times: int, count: int) -> list[tuple[int, int]]:
    """wsclean's split of `n_times` steps into `count` intervals: [(first, stop), ...].

    wsclean's ``-intervals-out K`` cuts the N time steps of one MS into K runs of consecutive
    steps, interval ``i`` holding steps ``N*i//K`` up to (not including) ``N*(i+1)//K``.
    """
    if count < 1:
        raise LwaError(f"intervals-out must be >= 1, got {count}")
    if n_times < count:
        raise LwaError(f"the MS has {n_times} time step(s), fewer than the {count} intervals asked for")
    return [(n_times * i // count, n_times * (i + 1) // count) for i in range(count)]


def ms_time_range(path: str | Path) -> tuple[Time, Time]:
    """(start, end) of the data: first sample start to last sample end."""
    with open_table(path) as t:
        times = t.getcol("TIME")
        interval = t.getcol("INTERVAL")
    if len(times) == 0:
        raise LwaError(f"{path}: MS has no rows")
    start = (times - interval / 2).min()
    end = (times + interval / 2).max()
    return _time(start), _time(end)


def ms_info(path: str | Path, *, subband: str | None = None, check: bool = True) -> MsInfo:
    """Read `path` once: time steps, channels, antennas, phase centres, correlations, columns.

    `check` runs `check_ms` first. The subband label is `subband`, else the OVRO-LWA subband of
    the mean frequency (outside them: the frequency itself, with a warning).
    """
    path = Path(path)
    if check:
        check_ms(path)
    with open_table(path) as t:
        nrows = t.nrows()
        times = t.getcol("TIME") if nrows else np.zeros(0)
        exposure = t.getcol("INTERVAL") if nrows else np.zeros(0)
        columns = tuple(t.colnames())
    uniq, first = np.unique(times, return_index=True)
    if np.any(np.diff(times) < 0):
        log.warning("%s: rows are not in time order; wsclean counts time steps in row order", path)
    with open_table(path / "SPECTRAL_WINDOW") as sw:
        n_spw = sw.nrows()
        freqs = np.asarray(sw.getcell("CHAN_FREQ", 0), dtype=float)
    if n_spw != 1:
        log.warning("%s: %d spectral windows; using the first for the frequency", path, n_spw)
    with open_table(path / "ANTENNA") as at:
        names = tuple(str(n) for n in at.getcol("NAME"))
        positions = np.asarray(at.getcol("POSITION"), dtype=float)
    with open_table(path / "FIELD") as ft:
        dirs = np.asarray(ft.getcol("PHASE_DIR"), dtype=float)[:, 0, :]
    with open_table(path / "POLARIZATION") as pt:
        corr = tuple(int(c) for c in pt.getcell("CORR_TYPE", 0))
    return MsInfo(path=path, times_s=uniq, exposure_s=exposure[first], freqs_hz=freqs, columns=columns,
                  subband=subband or _subband_of(path, freqs), nrows=nrows, n_spw=n_spw, antenna_names=names,
                  antenna_itrf_m=positions, phase_dirs_rad=dirs, corr_types=corr)


def _subband_of(path: Path, freqs: np.ndarray) -> str:
    try:
        return subband_label(subband_of_freq(float(np.mean(freqs))))
    except LwaError:
        label = subband_label(float(np.mean(freqs)) / 1e6)
        log.warning("%s: %.3f MHz is outside the OVRO-LWA subbands; labelling it %s", path, np.mean(freqs) / 1e6,
                    label)
        return label

def check_ms_output(ms: str | Path, output: str | Path | None = None, *, in_place: bool = False,
                    overwrite: bool = False) -> Path:
    """Fail before work on a bad "copy or in place" request; return the MS that will hold the result.

    Exactly one of `output` (a new MS) or `in_place` (the input itself); `output` is not the input;
    an existing `output` needs `overwrite`; its folder must be writable.
    """
    ms = Path(ms)
    if in_place == (output is not None):
        raise LwaError("give exactly one of an output MS (-o) or --in-place")
    if in_place:
        return ms
    output = Path(output)
    if output.resolve() == ms.resolve():
        raise LwaError(f"output {output} is the input MS; use --in-place to change it in place")
    return check_output(output, overwrite=overwrite)


@contextlib.contextmanager
def ms_output(ms: str | Path, output: str | Path | None = None, *, in_place: bool = False,
              overwrite: bool = False, named: bool = False) -> Iterator[Path]:
    """Yield the MS to modify: `ms` itself with `in_place`, else a copy of `ms` under a temporary
    name that becomes `output` when the block ends without an error.

    The one "write a copy or modify in place" rule of every tool: the input is only read unless
    `in_place`; a copy is complete before anyone sees it under its name; a failed block leaves no
    new output. The request is checked first (`check_ms_output`).

    `named`: the copy is made (atomically) under its final name and modified there, so that the
    external commands run on it, logged and recorded for a rerun by hand, name the product; a
    failed block removes it. Otherwise an existing `output` (with `overwrite`) stays untouched
    until the new one is complete.
    """
    target = check_ms_output(ms, output, in_place=in_place, overwrite=overwrite)
    if in_place:
        yield target
        return
    if named:
        with atomic_path(target, directory=True) as tmp:
            shutil.copytree(ms, tmp, symlinks=True)
        try:
            yield target
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return
    with atomic_path(target, directory=True) as tmp:
        shutil.copytree(ms, tmp, symlinks=True)
        yield tmp


def flag_chunks(ms: str | Path, *, columns: Sequence[str] = (), chunk_bytes: int = FLAG_CHUNK_BYTES,
                rows: tuple[int, int] | None = None) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """FLAG of `ms` (rows x channels x correlations) in row chunks, each with the same rows of `columns`.

    The one reading of "what is flagged" behind every tool's flag statistics: FLAG_ROW, when the MS
    has it, is folded in (a flagged row counts as flagged in every channel and correlation). A chunk
    holds about `chunk_bytes` FLAG elements, so an MS of any size is read in bounded memory.
    `rows`: only the rows start..stop-1 (one block of a reader working side by side).
    """
    with open_table(ms) as t:
        n = t.nrows()
        first, n = rows if rows is not None else (0, n)
        has_flag_row = "FLAG_ROW" in t.colnames()
        per_row = int(np.asarray(t.getcell("FLAG", first)).size) if n > first else 1
        step = max(1024, chunk_bytes // max(1, per_row))
        for start in range(first, n, step):
            nrow = min(step, n - start)
            flags = t.getcol("FLAG", startrow=start, nrow=nrow)
            if has_flag_row:
                flags |= t.getcol("FLAG_ROW", startrow=start, nrow=nrow)[:, None, None]
            yield flags, {c: t.getcol(c, startrow=start, nrow=nrow) for c in columns}
