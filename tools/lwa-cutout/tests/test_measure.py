"""The measurement core on synthetic all-sky images (no wsclean): fast, exact truths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane
from lwa_common.testing import allsky_header, synthetic_image
from lwa_cutout.measure import (
    RestoringBeam,
    angular_separation_deg,
    bilinear,
    measure_position,
    robust_rms,
    search_radius_deg,
)

FREQ = 56.0


def _image(sources, *, noise=0.0, size=300, scale=0.1, bmaj=0.35, seed=1, **kw):
    header = allsky_header(size=size, scale_deg=scale, bmaj_deg=bmaj, freq_mhz=FREQ, **kw)
    return image_plane(synthetic_image(header, sources, noise=noise, seed=seed)).astype(float), header


def test_search_radius_is_beam_plus_scaled_padding():
    assert search_radius_deg(0.25, 85.0) == pytest.approx(0.25 + 120 / 3600)
    assert search_radius_deg(0.25, 42.5, pad_arcsec_at_85mhz=60) == pytest.approx(0.25 + 120 / 3600)
    with pytest.raises(LwaError, match="frequency"):
        search_radius_deg(0.25, 0.0)


def test_robust_rms_ignores_outliers_and_nans():
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 0.7, 20000)
    values[:200] = 500.0  # 1 % bright pixels (a source in the annulus)
    values[200:400] = np.nan
    assert robust_rms(values) == pytest.approx(0.7, rel=0.03)
    assert math.isnan(robust_rms(np.array([1.0, np.nan])))


def test_bilinear_is_exact_on_a_plane_and_nan_aware():
    yy, xx = np.mgrid[0:5, 0:6].astype(float)
    img = 2 * xx - 3 * yy + 1
    assert bilinear(img, 2.25, 1.5) == pytest.approx(2 * 2.25 - 3 * 1.5 + 1)
    assert bilinear(img, 5.0, 4.0) == pytest.approx(2 * 5 - 3 * 4 + 1)  # last pixel
    img[2, 3] = np.nan
    assert math.isnan(bilinear(img, 2.5, 1.5))
    assert math.isnan(bilinear(img, -1.0, 1.0))


def test_angular_separation_matches_known_values():
    assert angular_separation_deg(10, 0, 20, 0) == pytest.approx(10.0)
    assert angular_separation_deg(0, 89, 180, 89) == pytest.approx(2.0)
    assert angular_separation_deg(83.63, 22.01, 83.63, 22.01) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("ra", "dec", "peak"), [(153.3, 38.2, 5.0), (144.0, 45.0, 2.0), (151.0, 37.24, 0.8)])
def test_point_source_flux_position_and_rms(ra, dec, peak):
    noise = 0.013
    img, header = _image([(ra, dec, peak)], noise=noise, size=280, seed=7)
    beam = RestoringBeam.from_header(header)
    m = measure_position(img, celestial_wcs(header), ra, dec, beam=beam, freq_mhz=FREQ)
    assert m.rms_jy == pytest.approx(noise, rel=0.1)
    assert m.detected and m.snr > 50
    assert m.fit is not None
    assert m.fit.peak_jy == pytest.approx(peak, rel=0.02)
    assert m.fit.flux_jy == pytest.approx(peak, rel=0.03)  # a point source: integrated = peak
    assert m.fit.major_arcsec == pytest.approx(0.35 * 3600, rel=0.05)
    assert angular_separation_deg(ra, dec, m.fit.ra_deg, m.fit.dec_deg) * 3600 < 60  # << 0.1 deg pixels
    assert m.peak_offset_arcsec < 0.1 * 3600 * 1.5  # the brightest pixel is a neighbour of the position
    assert peak * 0.8 < m.cat_jy <= peak * 1.001


@pytest.mark.parametrize("factor", [2.0, 3.5])
def test_extended_gaussian_integrated_flux(factor):
    """A source `factor` x the beam: the fit's integrated flux is peak x area ratio (factor**2)."""
    header = allsky_header(size=240, scale_deg=0.1, bmaj_deg=0.3, freq_mhz=FREQ)
    wcs = celestial_wcs(header)
    x0, y0 = (float(v) for v in wcs.world_to_pixel_values(152.0, 39.0))
    yy, xx = np.mgrid[0:240, 0:240]
    sigma_px = factor * 0.3 / 0.1 / math.sqrt(8 * math.log(2))
    img = 0.5 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma_px**2))
    img += np.random.default_rng(2).normal(0, 0.005, img.shape)
    m = measure_position(img, wcs, 152.0, 39.0, beam=RestoringBeam.from_header(header), freq_mhz=FREQ)
    assert m.fit is not None
    assert m.fit.flux_jy == pytest.approx(0.5 * factor**2, rel=0.05)
    assert m.fit.major_arcsec == pytest.approx(factor * 0.3 * 3600, rel=0.05)


def test_negative_stokes_v_keeps_its_sign():
    img, header = _image([(150.0, 40.0, 1.5), (148.4, 40.0, 3.0)], noise=0.01)
    img = -img  # a negative V source next to the position; a brighter one beyond the search circle
    beam = RestoringBeam.from_header(header)
    m = measure_position(img, celestial_wcs(header), 150.0, 40.0, beam=beam, freq_mhz=FREQ, stokes="V")
    assert m.peak_jy == pytest.approx(-1.5, rel=0.1) and m.snr < -50 and m.detected
    assert m.fit is not None and m.fit.peak_jy == pytest.approx(-1.5, rel=0.02)
    # Stokes I semantics: the largest value, so a negative source is no detection
    m_i = measure_position(img, celestial_wcs(header), 150.0, 40.0, beam=beam, freq_mhz=FREQ, stokes="I")
    assert not m_i.detected and m_i.fit is None


def test_confusing_source_mask():
    # beam 0.3 deg, search radius 0.3 + 0.05 deg: the neighbour is inside it but outside 1 FWHM
    target, confuser = (150.0, 36.0, 4.0), (150.0 + 0.33 / math.cos(math.radians(36)), 36.0, 12.0)
    img, header = _image([target, confuser], noise=0.02, scale=0.05, bmaj=0.3)
    wcs, beam = celestial_wcs(header), RestoringBeam.from_header(header)
    plain = measure_position(img, wcs, 150.0, 36.0, beam=beam, freq_mhz=FREQ)
    masked = measure_position(img, wcs, 150.0, 36.0, beam=beam, freq_mhz=FREQ, mask=[confuser[:2]])
    assert plain.peak_jy == pytest.approx(12.0, rel=0.05) and plain.peak_offset_arcsec > 0.3 * 3600
    assert masked.masked_px > 0
    assert masked.peak_offset_arcsec < 0.1 * 3600
    assert masked.fit is not None and masked.fit.flux_jy == pytest.approx(4.0, rel=0.15)
    assert masked.cat_jy == plain.cat_jy  # catalogue value is read from the unmasked image
    # a target inside the mask is flagged
    inside = measure_position(img, wcs, 150.0, 36.0, beam=beam, freq_mhz=FREQ, mask=[(150.05, 36.0)])
    assert "position masked" in inside.note


def test_off_image_and_below_horizon_positions():
    img, header = _image([(151.0, 37.24, 1.0)], noise=0.01, size=100, scale=0.1)
    wcs, beam = celestial_wcs(header), RestoringBeam.from_header(header)
    far = measure_position(img, wcs, 10.0, -40.0, beam=beam, freq_mhz=FREQ)
    assert far.note == "outside image" and math.isnan(far.peak_jy) and not far.detected
    row = far.columns("I", "x.fits")
    assert row["I_image"] == "x.fits" and math.isnan(row["I_fit_flux_jy"]) and row["I_detected"] is False
    # an all-sky image: positions next to the NaN horizon are measured from the finite pixels only
    img2, header2 = _image([], noise=0.01, size=128, scale=1.0, bmaj=2.0)
    near = measure_position(img2, celestial_wcs(header2), 151.0, -47.0, beam=RestoringBeam.from_header(header2),
                            freq_mhz=FREQ)
    assert np.isnan(img2).any() and not near.detected


def test_beam_from_header_fallback_and_error():
    header = allsky_header()
    del header["BMAJ"]
    fallback = RestoringBeam(0.2, 0.1, 30.0)
    assert RestoringBeam.from_header(header, fallback=fallback) is fallback
    with pytest.raises(LwaError, match="no restoring beam"):
        RestoringBeam.from_header(header, where="x.fits")


def test_annulus_must_be_ordered():
    img, header = _image([], noise=0.01, size=64)
    with pytest.raises(LwaError, match="annulus"):
        measure_position(img, celestial_wcs(header), 151.0, 37.24, beam=RestoringBeam(0.3, 0.3), freq_mhz=FREQ,
                         annulus_beams=(6.0, 3.0))


@pytest.mark.parametrize("px_per_beam", [1.5, 2.0, 3.0, 5.0])
def test_point_flux_at_any_sampling(px_per_beam):
    """Point sources between pixels: the beam-shaped fit gives the peak within 2 % even on coarse
    pixels (the peak pixel alone reads up to ~30 % low at 1.5 px per beam)."""
    scale = 0.1
    rng = np.random.default_rng(int(px_per_beam * 10))
    errors = []
    for k in range(6):
        ra, dec = 150.0 + rng.uniform(-3, 3), 38.0 + rng.uniform(-3, 3)
        img, header = _image([(ra, dec, 10.0)], noise=0.02, size=200, scale=scale, bmaj=px_per_beam * scale, seed=k)
        m = measure_position(img, celestial_wcs(header), ra, dec, beam=RestoringBeam.from_header(header),
                             freq_mhz=FREQ)
        assert m.fit is not None and not m.fit.resolved, m.note
        errors.append(m.fit.flux_jy / 10.0 - 1)
    assert max(abs(e) for e in errors) < 0.02, errors
    assert np.median(np.abs(errors)) < 0.01


def _dirty_psf(shape, x0, y0, fwhm_px, *, sidelobe=0.15, ring_beams=2.5):
    """A dirty-beam stand-in: Gaussian main lobe (peak 1) plus a ring of ±sidelobes further out."""
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    r = np.hypot(xx - x0, yy - y0)
    sigma = fwhm_px / math.sqrt(8 * math.log(2))
    main = np.exp(-0.5 * (r / sigma) ** 2)
    phi = np.arctan2(yy - y0, xx - x0)
    ring = sidelobe * np.exp(-0.5 * ((r - ring_beams * fwhm_px) / (0.4 * fwhm_px)) ** 2) * np.cos(3 * phi)
    negative_shoulder = -0.08 * np.exp(-0.5 * ((r - 1.3 * fwhm_px) / (0.3 * fwhm_px)) ** 2)
    return main + ring + negative_shoulder


@pytest.mark.parametrize("px_per_beam", [2.0, 3.5])
def test_stokes_v_in_a_dirty_image_within_5_percent(px_per_beam):
    """Stokes V (dirty images): the beam-shaped fit on the main lobe, never a free shape that takes
    the sidelobes for extent (a free fit read dirty V 3–4× too high)."""
    header = allsky_header(size=200, scale_deg=0.1, bmaj_deg=px_per_beam * 0.1, freq_mhz=FREQ)
    wcs = celestial_wcs(header)
    rng = np.random.default_rng(4)
    for _ in range(4):
        ra, dec = 150.0 + rng.uniform(-3, 3), 38.0 + rng.uniform(-3, 3)
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra, dec))
        truth = -float(rng.uniform(3, 20))
        img = truth * _dirty_psf((200, 200), x0, y0, px_per_beam) + rng.normal(0, 0.05, (200, 200))
        m = measure_position(img, wcs, ra, dec, beam=RestoringBeam.from_header(header), freq_mhz=FREQ, stokes="V")
        assert m.fit is not None, m.note
        assert m.fit.peak_jy == pytest.approx(truth, rel=0.05)
        assert m.fit.flux_jy == m.fit.peak_jy and not m.fit.resolved


def test_a_fit_that_does_not_converge_is_never_the_flux(monkeypatch):
    import lwa_cutout.measure as measure

    real = measure.fit_gaussian
    monkeypatch.setattr(measure, "fit_gaussian", lambda *a, **kw: real(*a, **{**kw, "maxiter": 1}))
    img, header = _image([(150.0, 38.0, 5.0)], noise=0.02, size=120, seed=3)
    m = measure_position(img, celestial_wcs(header), 150.0, 38.0, beam=RestoringBeam.from_header(header),
                         freq_mhz=FREQ)
    assert m.detected and m.fit is None
    assert "did not converge" in m.note and math.isnan(m.columns("I")["I_fit_flux_jy"])


@pytest.mark.parametrize("px_per_beam", [3.0, 4.3, 6.0])
def test_peak_is_the_maximum_between_pixels(px_per_beam):
    """The peak (not only the fit) is right at any pixel phase once the beam spans ≥ 3 px: the top
    of the Gaussian through the 3 x 3 pixels, its position within a tenth of a pixel."""
    scale = 0.1
    rng = np.random.default_rng(int(px_per_beam * 10) + 1)
    errors, pixel_errors = [], []
    for k in range(8):
        ra, dec = 150.0 + rng.uniform(-3, 3), 38.0 + rng.uniform(-3, 3)
        truth = float(rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 20.0))
        img, header = _image([(ra, dec, abs(truth))], noise=0.01, size=200, scale=scale,
                             bmaj=px_per_beam * scale, seed=k)
        img *= np.sign(truth)
        for stokes in ("V", "I") if truth > 0 else ("V",):
            m = measure_position(img, celestial_wcs(header), ra, dec, beam=RestoringBeam.from_header(header),
                                 freq_mhz=FREQ, stokes=stokes)
            errors.append(m.peak_jy / truth - 1)
            assert angular_separation_deg(ra, dec, m.peak_ra_deg, m.peak_dec_deg) < 0.1 * scale
            assert m.peak_offset_arcsec == pytest.approx(
                3600 * angular_separation_deg(ra, dec, m.peak_ra_deg, m.peak_dec_deg), abs=1e-6)
        pixel_errors.append(np.nanmax(np.abs(img)) / abs(truth) - 1)
    assert max(abs(e) for e in errors) < 0.01, errors
    assert min(pixel_errors) < -0.01  # the brightest pixel alone would not have been right


def test_peak_on_coarse_pixels_is_the_brightest_pixel():
    """Below 3 px per beam the 3 x 3 pixels reach the flanks: the peak stays the brightest pixel."""
    img, header = _image([(150.03, 38.04, 5.0)], noise=0.01, size=200, scale=0.1, bmaj=0.15, seed=2)
    m = measure_position(img, celestial_wcs(header), 150.03, 38.04, beam=RestoringBeam.from_header(header),
                         freq_mhz=FREQ)
    assert m.peak_jy == float(np.nanmax(img))
