"""Wideband stacking on synthetic all-sky images: noise, weighted flux, regridding, failures, names."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.config import load_config
from lwa_common.errors import LwaError
from lwa_stack.noise import read_noise_csv, robust_rms
from lwa_stack.stack import (
    Candidate,
    band_of,
    bands_from_config,
    grid_signature,
    plan_stacks,
    robust_token,
    stack_arrays,
    stack_name,
    wideband,
)

BANDS = bands_from_config(load_config().stack.bands_mhz)
GREEN = (41, 46, 50, 55, 59)  # subbands whose centres lie in 41-64 MHz


def _stack(run, out, **kw):
    return {r.path.name: r for r in wideband([run], outdir=out, bands=BANDS, **kw)}


def test_bands_and_names():
    assert [b.name for b in BANDS] == ["Red", "Green", "Blue"]
    assert band_of(20.3, BANDS).name == "Red" and band_of(41.0, BANDS).name == "Green"
    assert band_of(84.6, BANDS).name == "Blue" and band_of(90.0, BANDS) is None and band_of(float("nan"), BANDS) is None
    assert robust_token(0.0) == "Robust-0" and robust_token(-0.75) == "Robust-0.75" and robust_token(0.5) == "Robust+0.5"
    assert stack_name("Red", "V", "10min", 30, 0.0, "t0003") == "Wideband_Red_V_10min_Taper_Robust-0_t0003.fits"
    assert stack_name("Blue", "I", "deep", 0, -0.75, "deep") == "Wideband_Blue_I_deep_NoTaper_Robust-0.75.fits"


def test_noise_record_is_the_thermal_noise_product():
    import dataclasses

    from lwa_common.products import THERMAL_NOISE
    from lwa_stack.noise import NoiseRecord

    assert tuple(f.name for f in dataclasses.fields(NoiseRecord)) == THERMAL_NOISE.columns


def test_robust_rms_ignores_sources_and_nan():
    rng = np.random.default_rng(3)
    img = 2.5 * rng.standard_normal((300, 260))
    img[100:110, 100:110] += 400.0  # a bright source
    img[:, :40] = np.nan  # horizon mask
    rms, n = robust_rms(img, inner_fraction=0.8)
    assert rms == pytest.approx(2.5, rel=0.03)
    assert np.nanstd(img[30:270, 26:234]) > 5 * 2.5  # the naive estimate is ruined by the source
    assert n == np.isfinite(img[30:270, 26:234]).sum()
    assert math.isnan(robust_rms(np.full((50, 50), np.nan))[0])


def test_stack_arrays_is_nan_aware_weighted_mean():
    a = np.array([[1.0, np.nan, np.nan], [4.0, 5.0, 6.0]])
    b = np.array([[3.0, 2.0, np.nan], [0.0, 5.0, np.inf]])
    out, wsum = stack_arrays([a, b], [1.0, 3.0])
    assert out[0, 0] == pytest.approx((1 * 1 + 3 * 3) / 4)
    assert out[0, 1] == 2.0 and wsum[0, 1] == 3.0  # NaN input has weight 0 there
    assert np.isnan(out[0, 2]) and wsum[0, 2] == 0
    assert out[1, 2] == 6.0
    with pytest.raises(LwaError, match="shape"):
        stack_arrays([a, np.zeros((3, 3))], [1, 1])


def test_five_subbands_improve_noise_by_sqrt_n(synth, tmp_path):
    for sb in GREEN:
        synth.make(sb, stokes="V", noise=1.3)
    results = _stack(synth.run, tmp_path / "wb")
    res = results["Wideband_Green_V_deep_Taper_Robust-0.fits"]
    single = np.mean([synth.rms(synth.run / f"{sb}MHz" / f"{sb}MHz-V-deep-Taper-Robust0-image_dewarped.fits")
                      for sb in GREEN])
    stacked = synth.rms(res.path)
    assert single / stacked == pytest.approx(math.sqrt(5), rel=0.10)
    assert res.expected_rms_jy == pytest.approx(stacked, rel=0.10)
    h = fits.getheader(res.path)
    assert h["IMGCAT"] == "stack" and h["STKCAT"] == "deep" and h["BAND"] == "Green" and h["NSUBBAND"] == 5
    assert h["SUBBANDS"] == "41MHz,46MHz,50MHz,55MHz,59MHz" and h["STOKES"] == "V" and h["PBCOR"] is False
    assert h["DEWARPED"] is True and h["INTERVAL"] == "deep" and h["TAPER"] == 30 and h["ROBUST"] == 0
    assert 41 < h["FREQMHZ"] < 64 and h["CRVAL3"] == pytest.approx(h["FREQMHZ"] * 1e6, rel=1e-6)
    assert any("lwa-pipe[lwa-stack]" in str(c) for c in h["HISTORY"])
    assert sum("input 55MHz" in str(c) for c in h["HISTORY"]) == 1
    noise = read_noise_csv(tmp_path / "wb" / "thermal_noise.csv")
    inputs = [r for r in noise.values() if r.imgcat == "deep"]
    assert len(inputs) == 5 and all(r.rms_jy == pytest.approx(1.3, rel=0.05) for r in inputs)
    assert [r.rms_jy for r in noise.values() if r.imgcat == "stack"] == [pytest.approx(stacked, rel=1e-6)]


def test_unequal_noise_gives_inverse_variance_flux_and_noise(synth, tmp_path):
    sigmas = (0.4, 0.8, 1.6, 3.0, 6.0)
    ra, dec = synth.world_of(synth.make(41, noise=0.0, name="probe.fits"), 100, 112)
    (synth.run / "41MHz" / "probe.fits").unlink()
    for sb, s in zip(GREEN, sigmas, strict=True):
        synth.make(sb, stokes="V", noise=s, sources=[(ra, dec, 40.0)], spectral_index=-2.5)
    res = _stack(synth.run, tmp_path / "wb")["Wideband_Green_V_deep_Taper_Robust-0.fits"]
    freqs = np.array([synth.centre_mhz(sb) for sb in GREEN])
    fluxes = 40.0 * (freqs / 60.0) ** -2.5
    measured_sigma = np.array([w for _, w in res.used]) ** -0.5
    w = 1 / measured_sigma**2
    expected = float(np.sum(w * fluxes) / np.sum(w))
    plain = float(np.mean(fluxes))
    assert abs(expected - plain) / plain > 0.08  # the test can tell weighted from plain mean
    got = synth.value_at(res.path, ra, dec)
    assert got == pytest.approx(expected, abs=3 * res.expected_rms_jy)
    assert got == pytest.approx(expected, rel=0.03)
    assert measured_sigma == pytest.approx(np.array(sigmas), rel=0.05)
    assert synth.rms(res.path) == pytest.approx(1 / math.sqrt(np.sum(1 / np.array(sigmas) ** 2)), rel=0.10)
    assert fits.getheader(res.path)["FREQMHZ"] == pytest.approx(float(np.sum(w * freqs) / np.sum(w)), abs=1e-3)


def test_failed_subband_is_skipped_with_warning(synth, tmp_path, caplog):
    paths = [synth.make(sb, stokes="V") for sb in GREEN]
    paths[1].write_bytes(b"SIMPLE  = this is not a FITS file" + b"\0" * 100)  # unreadable
    data = fits.getdata(paths[3])
    fits.writeto(paths[3], np.full_like(data, np.nan), fits.getheader(paths[3]), overwrite=True)  # all NaN
    with caplog.at_level(logging.WARNING):
        res = _stack(synth.run, tmp_path / "wb")["Wideband_Green_V_deep_Taper_Robust-0.fits"]
    h = fits.getheader(res.path)
    assert h["NSUBBAND"] == 3 and h["SUBBANDS"] == "41MHz,50MHz,59MHz"
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(paths[1]) in warnings and "no usable pixels" in warnings
    assert res.skipped and res.skipped[0][0] == paths[3]


def test_regrid_when_wcs_differ(synth, tmp_path):
    probe = synth.make(41, noise=0.0, name="probe.fits")
    ra, dec = synth.world_of(probe, 120, 131)  # a pixel centre of the reference grid
    probe.unlink()
    a = synth.make(41, stokes="V", noise=0.2, sources=[(ra, dec, 30.0)])
    synth.make(46, stokes="V", noise=0.2, sources=[(ra, dec, 30.0)])
    b = synth.make(50, stokes="V", noise=0.2, sources=[(ra, dec, 30.0)], ra_deg=155.0, dec_deg=39.0, scale_deg=0.5,
                   size=220)
    assert grid_signature(fits.getheader(a)) != grid_signature(fits.getheader(b))
    res = _stack(synth.run, tmp_path / "wb")["Wideband_Green_V_deep_Taper_Robust-0.fits"]
    h = fits.getheader(res.path)
    assert h["NREGRID"] == 1 and h["NAXIS1"] == 200 and h["CRVAL1"] == pytest.approx(151.0)
    data = fits.getdata(res.path)[0, 0]
    x, y = synth.pixel_of(res.path, ra, dec)
    iy, ix = np.unravel_index(np.nanargmax(data), data.shape)
    assert (ix, iy) == (x, y)
    assert data[y, x] == pytest.approx(30.0, rel=0.05)  # a mis-registered input would lower the peak
    assert synth.value_at(a, ra, dec) == pytest.approx(30.0, rel=0.01)


def test_plan_selects_by_header(synth):
    for sb in (18, 23):
        synth.make(sb, stokes="I", imgcat="deep")
        synth.make(sb, stokes="I", imgcat="deep", dewarped=False)  # the dewarped one wins
        synth.make(sb, stokes="I", imgcat="deep", pbcor=True)  # PB-corrected: never stacked
        synth.make(sb, stokes="I", imgcat="deep", robust=-0.75)  # tapered: not a product
        synth.make(sb, stokes="I", imgcat="deep", taper=0, robust=0.0)
        synth.make(sb, stokes="I", imgcat="deep", taper=0, robust=-0.75)
        synth.make(sb, stokes="V", imgcat="deep", taper=0, robust=0.0)  # untapered V: not a product
        for t in ("t0001", "t0002"):
            synth.make(sb, stokes="V", imgcat="10min", interval=t)
            synth.make(sb, stokes="I", imgcat="10min", interval=t)
    synth.make(73, stokes="I", imgcat="deep", dewarped=False)  # Blue, only undewarped
    from lwa_common.fitsio import image_info

    cands = [Candidate(p, image_info(p), grid_signature(fits.getheader(p))) for p in sorted(synth.run.rglob("*.fits"))]
    plans = {p.name: p for p in plan_stacks(cands, BANDS)}
    assert sorted(plans) == sorted([
        "Wideband_Red_I_deep_Taper_Robust-0.fits", "Wideband_Red_I_deep_NoTaper_Robust-0.fits",
        "Wideband_Red_I_deep_NoTaper_Robust-0.75.fits",
        "Wideband_Red_I_10min_Taper_Robust-0_t0001.fits", "Wideband_Red_I_10min_Taper_Robust-0_t0002.fits",
        "Wideband_Red_V_10min_Taper_Robust-0_t0001.fits", "Wideband_Red_V_10min_Taper_Robust-0_t0002.fits",
        "Wideband_Blue_I_deep_Taper_Robust-0.fits",
    ])
    deep = plans["Wideband_Red_I_deep_Taper_Robust-0.fits"]
    assert [c.info.subband for c in deep.inputs] == ["18MHz", "23MHz"] and all(c.info.dewarped for c in deep.inputs)
    assert plans["Wideband_Red_I_deep_NoTaper_Robust-0.75.fits"].role == "science"
    assert plans["Wideband_Red_V_10min_Taper_Robust-0_t0002.fits"].role == "transient"
    assert not plans["Wideband_Blue_I_deep_Taper_Robust-0.fits"].inputs[0].info.dewarped


def test_weights_from_v_deep(synth, tmp_path):
    for sb, s in zip(GREEN[:3], (0.5, 1.0, 2.0), strict=True):
        synth.make(sb, stokes="V", noise=s)
        synth.make(sb, stokes="I", imgcat="10min", interval="t0001", noise=4.0)  # equal I noise
    res = wideband([synth.run], outdir=tmp_path / "wb", bands=BANDS, weight_from="v-deep")
    i10 = next(r for r in res if r.plan.name == "Wideband_Green_I_10min_Taper_Robust-0_t0001.fits")
    w = np.array([w for _, w in i10.used])
    assert w / w[0] == pytest.approx([1.0, 0.25, 0.0625], rel=0.1)  # from the V noise, not the I noise


def test_nothing_to_stack_and_rerun(synth, tmp_path):
    synth.make(55, stokes="I", pbcor=True)
    with pytest.raises(LwaError, match="no per-subband images to stack"):
        wideband([synth.run], outdir=tmp_path / "wb", bands=BANDS)
    synth.make(55, stokes="V")
    _stack(synth.run, tmp_path / "wb")
    with pytest.raises(LwaError, match="--overwrite"):
        _stack(synth.run, tmp_path / "wb")
    again = _stack(synth.run, tmp_path / "wb", overwrite=True)
    h = fits.getheader(next(iter(again.values())).path)
    assert sum(str(c).startswith("lwa-pipe[lwa-stack]") and "cmd:" in str(c) for c in h["HISTORY"]) == 1


def test_wideband_agrees_with_the_full_measurement(synth, tmp_path):
    """One read per input and the noise from a lattice of the inner box: the weights are within 1 % of
    the previous measurement (sigma clipping of every inner pixel), so the stack differs from the previous
    float64 weighted mean by < 1 % of its noise (RMS; < 5 % at any pixel); the stack's noise row is
    measured."""
    from astropy.stats import sigma_clipped_stats

    sigmas = (0.5, 0.9, 1.3, 2.0, 3.1)
    paths = [synth.make(sb, stokes="V", noise=s, size=600, scale_deg=0.2, sources=[(151.0, 40.0, 30.0)])
             for sb, s in zip(GREEN, sigmas, strict=True)]
    res = _stack(synth.run, tmp_path / "wb")["Wideband_Green_V_deep_Taper_Robust-0.fits"]
    planes, previous = [], []
    for p in paths:
        plane = fits.getdata(p)[0, 0].astype(np.float64)
        box = plane[150:450, 150:450]
        previous.append(sigma_clipped_stats(box[np.isfinite(box)], sigma=3.0, maxiters=10, stdfunc="mad_std")[2])
        planes.append(plane)
    weights = [w for _, w in res.used]
    np.testing.assert_allclose(np.array(weights) ** -0.5, previous, rtol=0.01)
    w_prev = 1.0 / np.array(previous)[:, None, None] ** 2
    cube = np.array(planes)
    with np.errstate(invalid="ignore"):
        stack_prev = np.nansum(cube * w_prev, axis=0) / np.sum(np.isfinite(cube) * w_prev, axis=0)
    stacked = fits.getdata(res.path)[0, 0]
    np.testing.assert_array_equal(np.isnan(stacked), np.isnan(stack_prev))
    diff = (stacked - stack_prev)[np.isfinite(stacked)]
    assert np.sqrt(np.mean(diff**2)) < 0.01 * res.expected_rms_jy
    assert np.max(np.abs(diff)) < 0.05 * res.expected_rms_jy
    noise = read_noise_csv(tmp_path / "wb" / "thermal_noise.csv")
    row = noise[str(res.path.resolve())]
    assert row.rms_jy == pytest.approx(res.expected_rms_jy, rel=0.1)
