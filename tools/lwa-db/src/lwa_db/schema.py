"""The database: tables (SQLAlchemy Core), the versioned schema and the engine for a URL.

Backends: an SQLite file (the default; WAL journal, a busy timeout, and every write transaction
opened with `BEGIN IMMEDIATE`, so several processes on one node ingest safely one after the other)
or PostgreSQL by URL (`postgresql+psycopg://user:pass@host/db`; many nodes at once, ingests
serialised by a transaction-level advisory lock). SQLite over a network file system (Lustre, NFS)
is unsafe: use PostgreSQL there.

Schema versions: the `schema_version` table holds one row per applied migration. `MIGRATIONS`
maps a version to the function that brings the previous version to it; `open_database` applies
the missing ones in order, in one transaction, and refuses a database newer than this code.

| table | one row per |
|---|---|
| `runs` | ingested run (an LST hour of one night): name, path, time span, content hash, provenance (JSON) |
| `images` | FITS product, from its header: STOKES, IMGCAT, INTERVAL, CONFIG, SUBBAND/BAND, FREQMHZ, dates, beam, RMS, footprint |
| `measurements` | target / solar-system photometry (per Stokes), transient candidate, flux-check row |
| `sources` | source of the running catalogue: stable J-name, mean position, detections, first/last MJD |
| `associations` | measurement -> source link, with distance in beams; `ambiguous` rows for one-to-many matches |
| `variability` | eta and V per source, Stokes and band, with the number of points |
| `qa` | QA score of a run (flux-scale ratios, QA JSON numbers) |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from lwa_common.config import Database
from lwa_common.errors import LwaError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "metadata", "runs", "images", "measurements", "sources",
           "associations", "variability", "qa", "schema_version", "make_engine", "open_database",
           "current_version", "lock_for_ingest", "write_transaction"]

log = logging.getLogger(__name__)

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_utc", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("hour", String(32)),
    Column("date_obs", String(32)),
    Column("date_end", String(32)),
    Column("mjd_start", Float),
    Column("mjd_end", Float),
    Column("content_hash", String(64), nullable=False),
    Column("n_images", Integer, nullable=False, default=0),
    Column("n_measurements", Integer, nullable=False, default=0),
    Column("lwaver", String(64)),
    Column("provenance", Text),  # JSON
    Column("ingested_utc", String(32), nullable=False),
)

images = Table(
    "images", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("product", String(16), nullable=False),  # image / stack / snapshot / cutout / screen
    Column("stokes", String(4)),
    Column("imgcat", String(16)),
    Column("interval", String(16)),
    Column("nintervl", Integer),
    Column("config", String(64)),
    Column("role", String(16)),
    Column("robust", Float),
    Column("taper", Float),
    Column("pbcor", Boolean),
    Column("dewarped", Boolean),
    Column("subband", String(32)),
    Column("band", String(32)),
    Column("wideband", Boolean, nullable=False, default=False),
    Column("freq_mhz", Float),
    Column("date_obs", String(32)),
    Column("date_end", String(32)),
    Column("mjd_mid", Float),
    Column("bmaj_deg", Float),
    Column("bmin_deg", Float),
    Column("bpa_deg", Float),
    Column("rms_jy", Float),
    Column("ra_deg", Float),
    Column("dec_deg", Float),
    Column("radius_deg", Float),
    Column("lwaver", String(64)),
    UniqueConstraint("run_id", "path", name="uq_images_run_path"),
)
Index("ix_images_select", images.c.stokes, images.c.imgcat, images.c.band)
Index("ix_images_run", images.c.run_id)

sources = Table(
    "sources", metadata,
    Column("id", Integer, primary_key=True),
    Column("jname", String(64), nullable=False, unique=True),
    Column("name", String(200)),  # a target's or body's own name, when it has one
    Column("moving", Boolean, nullable=False, default=False),  # solar-system body: associated by name
    Column("ra_deg", Float),
    Column("dec_deg", Float),
    Column("n_detections", Integer, nullable=False, default=0),
    Column("n_measurements", Integer, nullable=False, default=0),
    Column("first_mjd", Float),
    Column("last_mjd", Float),
)
Index("ix_sources_dec", sources.c.dec_deg)
Index("ix_sources_name", sources.c.name)

measurements = Table(
    "measurements", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("image_id", Integer, ForeignKey("images.id", ondelete="SET NULL")),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="SET NULL")),
    Column("kind", String(16), nullable=False),  # target / solar_system / transient / flux_check
    Column("name", String(200)),
    Column("stokes", String(4)),
    Column("subband", String(32)),
    Column("band", String(32)),
    Column("wideband", Boolean, nullable=False, default=False),
    Column("freq_mhz", Float),
    Column("interval", String(16)),
    Column("difference", Boolean, nullable=False, default=False),  # I 10 min - deep: not a flux
    Column("mjd", Float),
    Column("ra_deg", Float),
    Column("dec_deg", Float),
    Column("beam_deg", Float),
    Column("flux_jy", Float),
    Column("flux_err_jy", Float),
    Column("snr", Float),
    Column("detected", Boolean, nullable=False, default=False),
    Column("upper_limit_jy", Float),
    Column("klass", String(32)),
    Column("source_file", Text),
    Column("extra", Text),  # JSON: the row's other columns
)
Index("ix_measurements_run", measurements.c.run_id)
Index("ix_measurements_source", measurements.c.source_id, measurements.c.stokes)

associations = Table(
    "associations", metadata,
    Column("id", Integer, primary_key=True),
    Column("measurement_id", Integer, ForeignKey("measurements.id", ondelete="CASCADE"), nullable=False),
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    Column("distance_beams", Float),
    Column("kind", String(16), nullable=False),  # primary / ambiguous
    Column("n_candidates", Integer, nullable=False, default=1),
)
Index("ix_assoc_measurement", associations.c.measurement_id)
Index("ix_assoc_source", associations.c.source_id)

variability = Table(
    "variability", metadata,
    Column("source_id", Integer, ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True),
    Column("stokes", String(4), primary_key=True),
    Column("band", String(32), primary_key=True),
    Column("n_points", Integer, nullable=False),
    Column("eta", Float),
    Column("v", Float),
    Column("mean_flux_jy", Float),
    Column("wmean_flux_jy", Float),
    Column("max_flux_jy", Float),
)

qa = Table(
    "qa", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("subband", String(32)),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("value", Float),
    Column("extra", Text),
)
Index("ix_qa_run", qa.c.run_id)


def _v1(conn: Connection) -> None:
    """Version 1: every table above."""
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_version])


MIGRATIONS: dict[int, tuple[str, Callable[[Connection], None]]] = {
    1: ("runs, images, measurements, sources, associations, variability, qa", _v1),
}
"""version -> (description, migration from version - 1); append, never edit a released one."""
SCHEMA_VERSION = max(MIGRATIONS)


def _sqlite_pragmas(dbapi_connection, _record, *, busy_ms: int) -> None:
    # pysqlite's own transaction handling is off: the "begin" event (_sqlite_begin) emits BEGIN.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # writers take the write lock up front (no deadlock on lock upgrade); readers keep WAL's snapshots
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("lwa_write") else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: SQLite BEGIN IMMEDIATE, PostgreSQL an advisory lock; committed on success."""
    with engine.connect() as conn:
        conn.execution_options(lwa_write=True)
        with conn.begin():
            lock_for_ingest(conn)
            yield conn


def make_engine(url: str, *, settings: Database | None = None) -> Engine:
    """An engine for `url` (a bare path is taken as an SQLite file)."""
    settings = settings or Database()
    if "://" not in url:
        url = f"sqlite:///{url}"
    try:
        if url.startswith("sqlite"):
            busy_ms = int(settings.busy_timeout_s * 1000)
            engine = create_engine(url, connect_args={"timeout": settings.busy_timeout_s})
            event.listen(engine, "connect", lambda c, r: _sqlite_pragmas(c, r, busy_ms=busy_ms))
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as err:
        raise LwaError(f"cannot use database URL {_safe(url)}: {err}") from None
    return engine


def _safe(url: str) -> str:
    """The URL without its password (for messages)."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        cred, _, host = tail.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{head}{sep}{user}:***@{host}"
    return url


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)


def lock_for_ingest(conn: Connection) -> None:
    """Serialise writers of the running catalogue (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(20260620)"))


def open_database(url: str, *, settings: Database | None = None, create: bool = True) -> Engine:
    """An engine on an up-to-date schema: creates the tables or migrates, in one transaction."""
    engine = make_engine(url, settings=settings)
    try:
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                schema_version.create(conn, checkfirst=True)
            version = current_version(conn)
            if version > SCHEMA_VERSION:
                raise LwaError(f"database {_safe(url)} has schema version {version}, newer than this lwa-db "
                               f"({SCHEMA_VERSION}): upgrade lwa-db")
            if version < SCHEMA_VERSION and not create:
                raise LwaError(f"database {_safe(url)} is empty or old (schema {version}); run lwa-db ingest "
                               "first")
            if version == 0:
                schema_version.create(conn, checkfirst=True)
            for v in range(version + 1, SCHEMA_VERSION + 1):
                description, migrate = MIGRATIONS[v]
                migrate(conn)
                conn.execute(schema_version.insert().values(
                    version=v, applied_utc=datetime.now(UTC).isoformat(timespec="seconds"), description=description))
                log.info("database %s: schema migrated to version %d (%s)", _safe(url), v, description)
    except OperationalError as err:
        raise LwaError(f"cannot open database {_safe(url)}: {err.orig}") from None
    except SQLAlchemyError as err:
        raise LwaError(f"database {_safe(url)}: {err}") from None
    return engine
