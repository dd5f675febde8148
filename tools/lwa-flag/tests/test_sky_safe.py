"""No flagger removes the sky (issues 15 and 22): RFI-free skies with bright sources and bursts lose
< 2 % to AOFlagger and nothing to the hot-baseline pass, while injected RFI is still flagged;
checked on two seeds at the demo's array size (64 antennas, 8 channels)."""

from __future__ import annotations

import numpy as np
import pytest
from casacore.tables import table

from lwa_flag import concat_ms, find_hot_baselines, run_aoflagger

pytestmark = pytest.mark.slow

N_INT = 24
SEEDS = (41, 42)


def _sky(seed: int, **extra) -> dict:
    """A bright field (a 300 Jy source, a circularly polarised 40 Jy one, 25 random 15-80 Jy)."""
    return {"sources": [{"name": "bright", "ra": "10h05m00s", "dec": "+52d00m00s", "flux_jy": 300},
                        {"name": "cp", "ra": "10h30m00s", "dec": "+40d00m00s", "flux_jy": 40, "v_frac": 0.5}],
            "random_sources": {"count": 25, "flux_jy": [15, 80], "min_elevation_deg": 20, "seed": seed},
            **extra}


# bursts the pipeline exists to find: a 60 Jy V burst over 6 integrations, a 500 Jy I burst and a
# 300 Jy V burst of one integration each (n_intervals = N_INT: one interval per integration)
BURSTS = {"n_intervals": N_INT, "transients": [
    {"name": "v-long", "ra": "10h15m00s", "dec": "+36d00m00s", "flux_jy": 60, "stokes": "V",
     "intervals": [8, 9, 10, 11, 12, 13]},
    {"name": "i-one", "ra": "09h50m00s", "dec": "+45d00m00s", "flux_jy": 500, "stokes": "I", "intervals": [3]},
    {"name": "v-one", "ra": "10h40m00s", "dec": "+30d00m00s", "flux_jy": 300, "stokes": "V", "intervals": [18]},
]}
# RFI at 170 x the noise of an 8-channel visibility; 24 integrations: AOFlagger's noise estimate needs
# the RFI to be a minority of each baseline's time-frequency plane (with 12 integrations this layout
# is 26 % RFI, and neither this strategy nor the one it replaced finds more than 60 % of it)
RFI = [{"channels": [1, 2], "integrations": [5, 6], "amplitude_jy": 300},   # narrow-band bursts
       {"channels": [4], "integrations": "all", "amplitude_jy": 300},       # a transmitter
       {"channels": "all", "integrations": [12], "amplitude_jy": 100},      # broadband, one integration
       {"channels": [6], "integrations": [18], "amplitude_jy": 30}]         # weak


def _concat(sim_cache, tmp_path_factory, name: str, spec: dict, seed: int):
    out, truth = sim_cache(f"{name}_{seed}", spec, n_int=N_INT, n_antennas=64, n_channels=8, seed=seed)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp(f"{name}{seed}") / "cat.ms")
    return ms, truth


def _flags(ms):
    with table(str(ms), ack=False) as t:
        flags, a1, a2, tm = t.getcol("FLAG"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")
    cross = a1 != a2
    k = np.searchsorted(np.unique(tm), tm)
    return flags.any(axis=2)[cross], k[cross]


def _rfi_mask(shape, k, bursts) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for b in bursts:
        rows = np.isin(k, b["integrations"]) if b["integrations"] is not None else np.ones(k.size, bool)
        chans = b["channels"] if b["channels"] is not None else np.arange(shape[1])
        mask[np.ix_(rows, chans)] = True
    return mask


@pytest.mark.parametrize("seed", SEEDS)
def test_bursts_survive_every_visibility_flagger(sim_cache, tmp_path_factory, seed):
    ms, _ = _concat(sim_cache, tmp_path_factory, "bursts", _sky(seed, **BURSTS), seed)
    run_aoflagger(ms, threads=1)
    flagged, k = _flags(ms)
    per_int = [flagged[k == i].mean() for i in range(N_INT)]
    assert flagged.mean() < 0.02, f"AOFlagger flagged {flagged.mean():.2%} of an RFI-free sky"
    assert max(per_int) < 0.02, f"flagged per integration: {np.round(per_int, 3).tolist()}"
    hot = find_hot_baselines(ms, column="DATA")
    assert not hot.flag_baseline.any() and not hot.flagged_antennas, hot.summary()["baselines"]


@pytest.mark.parametrize("seed", SEEDS)
def test_rfi_flagged_clean_kept(sim_cache, tmp_path_factory, seed):
    ms, truth = _concat(sim_cache, tmp_path_factory, "rfi", _sky(seed, rfi=RFI), seed)
    run_aoflagger(ms, threads=1)
    flagged, k = _flags(ms)
    rfi = _rfi_mask(flagged.shape, k, truth["rfi"]["bursts"])
    assert flagged[rfi].mean() >= 0.95, f"RFI recall {flagged[rfi].mean():.1%}"
    # clean samples of the integrations that RFI does not touch, and of all integrations
    untouched = ~np.isin(k, [5, 6, 12, 18])
    assert flagged[untouched[:, None] & ~rfi].mean() < 0.005
    # the collateral of 2 % of clean samples (< 6 % allowed here) was AOFlagger 3.1's masked
    # SumThreshold carrying a flagged burst along its channel; with plain SumThreshold it is 0.00 %
    assert flagged[~rfi].mean() < 0.005, f"{flagged[~rfi].mean():.2%} of clean samples flagged"


def _frames(tmp_path, burst: dict[int, float], noisy: dict[int, float], steady: float = 0.0):
    """Synthetic V snapshots: noise, plus in `burst` frames a compact source of that peak (in units
    of the noise) with dirty-beam-like ripples at 3 % of it, in `noisy` frames more noise, and in
    every frame a steady compact source of peak `steady` elsewhere."""
    from astropy.io import fits
    from astropy.time import Time

    from lwa_common.testing import allsky_header
    from lwa_flag.integrations import read_frames

    rng = np.random.default_rng(5)
    paths = []
    yy, xx = np.mgrid[:128, :128]
    r = np.hypot(xx - 70, yy - 50)
    for k in range(30):
        mid = Time(60664.5 + k * 10.031 / 86400, format="mjd")
        header = allsky_header(size=128, scale_deg=1.5, date_obs=mid.isot,
                               keywords={"STOKES": "V", "IMGCAT": "snapshot", "MJD-MID": mid.mjd})
        data = rng.standard_normal((128, 128)) * noisy.get(k, 1.0)
        peak = burst.get(k, 0.0)
        data += peak * (np.exp(-0.5 * (r / 1.5) ** 2) + 0.03 * np.cos(2 * np.pi * r / 9.0) * np.exp(-r / 150))
        data += steady * np.exp(-0.5 * (np.hypot(xx - 30, yy - 90) / 1.5) ** 2)
        path = tmp_path / f"snap-{k:04d}-V-image.fits"
        fits.writeto(path, data.astype(np.float32), header)
        paths.append(path)
    return read_frames(paths)


def test_integration_qa_keeps_bursts_flags_damage(tmp_path):
    from lwa_flag import find_bad_integrations

    # a 1-integration burst, a 4-integration burst (then quiet frames after it), a noisy frame
    frames = _frames(tmp_path, burst={3: 300.0, 8: 100.0, 9: 100.0, 10: 100.0, 11: 100.0}, noisy={6: 3.0})
    result = find_bad_integrations(frames)
    assert [frames.index(f) for f in result.bad_frames] == [6]
    kept = [frames.index(f) for f in frames if f.transient]
    assert 3 in kept, [(f.rms, f.score) for f in frames]
    assert "compact source" in frames[3].transient and not frames[12].bad


def test_integration_qa_judges_a_frame_against_its_neighbours_images(tmp_path):
    """A steady source in every frame is in the neighbours' median image too: the noisy frame's
    difference is noise-like, so it is flagged, not kept as a compact source."""
    from lwa_flag import find_bad_integrations

    frames = _frames(tmp_path, burst={}, noisy={6: 3.0}, steady=200.0)
    result = find_bad_integrations(frames)
    assert [frames.index(f) for f in result.bad_frames] == [6], [(f.rms, f.transient) for f in frames]
    assert not frames[6].transient


# hot baselines on a 64-antenna array (indices < 64), none touching the dead antenna
HOT = [[2, 50], [4, 61], [13, 37], [20, 33], [25, 40], [30, 44]]
DEAD = 11


@pytest.mark.parametrize("seed", SEEDS)
def test_ateam_sky_hot_baselines(sim_cache, tmp_path_factory, seed):
    """Unpeeled Cyg A and Cas A: the hot-baseline pass flags exactly the injected hot baselines
    (30 Jy, a few times the noise) and the dead antenna, no A-team fringe; AOFlagger nothing."""
    from lwa_common.testing import shared_data_dir

    spec = _sky(seed, ateam=str(shared_data_dir() / "sky" / "ateam_sources.json"),
                hot_baselines={"pairs": HOT, "amplitude_jy": 30.0}, dead_antennas=[DEAD])
    out, _ = sim_cache(f"ateam_{seed}", spec, n_int=12, n_antennas=64, n_channels=8, seed=seed)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp(f"ateam{seed}") / "cat.ms")
    hot = find_hot_baselines(ms, column="DATA")
    assert sorted(hot.flagged_pairs()) == sorted(tuple(p) for p in HOT)
    assert hot.flagged_antennas == [DEAD]
    run_aoflagger(ms, threads=1)
    flagged, _ = _flags(ms)
    with table(str(ms), ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    live = ((a1 != DEAD) & (a2 != DEAD))[a1 != a2]
    assert flagged[live].mean() < 0.02, f"AOFlagger flagged {flagged[live].mean():.2%} of the A-team sky"


# hot baselines of different strengths (the last number: Jy), at 10-30 x the 1.8 Jy noise of one visibility
WEAK_HOT = [[2, 50, 20.0], [4, 61, 20.0], [13, 37, 30.0], [20, 33, 30.0], [25, 40, 50.0], [30, 44, 50.0]]


@pytest.mark.parametrize("seed", SEEDS)
def test_weak_hot_baselines_under_polarised_sky_and_bursts(sim_cache, tmp_path_factory, seed):
    """20-50 Jy hot baselines among V sources and bright V and I bursts, which fill the cross hands
    with tens of Jy of fringing sky: the sky-free Q/U residual finds them, and nothing else."""
    spec = _sky(seed, hot_baselines={"pairs": WEAK_HOT}, **BURSTS)
    out, _ = sim_cache(f"weakhot_{seed}", spec, n_int=N_INT, n_antennas=64, n_channels=8, seed=seed)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp(f"weakhot{seed}") / "cat.ms")
    hot = find_hot_baselines(ms, column="DATA")
    found = set(hot.flagged_pairs())
    assert found <= {(a, b) for a, b, _ in WEAK_HOT}, hot.summary()["baselines"]  # nothing clean
    assert {(a, b) for a, b, jy in WEAK_HOT if jy >= 30} <= found
    # a 20 Jy one is missed when its phases happen to make XX ~ YY and XY ~ -YX (its Q/U residual
    # then falls below ~8 Jy, 7 x the spread of one sample): about 1 in 20; here 1 of the 4
    assert len(found & {(a, b) for a, b, jy in WEAK_HOT if jy < 30}) >= 1
    assert not hot.flagged_antennas
    injected = np.isin(hot.stats.ant1 * 64 + hot.stats.ant2, [a * 64 + b for a, b, _ in WEAK_HOT])
    assert np.nanmax(hot.score_qu[~injected]) < 3.0  # clean baselines: far below the threshold of 7
