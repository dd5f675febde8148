"""The rules of the 10 min − deep difference images that need no dirty beam: the steady deep-V
source masks (`steady_v_mask`), a deep-V source fading (`mark_fainter`), and what the other
intervals' differences predict at a candidate's place (`mark_trends`, `trend_prediction`).

Why apart from the search: each is a small judgement on candidates and pixel samples, testable
without images; `scipy.stats.theilslopes` does the robust line, the rest is bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import theilslopes

from lwa_transient.candidates import Candidate
from lwa_transient.detect import Peak
from lwa_transient.masks import disk_mask

__all__ = ["steady_v_mask", "mark_fainter", "trend_prediction", "mark_trends"]


def steady_v_mask(sources: Sequence[Peak], diff: np.ndarray, radius_px: float, steady_ratio: float) -> np.ndarray:
    """Disks (`v_source_mask_beams`, 1.5 beams) around the deep-V sources in a 10 min − deep V image: the main lobe of a steady
    source does not cancel exactly (its PSF changes from interval to interval). A source at least
    `steady_ratio` times brighter (same sign) in this interval than in the deep image varied: it is
    not masked (0: always masked)."""
    keep = []
    for s in sources:
        ten = s.value + float(diff[s.y, s.x])
        if steady_ratio > 0 and ten * s.sign >= steady_ratio * abs(s.value):
            continue
        keep.append((s.y_sub, s.x_sub, radius_px))
    return disk_mask(diff.shape, keep)


def mark_fainter(cands: list[Candidate], sources: Sequence[Peak], beam_px: float) -> int:
    """In a 10 min − deep V image, a candidate within 1 beam of a deep-V source and of the opposite
    sign is that source being fainter in this interval (e.g. a burst of another interval, diluted
    into the deep image): class `artefact`, reason `fainter`."""
    n = 0
    for c in cands:
        if c.klass == "artefact":
            continue
        for s in sources:
            if c.sign != s.sign and math.hypot(c.x - s.x_sub, c.y - s.y_sub) <= beam_px:
                c.klass, c.reason = "artefact", "fainter"
                n += 1
                break
    return n


def trend_prediction(times: Sequence[float], values: Sequence[float], at: float) -> tuple[float, float]:
    """What `values` (at `times`) predict at `at`, and how well: a Theil–Sen line
    (`scipy.stats.theilslopes`, the median of the pairwise slopes: one other burst among the points
    does not tilt it) through 3 or more finite points, their median through fewer; with the median
    |value − line| of the points (0 with fewer than 3). (NaN, NaN) without any point."""
    t, v = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 3:
        return float(np.median(v)), 0.0
    slope, intercept = theilslopes(v, t)[:2]
    return float(intercept + slope * at), float(np.median(np.abs(v - (intercept + slope * t))))


def mark_trends(cands: Sequence[Candidate], intervals: Sequence[str], samples: dict[str, np.ndarray],
                 fraction: float) -> int:
    """In 10 min − deep images, class `artefact` (reason `trend`) for a candidate whose place the
    other intervals' differences predict to at least `fraction` of its own value, same sign: their
    median (a steady level; a minority of other intervals holding an event does not move it), or
    a line over the interval order (`trend_prediction`) that passes within `fraction` of the value
    of those differences (median |residual|: a drift, not a step). A transient confined to one interval leaves −S/N in
    every other difference (its share of the deep image: opposite sign, flat), one straddling two
    intervals a single same-sign neighbour that the median slope ignores; what recurs with the
    same sign — the deep image's own PSF and weighting differing from every 10 min one around a
    bright source, a dirty sidelobe sweeping over the place as the sky rotates — is predicted by
    the others. `intervals`: every searched interval, in time order; `samples[interval]`: that
    interval's difference (minus background) at the pixel of each of `cands`. Limit: an event
    lasting more than half of the intervals is steady enough to be marked."""
    order = list(intervals)
    if fraction <= 0 or len(order) < 2:
        return 0
    n = 0
    for i, c in enumerate(cands):
        if c.klass == "artefact":
            continue
        others = [j for j, k in enumerate(order) if k != c.interval and k in samples]
        if not others:
            continue
        at = order.index(c.interval)
        values = [samples[order[j]][i] for j in others]
        guess, scatter = trend_prediction(others, values, at)
        level = fraction * abs(c.peak_jy)
        steady = c.sign * float(np.nanmedian(values)) >= level if np.isfinite(values).any() else False
        if steady or (math.isfinite(guess) and c.sign * guess >= level and scatter <= level):
            c.klass, c.reason = "artefact", "trend"
            n += 1
    return n
