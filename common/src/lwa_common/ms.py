"""MeasurementSet helpers over python-casacore."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from lwa_common.errors import LwaError

__all__ = [
    "open_table",
    "check_ms",
    "MsSummary",
    "ms_summary",
    "data_column",
    "ms_time_range",
    "LINEAR_POLS",
]

log = logging.getLogger(__name__)

LINEAR_POLS = (9, 10, 11, 12)  # XX XY YX YY in casacore's Stokes enumeration


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
class MsSummary:
    path: Path
    nrows: int
    n_antennas: int
    n_times: int
    freqs_hz: np.ndarray
    time_start: Time
    time_end: Time
    phase_dir_deg: tuple[float, float]
    columns: tuple[str, ...]

    @property
    def freq_mhz(self) -> float:
        return float(np.mean(self.freqs_hz) / 1e6)

    @property
    def time_mid(self) -> Time:
        return self.time_start + (self.time_end - self.time_start) / 2


def ms_time_range(path: str | Path) -> tuple[Time, Time]:
    """(start, end) of the data: first sample start to last sample end."""
    with open_table(path) as t:
        times = t.getcol("TIME")
        interval = t.getcol("INTERVAL")
    if len(times) == 0:
        raise LwaError(f"{path}: MS has no rows")
    start = (times - interval / 2).min()
    end = (times + interval / 2).max()
    return Time(start / 86400.0, format="mjd", scale="utc"), Time(end / 86400.0, format="mjd", scale="utc")


def ms_summary(path: str | Path) -> MsSummary:
    path = Path(path)
    with open_table(path) as t:
        nrows = t.nrows()
        columns = tuple(t.colnames())
        times = np.unique(t.getcol("TIME")) if nrows else np.array([])
    with open_table(path / "SPECTRAL_WINDOW") as sw:
        freqs = np.asarray(sw.getcell("CHAN_FREQ", 0))
    with open_table(path / "ANTENNA") as at:
        nant = at.nrows()
    with open_table(path / "FIELD") as ft:
        pdir = np.asarray(ft.getcell("PHASE_DIR", 0)).reshape(-1)
    start, end = ms_time_range(path) if nrows else (Time(0, format="mjd"), Time(0, format="mjd"))
    return MsSummary(
        path=path,
        nrows=nrows,
        n_antennas=nant,
        n_times=len(times),
        freqs_hz=freqs,
        time_start=start,
        time_end=end,
        phase_dir_deg=(float(np.degrees(pdir[0]) % 360.0), float(np.degrees(pdir[1]))),
        columns=columns,
    )
