"""3-colour PNGs from wideband stacks: size, orientation, colour of a steep-spectrum source."""

from __future__ import annotations

import logging

import matplotlib.image as mpimg
import numpy as np
import pytest

from lwa_common.config import load_config
from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_stack.color import color_images, rgb_composite, stretch
from lwa_stack.stack import bands_from_config, wideband

CFG = load_config()
BANDS = bands_from_config(CFG.stack.bands_mhz)
BAND_NAMES = [b[0] for b in CFG.stack.bands_mhz]


def test_stretch_percentiles_and_nan():
    x = np.arange(1000, dtype=float).reshape(25, 40)
    x[0, 0] = np.nan
    s = stretch(x, (0.5, 99.8))
    assert s.min() == 0 and s.max() == 1 and s[0, 0] == 0
    lo, hi = np.percentile(x[np.isfinite(x)], [0.5, 99.8])
    assert s[10, 10] == pytest.approx((x[10, 10] - lo) / (hi - lo))
    rgb = rgb_composite(x, None, x)
    assert rgb.shape == (25, 40, 3) and not rgb[..., 1].any()


@pytest.fixture
def stacks(synth, tmp_path):
    """Science stacks of 3 bands x 2 robusts; one source only in the Red band, one only in Blue."""
    probe = synth.make(18, noise=0.0, name="probe.fits", size=180)
    red_src = synth.world_of(probe, 60, 120)  # (x, y) = (60, 120): upper left quarter in FITS orientation
    blue_src = synth.world_of(probe, 120, 60)
    probe.unlink()
    for sb, src in ((18, red_src), (23, red_src), (46, None), (55, None), (69, blue_src), (78, blue_src)):
        for robust in (0.0, -0.75):
            synth.make(sb, taper=0, robust=robust, noise=0.5, size=180, sources=[(*src, 100.0)] if src else [])
    out = tmp_path / "wb"
    wideband([synth.run], outdir=out, bands=BANDS)
    return out


def test_three_pngs_right_size_and_colour(stacks, tmp_path):
    wb = stacks
    written = color_images([wb], outdir=tmp_path / "png", band_names=BAND_NAMES,
                           percentiles=CFG.stack.stretch_percentiles)
    names = sorted(p.name for p in written)
    assert names == ["Wideband_I_deep_NoTaper_Robust-0.75_3color.png", "Wideband_I_deep_NoTaper_Robust-0_3color.png",
                     "Wideband_I_deep_NoTaper_mixed_3color.png"]
    for p in written:
        img = mpimg.imread(p)
        assert img.shape[:2] == (180, 180)
        r, g, b = img[180 - 1 - 120, 60, :3]  # PNG row 0 is the top: FITS row 120 counts from the bottom
        assert r == pytest.approx(1.0) and g < 0.9 and b < 0.9
        r, g, b = img[180 - 1 - 60, 120, :3]
        assert b == pytest.approx(1.0) and g < 0.9 and r < 0.9
        assert img[0, 0, :3].max() == 0  # off-sky corner (NaN) is black
    with pytest.raises(LwaError, match="--overwrite"):
        color_images([wb], outdir=tmp_path / "png", band_names=BAND_NAMES)


def test_missing_band_is_black_with_warning(stacks, tmp_path, caplog):
    wb = stacks
    for p in wb.glob("Wideband_Blue_*.fits"):
        p.unlink()
    with caplog.at_level(logging.WARNING):
        written = color_images([wb], outdir=tmp_path / "png", band_names=BAND_NAMES)
    assert len(written) == 3
    img = mpimg.imread(written[0])
    assert img[..., 2].max() == 0 and img[180 - 1 - 120, 60, 0] == pytest.approx(1.0)
    assert any("no Blue stack" in r.getMessage() for r in caplog.records)
    for p in wb.glob("Wideband_Green_*.fits"):
        p.unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # one band left: skipped cleanly, nothing written, no error
        assert color_images([wb], outdir=tmp_path / "png2", band_names=BAND_NAMES) == []
    assert any(r.getMessage().startswith("skipped: ") for r in caplog.records)
    assert not (tmp_path / "png2").exists()
    res = run_cli(["lwa-stack", "color", str(wb), "-o", str(tmp_path / "png3")])
    assert res.returncode == 0 and res.stdout.strip() == "" and "skipped: " in res.stderr, res.stderr
