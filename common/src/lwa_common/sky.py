"""Sky geometry shared by the model predictors (lwa-sim, lwa-calib): direction cosines and the
visibility of an elliptical Gaussian."""

from __future__ import annotations

import numpy as np

__all__ = ["direction_cosines", "gaussian_visibility"]

_FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


def direction_cosines(ra, dec, ra0, dec0):
    """(l, m, n) of (ra, dec) relative to the phase centre (ra0, dec0); all angles in radians."""
    dra = ra - ra0
    l = np.cos(dec) * np.sin(dra)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(dra)
    n = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(dra)
    return l, m, n


def gaussian_visibility(u_l, v_l, *, major_arcsec: float, minor_arcsec: float, pa_deg: float):
    """Visibility of a unit-flux elliptical Gaussian (FWHM axes, position angle east of north)
    at (u, v) in wavelengths; 1.0 for a point source (major_arcsec <= 0)."""
    if major_arcsec <= 0:
        return 1.0
    smaj = np.radians(major_arcsec / 3600.0) * _FWHM_TO_SIGMA
    smin = np.radians((minor_arcsec or major_arcsec) / 3600.0) * _FWHM_TO_SIGMA
    pa = np.radians(pa_deg)
    along = u_l * np.sin(pa) + v_l * np.cos(pa)
    across = u_l * np.cos(pa) - v_l * np.sin(pa)
    return np.exp(-2.0 * np.pi**2 * (smaj**2 * along**2 + smin**2 * across**2))
