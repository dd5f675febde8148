"""Read-only queries: the running catalogue and the variable sources."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from lwa_common.config import Database
from lwa_db.schema import associations, measurements, sources, variability

__all__ = ["source_table", "variable_sources"]


def source_table(engine: Engine) -> list[dict[str, Any]]:
    """Every source with its number of runs and of ambiguous associations."""
    n_runs = (select(measurements.c.source_id, func.count(func.distinct(measurements.c.run_id)).label("n_runs"))
              .group_by(measurements.c.source_id).subquery())
    n_amb = (select(associations.c.source_id, func.count().label("n_ambiguous"))
             .where(associations.c.kind == "ambiguous").group_by(associations.c.source_id).subquery())
    stmt = (select(sources.c.jname, sources.c.name, sources.c.ra_deg, sources.c.dec_deg, sources.c.moving,
                   sources.c.n_measurements, sources.c.n_detections, sources.c.first_mjd, sources.c.last_mjd,
                   func.coalesce(n_runs.c.n_runs, 0).label("n_runs"),
                   func.coalesce(n_amb.c.n_ambiguous, 0).label("n_ambiguous"))
            .select_from(sources.outerjoin(n_runs, n_runs.c.source_id == sources.c.id)
                         .outerjoin(n_amb, n_amb.c.source_id == sources.c.id))
            .order_by(sources.c.ra_deg, sources.c.jname))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def variable_sources(engine: Engine, *, settings: Database = Database(), stokes: str | None = None,
                     band: str | None = None) -> list[dict[str, Any]]:
    """Rows of (source, Stokes, band) with eta >= eta_min, V >= v_min and at least min_points points.

    The thresholds come from `settings` (the `[database]` config section)."""
    eta_min, v_min, min_points = settings.eta_min, settings.v_min, settings.min_points
    v = variability
    stmt = (select(sources.c.jname, sources.c.name, sources.c.ra_deg, sources.c.dec_deg, v.c.stokes, v.c.band,
                   v.c.n_points, v.c.eta, v.c.v, v.c.mean_flux_jy, v.c.wmean_flux_jy, v.c.max_flux_jy,
                   sources.c.n_detections)
            .select_from(v.join(sources, sources.c.id == v.c.source_id))
            .where(v.c.eta >= eta_min, v.c.v >= v_min, v.c.n_points >= min_points)
            .order_by(v.c.eta.desc()))
    if stokes:
        stmt = stmt.where(v.c.stokes == stokes)
    if band:
        stmt = stmt.where(v.c.band == band)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
