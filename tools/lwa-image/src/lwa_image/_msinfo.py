"""What the imaging steps need to know about an MS: time steps, wsclean's interval split, subband.

wsclean's ``-intervals-out K`` cuts the N time steps of one MS into K runs of consecutive steps,
interval ``i`` holding steps ``N*i//K`` up to (not including) ``N*(i+1)//K``. The FITS headers
must carry the time range of exactly the data wsclean put into each image, so that split is
reproduced here (and cross-checked against the DATE-OBS wsclean writes, which is the centroid of
the interval's first time step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.ms import check_ms, open_table
from lwa_common.naming import subband_label
from lwa_common.subbands import subband_of_freq

__all__ = ["MsTimes", "ms_times", "TimeRange", "interval_bounds"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeRange:
    """The data in one image: first sample start to last sample end (UTC)."""

    start: Time
    end: Time
    first_centroid: Time

    @property
    def mid(self) -> Time:
        return self.start + (self.end - self.start) / 2

    def keywords(self) -> dict[str, object]:
        return {
            "DATE-OBS": self.start.utc.isot,
            "DATE-END": self.end.utc.isot,
            "MJD-MID": float(self.mid.utc.mjd),
        }


@dataclass(frozen=True)
class MsTimes:
    """Unique time steps of one MS (sorted), their integration times, frequencies, subband."""

    path: Path
    times_s: np.ndarray  # MJD seconds (casacore TIME: sample centroids)
    exposure_s: np.ndarray  # INTERVAL per time step
    freqs_hz: np.ndarray
    subband: str
    columns: tuple[str, ...]

    @property
    def n_times(self) -> int:
        return int(self.times_s.size)

    @property
    def freq_mhz(self) -> float:
        return float(np.mean(self.freqs_hz) / 1e6)

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
        """The time range of each of wsclean's `count` intervals."""
        return [self.range_of(a, b) for a, b in interval_bounds(self.n_times, count)]


def _time(mjd_s: float) -> Time:
    return Time(mjd_s / 86400.0, format="mjd", scale="utc")


def interval_bounds(n_times: int, count: int) -> list[tuple[int, int]]:
    """wsclean's split of `n_times` steps into `count` intervals: [(first, stop), ...]."""
    if count < 1:
        raise LwaError(f"intervals-out must be >= 1, got {count}")
    if n_times < count:
        raise LwaError(f"the MS has {n_times} time step(s), fewer than the {count} intervals asked for")
    return [(n_times * i // count, n_times * (i + 1) // count) for i in range(count)]


def ms_times(path: str | Path, *, subband: str | None = None) -> MsTimes:
    """Read the time steps and frequencies of `path` (one spectral window expected)."""
    path = Path(path)
    check_ms(path)
    with open_table(path) as t:
        times = t.getcol("TIME")
        exposure = t.getcol("INTERVAL")
        columns = tuple(t.colnames())
    uniq, first = np.unique(times, return_index=True)
    if np.any(np.diff(times) < 0):
        log.warning("%s: rows are not in time order; wsclean counts time steps in row order", path)
    with open_table(path / "SPECTRAL_WINDOW") as sw:
        if sw.nrows() != 1:
            log.warning("%s: %d spectral windows; using the first for the frequency", path, sw.nrows())
        freqs = np.asarray(sw.getcell("CHAN_FREQ", 0), dtype=float)
    if subband is None:
        try:
            subband = subband_label(subband_of_freq(float(np.mean(freqs))))
        except LwaError:
            subband = subband_label(float(np.mean(freqs)) / 1e6)
            log.warning("%s: %.3f MHz is outside the OVRO-LWA subbands; labelling it %s",
                        path, np.mean(freqs) / 1e6, subband)
    return MsTimes(path=path, times_s=uniq, exposure_s=exposure[first], freqs_hz=freqs, subband=subband,
                   columns=columns)
