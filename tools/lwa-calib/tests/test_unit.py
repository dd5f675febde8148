"""Fast tests: solution flagging on arrays, the DFT sky model against the simulator, table I/O."""

from __future__ import annotations

import numpy as np
import pytest
from casacore.tables import table

from lwa_calib.caltables import antenna_key, read_caltable
from lwa_calib.flagging import flag_solutions, interpolate_flagged, robust_z
from lwa_calib.skymodel import load_components, write_model_data
from lwa_common import LwaError


def _bandpass(n_ant=40, n_chan=16, seed=1):
    rng = np.random.default_rng(seed)
    x = np.linspace(-0.5, 0.5, n_chan)[None, :, None]
    amp = 1 + 0.1 * rng.normal(size=(n_ant, 1, 2)) + 0.05 * rng.normal(size=(n_ant, 1, 2)) * x
    phase = rng.normal(size=(n_ant, 1, 2)) + rng.normal(size=(n_ant, 1, 2)) * x
    return amp * np.exp(1j * phase), rng


def test_flagging_finds_bad_antenna_and_rfi_channel_and_interpolates():
    truth, rng = _bandpass()
    sol = truth * (1 + 1e-4 * rng.normal(size=truth.shape))
    sol[7] *= 4.0  # a hot antenna
    sol[:, 9, :] *= 1 + 0.3 * rng.normal(size=(40, 2))  # RFI channel
    sol[12, 3, 1] *= 1.5  # one bad solution
    result = flag_solutions(sol, np.zeros(sol.shape, bool))
    assert np.flatnonzero(result.antenna_flags.any(axis=1)).tolist() == [7]
    assert np.flatnonzero(result.channel_flags).tolist() == [9]
    assert result.outlier_flags[12, 3, 1]
    # only antenna 7 (32), channel 9 (80 - 2 already on antenna 7) and the one solution are flagged
    assert result.outlier_flags.sum() == 32 + 78 + 1
    live = np.ones(40, bool)
    live[7] = False
    assert not result.flags[live].any() and result.flags[7].all()
    # the bandpasses are linear in frequency: interpolation restores them
    err = np.abs(result.values[live] / truth[live] - 1)
    assert err.max() < 2e-3
    assert result.interpolated[live][:, 9].all()


def test_flagging_leaves_clean_solutions_alone():
    truth, rng = _bandpass(seed=3)
    sol = truth * (1 + 1e-3 * rng.normal(size=truth.shape))
    result = flag_solutions(sol, np.zeros(sol.shape, bool))
    assert result.outlier_flags.mean() < 0.01
    assert not result.antenna_flags.any()


def test_interpolation_keeps_fully_flagged_rows_flagged():
    values = np.ones((2, 5, 1), complex)
    flags = np.zeros(values.shape, bool)
    flags[0] = True
    flags[1, 2] = True
    values[1, 2] = 100
    out, new_flags, interp = interpolate_flagged(values, flags)
    assert new_flags[0].all() and not new_flags[1].any()
    assert out[1, 2, 0] == pytest.approx(1.0) and interp[1, 2, 0]


def test_robust_z_ignores_outliers():
    x = np.r_[np.random.default_rng(0).normal(0, 1, 200), 50.0]
    z = robust_z(x)
    assert z[-1] > 30 and np.abs(z[:-1]).max() < 5


def test_antenna_key():
    assert antenna_key("LWA-266") == antenna_key("LWA266") == antenna_key("lwa 266")


def test_model_matches_simulated_visibilities(sim_model, cal_sources, copy_ms, helpers):
    """The DFT model (beam-weighted) equals lwa-sim's gain-free, noiseless visibilities."""
    out, truth = sim_model
    ms = copy_ms(helpers.ms_files(out)[1])[0]
    apparent = write_model_data(ms, components=load_components(cal_sources))
    with table(str(ms), ack=False) as t:
        data, model = t.getcol("DATA"), t.getcol("MODEL_DATA")
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
    rel = np.abs(model[cross] - data[cross]).max() / np.abs(data[cross]).max()
    assert rel < 1e-3
    assert np.abs(data[cross][:, :, 1]).max() > 100  # the cross hands carry the V signal
    # apparent flux = intrinsic x beam (the beam near zenith is close to 1)
    sim_flux = truth["sources"][0]
    assert 0.9 * 5000 * (57.0 / 55.0) ** -0.7 < apparent["cal"] < 5000 * (57.0 / 55.0) ** -0.7
    assert sim_flux["name"] == "cal"


def test_bad_tables_are_named(tmp_path):
    with pytest.raises(LwaError, match="not found"):
        read_caltable(tmp_path / "missing.B")
    junk = tmp_path / "junk.B"
    junk.mkdir()
    (junk / "table.dat").write_bytes(b"this is not a casacore table")
    with pytest.raises(LwaError, match="junk.B"):
        read_caltable(junk)
