"""The Stokes V sidelobe rule: is a candidate what a brighter V source's dirty beam puts there?

A bright V source (a steady polarised source, or a bright burst in its own interval) fills its
image with dirty-beam sidelobes that the CLEAN-less V images keep. A candidate more than 1 beam
from a brighter V source of the same image is class `artefact`, reason `sidelobe`, when

* the source's sidelobe **envelope** measured in the same image (`Envelope`: a high percentile of
  |image| in annuli around the source, the point's own neighbourhood left out) × `margin` reaches
  its value, capped at `fraction` of the source — and, with the **mirror test**
  (`transient.v_sidelobe_mirror*`), where the twin can judge:
* its **twin** through the source (`mirror_value`: a dirty beam is point-symmetric) holds at least
  1/`margin` of it, same sign; in a dewarped image the point to mirror through is moved by the
  dewarp screen (`twin_centre`); a candidate whose twin does not hold it stays a sidelobe only
  within the envelope and below `margin` × the noise's own tail (`NOISE_TAIL_SIGMA` × RMS), where
  noise alone can hide a true sidelobe's twin (`explains`);
* or, within the bi-lobe radius, it is of the opposite sign (the first negative sidelobe).

`v_sources` finds the V sources of an image that are not themselves sidelobes of a brighter one;
`mark_sidelobes` applies the rule to a list of candidates. Own code: no library models the
sidelobes of a measured dirty image; every step is numpy on the image itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

from lwa_transient.candidates import Candidate
from lwa_transient.detect import Peak, find_peaks
from lwa_transient.planes import SearchOutcome

__all__ = ["SIDELOBE_EDGES_BEAMS", "SIDELOBE_PERCENTILE", "NOISE_TAIL_SIGMA", "MAX_ENVELOPE_SOURCES", "Envelope",
           "v_sources", "sidelobe_limit", "mirror_value", "twin_centre", "explains", "mark_sidelobes"]

log = logging.getLogger(__name__)

SIDELOBE_EDGES_BEAMS = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0, 80.0, math.inf)
SIDELOBE_PERCENTILE = 99.5  # of |image| in each annulus: the sidelobe crests, not one compact burst
# the same percentile of |Gaussian noise| in σ (2.81): a twin's noise alone reaches it
NOISE_TAIL_SIGMA = float(norm.ppf(0.5 + SIDELOBE_PERCENTILE / 200.0))
MAX_ENVELOPE_SOURCES = 5  # the brightest V sources of an image get a measured envelope


class Envelope:
    """The sidelobe envelope of one bright V source measured in its own image: for a point at
    distance r, the `SIDELOBE_PERCENTILE` of |image| over the annulus of `SIDELOBE_EDGES_BEAMS`
    holding r, over |source peak| — what the dirty beam (plus noise and other sources: an upper
    bound) puts at that distance. The pixels within `EXCLUDE_BEAMS` of the point asked about are
    left out, so a real burst cannot raise the envelope that would judge it."""

    EXCLUDE_BEAMS = 3.0
    MAX_RING_PIXELS = 400_000  # larger rings are subsampled (a regular stride)

    def __init__(self, residual: np.ndarray, source: Peak, beam_px: float):
        self.source, self.beam_px = source, beam_px
        ny, nx = residual.shape
        r = np.hypot((np.arange(ny) - source.y_sub)[:, None], (np.arange(nx) - source.x_sub)[None, :]) / beam_px
        finite = np.isfinite(residual)
        self.rings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for lo, hi in zip(SIDELOBE_EDGES_BEAMS[:-1], SIDELOBE_EDGES_BEAMS[1:], strict=True):
            box = self._box(source, hi * beam_px, ny, nx)  # a bounded ring is looked for in its box only
            ring = r[box] >= lo
            ring &= r[box] < hi
            ring &= finite[box]
            # flat indices in row-major order (as np.nonzero), subsampled before they become (y, x):
            # the outer ring holds most of the image, and its full coordinate arrays cost ~0.3 s
            flat = np.flatnonzero(ring)
            flat = flat[::max(1, -(-flat.size // self.MAX_RING_PIXELS))]
            ys, xs = np.divmod(flat, ring.shape[1])
            ys, xs = ys + box[0].start, xs + box[1].start
            self.rings.append((np.abs(residual[ys, xs]).astype(np.float64), ys, xs))

    @staticmethod
    def _box(source: Peak, radius_px: float, ny: int, nx: int) -> tuple[slice, slice]:
        """The pixels within `radius_px` of `source` lie in these (row, column) slices."""
        if not math.isfinite(radius_px):
            return slice(0, ny), slice(0, nx)
        return (slice(max(0, math.floor(source.y_sub - radius_px)), min(ny, math.ceil(source.y_sub + radius_px) + 1)),
                slice(max(0, math.floor(source.x_sub - radius_px)), min(nx, math.ceil(source.x_sub + radius_px) + 1)))

    def fraction_at(self, x: float, y: float) -> float:
        dist = math.hypot(x - self.source.x_sub, y - self.source.y_sub) / self.beam_px
        ring = int(np.searchsorted(SIDELOBE_EDGES_BEAMS, dist, side="right")) - 1
        if ring < 0:
            return 0.0
        values, ys, xs = self.rings[ring]
        keep = np.hypot(ys - y, xs - x) > self.EXCLUDE_BEAMS * self.beam_px
        if not keep.any():
            return 0.0
        return float(np.percentile(values[keep], SIDELOBE_PERCENTILE)) / abs(self.source.value)


def v_sources(outcome: SearchOutcome, sigma: float, beam_px: float, *, fraction: float, margin: float,
               mirror: tuple[float, float] | None = None, screen: np.ndarray | None = None) -> list[Peak]:
    """The bright V sources of a searched image (|S/N| >= `sigma`, masked areas included: a
    polarised source next to a bright I source is masked, its sidelobes are not), brightest first,
    without the peaks that are sidelobes of a brighter one (the sidelobe rule among themselves,
    `explains`, with the mirror test when `mirror` is given)."""
    peaks = [peak for sign in (1, -1) for peak in find_peaks(outcome.residual, outcome.rms, threshold=sigma, sign=sign)]
    kept: list[Peak] = []
    envelopes: dict[int, Envelope] = {}
    for peak in sorted(peaks, key=lambda q: -abs(q.value)):
        if any(explains(outcome.residual, envelopes, k, peak.x_sub, peak.y_sub, peak.value, peak.rms, beam_px=beam_px,
                         fraction=fraction, margin=margin, mirror=mirror, screen=screen) for k in kept):
            continue
        kept.append(peak)
        if len(envelopes) < MAX_ENVELOPE_SOURCES:
            envelopes[id(peak)] = Envelope(outcome.residual, peak, beam_px)
    return kept


def sidelobe_limit(envelopes: dict[int, Envelope] | None, source: Peak, x: float, y: float, beam_px: float,
                    fraction: float, margin: float) -> float:
    """The largest fraction of `source` its sidelobes reach at (x, y): 0 within 1 beam (the source
    itself), `margin` × its measured envelope there capped at `fraction` (`envelopes`; 0 for a
    source without one), or `fraction` when `envelopes` is None."""
    dist = math.hypot(x - source.x_sub, y - source.y_sub) / beam_px
    if dist <= 1.0:
        return 0.0
    if envelopes is None:
        return fraction
    env = envelopes.get(id(source))
    if env is None:
        return 0.0
    return min(fraction, margin * env.fraction_at(x, y))


def mirror_value(residual: np.ndarray, source_xy: tuple[float, float], xy: tuple[float, float], *, sign: int,
                 radius_px: float) -> float:
    """The image value of sign `sign` (the extreme one, signed) within `radius_px` of the point
    mirrored through `source_xy` from `xy` (2 source − point); NaN when no finite pixel is there
    (off the image, beyond the horizon).

    Why: a dirty beam is point-symmetric — the PSF of real visibilities measured at ±(u, v) is real
    and even, B(d) = B(−d), for any uv coverage, weighting and light curve (a burst shorter than
    the interval has the PSF of its own integrations, not the interval's, but that one is even
    too). So what a source S puts at offset d, S·B(d), it also puts at −d: a sidelobe of S has a
    twin of the same sign and about the same value through S, while a burst that happens to lie
    on a sidelobe crest of S does not (its twin holds only S's share of it). The extreme within a
    fraction of a beam allows for the sub-pixel position and a PSF not exactly even across an
    all-sky image (w-terms)."""
    ny, nx = residual.shape
    mx, my = 2.0 * source_xy[0] - xy[0], 2.0 * source_xy[1] - xy[1]
    r = max(radius_px, 0.5)
    x0, x1 = max(int(math.floor(mx - r)), 0), min(int(math.ceil(mx + r)), nx - 1)
    y0, y1 = max(int(math.floor(my - r)), 0), min(int(math.ceil(my + r)), ny - 1)
    if x0 > x1 or y0 > y1:
        return math.nan
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    window = residual[y0:y1 + 1, x0:x1 + 1]
    values = window[((yy - my) ** 2 + (xx - mx) ** 2 <= r * r) & np.isfinite(window)]
    if values.size == 0:
        return math.nan
    return float(sign * np.max(sign * values))


def twin_centre(source_xy: tuple[float, float], xy: tuple[float, float],
                screen: np.ndarray | None) -> tuple[float, float]:
    """The point to mirror (x, y) through to find its twin in a dewarped image: the source itself,
    moved by half the screen's second difference 2 d(s) − d(p) − d(m) (d: lwa-dewarp's offsets in
    pixels, dewarped(q) = observed(q + d(q)); m = 2 s − p).

    Why: the ionosphere shifts a source and its whole dirty beam by d at the source, so in the
    observed image the sidelobe at s + d(s) + e has its twin at s + d(s) − e; dewarping moves each
    pixel by its own d, so the twin of the sidelobe shown at p lies at 2 s − p + 2 d(s) − d(p) −
    d(m) (to first order). Measured on `low_elevation` (seed 505, screen offsets up to 3 beams):
    candidates 28–35 beams from a V source whose plain twins held 0.01 and 0.15 of them held
    1.09 and 0.63 at the corrected place. None, or a NaN offset: the source."""
    if screen is None:
        return source_xy
    ny, nx = screen.shape[1:]

    def offset(px: float, py: float) -> np.ndarray:
        ix, iy = min(max(round(px), 0), nx - 1), min(max(round(py), 0), ny - 1)
        return screen[:, iy, ix].astype(np.float64)

    (sx, sy), (x, y) = source_xy, xy
    corr = 2.0 * offset(sx, sy) - offset(x, y) - offset(2.0 * sx - x, 2.0 * sy - y)
    if not np.all(np.isfinite(corr)):
        return source_xy
    return sx + 0.5 * float(corr[0]), sy + 0.5 * float(corr[1])


def explains(residual: np.ndarray | None, envelopes: dict[int, Envelope] | None, source: Peak, x: float,
              y: float, value: float, rms: float, *, beam_px: float, fraction: float, margin: float,
              mirror: tuple[float, float] | None, screen: np.ndarray | None = None) -> bool:
    """Whether `source`'s dirty beam can explain a candidate `value` (local RMS `rms`) at (x, y),
    more than 1 beam from the source and at most `fraction` of it.

    The envelope measured around the source (`sidelobe_limit`, × `margin`) says whether the beam
    reaches that level at that distance. With the mirror test (`mirror` = (radius, reach) in
    beams) and the twin within reach, its twin through the source (`mirror_value`: the beam's
    response at the opposite offset, same sign) says what the beam puts at this very place: the
    candidate is explained when the twin holds at least 1/`margin` of it; when it does not, only
    if the candidate is also no stronger than `margin` × the noise's own tail (`NOISE_TAIL_SIGMA`
    × `rms`) and within the envelope — there the twin's noise alone can take a true sidelobe's
    twin below 1/`margin` of it, so it cannot clear the candidate. Without the test, or where the
    twin is off the image or beyond reach (an all-sky beam is less point-symmetric far out), the
    envelope decides. `screen`: the lwa-dewarp screen of a dewarped image (`twin_centre`)."""
    dist = math.hypot(x - source.x_sub, y - source.y_sub) / beam_px
    if dist <= 1.0 or abs(value) > fraction * abs(source.value):
        return False
    envelope = abs(value) <= sidelobe_limit(envelopes, source, x, y, beam_px, fraction, margin) * abs(source.value)
    if mirror is None or residual is None or dist > mirror[1]:
        return envelope
    sign = 1 if value >= 0 else -1
    centre = twin_centre((source.x_sub, source.y_sub), (x, y), screen)
    twin = mirror_value(residual, centre, (x, y), sign=sign, radius_px=mirror[0] * beam_px)
    if not math.isfinite(twin):
        return envelope
    if margin * sign * twin >= abs(value):
        return True
    return envelope and abs(value) < margin * NOISE_TAIL_SIGMA * rms


def mark_sidelobes(cands: list[Candidate], sources: Sequence[Peak], fraction: float, beam_px: float, *,
                    residual: np.ndarray | None = None, margin: float = 2.0, near_beams: float = 0.0,
                    mirror: tuple[float, float] | None = None, screen: np.ndarray | None = None) -> int:
    """Class `artefact` (reason `sidelobe`) for every candidate more than 1 beam from a V source and
    no brighter than what the dirty beam of that source can put there: `margin` × the source's
    sidelobe envelope measured in `residual` at the candidate's distance, at most `fraction` of the
    source; without `residual`, `fraction` of the source at any distance. Within `near_beams` of
    the source (the bi-lobe radius), a candidate of the opposite sign up to `fraction` of the source
    is one too: the first negative sidelobe of a dirty PSF (~0.2–0.3 of the peak on 64 antennas)
    lies there, where the measured envelope cannot judge (its ring is within `Envelope.EXCLUDE_BEAMS`
    of the candidate)."""
    if fraction <= 0 or not sources:
        return 0
    ranked = sorted(sources, key=lambda s: -abs(s.value))
    envelopes = ({id(s): Envelope(residual, s, beam_px) for s in ranked[:MAX_ENVELOPE_SOURCES]}
                 if residual is not None else None)
    n = 0
    for c in cands:
        if c.klass == "artefact":
            continue
        doubted: Peak | None = None  # the brightest source whose envelope, not its twin, would explain c
        for s in ranked:
            dist = math.hypot(c.x - s.x_sub, c.y - s.y_sub) / beam_px
            near = c.sign != s.sign and 1.0 < dist <= near_beams and abs(c.peak_jy) <= fraction * abs(s.value)
            rule = {"beam_px": beam_px, "fraction": fraction, "margin": margin}
            if near or explains(residual, envelopes, s, c.x, c.y, c.peak_jy, c.rms_jy, mirror=mirror, screen=screen,
                                 **rule):
                c.klass, c.reason = "artefact", "sidelobe"
                n += 1
                break
            if doubted is None and explains(residual, envelopes, s, c.x, c.y, c.peak_jy, c.rms_jy, mirror=None, **rule):
                doubted = s
        else:
            if doubted is not None:
                log.info("%s (V %s, %+.3g Jy/beam) is within the sidelobe envelope of the %+.3g Jy/beam V source "
                         "%.1f beams away, but its twin through the source holds less than 1/%g of it: not a sidelobe",
                         c.jname, c.interval, c.peak_jy, doubted.value,
                         math.hypot(c.x - doubted.x_sub, c.y - doubted.y_sub) / beam_px, margin)
    return n
