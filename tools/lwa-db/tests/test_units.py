"""Unit tests: eta and V, association (ambiguity, J-names), positions, schema versioning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import text

from lwa_common.errors import LwaError
from lwa_db.associate import associate, mean_position, new_jnames
from lwa_db.lightcurve import parse_position
from lwa_db.schema import SCHEMA_VERSION, open_database
from lwa_db.variability import eta_v


def test_eta_v_match_the_definitions():
    rng = np.random.default_rng(7)
    flux = rng.uniform(1, 20, 9)
    err = rng.uniform(0.2, 2.0, 9)
    n, eta, v, mean, wmean, fmax = eta_v(flux, err)
    w = 1 / err**2
    wm = (w * flux).sum() / w.sum()
    assert n == 9 and wmean == pytest.approx(wm) and fmax == flux.max() and mean == pytest.approx(flux.mean())
    # Swinbank et al. (2015) eqs. as written: eta = N/(N-1) (<w I^2> - <w I>^2 / <w>),
    # V = (1/<I>) sqrt(N/(N-1) (<I^2> - <I>^2))
    assert eta == pytest.approx(n / (n - 1) * ((w * flux**2).mean() - (w * flux).mean() ** 2 / w.mean()))
    assert v == pytest.approx(np.sqrt(n / (n - 1) * ((flux**2).mean() - flux.mean() ** 2)) / flux.mean())


def test_eta_v_edge_cases():
    assert eta_v([5.0], [1.0])[:3] == (1, None, None)
    assert eta_v([], [])[0] == 0
    n, eta, v, *_ = eta_v([3.0, 3.0, math.nan, 4.0], [1.0, 1.0, 1.0, 0.0])  # NaN flux and zero error dropped
    assert (n, eta, v) == (2, 0.0, 0.0)
    assert eta_v([-2.0, -4.0], [1.0, 1.0])[2] > 0  # negative Stokes V mean: V stays positive


def meas(ra, dec, beam=0.5, snr=10.0, kind="transient"):
    return {"ra_deg": ra, "dec_deg": dec, "beam_deg": beam, "snr": snr, "kind": kind}


def test_association_nearest_with_ambiguous_recorded():
    sources = [(1, 150.0, 36.0), (2, 150.4, 36.0), (3, 170.0, 10.0)]
    res = associate([meas(150.15, 36.0), meas(160.0, 20.0), meas(170.1, 10.0)], sources, radius_beams=1.0)
    assert res.primary[0] == 1 and [k for k, _ in res.ambiguous[0]] == [2]
    assert res.distance[0] == pytest.approx(0.15 * math.cos(math.radians(36)) / 0.5, rel=1e-3)
    assert res.primary[2] == 3 and not res.ambiguous.get(2)
    assert res.primary[1] in res.new_sources  # nothing within a beam: a new source


def test_new_sources_take_their_neighbours_brightest_first():
    ms = [meas(10.0, 0.0, snr=6), meas(10.1, 0.0, snr=20), meas(12.0, 0.0, snr=8), meas(10.05, 0.0, snr=5)]
    res = associate(ms, [], radius_beams=1.0)
    assert len(res.new_sources) == 2
    assert res.primary[0] == res.primary[1] == res.primary[3] != res.primary[2]
    assert res.new_sources[res.primary[1]] == pytest.approx((10.1, 0.0))  # seeded by the brightest


def test_jnames_are_unique_and_match_lwa_common_naming():
    from astropy.coordinates import SkyCoord

    from lwa_common.naming import jname

    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 50), rng.uniform(-90, 90, 50)
    ra[:3], dec[:3] = (83.63, 359.9999, 10.0), (22.01, -0.0001, -89.99)
    names = new_jnames(ra, dec, set())
    assert names == [jname(SkyCoord(r, d, unit="deg")) for r, d in zip(ra, dec)]
    taken: set[str] = set()
    a, b = new_jnames([83.63, 83.63], [22.01, 22.01], taken)
    assert a == "J053431+220036" and b == a + "a"


def test_mean_position_wraps():
    ra, dec = mean_position([359.9, 0.1], [10.0, 10.0])
    assert min(ra, 360 - ra) < 1e-6 and dec == pytest.approx(10.0, abs=1e-4)


def test_parse_position():
    assert parse_position("83.6, 22.0") == (83.6, 22.0)
    assert parse_position("CR Dra") is None
    with pytest.raises(LwaError):
        parse_position("400,10")


def test_schema_version_newer_than_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = open_database(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version (version, applied_utc, description) VALUES (:v, 'x', 'y')"),
                     {"v": SCHEMA_VERSION + 1})
    engine.dispose()
    with pytest.raises(LwaError, match="newer than this lwa-db"):
        open_database(url)


def test_sqlite_is_in_wal_mode(tmp_path):
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_sqlite_readers_are_not_blocked_by_a_writer(tmp_path):
    from sqlalchemy import func, select

    from lwa_db.schema import runs, write_transaction

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    writer, reader = open_database(url), open_database(url)
    with write_transaction(writer) as conn:
        conn.execute(runs.insert().values(name="r", path="/r", content_hash="x", n_images=0, n_measurements=0,
                                          ingested_utc="now"))
        with reader.connect() as rconn:  # WAL: the committed snapshot, at once (no busy wait)
            assert rconn.execute(select(func.count()).select_from(runs)).scalar_one() == 0
    with reader.connect() as rconn:
        assert rconn.execute(select(func.count()).select_from(runs)).scalar_one() == 1
    writer.dispose()
    reader.dispose()
