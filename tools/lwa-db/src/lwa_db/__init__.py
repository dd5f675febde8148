"""lwa-db: the OVRO-LWA products database.

Runs, images (from their self-describing headers), target and solar-system photometry, transient
candidates, flux-check rows and QA of every ingested run; measurements associated across runs and
nights into sources (a TraP-style running catalogue with stable J-names); lightcurves with upper
limits; eta and V variability. SQLAlchemy Core on SQLite (default) or PostgreSQL.

Python use (e.g. the weblog reading a target's lightcurve)::

    from lwa_common.config import load_config
    from lwa_db import open_database, lightcurve
    cfg = load_config(None)
    src, rows = lightcurve(open_database("nights.sqlite"), "CR Dra", cfg=cfg, stokes="V")
"""

from __future__ import annotations

from lwa_db.ingest import store_run
from lwa_db.lightcurve import lightcurve, write_lightcurve
from lwa_db.query import source_table, variable_sources
from lwa_db.scan import scan_run
from lwa_db.schema import SCHEMA_VERSION, open_database
from lwa_db.variability import eta_v

__all__ = ["SCHEMA_VERSION", "open_database", "scan_run", "store_run", "lightcurve", "write_lightcurve",
           "source_table", "variable_sources", "eta_v"]
