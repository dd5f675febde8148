"""lwa_common.fitting: the shared Gaussian fitter and its convergence verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lwa_common.fitting import FWHM_PER_SIGMA, fit_gaussian, gaussian_peak_3x3


def _source(shape, x0, y0, sx, sy, theta, amp, *, noise=0.0, seed=0):
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    c, s = math.cos(theta), math.sin(theta)
    u = (xx - x0) * c + (yy - y0) * s
    v = -(xx - x0) * s + (yy - y0) * c
    img = amp * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return img + noise * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("px_per_beam", [1.5, 2.5, 5.0])
def test_fixed_shape_peak_between_pixels_at_any_sampling(px_per_beam):
    sigma = px_per_beam / FWHM_PER_SIGMA
    rng = np.random.default_rng(int(10 * px_per_beam))
    for _ in range(5):
        x0, y0 = 30 + rng.uniform(-0.5, 0.5), 31 + rng.uniform(-0.5, 0.5)
        img = _source((64, 64), x0, y0, sigma * 1.3, sigma, 0.4, -7.0, noise=0.01)
        fit = fit_gaussian(img, round(x0), round(y0), sigma_x=sigma * 1.3, sigma_y=sigma, theta=0.4,
                           half_box=max(2, math.ceil(px_per_beam)), fixed_shape=True, fit_offset=False)
        assert fit is not None and fit.converged, fit
        assert fit.amplitude == pytest.approx(-7.0, rel=0.01)
        assert (fit.x, fit.y) == pytest.approx((x0, y0), abs=0.05)


def test_free_shape_recovers_an_extended_source():
    img = _source((80, 80), 40.3, 39.6, 6.0, 3.0, 0.7, 2.0, noise=0.01, seed=2)
    fit = fit_gaussian(img, 40, 40, sigma_x=2.0, sigma_y=2.0, half_box=18)
    assert fit is not None and fit.converged, fit.message
    assert fit.sigma_major == pytest.approx(6.0, rel=0.03) and fit.sigma_minor == pytest.approx(3.0, rel=0.03)
    assert fit.amplitude * fit.area_px == pytest.approx(2.0 * 2 * math.pi * 18.0, rel=0.03)


def test_a_fit_stopped_by_its_iteration_limit_or_bounds_is_not_converged():
    img = _source((40, 40), 20.4, 19.7, 2.0, 2.0, 0.0, 5.0, noise=0.02, seed=3)
    limited = fit_gaussian(img, 20, 20, sigma_x=4.0, sigma_y=1.0, half_box=6, maxiter=1)
    assert limited is not None and not limited.converged and limited.message
    # the source is 2 px away but the centre may only move 0.1 px: it ends on its bound
    pinned = fit_gaussian(img, 18, 20, sigma_x=2.0, sigma_y=2.0, half_box=6, fixed_shape=True, centre_reach=0.1)
    assert pinned is not None and not pinned.converged and "bound" in pinned.message
    good = fit_gaussian(img, 20, 20, sigma_x=2.0, sigma_y=2.0, half_box=6)
    assert good is not None and good.converged and good.amplitude == pytest.approx(5.0, rel=0.02)


def test_too_few_pixels_or_off_image_gives_none():
    img = np.full((10, 10), np.nan)
    img[5, 5] = 1.0
    assert fit_gaussian(img, 5, 5, sigma_x=1.0, sigma_y=1.0, half_box=3) is None
    assert fit_gaussian(np.ones((10, 10)), 20, 5, sigma_x=1.0, sigma_y=1.0, half_box=3) is None


@pytest.mark.parametrize("px_per_beam", [1.5, 3.0, 6.0])
def test_gaussian_through_3x3_is_exact_for_any_gaussian(px_per_beam):
    sigma = px_per_beam / FWHM_PER_SIGMA
    img = _source((20, 20), 9.7, 10.4, sigma * 1.4, sigma, 0.9, -3.0)
    peak, x, y = gaussian_peak_3x3(img, 10, 10)
    assert peak == pytest.approx(-3.0, rel=1e-6) and (x, y) == pytest.approx((9.7, 10.4), abs=1e-6)
    img[9, 9] = 0.5  # a pixel of the other sign: no estimate
    assert gaussian_peak_3x3(img, 10, 10) is None
