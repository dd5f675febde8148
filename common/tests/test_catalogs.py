"""Tests for lwa_common.catalogs: TTCal JSON, makesourcedb, VLSSr text, reference CSV."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from lwa_common.catalogs import (
    VLSSR_FREQ_HZ,
    CatalogSource,
    RfiSource,
    fluxes_at,
    linear_polynomial_flux,
    log_polynomial_flux,
    parse_dec_deg,
    parse_ra_deg,
    read_makesourcedb,
    read_reference_catalog,
    read_reference_csv,
    read_ttcal_sources,
    read_vlssr,
    source_coords,
)
from lwa_common.errors import LwaError
from lwa_common.testing import shared_data_dir

SKY = shared_data_dir() / "sky"
needs_sky = pytest.mark.skipif(not SKY.is_dir(), reason=f"shared reference data not found at {SKY}")


def hms(h: float, m: float, s: float) -> float:
    return 15.0 * (h + m / 60.0 + s / 3600.0)


def dms(d: float, m: float, s: float, sign: int = 1) -> float:
    return sign * (d + m / 60.0 + s / 3600.0)


# --------------------------------------------------------------------------- spectral laws


def test_log_polynomial_flux_matches_the_formula_and_broadcasts():
    coeffs = [-0.387, -0.420, 0.181]
    freqs = np.array([30e6, 60e6, 150e6])
    x = np.log10(freqs / 150e6)
    expected = 10 ** (np.log10(64.768) + coeffs[0] * x + coeffs[1] * x**2 + coeffs[2] * x**3)
    got = log_polynomial_flux(64.768, 150e6, coeffs, freqs)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert isinstance(log_polynomial_flux(10.0, 1e6, [], 5e6), float)
    assert log_polynomial_flux(10.0, 1e6, [], 5e6) == 10.0
    assert log_polynomial_flux(-2.0, 1e6, [-1.0], 10e6) == pytest.approx(-0.2)


def test_linear_polynomial_flux():
    assert linear_polynomial_flux(2.0, 50e6, [1.0, 0.5], 100e6) == pytest.approx(2.0 + 1.0 + 0.5)
    with pytest.raises(LwaError, match="positive"):
        linear_polynomial_flux(2.0, 50e6, [1.0], 0.0)


# --------------------------------------------------------------------------- angles


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("05h34m31.94s", hms(5, 34, 31.94)),
        ("05:34:31.94", hms(5, 34, 31.94)),
        ("05 34 31.94", hms(5, 34, 31.94)),
        ("83.633", 83.633),
        (83.633, 83.633),
        ("83.633deg", 83.633),
        ("-04:00:29.928", 360.0 - hms(4, 0, 29.928)),
        ("19h59m29.990s", hms(19, 59, 29.99)),
    ],
)
def test_parse_ra(text, expected):
    assert parse_ra_deg(text) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+22d00m52.2s", dms(22, 0, 52.2)),
        ("+22:00:52.2", dms(22, 0, 52.2)),
        ("22 00 52.2", dms(22, 0, 52.2)),
        ("-00:30:00", -0.5),
        ("-00d30m00s", -0.5),
        ("+48.13.00.061", dms(48, 13, 0.061)),
        ("33.09.35", dms(33, 9, 35)),
        ("-12.5", -12.5),
    ],
)
def test_parse_dec(text, expected):
    assert parse_dec_deg(text) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("text", ["", "abc", "25h00m00s", "05:61:00", "05:34:60"])
def test_parse_ra_rejects(text):
    with pytest.raises(LwaError):
        parse_ra_deg(text)


@pytest.mark.parametrize("text", ["+91:00:00", "95.0", "12x"])
def test_parse_dec_rejects(text):
    with pytest.raises(LwaError):
        parse_dec_deg(text)


# --------------------------------------------------------------------------- TTCal


@needs_sky
def test_ttcal_ateam_model():
    sources = read_ttcal_sources(SKY / "ateam_sources.json")
    assert [s.name for s in sources] == ["Cyg A", "Cas A", "Vir A"]
    assert all(isinstance(s, CatalogSource) for s in sources)
    cyg, cas, vir = sources

    assert cyg.shape == "multi" and len(cyg.components) == 2
    c1 = cyg.components[0]
    assert c1.name == "1" and c1.shape == "gaussian"
    assert c1.flux_at(1e6) == pytest.approx(43170.55527073293, rel=1e-12)
    assert c1.ra_deg == pytest.approx(hms(19, 59, 29.990), abs=1e-9)
    assert c1.dec_deg == pytest.approx(dms(40, 43, 57.53), abs=1e-9)
    assert c1.major_arcsec == pytest.approx(127.86780196141683)
    assert c1.minor_arcsec == pytest.approx(22.459884076169928)
    assert c1.pa_deg == pytest.approx(-74.50271323639498)
    assert c1.spectral_index == (0.085, -0.178)

    x = math.log10(60e6 / 1e6)
    cyg_60 = sum(
        10 ** (math.log10(s0) + 0.085 * x - 0.178 * x**2) for s0 in (43170.55527073293, 6374.4647292670625)
    )
    assert cyg.flux_at(60e6) == pytest.approx(cyg_60, rel=1e-12)
    assert cyg.flux_jy == pytest.approx(43170.55527073293 + 6374.4647292670625)

    cas_i = (205291.01635813876, 191558.43164385832, 159054.81199800296)
    cas_60 = sum(s0 * 60.0**-0.77 for s0 in cas_i)
    assert len(cas.components) == 3
    assert cas.flux_at(60e6) == pytest.approx(cas_60, rel=1e-12)
    np.testing.assert_allclose(cas.flux_at(np.array([1e6, 60e6])), [sum(cas_i), cas_60], rtol=1e-12)
    # composite position: between its components, near Cas A
    assert 350.8 < cas.ra_deg < 350.9 and 58.8 < cas.dec_deg < 58.9
    assert cas.flux_at(60e6, stokes="V") == 0.0

    assert vir.shape == "point" and not vir.components
    assert vir.flux_at(74e6) == pytest.approx(105438.69 * 74.0**-0.856, rel=1e-12)
    assert vir.coord.ra.deg == pytest.approx(hms(12, 30, 49.42338))


@needs_sky
def test_ttcal_rfi_model(caplog):
    with caplog.at_level(logging.WARNING, logger="lwa_common.catalogs"):
        (rfi,) = read_ttcal_sources(SKY / "rfi_sources.json")
    assert isinstance(rfi, RfiSource)
    raw = json.loads((SKY / "rfi_sources.json").read_text())[0]
    assert rfi.lat_deg == 37.53159 and rfi.lon_deg == -118.62673 and rfi.height_m == 2072.0
    assert rfi.sys == "WGS84"
    # the real file has one out-of-order frequency (225862 Hz amid 22.5 MHz): dropped, with a warning
    assert len(raw["rfi-frequencies"]) == 273 and len(rfi.freqs_hz) == 272
    assert 225862 not in rfi.freqs_hz
    assert np.all(np.diff(rfi.freqs_hz) > 0)
    assert "out-of-order" in caplog.text
    f0, f1, f2 = raw["rfi-frequencies"][:3]
    assert rfi.flux_at(f0) == pytest.approx(raw["rfi-I"][0])
    mid = 0.5 * (f1 + f2)
    assert rfi.flux_at(mid) == pytest.approx(0.5 * (raw["rfi-I"][1] + raw["rfi-I"][2]))
    assert rfi.flux_at(f2, stokes="V") == pytest.approx(raw["rfi-V"][2])
    assert rfi.flux_at(60e6) == 0.0  # outside the tabulated band
    assert rfi.location.lat.deg == pytest.approx(37.53159)


def test_ttcal_errors_name_file_and_source(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"name": "x",}]')
    with pytest.raises(LwaError, match=r"bad\.json:1: not valid JSON"):
        read_ttcal_sources(bad_json)

    missing = tmp_path / "missing.json"
    good = {"name": "A", "ra": "01h00m00s", "dec": "+10d00m00s", "I": 1.0, "freq": 1e6, "index": []}
    missing.write_text(json.dumps([good, {"name": "Tau A", "ra": "05h34m31.94s", "dec": "+22d00m52.2s"}]))
    with pytest.raises(LwaError, match=r"missing\.json: source 1 \('Tau A'\): missing key 'I'") as err:
        read_ttcal_sources(missing)
    assert "\n" not in str(err.value)

    nested = tmp_path / "nested.json"
    component = dict(good, name="2", ra="99h00m00s")
    nested.write_text(json.dumps([{"name": "Cyg A", "components": [dict(good, name="1"), component]}]))
    with pytest.raises(LwaError, match=r"source 0 \('Cyg A'\) component 1 \('2'\): .*RA"):
        read_ttcal_sources(nested)

    with pytest.raises(LwaError, match="not found"):
        read_ttcal_sources(tmp_path / "absent.json")


# --------------------------------------------------------------------------- makesourcedb


@needs_sky
def test_scaife_heald_calibrators():
    sources = read_makesourcedb(SKY / "scaife_heald_2012_calibrators.skymodel")
    by_name = {s.name: s for s in sources}
    c48 = by_name["3C48p"]
    assert c48.patch == "3C48" and c48.shape == "point"
    assert c48.ref_freq_hz == 150e6  # the format line's default
    assert c48.spectral_index == (-0.387, -0.420, 0.181)
    assert c48.flux_at(150e6) == pytest.approx(64.768, rel=1e-12)
    x = math.log10(60e6 / 150e6)
    expected = 10 ** (math.log10(64.768) - 0.387 * x - 0.420 * x**2 + 0.181 * x**3)
    assert c48.flux_at(60e6) == pytest.approx(expected, rel=1e-12)
    assert c48.ra_deg == pytest.approx(hms(1, 37, 41.3), abs=1e-9)
    assert c48.dec_deg == pytest.approx(dms(33, 9, 35), abs=1e-9)

    a1 = next(s for s in sources if s.name == "3C196A1" and s.patch == "3C196")
    assert a1.shape == "gaussian"
    assert (a1.major_arcsec, a1.minor_arcsec, a1.pa_deg) == (1.476, 1.091, 135.27)
    assert a1.dec_deg == pytest.approx(dms(48, 13, 0.061), abs=1e-9)
    assert a1.spectral_index == (-0.592, -0.042)
    point = next(s for s in sources if s.name == "3C380_w0_i0_s0_g10")
    assert point.shape == "point" and point.major_arcsec == 0.0


@needs_sky
def test_scaife_heald_grouped_by_patch():
    patches = read_makesourcedb(SKY / "scaife_heald_2012_calibrators.skymodel", group_patches=True)
    by_name = {s.name: s for s in patches}
    assert list(by_name) == ["3C48", "3C147", "3C196old", "3C196", "3C286", "3C287", "3C295", "3C380"]
    c295 = by_name["3C295"]
    assert len(c295.components) == 2
    assert c295.flux_at(150e6) == pytest.approx(2 * 48.8815, rel=1e-12)
    # the composite sits at the patch position of the file
    assert c295.ra_deg == pytest.approx(hms(14, 11, 20.31)) and c295.dec_deg == pytest.approx(
        dms(52, 12, 10.0)
    )
    c196 = by_name["3C196"]
    assert c196.flux_at(60e6) == pytest.approx(sum(float(c.flux_at(60e6)) for c in c196.components))
    assert len(by_name["3C380"].components) == 34


@needs_sky
def test_vlssr_fragment_makesourcedb():
    sources = read_makesourcedb(SKY / "vlssr_fragment.sky")
    assert [s.name for s in sources] == ["source_0", "source_1", "source_2"]
    s0 = sources[0]
    assert s0.ra_deg == pytest.approx(hms(13, 17, 31.03), abs=1e-9)
    assert s0.dec_deg == pytest.approx(dms(44, 48, 16.8), abs=1e-9)
    assert s0.flux_jy == pytest.approx(0.9985206431031418)
    assert s0.ref_freq_hz == 74e6 and s0.spectral_index == ()
    assert s0.flux_at(50e6) == s0.flux_jy  # no spectral index: flat
    assert s0.shape == "gaussian" and s0.pa_deg == pytest.approx(15.07, abs=1e-5)
    assert sources[2].shape == "point"
    assert read_reference_catalog(SKY / "vlssr_fragment.sky")[1].name == "source_1"


@needs_sky
def test_wsclean_linear_spectrum_model():
    """de Gasperin A-team models: wsclean format, LogarithmicSI=false, negative RA hours."""
    sources = read_makesourcedb(SKY / "CygA.txt")
    first = sources[0]
    assert first.name == "s0c0" and first.spectral_law == "linear"
    assert first.ra_deg == pytest.approx(360.0 - hms(4, 0, 29.928), abs=1e-9)
    assert first.dec_deg == pytest.approx(dms(40, 43, 29.096), abs=1e-9)
    c = (5.61609530772306, -2.92880031078715, -6.13474623944719, -97.5123136459608)
    s0, ref = -0.417545026781891, 57322692.8710938
    r = 70e6 / ref - 1
    assert first.flux_at(70e6) == pytest.approx(
        s0 + sum(ci * r ** (n + 1) for n, ci in enumerate(c)), rel=1e-12
    )
    assert len(sources) == sum(
        1 for line in (SKY / "CygA.txt").read_text().splitlines() if line.startswith("s")
    )


def test_makesourcedb_errors_name_the_line(tmp_path):
    model = tmp_path / "model.sky"
    model.write_text(
        "FORMAT = Name, Type, Ra, Dec, I, SpectralIndex, ReferenceFrequency='74e6'\n"
        "# comment\n"
        "a, POINT, 01:00:00, +10.00.00, 1.0, [-0.7], \n"
        "b, POINT, 01:00:00, +10.00.00, one, [-0.7], \n"
    )
    with pytest.raises(LwaError, match=r"model\.sky:4: .*'one' is not a number"):
        read_makesourcedb(model)
    model.write_text("a, POINT, 01:00:00, +10.00.00, 1.0\n")
    with pytest.raises(LwaError, match=r"model\.sky:1: data before the format line"):
        read_makesourcedb(model)
    model.write_text(
        "FORMAT = Name, Type, Ra, Dec, I, SpectralIndex\na, POINT, 01:00:00, +10.00.00, 1.0, [-0.7]\n"
    )
    with pytest.raises(LwaError, match=r"model\.sky:2: .*reference frequency"):
        read_makesourcedb(model)


# --------------------------------------------------------------------------- VLSSr text


def _vlssr_line(ra, dec, dist, flux, major, minor, pa, field, x=512.3, y=1001.9, flux_format="7.2f"):
    (hh, mm, ss), (sign, dd, dm, ds) = ra, dec
    return (
        f"{hh:02d} {mm:02d} {ss:05.2f} {sign}{dd:02d} {dm:02d} {ds:04.1f}{dist:6.2f}{flux:{flux_format}}"
        f"{major:>6s}{minor:>6s}{pa:6.0f} {field}  {x:7.1f}{y:7.1f}"
    )


def _error_line(ra_err, dec_err, flux_err):
    return f"{'':6s}{ra_err:5.2f}{'':8s}{dec_err:4.1f}{'':7s}{flux_err:6.2f}{'':6s}{'4.1':>6s}"


def _write_vlssr(path: Path) -> None:
    header = [
        "NVSS                                                                            Page    1",
        "                 VLSSr catalogue, Lane et al. 2014 (synthetic test excerpt)",
        "",
        '  RA(2000)  Dec(2000) Dist(")  Flux  Major Minor  PA  Field    X_pix  Y_pix',
        ' h  m    s    d  m   s   Ori     Jy    "     "    deg',
        "",
    ]
    lines = header + [
        _vlssr_line((0, 0, 0.37), ("+", 25, 5, 19.9), 0.05, 0.71, "<78.1", "<76.3", 0, "C0000P24"),
        _error_line(0.20, 2.9, 0.12),
        _vlssr_line((5, 34, 31.94), ("+", 22, 0, 52.2), 3.10, 850.25, "250.0", "160.5", 125, "C0536P24"),
        _error_line(0.01, 0.1, 9.81),
        "",
        header[0].replace("1", "2"),
        header[3],
        header[4],
        _vlssr_line((12, 30, 49.42), ("-", 0, 30, 0.0), 1.25, 12.50, "80.0", "75.0", 45, "C1230M00"),
        _error_line(0.05, 0.8, 1.30),
        _vlssr_line((23, 59, 59.99), ("+", 89, 59, 59.9), 0.50, 2.00, "<80", "<75", 0, "C0000P90"),
        # a wide flux runs into the distance column: read by the fixed character columns
        _vlssr_line(
            (19, 59, 28.36),
            ("+", 40, 44, 2.1),
            4.25,
            17120.5,
            "90.1",
            "80.2",
            101,
            "C2000P40",
            flux_format="7.1f",
        ),
        _error_line(0.01, 0.1, 856.0),
    ]
    path.write_text("\n".join(lines) + "\n")


def test_vlssr_text(tmp_path):
    path = tmp_path / "FullVLSSCatalog.text"
    _write_vlssr(path)
    sources = read_vlssr(path)
    assert len(sources) == 5
    first, crab, south, last, cyg = sources
    assert first.ra_deg == pytest.approx(hms(0, 0, 0.37), abs=1e-9)
    assert first.dec_deg == pytest.approx(dms(25, 5, 19.9), abs=1e-9)
    assert first.flux_jy == 0.71 and first.flux_err_jy == 0.12
    assert (first.major_arcsec, first.minor_arcsec) == (78.1, 76.3)  # '<' upper limits keep the value
    assert first.ref_freq_hz == VLSSR_FREQ_HZ and first.catalog == "vlssr"
    assert first.name == "VLSSr J000000+250519"
    assert crab.flux_jy == 850.25 and crab.flux_err_jy == 9.81 and crab.pa_deg == 125.0
    assert south.dec_deg == pytest.approx(-0.5, abs=1e-12)  # "-00 30 00": the sign of zero degrees
    assert south.name == "VLSSr J123049-003000" and south.flux_err_jy == 1.30
    assert last.flux_jy == 2.0 and math.isnan(last.flux_err_jy)  # no error line at the end
    assert first.flux_at(30e6) == 0.71  # no spectral index given: flat
    assert "4.2517120.5  90.1" in path.read_text()
    assert cyg.flux_jy == 17120.5 and cyg.flux_err_jy == 856.0
    assert (cyg.major_arcsec, cyg.minor_arcsec, cyg.pa_deg) == (90.1, 80.2, 101.0)

    with_alpha = read_vlssr(path, spectral_index=-0.8)
    assert with_alpha[1].flux_at(60e6) == pytest.approx(850.25 * (60 / 73.8) ** -0.8, rel=1e-12)
    np.testing.assert_allclose(fluxes_at(with_alpha, 73.8e6), [0.71, 850.25, 12.5, 2.0, 17120.5])
    coords = source_coords(sources)
    assert coords.shape == (5,)
    assert coords[2].dec.deg == pytest.approx(-0.5)

    dispatched = read_reference_catalog(path)
    assert [s.name for s in dispatched] == [s.name for s in sources]


def test_vlssr_bad_data_line_names_the_line(tmp_path):
    path = tmp_path / "vlssr.text"
    _write_vlssr(path)
    lines = path.read_text().splitlines()
    lines.insert(8, "01 75 00.00 +10 00 00.0")  # minutes 75, no flux
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LwaError, match=r"vlssr\.text:9: "):
        read_vlssr(path)
    path.write_text("NVSS  Page 1\nno data here\n")
    with pytest.raises(LwaError, match="no VLSSr data lines"):
        read_vlssr(path)


# --------------------------------------------------------------------------- reference CSV and dispatch


def test_reference_csv_degrees_and_sexagesimal(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text(
        "# reference sources\n"
        "Name,RA,DEC,S,major\n"
        "crab,83.633083,22.014500,1850.0,\n"
        'crab_sex,05:34:31.94,+22:00:52.2,1850.0,"200"\n'
    )
    sources = read_reference_csv(path, ref_freq_hz=73.8e6, spectral_index=-0.8)
    assert [s.name for s in sources] == ["crab", "crab_sex"]
    assert sources[0].ra_deg == pytest.approx(sources[1].ra_deg, abs=1e-6)
    assert sources[0].dec_deg == pytest.approx(sources[1].dec_deg, abs=1e-6)
    assert sources[1].shape == "gaussian" and sources[1].major_arcsec == 200.0
    assert sources[0].flux_at(36.9e6) == pytest.approx(1850.0 * 0.5**-0.8)
    assert [s.name for s in read_reference_catalog(path)] == ["crab", "crab_sex"]

    path.write_text("ra_deg,dec_deg,flux_mjy\n10.0,20.0,1500\n")
    (only,) = read_reference_csv(path)
    assert only.flux_jy == 1.5 and only.name == "ref:2" and math.isnan(only.ref_freq_hz)


def test_reference_csv_errors(tmp_path):
    path = tmp_path / "ref.csv"
    path.write_text("ra,dec,name\n10,20,a\n")
    with pytest.raises(LwaError, match=r"ref\.csv:1: CSV header has no flux column"):
        read_reference_csv(path)
    path.write_text("ra,dec,flux\n10,20,1.0\n10,95,1.0\n")
    with pytest.raises(LwaError, match=r"ref\.csv:3: Dec"):
        read_reference_csv(path)


def test_reference_catalog_unknown_format(tmp_path):
    path = tmp_path / "what.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(LwaError, match="cannot tell the format"):
        read_reference_catalog(path)


@needs_sky
def test_reference_catalog_json_keeps_sky_sources():
    sources = read_reference_catalog(SKY / "ateam_sources.json")
    assert [s.name for s in sources] == ["Cyg A", "Cas A", "Vir A"]


# --------------------------------------------------------------------------- 3C / 4C, astropy tables


def test_b1950_precession_of_3c273():
    """3C 273: B1950 12h26m33.35s +02d19m43.3s -> J2000 12h29m06.70s +02d03m08.6s (its VLBI position)."""
    from lwa_common.catalogs import precess_b1950

    ra, dec = precess_b1950([hms(12, 26, 33.35)], [dms(2, 19, 43.3)])
    assert ra[0] == pytest.approx(hms(12, 29, 6.70), abs=1.5 / 3600)
    assert dec[0] == pytest.approx(dms(2, 3, 8.6), abs=1.5 / 3600)


@needs_sky
def test_lsl_3c_and_4c_catalogues():
    """The files shipped with LSL: read by content, B1950 precessed; Cyg A and Cas A where they are."""
    c3 = read_reference_catalog(SKY / "3c.dat")
    c4 = read_reference_catalog(SKY / "4c.dat")
    assert len(c3) == 471 and len(c4) == 4844
    assert {s.catalog for s in c3} == {"3c"} and c3[0].ref_freq_hz == 159e6 and c4[0].ref_freq_hz == 178e6
    by_name = {s.name: s for s in c3}
    cyg = source_coords([by_name["3C405"]])  # Cyg A, J2000 19h59m28.36s +40d44m02.1s
    cas = source_coords([by_name["3C461"]])  # Cas A, J2000 23h23m24s +58d48m54s
    from astropy.coordinates import SkyCoord

    assert cyg.separation(SkyCoord("19h59m28.36s +40d44m02.1s"))[0].arcmin < 1.0
    assert cas.separation(SkyCoord("23h23m24s +58d48m54s"))[0].arcmin < 2.0
    assert by_name["3C405"].flux_jy > 5000
    # the two catalogues agree on the sources they share (4C names them by their 3CR number, which is
    # not always the 3C one) to the original 3C's positional accuracy of several arcmin
    shared = [(s, by_name[s.patch]) for s in c4 if s.patch in by_name]
    assert len(shared) > 100
    seps = source_coords([a for a, _ in shared]).separation(source_coords([b for _, b in shared])).arcmin
    assert np.median(seps) < 10.0 and np.percentile(seps, 25) < 5.0


def test_astropy_tables_and_the_unknown_format_message(tmp_path):
    import astropy.units as u
    from astropy.table import Table

    table = Table({"Name": ["a", "b"], "RAJ2000": [10.0, 20.0] * u.deg, "DEJ2000": [-5.0, 45.0] * u.deg,
                   "S": [1500.0, 250.0] * u.mJy})
    table.write(tmp_path / "ref.fits")
    table.write(tmp_path / "ref.ecsv")
    for name in ("ref.fits", "ref.ecsv"):
        a, b = read_reference_catalog(tmp_path / name)
        assert (a.name, a.ra_deg, a.dec_deg, a.flux_jy) == ("a", 10.0, -5.0, pytest.approx(1.5))
        assert b.flux_jy == pytest.approx(0.25)
    path = tmp_path / "what.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(LwaError, match=r"cannot tell the format.*accepted: .*CSV.*VLSSr.*makesourcedb.*TTCal.*3C"):
        read_reference_catalog(path)
