"""End to end on lwa-sim truth: simulate a V burst and an I flash, image with the real wsclean
(deep + `-intervals-out 3`, inner Tukey taper 30 λ), label the images like lwa-image does, run
`lwa-transient search` and find each transient in its interval at its position."""

from __future__ import annotations

import subprocess

import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from lwa_common.fitsio import update_keywords
from lwa_common.testing import run_cli
from lwa_transient import read_candidates

SPEC = {
    "n_intervals": 3,
    "sources": [{"name": "S1", "ra": 148.0, "dec": 35.0, "flux_jy": 300},
                {"name": "S2", "ra": 156.0, "dec": 41.0, "flux_jy": 80},
                {"name": "S3", "ra": 145.0, "dec": 42.0, "flux_jy": 40}],
    "transients": [{"name": "burst", "ra": 153.5, "dec": 36.0, "flux_jy": 0.3, "stokes": "V", "intervals": [1]},
                   {"name": "flash", "ra": 149.0, "dec": 39.5, "flux_jy": 8, "stokes": "I", "intervals": [2]}],
}
SCALE = 0.1  # deg/px
# wsclean does not rephase the per-integration MS (each phased to its own zenith) to one centre:
# positions in a 10 min image move by up to the sky drift over the span (~0.1° here)
POS_TOL = 0.2


def _sep(row, ra, dec):
    return SkyCoord(float(row["ra"]), float(row["dec"]), unit="deg").separation(SkyCoord(ra, dec, unit="deg")).deg


def _image(tmp_path, ms_list):
    from casacore.tables import msutil

    cat = tmp_path / "span.ms"  # a virtual concatenation: one MS in time, as lwa-image gets per hour
    msutil.msconcat([str(m) for m in ms_list], str(cat), concatTime=True)
    out = tmp_path / "images"
    out.mkdir()
    common = ["wsclean", "-quiet", "-size", "256", "256", "-scale", str(SCALE), "-weight", "briggs", "0",
              "-taper-inner-tukey", "30", "-no-update-model-required", "-j", "2", "-temp-dir", str(tmp_path)]
    clean_i = ["-pol", "I", "-niter", "2000", "-auto-threshold", "3", "-mgain", "0.8"]
    dirty_v = ["-pol", "V", "-niter", "0"]
    for name, opts in (("deepI", clean_i), ("deepV", dirty_v), ("tI", [*clean_i, "-intervals-out", "3"]),
                       ("tV", [*dirty_v, "-intervals-out", "3"])):
        subprocess.run([*common, *opts, "-name", str(out / name), str(cat)], check=True, capture_output=True,
                       timeout=300)
    labels = {"deepI-image": ("I", "deep", "deep"), "deepV-dirty": ("V", "deep", "deep")}
    for k in range(3):
        labels[f"tI-t{k:04d}-image"] = ("I", "10min", f"t{k + 1:04d}")
        labels[f"tV-t{k:04d}-dirty"] = ("V", "10min", f"t{k + 1:04d}")
    for name, (stokes, cat_, interval) in labels.items():
        with fits.open(out / f"{name}.fits", mode="update") as hdul:
            update_keywords(hdul[0].header, {
                "STOKES": stokes, "IMGCAT": cat_, "INTERVAL": interval, "NINTERVL": 1 if cat_ == "deep" else 3,
                "TAPER": 30.0, "ROBUST": 0.0, "PBCOR": False, "DEWARPED": False, "SUBBAND": "55MHz",
            })
    return out


@pytest.mark.slow
def test_wsclean_images_burst_found_in_its_interval(sim_cache, copy_ms, tmp_path):
    sim, truth = sim_cache("transient_e2e", SPEC, n_int=6, n_antennas=64, n_channels=8)
    ms_list = copy_ms(*sorted(sim.glob("*.ms")))
    images = _image(tmp_path, ms_list)
    res = run_cli(["lwa-transient", "search", str(images), "-o", str(tmp_path / "out"),
                   "--catalog", str(sim / "catalog.csv"), "-v"])
    assert res.returncode == 0, res.stderr
    assert "using undewarped image(s)" in res.stderr
    rows = read_candidates(tmp_path / "out" / "candidates.csv")
    src = {s["name"]: s for s in truth["sources"]}
    burst = (src["burst"]["apparent_ra_deg"], src["burst"]["apparent_dec_deg"])
    flash = (src["flash"]["apparent_ra_deg"], src["flash"]["apparent_dec_deg"])

    # the V burst: in t0002 (interval index 1), at its position, positive, a real-looking candidate
    v_hit = [r for r in rows if r["stokes"] == "V" and r["interval"] == "t0002" and _sep(r, *burst) < POS_TOL]
    assert len(v_hit) == 1, rows
    assert v_hit[0]["sign"] == "1" and v_hit[0]["class"] == "candidate" and float(v_hit[0]["snr"]) > 10
    assert not [r for r in rows if r["stokes"] == "V" and r["interval"] in ("t0001", "t0003") and _sep(r, *burst) < 1]
    # every V candidate that is not a PSF artefact is the burst (deep or t0002)
    assert all(_sep(r, *burst) < POS_TOL for r in rows if r["stokes"] == "V" and r["class"] != "artefact")
    # the cutout and PNG of the burst
    with fits.open(v_hit[0]["cutout"]) as hdul:
        h = hdul[0].header
        assert h["STOKES"] == "V" and h["INTERVAL"] == "t0002" and h["IMGCAT"] == "diff"  # 10 min V − deep V
        assert hdul[0].data.shape == (20, 20)  # 2° at 0.1°/px
    assert v_hit[0]["png"].endswith(".png")

    # the I flash: in the t0003 − deep difference only
    i_hit = [r for r in rows if r["stokes"] == "I" and _sep(r, *flash) < POS_TOL]
    assert [r["interval"] for r in i_hit] == ["t0003"], rows
    assert float(i_hit[0]["snr"]) > 10

    # the 300 Jy steady source is masked (2 beams) in both searches
    bmaj = fits.getheader(images / "deepI-image.fits")["BMAJ"]
    s1 = (src["S1"]["apparent_ra_deg"], src["S1"]["apparent_dec_deg"])
    assert not [r for r in rows if _sep(r, *s1) <= 2 * bmaj]
