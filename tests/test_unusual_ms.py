"""Unusual but valid Measurement Sets through the real tools (issue #16, item 2).

Each case builds an MS of the layout in question with lwa-sim (real casacore tables) and runs
the tools the driver runs on it (lwa-calib apply, lwa-image concat/snapshots/science, lwa-flag
rfi/hot-baselines/integrations), with the real AOFlagger and wsclean:

- correlation orders other than lwa-sim's XX,XY,YX,YY (XX,YY,XY,YX and XX,XY,YX,YY written in
  another order): every tool must give the same flags, calibrated data and images as on the
  standard order, because it must select correlations by CORR_TYPE, not by position;
- one integration, 20 antennas and an odd channel count: every step finishes with its outputs;
- antennas named as older correlators name them (ANT001): health files find them, every step runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from casacore.tables import table

from lwa_common.testing import run_cli

pytestmark = pytest.mark.slow

SKY = """\
sources:
  - {name: a, ra: 150.0, dec: 40.0, flux_jy: 120, spectral_index: -0.8}
  - {name: b, ra: 160.0, dec: 30.0, flux_jy: 60, spectral_index: -0.8, v_frac: 0.2}
gains: {amplitude_rms: 0.05, phase_rms_deg: 20, xy_phase_deg: 30, seed: 5}
hot_baselines: {pairs: [[3, 11]], amplitude_jy: 300}
noise: {sefd_jy: 6000}
"""

# casacore Stokes codes: XX=9 XY=10 YX=11 YY=12
STANDARD = [9, 10, 11, 12]
ORDER_XX_YY_XY_YX = [9, 12, 10, 11]


def _ok(res) -> None:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stderr[-3000:]}"


def _simulate(tmp: Path, *, n_int: int, n_ant: int, n_chan: int) -> list[Path]:
    spec = tmp / "sky.yaml"
    spec.write_text(SKY)
    res = run_cli(["lwa-sim", "observe", str(spec), "-o", str(tmp / "sim"), "--start", "2024-12-20T12:00:00",
                   "--n-int", str(n_int), "--n-antennas", str(n_ant), "--n-channels", str(n_chan), "--seed", "3"])
    _ok(res)
    return sorted((tmp / "sim").glob("*.ms"))


def _reorder(ms: Path, order: list[int]) -> None:
    """Rewrite MS in place with its correlations in `order` (CORR_TYPE codes)."""
    with table(str(ms / "POLARIZATION"), readonly=False, ack=False) as pt:
        old = [int(c) for c in pt.getcell("CORR_TYPE", 0)]
        perm = [old.index(c) for c in order]
        pt.putcell("CORR_TYPE", 0, np.asarray(order, dtype=np.int32))
        prod = np.asarray(pt.getcell("CORR_PRODUCT", 0))
        axis = 0 if prod.shape[0] == len(old) else 1
        pt.putcell("CORR_PRODUCT", 0, np.take(prod, perm, axis=axis))
    with table(str(ms), readonly=False, ack=False) as t:
        for col in ("DATA", "FLAG", "MODEL_DATA", "CORRECTED_DATA"):
            if col in t.colnames():
                t.putcol(col, t.getcol(col)[..., perm])
        for col in ("WEIGHT", "SIGMA"):
            if col in t.colnames():
                t.putcol(col, t.getcol(col)[..., perm])


def _column_by_corr(ms: Path, col: str) -> dict[int, np.ndarray]:
    with table(str(ms / "POLARIZATION"), ack=False) as pt:
        corr = [int(c) for c in pt.getcell("CORR_TYPE", 0)]
    with table(str(ms), ack=False) as t:
        data = t.getcol(col)
    return {c: data[..., k] for k, c in enumerate(corr)}


@pytest.fixture(scope="module")
def two_orders(tmp_path_factory):
    """The same 3-integration observation as one concatenated MS in two correlation orders, calibrated."""
    tmp = tmp_path_factory.mktemp("corr_order")
    msl = _simulate(tmp, n_int=3, n_ant=24, n_chan=4)
    gains = next((tmp / "sim").glob("true_gains_*.h5"))
    _ok(run_cli(["lwa-calib", "tables-from-gains", str(gains), "--template", str(msl[0]), "-o", str(tmp / "cal"),
                 "--xy-phase-deg", "30"]))
    out = {}
    for name, order in (("standard", STANDARD), ("reordered", ORDER_XX_YY_XY_YX)):
        raw = tmp / name / "raw"
        raw.mkdir(parents=True)
        for ms in msl:
            shutil.copytree(ms, raw / ms.name)
            if order != STANDARD:
                _reorder(raw / ms.name, order)
        cal = tmp / name / "cal"
        _ok(run_cli(["lwa-calib", "apply", *map(str, sorted(raw.glob("*.ms"))), "-o", str(cal),
                     "--bp-table", str(tmp / "cal" / "bandpass.B"), "--xy-table", str(tmp / "cal" / "xyphase.Xf")]))
        hour = tmp / name / "hour.ms"
        _ok(run_cli(["lwa-image", "concat", *map(str, sorted(cal.glob("*.ms"))), "-o", str(hour)]))
        out[name] = hour
    return out


def test_correlation_order_calibrated_data_identical(two_orders):
    col = "CORRECTED_DATA"
    with table(str(two_orders["standard"]), ack=False) as t:
        if col not in t.colnames():
            col = "DATA"
    a = _column_by_corr(two_orders["standard"], col)
    b = _column_by_corr(two_orders["reordered"], col)
    for code in STANDARD:
        np.testing.assert_allclose(b[code], a[code], rtol=1e-5, atol=1e-4, err_msg=f"correlation {code}")


def test_correlation_order_flags_identical(two_orders):
    for ms in two_orders.values():
        _ok(run_cli(["lwa-flag", "rfi", str(ms), "--in-place"]))
        _ok(run_cli(["lwa-flag", "hot-baselines", str(ms), "--in-place"]))
    a = _column_by_corr(two_orders["standard"], "FLAG")
    b = _column_by_corr(two_orders["reordered"], "FLAG")
    flagged = sum(int(a[c].sum()) for c in STANDARD)
    assert flagged > 0, "the injected hot baseline should be flagged"
    for code in STANDARD:
        assert np.array_equal(a[code], b[code]), f"flags of correlation {code} differ between orders"


def test_correlation_order_snapshots_identical(two_orders, tmp_path):
    images = {}
    for name, ms in two_orders.items():
        out = tmp_path / name
        _ok(run_cli(["lwa-image", "snapshots", str(ms), "-o", str(out), "--size", "128", "--scale-arcmin", "30"]))
        images[name] = {p.name: fits.getdata(p) for p in sorted(out.glob("*.fits"))}
    assert images["standard"], "no snapshots written"
    assert images["standard"].keys() == images["reordered"].keys()
    for key, img in images["standard"].items():
        other = images["reordered"][key]
        scale = np.nanmax(np.abs(img))
        assert np.nanmax(np.abs(other - img)) <= 1e-4 * scale, key


def test_one_integration_twenty_antennas_odd_channels(tmp_path):
    """One 10-s integration of 20 antennas and 3 channels goes through every imaging/flagging step."""
    (ms,) = _simulate(tmp_path, n_int=1, n_ant=20, n_chan=3)
    hour = tmp_path / "hour.ms"
    _ok(run_cli(["lwa-image", "concat", str(ms), "-o", str(hour)]))
    _ok(run_cli(["lwa-flag", "rfi", str(hour), "--in-place"]))
    _ok(run_cli(["lwa-flag", "hot-baselines", str(hour), "--in-place"]))
    snaps = tmp_path / "snapshots"
    _ok(run_cli(["lwa-image", "snapshots", str(hour), "-o", str(snaps), "--size", "128", "--scale-arcmin", "30"]))
    vsnaps = sorted(snaps.glob("*-V-*.fits"))
    assert len(vsnaps) == 1
    res = run_cli(["lwa-flag", "integrations", *map(str, vsnaps), "--ms", str(hour), "--in-place"])
    _ok(res)
    img = tmp_path / "img"
    res = run_cli(["lwa-image", "science", str(hour), "-o", str(img), "--size", "128", "--scale-deg", "0.5",
                   "--niter-scale", "0.01"])
    _ok(res)
    produced = sorted(img.glob("*.fits"))
    assert produced, "science wrote no image"
    for p in produced:
        data = fits.getdata(p)
        assert np.isfinite(data).any(), f"{p.name} is all NaN"
    # the hot baseline (3, 11) is flagged on the 20-antenna array too
    with table(str(hour), ack=False) as t:
        sel = t.query("(ANTENNA1 == 3 && ANTENNA2 == 11) || (ANTENNA1 == 11 && ANTENNA2 == 3)")
        assert sel.nrows() > 0 and sel.getcol("FLAG").all(), "hot baseline not flagged"


def test_older_correlator_antenna_names(tmp_path):
    """An MS whose antennas are named as older correlators name them (ANT001, ANT002, ...): a health
    file's ANT names (either spelling) flag exactly those antennas' rows, and the flaggers and the
    imaging run on it."""
    ms_list = _simulate(tmp_path, n_int=2, n_ant=20, n_chan=4)
    for ms in ms_list:
        with table(str(ms / "ANTENNA"), readonly=False, ack=False) as at:
            at.putcol("NAME", np.array([f"ANT{i + 1:03d}" for i in range(at.nrows())]))
    hour = tmp_path / "hour.ms"
    _ok(run_cli(["lwa-image", "concat", *map(str, ms_list), "-o", str(hour)]))
    health = tmp_path / "badants.csv"
    health.write_text("antname\nANT005\nant-12\n")
    flagged = tmp_path / "flagged.ms"
    _ok(run_cli(["lwa-flag", "antennas", str(hour), str(health), "-o", str(flagged)]))
    with table(str(flagged), ack=False) as t:
        a1, a2, flags = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("FLAG")
    bad = np.isin(a1, [4, 11]) | np.isin(a2, [4, 11])
    assert flags[bad].all(), "rows of ANT005 / ANT012 not flagged"
    assert not flags[~bad].any(), "rows of healthy antennas flagged"
    _ok(run_cli(["lwa-flag", "rfi", str(flagged), "--in-place"]))
    _ok(run_cli(["lwa-flag", "hot-baselines", str(flagged), "--in-place"]))
    img = tmp_path / "img"
    _ok(run_cli(["lwa-image", "science", str(flagged), "-o", str(img), "--size", "128", "--scale-deg", "0.5",
                 "--niter-scale", "0.01"]))
    assert sorted(img.glob("*.fits")), "science wrote no image"
