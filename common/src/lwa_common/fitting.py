"""One elliptical-Gaussian fitter for every tool (astropy.modeling, trust-region least squares).

`fit_gaussian` fits ``Gaussian2D (+ Const2D)`` to the finite pixels of a box around a pixel, in
pixel units, with astropy's `TRFLSQFitter` (scipy's bounded trust-region solver). Two modes:

* **free shape** — amplitude, centre, both widths and the angle (an extended source);
* **fixed shape** (`fixed_shape=True`) — the widths and angle are held at the restoring beam, so
  only amplitude, centre (and the constant) are fitted: the right model of a point source in a
  restored image, and of the main lobe of a point source in a dirty image (wsclean fits the
  restoring beam to the dirty beam's main lobe). The model is evaluated at pixel centres, as
  wsclean samples the restored beam, so the fitted amplitude is the peak between pixels at any
  sampling (coarse pixels, 1.5 px per beam, included).

Every fit says whether it may be trusted (`GaussianFit2D.converged`): the solver stopped on a
tolerance (not on its evaluation limit), astropy raised no warning, the covariance is finite, the
amplitude kept the sign of the start value, and no bounded parameter (centre, widths) sits on its
bound — a fit pressed against a bound is the solver escaping the data, never a measurement.
Callers must not report the amplitude or flux of a fit that did not converge.

`gaussian_peak_3x3` is the closed-form companion: the peak of the Gaussian through the 3 × 3
pixels around a peak pixel (a least-squares quadratic in log space), exact for any Gaussian at
any sampling, and the local top of a dirty beam's main lobe (whose flanks a Gaussian of the
restoring beam does not follow: a beam-shaped fit reads dirty Stokes V 3–7 % high).

Used by lwa-cutout's `measure`, lwa-dewarp's `extract` and `lwa_common.testing.fit_point_source`.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["FWHM_PER_SIGMA", "MAD_TO_SIGMA", "GaussianFit2D", "fit_gaussian", "gaussian_area", "gaussian_peak_3x3"]

log = logging.getLogger(__name__)

FWHM_PER_SIGMA = math.sqrt(8.0 * math.log(2.0))
# a normal distribution's sigma per unit of median absolute deviation, 1 / Phi^-1(3/4): astropy
# `mad_std`'s factor, for the vectorised MADs that cannot call it (lwa-dewarp, lwa-flag)
MAD_TO_SIGMA = 1.482602218505602
MIN_PIXELS = 7
_BOUND_TOL = 1e-3  # relative distance to a bound that counts as "on the bound"


@dataclass(frozen=True)
class GaussianFit2D:
    """A fitted Gaussian in pixel units: sigmas (not FWHM), `theta` in radians from +x towards +y."""

    amplitude: float
    x: float
    y: float
    sigma_x: float
    sigma_y: float
    theta: float
    offset: float
    amplitude_err: float
    converged: bool
    fixed_shape: bool
    npix: int
    message: str = ""

    @property
    def sigma_major(self) -> float:
        return max(self.sigma_x, self.sigma_y)

    @property
    def sigma_minor(self) -> float:
        return min(self.sigma_x, self.sigma_y)

    @property
    def theta_major(self) -> float:
        """Angle of the major axis from +x towards +y (radians)."""
        return self.theta if self.sigma_x >= self.sigma_y else self.theta + math.pi / 2

    @property
    def area_px(self) -> float:
        """Integral of the unit-amplitude Gaussian, pixels."""
        return gaussian_area(self.sigma_x, self.sigma_y)


def gaussian_area(sigma_a: float, sigma_b: float) -> float:
    """2π σa σb: the integral of a unit-peak Gaussian."""
    return 2.0 * math.pi * sigma_a * sigma_b


def _on_bound(value: float, lo: float | None, hi: float | None) -> bool:
    for bound in (lo, hi):
        if bound is not None and math.isfinite(bound):
            scale = max(abs(bound), 1.0)
            if abs(value - bound) <= _BOUND_TOL * scale:
                return True
    return False


def fit_gaussian(
    image: np.ndarray,
    x0: float,
    y0: float,
    *,
    sigma_x: float,
    sigma_y: float,
    theta: float = 0.0,
    half_box: int,
    fixed_shape: bool = False,
    fit_offset: bool = True,
    centre_reach: float | None = None,
    radius: float | None = None,
    sigma_range: tuple[float, float] = (0.3, 6.0),
    maxiter: int = 400,
) -> GaussianFit2D | None:
    """Fit a Gaussian to the finite pixels of `image` within `half_box` pixels of (x0, y0).

    The start shape is (`sigma_x`, `sigma_y`, `theta`) — the restoring beam in pixels — and is
    kept when `fixed_shape`. A free shape is bounded to `sigma_range` × (the beam's smallest,
    largest sigma). The centre is bounded to `centre_reach` pixels of the start (default: the
    beam's major sigma, at least 1 px). `radius` (pixels) keeps only the pixels that close to
    (x0, y0) (e.g. the main lobe of a dirty beam). `fit_offset` adds a constant background. Returns None when
    there are too few finite pixels or the solver fails outright; otherwise a `GaussianFit2D`
    whose `converged` says whether the result may be used.
    """
    n_free = 3 + (0 if fixed_shape else 3) + int(fit_offset)
    pixels = _box_pixels(np.asarray(image), x0, y0, half_box=half_box, radius=radius, min_pixels=n_free + 2)
    if pixels is None:
        return None
    xx, yy, zz, amp0 = pixels
    reach = centre_reach if centre_reach is not None else max(1.0, max(sigma_x, sigma_y))
    bounds = {"x_mean": (x0 - reach, x0 + reach), "y_mean": (y0 - reach, y0 + reach)}
    if not fixed_shape:
        s_bounds = (sigma_range[0] * min(sigma_x, sigma_y), sigma_range[1] * max(sigma_x, sigma_y))
        bounds.update({"x_stddev": s_bounds, "y_stddev": s_bounds})
    model = _model(amp0, x0, y0, sigma_x, sigma_y, theta, bounds=bounds, fixed_shape=fixed_shape,
                   fit_offset=fit_offset)
    solved = _solve(model, xx, yy, zz, maxiter=maxiter)
    if solved is None:
        return None
    fitted, status, warned = solved
    g, c = fitted[0], fitted[1]
    values = [float(g.amplitude.value), float(g.x_mean.value), float(g.y_mean.value), abs(float(g.x_stddev.value)),
              abs(float(g.y_stddev.value)), float(g.theta.value), float(c.amplitude.value)]
    if not all(math.isfinite(v) for v in values):
        return None
    amp_err = _amplitude_std(g)
    reasons = _doubts(values, amp0=amp0, amp_err=amp_err, status=status, warned=warned, bounds=bounds,
                      fixed_shape=fixed_shape)
    return GaussianFit2D(
        amplitude=values[0], x=values[1], y=values[2], sigma_x=values[3], sigma_y=values[4], theta=values[5],
        offset=values[6], amplitude_err=amp_err, converged=not reasons, fixed_shape=fixed_shape,
        npix=len(zz), message="; ".join(reasons),
    )


def _box_pixels(image: np.ndarray, x0: float, y0: float, *, half_box: int, radius: float | None, min_pixels: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(x, y, value) of the finite pixels to fit and the start amplitude; None when too few."""
    ny, nx = image.shape
    xc, yc = int(round(x0)), int(round(y0))
    if not (0 <= xc < nx and 0 <= yc < ny):
        return None
    y_lo, y_hi = max(yc - half_box, 0), min(yc + half_box + 1, ny)
    x_lo, x_hi = max(xc - half_box, 0), min(xc + half_box + 1, nx)
    cut = np.asarray(image[y_lo:y_hi, x_lo:x_hi], dtype=float)
    yy, xx = np.mgrid[y_lo:y_hi, x_lo:x_hi]
    good = np.isfinite(cut)
    if radius is not None:
        good &= (xx - x0) ** 2 + (yy - y0) ** 2 <= radius * radius
    if good.sum() < max(MIN_PIXELS, min_pixels):
        return None
    amp0 = float(image[yc, xc]) if np.isfinite(image[yc, xc]) else float(np.nanmax(np.abs(cut)))
    if amp0 == 0:
        return None
    return xx[good].astype(float), yy[good].astype(float), cut[good], amp0


def _model(amp0: float, x0: float, y0: float, sigma_x: float, sigma_y: float, theta: float, *, bounds: dict,
           fixed_shape: bool, fit_offset: bool):
    """Gaussian2D + Const2D with the given start, bounds and fixed parameters."""
    from astropy.modeling import models

    gauss = models.Gaussian2D(amplitude=amp0, x_mean=x0, y_mean=y0, x_stddev=sigma_x, y_stddev=sigma_y,
                              theta=theta, bounds=bounds)
    if fixed_shape:
        for name in ("x_stddev", "y_stddev", "theta"):
            getattr(gauss, name).fixed = True
    const = models.Const2D(amplitude=0.0)
    if not fit_offset:
        const.amplitude.fixed = True
    return gauss + const


def _solve(model, xx: np.ndarray, yy: np.ndarray, zz: np.ndarray, *, maxiter: int):
    """(fitted model, solver status, astropy warnings) of `TRFLSQFitter`; None when it fails outright."""
    from astropy.modeling import fitting
    from astropy.utils.exceptions import AstropyUserWarning

    fitter = fitting.TRFLSQFitter(calc_uncertainties=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fitted = fitter(model, xx, yy, zz, maxiter=maxiter)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
            log.debug("Gaussian fit failed: %s", err)
            return None
    info = fitter.fit_info
    status = getattr(info, "status", None) if not isinstance(info, dict) else info.get("status")
    warned = [str(w.message) for w in caught if issubclass(w.category, AstropyUserWarning)]
    return fitted, status, warned


def _amplitude_std(g) -> float:
    try:
        std = g.amplitude.std
        return float(std) if std is not None else math.nan
    except (AttributeError, TypeError, ValueError):
        return math.nan


def _doubts(values: list[float], *, amp0: float, amp_err: float, status: int | None, warned: list[str],
            bounds: dict, fixed_shape: bool) -> list[str]:
    """Why a fit may not be trusted (empty: converged)."""
    reasons = []
    if status is not None and status <= 0:
        reasons.append("iteration limit reached" if status == 0 else f"solver status {status}")
    if warned:
        reasons.append("; ".join(warned))
    if values[0] * amp0 <= 0:
        reasons.append("amplitude changed sign")
    checks = [(values[1], *bounds["x_mean"]), (values[2], *bounds["y_mean"])]
    if not fixed_shape:
        checks += [(values[3], *bounds["x_stddev"]), (values[4], *bounds["y_stddev"])]
    if any(_on_bound(v, lo, hi) for v, lo, hi in checks):
        reasons.append("a parameter is on its bound")
    if not math.isfinite(amp_err):
        reasons.append("no finite uncertainty")
    return reasons


def gaussian_peak_3x3(image: np.ndarray, x: int, y: int) -> tuple[float, float, float] | None:
    """(peak, x, y) of the Gaussian through the 3 × 3 pixels centred on the extreme pixel (x, y).

    The logarithms of the nine |values| are fitted with a full quadratic (6 terms: rotated
    ellipses included); its maximum is the peak. None when a pixel is missing, of the other sign
    than the centre, the quadratic has no maximum, or the maximum lies more than 1 px away.
    """
    image = np.asarray(image)
    ny, nx = image.shape
    if not (1 <= x < nx - 1 and 1 <= y < ny - 1):
        return None
    sub = np.asarray(image[y - 1: y + 2, x - 1: x + 2], dtype=float)
    sign = 1.0 if sub[1, 1] > 0 else -1.0
    sub = sign * sub
    if not np.all(np.isfinite(sub)) or np.any(sub <= 0):
        return None
    yy, xx = np.mgrid[-1:2, -1:2]
    xs, ys = xx.ravel().astype(float), yy.ravel().astype(float)
    design = np.column_stack([np.ones(9), xs, ys, xs * xs, ys * ys, xs * ys])
    c, *_ = np.linalg.lstsq(design, np.log(sub.ravel()), rcond=None)
    hessian = np.array([[2 * c[3], c[5]], [c[5], 2 * c[4]]])
    if not np.all(np.linalg.eigvalsh(hessian) < 0):
        return None
    grad = np.array([c[1], c[2]])
    off = -np.linalg.solve(hessian, grad)
    if np.any(np.abs(off) > 1.0):
        return None
    peak = sign * math.exp(c[0] + grad @ off + 0.5 * off @ hessian @ off)
    return float(peak), float(x + off[0]), float(y + off[1])
