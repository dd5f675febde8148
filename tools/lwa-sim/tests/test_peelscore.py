"""lwa-sim's peel score (issue 22) on working MS built with known errors from a simulated A-team sky
and its control (the same spec without the A-team, same seed): an unpeeled MS, a perfect peel, and
a peel leaving 0.1 % of the A-team's amplitude and taking 5 % of one field source's flux, and one
leaving 3 % of it, are scored as built (the image RMS ratio needs pipeline images: tests/test_science.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from casacore.tables import table

from lwa_sim.peelscore import PEEL_GOALS, peel_goals, score_peel

START = "2024-12-20T00:00:00"  # Cyg A at ~66 deg elevation
ATEAM = [{"name": "Cyg A", "components": [
    {"name": "c1", "ra": "19h59m28.3s", "dec": "+40d44m02s", "I": 9000.0, "freq": 60e6, "index": [-0.8]},
    {"name": "c2", "ra": "19h59m34.0s", "dec": "+40d43m30s", "I": 6000.0, "freq": 60e6, "index": [-0.7],
     "major-fwhm": 60.0, "minor-fwhm": 40.0, "position-angle": 30.0}]}]
NEAR = {"name": "near", "ra": 297.756, "dec": 36.016, "flux_jy": 40, "spectral_index": -0.7}  # 5 deg from Cyg A
FAR = {"name": "far", "ra": 240.0, "dec": 30.0, "flux_jy": 30, "spectral_index": -0.7}
KW = {"start": START, "n_int": 2, "n_antennas": 24, "n_channels": 4, "seed": 7}


@pytest.fixture(scope="module")
def sky(sim_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ateam_model")
    (folder / "ateam.json").write_text(json.dumps(ATEAM))
    spec = {"sources": [NEAR, FAR], "noise": {"sigma_jy": 2.0}, "ateam": str(folder / "ateam.json")}
    full, truth = sim_cache("peelscore_full", spec, **KW)
    control, _ = sim_cache("peelscore_control", {k: v for k, v in spec.items() if k != "ateam"}, **KW)
    near, _ = sim_cache("peelscore_near", {"sources": [NEAR], "noise": {"sigma_jy": 0}}, **KW)
    return full, control, near, truth


def _run(tmp_path, full, make) -> object:
    """A subband folder whose ms/ holds copies of the simulation's MS with CORRECTED_DATA = make(name)."""
    folder = tmp_path / "22h" / "55MHz"
    (folder / "ms").mkdir(parents=True)
    for ms in sorted(full.glob("*.ms")):
        dst = folder / "ms" / ms.name
        shutil.copytree(ms, dst)
        data = make(ms.name)
        if data is not None:
            with table(str(dst), readonly=False, ack=False) as t:
                desc = t.getcoldesc("DATA")
                desc["name"] = "CORRECTED_DATA"
                t.addcols(desc)
                t.putcol("CORRECTED_DATA", data)
                t.putcolkeyword("CORRECTED_DATA", "LWA_PEEL", "sky")
    return folder


def _deep_image(tmp_path, truth) -> list:
    """A deep I image of pure noise (0.1 Jy) centred on Cyg A's side of the sky, as the run's."""
    from astropy.io import fits

    from lwa_common.testing import allsky_header, synthetic_image
    from lwa_sim.score import Image

    keys = {"SUBBAND": "55MHz", "PBCOR": False, "DEWARPED": False, "ROBUST": 0.0, "TAPER": 0.0, "STOKES": "I",
            "IMGCAT": "deep", "INTERVAL": "deep", "CONFIG": "I-Deep-NoTaper-Robust-0"}
    h = allsky_header(size=256, scale_deg=0.25, ra_deg=299.9, dec_deg=40.7, bmaj_deg=1.0, keywords=keys)
    path = tmp_path / "deep.fits"
    fits.writeto(path, synthetic_image(h, [], noise=0.1, seed=3), h, overwrite=True)
    return [Image(path, fits.getheader(path))]


def _data(folder, name):
    with table(str(folder / name), ack=False) as t:
        return t.getcol("DATA")


def test_unpeeled_ms_leaves_all_the_ateam(sky, tmp_path):
    full, control, _, truth = sky
    res = score_peel(_run(tmp_path, full, lambda name: None), truth, full, control, "55MHz")
    assert res["status"] == "scored" and res["n_ms"] == 2 and not res["peeled"]
    assert res["power_left"] == pytest.approx(1.0, abs=1e-6)
    assert [f["name"] for f in res["field"]] == ["near"]  # 'far' is > 12 deg away
    goals = peel_goals(res)
    assert set(goals) == set(PEEL_GOALS)
    assert goals["ateam_power"]["status"] == goals["ateam_field"]["status"] == "fail"
    assert goals["ateam_rms"]["status"] == "n/a"  # no image given


def test_perfect_peel_passes(sky, tmp_path):
    full, control, _, truth = sky
    res = score_peel(_run(tmp_path, full, lambda name: _data(control, name)), truth, full, control, "55MHz",
                     images=(_deep_image(tmp_path, truth), []))
    assert res["peeled"] and res["power_left"] == 0.0 and res["ring_excess_jy"] == 0.0
    assert res["field_max_abs_change"] == 0.0 and res["rms_ratio"] == pytest.approx(1.0)
    assert res["rms_ratio_image"]["run_jy"] == pytest.approx(0.1, rel=0.1)
    assert all(g["status"] == "pass" for g in peel_goals(res).values())


def test_partial_peel_is_measured(sky, tmp_path):
    full, control, near, truth = sky

    def make(name):  # 0.1 % of the A-team's amplitude left, 5 % of the near source removed
        ateam = _data(full, name) - _data(control, name)
        return _data(control, name) + 0.001 * ateam - 0.05 * _data(near, name)

    res = score_peel(_run(tmp_path, full, make), truth, full, control, "55MHz")
    assert res["power_left"] == pytest.approx(1e-6, rel=0.1)  # the A-team's 1e-6 and a little of the field source
    (f,) = res["field"]
    assert f["change"] == pytest.approx(-0.05, abs=0.01)  # the A-team's 1 % adds its sidelobes there
    goals = peel_goals(res)
    assert goals["ateam_power"]["status"] == "pass" and goals["ateam_field"]["status"] == "fail"


def test_ateam_left_raises_the_rms_near_it(sky, tmp_path):
    full, control, _, truth = sky

    def make(name):  # 3 % of the A-team's amplitude left: its sidelobes swamp the field's 3-10 deg away
        return _data(control, name) + 0.03 * (_data(full, name) - _data(control, name))

    res = score_peel(_run(tmp_path, full, make), truth, full, control, "55MHz",
                     images=(_deep_image(tmp_path, truth), []))
    assert res["ring_excess_jy"] > 0.1  # more than the image's RMS: the control's cannot be estimated
    assert res["rms_ratio"] == float("inf")
    assert peel_goals(res)["ateam_rms"]["status"] == "fail"
    # with a control run whose image is as noisy, the ratio is measured: 1 here (the same image)
    same = score_peel(_run(tmp_path / "b", full, make), truth, full, control, "55MHz",
                      images=(_deep_image(tmp_path, truth), _deep_image(tmp_path, truth)))
    assert same["rms_ratio"] == pytest.approx(1.0) and same["rms_ratio_image"]["control"] == "image of the control run"


def test_no_control_or_no_ateam_is_not_applicable(sky, tmp_path):
    full, control, _, truth = sky
    assert {g["status"] for g in peel_goals(None).values()} == {"n/a"}
    no_ateam = {**truth, "sources": [s for s in truth["sources"] if s.get("kind") != "ateam"]}
    res = score_peel(_run(tmp_path, full, lambda name: None), no_ateam, full, control, "55MHz")
    assert {g["status"] for g in peel_goals(res).values()} == {"n/a"}


def test_ddecal_convergence_from_the_peel_logs(tmp_path):
    from lwa_sim.peelscore import _convergence

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "peel-sky-0.log").write_text("... INFO    lwa_peel.peel: DDECal converged in [12] iterations\n")
    (logs / "peel-sky-1.log").write_text("... INFO    lwa_peel.peel: DDECal converged in [9, 14] iterations\n")
    (logs / "peel-sky-2.log").write_text("... WARNING lwa_peel.peel: DDECal did not converge within 50 "
                                         "iterations (took [51]); raise --max-iterations\n")
    (logs / "peel-rfi-0.log").write_text("DDECal converged in [3] iterations\n")  # not the sky peel
    got = _convergence(tmp_path)
    assert got == {"n_logs": 3, "not_converged": 1, "iterations_min": 12, "iterations_median": 14.0,
                   "iterations_max": 51}
    assert _convergence(tmp_path / "nothing") == {"n_logs": 0}
