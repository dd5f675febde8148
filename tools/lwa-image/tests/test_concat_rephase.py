"""concat and rephase on simulated per-integration MS: casacore checks and real wsclean images."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
from casacore.tables import table

from lwa_common.errors import LwaError
from lwa_common.msconcat import skipped_list_path
from lwa_common.phasing import field_directions
from lwa_common.testing import fit_point_source, run_cli
from lwa_image import concat_ms, parse_centre, rephase_ms

SB = "55MHz"


def _digest(ms) -> str:
    with table(str(ms), ack=False) as t:
        return hashlib.sha1(t.getcol("DATA").tobytes() + t.getcol("UVW").tobytes()).hexdigest()


def _wsclean(ms, name, *extra, size=256, scale=0.07):
    cmd = ["wsclean", "-quiet", "-size", str(size), str(size), "-scale", str(scale), "-pol", "I", "-niter", "2000",
           "-auto-threshold", "3", "-mgain", "0.8", "-weight", "briggs", "0", "-no-update-model-required",
           *extra, "-name", str(name), str(ms)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(f"{name}-image.fits") as h:
        return h[0].data[0, 0], h[0].header.copy(), WCS(h[0].header).celestial


def test_concat_rows_times_field_and_centre(main_ms_list, main_sim, tmp_path):
    out = tmp_path / "all.ms"
    before = [_digest(p) for p in main_ms_list[:2]]
    result = concat_ms(main_ms_list, out, lst_hour=10)
    assert result.output == out and not result.skipped and len(result.used) == 12
    with table(str(out), ack=False) as t:
        assert t.nrows() == 12 * 48 * 49 // 2
        times = np.unique(t.getcol("TIME"))
        assert len(times) == 12 and np.all(np.diff(t.getcol("TIME")) >= 0)
        assert set(t.getcol("FIELD_ID")) == {0} and set(t.getcol("DATA_DESC_ID")) == {0}
        assert "FLAG_CATEGORY" in t.colnames() and "CORRECTED_DATA" not in t.colnames()
    dirs = np.degrees(field_directions(out))
    assert dirs.shape == (1, 2)
    assert dirs[0] == pytest.approx([157.5, 37.2398], abs=1e-6)  # LST 10h-11h meridian, OVRO latitude
    with table(str(out / "SOURCE"), ack=False) as st:
        assert np.degrees(st.getcol("DIRECTION"))[0] == pytest.approx([157.5, 37.2398], abs=1e-6)
    assert [_digest(p) for p in main_ms_list[:2]] == before  # inputs untouched
    assert not skipped_list_path(out).exists()
    # the rows of each input were rotated from its own zenith: rephasing them back gives the input
    first = tmp_path / "first.ms"
    with table(str(main_ms_list[0]), ack=False) as t0:
        orig_uvw, orig = t0.getcol("UVW"), t0.getcol("DATA")
        n = t0.nrows()
    zen = np.degrees(field_directions(main_ms_list[0])[0])
    shutil.copytree(out, first)
    rephase_ms(first, centre=parse_centre(f"{zen[0]} {zen[1]}"), in_place=True)
    with table(str(first), ack=False) as t1:
        assert t1.getcol("UVW", 0, n) == pytest.approx(orig_uvw, abs=1e-6)
        assert np.abs(t1.getcol("DATA", 0, n) - orig).max() < 1e-3 * np.abs(orig).max()


def test_concat_heals_and_skips(main_ms_list, copy_ms, tmp_path):
    a, b, c, d, e = copy_ms(*main_ms_list[:5])
    # b: CORRECTED_DATA = 2 x DATA (only b has it); c: channels in reverse order; d: other frequencies;
    # e: unreadable; plus a path that does not exist
    with table(str(b), readonly=False, ack=False) as t:
        from casacore.tables import makecoldesc

        desc = t.getcoldesc("DATA")
        t.addcols(makecoldesc("CORRECTED_DATA", desc), {"TYPE": "TiledShapeStMan", "NAME": "Corr", "SPEC": {}})
        t.putcol("CORRECTED_DATA", 2 * t.getcol("DATA"))
    with table(str(c / "SPECTRAL_WINDOW"), readonly=False, ack=False) as sw:
        sw.putcell("CHAN_FREQ", 0, sw.getcell("CHAN_FREQ", 0)[::-1].copy())
    with table(str(c), readonly=False, ack=False) as t:
        t.putcol("DATA", np.ascontiguousarray(t.getcol("DATA")[:, ::-1]))
    with table(str(d / "SPECTRAL_WINDOW"), readonly=False, ack=False) as sw:
        sw.putcell("CHAN_FREQ", 0, sw.getcell("CHAN_FREQ", 0) + 4.6e6)
    shutil.rmtree(e)
    e.mkdir()
    (e / "table.dat").write_text("garbage")
    missing = tmp_path / "missing.ms"
    out = tmp_path / "out" / "healed.ms"
    res = run_cli(["lwa-image", "concat", str(a), str(b), str(c), str(d), str(e), str(missing), "-o", str(out),
                   "--json", "--centre", "10h04m00s +37d20m00s"])
    assert res.returncode == 0, res.stderr
    import json

    summary = json.loads(res.stdout)
    assert [p.split("/")[-1] for p in summary["used"]] == [a.name, b.name, c.name]
    reasons = {s["path"].split("/")[-1]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {d.name, e.name, missing.name}
    assert "frequencies" in reasons[d.name] and "not found" in reasons[missing.name]
    listed = skipped_list_path(out).read_text().splitlines()
    assert len(listed) == 3 and any(d.name in line for line in listed)
    for name in (d.name, e.name):
        assert name in res.stderr  # logged too
    per = 48 * 49 // 2
    with table(str(out), ack=False) as t:
        assert t.nrows() == 3 * per and "CORRECTED_DATA" in t.colnames()
        data, corr = t.getcol("DATA"), t.getcol("CORRECTED_DATA")
    assert np.allclose(corr[:per], data[:per])  # a: no CORRECTED_DATA -> its DATA
    assert np.allclose(corr[per:2 * per], 2 * data[per:2 * per], rtol=1e-5, atol=1e-4)
    # c (flipped back to increasing frequency) matches its unflipped original after the same rotation
    ref = tmp_path / "c_ref.ms"
    concat_ms([main_ms_list[2]], ref, centre="10h04m00s +37d20m00s")
    with table(str(ref), ack=False) as t:
        assert np.allclose(t.getcol("DATA"), data[2 * per:], rtol=1e-5, atol=1e-4)
    with table(str(out / "SPECTRAL_WINDOW"), ack=False) as sw:
        assert np.all(np.diff(sw.getcell("CHAN_FREQ", 0)) > 0)


def test_concat_must_fail_cases(main_ms_list, tmp_path):
    with pytest.raises(LwaError, match="no input MS"):
        concat_ms([], tmp_path / "x.ms")
    bad = tmp_path / "bad.ms"
    bad.mkdir()
    res = run_cli(["lwa-image", "concat", str(bad), str(tmp_path / "nope.ms"), "-o", str(tmp_path / "o.ms")])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "none of the 2 input MS is readable" in lines[0]
    assert not (tmp_path / "o.ms").exists()
    out = tmp_path / "two.ms"
    concat_ms(main_ms_list[:2], out, lst_hour=10)
    res = run_cli(["lwa-image", "concat", *map(str, main_ms_list[:2]), "-o", str(out), "--lst-hour", "10"])
    assert res.returncode == 1 and "--overwrite" in res.stderr
    res = run_cli(["lwa-image", "concat", str(main_ms_list[0]), "-o", str(out), "--lst-hour", "10", "--centre",
                   "10h 37d", "--overwrite"])
    assert res.returncode == 1 and "not both" in res.stderr
    with table(str(out), ack=False) as t:
        assert t.nrows() == 2 * 48 * 49 // 2  # the failed runs left the earlier output alone


def test_concat_delete_inputs_only_after_success(main_ms_list, copy_ms, tmp_path):
    copies = copy_ms(*main_ms_list[:3])
    junk = tmp_path / "junk.ms"
    junk.mkdir()
    out = tmp_path / "joined.ms"
    res = run_cli(["lwa-image", "concat", *map(str, copies), str(junk), "-o", str(out), "--delete-inputs"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out)
    assert not any(p.exists() for p in copies)
    assert junk.exists()  # skipped inputs are never deleted
    with table(str(out), ack=False) as t:
        assert len(np.unique(t.getcol("TIME"))) == 3


@pytest.mark.slow
def test_rephase_puts_sources_at_true_positions_and_matches_wsclean_shift(hour_ms, main_sim, tmp_path, measure):
    """Our rotation vs wsclean's own -shift: same sources, same positions and fluxes; ≤ 0.2 px from truth."""
    _, truth = main_sim
    _, beam_fit = measure
    before = _digest(hour_ms)
    moved = tmp_path / "moved.ms"
    res = run_cli(["lwa-image", "rephase", str(hour_ms), "-o", str(moved), "--centre", "10h10m00s +35d30m00s"])
    assert res.returncode == 0, res.stderr
    assert _digest(hour_ms) == before  # input untouched
    assert np.degrees(field_directions(moved)[0]) == pytest.approx([152.5, 35.5], abs=1e-6)
    img_r, head_r, wcs_r = _wsclean(moved, tmp_path / "rephased")
    img_s, head_s, wcs_s = _wsclean(hour_ms, tmp_path / "shifted", "-shift", "10h10m00s", "35d30m00s")
    for name in ("A", "B", "C"):
        src = next(s for s in truth["sources"] if s["name"] == name)
        world = [[src["apparent_ra_deg"], src["apparent_dec_deg"]]]
        xr, yr = wcs_r.all_world2pix(world, 0)[0]
        fr = fit_point_source(img_r, xr, yr)
        assert abs(fr["x"] - xr) <= 0.2 and abs(fr["y"] - yr) <= 0.2, (name, fr, xr, yr)
        xs, ys = wcs_s.all_world2pix(world, 0)[0]
        fs = fit_point_source(img_s, xs, ys)
        ra_r, dec_r = wcs_r.all_pix2world([[fr["x"], fr["y"]]], 0)[0]
        ra_s, dec_s = wcs_s.all_pix2world([[fs["x"], fs["y"]]], 0)[0]
        sep_deg = np.hypot((ra_r - ra_s) * np.cos(np.radians(dec_r)), dec_r - dec_s)
        assert sep_deg < 0.2 * 0.07, (name, sep_deg)
        rr = beam_fit(img_r, head_r, xr, yr)["peak"]
        ss = beam_fit(img_s, head_s, xs, ys)["peak"]
        assert rr == pytest.approx(ss, rel=0.02), name
        assert rr == pytest.approx(src["flux_by_subband"][SB]["apparent_jy"], rel=0.05), name


@pytest.mark.slow
def test_rephase_in_place_and_cli_errors(main_ms_list, copy_ms, tmp_path):
    (ms,) = copy_ms(main_ms_list[0])
    res = run_cli(["lwa-image", "rephase", str(ms), "--lst-hour", "10"])
    assert res.returncode == 2 and "--in-place" in res.stderr
    res = run_cli(["lwa-image", "rephase", str(ms), "-o", str(tmp_path / "x.ms"), "--method", "chgcentre",
                   "--lst-hour", "10"])
    if shutil.which("chgcentre") is None:
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1 and "chgcentre not found" in lines[0]
        assert not (tmp_path / "x.ms").exists()
    res = run_cli(["lwa-image", "rephase", str(ms), "--in-place", "--centre", "not a centre"])
    assert res.returncode == 1 and "--centre 'not a centre'" in res.stderr
    res = run_cli(["lwa-image", "rephase", str(ms), "--in-place", "--lst-hour", "10", "--method", "numpy"])
    assert res.returncode == 0, res.stderr
    assert np.degrees(field_directions(ms)[0]) == pytest.approx([157.5, 37.2398], abs=1e-6)
    digest = _digest(ms)
    res = run_cli(["lwa-image", "rephase", str(ms), "--in-place", "--lst-hour", "10"])  # rerun: nothing to do
    assert res.returncode == 0 and _digest(ms) == digest
    with table(str(ms / "HISTORY"), ack=False) as h:
        assert any("lwa-image rephase" in m for m in h.getcol("MESSAGE"))
