"""lwa-peel sky-model conversion and geometry: fast unit tests, no DP3."""

from __future__ import annotations

import json
import logging
import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import ITRS, AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from lwa_common import LwaError
from lwa_common.catalogs import RfiSource, read_makesourcedb, read_ttcal_sources
from lwa_common.site import ovro_location
from lwa_peel import fit_log_spectrum, rfi_azel, rfi_directions, sky_directions, write_skymodel
from lwa_peel.model import patch_name

TIME = Time("2024-12-20T12:00:05")  # LST ~10h: Vir A high, Cas A low in the north, Cyg A set
FREQS = np.linspace(55.0e6, 59.0e6, 8)

MIXED = [
    {"name": "Point A", "ra": "10h00m00s", "dec": "+40d00m00s", "I": 500.0, "freq": 60e6,
     "index": [-0.7, -0.1, 0.02]},
    {"name": "Gauss B", "ra": "09h30m00s", "dec": "+30d00m00s", "I": 300.0, "Q": 3.0, "V": -2.0,
     "freq": 74e6, "index": [-0.8], "major-fwhm": 240.0, "minor-fwhm": 120.0, "position-angle": 35.0},
    {"name": "Double", "components": [
        {"name": "1", "ra": "11h00m00s", "dec": "+45d00m00s", "I": 100.0, "freq": 1e6, "index": [0.085, -0.178]},
        {"name": "2", "ra": "11h00m10s", "dec": "+45d01m00s", "I": 50.0, "freq": 1e6, "index": [0.085, -0.178],
         "major-fwhm": 100.0, "minor-fwhm": 60.0, "position-angle": -74.5},
    ]},
]


def _write(tmp_path, entries, name="sources.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def test_skymodel_round_trip_matches_ttcal_spectra(tmp_path):
    """Point, Gaussian and multi-component TTCal sources -> DP3 text -> the same fluxes and shapes."""
    sources = read_ttcal_sources(_write(tmp_path, MIXED))
    dirs, skipped = sky_directions(sources, time=TIME, location=ovro_location(), freqs_hz=FREQS)
    assert not skipped
    assert [d.patch for d in dirs] == ["PointA", "GaussB", "Double"]
    path = write_skymodel(tmp_path / "m.skymodel", dirs)
    back = read_makesourcedb(path, group_patches=True)
    assert [s.patch for s in back] == ["PointA", "GaussB", "Double"]
    for src, got in zip(sources, back, strict=True):
        want = np.asarray(src.flux_at(FREQS))
        assert np.allclose(got.flux_at(FREQS), want, rtol=1e-6), src.name
        # outside the band the fitted law still follows the TTCal one closely (smooth extrapolation)
        assert got.flux_at(40e6) == pytest.approx(src.flux_at(40e6), rel=2e-3)
    assert all(len(s.components) == 1 for s in back[:2])  # a patch reads back as a composite
    gauss = back[1].components[0]
    assert gauss.shape == "gaussian"
    assert (gauss.major_arcsec, gauss.minor_arcsec, gauss.pa_deg) == (240.0, 120.0, 35.0)
    assert gauss.ra_deg == pytest.approx(142.5, abs=1e-7) and gauss.dec_deg == pytest.approx(30.0, abs=1e-7)
    # Q and V at the band centre (DP3 keeps them flat over the band)
    assert gauss.q_jy == pytest.approx(sources[1].flux_at(FREQS.mean(), stokes="Q"), rel=1e-6)
    assert gauss.v_jy == pytest.approx(sources[1].flux_at(FREQS.mean(), stokes="V"), rel=1e-6)
    assert gauss.ref_freq_hz == pytest.approx(FREQS.mean())
    double = back[2]
    assert len(double.components) == 2
    assert [c.shape for c in double.components] == ["point", "gaussian"]
    assert double.components[1].pa_deg == pytest.approx(-74.5)
    text = path.read_text()
    assert "OrientationIsAbsolute" in text and "LogarithmicSI='true'" in text


def test_real_ateam_model_and_horizon_cut(shared_data, caplog):
    """The OVRO-LWA A-team file: Cyg A has set at this time and is skipped with an INFO line."""
    sources = read_ttcal_sources(shared_data / "sky" / "ateam_sources.json")
    with caplog.at_level(logging.INFO, logger="lwa_peel"):
        dirs, skipped = sky_directions(sources, time=TIME, location=ovro_location(), freqs_hz=FREQS)
    assert [d.name for d in dirs] == ["Cas A", "Vir A"]
    assert [s.name for s in skipped] == ["Cyg A"]
    assert skipped[0].el_deg < 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "skipping" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("skipping Cyg A: elevation")
    cas = dirs[0]
    assert len(cas.components) == 3 and all(c.is_gaussian for c in cas.components)
    assert cas.flux_at(FREQS.mean()) == pytest.approx(sources[1].flux_at(FREQS.mean()), rel=1e-6)
    # an elevation cut above Cas A's (~7.6 deg) drops it too
    dirs10, skipped10 = sky_directions(sources, time=TIME, location=ovro_location(), freqs_hz=FREQS,
                                       min_elevation_deg=10.0)
    assert [d.name for d in dirs10] == ["Vir A"]
    assert {s.name for s in skipped10} == {"Cyg A", "Cas A"}


def test_beam_weights_the_model(shared_data):
    """With a beam the model flux is the intrinsic flux times the Stokes I response at az/el."""
    from lwa_common.beam import load_beam

    beam = load_beam()
    sources = read_ttcal_sources(shared_data / "sky" / "ateam_sources.json")
    dirs, _ = sky_directions(sources, time=TIME, location=ovro_location(), freqs_hz=FREQS, beam=beam)
    vir = dirs[1]
    response = beam.stokes_i(FREQS, vir.az_deg, vir.el_deg)
    assert 0.2 < response.mean() < 0.95
    model = np.array([vir.flux_at(f) for f in FREQS])
    # the beam is linear in frequency between grid planes: a cubic follows it to ~1e-5
    assert np.allclose(model, np.asarray(sources[2].flux_at(FREQS)) * response, rtol=1e-4)


def test_ephemeris_source_is_placed_at_the_time(tmp_path):
    path = _write(tmp_path, [{"name": "Sun", "I": 1e4, "freq": 60e6, "index": [1.5]}])
    (sun,) = read_ttcal_sources(path)
    day = Time("2024-12-20T20:00:00")  # local noon-ish at OVRO
    dirs, skipped = sky_directions([sun], time=day, location=ovro_location(), freqs_hz=FREQS)
    assert not skipped
    loc = ovro_location()
    want = get_body("sun", day, loc).transform_to(AltAz(obstime=day, location=loc))
    assert dirs[0].el_deg == pytest.approx(want.alt.deg, abs=0.01)
    assert dirs[0].az_deg == pytest.approx(want.az.deg, abs=0.02)
    night = Time("2024-12-20T10:00:00")
    dirs, skipped = sky_directions([sun], time=night, location=loc, freqs_hz=FREQS)
    assert not dirs and skipped[0].name == "Sun"


def test_fit_log_spectrum():
    f = np.linspace(40e6, 80e6, 9)
    s = 100.0 * (f / 60e6) ** -0.8
    s0, terms = fit_log_spectrum(f, s, 60e6)
    assert s0 == pytest.approx(100.0, rel=1e-10)
    assert terms[0] == pytest.approx(-0.8, abs=1e-8) and all(abs(t) < 1e-6 for t in terms[1:])
    curved = 10 ** (2.0 - 0.7 * np.log10(f / 60e6) + 0.3 * np.log10(f / 60e6) ** 2)
    s0, terms = fit_log_spectrum(f, curved, 60e6)
    assert s0 == pytest.approx(100.0, rel=1e-9) and terms[1] == pytest.approx(0.3, rel=1e-6)
    assert fit_log_spectrum(f[:1], s[:1], 60e6) == (pytest.approx(s[0]), ())
    with pytest.raises(LwaError, match="non-positive"):
        fit_log_spectrum(f, s * 0, 60e6)


def test_rfi_azel_geometry():
    centre = ovro_location()
    lat, lon, h = centre.lat.deg, centre.lon.deg, centre.height.to_value(u.m)

    def rfi(lat_deg, lon_deg, el_m):
        return RfiSource("t", lat_deg, lon_deg, el_m, (50e6, 60e6), (1.0, 1.0))

    az, el, d = rfi_azel(rfi(lat, lon, h + 5000.0), centre)
    assert el == pytest.approx(90.0, abs=1e-6) and d == pytest.approx(5000.0, rel=1e-9)
    north = lat + 10_000.0 / 111_000.0
    az, el, d = rfi_azel(rfi(north, lon, h), centre)
    assert az == pytest.approx(0.0, abs=0.01) or az == pytest.approx(360.0, abs=0.01)
    assert el == pytest.approx(-math.degrees(d / 2 / 6.371e6), abs=0.005)  # Earth curvature
    az, el, _ = rfi_azel(rfi(lat, lon + 0.1, h), centre)
    assert az == pytest.approx(90.0, abs=0.05)


def test_rfi_direction_matches_astropy_topocentric(shared_data):
    """The real OVRO-LWA RFI emitter: our ENU az/el equals astropy's topocentric ITRS -> AltAz."""
    (src,) = read_ttcal_sources(shared_data / "sky" / "rfi_sources.json")
    centre = ovro_location()
    az, el, dist = rfi_azel(src, centre)
    assert 300 < az < 330 and 0 < el < 2 and 40e3 < dist < 50e3
    there, here = src.location.get_itrs(TIME), centre.get_itrs(TIME)
    vec = there.cartesian - here.cartesian
    topo = ITRS(vec, obstime=TIME, location=centre).transform_to(AltAz(obstime=TIME, location=centre))
    assert az == pytest.approx(topo.az.deg, abs=1e-3) and el == pytest.approx(topo.alt.deg, abs=1e-3)
    # out of band at 55 MHz (the table stops at 41 MHz): skipped; in band at 30 MHz: kept
    dirs, skipped = rfi_directions([src], time=TIME, location=centre, freqs_hz=FREQS)
    assert not dirs and "no flux" in skipped[0].reason
    low = np.linspace(28e6, 31e6, 8)
    dirs, _ = rfi_directions([src], time=TIME, location=centre, freqs_hz=low)
    d = dirs[0]
    assert d.az_deg == pytest.approx(az) and d.el_deg == pytest.approx(el)
    back = SkyCoord(d.ra_deg * u.deg, d.dec_deg * u.deg).transform_to(AltAz(obstime=TIME, location=centre))
    assert back.alt.deg == pytest.approx(el, abs=1e-4) and back.az.deg == pytest.approx(az, abs=1e-4)
    # the measured table is ragged; the smooth model follows its level (per-channel gains do the rest)
    model = np.array([d.flux_at(f) for f in low])
    assert model.mean() == pytest.approx(np.mean(src.flux_at(low)), rel=0.05)
    assert d.components[0].v_jy == pytest.approx(src.flux_at(low.mean(), stokes="V"), rel=1e-9)


def test_patch_names_are_dp3_safe_and_unique():
    taken: set[str] = set()
    assert patch_name("Cyg A", taken) == "CygA"
    assert patch_name("Cyg A", taken) == "CygA_2"
    assert patch_name("3C 196", taken) == "s3C196"
    assert patch_name("[weird], name", taken) == "weirdname"
    assert patch_name("", taken) == "src"


def test_location_is_the_array_centre_not_the_config_site(tmp_path):
    """Elevations are computed from the location given (the MS array centre), not a fixed site."""
    path = _write(tmp_path, [{"name": "X", "ra": "19h59m30s", "dec": "+40d44m00s", "I": 1.0, "freq": 6e7,
                              "index": []}])
    sources = read_ttcal_sources(path)
    south = EarthLocation.from_geodetic(-118.28 * u.deg, -60.0 * u.deg, 0 * u.m)
    _, s_ovro = sky_directions(sources, time=TIME, location=ovro_location(), freqs_hz=FREQS)
    d_south, _ = sky_directions(sources, time=TIME, location=south, freqs_hz=FREQS, min_elevation_deg=-90)
    assert s_ovro[0].el_deg == pytest.approx(-6.9, abs=0.3)
    assert d_south[0].el_deg < -20


def test_field_direction_keeps_bright_field_sources_apart_from_the_peeled(tmp_path):
    """The fixed field patch: above the horizon, >= the flux limit (apparent), not a peeled source."""
    from lwa_common.beam import load_beam
    from lwa_common.catalogs import CatalogSource
    from lwa_peel.model import field_direction

    loc = ovro_location()
    zenith = AltAz(obstime=TIME, location=loc)

    def at(name, alt, az, flux):
        c = SkyCoord(alt=alt * u.deg, az=az * u.deg, frame=zenith).icrs
        return CatalogSource(name=name, ra_deg=float(c.ra.deg), dec_deg=float(c.dec.deg), flux_jy=flux,
                             ref_freq_hz=73.8e6, spectral_index=(-0.8,))

    peeled, _ = sky_directions([at("Bright", 60, 90, 10000.0)], time=TIME, location=loc, freqs_hz=FREQS)
    catalogue = [at("Bright", 60.2, 90, 10000.0),  # the peeled source's own catalogue entry: left out
                 at("near", 55, 80, 30.0), at("faint", 70, 200, 3.0), at("low", 12, 300, 200.0),
                 at("set", -5, 10, 500.0)]
    beam = load_beam(None)
    d = field_direction(catalogue, time=TIME, location=loc, freqs_hz=FREQS, peeled=peeled, min_flux_jy=5.0,
                        exclude_deg=1.0, beam=beam)
    assert d.patch == "field" and d.kind == "field"
    assert [c.name for c in d.components] == ["field_0", "field_1"]
    got = sorted(round(c.ra_deg, 6) for c in d.components)
    assert got == sorted(round(s.ra_deg, 6) for s in catalogue[1:4:2])  # 'near' and 'low'
    low = next(c for c in d.components if abs(c.ra_deg - catalogue[3].ra_deg) < 1e-9)
    # apparent: intrinsic (~245 Jy) times the Stokes I beam at 12 deg elevation (~0.09), at the band centre
    ref = float(np.mean(FREQS))
    want = catalogue[3].flux_at(ref) * float(beam.stokes_i(ref, 300, 12))
    assert low.flux_at(ref) == pytest.approx(want, rel=1e-3) and low.flux_at(ref) < 0.5 * catalogue[3].flux_at(ref)
    assert field_direction(catalogue[2:3], time=TIME, location=loc, freqs_hz=FREQS, peeled=peeled,
                           min_flux_jy=5.0, exclude_deg=1.0) is None  # only a faint source


def test_clean_components_keep_their_ordinary_polynomial_spectrum(tmp_path):
    """A residual's clean components (negative fluxes, wsclean's LogarithmicSI=false) reach DP3 as
    they are: the sky model reads back with the same law and fluxes."""
    from lwa_peel.model import Component, Direction

    comps = (Component("CygA", 299.868, 40.734, 100.0, 55e6, (-0.7,)),
             Component("CygA_r1_0", 299.87, 40.74, -2.5, 55e6, (3.0, -40.0), log_si=False))
    assert comps[1].flux_at(60e6) == pytest.approx(-2.5 + 3.0 * (60 / 55 - 1) - 40.0 * (60 / 55 - 1) ** 2)
    assert comps[0].flux_at(60e6) == pytest.approx(100.0 * (60 / 55) ** -0.7)
    path = write_skymodel(tmp_path / "m.skymodel", [Direction("Cyg A", "CygA", 299.868, 40.734, 0, 60, comps)])
    back = {s.name: s for s in read_makesourcedb(path)}
    assert back["CygA_r1_0"].spectral_law == "linear" and back["CygA"].spectral_law == "log"
    for c in comps:
        assert back[c.name].flux_at(60e6) == pytest.approx(c.flux_at(60e6), rel=1e-8)


def test_refined_components_are_stored_intrinsic_and_come_back_apparent():
    """A clean component (apparent at one time, ordinary-polynomial spectrum, negative flux) written
    by refine-model divided by the beam there, read back and multiplied by the same beam at the same
    time, is the component again; at another az/el it scales with the beam."""
    from lwa_common.beam import load_beam
    from lwa_common.catalogs.ttcal import _ttcal_entry
    from lwa_peel.hourmodel import _entry, _with_components, spread
    from lwa_peel.model import Component, sky_directions

    beam = load_beam(None)
    freqs = np.linspace(53e6, 57e6, 8)
    time, location = Time("2024-12-20T01:00:00"), EarthLocation(lat=37.24 * u.deg, lon=-118.28 * u.deg)
    shipped = {"name": "Cyg A", "ra": "19h59m28.36s", "dec": "+40d44m02.1s", "I": 16000.0, "freq": 1e6,
               "index": [0.085, -0.178]}
    base = sky_directions([_ttcal_entry(shipped, "test", "ttcal")], time=time, location=location, freqs_hz=freqs,
                          beam=beam)[0][0]
    clean = Component("CygA_r1_0", 299.87, 40.75, -3.0, 55e6, (1.5, -0.4), log_si=False)
    gain = np.asarray(beam.stokes_i(freqs, base.az_deg, base.el_deg), dtype=float)
    entry = _with_components(shipped, [_entry(clean, freqs, gain)], {"rounds": 1})
    for when in (time, time + 40 * u.min):
        (d,), _ = sky_directions([_ttcal_entry(entry, "test", "ttcal")], time=when, location=location,
                                 freqs_hz=freqs, beam=beam)
        got = d.components[-1]
        assert not got.log_si
        g_now = np.asarray(beam.stokes_i(freqs, d.az_deg, d.el_deg), dtype=float)
        np.testing.assert_allclose(got.flux_at(freqs), clean.flux_at(freqs) / gain * g_now, rtol=1e-4)  # the fit's
    assert np.all(np.abs(g_now / gain - 1) > 0.01)  # the beam changed by far more than that in 40 min
    assert spread(list(range(36)), 1) == [18] and spread(list(range(36)), 3) == [6, 18, 30]
    assert spread([1, 2], 5) == [1, 2]
