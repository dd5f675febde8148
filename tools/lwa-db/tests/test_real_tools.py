"""lwa-db reads what the real tools write: lwa-cutout targets and lwa-transient search run on synthetic
images (a steady star in Stokes I, a Stokes V burst in one 10 min interval), then the run is ingested
from another folder than the one the tools ran in (their CSVs hold relative image paths)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from astropy.time import Time, TimeDelta

from lwa_common.config import load_config
from lwa_common.fitsio import write_image
from lwa_common.testing import allsky_header, run_cli, synthetic_image
from lwa_db import lightcurve, open_database, source_table

STAR = (152.0, 38.0, 8.0)
BURST = (154.5, 36.5, 12.0)
N_INT = 3


def write_images(folder: Path) -> None:
    t0 = Time("2024-12-20T11:55:00", scale="utc")
    slots = [(s, i) for s in "IV" for i in ["deep", *(f"t{n:04d}" for n in range(1, N_INT + 1))]]
    for k, (stokes, iv) in enumerate(slots):
        deep = iv == "deep"
        start = t0 if deep else t0 + TimeDelta(600 * (int(iv[1:]) - 1), format="sec")
        end = t0 + TimeDelta(600 * N_INT, format="sec") if deep else start + TimeDelta(600, format="sec")
        header = allsky_header(size=256, scale_deg=0.5, freq_mhz=55.4, bmaj_deg=1.0, date_obs=start.isot)
        sources = [STAR] if stokes == "I" else [BURST] if iv == "t0002" else []
        data = synthetic_image(header, sources, noise=0.3 if deep else 0.5, seed=100 + k)
        conf = f"{stokes}-{'Deep' if deep else '10min'}-Taper-Robust-0"
        write_image(folder / f"55MHz-{conf}{'' if deep else '-' + iv}-image.fits", data, header, tool="test", keywords={
            "STOKES": stokes, "IMGCAT": "deep" if deep else "10min", "INTERVAL": iv, "NINTERVL": 1 if deep else N_INT,
            "CONFIG": conf, "ROBUST": 0.0, "TAPER": 30.0, "PBCOR": False, "DEWARPED": False, "SUBBAND": "55MHz",
            "FREQMHZ": 55.4, "DATE-OBS": start.isot, "DATE-END": end.isot, "MJD-MID": (start.mjd + end.mjd) / 2})


def test_ingest_of_lwa_cutout_and_lwa_transient_outputs(tmp_path):
    for tool in ("lwa-cutout", "lwa-transient"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            pytest.skip(f"{tool} is not installed (lwa-db installed alone)")
    work = tmp_path / "work"
    run = Path("night1") / "10h"
    (work / run / "55MHz" / "images").mkdir(parents=True)
    write_images(work / run / "55MHz" / "images")
    (work / "targets.csv").write_text("common_name,ra_current,dec_current,detection_stokes\nVar Star,152.0,38.0,both\n")
    res = run_cli(["lwa-cutout", "targets", "targets.csv", "--images", str(run / "55MHz" / "images"), "-o",
                   str(run / "55MHz" / "photometry")], cwd=work)
    assert res.returncode == 0, res.stderr
    res = run_cli(["lwa-transient", "search", str(run / "55MHz" / "images"), "-o", str(run / "55MHz" / "transients")],
                  cwd=work)
    assert res.returncode == 0, res.stderr
    db = tmp_path / "products.sqlite"
    res = run_cli(["lwa-db", "ingest", str(work / run), "--db", str(db)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    engine = open_database(str(db))
    table = {s["name"] or "burst": s for s in source_table(engine)}
    assert set(table) == {"Var Star", "burst"}
    cfg = load_config(None)
    _, rows = lightcurve(engine, "Var Star", cfg=cfg, stokes="I")
    deep = [r for r in rows if r["interval"] == "deep"]
    assert len(deep) == 1 and deep[0]["detected"] and deep[0]["image"]
    assert abs(deep[0]["flux_jy"] - STAR[2]) < 0.2 * STAR[2]
    _, rows = lightcurve(engine, f"{BURST[0]},{BURST[1]}", cfg=cfg, stokes="V")
    det = [r for r in rows if r["detected"]]
    assert [r["interval"] for r in det] == ["t0002"] and det[0]["image"].endswith("t0002-image.fits")
    assert {r["interval"] for r in rows if not r["detected"]} == {"t0001", "t0003"}
    engine.dispose()
