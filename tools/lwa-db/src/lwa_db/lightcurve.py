"""Lightcurves of a source from the database: fluxes, errors and upper limits against time.

Points of a source, one Stokes parameter, optionally one subband (or the wideband stacks):

* every measurement associated with it (the primary association): detections with their flux and
  error; forced photometry of a target where it was not detected (its value at the position, its
  error and the limit `cutout.detection_sigma` x RMS); I 10 min - deep differences are left out;
* an upper limit for every image slot -- run, band, interval -- of the same Stokes and image
  category as the source's measurements (deep unless the source was found in 10 min images or
  stacks) whose footprint holds the source and which has no measurement of it: the lowest-RMS
  image of the slot, limit = `transient.v_sigma` (V) or `transient.i_sigma` (I) x its RMS.

`lightcurve()` returns the rows (dicts, sorted by time) so that other tools (the weblog) can read
per-target lightcurves; `write_lightcurve()` writes the CSV and the PNG.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection, Engine

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_db.schema import images, measurements, runs, sources

__all__ = ["LIGHTCURVE_COLUMNS", "find_source", "lightcurve", "write_lightcurve", "parse_position", "subband_label"]

log = logging.getLogger(__name__)

LIGHTCURVE_COLUMNS = ("jname", "name", "stokes", "band", "wideband", "run", "mjd", "time_utc", "interval", "kind",
                      "flux_jy", "flux_err_jy", "snr", "detected", "upper_limit_jy", "image")
_POSITION = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?)\s*,\s*([-+]?\d+(?:\.\d*)?)\s*$")


def parse_position(text: str) -> tuple[float, float] | None:
    """`RA,DEC` in degrees, or None when `text` is a name."""
    m = _POSITION.match(text)
    if not m:
        return None
    ra, dec = float(m.group(1)), float(m.group(2))
    if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise LwaError(f"position {text!r} out of range (RA 0..360, Dec -90..90 degrees)")
    return ra, dec


def _sep_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = (np.radians(np.asarray(x, float)) for x in (ra1, dec1, ra2, dec2))
    c = np.sin(d1) * np.sin(d2) + np.cos(d1) * np.cos(d2) * np.cos(r1 - r2)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def find_source(conn: Connection, query: str, *, radius_beams: float) -> dict[str, Any]:
    """A source by J-name, by its own name (case-insensitive) or by `RA,DEC` (nearest within its radius)."""
    pos = parse_position(query)
    cols = (sources.c.id, sources.c.jname, sources.c.name, sources.c.ra_deg, sources.c.dec_deg, sources.c.moving)
    if pos is None:
        row = conn.execute(select(*cols).where(or_(sources.c.jname == query,
                                                   func.lower(sources.c.name) == query.lower()))).first()
        if row is None:
            raise LwaError(f"no source named {query!r} in the database (a J-name, a target name or RA,DEC)")
        return dict(row._mapping)
    ra, dec = pos
    beam = conn.execute(select(func.max(measurements.c.beam_deg))).scalar() or 1.0
    pad = radius_beams * beam
    rows = conn.execute(select(*cols).where(sources.c.moving.is_(False), sources.c.dec_deg >= dec - pad,
                                            sources.c.dec_deg <= dec + pad)).all()
    if rows:
        seps = _sep_deg(ra, dec, [r.ra_deg for r in rows], [r.dec_deg for r in rows])
        best = int(np.argmin(seps))
        own_beam = conn.execute(select(func.avg(measurements.c.beam_deg)).where(
            measurements.c.source_id == rows[best].id)).scalar() or beam
        if seps[best] <= radius_beams * own_beam:
            return dict(rows[best]._mapping)
    raise LwaError(f"no source within {radius_beams:g} beams of RA {ra:g}, Dec {dec:g}")


_MJD0 = datetime(1858, 11, 17)


def _set_times(rows: list[dict[str, Any]]) -> None:
    """`time_utc` (ISO, to the second) of every row from its MJD (UTC days; plain date arithmetic)."""
    for r in rows:
        if r["mjd"] is not None:
            r["time_utc"] = (_MJD0 + timedelta(days=r["mjd"], milliseconds=500)).isoformat(timespec="seconds")


def lightcurve(engine: Engine, query: str, *, cfg: Config, stokes: str = "I", subband: str | None = None,
               wideband: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(source, rows sorted by time) for `query` (J-name, name or RA,DEC); see the module docstring."""
    with engine.connect() as conn:
        src = find_source(conn, query, radius_beams=cfg.database.association_radius_beams)
        m, im = measurements, images
        stmt = (select(m.c.run_id, runs.c.name.label("run"), m.c.mjd, m.c.interval, m.c.kind, m.c.band,
                       m.c.wideband, m.c.flux_jy, m.c.flux_err_jy, m.c.snr, m.c.detected, m.c.upper_limit_jy,
                       im.c.path.label("image"), im.c.imgcat, im.c.product)
                .select_from(m.join(runs, runs.c.id == m.c.run_id).outerjoin(im, im.c.id == m.c.image_id))
                .where(m.c.source_id == src["id"], m.c.stokes == stokes, m.c.difference.is_(False),
                       m.c.kind != "flux_check"))
        stmt = _band_filter(stmt, m, subband, wideband)
        meas = conn.execute(stmt).all()
        rows = [{"jname": src["jname"], "name": src["name"] or "", "stokes": stokes, "band": r.band,
                 "wideband": bool(r.wideband), "run": r.run, "mjd": r.mjd, "time_utc": "",
                 "interval": r.interval, "kind": r.kind, "flux_jy": r.flux_jy, "flux_err_jy": r.flux_err_jy,
                 "snr": r.snr, "detected": bool(r.detected), "upper_limit_jy": r.upper_limit_jy,
                 "image": r.image or ""} for r in meas]
        if not src["moving"]:
            rows += _limits(conn, src, meas, cfg=cfg, stokes=stokes, subband=subband, wideband=wideband)
    rows.sort(key=lambda r: (r["mjd"] if r["mjd"] is not None else math.inf, r["band"] or ""))
    _set_times(rows)
    n_det = sum(1 for r in rows if r["detected"])
    log.info("lightcurve of %s (%s) Stokes %s: %d points, %d detections, %d limits", src["jname"],
             src["name"] or "-", stokes, len(rows), n_det, len(rows) - n_det)
    return src, rows


def subband_label(text: str) -> str:
    """`55` -> `55MHz` (a label such as `55MHz` is kept)."""
    text = text.strip()
    return f"{text}MHz" if text.replace(".", "").isdigit() else text


def _band_filter(stmt, table, subband: str | None, wideband: bool):
    if subband:
        stmt = stmt.where(table.c.band == subband_label(subband))
    if wideband:
        stmt = stmt.where(table.c.wideband.is_(True))
    elif subband:
        stmt = stmt.where(table.c.wideband.is_(False))
    return stmt


def _limits(conn: Connection, src: dict[str, Any], meas: Sequence[Any], *, cfg: Config, stokes: str,
            subband: str | None, wideband: bool) -> list[dict[str, Any]]:
    """Upper limits from images that cover the source and hold no measurement of it."""
    cats = sorted({r.imgcat for r in meas if r.imgcat}) or ["deep"]
    products = ("stack",) if wideband else ("image", "stack") if not subband else ("image",)
    im = images
    stmt = (select(im.c.run_id, runs.c.name.label("run"), im.c.band, im.c.wideband, im.c.interval, im.c.mjd_mid,
                   im.c.rms_jy, im.c.path, im.c.ra_deg, im.c.dec_deg, im.c.radius_deg)
            .select_from(im.join(runs, runs.c.id == im.c.run_id))
            .where(im.c.stokes == stokes, im.c.imgcat.in_(cats), im.c.product.in_(products),
                   im.c.rms_jy.is_not(None), im.c.radius_deg.is_not(None)))
    stmt = _band_filter(stmt, im, subband, wideband)
    cand = conn.execute(stmt).all()
    if not cand:
        return []
    seps = _sep_deg(src["ra_deg"], src["dec_deg"], [c.ra_deg for c in cand], [c.dec_deg for c in cand])
    have = {(r.run_id, r.band, r.interval) for r in meas}
    best: dict[tuple, Any] = {}
    for c, sep in zip(cand, seps):
        slot = (c.run_id, c.band, c.interval)
        if sep > c.radius_deg or slot in have:
            continue
        if slot not in best or c.rms_jy < best[slot].rms_jy:
            best[slot] = c
    sigma = cfg.transient.v_sigma if stokes == "V" else cfg.transient.i_sigma
    return [{"jname": src["jname"], "name": src["name"] or "", "stokes": stokes, "band": c.band,
             "wideband": bool(c.wideband), "run": c.run, "mjd": c.mjd_mid, "time_utc": "",
             "interval": c.interval, "kind": "limit", "flux_jy": None, "flux_err_jy": c.rms_jy, "snr": None,
             "detected": False, "upper_limit_jy": sigma * c.rms_jy, "image": c.path} for c in best.values()]


def _cell(key: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}" if key == "mjd" else f"{value:.6g}"
    return value


def write_lightcurve(src: dict[str, Any], rows: Sequence[dict[str, Any]], *, csv_path: Path, png_path: Path) -> None:
    """The CSV (LIGHTCURVE_COLUMNS) and a PNG: time on x, flux with errors, limits as down arrows."""
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(LIGHTCURVE_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(k, r[k]) for k in LIGHTCURVE_COLUMNS})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    bands = sorted({(r["band"] or "?") for r in rows})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, band in enumerate(bands):
        colour = colours[k % len(colours)]
        pts = [r for r in rows if (r["band"] or "?") == band and r["mjd"] is not None]
        det = [r for r in pts if r["detected"] and r["flux_jy"] is not None]
        forced = [r for r in pts if not r["detected"] and r["flux_jy"] is not None]
        lim = [r for r in pts if not r["detected"] and r["upper_limit_jy"] is not None]
        if det:
            ax.errorbar(_dates(det), [r["flux_jy"] for r in det], yerr=_err(det), fmt="o", color=colour,
                        capsize=2, label=f"{band} detected")
        if forced:
            ax.errorbar(_dates(forced), [r["flux_jy"] for r in forced], yerr=_err(forced), fmt="o", mfc="none",
                        color=colour, capsize=2, alpha=0.6, label=f"{band} forced")
        if lim:
            ax.plot(_dates(lim), [r["upper_limit_jy"] for r in lim], linestyle="none", marker="v", color=colour,
                    alpha=0.7, label=f"{band} upper limit")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"Stokes {rows[0]['stokes'] if rows else ''} flux density (Jy)")
    ax.set_title(f"{src['jname']}{' (' + src['name'] + ')' if src.get('name') else ''}")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    if rows:
        ax.legend(fontsize="small", loc="best")
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _dates(rows):
    return Time([r["mjd"] for r in rows], format="mjd", scale="utc").to_datetime()


def _err(rows):
    return [r["flux_err_jy"] if r["flux_err_jy"] is not None else 0.0 for r in rows]

