"""Ingest: one run's records into the database in one transaction, then the running catalogue.

Idempotent: a run is keyed by its name (`YYYYMMDD-<hour>` from the first DATE-OBS, or
`--run-name`). The same content again (same SHA-256 of the CSVs and FITS headers) is a no-op;
changed content replaces the run's rows (its measurements are associated again, sources left
without any measurement are removed, the touched sources' positions and variability are
recomputed). Writers are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock), so
concurrent ingests from several processes or nodes never lose or duplicate a row; any error rolls
the whole run back.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_db.associate import ASSOCIATED_KINDS, associate, mean_position, new_jnames
from lwa_db.scan import RunRecords
from lwa_db.schema import (
    associations,
    images,
    measurements,
    qa,
    runs,
    sources,
    variability,
    write_transaction,
)
from lwa_db.variability import eta_v

__all__ = ["IngestResult", "store_run", "refresh_sources", "VARIABILITY_KINDS"]

log = logging.getLogger(__name__)

VARIABILITY_KINDS = ("target", "transient", "solar_system")
_CHUNK = 500


@dataclass
class IngestResult:
    run: str
    status: str  # new / updated / unchanged
    n_images: int
    n_measurements: int
    n_new_sources: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _chunks(seq: Sequence[Any], n: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def store_run(engine: Engine, records: RunRecords, *, cfg: Config) -> IngestResult:
    """Write one run (transactional); returns what happened."""
    t0 = time.perf_counter()
    try:
        with write_transaction(engine) as conn:
            old = conn.execute(select(runs.c.id, runs.c.content_hash).where(runs.c.name == records.name)).first()
            if old is not None and old.content_hash == records.content_hash:
                log.info("run %s: unchanged since its last ingest; nothing to do", records.name)
                return IngestResult(records.name, "unchanged", len(records.images), len(records.measurements), 0,
                                    time.perf_counter() - t0)
            touched: set[int] = set()
            if old is not None:
                touched |= _drop_run(conn, old.id)
            run_id = _insert_run(conn, records)
            image_ids = _insert_images(conn, run_id, records.images)
            n_new, links = _associate(conn, records.measurements, cfg=cfg)
            primary = {lk["rec"]: lk["source_id"] for lk in links if lk["kind"] == "primary"}
            meas_ids = _insert_measurements(conn, run_id, records.measurements, image_ids, primary)
            if links:
                conn.execute(associations.insert(), [{**{k: v for k, v in lk.items() if k != "rec"},
                                                      "measurement_id": meas_ids[lk["rec"]]} for lk in links])
            if records.qa:
                conn.execute(qa.insert(), [{**q, "run_id": run_id} for q in records.qa])
            touched |= {lk["source_id"] for lk in links}
            refresh_sources(conn, touched)
    except SQLAlchemyError as err:
        raise LwaError(f"ingest of run {records.name} failed, nothing written: {getattr(err, 'orig', err)}") from None
    status = "updated" if old is not None else "new"
    result = IngestResult(records.name, status, len(records.images), len(records.measurements), n_new,
                          time.perf_counter() - t0)
    log.info("run %s %s: %d images, %d measurements, %d new sources in %.2f s", records.name, status,
             result.n_images, result.n_measurements, n_new, result.seconds)
    return result


def _drop_run(conn: Connection, run_id: int) -> set[int]:
    """Delete a run's rows; the ids of the sources its measurements belonged to."""
    mids = select(measurements.c.id).where(measurements.c.run_id == run_id)
    touched = {r[0] for r in conn.execute(
        select(associations.c.source_id).where(associations.c.measurement_id.in_(mids)).distinct())}
    conn.execute(delete(associations).where(associations.c.measurement_id.in_(mids)))
    for table in (measurements, images, qa):
        conn.execute(delete(table).where(table.c.run_id == run_id))
    conn.execute(delete(runs).where(runs.c.id == run_id))
    return touched


def _insert_run(conn: Connection, rec: RunRecords) -> int:
    lo, hi = rec.mjd_range
    prov = rec.provenance
    row = {"name": rec.name, "path": rec.path, "hour": rec.hour, "date_obs": prov.get("date_obs"),
           "date_end": prov.get("date_end"), "mjd_start": lo, "mjd_end": hi, "content_hash": rec.content_hash,
           "n_images": len(rec.images), "n_measurements": len(rec.measurements),
           "lwaver": ",".join(prov.get("lwaver", [])) or None, "provenance": json.dumps(prov, default=str),
           "ingested_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    return int(conn.execute(runs.insert().values(**row).returning(runs.c.id)).scalar_one())


def _insert_images(conn: Connection, run_id: int, recs: list[dict[str, Any]]) -> dict[str, int]:
    if not recs:
        return {}
    conn.execute(images.insert(), [{**r, "run_id": run_id} for r in recs])
    return {path: iid for iid, path in conn.execute(
        select(images.c.id, images.c.path).where(images.c.run_id == run_id))}


def _insert_measurements(conn: Connection, run_id: int, recs: list[dict[str, Any]], image_ids: dict[str, int],
                         primary: dict[int, int]) -> list[int]:
    """Insert with their primary source; the new ids in the order of `recs`."""
    if not recs:
        return []
    rows = [{**{k: v for k, v in r.items() if k != "image_path"}, "run_id": run_id, "source_id": primary.get(i),
             "image_id": image_ids.get(r.get("image_path") or "")} for i, r in enumerate(recs)]
    return _insert_ids(conn, measurements, rows)


def _insert_ids(conn: Connection, table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows`; their ids in order.

    PostgreSQL: INSERT ... RETURNING with SQLAlchemy's parameter-order guarantee. SQLite: a plain
    executemany (several times faster), then the ids above the previous maximum -- SQLite gives a new
    row max(rowid) + 1, and the write lock is ours for the whole transaction.
    """
    if conn.dialect.name != "sqlite":
        stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return [int(r[0]) for r in conn.execute(stmt, rows)]
    before = conn.execute(select(func.max(table.c.id))).scalar() or 0
    conn.execute(table.insert(), rows)
    ids = [int(r[0]) for r in conn.execute(select(table.c.id).where(table.c.id > before).order_by(table.c.id))]
    if len(ids) != len(rows):
        raise LwaError(f"{table.name}: {len(rows)} rows inserted, {len(ids)} found (concurrent writer?)")
    return ids


def _associate(conn: Connection, recs: list[dict[str, Any]], *, cfg: Config) -> tuple[int, list[dict[str, Any]]]:
    """Associate the run's measurements (new sources are inserted); (number of new sources, links).

    A link is an `associations` row with `rec` (index in `recs`) in place of the measurement id."""
    radius = cfg.database.association_radius_beams
    fixed = [i for i, m in enumerate(recs)
             if m["kind"] in ASSOCIATED_KINDS and (m.get("klass") or "") != "artefact"
             and m.get("ra_deg") is not None and m.get("dec_deg") is not None]
    beams = [recs[i]["beam_deg"] for i in fixed if recs[i].get("beam_deg")]
    fallback = sorted(beams)[len(beams) // 2] if beams else None
    todo = []
    for i in fixed:
        if not recs[i].get("beam_deg"):
            if fallback is None:
                raise LwaError(f"measurement {recs[i].get('name')} ({recs[i]['source_file']}) has no beam size")
            recs[i] = {**recs[i], "beam_deg": fallback}
        todo.append(i)
    links: list[dict[str, Any]] = []
    n_new = 0
    taken = set()
    if todo:
        decs = [recs[i]["dec_deg"] for i in todo]
        pad = radius * max(recs[i]["beam_deg"] for i in todo)
        known = conn.execute(select(sources.c.id, sources.c.ra_deg, sources.c.dec_deg).where(
            sources.c.moving.is_(False), sources.c.dec_deg >= min(decs) - pad,
            sources.c.dec_deg <= max(decs) + pad)).all()
        result = associate([recs[i] for i in todo], [(k, r, d) for k, r, d in known], radius_beams=radius)
        if result.new_sources:
            taken = {r[0] for r in conn.execute(select(sources.c.jname))}
        key_to_id: dict[Any, int] = {}
        seeds = list(result.new_sources.values())
        names = new_jnames([p[0] for p in seeds], [p[1] for p in seeds], taken)
        new_rows = [{"jname": nm, "ra_deg": ra, "dec_deg": dec, "moving": False, "n_detections": 0,
                     "n_measurements": 0} for nm, (ra, dec) in zip(names, seeds)]
        if new_rows:
            key_to_id = dict(zip(result.new_sources, _insert_ids(conn, sources, new_rows)))
        n_new = len(new_rows)
        for k, i in enumerate(todo):
            sid = key_to_id.get(result.primary[k], result.primary[k])
            amb = result.ambiguous.get(k, [])
            links.append({"rec": i, "source_id": sid, "distance_beams": result.distance[k], "kind": "primary",
                          "n_candidates": 1 + len(amb)})
            for key, dist in amb:
                links.append({"rec": i, "source_id": key_to_id.get(key, key), "distance_beams": dist,
                              "kind": "ambiguous", "n_candidates": 1 + len(amb)})
    n_new += _associate_moving(conn, recs, links)
    _name_sources(conn, recs, links)
    return n_new, links


def _associate_moving(conn: Connection, recs, links) -> int:
    """Solar-system bodies: one source per body name."""
    bodies = sorted({m["name"] for m in recs if m["kind"] == "solar_system" and m.get("name")})
    if not bodies:
        return 0
    ids = dict(conn.execute(select(sources.c.jname, sources.c.id).where(sources.c.jname.in_(bodies))).all())
    new = [b for b in bodies if b not in ids]
    if new:
        conn.execute(sources.insert(), [{"jname": b, "name": b, "moving": True, "n_detections": 0,
                                         "n_measurements": 0} for b in new])
        ids.update(dict(conn.execute(select(sources.c.jname, sources.c.id).where(sources.c.jname.in_(new))).all()))
    for i, m in enumerate(recs):
        if m["kind"] == "solar_system" and m.get("name"):
            links.append({"rec": i, "source_id": ids[m["name"]], "distance_beams": None, "kind": "primary",
                          "n_candidates": 1})
    return len(new)


def _name_sources(conn: Connection, recs, links) -> None:
    """A source associated with a target row takes the target's name (when it has none yet)."""
    names = {}
    for lk in links:
        m = recs[lk["rec"]]
        if lk["kind"] == "primary" and m["kind"] == "target" and m.get("name"):
            names.setdefault(lk["source_id"], m["name"])
    if names:
        conn.execute(update(sources).where(sources.c.id == bindparam("sid"), sources.c.name.is_(None)).values(
            name=bindparam("nm")), [{"sid": k, "nm": v} for k, v in names.items()])


def refresh_sources(conn: Connection, source_ids: Iterable[int]) -> None:
    """Recompute position, counts, time span and variability of these sources; drop empty ones."""
    ids = sorted(set(source_ids))
    if not ids:
        return
    rows: dict[int, list[Any]] = defaultdict(list)
    for chunk in _chunks(ids):
        for r in conn.execute(select(
                measurements.c.source_id, measurements.c.kind, measurements.c.stokes, measurements.c.band,
                measurements.c.ra_deg, measurements.c.dec_deg, measurements.c.mjd, measurements.c.detected,
                measurements.c.flux_jy, measurements.c.flux_err_jy, measurements.c.difference).where(
                measurements.c.source_id.in_(chunk))):
            rows[r.source_id].append(r)
    moving = {sid for sid, in conn.execute(select(sources.c.id).where(sources.c.moving.is_(True)))} if rows else set()
    empty = [sid for sid in ids if sid not in rows]
    updates, var_rows = [], []
    for sid, ms in rows.items():
        det = [m for m in ms if m.detected] or ms
        upd = {"sid": sid, "n_det": sum(1 for m in ms if m.detected), "n_meas": len(ms),
               "first": min((m.mjd for m in ms if m.mjd is not None), default=None),
               "last": max((m.mjd for m in ms if m.mjd is not None), default=None)}
        if sid not in moving:
            upd["ra"], upd["dec"] = mean_position([m.ra_deg for m in det], [m.dec_deg for m in det])
        else:
            last = max(ms, key=lambda m: m.mjd or 0.0)
            upd["ra"], upd["dec"] = last.ra_deg, last.dec_deg
        updates.append(upd)
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for m in ms:
            if m.kind in VARIABILITY_KINDS and not m.difference and m.stokes:
                groups[(m.stokes, m.band or "")].append(m)
        for (stokes, band), pts in groups.items():
            n, eta, v, mean, wmean, fmax = eta_v([p.flux_jy if p.flux_jy is not None else float("nan") for p in pts],
                                                 [p.flux_err_jy if p.flux_err_jy is not None else float("nan")
                                                  for p in pts])
            if n:
                var_rows.append({"source_id": sid, "stokes": stokes, "band": band, "n_points": n, "eta": eta,
                                 "v": v, "mean_flux_jy": mean, "wmean_flux_jy": wmean, "max_flux_jy": fmax})
    for chunk in _chunks(ids):
        conn.execute(delete(variability).where(variability.c.source_id.in_(chunk)))
    if var_rows:
        conn.execute(variability.insert(), var_rows)
    if updates:
        conn.execute(update(sources).where(sources.c.id == bindparam("sid")).values(
            ra_deg=bindparam("ra"), dec_deg=bindparam("dec"), n_detections=bindparam("n_det"),
            n_measurements=bindparam("n_meas"), first_mjd=bindparam("first"), last_mjd=bindparam("last")), updates)
    for chunk in _chunks(empty):
        conn.execute(delete(associations).where(associations.c.source_id.in_(chunk)))
        conn.execute(delete(sources).where(sources.c.id.in_(chunk)))
    if empty:
        log.info("removed %d sources left without measurements", len(empty))
