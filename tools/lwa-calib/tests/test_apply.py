"""`lwa-calib apply`: the true tables of a simulation give back its model visibilities (real CASA)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from casacore.tables import table

import lwa_calib.apply as apply_mod
from lwa_calib import apply_tables, read_caltable, read_true_gains
from lwa_calib.caltables import update_caltable
from lwa_common import LwaError
from lwa_common.testing import run_cli


@pytest.fixture(scope="module")
def true_tables(sim_gains, tmp_path_factory, helpers):
    """B + Xf tables holding the simulation's true 55 MHz gains (XY phase moved into the Xf table)."""
    out, _ = sim_gains
    gains, freqs, names = read_true_gains(out / "true_gains_55MHz.h5")
    folder = tmp_path_factory.mktemp("true_tables")
    res = run_cli(["lwa-calib", "tables-from-gains", str(out / "true_gains_55MHz.h5"),
                   "--template", str(helpers.ms_files(out)[0]), "-o", str(folder),
                   "--xy-phase-deg", str(helpers.GAINS["xy_phase_deg"])])
    assert res.returncode == 0, res.stderr
    bp, xy = (folder / "bandpass.B", folder / "xyphase.Xf")
    assert res.stdout.split() == [str(bp), str(xy)]
    return bp, xy, gains, freqs


def _cross(ms, column):
    with table(str(ms), ack=False) as t:
        cross = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        return t.getcol(column)[cross]


@pytest.mark.slow
def test_true_tables_hold_the_gains(true_tables, helpers):
    bp, xy, gains, freqs = true_tables
    b = read_caltable(bp, expect="B")
    x = read_caltable(xy, expect="Xf")
    assert b.values.shape == (32, 8, 2) and x.values.shape == (32, 8, 1)
    np.testing.assert_allclose(b.freqs_hz, freqs)
    effective = b.values.copy()
    effective[:, :, 1] *= np.conj(x.values[:, :, 0])  # CASA: Y gain = B_Y * conj(Xf)
    np.testing.assert_allclose(effective, np.transpose(gains, (0, 2, 1)), rtol=1e-6)
    assert np.degrees(np.angle(x.values[0, 0, 0])) == pytest.approx(-helpers.GAINS["xy_phase_deg"], abs=1e-4)


@pytest.mark.slow
def test_apply_true_tables_returns_model(sim_gains, sim_model, true_tables, tmp_path, helpers):
    out, _ = sim_gains
    model_out, _ = sim_model
    bp, xy, _, _ = true_tables
    inputs = helpers.ms_files(out)
    other_subband = helpers.ms_files(out, "41MHz")[0]
    corrupt = tmp_path / "20241220_120000_46MHz.ms"
    corrupt.mkdir()
    (corrupt / "table.dat").write_bytes(b"garbage")
    digests = {p: helpers.tree_digest(p) for p in [*inputs, other_subband]}
    result = run_cli(["lwa-calib", "apply", *map(str, inputs), str(other_subband), str(corrupt),
                      "--bp-table", str(bp), "--xy-table", str(xy), "-o", str(tmp_path / "cal")])
    assert result.returncode == 0, result.stderr
    written = [tmp_path / "cal" / p.name for p in inputs]
    assert result.stdout.split() == [str(p) for p in written]
    for ms, model_ms in zip(written, helpers.ms_files(model_out)):
        corrected, model = _cross(ms, "CORRECTED_DATA"), _cross(model_ms, "DATA")
        assert np.abs(corrected - model).max() / np.abs(model).max() < 1e-3
        # the raw data really were corrupted
        assert np.abs(_cross(ms, "DATA") - model).max() / np.abs(model).max() > 0.1
    failed = (tmp_path / "cal" / "failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == [str(other_subband), str(corrupt)]
    assert "41" in failed[0] and "not in" in failed[0]
    assert not (tmp_path / "cal" / other_subband.name).exists()
    assert all(helpers.tree_digest(p) == d for p, d in digests.items())  # inputs untouched
    # rerun without --overwrite refuses; with it, succeeds
    again = run_cli(["lwa-calib", "apply", str(inputs[0]), "--bp-table", str(bp), "--xy-table", str(xy),
                     "-o", str(tmp_path / "cal")])
    assert again.returncode == 1 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_apply_in_place_core_function(sim_gains, sim_model, true_tables, copy_ms, helpers):
    out, _ = sim_gains
    model_out, _ = sim_model
    bp, xy, _, _ = true_tables
    ms = copy_ms(helpers.ms_files(out)[1])[0]
    result = apply_tables([ms], bp_table=bp, xy_table=xy, in_place=True)
    assert result.succeeded == [ms] and not result.failed
    assert result.failed_list == ms.parent / "failed.txt" and result.failed_list.read_text() == ""
    model = _cross(helpers.ms_files(model_out)[1], "DATA")
    assert np.abs(_cross(ms, "CORRECTED_DATA") - model).max() / np.abs(model).max() < 1e-3


@pytest.mark.slow
def test_apply_bandpass_only_leaves_xy_phase(sim_gains, sim_model, true_tables, tmp_path, helpers):
    """Without the Xf table the cross hands keep the XY phase: the Xf table really acts."""
    out, _ = sim_gains
    model_out, _ = sim_model
    bp, _, _, _ = true_tables
    res = apply_tables([helpers.ms_files(out)[0]], bp_table=bp, xy_table=None, outdir=tmp_path / "bp_only")
    corrected = _cross(res.succeeded[0], "CORRECTED_DATA")
    model = _cross(helpers.ms_files(model_out)[0], "DATA")
    parallel = [0, 3]
    assert np.abs(corrected[..., parallel] - model[..., parallel]).max() / np.abs(model).max() < 1e-3
    ratio = corrected[..., 1] / model[..., 1]  # XY = g_X g_Y^* (U + iV): off by minus the XY phase
    assert np.degrees(np.angle(np.median(ratio.real) + 1j * np.median(ratio.imag))) == pytest.approx(
        -helpers.GAINS["xy_phase_deg"], abs=0.1)


@pytest.mark.slow
def test_apply_must_fail(sim_gains, true_tables, tmp_path, helpers):
    out, _ = sim_gains
    bp, xy, _, _ = true_tables
    ms = helpers.ms_files(out)[0]
    digest = helpers.tree_digest(ms)
    corrupt = tmp_path / "corrupt.B"
    corrupt.mkdir()
    (corrupt / "table.dat").write_bytes(b"\x00garbage")
    # the command line: one stderr line, exit 1, nothing on stdout
    for args, message in [
        ([str(ms), "--bp-table", str(tmp_path / "missing.B"), "--xy-table", str(xy)], "not found"),
        ([str(ms), "--bp-table", str(corrupt), "--xy-table", str(xy)], "corrupt.B"),
        ([str(tmp_path / "absent.ms"), str(tmp_path / "nothere.ms"), "--bp-table", str(bp), "--xy-table", str(xy)],
         "all 2 MS failed"),
    ]:
        res = run_cli(["lwa-calib", "apply", *args, "-o", str(tmp_path / "out")])
        assert res.returncode == 1, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith("lwa-calib: error:"), lines
        assert res.stdout == ""
    # usage error: neither -o nor --in-place
    assert run_cli(["lwa-calib", "apply", str(ms), "--bp-table", str(bp)]).returncode == 2
    # the core function: tables of the wrong kind, every MS failing
    with pytest.raises(LwaError, match="expected B Jones"):
        apply_tables([ms], bp_table=xy, xy_table=xy, outdir=tmp_path / "o1")
    with pytest.raises(LwaError, match="expected Xf Jones"):
        apply_tables([ms], bp_table=bp, xy_table=bp, outdir=tmp_path / "o2")
    with pytest.raises(LwaError, match="either an output folder"):
        apply_tables([ms], bp_table=bp, xy_table=xy, outdir=tmp_path / "o3", in_place=True)
    res = apply_tables([tmp_path / "nothere.ms"], bp_table=bp, xy_table=xy, outdir=tmp_path / "o4")
    assert res.succeeded == [] and "not found" in res.failed[0][1]
    assert "nothere.ms" in (tmp_path / "o4" / "failed.txt").read_text()
    assert not (tmp_path / "out").exists()  # a failed run removes the output folder it created (issue 16)
    assert not any((tmp_path / "out").glob("*.ms"))
    assert helpers.tree_digest(ms) == digest


# ---- tables as the observatory makes them: several windows, finer channels -------------------------


@pytest.fixture(scope="module")
def window_tables(sim_gains, true_tables, tmp_path_factory, helpers):
    """Own-window B + Xf tables of 55 and 41 MHz, and one B and one Xf table holding both (55 first)."""
    from lwa_calib.caltables import merge_caltables

    out, _ = sim_gains
    folder = tmp_path_factory.mktemp("windows")
    res = run_cli(["lwa-calib", "tables-from-gains", str(out / "true_gains_41MHz.h5"),
                   "--template", str(helpers.ms_files(out, "41MHz")[0]), "-o", str(folder / "41MHz"),
                   "--xy-phase-deg", str(helpers.GAINS["xy_phase_deg"])])
    assert res.returncode == 0, res.stderr
    own = {"55MHz": true_tables[:2], "41MHz": (folder / "41MHz" / "bandpass.B", folder / "41MHz" / "xyphase.Xf")}
    both = (merge_caltables(folder / "both.B", [own["55MHz"][0], own["41MHz"][0]]),
            merge_caltables(folder / "both.Xf", [own["55MHz"][1], own["41MHz"][1]]))
    return own, both


@pytest.mark.slow
def test_multi_window_table_gives_its_own_windows_result(sim_gains, sim_model, window_tables, tmp_path, helpers):
    from lwa_calib.caltables import table_windows

    out, _ = sim_gains
    own, both = window_tables
    assert [w.spw for w in table_windows(both[0])] == [0, 1]
    for sb in ("55MHz", "41MHz"):
        ms = helpers.ms_files(out, sb)[0]
        merged = apply_tables([ms], bp_table=both[0], xy_table=both[1], outdir=tmp_path / f"both-{sb}")
        single = apply_tables([ms], bp_table=own[sb][0], xy_table=own[sb][1], outdir=tmp_path / f"own-{sb}")
        assert not merged.failed and not single.failed, (merged.failed, single.failed)
        a, b = _cross(merged.succeeded[0], "CORRECTED_DATA"), _cross(single.succeeded[0], "CORRECTED_DATA")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
        assert np.abs(_cross(ms, "DATA") - b).max() / np.abs(b).max() > 0.1  # the tables really acted
    model = _cross(helpers.ms_files(sim_model[0])[0], "DATA")
    corrected = _cross(tmp_path / "both-55MHz" / helpers.ms_files(out)[0].name, "CORRECTED_DATA")
    assert np.abs(corrected - model).max() / np.abs(model).max() < 1e-3


@pytest.mark.slow
def test_table_without_the_ms_window_is_refused(sim_gains, window_tables, tmp_path, helpers):
    out, _ = sim_gains
    own, _ = window_tables
    ms = helpers.ms_files(out, "41MHz")[0]
    res = run_cli(["lwa-calib", "apply", str(ms), "--bp-table", str(own["55MHz"][0]), "-o", str(tmp_path / "o")])
    assert res.returncode == 1 and "not in any window" in res.stderr and "spw 0" in res.stderr, res.stderr
    assert not (tmp_path / "o" / ms.name).exists()


def _average_channels(ms, out, factor):
    from lwa_peel.dp3 import run_dp3, write_parset

    parset = write_parset(out.parent / f"{out.name}.parset", {
        "msin": str(ms), "msout": str(out), "msout.overwrite": True, "steps": ["avg"],
        "avg.type": "averager", "avg.freqstep": factor})
    run_dp3(parset)
    return out


@pytest.mark.slow
def test_averaged_ms_gets_the_mean_of_finer_solutions(sim_gains, sim_model, true_tables, tmp_path, helpers):
    """An MS averaged 4 channels to 1 (as the archive's 48 of 192) against the full-resolution tables."""
    from lwa_calib.caltables import write_caltable

    out, _ = sim_gains
    bp, xy, gains, _ = true_tables
    name = helpers.ms_files(out)[0].name.replace(".ms", "_averaged.ms")
    data_avg = _average_channels(helpers.ms_files(out)[0], tmp_path / name, 4)
    model_avg = _average_channels(helpers.ms_files(sim_model[0])[0], tmp_path / "model_avg.ms", 4)
    with table(str(data_avg / "SPECTRAL_WINDOW"), ack=False) as sw:
        assert sw.getcell("CHAN_FREQ", 0).size == 2
    res = run_cli(["lwa-calib", "apply", str(data_avg), "--bp-table", str(bp), "--xy-table", str(xy),
                   "-o", str(tmp_path / "cal")])
    assert res.returncode == 0, res.stderr
    model = _cross(model_avg, "DATA")
    err_mean = np.abs(_cross(tmp_path / "cal" / name, "CORRECTED_DATA") - model).max() / np.abs(model).max()
    # what taking the nearest table channel (the first of each 4) would give
    b, x = read_caltable(bp, expect="B"), read_caltable(xy, expect="Xf")
    near = tmp_path / "near"
    near.mkdir()
    write_caltable(near / "near.B", template_ms=data_avg, kind="B", values=b.values[:, ::4])
    write_caltable(near / "near.Xf", template_ms=data_avg, kind="Xf", values=x.values[:, ::4])
    res = apply_tables([data_avg], bp_table=near / "near.B", xy_table=near / "near.Xf", outdir=tmp_path / "cal_near")
    err_near = np.abs(_cross(res.succeeded[0], "CORRECTED_DATA") - model).max() / np.abs(model).max()
    assert err_mean < 0.2 * err_near and err_mean < 0.05, (err_mean, err_near)


@pytest.mark.slow
def test_table_on_the_ms_grid_is_applied_as_it_is(sim_gains, true_tables, tmp_path, monkeypatch, helpers):
    """A table on the MS's channels is not rewritten, and calibrates exactly as its regridded copy
    (flagged solutions keep their values in the table: applycal flags those data whatever they are)."""
    out, _ = sim_gains
    bp, xy, _, _ = true_tables
    flagged = tmp_path / "flagged.B"
    shutil.copytree(bp, flagged)
    b = read_caltable(flagged, expect="B")
    flags = b.flags.copy()
    flags[3, 2:5, :], flags[7, :, 1] = True, True
    update_caltable(flagged, values=b.values, flags=flags)
    ms = helpers.ms_files(out)[0]
    tables = [read_caltable(flagged, expect="B"), read_caltable(xy, expect="Xf")]
    assert apply_mod._tables_on_ms_grid(ms, tables, tmp_path) == [flagged, xy]
    direct = apply_tables([ms], bp_table=flagged, xy_table=xy, outdir=tmp_path / "direct").succeeded[0]
    monkeypatch.setattr(apply_mod, "_on_ms_grid", lambda *args: False)
    regridded = apply_tables([ms], bp_table=flagged, xy_table=xy, outdir=tmp_path / "regridded").succeeded[0]
    for column in ("CORRECTED_DATA", "FLAG"):
        got, want = _cross(direct, column), _cross(regridded, column)
        assert np.array_equal(got, want, equal_nan=True), column
    assert _cross(direct, "FLAG").any()
