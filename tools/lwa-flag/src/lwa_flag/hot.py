"""Hot baselines and dead antennas, the two passes of DESIGN.md.

Pass 1 (amplitude vs uv distance): the mean parallel-hand amplitude (|XX| + |YY|)/2 of every
baseline, over unflagged channels and times, sorted by uv distance; a rolling median (window 100
baselines) and a rolling robust sigma (1.4826 x rolling median absolute deviation from it) give the
local expectation, and a baseline more than `sigma_uv` (7) above it is hot. The sky makes short
baselines bright, so only a *local* comparison in uv distance works. The same comparison runs on a
second, sky-free statistic: the mean Q/U residual (|XX - YY|^2 + |XY + YX|^2)^(1/2) / 2, in which
the sky's Stokes I and V cancel (only its small apparent Q and U and the noise remain), while an
additive baseline fault, independent in the four products, does not: it finds hot baselines of a
few times the noise even under bright polarised sources and bursts, which swamp both amplitudes.

Pass 2 (cross-pol heatmap): the mean cross-hand amplitude (|XY| + |YX|)/2 as an antenna x antenna
matrix. Calibrated cross-hands hold little sky, so a hot baseline (correlated pickup, crosstalk)
stands out far better here than in pass 1: a robust z-score over the matrix flags baselines above
`sigma_heatmap` (5).

Then every antenna with more than `antenna_fraction` (25 %) of its baselines flagged is flagged
whole, and dead antennas (median amplitude of one polarisation below `dead_fraction` of the array
median) are flagged whole before either pass so that they do not bias the statistics. Baselines
shorter than `min_uv_lambda` (4 lambda) are skipped (diffuse Galactic emission dominates them).

Our own algorithm (no library does this): one chunked read of the data column and FLAG, a
vectorised amplitude/channel reduction (BLAS), per-baseline sums by `np.bincount`, and the rolling
statistics by `scipy.ndimage.median_filter` on the uv-sorted array. The per-sample arithmetic runs
on cache-sized pieces of each chunk (`PIECE_BYTES`), the per-antenna medians sort an antenna x
antenna matrix. See bench/bench_flag.py for its cost against the floor of that work.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import norm

from lwa_common.config import HotBaselines
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import data_column, open_table
from lwa_common.parallel import imap_ordered, row_blocks
from lwa_common.products import FLAGGED_BASELINES
from lwa_flag._ms import antenna_names, any_polarization, flag_rows
from lwa_flag._stats import robust_median_sigma, rolling_median, rolling_median_sigma

__all__ = [
    "BaselineStats",
    "HotBaselineResult",
    "baseline_stats",
    "detect_hot_baselines",
    "find_hot_baselines",
    "apply_hot_flags",
    "write_flagged_csv",
    "rolling_median_sigma",
]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
BLOCK_MB = 256.0  # rows of about this many MB of visibilities per process task (fixed: results do not depend on
# the process count); an hour at 48 channels (34 GB) is ~130 blocks
PIECE_BYTES = 1 << 20  # visibilities per piece of the per-sample arithmetic (cache-sized; values do not depend on it)
_POL_CODES = {"XX": 9, "XY": 10, "YX": 11, "YY": 12}
_STATS = ("XX", "XY", "YX", "YY", "QU")  # the four products, then the sky-free Q/U residual


@dataclass(frozen=True)
class BaselineStats:
    """Per-baseline means of |V| over unflagged channels and times (one entry per ant1 < ant2)."""

    ant1: np.ndarray
    ant2: np.ndarray
    uv_lambda: np.ndarray
    amp: dict[str, np.ndarray]  # pol name -> mean amplitude (NaN when fully flagged)
    n_good: np.ndarray  # unflagged samples (channels x times x pols)
    n_antennas: int
    freq_hz: float
    column: str
    amp_sq: dict[str, np.ndarray] | None = None  # pol name -> mean |V|^2 (the per-sample spread)


@dataclass
class HotBaselineResult:
    """What the two passes found; arrays are per baseline (ant1 < ant2), aligned with `stats`."""

    stats: BaselineStats
    settings: dict
    antenna_names: list[str]
    considered: np.ndarray  # used by the passes (>= min uv, data present, no dead antenna)
    amp_par: np.ndarray
    amp_cross: np.ndarray
    rolling_median: np.ndarray  # NaN where not considered
    rolling_sigma: np.ndarray
    score_uv: np.ndarray
    score_cross: np.ndarray
    flag_uv: np.ndarray
    flag_cross: np.ndarray
    cross_median: float
    cross_sigma: float
    dead: dict[int, dict] = field(default_factory=dict)  # antenna -> {pol, ratio}
    antenna_rule: dict[int, float] = field(default_factory=dict)  # antenna -> flagged fraction
    antenna_fraction: np.ndarray | None = None
    amp_qu: np.ndarray | None = None  # the sky-free Q/U residual (pass 1's second statistic)
    score_qu: np.ndarray | None = None
    flag_par: np.ndarray | None = None  # pass 1 on the parallel-hand amplitude (flag_uv: either statistic)
    flag_qu: np.ndarray | None = None

    @property
    def flagged_antennas(self) -> list[int]:
        return sorted(set(self.dead) | set(self.antenna_rule))

    @property
    def flag_baseline(self) -> np.ndarray:
        return self.flag_uv | self.flag_cross

    def baseline_is_flagged(self) -> np.ndarray:
        """Every baseline that ends up flagged (by a pass or through a flagged antenna)."""
        ants = np.zeros(self.stats.n_antennas, bool)
        ants[self.flagged_antennas] = True
        return self.flag_baseline | ants[self.stats.ant1] | ants[self.stats.ant2]

    def flagged_pairs(self) -> list[tuple[int, int]]:
        idx = np.flatnonzero(self.flag_baseline)
        return [(int(self.stats.ant1[i]), int(self.stats.ant2[i])) for i in idx]

    def summary(self) -> dict:
        names = self.antenna_names
        pairs = [
            {"ant1": a, "ant2": b, "names": [names[a], names[b]],
             "reason": self.reason(i),
             "uv_lambda": round(float(self.stats.uv_lambda[i]), 3),
             "score_uv": _round(self.score_uv[i]), "score_crosspol": _round(self.score_cross[i]),
             **({"score_qu": _round(self.score_qu[i])} if self.score_qu is not None else {})}
            for i, (a, b) in zip(np.flatnonzero(self.flag_baseline), self.flagged_pairs())
        ]
        return {
            "column": self.stats.column,
            "settings": self.settings,
            "n_baselines": int(self.stats.ant1.size),
            "n_considered": int(self.considered.sum()),
            "n_flagged_uv": int(self.flag_uv.sum()),
            "n_flagged_qu": int(self.flag_qu.sum()) if self.flag_qu is not None else 0,
            "n_flagged_crosspol": int(self.flag_cross.sum()),
            "baselines": pairs,
            "dead_antennas": [{"antenna": a, "name": names[a], **v} for a, v in sorted(self.dead.items())],
            "antennas_over_fraction": [{"antenna": a, "name": names[a], "fraction": round(f, 4)}
                                       for a, f in sorted(self.antenna_rule.items())],
            "flagged_antennas": [{"antenna": a, "name": names[a]} for a in self.flagged_antennas],
        }


    def reasons(self, i: int) -> list[tuple[str, float]]:
        """(reason, score) of every pass that flagged baseline `i`: amp_vs_uv, qu_vs_uv, crosspol."""
        par = self.flag_uv if self.flag_par is None else self.flag_par
        out = [("amp_vs_uv", par[i], self.score_uv[i]), ("crosspol", self.flag_cross[i], self.score_cross[i])]
        if self.flag_qu is not None:
            out.insert(1, ("qu_vs_uv", self.flag_qu[i], self.score_qu[i]))
        return [(name, float(score)) for name, on, score in out if on]

    def reason(self, i: int) -> str:
        return "+".join(name for name, _ in self.reasons(i))


def _round(x: float) -> float | None:
    return round(float(x), 3) if np.isfinite(x) else None


def _pol_index(ms: Path) -> dict[str, int]:
    with open_table(ms / "POLARIZATION") as pt:
        corr = [int(c) for c in pt.getcell("CORR_TYPE", 0)]
    missing = [p for p, code in _POL_CODES.items() if code not in corr]
    if missing:
        raise LwaError(f"{ms}: MS lacks polarisations {missing} (has {corr}); need XX XY YX YY")
    return {p: corr.index(code) for p, code in _POL_CODES.items()}


def baseline_stats(ms: str | Path, *, column: str | None = None, chunk_mb: float = 16.0, processes: int = 0,
                   block_mb: float = BLOCK_MB) -> BaselineStats:
    """One chunked pass over the main table: per-baseline mean |V| per polarisation and uv length.

    `column`: None picks CORRECTED_DATA when present, else DATA (with a warning). Chunks of about
    `chunk_mb` MB of visibilities are read into reused buffers (`getcolnp`), so memory stays flat
    and the reduction runs on cache-warm data. The rows are cut into blocks of about `block_mb` MB
    of visibilities, summed side by side in `processes` processes (0: one per CPU of the job,
    `lwa_common.parallel`) and added in block order: the same sums, to the bit, whatever the
    number of processes.
    """
    ms = Path(ms)
    column = column or data_column(ms, "CORRECTED_DATA")
    pol = _pol_index(ms)
    with open_table(ms / "SPECTRAL_WINDOW") as sw:
        freqs = np.concatenate([np.asarray(sw.getcell("CHAN_FREQ", i)).ravel() for i in range(sw.nrows())])
    freq_hz = float(np.mean(freqs))
    with open_table(ms / "ANTENNA") as at:
        n_ant = at.nrows()
    with open_table(ms) as t:
        if column not in t.colnames():
            raise LwaError(f"{ms}: no column {column}")
        n = t.nrows()
        cell = np.asarray(t.getcell(column, 0))
    if cell.ndim != 2 or cell.shape[1] <= max(pol.values()):
        raise LwaError(f"{ms}: {column} cells have shape {cell.shape}, expected (channels, 4 pols)")
    step = int(max(256, chunk_mb * 1e6 // max(1, cell.nbytes)))
    block = step * max(1, int(round(block_mb / chunk_mb)))
    tasks = [_Block(str(ms), column, pol, n_ant, start, stop, step) for start, stop in row_blocks(n, block)]
    totals = None
    for part in imap_ordered(_block_sums, tasks, processes=processes):  # added in block order
        totals = part if totals is None else [t + p for t, p in zip(totals, part)]
    sums, sq_sums, counts, uv_sum, uv_n = totals
    first, second = np.triu_indices(n_ant)  # the antennas of each key (_baseline_key)
    uv_n[first == second] = 0  # the autocorrelations' keys: not baselines
    present = np.flatnonzero(uv_n > 0)
    if present.size == 0:
        raise LwaError(f"{ms}: no cross-correlation rows")
    ant1, ant2 = first[present], second[present]
    good = np.take(counts, present, axis=1)  # np.take: ~6x faster than [:, present] here
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, mean_sq = np.take(sums, present, axis=1) / good, np.take(sq_sums, present, axis=1) / good
    amp = {p: mean[j] for j, p in enumerate(_STATS)}
    amp_sq = {p: mean_sq[j] for j, p in enumerate(_STATS)}
    return BaselineStats(
        ant1=ant1, ant2=ant2, uv_lambda=uv_sum[present] / uv_n[present] * freq_hz / C_M_S, amp=amp, amp_sq=amp_sq,
        n_good=good[:4].sum(axis=0), n_antennas=n_ant, freq_hz=freq_hz, column=column,
    )


@dataclass(frozen=True)
class _Block:
    """One block of rows of `baseline_stats`, read in chunks of `step` rows (picklable: a process's task)."""

    ms: str
    column: str
    pol: dict[str, int]
    n_ant: int
    start: int
    stop: int
    step: int


def _block_sums(b: _Block) -> tuple[np.ndarray, ...]:
    """Per-baseline sums of |V|, |V|^2, unflagged samples (each _STATS x keys), uv length and rows; one
    key per antenna pair with itself included (`_baseline_key`), n_ant (n_ant + 1) / 2 of them."""
    order = [b.pol[p] for p in ("XX", "XY", "YX", "YY")]
    n_key = b.n_ant * (b.n_ant + 1) // 2
    sums, sq_sums, counts = (np.zeros((len(_STATS), n_key)) for _ in range(3))
    uv_sum, uv_n = np.zeros(n_key), np.zeros(n_key)
    with open_table(Path(b.ms)) as t:
        has_flag_row = "FLAG_ROW" in t.colnames()
        cell = np.asarray(t.getcell(b.column, b.start))
        rows = min(b.step, b.stop - b.start)
        data_buf = np.empty((rows,) + cell.shape, dtype=cell.dtype)
        flag_buf = np.empty((rows,) + cell.shape, dtype=bool)
        amp_buf = np.empty((rows,) + cell.shape, dtype=np.abs(cell[:1, :1]).dtype)
        for start in range(b.start, b.stop, b.step):
            nrow = min(b.step, b.stop - start)
            a1 = t.getcol("ANTENNA1", startrow=start, nrow=nrow)
            a2 = t.getcol("ANTENNA2", startrow=start, nrow=nrow)
            uvw = t.getcol("UVW", startrow=start, nrow=nrow)
            data, flags, amp = data_buf[:nrow], flag_buf[:nrow], amp_buf[:nrow]
            t.getcolnp(b.column, data, startrow=start, nrow=nrow)
            t.getcolnp("FLAG", flags, startrow=start, nrow=nrow)
            if has_flag_row:
                flag_row = t.getcol("FLAG_ROW", startrow=start, nrow=nrow)
                if flag_row.any():
                    flags[flag_row] = True
            # autocorrelations land on the diagonal keys, which baseline_stats drops; the chunk's keys span
            # [lo, hi): its bincounts cover that range only (bins outside it would only add +0.0)
            key = _baseline_key(a1, a2, b.n_ant)
            lo, hi = int(key.min()), int(key.max()) + 1
            key -= lo
            s, c, q = _row_sums(data, flags, b.pol, amp)
            rows_per_key = np.bincount(key, minlength=hi - lo)
            every_channel = (c == data.shape[1]).all(axis=1)  # statistics with no sample left out in the chunk
            for j, i in enumerate(order + [data.shape[2]]):  # QU after the products
                sums[j, lo:hi] += np.bincount(key, weights=s[i], minlength=hi - lo)
                sq_sums[j, lo:hi] += np.bincount(key, weights=q[i], minlength=hi - lo)
                # all rows count every channel: rows x channels, the integer sum the bincount would make
                counts[j, lo:hi] += (rows_per_key * float(data.shape[1]) if every_channel[i]
                                     else np.bincount(key, weights=c[i], minlength=hi - lo))
            uv_sum[lo:hi] += np.bincount(key, weights=np.hypot(uvw[:, 0], uvw[:, 1]), minlength=hi - lo)
            uv_n[lo:hi] += rows_per_key
    return sums, sq_sums, counts, uv_sum, uv_n


def _baseline_key(a1: np.ndarray, a2: np.ndarray, n_ant: int) -> np.ndarray:
    """Row-major index of (min, max) of the antenna pair in the upper triangle, diagonal included
    (`np.triu_indices(n_ant)` order, the order of a1 * n_ant + a2): half the bins of that key."""
    lo, hi = np.minimum(a1, a2).astype(np.int64), np.maximum(a1, a2).astype(np.int64)
    return lo * (2 * n_ant - lo + 1) // 2 + (hi - lo)


def _row_sums(data: np.ndarray, flags: np.ndarray, pol: dict[str, int], amp: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the sums of |V| and |V|^2 over unflagged channels and their number, for each product
    then the Q/U residual: (npol + 1, nrow) each (a row per statistic: contiguous bincount weights).
    Worked in pieces of about PIECE_BYTES of visibilities, so that the per-sample arithmetic (~10
    passes) runs on cache-warm data instead of streaming the 16 MB chunk from memory each pass; every
    value is its row's own: the same bits. A piece with nothing flagged skips the masking passes."""
    nrow, _, npol = data.shape
    out = np.empty((3, npol + 1, nrow))
    step = max(1, PIECE_BYTES // max(1, data[:1].nbytes))
    for lo in range(0, nrow, step):
        rows = slice(lo, min(lo + step, nrow))
        piece_flags = flags[rows] if flags[rows].any() else None  # None: nothing flagged, no masking passes
        products = _reduce_channels(data[rows], piece_flags, amp[rows])
        residual = _reduce_channels(*_qu_residual(data[rows], piece_flags, pol), amplitudes=True)
        for k, (x, y) in enumerate(zip(products, residual)):
            out[k, :npol, rows] = x.T
            out[k, npol:, rows] = y.T
    return out[0], out[1], out[2]


def _qu_residual(data: np.ndarray, flags: np.ndarray | None, pol: dict[str, int]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per sample (|XX - YY|^2 + |XY + YX|^2)^(1/2) / 2, shape (nrow, nchan, 1), and its flags (None
    when `flags` is None: nothing flagged).

    The sky's Stokes I cancels in XX - YY and its Stokes V in XY + YX (XY = U + iV, YX = U - iV),
    so an unpolarised or circularly polarised sky, bright sources and bursts included, leaves only
    its Q and U (apparent: small for compact sources at these frequencies) and the noise; an
    additive baseline fault with independent phases in the four products does not cancel.
    """
    d1 = data[..., pol["XX"]] - data[..., pol["YY"]]
    d2 = data[..., pol["XY"]] + data[..., pol["YX"]]
    # ((a² + b²) + c²) + d², as the expression would sum them, in one buffer: no temporary per term
    power = np.square(d1.real)
    power += np.square(d1.imag, out=d1.real)
    power += np.square(d2.real, out=d1.real)
    power += np.square(d2.imag, out=d1.real)
    np.sqrt(power, out=power)
    power *= 0.5
    if flags is None:
        return power[..., None], None
    return power[..., None], any_polarization(flags)[..., None]  # any flagged product


def _reduce_channels(data: np.ndarray, flags: np.ndarray | None, amp: np.ndarray | None = None, *,
                     amplitudes: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums of |V| and |V|^2 over unflagged channels and the number of them: (nrow, npol) each.

    np.abs (into `amp` when given) then a BLAS matrix-vector product over the channel axis: ~10x
    faster than `amp.sum(axis=1)` on the (row, chan, pol) layout. Non-finite samples count as
    flagged, as do `flags` (None: nothing flagged). `amplitudes`: `data` holds amplitudes already
    (the Q/U residual, >= 0) and is scratch: worked in place, with no |.| pass.
    """
    n_chan = data.shape[1]
    if amplitudes:
        amp = data
    else:
        amp = np.abs(data, out=amp) if amp is not None else np.abs(data)
    ones = np.ones(n_chan, dtype=amp.dtype)
    if flags is not None and flags.any():
        np.putmask(amp, flags, 0.0)
        good = np.matmul(ones, (~flags).astype(amp.dtype))
    else:
        good = np.full((data.shape[0], data.shape[2]), float(n_chan), dtype=amp.dtype)
    total = np.matmul(ones, amp)
    bad = ~np.isfinite(total)
    rows = np.flatnonzero(bad.any(axis=1)) if bad.any() else None
    if rows is not None:  # rare: NaN/inf samples; redo those rows excluding them
        sub = amp[rows]
        ok = np.isfinite(sub) if flags is None else np.isfinite(sub) & ~flags[rows]
        sub = np.where(ok, sub, 0.0)
        total[rows] = sub.sum(axis=1)
        good[rows] = ok.sum(axis=1)
    squares = np.matmul(ones, np.square(amp, out=amp))  # amp is a scratch buffer from here on
    if rows is not None:
        squares[rows] = (sub * sub).sum(axis=1)
    return total.astype(np.float64), good.astype(np.float64), squares.astype(np.float64)


def _sigma_floor(sigma: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Keep a zero MAD (noiseless or constant data) from turning every tiny excess into infinity."""
    floor = 1e-6 * np.abs(level) + np.finfo(np.float32).tiny
    return np.maximum(sigma, floor)


def _antenna_medians(ant1: np.ndarray, ant2: np.ndarray, values: np.ndarray, n_ant: int) -> np.ndarray:
    """Per antenna, the median of `values` over its baselines (finite values only; NaN if none).

    Vectorised: the values as a symmetric antenna x antenna matrix (NaN where there is no finite
    value), each row sorted at once (NaN last), the middle element(s) of its finite values averaged:
    ~5x faster than sorting the (antenna, value) pairs of every baseline.
    """
    ok = np.isfinite(values)
    matrix = np.full((n_ant, n_ant), np.nan)
    matrix[ant1[ok], ant2[ok]] = values[ok]
    matrix[ant2[ok], ant1[ok]] = values[ok]
    matrix.sort(axis=1)
    sizes = np.count_nonzero(np.isfinite(matrix), axis=1)
    out = np.full(n_ant, np.nan)
    has = np.flatnonzero(sizes > 0)
    lo, hi = (sizes[has] - 1) // 2, sizes[has] // 2
    out[has] = 0.5 * (matrix[has, lo] + matrix[has, hi])
    return out


def detect_hot_baselines(
    stats: BaselineStats,
    *,
    antenna_names: list[str] | None = None,
    settings: HotBaselines = HotBaselines(),
    uv_pass: bool = True,
    crosspol_pass: bool = True,
) -> HotBaselineResult:
    """Run dead-antenna detection and both passes on per-baseline statistics (no I/O); the
    thresholds are the fields of `settings` (the `[hot_baselines]` config section)."""
    s = settings
    window, min_uv_lambda, dead_fraction = s.window, s.min_uv_lambda, s.dead_fraction
    if window < 3:
        raise LwaError(f"--window must be at least 3 baselines, got {window}")
    n_ant = stats.n_antennas
    names = antenna_names or [f"ANT{i}" for i in range(n_ant)]
    a1, a2 = stats.ant1, stats.ant2
    amp_par = _mean2(stats.amp["XX"], stats.amp["YY"])
    amp_cross = _mean2(stats.amp["XY"], stats.amp["YX"])
    valid = stats.n_good > 0
    dead = _dead_antennas(stats, valid, dead_fraction) if dead_fraction > 0 else {}
    is_dead = np.zeros(n_ant, bool)
    is_dead[list(dead)] = True
    considered = valid & (stats.uv_lambda >= min_uv_lambda) & ~is_dead[a1] & ~is_dead[a2]
    considered &= np.isfinite(amp_par) & np.isfinite(amp_cross)
    n_cons = int(considered.sum())
    # thresholds never below the level that pure noise exceeds once in 100 MS of this many baselines
    look_elsewhere = float(norm.isf(0.01 / max(n_cons, 1)))
    if uv_pass and 0 < n_cons < window:
        log.warning("only %d baselines above %.1f lambda, fewer than the window of %d: pass 1 uses "
                    "them all as one window", n_cons, min_uv_lambda, window)
    threshold_uv = max(s.sigma_uv, look_elsewhere)
    uv_order = np.argsort(stats.uv_lambda, kind="stable")  # once for both statistics
    par = _uv_pass(uv_order, amp_par, _sample_variance(stats, ("XX", "YY")), considered if uv_pass else None,
                   window, threshold_uv)
    amp_qu = stats.amp.get("QU", np.full(a1.size, np.nan))
    qu = _uv_pass(uv_order, amp_qu, _sample_variance(stats, ("QU",)),
                  considered & np.isfinite(amp_qu) if uv_pass else None, window, threshold_uv)
    cross = _crosspol_pass(amp_cross, considered if crosspol_pass else None, par.flag | qu.flag,
                           max(s.sigma_heatmap, look_elsewhere))
    rule, frac = _antenna_rule(stats, par.flag | qu.flag | cross.flag, considered, s.antenna_fraction, dead)
    result = HotBaselineResult(
        stats=stats, settings={**asdict(s), "uv_pass": uv_pass, "crosspol_pass": crosspol_pass}, antenna_names=names, considered=considered, amp_par=amp_par,
        amp_cross=amp_cross, rolling_median=par.median, rolling_sigma=par.sigma, score_uv=par.score,
        score_cross=cross.score, flag_uv=par.flag | qu.flag, flag_cross=cross.flag, cross_median=cross.median,
        cross_sigma=cross.sigma, dead=dead, antenna_rule=rule, antenna_fraction=frac,
        amp_qu=amp_qu, score_qu=qu.score, flag_par=par.flag, flag_qu=qu.flag,
    )
    log.info("hot baselines: %d baselines, %d considered (>= %.1f lambda); pass 1 (%.1f sigma) flagged %d "
             "(parallel amplitude %d, sky-free Q/U residual %d), pass 2 (cross-pol, %.1f sigma) flagged %d; "
             "dead antennas %s; antennas over %.0f%% %s",
             a1.size, n_cons, min_uv_lambda, s.sigma_uv, int(result.flag_uv.sum()), int(par.flag.sum()),
             int(qu.flag.sum()), s.sigma_heatmap, int(cross.flag.sum()),
             [names[a] for a in sorted(dead)] or "none", 100 * s.antenna_fraction,
             [names[a] for a in sorted(rule)] or "none")
    return result


@dataclass(frozen=True)
class _PassResult:
    """One pass's per-baseline arrays (NaN / False where the pass did not judge a baseline)."""

    score: np.ndarray
    flag: np.ndarray
    median: np.ndarray | float = float("nan")
    sigma: np.ndarray | float = float("nan")


def _skipped(n: int) -> _PassResult:
    nan = np.full(n, np.nan)
    return _PassResult(score=nan, flag=np.zeros(n, bool), median=nan.copy(), sigma=nan.copy())


def _dead_antennas(stats: BaselineStats, valid: np.ndarray, dead_fraction: float) -> dict[int, dict]:
    """Antennas with one polarisation's median amplitude below `dead_fraction` of the array's."""
    dead: dict[int, dict] = {}
    for p in ("XX", "YY"):
        vals = np.where(valid, stats.amp[p], np.nan)
        per_ant = _antenna_medians(stats.ant1, stats.ant2, vals, stats.n_antennas)
        array_med = np.nanmedian(per_ant) if np.isfinite(per_ant).any() else np.nan
        if not np.isfinite(array_med) or array_med <= 0:
            continue
        ratio = per_ant / array_med
        for a in np.flatnonzero(np.isfinite(ratio) & (ratio < dead_fraction)):
            entry = dead.setdefault(int(a), {"pols": [], "ratio": 1.0})
            entry["pols"].append(p)
            entry["ratio"] = round(min(entry["ratio"], float(ratio[a])), 5)
    return dead


def _sample_variance(stats: BaselineStats, pols: tuple[str, ...]) -> np.ndarray:
    """Per baseline, the mean over `pols` of the per-sample variance of |V| about its mean."""
    if stats.amp_sq is None or any(p not in stats.amp_sq for p in pols):
        return np.zeros(stats.ant1.size)
    var = [stats.amp_sq[p] - stats.amp[p] ** 2 for p in pols]
    return var[0] if len(var) == 1 else _mean2(*var)


def _uv_pass(uv_order: np.ndarray, values: np.ndarray, var: np.ndarray, considered: np.ndarray | None,
             window: int, threshold: float) -> _PassResult:
    """Pass 1 on one statistic: against a rolling median over the uv-sorted baselines (`uv_order`:
    the stable argsort of every baseline's uv length; the considered ones are taken in that order).

    A coherent sky (the A-team's fringes) can hold a baseline's time-mean amplitude anywhere within
    the spread of its single samples, when its fringe turns slowly: that spread (the window's median
    per-sample RMS about each baseline's mean) is the least sigma a hot baseline must beat, so that
    no sky signal reaches the threshold.
    """
    out = _skipped(values.size)
    if considered is None or not considered.any():
        return out
    order = uv_order[considered[uv_order]]
    med, sig = rolling_median_sigma(values[order], window)
    spread = np.sqrt(rolling_median(np.maximum(var[order], 0.0), window))
    sig = _sigma_floor(np.maximum(sig, spread), med)
    out.median[order], out.sigma[order] = med, sig
    out.score[order] = (values[order] - med) / sig
    out.flag[order] = out.score[order] > threshold
    return out


def _crosspol_pass(amp_cross: np.ndarray, considered: np.ndarray | None, prior: np.ndarray,
                   threshold: float) -> _PassResult:
    """Pass 2: robust z-score of the cross-hand amplitude over the baselines pass 1 kept."""
    out = _skipped(amp_cross.size)
    if considered is None or not considered.any():
        return out
    ref = considered & ~prior
    med, sig = robust_median_sigma(amp_cross[ref])
    # the mean of |XY| over a baseline is skewed to high values (a Rice-like amplitude; sky V and
    # leakage add to some baselines): scale by the upper half's spread when it is wider
    upper = float(np.nanpercentile(amp_cross[ref], 84.13)) - med if ref.any() else 0.0
    sig = float(_sigma_floor(max(sig, upper), med))
    out.score[considered] = (amp_cross[considered] - med) / sig
    out.flag[considered] = out.score[considered] > threshold
    return _PassResult(score=out.score, flag=out.flag, median=med, sigma=sig)


def _antenna_rule(stats: BaselineStats, flagged: np.ndarray, considered: np.ndarray, antenna_fraction: float,
                  dead: dict[int, dict]) -> tuple[dict[int, float], np.ndarray]:
    """Antennas with more than `antenna_fraction` of their considered baselines flagged (not dead)."""
    a1, a2, n_ant = stats.ant1, stats.ant2, stats.n_antennas
    bad = flagged & considered
    n_per_ant = np.bincount(a1[considered], minlength=n_ant) + np.bincount(a2[considered], minlength=n_ant)
    bad_per_ant = np.bincount(a1[bad], minlength=n_ant) + np.bincount(a2[bad], minlength=n_ant)
    frac = np.where(n_per_ant > 0, bad_per_ant / np.maximum(n_per_ant, 1), 0.0)
    rule = {int(a): float(frac[a]) for a in np.flatnonzero(frac > antenna_fraction) if a not in dead}
    return rule, frac


def find_hot_baselines(
    ms: str | Path,
    *,
    column: str | None = None,
    settings: HotBaselines = HotBaselines(),
    uv_pass: bool = True,
    crosspol_pass: bool = True,
) -> HotBaselineResult:
    """Read `ms` once and run both passes; nothing is written (see `apply_hot_flags`)."""
    ms = Path(ms)
    stats = baseline_stats(ms, column=column, processes=settings.processes)
    return detect_hot_baselines(stats, antenna_names=antenna_names(ms), settings=settings, uv_pass=uv_pass,
                                crosspol_pass=crosspol_pass)


def apply_hot_flags(ms: str | Path, result: HotBaselineResult) -> int:
    """Flag (all channels, pols, times) every flagged baseline and every row of a flagged antenna."""
    n_ant = result.stats.n_antennas
    bad_key = np.zeros(n_ant * n_ant, bool)
    bad_key[result.stats.ant1[result.flag_baseline] * n_ant + result.stats.ant2[result.flag_baseline]] = True
    bad_ant = np.zeros(n_ant, bool)
    bad_ant[result.flagged_antennas] = True
    if not bad_key.any() and not bad_ant.any():
        return 0

    def select(cols: dict) -> np.ndarray:
        a1, a2 = cols["ANTENNA1"], cols["ANTENNA2"]
        key = np.minimum(a1, a2).astype(np.int64) * n_ant + np.maximum(a1, a2)
        return bad_key[key] | bad_ant[a1] | bad_ant[a2]

    return flag_rows(Path(ms), select, description="hot baselines and antennas")


def write_flagged_csv(path: str | Path, result: HotBaselineResult) -> Path:
    """flagged_baselines.csv: ant1, ant2, name1, name2, uv_lambda, reason, score.

    One row per baseline flagged by a pass (score: the larger of the two pass scores), then one
    row per antenna flagged whole (ant2 empty; reason dead_antenna or antenna_fraction; score:
    the amplitude ratio to the array, or the fraction of its baselines flagged).
    """
    names = result.antenna_names
    rows = []
    for i in np.flatnonzero(result.flag_baseline):
        a, b = int(result.stats.ant1[i]), int(result.stats.ant2[i])
        scores = [score for _, score in result.reasons(i)]
        rows.append([a, b, names[a], names[b], f"{result.stats.uv_lambda[i]:.3f}", result.reason(i),
                     f"{max(scores):.3f}"])
    for a, info in sorted(result.dead.items()):
        rows.append([a, "", names[a], "", "", "dead_antenna:" + "+".join(info["pols"]), f"{info['ratio']:.5f}"])
    for a, frac in sorted(result.antenna_rule.items()):
        rows.append([a, "", names[a], "", "", "antenna_fraction", f"{frac:.4f}"])
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FLAGGED_BASELINES.columns)
        w.writerows(rows)
    return Path(path)


def _mean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of two arrays ignoring NaN element-wise (NaN where both are NaN), without warnings."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    total = np.where(fa, a, 0.0) + np.where(fb, b, 0.0)
    n = fa.astype(float) + fb
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
