"""Science goals of the search on random skies (issue 15, the burst side of issue 22), through the
chain's own imaging: lwa-sim → `lwa-image concat` → `lwa-image science` (the R0 tapered
configurations, dirty V) → `lwa-transient search` with its defaults.

Each sky (its seed draws positions and fluxes; nothing here is tuned to one sky) holds a ~250 Jy
source, three circularly polarised sources of 8–20 Jy V (the dirty-V sidelobes that used to give
~100 false V candidates per image), random field sources, V and I bursts of one 10 min interval,
some 3–8 beams from the bright source. Goals asserted:

* every injected burst whose expected S/N (apparent flux / local RMS of its searched image) is
  ≥ 8 is found in its interval within 1 beam, not marked artefact (goal: ≥ 95 %);
* at most 1 false candidate (not marked artefact, no truth source within 1 beam) per 10 images;
* bright bursts (50–500 Jy, one integration of twelve) are found, their sidelobes marked.
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import AltAz, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from lwa_common.config import Site
from lwa_common.site import ovro_location
from lwa_common.testing import run_cli
from lwa_transient import read_candidates
from lwa_transient.rms import local_background_rms

START = "2024-12-20T12:00:00"
N_INT = 12
BEAM_DEG = 0.25  # about the tapered R0 BMAJ of the 64-antenna test array (only to place the bursts)


def _offset(ra, dec, sep_deg, pa_deg):
    c = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(pa_deg * u.deg, sep_deg * u.deg)
    return float(c.ra.deg), float(c.dec.deg)


def _zenith():
    t = Time(START) + N_INT * 10.031 / 2 * u.s
    z = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=AltAz(obstime=t, location=ovro_location(Site()))).icrs
    return float(z.ra.deg), float(z.dec.deg)


def _sky(seed: int, *, bursts: list[dict], n_intervals: int = 6) -> dict:
    rng = np.random.default_rng(seed)
    ra0, dec0 = _zenith()

    def anywhere(rmax, rmin=0.0):
        return _offset(ra0, dec0, float(rng.uniform(rmin, rmax)), float(rng.uniform(0, 360)))

    bra, bdec = anywhere(6)
    sources = [{"name": "bright", "ra": bra, "dec": bdec, "flux_jy": float(rng.uniform(220, 320)), "ref_freq_mhz": 55}]
    for k in range(3):
        ra, dec = anywhere(10, 3)
        v = float(rng.uniform(8, 20)) * float(rng.choice([-1, 1]))
        flux = float(rng.uniform(40, 100))
        sources.append({"name": f"pol{k}", "ra": ra, "dec": dec, "flux_jy": flux, "v_frac": v / flux,
                        "ref_freq_mhz": 55})
    transients = []
    for k, b in enumerate(bursts):
        if b.get("near_bright"):
            ra, dec = _offset(bra, bdec, float(rng.uniform(3, 8)) * BEAM_DEG, float(rng.uniform(0, 360)))
        else:
            ra, dec = anywhere(10)
        transients.append({"name": f"burst{k}{b['stokes']}", "ra": ra, "dec": dec, "flux_jy": b["flux_jy"],
                           "stokes": b["stokes"], "intervals": [int(rng.integers(0, n_intervals))],
                           "ref_freq_mhz": 55, "spectral_index": 0.0})
    return {"n_intervals": n_intervals, "sources": sources, "transients": transients,
            "random_sources": {"count": 12, "flux_jy": [5, 60], "seed": seed, "min_elevation_deg": 45}}


def _image(sim, tmp_path, *, size=512, scale=0.05):
    ms = tmp_path / "span.ms"
    res = run_cli(["lwa-image", "concat", *map(str, sorted(sim.glob("*.ms"))), "-o", str(ms)])
    assert res.returncode == 0, res.stderr
    cmd = ["lwa-image", "science", str(ms), "-o", str(tmp_path / "images"), "--subband", "55MHz", "--size",
           str(size), "--scale-deg", str(scale), "--niter-scale", "0.02", "--intervals-out", "6",
           "--data-column", "DATA"]
    for conf in ("I-Deep-Taper-Robust-0", "I-Taper-10min", "V-Taper-Deep", "V-Taper-10min"):
        cmd += ["--only", conf]
    res = run_cli(cmd)
    assert res.returncode == 0, res.stderr
    return tmp_path / "images"


def _search(images, tmp_path):
    res = run_cli(["lwa-transient", "search", str(images), "-o", str(tmp_path / "out"), "--no-products"])
    assert res.returncode == 0, res.stderr
    return read_candidates(tmp_path / "out" / "candidates.csv")


def _tags(interval_index: int, n_intervals: int) -> list[str]:
    """The 10 min images (of 6, over `N_INT` integrations) a transient of `interval_index` in
    `n_intervals` parts overlaps; the first holds most of it."""
    per = N_INT // n_intervals
    first, last = interval_index * per, (interval_index + 1) * per - 1
    images = sorted({k * 6 // N_INT for k in range(first, last + 1)}, key=lambda i: (-sum(
        1 for k in range(first, last + 1) if k * 6 // N_INT == i), i))
    return [f"t{i + 1:04d}" for i in images]


def _score(truth, images, rows, *, n_intervals):
    """(bursts: [(name, expected S/N, beams from the bright source, found S/N or None)], false rows)."""
    deep_i = images / "55MHz-I-Deep-Taper-Robust-0-image.fits"
    header = fits.getheader(deep_i)
    beam = header["BMAJ"]
    wcs = WCS(header).celestial
    srcs = truth["sources"]
    coords = SkyCoord([s["apparent_ra_deg"] for s in srcs] * u.deg, [s["apparent_dec_deg"] for s in srcs] * u.deg)
    bright = next(c for s, c in zip(srcs, coords, strict=True) if s["name"] == "bright")
    deep = {"I": fits.getdata(deep_i)[0, 0], "V": fits.getdata(images / "55MHz-V-Taper-Deep-image.fits")[0, 0]}
    bursts = []
    for s, c in zip(srcs, coords, strict=True):
        if "transient" not in s:
            continue
        st = s["transient"]["stokes"]
        tags = _tags(s["transient"]["intervals"][0], n_intervals)
        tag = tags[0]
        conf = "I-Taper-10min" if st == "I" else "V-Taper-10min"
        ten = fits.getdata(images / f"55MHz-{conf}-{tag}-image.fits")[0, 0]
        _, rms = local_background_rms(ten - deep[st])
        x, y = (int(round(float(v))) for v in wcs.world_to_pixel_values(c.ra.deg, c.dec.deg))
        # the transient's mean flux over the 10 min image holding most of it
        share = min(1.0, 6 / n_intervals)
        expected = share * abs(s["flux_by_subband"]["55MHz"]["apparent_jy"]) / float(rms[y, x])
        hits = [r for r in rows if r["stokes"] == st and r["interval"] in tags and r["class"] != "artefact"
                and SkyCoord(float(r["ra"]), float(r["dec"]), unit="deg").separation(c).deg < beam]
        bursts.append((s["name"], expected, float(c.separation(bright).deg) / beam,
                       float(hits[0]["snr"]) if hits else None))
    false = []
    for r in rows:
        if r["class"] == "artefact":
            continue
        c = SkyCoord(float(r["ra"]), float(r["dec"]), unit="deg")
        idx, sep, _ = c.match_to_catalog_sky(coords)
        s = srcs[int(idx)]
        real = sep.deg < beam and (
            ("transient" in s and s["transient"]["stokes"] == r["stokes"]
             and r["interval"] in ("deep", *_tags(s["transient"]["intervals"][0], n_intervals)))
            or (r["stokes"] == "V" and r["interval"] == "deep" and s.get("v_frac", 0) != 0))
        if not real:
            false.append(r)
    return bursts, false


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23])
def test_v_sidelobes_gone_and_bursts_found_on_random_skies(seed, sim_cache, tmp_path):
    rng = np.random.default_rng(seed + 1000)
    bursts = ([{"stokes": "V", "flux_jy": float(rng.uniform(1.0, 1.6)) * float(rng.choice([-1, 1])),
                "near_bright": k < 2} for k in range(4)]
              + [{"stokes": "I", "flux_jy": float(rng.uniform(6, 9)), "near_bright": k == 0} for k in range(2)])
    sim, truth = sim_cache(f"transient_science_{seed}", _sky(seed, bursts=bursts), n_int=N_INT, seed=seed)
    images = _image(sim, tmp_path)
    rows = _search(images, tmp_path)
    found, false = _score(truth, images, rows, n_intervals=6)
    required = [b for b in found if b[1] >= 8]
    assert len(required) >= 3, found  # the sky must test something
    missed = [b for b in required if b[3] is None]
    assert len(missed) <= 0.05 * len(required), (missed, found)
    assert [b for b in required if b[2] >= 3 and b[2] <= 8], found  # bursts near the bright source were tested
    n_images = 14  # deep I, deep V, 6 × 10 min I and V
    assert len(false) <= n_images / 10, false


def _shadowed(truth, n_intervals):
    """Names of V bursts sharing their main 10 min image with a V burst at least 5x brighter."""
    bursts = [s for s in truth["sources"] if s.get("transient", {}).get("stokes") == "V"]
    out = set()
    for a in bursts:
        tag = _tags(a["transient"]["intervals"][0], n_intervals)[0]
        for b in bursts:
            if (b is not a and _tags(b["transient"]["intervals"][0], n_intervals)[0] == tag
                    and abs(b["flux_jy"]) >= 5 * abs(a["flux_jy"])):
                out.add(a["name"])
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("n_intervals", "seed"), [(12, 7), (4, 29), (6, 41)])
def test_bright_short_bursts_are_found(n_intervals, seed, sim_cache, tmp_path):
    """50–500 Jy bursts lasting 1 (n_intervals 12), 3 (n_intervals 4) or 2 = a whole 10 min image
    (n_intervals 6; the "60 integrations" of a real 10 min interval) integrations of 12: found in
    their 10 min image, their dirty sidelobes marked, not masked."""
    bursts = [{"stokes": "V", "flux_jy": 500.0}, {"stokes": "V", "flux_jy": -50.0},
              {"stokes": "I", "flux_jy": 300.0, "near_bright": True}]
    spec = _sky(seed, bursts=bursts, n_intervals=n_intervals)
    sim, truth = sim_cache(f"transient_bright_bursts_{n_intervals}", spec, n_int=N_INT, seed=seed)
    images = _image(sim, tmp_path)
    rows = _search(images, tmp_path)
    found, false = _score(truth, images, rows, n_intervals=n_intervals)
    # a burst sharing its 10 min image with a 10x brighter one: found where the sidelobe rule's
    # mirror test sees no twin of it through the bright one (README), else in the CSV as a
    # `sidelobe` artefact at its place (never lost); every other burst is found
    shadowed = _shadowed(truth, n_intervals)
    assert all(b[3] is not None for b in found if b[0] not in shadowed), found
    found_names = {b[0] for b in found if b[3] is not None}
    for name in shadowed - found_names:
        src = next(s for s in truth["sources"] if s["name"] == name)
        c = SkyCoord(src["apparent_ra_deg"], src["apparent_dec_deg"], unit="deg")
        beam = fits.getheader(images / "55MHz-I-Deep-Taper-Robust-0-image.fits")["BMAJ"]
        assert [r for r in rows if r["reason"] == "sidelobe"
                and SkyCoord(float(r["ra"]), float(r["dec"]), unit="deg").separation(c).deg < beam], (name, found)
    # the sidelobes of a 500 Jy dirty V burst: marked, not candidates (<= 1 per 10 images)
    assert len(false) <= 14 / 10, false
