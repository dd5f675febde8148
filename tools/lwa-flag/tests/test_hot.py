"""Hot baselines and dead antennas on lwa-sim truth, plus unit tests of the passes on arrays."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from casacore.tables import makecoldesc, table

from lwa_common.config import HotBaselines
from lwa_common.testing import run_cli
from lwa_flag import concat_ms, detect_hot_baselines, find_hot_baselines
from lwa_flag._stats import rolling_median_sigma
from lwa_flag.hot import BaselineStats


def _index(result, a: int, b: int) -> int:
    st = result.stats
    lo, hi = min(a, b), max(a, b)
    return int(np.flatnonzero((st.ant1 == lo) & (st.ant2 == hi))[0])


def _clean_mask(result, truth) -> np.ndarray:
    """Baselines with no injected fault: not a hot pair, not on the hot or the dead antenna."""
    st = result.stats
    bad = np.zeros(st.ant1.size, bool)
    for a, b in truth["pairs"] + truth["antenna_pairs"]:
        bad[_index(result, a, b)] = True
    for ant in (truth["antenna"], truth["dead"]):
        bad |= (st.ant1 == ant) | (st.ant2 == ant)
    return ~bad


@pytest.fixture(scope="module")
def hot_result(hot_sim, tmp_path_factory):
    files, _ = hot_sim
    ms = concat_ms(files, tmp_path_factory.mktemp("hotcat") / "cat.ms")  # two integrations in one MS
    return find_hot_baselines(ms)


def test_truth_hot_baselines_dead_and_hot_antenna(hot_result, hot_truth):
    r = hot_result
    st = r.stats
    assert st.column == "DATA"  # no CORRECTED_DATA in a simulated MS: fall back to DATA
    assert st.n_good.min() > 0 and st.n_good.max() == 2 * 8 * 4  # both integrations, 8 channels, 4 pols
    flagged = r.baseline_is_flagged()
    hot = [_index(r, a, b) for a, b in hot_truth["pairs"]]
    assert all(st.uv_lambda[i] > 4.0 for i in hot)  # every injected pair is long enough to be judged
    recovered = np.mean(flagged[hot])
    assert recovered >= 0.95, f"only {recovered:.0%} of the hot baselines flagged"
    # 30 Jy is ~100 sigma in the cross hands but far inside the sky's scatter in the parallel hands:
    # pass 2 and pass 1's sky-free Q/U residual find every one, the parallel amplitude none
    assert r.flag_cross[hot].all() and r.flag_qu[hot].all()
    assert not r.flag_par[hot].any()
    assert hot_truth["dead"] in r.dead and set(r.dead[hot_truth["dead"]]["pols"]) == {"XX", "YY"}
    assert r.dead[hot_truth["dead"]]["ratio"] < 0.01
    assert hot_truth["antenna"] in r.antenna_rule and 0.25 < r.antenna_rule[hot_truth["antenna"]] < 0.35
    assert set(r.flagged_antennas) == {hot_truth["dead"], hot_truth["antenna"]}
    clean = _clean_mask(r, hot_truth)
    false_rate = flagged[clean].mean()
    assert false_rate < 0.01, f"{false_rate:.2%} of clean baselines flagged"
    assert clean.sum() > 4000


def test_strong_hot_baselines_found_by_pass1(strong_sim, hot_truth):
    files, _ = strong_sim
    r = find_hot_baselines(files[0], crosspol_pass=False)
    hot = [_index(r, a, b) for a, b in hot_truth["pairs"]]
    assert np.mean(r.flag_uv[hot]) >= 0.95
    assert np.nanmin(r.score_uv[hot]) > 7.0
    clean = np.ones(r.stats.ant1.size, bool)
    clean[hot] = False
    assert r.flag_uv[clean].mean() < 0.01
    both = find_hot_baselines(files[0])
    assert both.flag_uv[hot].all() and both.flag_cross[hot].all()
    assert both.summary()["baselines"][0]["reason"] == "amp_vs_uv+qu_vs_uv+crosspol"


def test_corrected_data_preferred_and_data_fallback_warns(small_sim, copy_ms, caplog):
    (ms,) = copy_ms(small_sim[0][0])
    with table(str(ms), readonly=False, ack=False) as t:
        t.addcols(makecoldesc("CORRECTED_DATA", t.getcoldesc("DATA")))
        data = t.getcol("DATA")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        data[(a1 == 3) & (a2 == 9)] += 40.0 * np.exp(0.7j)  # hot only in the calibrated column
        t.putcol("CORRECTED_DATA", data)
    r = find_hot_baselines(ms)
    assert r.stats.column == "CORRECTED_DATA"
    assert r.flagged_pairs() == [(3, 9)]
    assert find_hot_baselines(ms, column="DATA").flagged_pairs() == []
    with table(str(ms), readonly=False, ack=False) as t:
        t.removecols(["CORRECTED_DATA"])
    with caplog.at_level(logging.WARNING):
        assert find_hot_baselines(ms).stats.column == "DATA"
    assert any("using DATA" in rec.getMessage() for rec in caplog.records)


def test_cli_copy_flags_qa_and_input_untouched(hot_sim, hot_truth, tmp_path, digest, flags_of, system_cfg):
    ms = hot_sim[0][0]
    before = digest(ms)
    out = tmp_path / "flagged.ms"
    res = run_cli(["lwa-flag", "hot-baselines", str(ms), "-o", str(out), "--system-cfg", str(system_cfg),
                   "--json"])
    assert res.returncode == 0, res.stderr
    assert digest(ms) == before  # the input MS is untouched
    summary = json.loads(res.stdout)
    assert summary["flagged_percent_before"] == 0.0
    flags, a1, a2, _ = flags_of(out)
    row_flagged = flags.all(axis=(1, 2))
    for a, b in hot_truth["pairs"]:
        assert row_flagged[(a1 == a) & (a2 == b)].all()
    for ant in (hot_truth["dead"], hot_truth["antenna"]):
        assert row_flagged[(a1 == ant) | (a2 == ant)].all()
    expected_rows = row_flagged.mean()
    assert summary["flagged_percent_after"] == pytest.approx(100 * expected_rows, rel=1e-3)
    # files: summary next to the output, QA folder with the two PNGs and the CSV
    qa = tmp_path / "QA"
    for name in ("amp_vs_uv.png", "heatmap.png"):
        assert (qa / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    disk = json.loads((tmp_path / "flagged.flag-hot-baselines.json").read_text())
    assert disk["flagged"]["n_flagged_crosspol"] >= len(hot_truth["pairs"])
    with open(qa / "flagged_baselines.csv") as fh:
        rows = list(csv.DictReader(fh))
    pairs = {(int(r["ant1"]), int(r["ant2"])) for r in rows if r["ant2"]}
    assert set(hot_truth["pairs"]) <= pairs
    reasons = {r["reason"] for r in rows if not r["ant2"]}
    assert reasons == {"dead_antenna:XX+YY", "antenna_fraction"}
    assert all(r["name1"].startswith("LWA-") for r in rows)
    # a rerun without --overwrite refuses (one line), with --overwrite it replaces
    again = run_cli(["lwa-flag", "hot-baselines", str(ms), "-o", str(out)])
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    assert "--overwrite" in again.stderr
    assert run_cli(["lwa-flag", "hot-baselines", str(ms), "-o", str(out), "--overwrite"]).returncode == 0
    assert digest(ms) == before


def test_cli_thresholds_from_config_and_options(hot_sim, tmp_path):
    from click.testing import CliRunner

    from lwa_flag.cli import cli

    ms = hot_sim[0][0]
    toml = tmp_path / "strict.toml"
    toml.write_text("[hot_baselines]\nsigma_heatmap = 1000.0\ndead_fraction = 0.0\n")
    common = [str(ms), "--dry-run", "--config", str(toml), "--json", "--qa-dir", str(tmp_path / "qa"),
              "--summary", str(tmp_path / "s.json"), "--overwrite"]
    res = CliRunner().invoke(cli, ["hot-baselines", *common])
    assert res.exit_code == 0, res.output
    flagged = json.loads(res.stdout)["flagged"]
    assert flagged["settings"]["sigma_heatmap"] == 1000.0
    assert flagged["n_flagged_crosspol"] == 0 and flagged["dead_antennas"] == []
    assert flagged["rows_flagged"] == 0 and flagged["dry_run"]
    # an option given on the command line wins over the config file
    res = CliRunner().invoke(cli, ["hot-baselines", *common, "--sigma-heatmap", "5"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["flagged"]["n_flagged_crosspol"] >= 10
    res = CliRunner().invoke(cli, ["hot-baselines", *common, "--antenna-fraction", "1.5"])
    assert res.exit_code == 2 and "--antenna-fraction" in res.output


def _stats(n_ant: int, amp_par: np.ndarray, amp_cross: np.ndarray, uv: np.ndarray) -> BaselineStats:
    a1, a2 = np.triu_indices(n_ant, k=1)
    return BaselineStats(ant1=a1, ant2=a2, uv_lambda=uv, n_good=np.full(a1.size, 8.0), n_antennas=n_ant,
                         freq_hz=55e6, column="DATA",
                         amp={"XX": amp_par.copy(), "YY": amp_par.copy(), "XY": amp_cross.copy(),
                              "YX": amp_cross.copy()})


def test_unit_rules_on_arrays():
    rng = np.random.default_rng(4)
    n_ant = 40
    a1, a2 = np.triu_indices(n_ant, k=1)
    uv = rng.uniform(1.0, 300.0, a1.size)
    amp_par = 2000.0 / np.sqrt(uv) * (1 + 0.05 * rng.standard_normal(a1.size))  # steep sky trend
    amp_cross = 3.0 + 0.2 * rng.standard_normal(a1.size)
    hot_ant = np.flatnonzero(((a1 == 5) | (a2 == 5)) & (uv > 4))[:12]  # 12 of antenna 5's ~38 baselines
    amp_cross[hot_ant] += 10.0
    amp_par[(a1 == 1) & (a2 == 2)] *= 3.0  # one very hot parallel-hand baseline
    stats = _stats(n_ant, amp_par, amp_cross, uv)
    stats.amp["YY"][(a1 == 17) | (a2 == 17)] *= 0.01  # antenna 17: Y polarisation dead
    r = detect_hot_baselines(stats)
    assert list(r.dead) == [17] and r.dead[17]["pols"] == ["YY"]
    assert 5 in r.antenna_rule and r.antenna_rule[5] > 0.25
    assert r.flag_uv[(a1 == 1) & (a2 == 2)].all() or uv[(a1 == 1) & (a2 == 2)][0] < 4
    short = uv < 4.0
    assert not (r.flag_uv | r.flag_cross)[short].any() and not r.considered[short].any()
    # the steep trend at both ends of the uv range must not produce false positives (edge hold)
    clean = ~((a1 == 5) | (a2 == 5) | (a1 == 17) | (a2 == 17) | ((a1 == 1) & (a2 == 2)))
    assert not r.flag_uv[clean].any()
    assert r.flag_cross[clean].mean() < 0.01
    # a lower antenna fraction catches a less affected antenna; off-switches work
    assert 5 not in detect_hot_baselines(stats, settings=HotBaselines(antenna_fraction=0.5)).antenna_rule
    assert not detect_hot_baselines(stats, crosspol_pass=False, uv_pass=False).flag_baseline.any()
    assert detect_hot_baselines(stats, settings=HotBaselines(dead_fraction=0.0)).dead == {}


def test_rolling_median_edges_follow_the_trend():
    x = np.linspace(0.0, 100.0, 1000)
    med, _ = rolling_median_sigma(x, 101)
    assert med[0] == pytest.approx(x[25])  # window cut at the end of the data, not padded with x[0]
    assert med[-1] == pytest.approx(x[-26])
    assert med[500] == pytest.approx(x[500])
    noisy = x + np.random.default_rng(1).standard_normal(x.size)
    _, sig = rolling_median_sigma(noisy, 101)
    assert 0.7 < np.median(sig) < 1.3
    assert sig[:5].min() > 0.5 and sig[-5:].min() > 0.5  # no near-zero sigma at the ends
    med, _ = rolling_median_sigma(np.array([1.0, 2.0, 30.0]), 101)  # fewer samples than the window
    assert np.all(med == 2.0)


def test_processes_give_the_serial_result_to_the_bit(hot_sim, tmp_path, monkeypatch):
    """baseline_stats and the flag counts cut the rows into blocks that do not depend on the process
    count: two processes give exactly the one-process numbers (and the flags)."""
    from lwa_flag import _ms
    from lwa_flag.hot import baseline_stats

    files, _ = hot_sim
    ms = concat_ms(files, tmp_path / "cat.ms")
    small = {"chunk_mb": 0.001, "block_mb": 0.002}  # 256-row chunks, 512-row blocks: ~18 blocks
    one, two = (baseline_stats(ms, processes=n, **small) for n in (1, 2))
    for key in ("ant1", "ant2", "uv_lambda", "n_good"):
        np.testing.assert_array_equal(getattr(one, key), getattr(two, key))
    for p in one.amp:
        np.testing.assert_array_equal(one.amp[p], two.amp[p])
        np.testing.assert_array_equal(one.amp_sq[p], two.amp_sq[p])
    whole = baseline_stats(ms, processes=1)  # one block: the sums in another order, to rounding
    np.testing.assert_allclose(whole.amp["XY"], one.amp["XY"], rtol=1e-12)
    flags = [detect_hot_baselines(s).baseline_is_flagged() for s in (whole, one, two)]
    assert flags[0].sum() > 10 and (flags[0] == flags[1]).all() and (flags[1] == flags[2]).all()
    with table(str(ms), readonly=False, ack=False) as t:  # some flags to count
        f = t.getcol("FLAG")
        f[::7, ::3] = True
        t.putcol("FLAG", f)
        expected = f.mean()
    monkeypatch.setattr(_ms, "FLAG_BLOCK_BYTES", 4096)  # ~200-row blocks
    assert _ms.flagged_fraction(ms, processes=2) == _ms.flagged_fraction(ms, processes=1) == pytest.approx(expected)
