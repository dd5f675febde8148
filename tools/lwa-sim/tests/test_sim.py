"""lwa-sim: the simulated observation carries its truth, checked with casacore and real wsclean."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from casacore.tables import table

from lwa_common.site import ovro_location
from lwa_common.testing import fit_point_source, run_cli
from lwa_sim.array import CORE_RADIUS_M, default_system_cfg, load_array

START = "2024-12-20T12:00:00"  # zenith near RA 151°, Dec +37.4°


def _data(ms):
    with table(str(ms), ack=False) as t:
        return t.getcol("DATA"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")


def test_files_names_and_truth(sim_cache):
    out, truth = sim_cache("plain", {"beam": False, "noise": {"sigma_jy": 0.5},
                                     "sources": [{"name": "A", "ra": "10h40m00s", "dec": "+45d00m00s",
                                                  "flux_jy": 80}]},
                           n_int=3, n_antennas=24)
    names = sorted(p.name for p in out.glob("*.ms"))
    assert names == ["20241220_120000_55MHz.ms", "20241220_120010_55MHz.ms", "20241220_120020_55MHz.ms"]
    t = json.loads((out / "truth.json").read_text())
    assert t["observation"]["n_integrations"] == 3
    assert len(t["antennas"]) == 24
    src = t["sources"][0]
    assert src["ra_deg"] == pytest.approx(160.0) and src["dec_deg"] == pytest.approx(45.0)
    with table(str(out / names[0]), ack=False) as tab:
        assert tab.nrows() == 24 * 25 // 2
        assert tab.getcol("DATA").shape[1:] == (8, 4)
        times = np.unique(tab.getcol("TIME"))
        assert len(times) == 1
    with table(str(out / names[0] / "POLARIZATION"), ack=False) as pt:
        assert list(pt.getcell("CORR_TYPE", 0)) == [9, 10, 11, 12]
    with table(str(out / names[0] / "SPECTRAL_WINDOW"), ack=False) as sw:
        freqs = sw.getcell("CHAN_FREQ", 0)
    assert 54.7e6 < freqs.min() < freqs.max() < 59.4e6


def test_transient_only_in_its_interval(sim_cache):
    spec = {"beam": False, "noise": {"sigma_jy": 0.0}, "n_intervals": 3,
            "transients": [{"name": "T", "ra": 151.0, "dec": 37.0, "flux_jy": 10, "stokes": "V",
                            "intervals": [1]}]}
    out, truth = sim_cache("transient", spec, n_int=6, n_antennas=12)
    amps = []
    for ms in sorted(out.glob("*.ms")):
        data, a1, a2 = _data(ms)
        cross = a1 != a2
        amps.append(np.abs(data[cross][:, :, 1]).mean())  # XY carries V
    assert amps[0] == amps[1] == amps[4] == amps[5] == 0.0
    assert amps[2] == pytest.approx(10 * (56.3 / 60) ** -0.7, rel=0.03)
    assert amps[3] == pytest.approx(amps[2], rel=0.01)
    assert [i["integrations"] for i in truth["observation"]["intervals"]] == [[0, 1], [2, 3], [4, 5]]


def test_rfi_hot_baselines_dead_antenna_and_gains(sim_cache):
    spec = {"beam": False, "noise": {"sigma_jy": 0.1},
            "sources": [{"name": "A", "ra": 151.0, "dec": 37.4, "flux_jy": 20, "spectral_index": 0}],
            "rfi": [{"channels": [3], "integrations": [1], "amplitude_jy": 5000}],
            "hot_baselines": {"pairs": [[2, 7], [4, 9, 40]], "amplitude_jy": 400},
            "dead_antennas": [5],
            "gains": {"amplitude_rms": 0.1, "phase_rms_deg": 30, "xy_phase_deg": 20, "seed": 2}}
    out, truth = sim_cache("corrupt", spec, n_int=2, n_antennas=16)
    files = sorted(out.glob("*.ms"))
    d0, a1, a2 = _data(files[0])
    d1, _, _ = _data(files[1])
    cross = a1 != a2
    assert np.median(np.abs(d1[cross][:, 3, 0])) > 1000  # RFI burst
    assert np.median(np.abs(d0[cross][:, 3, 0])) < 100
    hot = (a1 == 2) & (a2 == 7)
    assert np.abs(d0[hot][0, :, 1]).mean() > 300  # cross-pol too
    weak = (a1 == 4) & (a2 == 9)  # its own amplitude: XY holds only the hot signal and noise
    assert np.abs(d0[weak][0, :, 1]).mean() == pytest.approx(40, rel=0.05)
    assert [h["amplitude_jy"] for h in truth["hot_baselines"]] == [400, 40]
    dead = ((a1 == 5) | (a2 == 5)) & cross
    assert np.abs(d0[dead]).max() < 0.05
    with __import__("h5py").File(out / "true_gains_55MHz.h5") as f:
        g = f["gains"][()]
    assert g.shape == (16, 2, 8)
    # a bright source at the phase centre: XX_ij = S g_iX g_jX^*, up to noise
    sel = cross & ~dead & ~hot & ~weak
    model = 20 * g[a1[sel], 0, :] * np.conj(g[a2[sel], 0, :])
    # the source is ~0.1 deg from the zenith phase centre: compare amplitudes and mean phase
    assert np.abs(d0[sel][:, :, 0]) == pytest.approx(np.abs(model), rel=0.05)
    assert truth["dead_antennas"][0]["index"] == 5 and truth["hot_baselines"][0]["ant1"] == 2


@pytest.mark.slow
def test_wsclean_sees_sources_at_true_pixel_flux_and_v_sign(sim_cache, tmp_path):
    """The whole convention chain: our DFT -> pyuvdata MS -> wsclean image, with the beam."""
    spec = {"noise": {"sigma_jy": 2.0},
            "sources": [{"name": "bright", "ra": "10h00m00s", "dec": "+50d00m00s", "flux_jy": 200,
                         "spectral_index": -0.7, "v_frac": 0.25},
                        {"name": "second", "ra": "10h20m00s", "dec": "+25d00m00s", "flux_jy": 120,
                         "spectral_index": -0.7, "v_frac": -0.2}]}
    out, truth = sim_cache("image", spec, n_int=1, n_antennas=96, n_channels=8)
    ms = next(out.glob("*.ms"))
    name = tmp_path / "img"
    cmd = ["wsclean", "-quiet", "-size", "600", "600", "-scale", "0.1", "-pol", "I,V", "-niter", "3000",
           "-auto-threshold", "3", "-mgain", "0.8", "-weight", "briggs", "0", "-no-update-model-required",
           "-name", str(name), str(ms)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    with fits.open(f"{name}-I-image.fits") as h:
        img_i, wcs = h[0].data[0, 0], WCS(h[0].header).celestial
    with fits.open(f"{name}-V-dirty.fits") as h:
        img_v = h[0].data[0, 0]
    with fits.open(f"{name}-I-dirty.fits") as h:
        dirty_i = h[0].data[0, 0]
    for src in truth["sources"]:
        x, y = wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0]
        fit = fit_point_source(img_i, x, y)
        assert abs(fit["x"] - x) < 0.3 and abs(fit["y"] - y) < 0.3, (src["name"], fit, x, y)
        expected = src["flux_by_subband"]["55MHz"]["apparent_jy"]
        assert 0.3 < src["flux_by_subband"]["55MHz"]["beam_mid"] < 1.0
        assert fit["peak"] == pytest.approx(expected, rel=0.05), src["name"]
        # V/I at the same pixel of the dirty images keeps the injected sign and fraction
        xi, yi = int(round(x)), int(round(y))
        ratio = img_v[yi, xi] / dirty_i[yi, xi]
        assert ratio == pytest.approx(src["v_frac"], abs=0.03), src["name"]


def test_cli_help_has_example():
    res = run_cli(["lwa-sim", "observe", "--help"])
    assert res.returncode == 0
    assert "Example:" in res.stdout and "lwa-sim observe truth.yaml" in res.stdout


@pytest.mark.parametrize(
    ("spec_text", "extra", "message"),
    [
        ("sources: [{ra: 1, dec: 2}]\n", [], "missing 'flux_jy'"),
        ("sourcez: []\n", [], "unknown keys"),
        ("sources: [{ra: 1, dec: 2, flux_jy: 1\n", [], "not valid YAML"),
        ("{}\n", ["--n-channels", "7"], "must divide 192"),
        ("{}\n", ["--subband", "54"], "no OVRO-LWA subband"),
        ("{}\n", ["--start", "yesterday"], "is not an ISO time"),
        ("dead_antennas: [99]\n", [], "outside 0..15"),
    ],
)
def test_cli_bad_input_fails_with_one_line(tmp_path, system_cfg, spec_text, extra, message):
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    args = ["lwa-sim", "observe", str(spec), "-o", str(tmp_path / "out"), "--start", START, "--n-int", "1",
            "--n-antennas", "16", "--system-cfg", str(system_cfg), *extra]
    res = run_cli(args)  # a repeated option (--start) takes its last value
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not list(tmp_path.glob("out/*.ms"))


def test_cli_usage_errors_exit_2(tmp_path, system_cfg):
    res = run_cli(["lwa-sim", "observe", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o"),
                   "--start", START, "--system-cfg", str(system_cfg)])
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_cli(["lwa-sim", "observe", "-o", str(tmp_path / "o"), "--start", START, "--n-int", "0",
                   "--system-cfg", str(system_cfg)])
    assert res.returncode == 2


def test_cli_unreadable_system_cfg(tmp_path):
    bad = tmp_path / "cfg.yml"
    bad.write_text("- just\n- a list\n")
    res = run_cli(["lwa-sim", "observe", "-o", str(tmp_path / "o"), "--start", START, "--system-cfg", str(bad)])
    assert res.returncode == 1 and "not a mapping" in res.stderr


def test_cli_refuses_to_overwrite_then_overwrites(tmp_path, system_cfg):
    base = ["lwa-sim", "observe", "-o", str(tmp_path / "o"), "--start", START, "--n-int", "1", "--n-antennas",
            "8", "--n-channels", "2", "--system-cfg", str(system_cfg)]
    spec = tmp_path / "s.yaml"
    spec.write_text("beam: false\n")
    assert run_cli([*base, str(spec)]).returncode == 0
    res = run_cli([*base, str(spec)])
    assert res.returncode == 1 and "--overwrite" in res.stderr
    res = run_cli([*base, str(spec), "--overwrite"])
    assert res.returncode == 0 and res.stdout.strip().endswith("20241220_120000_55MHz.ms")
    shutil.rmtree(tmp_path / "o")


def test_core_layout_is_deterministic_and_compact(system_cfg):
    loc = ovro_location()
    core = load_array(default_system_cfg(), n_antennas=64, location=loc)
    again = load_array(system_cfg, n_antennas=64, location=loc, layout="core")  # the full table: same rows
    assert core.names == again.names and len(set(core.names)) == 64
    horiz = core.ecef_rel_m - np.median(core.ecef_rel_m, axis=0)
    assert np.linalg.norm(horiz, axis=1).max() < CORE_RADIUS_M + 30
    spread = load_array(system_cfg, n_antennas=64, location=loc, layout="spread")
    assert np.linalg.norm(spread.ecef_rel_m - np.median(spread.ecef_rel_m, axis=0), axis=1).max() > 1000
    whole = load_array(default_system_cfg(), n_antennas=300, location=loc)  # core + outriggers
    assert len(whole.names) == 300 and set(core.names) < set(whole.names)


def test_cli_uses_the_shipped_antenna_table(tmp_path, monkeypatch):
    monkeypatch.delenv("LWA_SYSTEM_CFG", raising=False)
    res = run_cli(["lwa-sim", "observe", "-o", str(tmp_path / "o"), "--start", START, "--n-int", "1",
                   "--n-antennas", "8", "--n-channels", "2", "--json"])
    assert res.returncode == 0, res.stderr
    truth = json.loads((tmp_path / "o" / "truth.json").read_text())
    assert len(truth["antennas"]) == 8 and truth["observation"]["layout"] == "core"


def test_spec_ateam_path_is_beside_the_spec(tmp_path, monkeypatch):
    from lwa_sim.spec import load_spec

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "sky.yaml").write_text("ateam: models/ateam.json\n")
    monkeypatch.chdir(tmp_path)
    assert load_spec("specs/sky.yaml").ateam == str(Path("specs") / "models" / "ateam.json")
    (tmp_path / "abs.yaml").write_text(f"ateam: {tmp_path / 'x.json'}\n")
    assert load_spec(tmp_path / "abs.yaml").ateam == str(tmp_path / "x.json")


def test_an_offset_over_the_pole_comes_down_the_other_side():
    """dense_iono with seed 909 put a source at Dec 90.5 (astropy refused the truth): an offset
    north over the pole lands on the far side (RA + 180 deg); elsewhere the shift is as it was."""
    from lwa_sim.observe import _offset_position
    from lwa_sim.spec import Source

    ra, dec = _offset_position(Source("p", 30.0, 89.5, 10.0, offset_arcmin=(0.0, 60.0)))
    assert (ra, dec) == pytest.approx((210.0, 89.5))
    ra, dec = _offset_position(Source("s", 30.0, -89.8, 10.0, offset_arcmin=(0.0, -30.0)))
    assert (ra, dec) == pytest.approx((210.0, -89.7))
    assert _offset_position(Source("m", 359.5, 0.0, 10.0, offset_arcmin=(60.0, 30.0))) == pytest.approx((0.5, 0.5))


def _random(**cfg):
    from astropy.time import Time

    from lwa_common.site import Site
    from lwa_sim.observe import _random_sources

    base = {"count": 5, "flux_jy": [5, 60], "min_elevation_deg": 25, "seed": 808}
    return _random_sources({**base, **cfg}, Time(START), Site())


def test_random_sources_without_a_slope_are_as_before():
    """A spec without `flux_slope` draws the same sky as before the option existed (values from the
    code before it, seed 808): the scenario skies stay bit-identical."""
    before = [(203.5544200240747, 21.38145424272446, 17.61712437516259),
              (213.86900220013504, 31.942987705797485, 10.321000164349199),
              (172.7191907722768, 7.4387286192472875, 7.388328393247969),
              (222.84953919828493, 47.368536391511746, 12.61348251806334),
              (68.73483083477096, 56.99801655217223, 8.020399700987273)]
    assert [(s.ra_deg, s.dec_deg, s.flux_jy) for s in _random()] == before


def test_random_sources_follow_the_power_law_of_flux_slope():
    """`flux_slope: g` draws N(>S) ∝ S^-g between the limits (KS test against that law; the log-uniform
    draw fails the same test), at the same positions as without it."""
    from scipy import stats

    lo, hi, g = 5.0, 1000.0, 1.85
    steep = _random(count=2000, flux_jy=[lo, hi], flux_slope=g)
    flat = _random(count=2000, flux_jy=[lo, hi])
    s = np.array([x.flux_jy for x in steep])
    assert s.min() >= lo and s.max() <= hi
    cdf = lambda x: (1 - (x / lo) ** -g) / (1 - (hi / lo) ** -g)  # noqa: E731
    assert stats.kstest(s, cdf).pvalue > 0.01
    assert stats.kstest([x.flux_jy for x in flat], cdf).pvalue < 1e-6
    assert [(x.ra_deg, x.dec_deg) for x in steep] == [(x.ra_deg, x.dec_deg) for x in flat]


@pytest.mark.parametrize("slope", [0, -1.5, "steep"])
def test_spec_refuses_a_bad_flux_slope(slope):
    from lwa_common import LwaError
    from lwa_sim.spec import parse_spec

    with pytest.raises(LwaError, match="flux_slope"):
        parse_spec({"random_sources": {"count": 3, "flux_jy": [5, 50], "flux_slope": slope}})
