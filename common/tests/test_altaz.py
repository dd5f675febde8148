"""lwa_common.altaz: erfa az/el on the cached IERS table against astropy's AltAz transform."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.time import Time

from lwa_common import altaz
from lwa_common.config import Site
from lwa_common.site import ovro_location


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    """An empty user cache and no table in memory: the first call builds the cached copy."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    altaz._eop_table.cache_clear()
    yield tmp_path / "lwa-pipe"
    altaz._eop_table.cache_clear()


def _astropy(ra, dec, time, location):
    hor = SkyCoord(ra * u.deg, dec * u.deg).transform_to(AltAz(obstime=time, location=location))
    return hor.az.deg, hor.alt.deg


@pytest.mark.parametrize("when", ["2024-12-20T12:00:00", "2016-12-31T23:59:59.5", "2017-01-01T00:00:00.5",
                                  "2026-03-01T07:30:00"])
def test_matches_astropy_altaz(fresh_cache, when: str) -> None:
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 300), np.degrees(np.arcsin(rng.uniform(-1, 1, 300)))
    time, location = Time(when, scale="utc"), ovro_location()
    az, el = altaz.icrs_to_altaz(ra, dec, time=time, location=location)
    ref = SkyCoord(*(np.asarray(a) * u.deg for a in _astropy(ra, dec, time, location)), frame="altaz")
    got = SkyCoord(az * u.deg, el * u.deg, frame="altaz")
    assert ref.separation(got).to_value(u.mas).max() < 1.0
    assert list(fresh_cache.glob("iers-eop-*.npz")), "the table copy was not cached"


def test_site_and_location_agree_and_cache_is_reused(fresh_cache) -> None:
    time = Time("2024-06-01T03:00:00", scale="utc")
    a = altaz.icrs_to_altaz(83.6, 22.0, time=time, location=Site())
    altaz._eop_table.cache_clear()  # next call reads the cached file, not astropy's table
    b = altaz.icrs_to_altaz(83.6, 22.0, time=time, location=ovro_location())
    assert np.allclose(a, b, rtol=0, atol=1e-9)


def test_time_outside_the_table_behaves_as_astropy(fresh_cache) -> None:
    """Before the table (1960): astropy's defaults and warnings, and the same az/el as astropy."""
    time, location = Time("1960-01-01T00:00:00", scale="utc"), ovro_location()
    with pytest.warns(Warning):
        ref_az, ref_el = _astropy(np.array([83.6]), np.array([22.0]), time, location)
    with pytest.warns(Warning):
        az, el = altaz.icrs_to_altaz(83.6, 22.0, time=time, location=location)
    assert abs(az - ref_az[0]) < 1e-7 and abs(el - ref_el[0]) < 1e-7
