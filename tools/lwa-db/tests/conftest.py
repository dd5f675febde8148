"""Fixtures of the lwa-db tests: a fresh database on each backend (real SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from lwa_common.config import load_config


def _pg_admin_url() -> str | None:
    return os.environ.get("LWA_TEST_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A new, empty database URL: an SQLite file in tmp_path, or a new PostgreSQL database (dropped after).

    PostgreSQL needs $LWA_TEST_PG_URL (bin/ci-services.sh prints it; .ci/run exports it): without it the
    PostgreSQL cases are skipped, except in CI (CI=true), where that is a failure.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'products.sqlite'}"
        return
    admin = _pg_admin_url()
    if not admin:
        why = "LWA_TEST_PG_URL is not set (eval \"$(bin/ci-services.sh)\" starts PostgreSQL and prints it)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    name = f"lwa_db_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(engine, name)
        engine.dispose()


def _drop_database(engine, name: str) -> None:
    """DROP ... WITH (FORCE); retried, since a backend (autovacuum) may still be leaving the database."""
    for attempt in range(10):
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == 9:
                raise
            time.sleep(1.0)


@pytest.fixture
def cfg():
    return load_config(None)
