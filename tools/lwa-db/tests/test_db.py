"""lwa-db on real databases (SQLite file and PostgreSQL): three simulated nights, re-ingest, concurrent
ingest, refused corrupt runs. The nights are written by lwa_db.testing (images with self-describing
headers and Gaussian noise, lwa-cutout photometry and lwa-transient candidate tables)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from lwa_common.config import Database
from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_db import lightcurve, open_database, scan_run, source_table, store_run, variable_sources
from lwa_db.schema import (
    SCHEMA_VERSION,
    associations,
    images,
    measurements,
    qa,
    runs,
    schema_version,
    sources,
)
from lwa_db.testing import (
    THREE_NIGHTS,
    THREE_NIGHTS_BURST,
    THREE_NIGHTS_TARGETS,
    Night,
    write_night,
    write_nights,
)

TABLES = (runs, images, measurements, sources, associations, qa)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}


def snapshot(engine) -> dict:
    """Every row of every table (ids included): equality means the database did not change."""
    with engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr) for t in TABLES}


def ingest(engine, folders, cfg):
    return [store_run(engine, scan_run(f, cfg=cfg), cfg=cfg) for f in folders]


def sep_deg(ra1, dec1, ra2, dec2) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def deep_i_rows(folder: Path, target: str) -> list[dict[str, str]]:
    safe = target.replace(" ", "_")
    with open(folder / "55MHz" / "photometry" / safe / f"{safe}_photometry.csv") as f:
        return [r for r in csv.DictReader(f) if r["interval"] == "deep"]


@pytest.mark.parametrize("seed", [11, 23])
def test_three_nights(db_url, tmp_path, cfg, seed):
    folders = write_nights(tmp_path / "nights", seed=seed)
    engine = open_database(db_url)
    results = ingest(engine, folders, cfg)
    assert [r.status for r in results] == ["new", "new", "new"]
    assert len({r.run for r in results}) == 3

    table = source_table(engine)
    named = {s["name"]: s for s in table if s["name"]}
    assert set(named) == {t.name for t in THREE_NIGHTS_TARGETS}
    for t in THREE_NIGHTS_TARGETS:  # a target's source sits at the target, seen on every night
        s = named[t.name]
        assert sep_deg(s["ra_deg"], s["dec_deg"], t.ra_deg, t.dec_deg) < 1e-6
        assert s["n_runs"] == 3 and s["jname"].startswith("J")
    blind = [s for s in table if not s["name"]]
    assert len(blind) == 1, f"the burst must be one source, the artefact none: {blind}"
    burst = blind[0]
    assert sep_deg(burst["ra_deg"], burst["dec_deg"], THREE_NIGHTS_BURST.ra_deg, THREE_NIGHTS_BURST.dec_deg) < 1e-6
    assert burst["n_detections"] == 1 and burst["n_measurements"] == 1 and burst["n_runs"] == 1

    # eta and V: the variable star above the thresholds in Stokes I, the steady sources below
    var = variable_sources(engine, settings=Database(eta_min=10.0, v_min=0.3, min_points=3), stokes="I")
    assert [v["name"] for v in var] == ["Var Star"]
    assert var[0]["n_points"] == 3 and var[0]["band"] == "55MHz"
    # ... and they are Swinbank et al. (2015)'s eta and V of the three deep fluxes written to the CSVs
    rows = [deep_i_rows(f, "Var Star")[0] for f in folders]
    flux = np.array([float(r["I_fit_flux_jy"] or r["I_cat_jy"]) for r in rows])
    err = np.array([float(r["I_rms_jy"]) for r in rows])
    w = 1 / err**2
    eta = float((w * (flux - (w * flux).sum() / w.sum()) ** 2).sum() / (len(flux) - 1))
    assert var[0]["eta"] == pytest.approx(eta, rel=1e-9)
    assert var[0]["v"] == pytest.approx(flux.std(ddof=1) / flux.mean(), rel=1e-9)
    steady_hits = variable_sources(engine, settings=Database(eta_min=10.0, v_min=0.0, min_points=3), stokes="I")
    assert [v["name"] for v in steady_hits] == ["Var Star"]

    # the variable star's deep lightcurve recovers the simulated fluxes
    src, lc = lightcurve(engine, "var star", cfg=cfg, stokes="I", subband="55MHz")
    deep = [r for r in lc if r["interval"] == "deep"]
    assert [r["run"] for r in deep] == [r.run for r in results]
    truth = THREE_NIGHTS_TARGETS[3].flux_i
    for r, f in zip(deep, truth):
        assert r["detected"] and abs(r["flux_jy"] - f) < 5 * r["flux_err_jy"]

    # the burst: one detection on night 2, upper limits in every other 10 min V image of every night
    src, lc = lightcurve(engine, burst["jname"], cfg=cfg, stokes="V")
    det = [r for r in lc if r["detected"]]
    assert len(det) == 1 and det[0]["run"] == results[1].run and det[0]["interval"] == THREE_NIGHTS_BURST.interval
    limits = [r for r in lc if not r["detected"]]
    assert {r["run"] for r in limits} == {r.run for r in results}
    n_int = THREE_NIGHTS[0].n_intervals
    assert len(limits) == 3 * n_int - 1
    for r in limits:
        assert r["upper_limit_jy"] == pytest.approx(cfg.transient.v_sigma * r["flux_err_jy"])
        assert r["flux_err_jy"] == pytest.approx(THREE_NIGHTS[0].rms_v * math.sqrt(n_int), rel=0.15)
    # by position too
    src2, _ = lightcurve(engine, f"{THREE_NIGHTS_BURST.ra_deg + 0.05},{THREE_NIGHTS_BURST.dec_deg}", cfg=cfg,
                         stokes="V")
    assert src2["jname"] == burst["jname"]
    with engine.connect() as conn:
        assert conn.execute(select(func.max(schema_version.c.version))).scalar_one() == SCHEMA_VERSION
        # the artefact is registered, not associated
        art = conn.execute(select(measurements.c.source_id).where(measurements.c.klass == "artefact")).all()
        assert len(art) == 1 and art[0].source_id is None
    engine.dispose()


def test_reingest_is_noop_and_update_keeps_names(db_url, tmp_path, cfg):
    folders = write_nights(tmp_path / "nights", seed=5)
    engine = open_database(db_url)
    ingest(engine, folders, cfg)
    before = snapshot(engine)
    again = ingest(engine, folders, cfg)
    assert [r.status for r in again] == ["unchanged"] * 3
    assert snapshot(engine) == before
    names = {s["jname"] for s in source_table(engine)}
    # a changed run replaces its rows: same counts, same J-names, the new flux in the lightcurve
    path = folders[1] / "55MHz" / "photometry" / "Steady_A" / "Steady_A_photometry.csv"
    text = path.read_text().splitlines()
    head = text[0].split(",")
    cells = text[1].split(",")
    cells[head.index("I_fit_flux_jy")] = "12.5"
    path.write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    res = ingest(engine, [folders[1]], cfg)
    assert res[0].status == "updated"
    assert counts(engine) == {k: len(v) for k, v in before.items()}
    assert {s["jname"] for s in source_table(engine)} == names
    _, lc = lightcurve(engine, "Steady A", cfg=cfg, stokes="I")
    assert [r["flux_jy"] for r in lc if r["run"] == res[0].run and r["interval"] == "deep"] == [12.5]
    engine.dispose()


def test_concurrent_ingest_loses_no_row(db_url, tmp_path, cfg):
    nights = [*THREE_NIGHTS, replace(THREE_NIGHTS[0], date="2024-12-23T11:55:00", index=3,
                                     targets=tuple(replace(t, flux_i=(*t.flux_i, t.flux_i[0]))
                                                   for t in THREE_NIGHTS_TARGETS))]
    folders = [write_night(tmp_path / "nights", n, seed=3) for n in nights]
    open_database(db_url).dispose()  # the schema exists before the race (creating it concurrently is tested below)
    exe = Path(sys.executable).parent / "lwa-db"
    env = {**os.environ, "LWA_DB_URL": db_url}
    procs = [subprocess.Popen([str(exe), "ingest", str(f)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for f in folders]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "\tnew\t" in out
    expected = [scan_run(f, cfg=cfg) for f in folders]
    engine = open_database(db_url)
    n = counts(engine)
    assert n["runs"] == 4
    assert n["images"] == sum(len(r.images) for r in expected)
    assert n["measurements"] == sum(len(r.measurements) for r in expected)
    # one source per target and one for the burst: no duplicate from a race
    assert n["sources"] == len(THREE_NIGHTS_TARGETS) + 1
    with engine.connect() as conn:
        unlinked = conn.execute(select(func.count()).select_from(measurements).where(
            measurements.c.source_id.is_(None), measurements.c.kind.in_(("target", "transient")),
            measurements.c.klass.is_distinct_from("artefact"))).scalar_one()
    assert unlinked == 0
    table = {s["name"]: s for s in source_table(engine)}
    assert all(table[t.name]["n_runs"] == 4 for t in THREE_NIGHTS_TARGETS)
    engine.dispose()


def test_concurrent_first_ingest_creates_schema_once(db_url, tmp_path):
    exe = Path(sys.executable).parent / "lwa-db"
    folders = write_nights(tmp_path / "nights", seed=4)
    env = {**os.environ, "LWA_DB_URL": db_url}
    procs = [subprocess.Popen([str(exe), "ingest", str(f)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for f in folders]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    engine = open_database(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema_version)).scalar_one() == SCHEMA_VERSION
    assert counts(engine)["runs"] == 3
    engine.dispose()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_run(run: Path, damage: str) -> None:
    sb = run / "55MHz"
    cands = sb / "transients" / "candidates.csv"
    if damage == "truncated_fits":
        _truncate(next((sb / "images").glob("*V-Deep*.fits")))
    elif damage == "bad_csv":
        cands.write_text(cands.read_text().replace("peak_jy", "peak"))
    elif damage == "short_csv_row":
        lines = cands.read_text().splitlines()
        cands.write_text("\n".join([*lines, lines[-1].rsplit(",", 5)[0]]) + "\n")
    elif damage == "writing":
        (sb / "images" / ".55MHz-I-Deep.abc123.tmp").mkdir()
    elif damage == "imaging":  # lwa-image's scratch: snapshots are renamed out of it as they finish
        (sb / "snapshots" / ".wsclean-snapshots-node1-4242-x1y2").mkdir(parents=True)
    elif damage == "missing_image":
        next((sb / "images").glob("*V-10min*t0002*.fits")).unlink()
    elif damage == "no_keyword":
        from astropy.io import fits

        path = next((sb / "images").glob("*I-Deep*.fits"))
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["MJD-MID"]


DAMAGES = {
    "truncated_fits": "truncated FITS file",
    "bad_csv": "lacks column(s) peak_jy",
    "short_csv_row": "wrong number of cells",
    "writing": "unfinished atomic write",
    "imaging": "unfinished atomic write",
    "missing_image": "not found (partial run?)",
    "no_keyword": "lacks header keyword(s) MJD-MID",
}


def test_corrupt_run_is_refused_and_db_unchanged(db_url, tmp_path, cfg):
    """Every kind of damage is refused with its message; with the CLI, a good run given alongside is not
    ingested either (everything is validated before any write) and the database is unchanged."""
    nights = write_nights(tmp_path / "nights", seed=6)
    good = nights[0]
    engine = open_database(db_url)
    ingest(engine, [good], cfg)
    before = snapshot(engine)
    for k, (damage, message) in enumerate(DAMAGES.items()):
        bad = tmp_path / f"bad{k}" / "10h"
        shutil.copytree(nights[1], bad)
        damage_run(bad, damage)
        with pytest.raises(LwaError) as err:
            ingest(engine, [bad], cfg)
        assert message in str(err.value)
        assert snapshot(engine) == before
    res = run_cli(["lwa-db", "ingest", str(nights[2]), str(tmp_path / "bad0" / "10h"), "--db", db_url])
    assert res.returncode == 1
    assert res.stderr.startswith("lwa-db: error: truncated FITS file"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert snapshot(engine) == before
    engine.dispose()


def test_failure_inside_the_transaction_rolls_back(db_url, tmp_path, cfg):
    """A run that fails during association (after its rows were inserted) leaves nothing behind."""
    good, bad = write_nights(tmp_path / "nights", seed=8)[:2]
    engine = open_database(db_url)
    ingest(engine, [good], cfg)
    before = snapshot(engine)
    records = scan_run(bad, cfg=cfg)
    for m in records.measurements:  # no beam anywhere: association cannot set a radius
        m["beam_deg"] = None
    with pytest.raises(Exception, match="has no beam size"):
        store_run(engine, records, cfg=cfg)
    assert snapshot(engine) == before
    engine.dispose()


def test_cli_three_nights_end_to_end(db_url, tmp_path):
    folders = write_nights(tmp_path / "nights", seed=9)
    res = run_cli(["lwa-db", "ingest", *map(str, folders), "--db", db_url])
    assert res.returncode == 0, res.stderr
    assert [line.split("\t")[1] for line in res.stdout.splitlines()] == ["new"] * 3
    res = run_cli(["lwa-db", "variables", "--eta-min", "10", "--v-min", "0.3", "--stokes", "I", "--db", db_url])
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(res.stdout.splitlines()))
    assert [r["name"] for r in rows] == ["Var Star"] and rows[0]["n_points"] == "3"
    out = tmp_path / "lc"
    res = run_cli(["lwa-db", "lightcurve", "Var Star", "--subband", "55", "--db", db_url, "-o", str(out)])
    assert res.returncode == 0, res.stderr
    csv_path, png_path = map(Path, res.stdout.split())
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lc = list(csv.DictReader(open(csv_path)))
    assert {r["band"] for r in lc} == {"55MHz"} and sum(r["interval"] == "deep" for r in lc) == 3
    res = run_cli(["lwa-db", "lightcurve", "No Such Star", "--db", db_url, "-o", str(out)])
    assert res.returncode == 1 and "no source named" in res.stderr
    res = run_cli(["lwa-db", "lightcurve", "Var Star", "--subband", "55", "--wideband", "--db", db_url, "-o",
                   str(out)])
    assert res.returncode == 2


def test_night_with_no_product_is_refused(tmp_path):
    (tmp_path / "empty" / "10h").mkdir(parents=True)
    res = run_cli(["lwa-db", "ingest", str(tmp_path / "empty" / "10h"), "--db", str(tmp_path / "x.sqlite")])
    assert res.returncode == 1 and "holds no product" in res.stderr
    assert not (tmp_path / "x.sqlite").exists()
    res = run_cli(["lwa-db", "sources", "--db", str(tmp_path / "missing.sqlite")])
    assert res.returncode == 1 and "database not found" in res.stderr


def test_two_subbands_are_separate_bands(tmp_path, cfg):
    night = Night(date="2024-12-20T11:55:00", index=0, subbands=("55MHz", "73MHz"), targets=THREE_NIGHTS_TARGETS[:1])
    folder = write_night(tmp_path / "n", night, seed=2)
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ingest(engine, [folder], cfg)
    _, lc = lightcurve(engine, "Steady A", cfg=cfg, stokes="I", subband="73MHz")
    assert {r["band"] for r in lc} == {"73MHz"}
    _, lc = lightcurve(engine, "Steady A", cfg=cfg, stokes="I")
    assert {r["band"] for r in lc} == {"55MHz", "73MHz"}
    assert len(source_table(engine)) == 1
    engine.dispose()


def test_weblog_shows_lightcurves_across_nights(tmp_path):
    """`lwa-stack report --db` (as run_hour.sh --db runs it): each target page shows its lightcurves
    across every night in the database, drawn by `lwa-db lightcurve`."""
    folders = write_nights(tmp_path / "nights", seed=5)
    db = tmp_path / "nights.sqlite"
    res = run_cli(["lwa-db", "ingest", *map(str, folders), "--db", str(db)])
    assert res.returncode == 0, res.stderr
    res = run_cli(["lwa-stack", "report", str(folders[-1]), "-o", str(tmp_path / "weblog"), "--db", str(db)])
    assert res.returncode == 0, res.stderr
    page = (tmp_path / "weblog" / "targets" / "Var_Star.html").read_text()
    assert "Across nights" in page
    pngs = sorted((tmp_path / "weblog" / "plots" / "db" / "Var_Star").glob("*_lightcurve.png"))
    assert [p.name.split("_")[1] for p in pngs] == ["I", "V"]
    with open(next(pngs[0].parent.glob("*_I_lightcurve.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert len({r["run"] for r in rows}) == 3  # the three nights in one lightcurve
    for p in pngs:
        assert urllib.parse.quote(p.name) in page  # linked (URL-quoted: J-names hold '+')
