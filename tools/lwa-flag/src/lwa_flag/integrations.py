"""Bad integrations from the pilot Stokes V snapshots (one dirty image per 10 s integration).

Stokes V is nearly empty at these frequencies, so its RMS follows the data quality: an integration
with RFI, a correlator glitch or missing data shows a V RMS far from its neighbours'. Per frame we
take a robust, NaN-aware RMS (1.4826 x MAD of the finite pixels; the horizon mask is NaN), compare
it with the running median over `window` frames, and flag frames whose deviation exceeds `sigma`
times the robust scatter of all deviations, or whose RMS is below `low_ratio` x the quiet level of
the window (its lower quartile: an integration with most of its data missing).

No sky signal is flagged: a burst lifts a frame's RMS through its dirty sidelobes, so a high frame
is first compared with the median image of its neighbours; when that difference is compact (its
peak many times its robust RMS: a point source's PSF) the frame holds a transient and is kept.
RFI and glitches leave noise-like differences. Fewer than `min_frames` snapshots: nothing is
flagged, with a WARNING (a running median of three frames is no statistic). Those times are then flagged in the MS -- one
concatenated MS holding every integration, or a list of per-integration MS -- matching the MS TIME
within half an integration.

Frame times come from the header: MJD-MID when present (our snapshots), else the middle of
DATE-OBS..DATE-END, else DATE-OBS (wsclean writes the centre of the first time step there).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.stats import mad_std
from astropy.time import Time

from lwa_common.config import SnapshotQA
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image
from lwa_common.images import header_stokes
from lwa_common.io import atomic_path
from lwa_common.ms import open_table
from lwa_common.parallel import imap_ordered
from lwa_common.products import BAD_INTEGRATIONS
from lwa_flag._ms import flag_rows
from lwa_flag._stats import rolling_median

__all__ = ["Frame", "IntegrationResult", "frame_time", "frame_rms", "read_frames", "compactness",
           "rolling_quantile", "find_bad_integrations", "match_times", "flag_times", "write_frames_csv"]

log = logging.getLogger(__name__)



@dataclass
class Frame:
    path: str
    mjd: float
    rms: float
    time_source: str
    running_median: float = float("nan")
    score: float = float("nan")
    bad: bool = False
    reason: str = ""
    transient: str = ""  # why a deviating frame was kept (a compact sky source)
    ms_matches: list[str] = field(default_factory=list)

    @property
    def isot(self) -> str:
        return Time(self.mjd, format="mjd", scale="utc").isot


@dataclass
class IntegrationResult:
    frames: list[Frame]
    sigma: float
    low_ratio: float
    window: int
    scatter: float  # robust sigma of (rms - running median)
    skipped: str = ""  # why no statistics were run (too few frames)

    @property
    def bad_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.bad]

    def summary(self) -> dict:
        return {
            "n_frames": len(self.frames), "sigma": self.sigma, "low_ratio": self.low_ratio,
            "window": self.window, "scatter_jy": self.scatter,
            "bad_frames": [{**asdict(f), "time_utc": f.isot} for f in self.bad_frames],
            "kept_transients": [{"file": f.path, "time_utc": f.isot, "why": f.transient}
                                for f in self.frames if f.transient],
            "skipped": self.skipped,
        }


def frame_time(header, path: str | Path = "") -> tuple[float, str]:
    """(MJD of the frame's middle, which keyword gave it)."""
    if header.get("MJD-MID") is not None:
        return float(header["MJD-MID"]), "MJD-MID"
    obs, end = header.get("DATE-OBS"), header.get("DATE-END")
    try:
        if obs and end:
            t0, t1 = Time(obs, scale="utc"), Time(end, scale="utc")
            return float((t0.mjd + t1.mjd) / 2), "DATE-OBS/DATE-END"
        if obs:
            return float(Time(obs, scale="utc").mjd), "DATE-OBS"
    except ValueError:
        raise LwaError(f"{path}: cannot read DATE-OBS/DATE-END '{obs}'/'{end}'") from None
    raise LwaError(f"{path}: no MJD-MID or DATE-OBS in the header; cannot place the snapshot in time")


def frame_rms(image: np.ndarray) -> float:
    """Robust RMS of the finite pixels: astropy `mad_std` (1.4826 x median |x - median|)."""
    v = np.asarray(image, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(mad_std(v))


def read_frames(paths: list[str | Path], *, require_stokes_v: bool = True, processes: int = 0) -> list[Frame]:
    """RMS and time of every snapshot, sorted by time. Non-V images (STOKES=I) are an error.

    The snapshots are read side by side in `processes` processes (0: one per CPU of the job,
    `lwa_common.parallel`); each frame's numbers do not depend on it.
    """
    tasks = [(str(p), require_stokes_v) for p in paths]
    frames = [Frame(path=p, mjd=mjd, rms=rms, time_source=source)
              for p, mjd, source, rms in imap_ordered(_read_frame, tasks, processes=processes)]
    frames.sort(key=lambda f: f.mjd)
    times = np.array([f.mjd for f in frames])
    dup = np.flatnonzero(np.diff(times) * 86400.0 < 1e-3)
    if dup.size:
        raise LwaError(f"{frames[dup[0]].path} and {frames[dup[0] + 1].path} have the same time")
    return frames


def _read_frame(task: tuple[str, bool]) -> tuple[str, float, str, float]:
    """(path, MJD, time keyword, robust RMS) of one snapshot (a process's task of `read_frames`)."""
    p, require_stokes_v = task
    data, header = read_image(p, require_finite=False)  # an all-NaN snapshot is judged below
    stokes = header_stokes(header)
    if require_stokes_v and stokes and stokes != "V":
        raise LwaError(f"{p}: a Stokes {stokes} image; the integration QA needs Stokes V snapshots")
    cat = str(header.get("IMGCAT", "")).strip()
    if cat and cat != "snapshot":
        log.warning("%s: IMGCAT=%s, not snapshot", p, cat)
    mjd, source = frame_time(header, p)
    rms = frame_rms(image_plane(data))
    if not np.isfinite(rms):
        raise LwaError(f"{p}: image has no finite pixels")
    return p, mjd, source, rms


def _window_indices(i: int, n: int, w: int) -> range:
    """Frames of the centred window of `w` around frame i, cut at the ends of the data."""
    half = w // 2
    return range(max(0, i - half), min(n, i + half + 1))


def rolling_quantile(values: np.ndarray, window: int, q: float) -> np.ndarray:
    """Quantile `q` of the centred window around every value (cut at the ends)."""
    values = np.asarray(values, dtype=np.float64)
    w = int(window) | 1
    return np.array([np.quantile(values[_window_indices(i, values.size, w)], q) for i in range(values.size)])


def compactness(frames: list[Frame], i: int, window: int) -> tuple[float, float]:
    """(peak |D| / robust RMS of D, peak |D|) for D = frame i minus the median image of the quieter
    half of its neighbours in the window: a compact sky source (a burst appearing or disappearing) gives a
    PSF-shaped D whose peak is tens to hundreds of times its RMS; RFI or a glitch gives noise-like
    D (peak near 5 x RMS for Gaussian noise over a million pixels)."""
    neighbours = [j for j in _window_indices(i, len(frames), window | 1) if j != i]
    # the quieter half: a transient in the neighbours (high RMS through its sidelobes) stays out
    neighbours = sorted(neighbours, key=lambda j: frames[j].rms)[:max(2, (len(neighbours) + 1) // 2)]
    image = image_plane(read_image(frames[i].path)[0]).astype(np.float64)
    ref = np.nanmedian(np.stack([image_plane(read_image(frames[j].path)[0]) for j in neighbours]), axis=0)
    diff = (image - ref)[np.isfinite(image) & np.isfinite(ref)]
    if diff.size == 0:
        return float("nan"), float("nan")
    peak = float(np.max(np.abs(diff)))
    rms = float(mad_std(diff))
    return (peak / rms if rms > 0 else float("inf")), peak


def find_bad_integrations(
    frames: list[Frame],
    *,
    settings: SnapshotQA = SnapshotQA(),
) -> IntegrationResult:
    """Mark frames deviating > sigma from the running median (over `running_window` frames), or
    below low_ratio x the window's quiet level (its `low_quantile`), unless the deviation is a
    compact sky source; every name is a field of `settings` (the `[snapshot_qa]` config section).

    The scatter is at least `min_scatter_fraction` x the median RMS, so that on very stable data a
    frame must change by more than `sigma` x that fraction to be flagged. A high frame whose
    difference image is compact (`compactness` >= `compact_peak_ratio`; 0 turns the test off, and
    frames whose image cannot be read are not tested) holds a transient and is kept. With fewer
    than `min_frames` frames there are no statistics: nothing is flagged and a WARNING says so.
    """
    sigma, low_ratio, window, min_frames = settings.sigma, settings.low_ratio, settings.running_window, \
        settings.min_frames
    if window < 3:
        raise LwaError(f"--window must be at least 3 frames, got {window}")
    if len(frames) < max(3, min_frames):
        log.warning("snapshot QA: only %d snapshots, fewer than the %d its running statistics need; "
                    "no integration is flagged", len(frames), max(3, min_frames))
        for f in frames:
            f.bad, f.reason = False, ""
        return IntegrationResult(frames=frames, sigma=sigma, low_ratio=low_ratio, window=window,
                                 scatter=float("nan"), skipped=f"{len(frames)} snapshots < {max(3, min_frames)}")
    rms = np.array([f.rms for f in frames])
    w = min(window, len(frames))
    run = rolling_median(rms, w)
    quiet = rolling_quantile(rms, w, settings.low_quantile)
    resid = rms - run
    scatter = float(mad_std(resid))
    floor = max(settings.min_scatter_fraction, 1e-3) * float(np.median(rms))
    scatter_used = max(scatter, floor)
    for i, (f, r, q, s) in enumerate(zip(frames, run, quiet, resid / scatter_used)):
        f.running_median, f.score = float(r), float(s)
        reasons = []
        if s > sigma:
            reasons.append(f"high rms {s:.1f} sigma above the running median")
        elif (q - f.rms) / scatter_used > sigma:  # low: against the quiet level, not the median
            reasons.append(f"low rms {(q - f.rms) / scatter_used:.1f} sigma below the window's quiet level")
        if f.rms < low_ratio * q:
            reasons.append(f"rms {f.rms / q:.2f} x the window's quiet level < {low_ratio:g}")
        if reasons and s > 0 and settings.compact_peak_ratio > 0 and Path(f.path).is_file():
            ratio, peak = compactness(frames, i, w)
            if ratio >= settings.compact_peak_ratio:
                f.transient = f"compact source: difference image peak {peak:.3g} = {ratio:.0f} x its rms; kept"
                log.info("%s: %s (%s)", f.path, f.transient, "; ".join(reasons))
                reasons = []
        f.bad, f.reason = bool(reasons), "; ".join(reasons)
    n_bad = sum(f.bad for f in frames)
    log.info("snapshot QA: %d frames, running median over %d, scatter %.4g Jy/beam; %d bad frames%s",
             len(frames), w, scatter_used, n_bad,
             (": " + ", ".join(f.isot[11:19] for f in frames if f.bad)) if n_bad else "")
    return IntegrationResult(frames=frames, sigma=sigma, low_ratio=low_ratio, window=w, scatter=scatter_used)


def _ms_times(ms: Path) -> tuple[np.ndarray, float]:
    with open_table(ms) as t:
        times = np.unique(t.getcol("TIME"))
        interval = float(np.median(t.getcol("INTERVAL")))
    return times, interval


def match_times(mjds: list[float], ms_list: list[Path]) -> dict[float, list[tuple[Path, float]]]:
    """For each frame time, the (MS, TIME in s) within half an integration; nearest one per MS."""
    out: dict[float, list[tuple[Path, float]]] = {m: [] for m in mjds}
    for ms in ms_list:
        times, interval = _ms_times(ms)
        if times.size == 0:
            continue
        tol = 0.5 * interval * 1.001 + 1e-3
        for m in mjds:
            sec = m * 86400.0
            k = int(np.argmin(np.abs(times - sec)))
            if abs(times[k] - sec) <= tol:
                out[m].append((ms, float(times[k])))
    return out


def flag_times(ms: Path, times_s: list[float]) -> int:
    """Flag every row whose TIME is one of `times_s` (exact MS TIME values)."""
    if not times_s:
        return 0
    wanted = np.array(sorted(times_s))
    return flag_rows(ms, lambda c: np.isin(c["TIME"], wanted), description=f"{len(wanted)} bad integrations")


def write_frames_csv(path: str | Path, result: IntegrationResult) -> Path:
    """bad_integrations.csv: every frame with its time, RMS, running median, score and verdict."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(BAD_INTEGRATIONS.columns)
        for f in result.frames:
            w.writerow([f.isot, f"{f.mjd:.8f}", f"{f.rms:.6g}", f"{f.running_median:.6g}", f"{f.score:.3f}",
                        int(f.bad), f.reason, f.path])
    return Path(path)
