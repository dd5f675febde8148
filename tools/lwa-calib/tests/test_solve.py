"""`lwa-calib solve`: the bandpass and XY phase of a simulated calibrator are recovered (real CASA)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lwa_calib import SolveSettings, read_caltable, read_true_gains, solve
from lwa_common import LwaError
from lwa_common.testing import run_cli


@pytest.fixture(scope="module")
def solved(sim_solve, cal_sources, tmp_path_factory, helpers):
    out, _ = sim_solve
    inputs = helpers.ms_files(out)
    digests = {p: helpers.tree_digest(p) for p in inputs}
    dest = tmp_path_factory.mktemp("solve") / "cal"
    res = run_cli(["lwa-calib", "solve", *map(str, inputs), "--sources", str(cal_sources), "-o", str(dest)])
    return res, dest, inputs, digests


@pytest.mark.slow
def test_solve_recovers_gains(solved, sim_solve, helpers):
    res, dest, inputs, digests = solved
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(dest / "bandpass.B"), str(dest / "xyphase.Xf")]
    summary = json.loads((dest / "summary.json").read_text())
    ref = int(summary["refant"])
    out, _ = sim_solve
    gains, _, names = read_true_gains(out / "true_gains_55MHz.h5")
    truth = helpers.reference_normalised(np.transpose(gains, (0, 2, 1)), ref)
    bp = read_caltable(dest / "bandpass.B", expect="B")
    xy = read_caltable(dest / "xyphase.Xf", expect="Xf")
    solved_gains = bp.values.copy()
    solved_gains[:, :, 1] *= np.conj(xy.values[:, :, 0])  # CASA: the Xf phase acts on Y as exp(-i x)
    solved_gains = helpers.reference_normalised(solved_gains, ref)

    # the dead antenna (5) is flagged, the RFI channel (3) flagged for all and interpolated
    assert summary["flagged_antennas"] == [names[5]]
    assert bp.flags[5].all() and not np.delete(bp.flags, 5, axis=0).any()
    assert summary["flagged_channels"] == [3]
    assert read_caltable(dest / "bandpass_raw.B").flags.sum() < bp.flags.sum() + 80
    live = np.delete(np.arange(32), 5)
    ratio = solved_gains[live] / truth[live]
    amp_err = np.abs(np.abs(ratio) - 1)
    phase_err = np.abs(np.degrees(np.angle(ratio)))
    assert amp_err.max() < 0.01 and phase_err.max() < 1.0, (amp_err.max(), phase_err.max())
    assert amp_err[:, 3].max() < 0.01 and phase_err[:, 3].max() < 1.0  # interpolated channel too
    # the XY phase itself: minus the reference antenna's true Y-X phase difference
    true_xy = np.degrees(np.angle(gains[ref, 1] / gains[ref, 0]))
    assert np.abs(np.degrees(np.angle(xy.values[0, :, 0] * np.exp(1j * np.radians(true_xy))))).max() < 1.0
    assert summary["xy_phase"]["solved"] and summary["xy_phase"]["interpolated_channels"] == 1
    # QA products and the inputs untouched
    for name in ("bandpass_amp_p01.png", "bandpass_phase_p01.png", "flagged_fraction.png", "xy_phase.png"):
        assert (dest / "qa" / name).stat().st_size > 5000
    page = (dest / "summary.html").read_text()
    assert "qa/bandpass_amp_p01.png" in page and names[5] in page
    assert (dest / "casa.log").exists() and not (dest / "work").exists()
    assert all(helpers.tree_digest(p) == d for p, d in digests.items())
    assert not list(dest.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_solve_unpolarised_model_skips_xy(sim_gains, unpolarised_sources, tmp_path, helpers, caplog):
    """An unpolarised model cannot give the XY phase: auto skips it (and says so), solve refuses."""
    out, _ = sim_gains
    inputs = helpers.ms_files(out)
    with pytest.raises(LwaError, match="no polarised"):
        solve(inputs, sources=unpolarised_sources, outdir=tmp_path / "refused",
              settings=SolveSettings(xy_mode="solve"))
    assert not (tmp_path / "refused").exists()
    result = solve(inputs, sources=unpolarised_sources, outdir=tmp_path / "cal", settings=SolveSettings(refant="3"))
    assert result.xy_table is None and not (tmp_path / "cal" / "xyphase.Xf").exists()
    assert "unpolarised" in result.summary["xy_phase"]["reason"]
    assert "XY phase not solved" in caplog.text
    # the parallel hands are still calibrated: bandpass vs truth, per pol relative to the refant
    gains, _, _ = read_true_gains(out / "true_gains_55MHz.h5")
    truth = np.transpose(gains, (0, 2, 1))
    bp = read_caltable(result.bp_table, expect="B")
    for p in (0, 1):
        t = truth[:, :, p] / (truth[3, :, p] / np.abs(truth[3, :, p]))
        ratio = bp.values[:, :, p] / t
        assert np.abs(np.abs(ratio) - 1).max() < 0.01 and np.abs(np.degrees(np.angle(ratio))).max() < 1.0
    assert result.summary["refant"] == "3"
    with pytest.raises(LwaError, match="exists"):
        solve(inputs, sources=unpolarised_sources, outdir=tmp_path / "cal")


def test_solve_must_fail(sim_gains, cal_sources, tmp_path, helpers):
    out, _ = sim_gains
    ms = helpers.ms_files(out)[0]
    res = run_cli(["lwa-calib", "solve", str(ms), "--sources", str(cal_sources), "-o", str(tmp_path / "a"),
                   "--refant", "LWA-999"])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "LWA-999" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"name\": \"x\"")
    res = run_cli(["lwa-calib", "solve", str(ms), "--sources", str(bad), "-o", str(tmp_path / "b")])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "bad.json" in res.stderr
    res = run_cli(["lwa-calib", "solve", str(ms), "-o", str(tmp_path / "c")])
    assert res.returncode == 2  # --sources missing
    assert not any((tmp_path / d).exists() for d in "abc")
