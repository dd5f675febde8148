"""Wideband transient search: a V transient too faint in every subband is found in the stack.

The search is `lwa-transient search` run on the stacks (it takes them by header); lwa-transient is a
test dependency of lwa-stack, never an import of its package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lwa_common.config import load_config
from lwa_common.testing import run_cli
from lwa_stack.stack import bands_from_config, wideband
from lwa_transient import SearchOptions, search_images

CFG = load_config()
GREEN = (41, 46, 50, 55, 59)


def _run(synth, src):
    for sb in GREEN:
        synth.make(sb, stokes="I", noise=1.0)
        synth.make(sb, stokes="V", noise=1.0)
        for t in ("t0001", "t0002"):
            synth.make(sb, stokes="I", imgcat="10min", interval=t, noise=1.0)
            # 3.2 sigma in each subband (below the 5 sigma V threshold), ~7 sigma in the 5-subband stack
            synth.make(sb, stokes="V", imgcat="10min", interval=t, noise=1.0, sources=[(*src, 3.2)] if t == "t0002"
                       else [])


def test_wideband_v_transient_found_only_in_stack(synth, tmp_path):
    probe = synth.make(41, noise=0.0, name="probe.fits")
    src = synth.world_of(probe, 118, 131)
    probe.unlink()
    _run(synth, src)
    per_sb = search_images([synth.run / f"{sb}MHz" for sb in GREEN], output=tmp_path / "per_subband",
                           settings=CFG.transient, options=SearchOptions(products=False))
    assert not [c for c in per_sb.candidates if c.stokes == "V" and abs(c.ra - src[0]) < 1 and abs(c.dec - src[1]) < 1]

    wb = tmp_path / "wb"
    wideband([synth.run], outdir=wb, bands=bands_from_config(CFG.stack.bands_mhz))
    res = run_cli(["lwa-transient", "search", str(wb), "-o", str(tmp_path / "search"), "--json"])
    assert res.returncode == 0, res.stderr
    rows = pd.read_csv(tmp_path / "search" / "candidates.csv")
    sep = np.hypot((rows["ra"] - src[0]) * np.cos(np.radians(src[1])), rows["dec"] - src[1])
    hit = rows[(rows["stokes"] == "V") & (sep < 0.6)]  # within a pixel
    assert len(hit) == 1, rows
    assert hit.iloc[0]["interval"] == "t0002" and hit.iloc[0]["subband"] == "Green"
    assert hit.iloc[0]["snr"] > 5 and hit.iloc[0]["peak_jy"] == pytest.approx(3.2, rel=0.25)
    assert len(rows[rows["stokes"] == "V"]) == 1  # no false V candidate
    png = hit.iloc[0]["png"]
    assert isinstance(png, str) and png.endswith(".png")
