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

import numpy as np

__all__ = ["eta_v"]


def eta_v(flux: Sequence[float], err: Sequence[float]) -> tuple[int, float | None, float | None, float | None,
                                                                 float | None, float | None]:
    """(N, eta, V, mean, weighted mean, max) of a lightcurve; NaN points and errors <= 0 are dropped."""
    f = np.asarray(flux, float)
    e = np.asarray(err, float)
    good = np.isfinite(f) & np.isfinite(e) & (e > 0)
    f, e = f[good], e[good]
    n = int(f.size)
    if n == 0:
        return 0, None, None, None, None, None
    w = 1.0 / e**2
    mean = float(f.mean())
    wmean = float((w * f).sum() / w.sum())
    fmax = float(f.max())
    if n < 2:
        return n, None, None, mean, wmean, fmax
    eta = float(n / (n - 1) * ((w * f**2).mean() - (w * f).mean() ** 2 / w.mean()))
    var = n / (n - 1) * ((f**2).mean() - mean**2)
    v = float(math.sqrt(max(var, 0.0)) / abs(mean)) if mean != 0 else None
    return n, max(eta, 0.0), v, mean, wmean, fmax
