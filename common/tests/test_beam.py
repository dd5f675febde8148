"""Tests for lwa_common.beam: beam files, Stokes I response, image-plane beams."""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import h5py
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.io import fits
from astropy.time import Time

from lwa_common import beam as beam_mod
from lwa_common.beam import (
    FIT_FREQ_RANGE_HZ,
    BeamModel,
    analytic_stokes_i,
    apparent_flux,
    beam_for_image,
    default_beam_path,
    find_dipole_fit,
    load_beam,
    radec_to_azel,
    write_analytic_beam_h5,
)
from lwa_common.errors import LwaError
from lwa_common.site import ovro_location, zenith_radec
from lwa_common.testing import allsky_header

TIME = Time("2024-12-20T08:00:00", scale="utc")
FREQS_HZ = (13e6, 20e6, 41e6, 55e6, 70e6, 82e6, 88e6)


@pytest.fixture(scope="session")
def fit_path(shared_data: Path) -> Path:
    return shared_data / "beam" / "lwa1-dipole-emp.npz"


@pytest.fixture(scope="session")
def beam() -> BeamModel:
    return load_beam()


@pytest.fixture(scope="session")
def fine_beam_file(tmp_path_factory: pytest.TempPathFactory, fit_path: Path) -> Path:
    return write_analytic_beam_h5(tmp_path_factory.mktemp("beam") / "fine.h5", fit_path=fit_path)


# ---------------------------------------------------------------------------------------------
# the shipped default and the analytic model


def test_default_beam_is_shipped_and_small() -> None:
    path = default_beam_path()
    assert path.is_file()
    assert path.name == "dipole_beam.h5"
    assert path.stat().st_size < 3_000_000
    with h5py.File(path, "r") as hf:
        assert hf["X_pol_Efields/etheta"].dtype == np.complex64
        assert hf["theta_pts"].attrs["units"] == "deg"
        assert hf["X_pol_Efields/etheta"].shape == (
            hf["freq_Hz"].size,
            hf["theta_pts"].size,
            hf["phi_pts"].size,
        )


@pytest.mark.parametrize("freq_hz", FREQS_HZ)
def test_zenith_is_one(beam: BeamModel, freq_hz: float) -> None:
    az = np.arange(0.0, 360.0, 30.0)
    np.testing.assert_allclose(beam.stokes_i(freq_hz, az, 90.0), 1.0, atol=1e-6)


def test_analytic_model_is_physically_sane(fit_path: Path) -> None:
    freq = np.arange(13e6, 90.01e6, 1e6)[:, None, None]
    az = np.arange(0.0, 360.0, 15.0)[None, :, None]
    el = np.arange(0.0, 90.01, 0.5)[None, None, :]
    value = analytic_stokes_i(freq, az, el, fit_path=fit_path)
    assert value.shape == (freq.size, az.size, el.size)
    assert np.all(np.isfinite(value))
    assert np.all(value >= 0.0)
    assert np.all(value <= 1.005)  # E-plane bump near zenith stays below 0.3 %
    np.testing.assert_allclose(value[..., -1], 1.0, atol=1e-9)
    np.testing.assert_allclose(value[..., 0], 0.0, atol=1e-6)


def test_fit_frequency_is_clamped(fit_path: Path) -> None:
    az, el = np.array([0.0, 45.0, 90.0]), np.array([20.0, 40.0, 60.0])
    lo, hi = FIT_FREQ_RANGE_HZ
    np.testing.assert_array_equal(
        analytic_stokes_i(95e6, az, el, fit_path=fit_path), analytic_stokes_i(hi, az, el, fit_path=fit_path)
    )
    np.testing.assert_array_equal(
        analytic_stokes_i(5e6, az, el, fit_path=fit_path), analytic_stokes_i(lo, az, el, fit_path=fit_path)
    )


@pytest.mark.parametrize("freq_hz", FREQS_HZ)
@pytest.mark.parametrize("az_deg", [0.0, 90.0, 180.0, 270.0])
def test_falls_with_zenith_angle_along_principal_planes(
    beam: BeamModel, freq_hz: float, az_deg: float
) -> None:
    el = np.arange(90.0, -0.01, -1.0)
    value = beam.stokes_i(freq_hz, az_deg, el)
    assert np.all(np.diff(value) <= 0.005)  # monotonic up to the small E-plane bump near zenith
    assert value[0] == pytest.approx(1.0, abs=1e-6)
    assert value[-1] == pytest.approx(0.0, abs=1e-3)
    assert value[60] < 0.6 * value[0]  # el = 30 deg


@pytest.mark.parametrize("freq_hz", FREQS_HZ)
def test_response_at_low_elevation(beam: BeamModel, freq_hz: float) -> None:
    az = np.arange(0.0, 360.0, 10.0)
    at10 = beam.stokes_i(freq_hz, az, 10.0)
    at30 = beam.stokes_i(freq_hz, az, 30.0)
    assert np.all((at10 > 0.0) & (at10 < 0.5))
    assert np.all(at30 > at10)
    assert np.all(at30 < 0.6)


def test_below_horizon_zero_and_nan_propagates(beam: BeamModel) -> None:
    value = beam.stokes_i(50e6, [0.0, 100.0, 200.0, np.nan], [-1.0, -45.0, -90.0, 45.0])
    np.testing.assert_array_equal(value[:3], 0.0)
    assert np.isnan(value[3])


def test_broadcasting_and_per_point_frequencies(beam: BeamModel) -> None:
    freq = np.array([30e6, 50e6, 70e6])[:, None]
    el = np.array([20.0, 45.0, 80.0])[None, :]
    grid = beam.stokes_i(freq, 33.0, el)
    assert grid.shape == (3, 3)
    for i, f in enumerate(freq[:, 0]):
        np.testing.assert_allclose(grid[i], beam.stokes_i(float(f), 33.0, el[0]), rtol=1e-6)


def test_stokes_i_symmetric_under_half_turn(beam: BeamModel) -> None:
    rng = np.random.default_rng(7)
    freq, az, el = rng.uniform(15e6, 85e6, 500), rng.uniform(0, 360, 500), rng.uniform(5, 90, 500)
    np.testing.assert_allclose(beam.stokes_i(freq, az, el), beam.stokes_i(freq, az + 180.0, el), rtol=1e-5)
    # X and Y are each other's quarter turn, so Stokes I is nearly invariant under it too
    np.testing.assert_allclose(beam.stokes_i(freq, az, el), beam.stokes_i(freq, az + 90.0, el), rtol=0.1)


def test_shipped_beam_matches_analytic(beam: BeamModel, fit_path: Path) -> None:
    rng = np.random.default_rng(3)
    freq, az, el = rng.uniform(12e6, 88e6, 3000), rng.uniform(0, 360, 3000), rng.uniform(10, 90, 3000)
    np.testing.assert_allclose(
        beam.stokes_i(freq, az, el), analytic_stokes_i(freq, az, el, fit_path=fit_path), rtol=0.01
    )


# ---------------------------------------------------------------------------------------------
# beam files


def test_h5_round_trip(fine_beam_file: Path, fit_path: Path) -> None:
    model = BeamModel.from_h5(fine_beam_file)
    assert model.freqs_hz[0] == 10e6 and model.freqs_hz[-1] == pytest.approx(90e6)
    assert model.phi_deg[-1] < 360.0  # the repeated 360 column folds onto 0
    rng = np.random.default_rng(11)
    n = 4000
    freq = rng.uniform(11e6, 89e6, n) + 0.37e6  # off the 2 MHz grid
    az = rng.uniform(0, 360, n) + 0.31  # off the 2 deg grid
    el = np.clip(rng.uniform(10, 89, n) + 0.43, 10, 89.9)  # off the 1 deg grid
    got = model.stokes_i(freq, az, el)
    want = analytic_stokes_i(freq, az, el, fit_path=fit_path)
    np.testing.assert_allclose(got, want, rtol=0.01)
    # on grid nodes the interpolation is exact up to float32 storage
    on = model.stokes_i(40e6, np.array([0.0, 46.0, 90.0]), np.array([30.0, 45.0, 60.0]))
    np.testing.assert_allclose(
        on, analytic_stokes_i(40e6, [0.0, 46.0, 90.0], [30.0, 45.0, 60.0], fit_path=fit_path), rtol=1e-5
    )


def test_radian_axes_are_detected(tmp_path: Path, fine_beam_file: Path) -> None:
    path = tmp_path / "radians.h5"
    with h5py.File(fine_beam_file, "r") as src, h5py.File(path, "w") as dst:
        dst["freq_Hz"] = src["freq_Hz"][()]
        dst["theta_pts"] = np.radians(src["theta_pts"][()])  # no units attribute: detect by range
        dst["phi_pts"] = np.radians(src["phi_pts"][()])
        for name in (
            "X_pol_Efields/etheta",
            "X_pol_Efields/ephi",
            "Y_pol_Efields/etheta",
            "Y_pol_Efields/ephi",
        ):
            dst[name] = src[name][()]
    deg, rad = BeamModel.from_h5(fine_beam_file), BeamModel.from_h5(path)
    np.testing.assert_allclose(rad.theta_deg, deg.theta_deg)
    az, el = np.array([12.0, 200.0, 333.0]), np.array([15.0, 50.0, 75.0])
    np.testing.assert_allclose(rad.stokes_i(47e6, az, el), deg.stokes_i(47e6, az, el), rtol=1e-6)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LwaError, match="not found"):
        BeamModel.from_h5(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "beam.h5"
    path.write_text("this is not HDF5\n")
    with pytest.raises(LwaError, match="not a readable HDF5") as err:
        BeamModel.from_h5(path)
    assert "\n" not in str(err.value)


def test_missing_datasets(tmp_path: Path) -> None:
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as hf:
        hf["freq_Hz"] = [50e6]
        hf["theta_pts"] = [0.0, 90.0]
        hf["phi_pts"] = [0.0, 180.0]
        hf["X_pol_Efields/etheta"] = np.ones((1, 2, 2), dtype=np.complex64)
    with pytest.raises(LwaError, match="lacks dataset.*Y_pol_Efields/ephi"):
        BeamModel.from_h5(path)


def test_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "shape.h5"
    with h5py.File(path, "w") as hf:
        hf["freq_Hz"] = [50e6]
        hf["theta_pts"] = [0.0, 90.0]
        hf["phi_pts"] = [0.0, 180.0]
        for name in ("X_pol_Efields/etheta", "X_pol_Efields/ephi", "Y_pol_Efields/etheta"):
            hf[name] = np.ones((1, 2, 2), dtype=np.complex64)
        hf["Y_pol_Efields/ephi"] = np.ones((1, 2, 3), dtype=np.complex64)
    with pytest.raises(LwaError, match="shaped"):
        BeamModel.from_h5(path)


def test_write_rejects_bad_grid(tmp_path: Path, fit_path: Path) -> None:
    with pytest.raises(LwaError, match="dtheta_deg"):
        write_analytic_beam_h5(tmp_path / "b.h5", dtheta_deg=7.0, fit_path=fit_path)
    with pytest.raises(LwaError, match="increasing"):
        write_analytic_beam_h5(tmp_path / "b.h5", freqs_hz=[50e6, 40e6], fit_path=fit_path)
    assert not (tmp_path / "b.h5").exists()


def test_fit_not_found(tmp_path: Path) -> None:
    with pytest.raises(LwaError, match="LWA_DIPOLE_FIT"):
        find_dipole_fit(tmp_path / "missing.npz")


def test_default_beam_regenerated_into_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fit_path: Path
) -> None:
    shipped = BeamModel.from_h5(default_beam_path())
    monkeypatch.setattr(beam_mod, "_packaged_beam_path", lambda: tmp_path / "pkg" / "dipole_beam.h5")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LWA_DIPOLE_FIT", str(fit_path))
    path = default_beam_path()
    assert path == tmp_path / "cache" / "lwa-pipe" / "dipole_beam.h5"
    model = BeamModel.from_h5(path)
    np.testing.assert_allclose(model.stokes, shipped.stokes, rtol=1e-6, atol=1e-7)
    assert default_beam_path() == path  # second call reuses the cache


# ---------------------------------------------------------------------------------------------
# coordinates and image-plane beams


def test_radec_to_azel_matches_astropy() -> None:
    rng = np.random.default_rng(5)
    ra, dec = rng.uniform(0, 360, 300), np.degrees(np.arcsin(rng.uniform(-1, 1, 300)))
    az, el = radec_to_azel(ra, dec, time=TIME)
    ref = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).transform_to(AltAz(obstime=TIME, location=ovro_location()))
    sep = SkyCoord(az=az * u.deg, alt=el * u.deg, frame="altaz").separation(
        SkyCoord(az=ref.az, alt=ref.alt, frame="altaz")
    )
    assert sep.arcsec.max() < 45.0  # the direction-dependent part of aberration, <= 20.5 arcsec


def _zenith_header(size: int = 128, cdelt: float = 1.5, freq_hz: float = 60e6) -> fits.Header:
    zen = zenith_radec(TIME)
    return allsky_header(
        size=size,
        scale_deg=cdelt,
        ra_deg=zen.ra.deg,
        dec_deg=zen.dec.deg,
        freq_mhz=freq_hz / 1e6,
        date_obs=TIME.isot,
    )


def test_beam_for_image_on_zenith_all_sky(beam: BeamModel) -> None:
    size, cdelt = 128, 1.5
    header = _zenith_header(size, cdelt)
    pb = beam_for_image(header, freq_hz=60e6, time=TIME, beam=beam)
    assert pb.shape == (size, size) and pb.dtype == np.float32
    centre = pb[size // 2, size // 2]
    assert centre == pytest.approx(1.0, abs=0.005)
    for corner in (pb[0, 0], pb[0, -1], pb[-1, 0], pb[-1, -1]):
        assert np.isnan(corner)
    # SIN centred on the zenith: the distance from the centre in direction cosines is cos(el)
    y, x = np.mgrid[0:size, 0:size]
    radius = np.hypot(x - size / 2, y - size / 2) * np.radians(cdelt)
    assert np.all(np.isnan(pb[radius > np.cos(np.radians(9.8))]))
    assert np.all(np.isfinite(pb[radius < np.cos(np.radians(10.5))]))
    finite = pb[np.isfinite(pb)]
    assert finite.min() >= 0.05 and finite.max() <= 1.005
    # header defaults (FREQ axis, DATE-OBS) give the same answer
    np.testing.assert_allclose(beam_for_image(header, beam=beam), pb, equal_nan=True)


@pytest.mark.parametrize(("freq_hz", "offset_min", "ctype"), [
    (55e6, 0.0, "SIN"),  # wsclean's all-sky image: the direction cosines path
    (30e6, 50.0, "SIN"),  # the phase centre 50 min of RA from the zenith, another frequency
    (80e6, 20.0, "ZEA"),  # another projection: all_pix2world per pixel
])
def test_beam_for_image_interpolation_matches_exact(beam: BeamModel, freq_hz: float, offset_min: float,
                                                    ctype: str) -> None:
    """The beam interpolated from the coarse grid is within 1e-3 (relative) of the beam evaluated at
    every pixel, with the same NaN mask (horizon, elevation and response cuts)."""
    header = _zenith_header(1024, 0.125, freq_hz)  # 128 deg across, the science field
    header["CRVAL1"] += offset_min / 4.0
    for axis in ("1", "2"):
        header["CTYPE" + axis] = header["CTYPE" + axis].replace("SIN", ctype)
    beam_mod._PIXEL_BEAMS.clear()
    pb = beam_for_image(header, beam=beam)
    _, full = beam_mod._image_wcs(header)
    exact = beam_mod._PixelBeam(full.celestial, beam_mod._icrs_to_enu(TIME, None), beam, freq_hz)
    assert (exact.affine is not None) == (ctype == "SIN")
    ref = beam_mod._exact_beam(exact, pb.shape, beam_mod._Cuts(10.0, 0.05))
    if exact.affine is not None:  # the fast path is the WCS's own answer
        ra, dec = full.celestial.all_pix2world(np.array([100.0, 512.0, 700.0]), np.array([500.0, 512.0, 900.0]), 0)
        slow = beam.stokes_i(freq_hz, *radec_to_azel(ra, dec, time=TIME))
        np.testing.assert_allclose(ref[[500, 512, 900], [100, 512, 700]], slow, rtol=1e-6)
    np.testing.assert_array_equal(np.isnan(pb), np.isnan(ref))
    assert 0.3 < np.isfinite(pb).mean() < 0.95  # ZEA holds more of the sky than SIN
    assert np.nanmax(np.abs(pb / ref - 1.0)) < 1e-3


def test_beam_for_image_is_cached_per_grid_and_time(beam: BeamModel) -> None:
    header = _zenith_header(64, 3.0)
    first = beam_for_image(header, time=TIME, beam=beam)
    assert beam_for_image(header.copy(), time=TIME, beam=beam) is first  # the I and V image of one interval
    assert not first.flags.writeable
    later = beam_for_image(header, time=TIME + 600 * u.s, beam=beam)
    assert later is not first and not np.array_equal(later, first, equal_nan=True)


def test_beam_for_image_thresholds(beam: BeamModel) -> None:
    header = _zenith_header(64, 3.0)
    strict = beam_for_image(header, time=TIME, beam=beam, min_elevation_deg=30.0, min_response=0.5)
    assert np.nanmin(strict) >= 0.5
    assert np.isfinite(strict).sum() < np.isfinite(beam_for_image(header, time=TIME, beam=beam)).sum()


def test_beam_for_image_needs_frequency(beam: BeamModel) -> None:
    header = _zenith_header(32, 3.0)
    header["CTYPE3"], header["CUNIT3"] = "VOPT", "m/s"
    with pytest.raises(LwaError, match="freq"):
        beam_for_image(header, time=TIME, beam=beam)
    header["CUNIT3"] = "Hz"  # inconsistent with VOPT: the WCS itself is unusable
    with pytest.raises(LwaError, match="no usable WCS"):
        beam_for_image(header, freq_hz=50e6, time=TIME, beam=beam)


def test_beam_for_image_needs_time(beam: BeamModel) -> None:
    header = _zenith_header(32, 3.0)
    del header["DATE-OBS"]
    with pytest.raises(LwaError, match="time"):
        beam_for_image(header, beam=beam)


def test_beam_for_real_wsclean_header(beam: BeamModel, shared_data: Path) -> None:
    header = fits.getheader(shared_data / "ovro-lwa" / "wsclean_allsky_68MHz.fits")
    pb = beam_for_image(header, beam=beam)  # frequency and time from the header
    assert pb.shape == (header["NAXIS2"], header["NAXIS1"])
    assert pb[256, 256] == pytest.approx(1.0, abs=0.01)  # phase centre at the zenith
    assert np.isnan(pb[0, 0])
    assert 0.4 < np.isfinite(pb).mean() < 0.75


def test_apparent_flux(beam: BeamModel) -> None:
    flux = apparent_flux(
        [100.0, 100.0, 100.0], freq_hz=50e6, az_deg=0.0, el_deg=[90.0, 30.0, -5.0], beam=beam
    )
    assert flux[0] == pytest.approx(100.0, abs=1e-4)
    assert 0.0 < flux[1] < 60.0
    assert flux[2] == 0.0
