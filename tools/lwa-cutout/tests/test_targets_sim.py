"""`lwa-cutout targets` on a simulated hour imaged with the real wsclean, checked against the truth."""

from __future__ import annotations

import csv
import hashlib
import math

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.testing import run_cli
from lwa_cutout import run_targets

pytestmark = pytest.mark.slow

TARGETS = """# common_name: several aliases are accepted (lwa_common.targets)
common_name,ra_current,dec_current,detection_stokes,confusing_sources,period_d,notes
T5deg,155.0,40.0,I,,1.5,bright
T5sex,10h20m00s,+40d00m00s,I,,1.5,sexagesimal
Cmask,146.0,35.0,I,"{cx:.6f},35.0",,with its neighbour masked
Cnomask,146.0,35.0,I,,,without the mask
VS,10:08:00,+33:00:00,V,,0.2,flare star
Low,151.0,-30.0,I,,,below 30 deg
Bad,abc,40.0,I,,,malformed
"""
BAD_LINE = 9  # 1-based line of the 'Bad' row above


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _f(row, key):
    return float(row[key]) if row[key] != "" else math.nan


def _md5(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.fits"))}


@pytest.fixture(scope="module")
def targets_run(sim_images, tmp_path_factory):
    images, truth = sim_images
    cx = next(s for s in truth["sources"] if s["name"] == "Cx")["ra_deg"]
    work = tmp_path_factory.mktemp("cutout_targets_run")
    csv_path = work / "targets.csv"
    csv_path.write_text(TARGETS.format(cx=cx))
    before = _md5(images)
    res = run_cli(["lwa-cutout", "targets", str(csv_path), "--images", str(images), "-o", str(work / "out"), "-v"])
    return {"res": res, "out": work / "out", "csv": csv_path, "truth": truth, "images": images, "before": before}


def _truth(run, name):
    return next(s for s in run["truth"]["sources"] if s["name"] == name)


def test_run_succeeds_and_prints_the_csvs(targets_run):
    res = targets_run["res"]
    assert res.returncode == 0, res.stderr
    printed = res.stdout.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == [
        "T5deg_photometry.csv", "T5sex_photometry.csv", "Cmask_photometry.csv", "Cnomask_photometry.csv",
        "VS_photometry.csv",
    ]
    assert _md5(targets_run["images"]) == targets_run["before"]  # inputs untouched


def test_five_jy_target_within_5_percent(targets_run):
    truth = _truth(targets_run, "T5")["flux_by_subband"]["55MHz"]["apparent_jy"]
    rows = _rows(targets_run["out"] / "T5deg" / "T5deg_photometry.csv")
    deep = rows[0]
    assert deep["interval"] == "deep" and deep["I_kind"] == "deep"
    assert _f(deep, "I_fit_flux_jy") == pytest.approx(truth, rel=0.05)
    assert _f(deep, "I_peak_jy") == pytest.approx(truth, rel=0.1)
    assert _f(deep, "I_snr") > 100 and deep["I_detected"] == "True" and deep["detected"] == "True"
    assert deep["stokes"] == "I" and deep["flux_jy"] == deep["I_fit_flux_jy"] and deep["snr"] == deep["I_snr"]
    assert _f(deep, "I_peak_offset_arcsec") < 0.5 * _f(deep, "beam_major_arcsec")
    fit_sep = math.hypot((_f(deep, "I_fit_ra_deg") - 155.0) * math.cos(math.radians(40)), _f(deep, "I_fit_dec_deg") - 40)
    assert fit_sep * 3600 < 0.1 * _f(deep, "beam_major_arcsec")
    # the RMS is the image noise: well below 1 % of the source in the deep image
    assert 0 < _f(deep, "I_rms_jy") < 0.01 * truth
    # no V from an unpolarised source
    assert abs(_f(deep, "V_peak_jy")) < 5 * _f(deep, "V_rms_jy")


def test_seven_rows_per_subband_with_input_columns_first(targets_run):
    rows = _rows(targets_run["out"] / "VS" / "VS_photometry.csv")
    assert [r["interval"] for r in rows] == ["deep", "t0001", "t0002", "t0003", "t0004", "t0005", "t0006"]
    assert {r["subband"] for r in rows} == {"55MHz"}
    header = list(rows[0])
    assert header[:7] == ["common_name", "ra_current", "dec_current", "detection_stokes", "confusing_sources",
                          "period_d", "notes"]
    assert rows[3]["period_d"] == "0.2" and rows[3]["notes"] == "flare star" and rows[0]["ra_current"] == "10:08:00"
    assert all(r["I_kind"] == "10min-deep" for r in rows[1:])
    assert all(r["pbcor"] == "True" for r in rows)


def test_v_burst_detected_only_in_its_interval(targets_run):
    src = _truth(targets_run, "VS")
    flux = src["flux_by_subband"]["55MHz"]["intrinsic_jy"]
    k = src["transient"]["intervals"][0]
    rows = _rows(targets_run["out"] / "VS" / "VS_photometry.csv")
    detected = [r["interval"] for r in rows[1:] if r["V_detected"] == "True"]
    assert detected == [f"t{k + 1:04d}"]
    assert [r["interval"] for r in rows if r["detected"] == "True"] == ["deep", f"t{k + 1:04d}"]
    burst = rows[k + 1]
    assert _f(burst, "V_fit_peak_jy") == pytest.approx(flux, rel=0.05)  # dirty V: the fitted peak is the flux
    assert (burst["stokes"], _f(burst, "flux_jy")) == ("V", _f(burst, "V_fit_peak_jy"))  # the headline columns
    assert rows[1]["stokes"] == "V" and abs(_f(rows[1], "flux_jy")) < 5 * _f(rows[1], "V_rms_jy")  # forced value
    assert _f(burst, "V_peak_offset_arcsec") < 0.5 * _f(burst, "beam_major_arcsec")
    # the deep V holds the burst diluted over the hour; no Stokes I anywhere
    assert _f(rows[0], "V_fit_peak_jy") == pytest.approx(flux / 6, rel=0.1)
    assert all(r["I_detected"] == "False" for r in rows)


def test_confusing_source_is_masked(targets_run):
    truth_c = _truth(targets_run, "C")["flux_by_subband"]["55MHz"]["apparent_jy"]
    truth_x = _truth(targets_run, "Cx")["flux_by_subband"]["55MHz"]["apparent_jy"]
    masked = _rows(targets_run["out"] / "Cmask" / "Cmask_photometry.csv")[0]
    plain = _rows(targets_run["out"] / "Cnomask" / "Cnomask_photometry.csv")[0]
    beam = _f(plain, "beam_major_arcsec")
    # without the mask the 12 Jy neighbour (17' away, inside the search circle) is taken for the peak
    assert _f(plain, "I_peak_jy") == pytest.approx(truth_x, rel=0.1)
    assert _f(plain, "I_peak_offset_arcsec") > 0.9 * beam
    # with it, the peak and the fit are the 4 Jy target
    assert int(masked["I_masked_px"]) > 0
    assert _f(masked, "I_peak_offset_arcsec") < 0.5 * beam
    assert _f(masked, "I_peak_jy") == pytest.approx(truth_c, rel=0.15)
    assert _f(masked, "I_fit_flux_jy") == pytest.approx(truth_c, rel=0.1)
    assert masked["I_cat_jy"] == plain["I_cat_jy"]  # the catalogue-position value ignores masks
    assert int(_rows(targets_run["out"] / "Cmask" / "Cmask_photometry.csv")[1]["I_masked_px"]) == 0  # deep I only


def test_low_target_skipped_with_a_log_line(targets_run):
    res = targets_run["res"]
    lines = [ln for ln in res.stderr.splitlines() if "'Low'" in ln]
    assert any("elevation" in ln and "< 30 deg" in ln and "skipped" in ln for ln in lines), res.stderr
    assert not (targets_run["out"] / "Low").exists()


def test_sexagesimal_and_degrees_agree(targets_run):
    deg = _rows(targets_run["out"] / "T5deg" / "T5deg_photometry.csv")
    sex = _rows(targets_run["out"] / "T5sex" / "T5sex_photometry.csv")
    assert sex[0]["ra_current"] == "10h20m00s"
    for a, b in zip(deg, sex, strict=True):
        assert _f(a, "pos_ra_deg") == pytest.approx(_f(b, "pos_ra_deg"), abs=1e-9)
        for key in ("I_cat_jy", "I_peak_jy", "I_fit_flux_jy", "V_peak_jy", "I_rms_jy"):
            assert a[key] == b[key], key


def test_malformed_row_reported_with_line_number(targets_run):
    res = targets_run["res"]
    path = targets_run["csv"]
    assert any(f"{path}:{BAD_LINE}: skipped row" in ln and "RA 'abc'" in ln for ln in res.stderr.splitlines()), res.stderr
    assert not (targets_run["out"] / "Bad").exists()


def test_cutouts_and_pngs(targets_run):
    folder = targets_run["out"] / "VS"
    fits_files = sorted(folder.glob("*.fits"))
    assert len(fits_files) == 14 and len(list(folder.glob("*.png"))) == 7
    with fits.open(folder / "VS-55MHz-20241220T120000-t0004-V.fits") as hdul:
        h, data = hdul[0].header, hdul[0].data
    size_px = 2.0 / abs(h["CDELT2"])
    assert abs(data.shape[0] - size_px) <= 1.5 and abs(data.shape[1] - size_px) <= 1.5
    for key in ("STOKES", "IMGCAT", "INTERVAL", "NINTERVL", "PBCOR", "DEWARPED", "SUBBAND", "FREQMHZ", "DATE-OBS",
                "DATE-END", "MJD-MID", "BMAJ", "BMIN", "BPA", "LWAVER"):
        assert key in h, key
    assert (h["STOKES"], h["IMGCAT"], h["INTERVAL"], h["CUTOUT"]) == ("V", "10min", "t0004", "VS")
    assert any(str(c).startswith("lwa-pipe[lwa-cutout]") for c in h["HISTORY"])
    assert any("wsclean" in str(c) for c in h["HISTORY"])  # the parent's history is kept
    # the burst is at the cutout centre at its simulated flux
    cy, cx = (np.array(data.shape) - 1) / 2
    assert np.nanmax(data[int(cy) - 2:int(cy) + 3, int(cx) - 2:int(cx) + 3]) > 2.5
    with fits.open(folder / "VS-55MHz-20241220T120000-t0002-Idiff.fits") as hdul:
        assert hdul[0].header["IMGCAT"] == "diff"


def test_rerun_needs_overwrite_then_is_safe(targets_run, tmp_path):
    images = targets_run["images"]
    one = tmp_path / "one.csv"
    one.write_text("name,ra,dec\nT5,155.0,40.0\n")
    args = ["lwa-cutout", "targets", str(one), "--images", str(images), "-o", str(tmp_path / "o"), "--no-png"]
    first = run_cli(args)
    assert first.returncode == 0, first.stderr
    again = run_cli(args)
    assert again.returncode == 1
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "--overwrite" in lines[0]
    third = run_cli([*args, "--overwrite"])
    assert third.returncode == 0, third.stderr
    assert _rows(tmp_path / "o" / "T5" / "T5_photometry.csv")[0]["I_fit_flux_jy"] == \
        _rows(targets_run["out"] / "T5deg" / "T5deg_photometry.csv")[0]["I_fit_flux_jy"]


def test_core_function_without_click(sim_images, tmp_path):
    images, truth = sim_images
    targets = tmp_path / "t.csv"
    targets.write_text("source,ra_deg,dec_deg,detection_stokes\nVS,152.0,33.0,both\n")
    run = run_targets([targets], images=[images], output_dir=tmp_path / "o",
                      settings=__import__("lwa_cutout").PhotometrySettings(png=False))
    (result,) = run.results
    assert result.detected_rows == ["55MHz:deep", "55MHz:t0004"]
    assert run.summary()["csv"] == [str(tmp_path / "o" / "VS" / "VS_photometry.csv")]
