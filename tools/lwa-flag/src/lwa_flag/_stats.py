"""Robust statistics shared by the passes: rolling median with held edges, MAD-based sigma.

Our own small functions: scipy's `median_filter` does the rolling median; within half a window of
the ends the window is truncated at the end of the data instead of padded.
"""

from __future__ import annotations

import numpy as np
from astropy.stats import mad_std
from scipy.ndimage import median_filter
from scipy.stats import norm

__all__ = ["MAD_TO_SIGMA", "rolling_median", "rolling_median_sigma", "robust_median_sigma"]

MAD_TO_SIGMA = 1.0 / float(norm.ppf(0.75))  # 1.4826: astropy mad_std's factor, for the rolling MAD


def _truncated_edges(values: np.ndarray, filtered: np.ndarray, w: int) -> np.ndarray:
    """Within half a window of either end, the median of the window cut at the end of the data.

    scipy's window for output i covers inputs [i - w//2, i - w//2 + w - 1]; its padding would
    fill the cut part with copies of the end sample, so the shortest and longest baselines would
    be judged largely against themselves (and get a near-zero MAD). A truncated centred window
    (as pandas' rolling(center=True, min_periods=1)) follows a trend into the ends instead.
    Vectorised: the cut windows of one end are rows of a matrix padded with +inf, sorted once.
    """
    n = values.size
    left, right = w // 2, w - 1 - w // 2
    if left:  # rows i = 0 .. left-1 hold values[: i + right + 1]
        filtered[:left] = _prefix_medians(values[: left + right], np.arange(left) + right + 1)
    if right:  # rows i = n-right .. n-1 hold values[i - left:], i.e. prefixes of the reversed data
        lengths = left + n - np.arange(n - right, n)
        filtered[n - right:] = _prefix_medians(values[::-1][: left + right], lengths)
    return filtered


def _prefix_medians(head: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Median of head[:L] for every L in `lengths` (all <= head.size)."""
    m = np.broadcast_to(head, (lengths.size, head.size)).copy()
    m[np.arange(head.size)[None, :] >= lengths[:, None]] = np.inf
    m.sort(axis=1)
    rows = np.arange(lengths.size)
    return 0.5 * (m[rows, (lengths - 1) // 2] + m[rows, lengths // 2])


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median over `window` samples (an even window is widened by one so that it is
    centred), truncated at the ends of the data; the median of everything when there are no more
    than `window` samples."""
    values = np.asarray(values, dtype=np.float64)
    if values.size <= window:  # one window holds everything
        return np.full(values.size, np.median(values)) if values.size else values.copy()
    w = int(max(1, window)) | 1  # an odd window is centred (scipy takes the upper middle of even ones)
    return _truncated_edges(values, median_filter(values, size=w, mode="nearest"), w)


def rolling_median_sigma(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling median and robust sigma (1.4826 x rolling median of |x - rolling median|)."""
    med = rolling_median(values, window)
    mad = rolling_median(np.abs(np.asarray(values, dtype=np.float64) - med), window)
    return med, MAD_TO_SIGMA * mad


def robust_median_sigma(values: np.ndarray) -> tuple[float, float]:
    """Median and astropy `mad_std` (1.4826 x MAD) of the finite values (NaN, NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(v))
    return med, float(mad_std(v))
