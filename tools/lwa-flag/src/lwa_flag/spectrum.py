"""Unpolarised narrow-band RFI from the array's Stokes I spectrum (`lwa-flag rfi`, after AOFlagger).

AOFlagger works on one baseline at a time. On one baseline a steady unpolarised emitter in a few
channels cannot be told from the sky: the sky's Stokes I spectrum is a sum of fringes whose beats
swing its amplitude by factors of ten across a subband on baselines longer than c / (2 pi dnu)
(83 m at 8 channels of 574 kHz, 500 m at 48 channels), and the extremes of such a spectrum sit at
the band edges. A per-baseline threshold low enough to find the emitter flagged 2-3 % of clean
data, most of it in the edge channels (issue 15). Over the array the beats average out: the median
|I| over all baselines of one integration is a smooth spectrum (spectral index, beam), while an
emitter, or a burst, in a channel lifts that channel on every baseline. So per integration:

    m(t, nu) = median over cross-correlations of |XX + YY| / 2 (flagged samples left out)
    r(t, nu) = m(t, nu) / median_nu m(t, nu) - 1

and a cell is flagged on every baseline when r exceeds `spectrum_sigma` x the robust scatter of r
over all cells (1.4826 MAD, `_mad_std`) and `spectrum_min_excess`. A broadband burst lifts a whole integration
and leaves r unchanged, so sky transients are kept; RFI on fewer than half of the baselines does
not move the median (the Q/U detection of the strategy is the tool for polarised RFI).

`_mad_std` is astropy's `mad_std` written out (the same numpy calls, the same bits; tested against
it): importing `astropy.stats` loads astropy.units, 0.15-0.2 s of a CLI whose own work here is ~0.1 s,
and nothing else in `lwa-flag rfi` needs astropy.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from lwa_common.config import Rfi
from lwa_common.fitting import MAD_TO_SIGMA
from lwa_common.ms import open_table
from lwa_flag._ms import chunk_rows

__all__ = ["array_spectrum", "spectral_outliers", "flag_spectral_rfi"]

log = logging.getLogger(__name__)

MIN_CHANNELS = 3  # a median spectrum of fewer channels says nothing about one of them


def _mad_std(values: np.ndarray) -> np.floating:
    """1.4826 x the median absolute deviation from the median: astropy `mad_std(values)`'s arithmetic."""
    return np.median(np.abs(values - np.median(values)), overwrite_input=True) * MAD_TO_SIGMA


class _ChunkReader:
    """|XX + YY| / 2 of the cross-correlations, chunk by chunk, read into buffers reused for every chunk.

    Whole cells are read (`getcolnp`, a copy into the buffer) and XX, YY taken from them: on the
    bench MS (256 antennas, 48 channels) that costs 0.01-0.02 s of CPU against 0.07-0.17 s for a
    `getcolslice` of the two polarisations, a strided read.
    """

    def __init__(self, t, column: str, step: int) -> None:
        self.t, self.column = t, column
        cell = np.asarray(t.getcell(column, 0)) if t.nrows() else np.zeros((0, 4), np.complex64)
        self.pols = (0, cell.shape[-1] - 1)  # XX and YY of XX XY YX YY
        rows = min(step, t.nrows())
        self.data = np.empty((rows, *cell.shape), dtype=cell.dtype)
        self.flags = np.empty(self.data.shape, dtype=bool)
        self.flag_row = "FLAG_ROW" in t.colnames()

    def read(self, start: int, nrow: int) -> tuple[np.ndarray, np.ndarray]:
        """Amplitudes (NaN where flagged) of the cross-correlations in rows [start, start + nrow), their TIME."""
        t = self.t
        a1 = t.getcol("ANTENNA1", startrow=start, nrow=nrow)
        a2 = t.getcol("ANTENNA2", startrow=start, nrow=nrow)
        times = t.getcol("TIME", startrow=start, nrow=nrow)
        cross = a1 != a2
        data, flags = self.data[:nrow], self.flags[:nrow]
        t.getcolnp(self.column, data, startrow=start, nrow=nrow)
        t.getcolnp("FLAG", flags, startrow=start, nrow=nrow)
        xx, yy = self.pols
        # on every row from the strided views, then the cross rows taken once (selecting them from
        # the complex planes first copied each: 2.3x the CPU on the bench MS)
        amp = np.abs(np.add(data[:, :, xx], data[:, :, yy])).astype(np.float32, copy=False)
        amp *= 0.5
        bad = flags[:, :, xx] | flags[:, :, yy]
        if self.flag_row:
            bad |= t.getcol("FLAG_ROW", startrow=start, nrow=nrow)[:, None]
        amp[bad] = np.nan
        return amp[cross], times[cross]


def array_spectrum(ms: str | Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per integration the median Stokes I amplitude over the cross-correlations: (times, m[time, chan]).

    One chunked read; only the rows of the integrations not yet complete are held (MS rows are in
    time order; if they are not, every integration is held until the end).
    """
    ms = Path(ms)
    pending: dict[float, list[np.ndarray]] = {}
    done: dict[float, np.ndarray] = {}

    def finish(keep_from: float | None) -> None:
        for tv in [tv for tv in pending if keep_from is None or tv < keep_from]:
            rows = np.concatenate(pending.pop(tv))
            with warnings.catch_warnings():  # a channel flagged on every baseline: NaN, not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                done[tv] = np.nanmedian(rows, axis=0)

    with open_table(ms) as t:
        n = t.nrows()
        step = chunk_rows(ms)
        reader = _ChunkReader(t, column, step)
        for start in range(0, n, step):
            amp, times = reader.read(start, min(step, n - start))
            for tv in np.unique(times):
                pending.setdefault(float(tv), []).append(amp[times == tv])
            if times.size:
                finish(float(times.min()))
    finish(None)
    order = sorted(done)
    return np.array(order), np.array([done[tv] for tv in order])


def spectral_outliers(m: np.ndarray, settings: Rfi = Rfi()) -> tuple[np.ndarray, dict]:
    """Cells (time, channel) of the median spectra `m` to flag, and the statistics that chose them."""
    n_time, n_chan = m.shape
    info = {"n_channels": n_chan, "sigma": None, "threshold": None}
    cells = np.zeros(m.shape, bool)
    if settings.spectrum_sigma <= 0 or n_chan < MIN_CHANNELS:
        return cells, info
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanmedian(m, axis=1, keepdims=True)
        r = m / ref - 1.0
    finite = np.isfinite(r)
    if not finite.any():
        return cells, info
    sigma = float(_mad_std(r[finite]))
    threshold = max(settings.spectrum_sigma * sigma, settings.spectrum_min_excess)
    cells[finite] = r[finite] > threshold
    info.update(sigma=round(sigma, 5), threshold=round(threshold, 5),
                max_excess=round(float(r[finite].max()), 4))
    return cells, info


def _write_cells(ms: Path, times: np.ndarray, cells: np.ndarray) -> int:
    """OR the flagged (time, channel) cells into every row and polarisation; returns visibilities flagged."""
    bad = {float(tv): np.flatnonzero(c) for tv, c in zip(times, cells) if c.any()}
    n_set = 0
    with open_table(ms, readonly=False) as t:
        n = t.nrows()
        step = chunk_rows(ms, itemsize=1)
        for start in range(0, n, step):
            nrow = min(step, n - start)
            tm = t.getcol("TIME", startrow=start, nrow=nrow)
            hit = [tv for tv in np.unique(tm) if float(tv) in bad]
            if not hit:
                continue
            f = t.getcol("FLAG", startrow=start, nrow=nrow)
            before = int(np.count_nonzero(f))
            for tv in hit:
                f[np.ix_(tm == tv, bad[float(tv)])] = True
            t.putcol("FLAG", f, startrow=start, nrow=nrow)
            n_set += int(np.count_nonzero(f)) - before
    return n_set


def flag_spectral_rfi(ms: str | Path, column: str, settings: Rfi = Rfi()) -> dict:
    """Find and flag the (integration, channel) cells where the array's Stokes I spectrum jumps.

    Returns what the summary records: settings, statistics, the cells flagged (UTC MJD seconds of
    each integration with its channels) and the number of FLAG elements set.
    """
    ms = Path(ms)
    out: dict = {"spectrum_sigma": settings.spectrum_sigma, "spectrum_min_excess": settings.spectrum_min_excess}
    if settings.spectrum_sigma <= 0:
        return {**out, "skipped": "spectrum_sigma 0"}
    times, m = array_spectrum(ms, column)
    cells, info = spectral_outliers(m, settings)
    out.update(info)
    if info["n_channels"] < MIN_CHANNELS:
        log.warning("%s: %d channels: no array-spectrum RFI pass (needs %d)", ms, info["n_channels"], MIN_CHANNELS)
        return {**out, "skipped": f"fewer than {MIN_CHANNELS} channels"}
    out["cells"] = [{"time": round(float(tv), 3), "channels": np.flatnonzero(c).tolist()}
                    for tv, c in zip(times, cells) if c.any()]
    out["flags_set"] = _write_cells(ms, times, cells) if cells.any() else 0
    log.info("%s: array spectrum: %d of %d (integration, channel) cells flagged (threshold %.3g of the median)",
             ms, int(cells.sum()), cells.size, info["threshold"] or 0.0)
    return out
