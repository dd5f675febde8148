"""The array-spectrum pass of `lwa-flag rfi` (lwa_flag.spectrum): unpolarised narrow-band RFI that
AOFlagger's per-baseline view cannot tell from the sky's spectral beats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from casacore.tables import table

from lwa_common.config import Rfi
from lwa_common.testing import run_cli
from lwa_flag import concat_ms
from lwa_flag.spectrum import _mad_std, array_spectrum, flag_spectral_rfi, spectral_outliers


def _spectra(n_time: int = 30, n_chan: int = 8, seed: int = 3) -> np.ndarray:
    """Median spectra of a smooth sky: a -0.8 spectral index over the band, 2 % scatter."""
    rng = np.random.default_rng(seed)
    nu = np.linspace(55.0, 59.0, n_chan)
    return 250.0 * (nu / 57.0) ** -0.8 * (1 + 0.02 * rng.standard_normal((n_time, n_chan)))


@pytest.mark.parametrize("n_chan", [8, 48, 192])
def test_smooth_spectra_keep_every_cell_and_a_jump_is_found(n_chan):
    m = _spectra(n_chan=n_chan)
    cells, info = spectral_outliers(m)
    assert not cells.any() and info["max_excess"] < info["threshold"]
    # a broadband burst lifts a whole integration: the spectrum keeps its shape, nothing is flagged
    m[7] *= 2.0
    assert not spectral_outliers(m)[0].any()
    # an emitter in two channels of every integration, a burst in one channel of one integration
    m[:, [1, n_chan // 2]] += 300.0
    m[12, n_chan - 2] *= 3.0
    cells, _ = spectral_outliers(m)
    want = np.zeros(m.shape, bool)
    want[:, [1, n_chan // 2]] = True
    want[12, n_chan - 2] = True
    assert np.array_equal(cells, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 7, 96, 1000])
def test_mad_std_is_astropys_to_the_bit(size, dtype):
    """The pass's robust scatter is astropy's mad_std without importing astropy (0.15-0.2 s at start)."""
    from astropy.stats import mad_std

    r = (np.random.default_rng(size).standard_t(3, size) * 0.02).astype(dtype)
    ours, theirs = _mad_std(r.copy()), mad_std(r.copy())
    assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes()


def test_pass_off_or_too_few_channels():
    m = _spectra()
    m[:, 2] *= 5.0
    assert not spectral_outliers(m, Rfi(spectrum_sigma=0.0))[0].any()
    assert not spectral_outliers(m[:, :2])[0].any()
    # the relative floor: a flat, noiseless spectrum with a 5 % step is sky-like, not RFI
    flat = np.full((10, 8), 100.0)
    flat[:, 3] = 105.0
    assert not spectral_outliers(flat)[0].any()


@pytest.mark.slow
def test_emitter_flagged_sky_kept(sim_cache, tmp_path_factory, tmp_path, digest):
    """An unpolarised emitter on the horizon in two of eight channels (in XX and YY alike: nothing
    in Q or U) on a bright sky with a 500 Jy Stokes I burst: `lwa-flag rfi` flags the emitter's
    cells and no clean visibility; the same sky without the emitter loses nothing."""
    sky = {"sources": [{"name": "bright", "ra": "10h05m00s", "dec": "+52d00m00s", "flux_jy": 300}],
           "random_sources": {"count": 25, "flux_jy": [15, 80], "min_elevation_deg": 20, "seed": 7},
           "n_intervals": 12,
           "transients": [{"name": "i-one", "ra": "09h50m00s", "dec": "+45d00m00s", "flux_jy": 500,
                           "stokes": "I", "intervals": [4]}]}
    emitter = {"az_deg": 200, "el_deg": 2, "flux_jy": 1000, "channels": [1, 5]}
    for name, spec in (("emitter", {**sky, "rfi": [emitter]}), ("clean", sky)):
        out, _ = sim_cache(f"spectrum_{name}", spec, n_int=12, n_antennas=64, n_channels=8, seed=5)
        ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp(f"spec{name}") / "cat.ms")
        before = digest(ms)
        res = run_cli(["lwa-flag", "rfi", str(ms), "-o", str(tmp_path / f"{name}.ms"), "--threads", "1", "--json"])
        assert res.returncode == 0, res.stderr
        assert digest(ms) == before
        passed = json.loads(res.stdout)["flagged"]["array_spectrum"]
        with table(str(tmp_path / f"{name}.ms"), ack=False) as t:
            flags, a1, a2 = t.getcol("FLAG"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        f = flags.any(axis=2)[a1 != a2]
        if name == "emitter":
            assert f[:, [1, 5]].mean() >= 0.95, f"emitter flagged {f[:, [1, 5]].mean():.1%}"
            assert f[:, [0, 2, 3, 4, 6, 7]].mean() < 0.005
            assert {c for cell in passed["cells"] for c in cell["channels"]} == {1, 5}
        else:
            assert f.mean() < 0.005, f"{f.mean():.2%} of a clean sky flagged"
            assert passed["cells"] == [] and passed["flags_set"] == 0
    times, m = array_spectrum(tmp_path / "clean.ms", "DATA")
    assert m.shape == (12, 8) and np.all(np.diff(times) > 0)


@pytest.mark.slow
def test_flagged_samples_left_out_and_pass_rerun_safe(sim_cache, tmp_path_factory):
    out, _ = sim_cache("spectrum_small", {"random_sources": {"count": 10, "flux_jy": [20, 100], "seed": 2},
                                          "rfi": [{"az_deg": 90, "el_deg": 3, "flux_jy": 2000, "channels": [2]}]},
                       n_int=4, n_antennas=24, n_channels=8)
    ms = concat_ms(sorted(out.glob("*.ms")), tmp_path_factory.mktemp("specsmall") / "cat.ms")
    first = flag_spectral_rfi(ms, "DATA")
    assert [c["channels"] for c in first["cells"]] == [[2]] * 4 and first["flags_set"] > 0
    # the flagged channel is left out of the medians: a second run finds nothing new
    again = flag_spectral_rfi(ms, "DATA")
    assert again["cells"] == [] and again["flags_set"] == 0
