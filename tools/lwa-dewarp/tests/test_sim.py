"""End to end on a simulated observation: lwa-sim shifts the sources by a smooth ionospheric offset
field (>= 1 beam), real wsclean images it, `lwa-dewarp fit` against the simulator's catalog.csv
(true positions) and `lwa-dewarp apply` put the sources back."""

from __future__ import annotations

import csv
import json
import math
import subprocess

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.io import fits
from astropy.time import Time

from lwa_common.site import ovro_location
from lwa_common.testing import fit_point_source, run_cli
from lwa_dewarp.extract import celestial_wcs

START = "2024-12-20T12:00:00"  # zenith near RA 151, Dec +37.4
SIZE, SCALE_DEG = 512, 0.08  # 41 deg field; 64 antennas at 57 MHz, Briggs 0: beam ~17' x 12' (3.6 x 2.5 px)
MAX_ZENITH_DEG = 19.0
AMPLITUDE_ARCMIN = 22.0
RADIUS_ARCMIN = "60"  # offsets reach ~30': the 5' default is for arcminute-scale real offsets


def _explicit_spec(n: int = 45, seed: int = 7) -> dict:
    """Sources uniform within MAX_ZENITH_DEG of the zenith, each with the offset of a smooth analytic
    field (sinusoids of 40-60 deg wavelength in the zenith tangent plane) of ~AMPLITUDE_ARCMIN."""
    rng = np.random.default_rng(seed)
    frame = AltAz(obstime=Time(START) + 5 * u.s, location=ovro_location())
    cos_z = rng.uniform(math.cos(math.radians(MAX_ZENITH_DEG)), 1.0, n)
    az = rng.uniform(0.0, 360.0, n)
    where = SkyCoord(alt=np.degrees(np.arcsin(cos_z)) * u.deg, az=az * u.deg, frame=frame).icrs
    where = SkyCoord(where.ra, where.dec)
    zenith = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=frame).icrs
    zenith = SkyCoord(zenith.ra, zenith.dec)
    x, y = (o.deg for o in zenith.spherical_offsets_to(where))
    a = AMPLITUDE_ARCMIN
    ox = a * (0.8 * np.sin(2 * np.pi * x / 50 + 0.5) + 0.4 * np.cos(2 * np.pi * y / 40))
    oy = a * (0.7 * np.cos(2 * np.pi * (x + y) / 60 + 1.0) - 0.3)
    flux = np.exp(rng.uniform(np.log(15.0), np.log(150.0), n))
    sources = [{"name": f"s{i:02d}", "ra": float(where[i].ra.deg), "dec": float(where[i].dec.deg),
                "flux_jy": float(flux[i]), "ref_freq_mhz": 73.8, "spectral_index": -0.8,
                "offset_arcmin": [float(ox[i]), float(oy[i])]} for i in range(n)]
    return {"noise": {"sigma_jy": 1.0}, "sources": sources}


def _ionosphere_spec() -> dict:
    return {"noise": {"sigma_jy": 1.0},
            "random_sources": {"count": 45, "flux_jy": [15, 150], "min_elevation_deg": 90 - MAX_ZENITH_DEG,
                               "seed": 4, "spectral_index": -0.8},
            "ionosphere": {"amplitude_arcmin": 30, "scale_deg": 40, "seed": 3}}


def _wsclean(ms, name) -> None:
    cmd = ["wsclean", "-quiet", "-size", str(SIZE), str(SIZE), "-scale", str(SCALE_DEG), "-niter", "5000",
           "-auto-threshold", "3", "-mgain", "0.8", "-weight", "briggs", "0", "-no-update-model-required",
           "-name", str(name), str(ms)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


def _write_catalog(src, dst, keep) -> None:
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    with open(dst, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *[r for r in rows[1:] if keep(r[0])]])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["explicit", "ionosphere"])
def test_dewarp_simulated_ionosphere(sim_cache, tmp_path, kind):
    """`explicit`: per-source offsets of a known analytic field; `ionosphere`: the simulator's own
    random smooth field (`ionosphere:` + `random_sources:` spec)."""
    spec = _explicit_spec() if kind == "explicit" else _ionosphere_spec()
    out, truth = sim_cache(f"dewarp_{kind}", spec, n_int=1, n_antennas=64, n_channels=8)
    ms = next(out.glob("*.ms"))
    name = tmp_path / "deep"
    _wsclean(ms, name)
    image, dirty = tmp_path / "deep-image.fits", tmp_path / "deep-dirty.fits"
    sources = [s for s in truth["sources"] if s["kind"] != "transient"]
    names = sorted(s["name"] for s in sources)
    fit_names = set(names[0::2])  # the other half judges the screen where it was not told anything
    catalog = tmp_path / "catalog_fit.csv"
    _write_catalog(out / "catalog.csv", catalog, lambda n: n in fit_names)

    screen = tmp_path / "screen.fits"
    res = run_cli(["lwa-dewarp", "fit", str(image), "--catalog", str(catalog), "-o", str(screen),
                   "--match-radius-arcmin", RADIUS_ARCMIN, "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["status"] == "ok" and summary["n_anchors"] >= 0.75 * len(fit_names), summary
    res = run_cli(["lwa-dewarp", "apply", str(image), str(dirty), "--screen", str(screen), "-o",
                   str(tmp_path / "dw")])
    assert res.returncode == 0, res.stderr
    dewarped = tmp_path / "dw" / "deep-image_dewarped.fits"
    assert fits.getheader(tmp_path / "dw" / "deep-dirty_dewarped.fits")["DEWARPED"] is True

    header = fits.getheader(image)
    wcs = celestial_wcs(header)
    beam = math.sqrt(header["BMAJ"] * header["BMIN"]) * 60.0
    plane0 = fits.getdata(image)[0, 0]
    plane1 = fits.getdata(dewarped)[0, 0]
    before, after, ratio, held_out = [], [], [], []
    for s in sources:
        xa, ya = wcs.world_to_pixel_values(s["apparent_ra_deg"], s["apparent_dec_deg"])
        xt, yt = wcs.world_to_pixel_values(s["ra_deg"], s["dec_deg"])
        f0 = fit_point_source(plane0, float(xa), float(ya))
        f1 = fit_point_source(plane1, float(xt), float(yt))
        true = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg)
        for fit, into in ((f0, before), (f1, after)):
            ra, dec = wcs.pixel_to_world_values(fit["x"], fit["y"])
            into.append(true.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcmin)
        ratio.append(f1["peak"] / f0["peak"])
        held_out.append(s["name"] not in fit_names)
    before, after, ratio, held_out = map(np.asarray, (before, after, ratio, held_out))
    assert np.median(before) >= 1.0 * beam, (np.median(before), beam)
    assert np.median(after) <= 0.2 * beam, (np.median(after), beam)
    assert np.median(after[held_out]) <= 0.2 * beam, (np.median(after[held_out]), beam)
    assert np.abs(ratio - 1).max() < 0.03, ratio
    # the screen's own cross-validated estimate agrees
    assert summary["median_offset_after_cv_beams"] <= 0.2

    # the same image with a catalogue of five sources: warning, exit 0, no screen
    few = tmp_path / "few.csv"
    _write_catalog(out / "catalog.csv", few, lambda n: n in set(names[:5]))
    res = run_cli(["lwa-dewarp", "fit", str(image), "--catalog", str(few), "-o", str(tmp_path / "s2.fits"),
                   "--match-radius-arcmin", RADIUS_ARCMIN, "--json"])
    assert res.returncode == 0 and json.loads(res.stdout)["status"] == "too_few_anchors"
    assert not (tmp_path / "s2.fits").exists() and "WARNING" in res.stderr
