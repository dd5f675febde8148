"""Variability metrics of a lightcurve (Swinbank et al. 2015, A&C 11, 25 -- TraP; as used by VAST).

For N flux points I_i with errors sigma_i (weights w_i = 1 / sigma_i^2):

* V, the modulation index (coefficient of variation): V = s / |mean(I)|, with s the sample
  standard deviation, s^2 = N / (N - 1) (mean(I^2) - mean(I)^2);
* eta, the weighted reduced chi-squared about the weighted mean:
  eta = N / (N - 1) (mean(w I^2) - mean(w I)^2 / mean(w)) = 1 / (N - 1) sum w_i (I_i - I_w)^2.

Both need N >= 2 (None otherwise); |mean| keeps V positive for a negative Stokes V source. Points are the fluxes measured: detections and forced
photometry at a target's position; upper limits from images where a blind source is absent are not
flux points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["eta_v"]


def eta_v(flux: Sequence[float], err: Sequence[float]) -> tuple[int, float | None, float | None, float | None,
                                                                 float | None, float | None]:
    """(N, eta, V, mean, weighted mean, max) of a lightcurve; NaN points and errors <= 0 are dropped."""
    pts = [(float(f), float(e)) for f, e in zip(flux, err)
           if math.isfinite(float(f)) and math.isfinite(float(e)) and float(e) > 0]
    n = len(pts)
    if n == 0:
        return 0, None, None, None, None, None
    w = [1.0 / e**2 for _, e in pts]
    f = [x for x, _ in pts]
    sw = math.fsum(w)
    mean = math.fsum(f) / n
    wmean = math.fsum(wi * fi for wi, fi in zip(w, f)) / sw
    fmax = max(f)
    if n < 2:
        return n, None, None, mean, wmean, fmax
    eta = math.fsum(wi * (fi - wmean) ** 2 for wi, fi in zip(w, f)) / (n - 1)  # = N/(N-1) (<wI^2> - <wI>^2/<w>)
    var = math.fsum((fi - mean) ** 2 for fi in f) / (n - 1)
    v = math.sqrt(var) / abs(mean) if mean != 0 else None
    return n, eta, v, mean, wmean, fmax
