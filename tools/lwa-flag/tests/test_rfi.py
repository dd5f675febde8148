"""AOFlagger (real aoflagger 3.1) with the shipped OVRO-LWA strategy on simulated RFI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from lwa_common.testing import run_cli
from lwa_flag import concat_ms, default_strategy, run_aoflagger
from lwa_flag.rfi import flag_profile

pytestmark = pytest.mark.slow

SKY = {"random_sources": {"count": 20, "flux_jy": [5, 50], "seed": 1}}


def _truth_mask(flags_shape, times, bursts) -> np.ndarray:
    """(row, channel) mask of the injected bursts; integrations count from 0 in time order."""
    unique = np.unique(times)
    k = np.searchsorted(unique, times)
    mask = np.zeros(flags_shape[:2], bool)
    for b in bursts:
        rows = np.isin(k, b["integrations"]) if b["integrations"] is not None else np.ones(len(k), bool)
        chans = b["channels"] if b["channels"] is not None else np.arange(flags_shape[1])
        mask[np.ix_(rows, chans)] = True
    return mask


@pytest.fixture(scope="module")
def rfi_cat(sim_cache, tmp_path_factory):
    """Twelve integrations concatenated (time-direction detection needs >= 10 time steps): a
    2-channel burst in two integrations, a transmitter in one channel all the time, a weak
    broadband burst."""
    spec = {**SKY, "rfi": [
        {"channels": [5, 6], "integrations": [2, 3], "amplitude_jy": 300},
        {"channels": [20], "integrations": "all", "amplitude_jy": 300},
        {"channels": "all", "integrations": [4], "amplitude_jy": 100},
    ]}
    out, truth = sim_cache("flag_rfi", spec, n_int=12, n_antennas=24, n_channels=32)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp("rficat") / "cat.ms")
    return ms, truth["rfi"]["bursts"]


def test_cli_aoflagger_flags_injected_rfi(rfi_cat, tmp_path, digest, flags_of):
    ms, bursts = rfi_cat
    before = digest(ms)
    out = tmp_path / "flagged.ms"
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(out), "-v", "--json"])
    assert res.returncode == 0, res.stderr
    assert digest(ms) == before
    # the exact aoflagger command is logged and kept in the summary
    summary = json.loads(res.stdout)
    command = summary["flagged"]["aoflagger"]["command"]
    assert command.startswith("aoflagger ") and f"-strategy {default_strategy()}" in command
    assert command.endswith(str(out)) and "-column DATA" in command
    assert f"running: {command}" in res.stderr
    flags, a1, a2, times = flags_of(out)
    cross = a1 != a2
    f = flags.any(axis=2)[cross]
    truth = _truth_mask(flags.shape, times, bursts)[cross]
    narrow = _truth_mask(flags.shape, times, bursts[:2])[cross]
    broad = _truth_mask(flags.shape, times, bursts[2:])[cross]
    assert f[narrow].mean() >= 0.95, f"narrow-band RFI flagged {f[narrow].mean():.1%}"
    assert f[broad & ~narrow].mean() >= 0.85, f"broadband burst flagged {f[broad & ~narrow].mean():.1%}"
    assert f[~truth].mean() < 0.02, f"{f[~truth].mean():.2%} of clean samples flagged"
    assert summary["flagged_percent_after"] > summary["flagged_percent_before"] == 0.0
    per_chan = summary["flagged"]["per_channel_percent"]
    assert len(per_chan) == 32 and per_chan[20] > 95.0
    disk = json.loads((tmp_path / "flagged.flag-rfi.json").read_text())
    assert disk["flagged"]["aoflagger"]["command"] == command


def test_strong_short_burst_flags_its_integration_not_its_channel(sim_cache, tmp_path, flags_of):
    """A strong narrow-band burst lasting one integration, at the band edge and inside the band.

    AOFlagger 3.1's masked SumThreshold, run on data whose mask already holds such a burst (flagged
    by the Q pass before the U pass, or by an earlier run), flagged the burst's channels at every
    later time: 25 % of an RFI-free 8-channel hour (a sky written after the suite). The strategy
    now detects with plain SumThreshold (flags kept out of the noise level only), and a rerun on the
    flagged output adds nothing."""
    spec = {**SKY, "rfi": [{"channels": [0, 1], "integrations": [3], "amplitude_jy": 3000},
                           {"channels": [9], "integrations": [7], "amplitude_jy": 3000}]}
    out, truth = sim_cache("flag_rfi_strong", spec, n_int=12, n_antennas=24, n_channels=16)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path / "cat.ms")
    bursts = truth["rfi"]["bursts"]
    res = run_cli(["lwa-flag", "rfi", str(ms), "--in-place"])
    assert res.returncode == 0, res.stderr
    flags, a1, a2, times = flags_of(ms)
    cross = a1 != a2
    f = flags.any(axis=2)[cross]
    burst = _truth_mask(flags.shape, times, bursts)[cross]
    assert f[burst].mean() >= 0.95, f"strong bursts flagged {f[burst].mean():.1%}"
    for chan in (0, 1, 9):
        clean = ~burst[:, chan]
        assert f[clean, chan].mean() < 0.1, f"channel {chan}: {f[clean, chan].mean():.1%} of its clean times flagged"
    first = flags.copy()
    res = run_cli(["lwa-flag", "rfi", str(ms), "--in-place", "--overwrite"])
    assert res.returncode == 0, res.stderr
    again, *_ = flags_of(ms)
    assert again.sum() - first.sum() <= 0.001 * first.size, "a rerun on flagged data flagged more"


def test_single_integration_frequency_direction(sim_cache, tmp_path, flags_of):
    """One 10 s integration: AOFlagger can only look along frequency; narrow-band RFI is found."""
    spec = {**SKY, "rfi": [{"channels": [10, 11], "integrations": [0], "amplitude_jy": 300},
                           {"channels": [40], "integrations": [0], "amplitude_jy": 300}]}
    out, truth = sim_cache("flag_rfi1", spec, n_int=1, n_antennas=24, n_channels=64)
    ms = tmp_path / "one.ms"
    shutil.copytree(next(out.glob("*.ms")), ms)
    run = run_aoflagger(ms, threads=1)
    assert run["column"] == "DATA"
    flags, a1, a2, times = flags_of(ms)
    cross = a1 != a2
    f = flags.any(axis=2)[cross]
    truth_mask = _truth_mask(flags.shape, times, truth["rfi"]["bursts"])[cross]
    assert f[truth_mask].mean() >= 0.95, f"single-integration RFI flagged {f[truth_mask].mean():.1%}"
    assert f[~truth_mask].mean() < 0.01


def test_user_strategy_preamble_and_broken_strategy(rfi_cat, tmp_path, digest):
    ms, _ = rfi_cat
    before = digest(ms)
    generic = Path("/usr/share/aoflagger/strategies/generic-default.lua")
    strategy = generic if generic.exists() else default_strategy()
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / "user.ms"), "--strategy", str(strategy),
                   "--threads", "1", "--json"])
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["flagged"]["aoflagger"]
    assert run["strategy"] == str(strategy) and "-j 1" in run["command"]
    # a preamble reaches the shipped strategy: a huge base threshold flags (almost) nothing, and
    # only the array-spectrum pass after it finds the transmitter (channel 20, every integration)
    lax = ["--preamble", "lwa_base_threshold = 1000", "--preamble", "lwa_sky_threshold = 1000",
           "--preamble", "lwa_timestep_sigma = 1000"]
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / "lax.ms"), "--json", *lax])
    assert res.returncode == 0, res.stderr
    cells = json.loads(res.stdout)["flagged"]["array_spectrum"]["cells"]
    assert len(cells) == 12 and all(20 in c["channels"] for c in cells)
    off = tmp_path / "off.toml"
    off.write_text("[rfi]\nspectrum_sigma = 0\n")
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / "lax0.ms"), "--json", "--config", str(off), *lax])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["flagged_percent_after"] < 1.0 and summary["flagged"]["array_spectrum"]["skipped"]
    # a strategy that fails inside aoflagger: one line naming the Lua error, no output left behind
    bad = tmp_path / "bad.lua"
    bad.write_text("function execute(input)\n  aoflagger.no_such_function(input)\nend\n")
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / "bad.ms"), "--strategy", str(bad)])
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1 and "bad.lua:2" in res.stderr
    assert not (tmp_path / "bad.ms").exists()
    notlua = tmp_path / "notes.lua"
    notlua.write_text("just text\n")
    res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / "x.ms"), "--strategy", str(notlua)])
    assert res.returncode == 1 and "not an AOFlagger Lua strategy" in res.stderr
    assert digest(ms) == before


def test_slurm_job_reads_an_ms_too_big_for_its_memory_indirectly(tmp_path):
    """In a Slurm job AOFlagger would size its read mode on the whole node: reordered reading instead."""
    from lwa_flag.rfi import slurm_read_mode

    ms = tmp_path / "big.ms"
    ms.mkdir()
    (ms / "table.f1").write_bytes(b"\0" * 3 * 1024**2)  # 3 MB
    assert slurm_read_mode(ms, {}) == []  # outside Slurm: AOFlagger's own choice
    assert slurm_read_mode(ms, {"SLURM_MEM_PER_NODE": "5"}) == ["-indirect-read"]  # 2 x 3 MB > 5 MB
    assert slurm_read_mode(ms, {"SLURM_MEM_PER_NODE": "7"}) == []


def test_flag_profile_matches_its_definition(rfi_cat, tmp_path):
    """flag_profile (pol planes OR-ed, per-row byte counts) against its definition written plainly:
    per channel the share of cross-correlation rows with any polarisation flagged, per time the mean
    flagged fraction of the rows; random flags, a few whole rows by FLAG_ROW, autocorrelations left out."""
    ms = tmp_path / "random_flags.ms"
    shutil.copytree(rfi_cat[0], ms)
    rng = np.random.default_rng(11)
    with table(str(ms), readonly=False, ack=False) as t:
        flags = rng.random(t.getcol("FLAG").shape) < 0.05
        flags[:, 7] = (rng.random(len(flags)) < 0.5)[:, None]  # one channel flagged in half the rows
        flag_row = rng.random(t.nrows()) < 0.01
        t.putcol("FLAG", flags)
        t.putcol("FLAG_ROW", flag_row)
        a1, a2, times = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")
    flags = flags | flag_row[:, None, None]
    cross = a1 != a2
    f, tm = flags[cross], times[cross]
    per_chan = f.any(axis=2).sum(axis=0)
    row_frac = f.mean(axis=(1, 2))
    per_time = [[tv, row_frac[tm == tv].sum() / (tm == tv).sum()] for tv in np.unique(tm)]
    got = flag_profile(ms)
    assert got["per_channel_percent"] == [round(100.0 * c / cross.sum(), 3) for c in per_chan]
    assert got["per_time_percent"] == [[round(tv, 3), round(100.0 * fr, 3)] for tv, fr in per_time]
    # 5 % per product: 1 - 0.95^4 of the rows have a channel flagged, 1 % more by FLAG_ROW
    assert 40 < got["per_channel_percent"][7] < 60 and 15 < got["per_channel_percent"][0] < 25
