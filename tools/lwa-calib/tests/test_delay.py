"""`lwa-calib delay-check`: delays of the first integration against a reference table (real CASA)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lwa_calib import delay_check, read_caltable, read_true_gains, write_caltable
from lwa_calib.casa_env import casa_log
from lwa_common import LwaError
from lwa_common.config import Calibration
from lwa_common.testing import run_cli

REAL_DELAYS = "ovro-lwa/delay_caltable_20250202/20h/20250202_190116_fullband.delay"


def _true_delays_ns(gains: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """[ant, pol] delay (ns) of the phase slope of the simulated gains (their phase is linear in frequency)."""
    phase = np.unwrap(np.angle(gains), axis=2)
    slope = np.polyfit(freqs, phase.reshape(-1, freqs.size).T, 1)[0].reshape(gains.shape[:2])
    return slope / (2 * np.pi) * 1e9


@pytest.mark.slow
def test_delay_check_finds_shifted_antennas(sim_gains, cal_sources, tmp_path, helpers):
    out, _ = sim_gains
    ms = helpers.ms_files(out)[0]
    digest = helpers.tree_digest(ms)
    gains, freqs, names = read_true_gains(out / "true_gains_55MHz.h5")
    truth = _true_delays_ns(gains, freqs)
    reference = truth.copy()
    reference[[3, 7]] += 20.0  # two antennas whose cables "changed"
    reference += 100.0  # another reference antenna / clock: a common offset is not a problem
    with casa_log(tmp_path / "casa.log"):
        write_caltable(tmp_path / "reference.K", template_ms=ms, kind="K", values=reference[:, None, :])
    report = delay_check(ms, reference=tmp_path / "reference.K", outdir=tmp_path / "check", sources=cal_sources,
                         settings=Calibration(delay_threshold_ns=5.0))
    assert report.off_antennas == sorted([names[3], names[7]])
    assert len(report.off) == 4  # both pols
    assert all(r["offset_ns"] == pytest.approx(-20.0, abs=1.0) for r in report.off)  # solved - reference
    ok = [abs(r["offset_ns"]) for r in report.rows if r["status"] == "ok"]
    assert len(ok) == 2 * 30 and max(ok) < 2.0
    # the solved delays themselves, relative to antenna 0, match the simulated gains
    solved = read_caltable(report.table, expect="K").values[:, 0, :]
    assert np.abs((solved - solved[0]) - (truth - truth[0])).max() < 0.5
    with open(report.csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 64 and {r["status"] for r in rows} == {"ok", "off"}
    assert helpers.tree_digest(ms) == digest
    assert not [p for p in (tmp_path / "check").iterdir() if p.name.startswith("lwa-calib-delay-")]


@pytest.mark.slow
def test_delay_check_against_real_table(sim_gains, cal_sources, shared_data, tmp_path, helpers):
    """The real 352-antenna OVRO-LWA table: antennas matched by name (LWA-266 = LWA266), exit 0."""
    out, _ = sim_gains
    ms = helpers.ms_files(out)[0]
    ref = shared_data / REAL_DELAYS
    res = run_cli(["lwa-calib", "delay-check", str(ms), "--reference", str(ref), "-o", str(tmp_path / "chk"),
                   "--sources", str(cal_sources), "--threshold-ns", "1e6"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "chk" / "delay_check.csv")
    with open(tmp_path / "chk" / "delay_check.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    statuses = {r["status"] for r in rows}
    assert statuses <= {"ok", "flagged"} and sum(r["status"] == "ok" for r in rows) >= 60
    real = read_caltable(ref, expect="K")
    by_name = {n.replace("-", ""): real.values[i, 0] for i, n in enumerate(real.names)}
    row = next(r for r in rows if r["status"] == "ok")
    assert float(row["reference_ns"]) == pytest.approx(by_name[row["name"].replace("-", "")]["XY".index(row["pol"])],
                                                        abs=1e-3)


@pytest.mark.slow
def test_delay_check_must_fail(sim_gains, tmp_path, helpers):
    out, _ = sim_gains
    ms = helpers.ms_files(out)[0]
    res = run_cli(["lwa-calib", "delay-check", str(ms), "--reference", str(tmp_path / "none.K"),
                   "-o", str(tmp_path / "chk")])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1 and "none.K" in res.stderr
    assert not (tmp_path / "chk").exists()
    with pytest.raises(LwaError, match="expected K Jones"):
        bp = tmp_path / "x.B"
        with casa_log(tmp_path / "casa.log"):
            write_caltable(bp, template_ms=ms, kind="B", values=np.ones((32, 8, 2), complex))
        delay_check(ms, reference=bp, outdir=tmp_path / "chk2")
    assert run_cli(["lwa-calib", "delay-check", str(ms), "-o", str(tmp_path / "c")]).returncode == 2
