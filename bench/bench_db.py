"""Benchmark: lwa-db ingest and lightcurve query against the goals of issue 20 (SQLite).

* ingest: one run folder with 10 000 transient candidates (plus its images and a target), written by
  `lwa_db.testing`; times `scan_run` + `store_run` (validation, insert, association into new
  sources, variability) in one process. Goal: <= 10 s.
* lightcurve: a database of N nights (default 1000; each with deep I/V and 6 x 10 min V images, a
  target's forced photometry and, every 10th night, a blind V detection), built through
  `store_run`; times `lightcurve()` (best of 3) for the target (Stokes I) and for the blind source
  (Stokes V: one limit per image slot without a detection). Goal: <= 0.5 s each.

Prints `bench NAME: value ... goal ... held|short` lines. Usage:
python bench/bench_db.py [--candidates 10000] [--nights 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lwa_common.config import load_config
from lwa_common.testing import best_of
from lwa_db import lightcurve, open_database, scan_run, store_run
from lwa_db.scan import RunRecords
from lwa_db.testing import Night, Target, write_night

GOAL_INGEST_S = 10.0
GOAL_LIGHTCURVE_S = 0.5


def verdict(name: str, value: float, goal: float, unit: str = "s") -> None:
    state = "held" if value <= goal else "short"
    print(f"bench {name}: {value:.3f} {unit} goal <= {goal:g} {unit} {state}")


def bench_ingest(folder: Path, n_candidates: int, cfg) -> None:
    night = Night(date="2024-12-20T11:55:00", index=0, n_intervals=6,
                  targets=(Target("Bench Star", 150.0, 36.0, (10.0,)),), n_extra_candidates=n_candidates)
    run = write_night(folder / "runs", night, seed=1)
    engine = open_database(f"sqlite:///{folder / 'ingest.sqlite'}")
    t0 = time.perf_counter()
    records = scan_run(run, cfg=cfg)
    t_scan = time.perf_counter() - t0
    result = store_run(engine, records, cfg=cfg)
    total = time.perf_counter() - t0
    print(f"ingest: {len(records.images)} images, {len(records.measurements)} measurements, "
          f"{result.n_new_sources} new sources; scan {t_scan:.2f} s, store {result.seconds:.2f} s")
    verdict(f"db-ingest-{n_candidates}-candidates", total, GOAL_INGEST_S)
    engine.dispose()


def _night_records(k: int) -> RunRecords:
    mjd0 = 60000.5 + k
    imgs, meas = [], []
    for stokes in ("I", "V"):
        imgs.append(_img(f"55MHz/images/deep-{stokes}.fits", stokes, "deep", "deep", mjd0, 0.5))
    for t in range(1, 7):
        imgs.append(_img(f"55MHz/images/t{t}-V.fits", "V", "10min", f"t{t:04d}", mjd0 - 0.02 + t * 0.007, 1.2))
    for stokes, flux, rms in (("I", 10.0 + (k % 7), 0.5), ("V", 0.3, 0.3)):
        meas.append({"kind": "target", "name": "Bench Star", "stokes": stokes, "subband": "55MHz", "band": "55MHz",
                     "wideband": False, "freq_mhz": 55.4, "interval": "deep", "difference": False, "mjd": mjd0,
                     "ra_deg": 150.0, "dec_deg": 36.0, "beam_deg": 0.5, "flux_jy": flux, "flux_err_jy": rms,
                     "snr": flux / rms, "detected": flux / rms >= 5, "upper_limit_jy": None, "klass": None,
                     "image_path": f"55MHz/images/deep-{stokes}.fits", "source_file": "x.csv", "extra": "{}"})
    if k % 10 == 0:
        meas.append({"kind": "transient", "name": None, "stokes": "V", "subband": "55MHz", "band": "55MHz",
                     "wideband": False, "freq_mhz": 55.4, "interval": "t0002", "difference": False, "mjd": mjd0,
                     "ra_deg": 160.0, "dec_deg": 30.0, "beam_deg": 0.5, "flux_jy": 8.0, "flux_err_jy": 1.2,
                     "snr": 6.7, "detected": True, "upper_limit_jy": None, "klass": "candidate",
                     "image_path": "55MHz/images/t2-V.fits", "source_file": "candidates.csv", "extra": "{}"})
    return RunRecords(name=f"night{k:04d}-10h", path=f"/bench/night{k:04d}/10h", hour="10h", content_hash=f"{k}",
                      images=imgs, measurements=meas, provenance={})


def _img(path, stokes, cat, interval, mjd, rms):
    return {"path": path, "product": "image", "stokes": stokes, "imgcat": cat, "interval": interval, "nintervl": 6,
            "config": None, "role": None, "robust": 0.0, "taper": 30.0, "pbcor": False, "dewarped": False,
            "subband": "55MHz", "band": "55MHz", "wideband": False, "freq_mhz": 55.4, "date_obs": None,
            "date_end": None, "mjd_mid": mjd, "bmaj_deg": 0.5, "bmin_deg": 0.5, "bpa_deg": 0.0, "rms_jy": rms,
            "ra_deg": 151.0, "dec_deg": 37.2, "radius_deg": 80.0, "lwaver": None}


def bench_lightcurve(folder: Path, n_nights: int, cfg) -> None:
    engine = open_database(f"sqlite:///{folder / 'nights.sqlite'}")
    t0 = time.perf_counter()
    for k in range(n_nights):
        store_run(engine, _night_records(k), cfg=cfg)
    print(f"built {n_nights} nights through store_run in {time.perf_counter() - t0:.1f} s")
    _, rows = lightcurve(engine, "Bench Star", cfg=cfg, stokes="I")
    t_target = best_of(lambda: lightcurve(engine, "Bench Star", cfg=cfg, stokes="I"), 3)
    print(f"lightcurve Bench Star (I): {len(rows)} points")
    verdict(f"db-lightcurve-{n_nights}-nights-target", t_target, GOAL_LIGHTCURVE_S)
    _, rows = lightcurve(engine, "160.0,30.0", cfg=cfg, stokes="V")
    t_blind = best_of(lambda: lightcurve(engine, "160.0,30.0", cfg=cfg, stokes="V"), 3)
    print(f"lightcurve blind source (V): {len(rows)} points, {sum(r['detected'] for r in rows)} detections")
    verdict(f"db-lightcurve-{n_nights}-nights-blind-with-limits", t_blind, GOAL_LIGHTCURVE_S)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--nights", type=int, default=1000)
    args = parser.parse_args()
    cfg = load_config(None)
    with tempfile.TemporaryDirectory() as tmp:
        bench_ingest(Path(tmp), args.candidates, cfg)
        bench_lightcurve(Path(tmp), args.nights, cfg)


if __name__ == "__main__":
    main()
