"""`lwa-cutout flux-check`: calibrator models and the measured/model ratio on synthetic images."""

from __future__ import annotations

import csv
import json
import logging

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.time import Time

from lwa_common.config import Config, FluxScale
from lwa_common.errors import LwaError
from lwa_common.site import ovro_location
from lwa_common.testing import run_cli
from lwa_cutout.fluxcheck import PERLEY_BUTLER_2017, flux_check, load_calibrators, perley_butler_flux

CALIBRATORS = Config().flux_scale.calibrators


@pytest.fixture(scope="module")
def skymodel(shared_data):
    return shared_data / "sky" / "scaife_heald_2012_calibrators.skymodel"


def test_models(skymodel):
    cals = {c.name: c for c in load_calibrators(skymodel, CALIBRATORS)}
    assert set(cals) == set(CALIBRATORS)
    # Scaife & Heald 2012, Table 3: S(150 MHz)
    for name, s150 in (("3C48", 64.768), ("3C147", 66.738), ("3C286", 27.477), ("3C295", 97.763),
                       ("3C380", 77.352)):
        assert cals[name].flux_at(150e6) == pytest.approx(s150, rel=1e-3), name
    # the rescaled 3C196 patch, not "3C196old"
    assert cals["3C196"].flux_at(150e6) == pytest.approx(83.13, rel=1e-3)
    assert cals["3C196"].flux_at(54e6) != pytest.approx(
        load_calibrators(skymodel, ["3C196old"])[0].flux_at(54e6), rel=1e-3)
    # 3C48 at 60 MHz from the published polynomial: 64.768 * 10^(-0.387x - 0.420x^2 + 0.181x^3)
    x = np.log10(60 / 150)
    assert cals["3C48"].flux_at(60e6) == pytest.approx(64.768 * 10 ** (-0.387 * x - 0.420 * x**2 + 0.181 * x**3))
    # Perley & Butler 2017: 3C123 is 10^a0 Jy at 1 GHz, and a0 + a1 x + ... elsewhere
    assert cals["3C123"].reference == "Perley & Butler 2017"
    assert cals["3C123"].flux_at(1e9) == pytest.approx(10**1.8017)
    assert 380 < cals["3C123"].flux_at(74e6) < 440  # VLSSr-era value ~ 410 Jy
    assert perley_butler_flux(PERLEY_BUTLER_2017["3C123"]["coeffs"], np.array([1e9, 2e9])).shape == (2,)
    with pytest.raises(LwaError, match="3C999"):
        load_calibrators(skymodel, ["3C999"])


def _elevations(cals, date_obs):
    t = Time(date_obs) + 30 * u.min
    coords = SkyCoord([c.ra_deg for c in cals] * u.deg, [c.dec_deg for c in cals] * u.deg)
    return coords.transform_to(AltAz(obstime=t, location=ovro_location())).alt.deg


@pytest.fixture
def calibrator_images(allsky, skymodel):
    """Two PB-corrected deep I images (56 MHz at 12 UT, 74 MHz at 06 UT) with every calibrator above
    the horizon at 0.9 x its model flux."""
    cals = load_calibrators(skymodel, CALIBRATORS)
    paths = []
    for freq, date in ((56.0, "2024-12-20T12:00:00"), (74.0, "2024-12-20T06:00:00")):
        up = _elevations(cals, date) > 0  # (synthetic_image cannot place a source beyond the horizon)
        sources = [(c.ra_deg, c.dec_deg, 0.9 * c.flux_at(freq * 1e6)) for c, ok in zip(cals, up, strict=True) if ok]
        paths.append(allsky(f"images/deep-{freq:.0f}.fits", sources, freq_mhz=freq, date_obs=date, noise=0.3,
                            seed=int(freq)))
    return paths, cals


def test_ratio_is_point_nine(calibrator_images, skymodel, tmp_path):
    (img56, img74), cals = calibrator_images
    res = run_cli(["lwa-cutout", "flux-check", "--images", str(img56.parent), "--skymodel", str(skymodel), "-o",
                   str(tmp_path / "qa"), "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["outputs"] == [str(tmp_path / "qa" / "flux_check.csv"), str(tmp_path / "qa" / "flux_check.png")]
    assert (tmp_path / "qa" / "flux_check.png").stat().st_size > 10_000
    with open(tmp_path / "qa" / "flux_check.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for path, freq, date in ((img56, 56.0, "2024-12-20T12:00:00"), (img74, 74.0, "2024-12-20T06:00:00")):
        got = {r["calibrator"] for r in rows if r["image"] == str(path)}
        expected = {c.name for c, e in zip(cals, _elevations(cals, date), strict=True) if e > 20.0}
        assert got == expected, (freq, got, expected)
        assert len(expected) >= 4
    assert "3C123" in {r["calibrator"] for r in rows}  # the Perley & Butler source is checked too
    for row in rows:
        assert float(row["ratio"]) == pytest.approx(0.9, abs=0.02), row["calibrator"]
        assert float(row["elevation_deg"]) > 20 and row["measure"] == "fit" and row["pbcor"] == "True"
    assert summary["median_ratio"] == pytest.approx(0.9, abs=0.01)


def test_not_pb_corrected_warns_and_elevation_limit(allsky, skymodel, tmp_path, caplog):
    cals = load_calibrators(skymodel, ["3C196", "3C380"])
    raw = allsky("raw.fits", [(c.ra_deg, c.dec_deg, c.flux_at(56e6)) for c in cals], keywords={"PBCOR": False})
    with caplog.at_level(logging.INFO, logger="lwa_cutout"):
        result = flux_check(images=[raw], skymodel=skymodel, output_dir=tmp_path / "o",
                            settings=FluxScale(calibrators=("3C196", "3C380"), min_elevation_deg=20.0), png=False)
    assert "not primary-beam corrected" in caplog.text
    assert "3C380 at 11.7 deg elevation" in caplog.text  # below 20 deg at 12:30 UT: not checked
    (row,) = result.rows
    assert row["calibrator"] == "3C196" and row["ratio"] == pytest.approx(1.0, abs=0.02)
    assert result.csv.exists() and result.png is None
    # lowering the limit brings 3C380 in
    again = flux_check(images=[raw], skymodel=skymodel, output_dir=tmp_path / "o",
                       settings=FluxScale(calibrators=("3C196", "3C380"), min_elevation_deg=5.0), png=False,
                       overwrite=True)
    assert [r["calibrator"] for r in again.rows] == ["3C196", "3C380"]


def test_flux_check_failures(allsky, skymodel, tmp_path):
    img = allsky("deep.fits", [])
    res = run_cli(["lwa-cutout", "flux-check", str(img), "--skymodel", str(skymodel), "-o", str(tmp_path / "o"),
                   "--calibrators", "3C196,3CXYZ"])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "3CXYZ" in lines[0]
    res = run_cli(["lwa-cutout", "flux-check", "--skymodel", str(skymodel), "-o", str(tmp_path / "o")])
    assert res.returncode == 2
    bad = tmp_path / "bad.skymodel"
    bad.write_text("3C48, POINT, 01:37:41.3, 33.09.35, 64.7\n")
    res = run_cli(["lwa-cutout", "flux-check", str(img), "--skymodel", str(bad), "-o", str(tmp_path / "o")])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "format line" in res.stderr
