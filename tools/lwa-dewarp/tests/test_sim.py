"""End to end on simulated observations: lwa-sim moves the sources by its smooth ionospheric offset
field (none, ~1 beam, ~2 beams; two seeds each), real wsclean images them, and `lwa-dewarp` runs
with its defaults against the simulator's catalog.csv (true positions).

Held-out accuracy is judged by 4-fold cross-validation: four fits, each on three quarters of the
catalogue, each judged on the quarter it never saw, so every source is judged once where the
screen was not told about it, at the anchor density of the chain (which fits on every source).
Positions are measured independently (astropy Gaussian fits, `fit_point_source`)."""

from __future__ import annotations

import csv
import json
import logging
import math
import subprocess

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from lwa_common.fitsio import image_plane
from lwa_common.testing import fit_point_source, run_cli
from lwa_dewarp.apply import apply_screen
from lwa_dewarp.extract import celestial_wcs
from lwa_dewarp.fit import fit_screen

log = logging.getLogger(__name__)

SIZE, SCALE_DEG = 1024, 0.08  # 82 deg; 64 antennas at 57 MHz, Briggs 0: beam ~19' (4 px)
FOLDS = 4
# (amplitude of the simulator's field in arcmin, seed): no ionosphere, ~1 beam, ~2 beams
SKIES = [(0, 1), (0, 2), (20, 1), (20, 2), (38, 1), (38, 2)]


def _spec(amplitude: float, seed: int) -> dict:
    spec = {"noise": {"sigma_jy": 1.0},
            "random_sources": {"count": 40, "flux_jy": [15, 150], "min_elevation_deg": 45, "seed": seed,
                               "spectral_index": -0.8}}
    if amplitude:
        spec["ionosphere"] = {"amplitude_arcmin": amplitude, "scale_deg": 40, "seed": seed + 100}
    return spec


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


def _separations(plane, wcs, source, x, y, beam_arcmin) -> float:
    """Separation (beams) of the fitted position of the source near pixel (x, y) from its truth."""
    fit = fit_point_source(plane, float(x), float(y))
    ra, dec = wcs.pixel_to_world_values(fit["x"], fit["y"])
    true = SkyCoord(source["ra_deg"] * u.deg, source["dec_deg"] * u.deg)
    return float(true.separation(SkyCoord(ra * u.deg, dec * u.deg)).arcmin / beam_arcmin)


def _held_out(image, sources, catalog, tmp_path, beam_arcmin):
    """Per source (injected offset, error before, error after) in beams, each source judged by
    the fit on the folds that did not contain it."""
    data, header = fits.getdata(image), fits.getheader(image)
    wcs = celestial_wcs(header)
    plane0 = image_plane(data)
    names = sorted(s["name"] for s in sources)
    rows = []
    for fold in range(FOLDS):
        held = set(names[fold::FOLDS])
        part = tmp_path / f"fold{fold}.csv"
        _write_catalog(catalog, part, lambda n, held=held: n not in held)
        res = fit_screen((data, header), part)
        plane1 = image_plane(apply_screen(data, header, res.screen)) if res.status == "ok" else plane0
        for s in (s for s in sources if s["name"] in held):
            xa, ya = wcs.world_to_pixel_values(s["apparent_ra_deg"], s["apparent_dec_deg"])
            xt, yt = wcs.world_to_pixel_values(s["ra_deg"], s["dec_deg"])
            injected = SkyCoord(s["ra_deg"] * u.deg, s["dec_deg"] * u.deg).separation(
                SkyCoord(s["apparent_ra_deg"] * u.deg, s["apparent_dec_deg"] * u.deg)).arcmin / beam_arcmin
            rows.append((injected, _separations(plane0, wcs, s, xa, ya, beam_arcmin),
                         _separations(plane1, wcs, s, xt, yt, beam_arcmin)))
    return np.array(rows)


@pytest.mark.slow
@pytest.mark.parametrize(("amplitude", "seed"), SKIES)
def test_dewarp_on_simulated_ionosphere(sim_cache, tmp_path, amplitude, seed):
    out, truth = sim_cache(f"dewarp_{amplitude}_{seed}", _spec(amplitude, seed), n_int=1, n_antennas=64,
                           n_channels=8, seed=seed)
    _wsclean(next(out.glob("*.ms")), tmp_path / "deep")
    image = tmp_path / "deep-image.fits"
    header = fits.getheader(image)
    beam = math.sqrt(header["BMAJ"] * header["BMIN"]) * 60.0
    sources = [s for s in truth["sources"] if s["kind"] != "transient"]

    # the chain: every catalogue source, defaults, through the command line
    screen = tmp_path / "screen.fits"
    res = run_cli(["lwa-dewarp", "fit", str(image), "--catalog", str(out / "catalog.csv"), "-o", str(screen),
                   "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["n_anchors"] >= 0.6 * len(sources), summary  # engages: radii in beams match the offsets
    res = run_cli(["lwa-dewarp", "apply", str(image), "--screen", str(screen), "-o", str(tmp_path / "dw")])
    assert res.returncode == 0, res.stderr
    dewarped = tmp_path / "dw" / "deep-image_dewarped.fits"

    injected, before, after = _held_out(image, sources, out / "catalog.csv", tmp_path, beam).T
    big = injected >= 1.0
    log.info(f"sky {amplitude}' seed {seed}: beam {beam:.1f}', {summary['status']}, {summary['n_anchors']} anchors; "
          f"held-out {len(after)}: injected median {np.median(injected):.2f} beam; after median {np.median(after):.3f},"
          f" max {after.max():.3f}; >= 1 beam: {big.sum()}, {np.mean(after[big] <= 0.2) if big.any() else 1:.3f} "
          f"within 0.2 beam; RMS {np.sqrt(np.mean(before ** 2)):.3f} -> {np.sqrt(np.mean(after ** 2)):.3f}")
    # never worse than the undewarped image, where it was not told about the source
    assert np.mean(after <= before + 0.05) >= 0.95, (before, after)
    if amplitude == 0:
        assert np.median(injected) < 0.01
        assert summary["status"] == "identity" and not summary["screen_beats_identity"], summary
        assert fits.getheader(dewarped)["DWSTATUS"] == "IDENTITY"
        assert np.array_equal(fits.getdata(dewarped), fits.getdata(image), equal_nan=True)
        return
    assert summary["status"] == "ok" and fits.getheader(dewarped)["DWSTATUS"] == "SCREEN", summary
    assert np.median(injected) >= (0.5 if amplitude < 30 else 1.3)
    assert big.sum() >= 5
    assert np.mean(after[big] <= 0.2) >= 0.95, np.sort(after[big])
    assert np.median(after) <= 0.05
