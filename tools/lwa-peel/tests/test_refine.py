"""lwa_peel.refine on lwa-sim truth: field sources moved by the ionosphere are found where they are."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from lwa_common.catalogs import CatalogSource
from lwa_common.ms import ms_info
from lwa_peel.model import field_direction
from lwa_peel.refine import refine_field

START = "2024-12-20T01:00:00"  # zenith RA ~343 deg, Dec +37


def _sky(rng: np.random.Generator) -> list[dict]:
    ra = (343 + rng.uniform(-30, 30, 8)) % 360
    dec = 37 + rng.uniform(-25, 25, 8)
    flux = rng.uniform(10, 60, 8)
    return [{"name": f"f{k}", "ra": float(r), "dec": float(d), "flux_jy": float(f), "spectral_index": -0.7,
             "ref_freq_mhz": 60.0} for k, (r, d, f) in enumerate(zip(ra, dec, flux, strict=True))]


@pytest.mark.parametrize("seed", [1, 2])
def test_field_positions_and_fluxes_fitted(sim_cache, seed):
    """8' ionospheric offsets: the catalogue (true positions, a 10 % flux error, no beam) is off by
    them; the fit puts every source within 0.5' of where the sky shows it and its apparent flux
    within 2 %."""
    rng = np.random.default_rng(seed)
    sky = _sky(rng)
    out, truth = sim_cache(f"refine_{seed}", {"sources": sky, "noise": {"sigma_jy": 0.5},
                                             "ionosphere": {"amplitude_arcmin": 8, "scale_deg": 40, "seed": seed}},
                           n_int=1, n_antennas=64, n_channels=8, start=START, seed=seed, layout="core")
    (ms,) = sorted(out.glob("*.ms"))
    truth = json.loads((out / "truth.json").read_text())
    shown = {s["name"]: s for s in truth["sources"]}
    catalogue = [CatalogSource(name=s["name"], ra_deg=s["ra"], dec_deg=s["dec"], flux_jy=s["flux_jy"] * 1.1,
                               ref_freq_hz=60e6, spectral_index=(-0.7,)) for s in sky]
    info = ms_info(ms)
    field = field_direction(catalogue, time=info.time_mid, location=info.array_centre, freqs_hz=info.freqs_hz,
                            peeled=[], min_flux_jy=1.0, exclude_deg=1.0)
    assert len(field.components) == len(sky)  # all up, near the zenith
    moved, fits = refine_field(ms, "DATA", field, min_flux_jy=1.0, max_offset_arcmin=20.0, uv_min_lambda=5.0)
    assert len(fits) == len(field.components) and all(f.moved for f in fits)
    before, after = [], []
    for old, new, src in zip(field.components, moved.components, catalogue, strict=True):
        where = SkyCoord(shown[src.name]["apparent_ra_deg"] * u.deg, shown[src.name]["apparent_dec_deg"] * u.deg)
        before.append(where.separation(SkyCoord(old.ra_deg * u.deg, old.dec_deg * u.deg)).arcmin)
        after.append(where.separation(SkyCoord(new.ra_deg * u.deg, new.dec_deg * u.deg)).arcmin)
        seen = shown[src.name]["flux_by_subband"]["55MHz"]  # with the beam, which this model lacks
        assert new.flux_at(seen["freq_hz"]) == pytest.approx(seen["apparent_jy"], rel=0.02)
    assert np.median(before) > 3  # the ionosphere moved them
    assert max(after) < 0.5, after

