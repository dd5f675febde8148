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

from lwa_common.lazy import lazy_exports

_EXPORTS = {
    "ingest": ("store_run",),
    "lightcurve": ("lightcurve", "write_lightcurve"),
    "query": ("source_table", "variable_sources"),
    "scan": ("scan_run",),
    "schema": ("SCHEMA_VERSION", "open_database"),
    "variability": ("eta_v",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
