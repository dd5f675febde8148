"""`lwa-cutout solar-system`: ephemeris (astropy built-in) and photometry on synthetic images."""

from __future__ import annotations

import csv
import math

import pytest
from astropy.io import fits
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_cutout.measure import angular_separation_deg
from lwa_cutout.solar import RADIUS_KM, ephemeris

MJD0 = Time("2024-12-20T12:00:00", scale="utc").mjd


def test_ephemeris_distances_and_diameters():
    moon = ephemeris("Moon", MJD0)
    assert 0.00235 < moon.distance_au < 0.00275  # perigee .. apogee
    assert 1750 < moon.diameter_arcsec < 2050  # 29.3' .. 34.1'
    km = moon.distance_au * 1.495978707e8
    assert moon.diameter_arcsec == pytest.approx(2 * math.degrees(math.asin(RADIUS_KM["moon"] / km)) * 3600)
    jupiter = ephemeris("jupiter", MJD0)  # opposition on 2024-12-07: ~48"
    assert 4.0 < jupiter.distance_au < 4.2 and 46.5 < jupiter.diameter_arcsec < 49.0
    # the Moon moves ~0.5 deg per hour against the stars; Jupiter barely
    later = ephemeris("moon", MJD0 + 1 / 24)
    assert 0.3 < angular_separation_deg(moon.ra_deg, moon.dec_deg, later.ra_deg, later.dec_deg) < 0.8
    with pytest.raises(LwaError, match="unknown body"):
        ephemeris("pluto", MJD0)


@pytest.fixture
def solar_images(allsky, tmp_path):
    """Deep I/V and two 10 min I/V images at 2024-12-20 12:00-13:00 with the Moon (30 Jy) and Mars
    (10 Jy, V 1 Jy) at their ephemeris positions at each image's mid-time; Jupiter is at ~22 deg."""

    def sky(mjd, v=False):
        moon, mars = ephemeris("moon", mjd), ephemeris("mars", mjd)
        if v:
            return [(mars.ra_deg, mars.dec_deg, 1.0)]
        return [(moon.ra_deg, moon.dec_deg, 30.0), (mars.ra_deg, mars.dec_deg, 10.0)]

    folder = tmp_path / "images"
    mid = MJD0 + 0.5 / 24
    allsky("images/deep-I.fits", sky(mid), noise=0.05)
    allsky("images/deep-V.fits", sky(mid, v=True), stokes="V", noise=0.05, seed=1)
    for k in (1, 2):
        start = f"2024-12-20T12:{10 * (k - 1):02d}:00"
        tmid = MJD0 + (10 * (k - 1) + 5) / 1440
        for stokes in ("I", "V"):
            allsky(f"images/t{k}-{stokes}.fits", sky(tmid, v=stokes == "V"), stokes=stokes, category="10min",
                   interval=f"t000{k}", date_obs=start, minutes=10, noise=0.1, seed=10 * k + (stokes == "V"))
    return folder


def test_solar_system_cli(solar_images, tmp_path):
    out = tmp_path / "out"
    res = run_cli(["lwa-cutout", "solar-system", "--images", str(solar_images), "-o", str(out),
                   "--bodies", "moon,mars,jupiter,venus", "--no-png"])
    assert res.returncode == 0, res.stderr
    assert sorted(p.rsplit("/", 1)[-1] for p in res.stdout.split()) == ["Mars_photometry.csv", "Moon_photometry.csv"]
    assert "'Jupiter' is at 16." in res.stderr and "(< 30 deg)" in res.stderr  # rising, ~16 deg at 12:30
    assert "'Venus' is at -" in res.stderr
    assert not (out / "Jupiter").exists()

    with open(out / "Moon" / "Moon_photometry.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # NINTERVL = 6: one row per interval of the hour, empty where there is no image
    assert [r["interval"] for r in rows] == ["deep"] + [f"t{k:04d}" for k in range(1, 7)]
    assert rows[3]["I_note"] == "no image" and rows[3]["I_cat_jy"] == "" and rows[3]["detected"] == "False"
    deep = rows[0]
    assert float(deep["I_fit_flux_jy"]) == pytest.approx(30.0, rel=0.03)
    sep = angular_separation_deg(float(deep["ephem_ra_deg"]), float(deep["ephem_dec_deg"]),
                                 float(deep["I_fit_ra_deg"]), float(deep["I_fit_dec_deg"]))
    assert sep < 0.1
    assert 0.00235 < float(deep["distance_au"]) < 0.00275 and 1750 < float(deep["diameter_arcsec"]) < 2050
    assert deep["detection_stokes"] == "both" and deep["detected"] == "True"
    # the 10 min positions follow the Moon: they differ from the deep (mid-hour) one
    assert float(rows[1]["ephem_ra_deg"]) != float(deep["ephem_ra_deg"])
    # 10 min - deep: the Moon subtracts out (it is at the same flux, and the positions differ by < 0.3 deg)
    assert abs(float(rows[1]["I_cat_jy"])) < 0.2 * 30.0

    with fits.open(out / "Moon" / "Moon-55MHz-20241220T120000-deep-I.fits") as hdul:
        h = hdul[0].header
    assert h["BODY"] == "Moon" and h["EPHEM"] == "astropy builtin"
    assert h["BODYDIST"] == pytest.approx(float(deep["distance_au"]), rel=1e-6)
    assert h["BODYDIAM"] == pytest.approx(float(deep["diameter_arcsec"]), abs=0.01)
    assert (h["BODYRA"], h["BODYDEC"]) == pytest.approx((float(deep["ephem_ra_deg"]), float(deep["ephem_dec_deg"])),
                                                         abs=1e-5)
    assert h["STOKES"] == "I" and h["IMGCAT"] == "deep" and h["PBCOR"] is True

    with open(out / "Mars" / "Mars_photometry.csv", newline="") as handle:
        mars = list(csv.DictReader(handle))
    assert mars[0]["V_detected"] == "True" and float(mars[0]["V_fit_peak_jy"]) == pytest.approx(1.0, rel=0.1)


def test_solar_system_usage_errors(tmp_path):
    res = run_cli(["lwa-cutout", "solar-system", "-o", str(tmp_path / "o")])
    assert res.returncode == 2 and "--images" in res.stderr
    res = run_cli(["lwa-cutout", "solar-system", str(tmp_path), "-o", str(tmp_path / "o"), "--bodies", "pluto"])
    assert res.returncode == 2 and "pluto" in res.stderr
