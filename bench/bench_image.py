"""Benchmark: lwa-image's own Python time vs the wsclean time it drives (issue 17: <= 5 % everywhere).

Builds a small simulated observation in a temporary folder (lwa-sim), concatenates it, then runs
the pilot snapshots and all 7 science configurations, timing wsclean (the external tool) and
everything else (MS inspection, header rewriting, provenance, file moves) side by side in one
run. Prints the seconds per step and `bench image-...: ratio X goal <= 0.05 held|short` per step
(snapshots, science) and overall.

    .venv/bin/python bench/bench_image.py [--size 512] [--n-int 12] [--n-antennas 64]

The real images are 4096^2 over the same 128 deg field: wsclean grows with the pixel count much
faster than the per-file bookkeeping, so the ratio measured here is an upper bound.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from astropy.time import Time

from lwa_common.config import load_config
from lwa_common.testing import bench_line, shared_data_dir
from lwa_image import Timings, concat_ms, run_science, run_snapshots
from lwa_sim import ObserveSettings, observe, parse_spec

GOAL = 0.05
SPEC = {
    "sources": [
        {"name": "A", "ra": "09h52m00s", "dec": "+40d00m00s", "flux_jy": 200},
        {"name": "B", "ra": "10h20m00s", "dec": "+34d00m00s", "flux_jy": 120, "v_frac": 0.3},
    ],
    "random_sources": {"count": 20, "flux_jy": [5, 50], "seed": 1},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="science image size (px); the field stays 128 deg")
    ap.add_argument("--snapshot-size", type=int, default=512, help="snapshot size (px); field 128 deg")
    ap.add_argument("--n-int", type=int, default=12)
    ap.add_argument("--n-antennas", type=int, default=64)
    ap.add_argument("--n-channels", type=int, default=8)
    ap.add_argument("--niter-scale", type=float, default=0.01)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench_image_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        settings = ObserveSettings(start=Time("2024-12-20T12:00:00"), n_integrations=args.n_int, subbands_mhz=(55,),
                                   n_channels=args.n_channels, n_antennas=args.n_antennas,
                                   system_cfg=shared_data_dir() / "ovro-lwa" / "system_cfg.yml")
        observe(parse_spec(SPEC), settings, tmp / "sim")
        print(f"simulated {args.n_int} integrations x {args.n_antennas} antennas x {args.n_channels} channels "
              f"in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        ms = concat_ms(sorted((tmp / "sim").glob("*.ms")), tmp / "hour.ms").output
        print(f"concat + rephase (pure Python/casacore): {time.perf_counter() - t0:.2f} s")

        rows = []
        snap = Timings()
        grid = {"snapshot_qa": {"size": args.snapshot_size, "scale_arcmin": 1.875 * 4096 / args.snapshot_size},
                "imaging": {"size": args.size, "scale_deg": 0.03125 * 4096 / args.size}}
        run_snapshots(ms, tmp / "snap", settings=load_config(overrides=grid).snapshot_qa,
                      imaging=load_config(overrides=grid).imaging, timings=snap)
        rows.append((f"snapshots {args.snapshot_size}^2 x {2 * args.n_int}", snap))
        sci = Timings()
        run_science(ms, tmp / "sci", imaging=load_config(overrides=grid).imaging, niter_scale=args.niter_scale, timings=sci)
        rows.append((f"science {args.size}^2, 7 configurations", sci))

    print(f"{'step':38s} {'wsclean s':>10s} {'own s':>8s} {'own/wsclean':>12s}")
    for label, t in rows:
        print(f"{label:38s} {t.external_s:10.2f} {t.own_s:8.2f} {t.own_s / t.external_s:11.1%}")
    total_ext = sum(t.external_s for _, t in rows)
    total_own = sum(t.own_s for _, t in rows)
    print(f"{'total':38s} {total_ext:10.2f} {total_own:8.2f} {total_own / total_ext:11.1%}")
    bench_line(f"image-snapshots-{args.snapshot_size}", snap.own_s / snap.external_s, GOAL)
    bench_line(f"image-science-{args.size}", sci.own_s / sci.external_s, GOAL)
    bench_line("image-overall", total_own / total_ext, GOAL)


if __name__ == "__main__":
    main()
