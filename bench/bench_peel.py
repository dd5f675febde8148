"""Benchmark: `lwa-peel sky` on one MS vs one DP3 predict of the same sky model on the same MS.

Builds its own data in a temporary folder (lwa-sim: the real OVRO-LWA A-team model on the sky at
2024-12-20T12:00 UTC, where Cas A and Vir A are up and Cyg A has set, with antenna gains), then
times, side by side and best of --repeat runs:

  peel      `lwa_peel.peel_ms` into a copy (what the driver runs: copy + DDECal solve + subtract)
  in-place  the same peel with --in-place (no MS copy)
  predict   `DP3.py msin=MS steps=[predict] predict.sourcedb=<the peel's sky model>` into MODEL_DATA

and prints the ratios peel / predict and in-place / predict.

    /work/venv/bin/python bench/bench_peel.py --n-antennas 96 --n-channels 32
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from astropy.time import Time

from lwa_common.testing import best_of, shared_data_dir, system_cfg_path
from lwa_peel import peel_ms
from lwa_peel.dp3 import run_dp3, write_parset
from lwa_sim import ObserveSettings, observe, parse_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-antennas", type=int, default=96)
    parser.add_argument("--n-channels", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-iterations", type=int, default=None, help="DDECal iterations (default: config)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the tool's convergence warnings are reported below

    ateam = shared_data_dir() / "sky" / "ateam_sources.json"
    with tempfile.TemporaryDirectory(prefix="bench_peel_") as tmp:
        tmp = Path(tmp)
        settings = ObserveSettings(start=Time("2024-12-20T12:00:00"), n_integrations=1, subbands_mhz=(55,),
                                   n_channels=args.n_channels, n_antennas=args.n_antennas,
                                   system_cfg=system_cfg_path(), seed=0)
        spec = {"ateam": str(ateam), "noise": {"sigma_jy": 1.0},
                "gains": {"amplitude_rms": 0.05, "phase_rms_deg": 5, "seed": 3}}
        t0 = time.perf_counter()
        observe(parse_spec(spec), settings, tmp / "sim")
        (ms,) = sorted((tmp / "sim").glob("*.ms"))
        print(f"data: {ms.name}, {args.n_antennas} antennas, {args.n_channels} channels, 1 integration "
              f"(simulated in {time.perf_counter() - t0:.1f} s)")

        out = tmp / "peeled.ms"
        result = peel_ms(ms, ateam, output=out, overwrite=True, max_iterations=args.max_iterations)
        names = ", ".join(d.name for d in result.peeled)
        print(f"peeled: {names}; DDECal iterations {list(result.dp3.iterations)}")

        def peel() -> None:
            peel_ms(ms, ateam, output=out, overwrite=True, max_iterations=args.max_iterations)

        work = tmp / "inplace.ms"
        shutil.copytree(ms, work)

        def in_place() -> None:
            # DATA -> PEELED_DATA, so every repeat does the full solve and subtraction
            peel_ms(work, ateam, in_place=True, input_column="DATA", column="PEELED_DATA",
                    max_iterations=args.max_iterations)

        parset = write_parset(tmp / "predict.parset", {
            "msin": work, "msin.datacolumn": "DATA", "msout": ".", "msout.datacolumn": "MODEL_DATA",
            "steps": ["predict"], "predict.type": "predict", "predict.sourcedb": result.skymodel,
        })

        def predict() -> None:
            run_dp3(parset, what="DP3 predict")

        def converged() -> None:
            peel_ms(work, ateam, in_place=True, input_column="DATA", column="PEELED_DATA", max_iterations=50)

        t_peel = best_of(peel, args.repeat)
        t_inplace = best_of(in_place, args.repeat)
        t_converged = best_of(converged, args.repeat)
        t_predict = best_of(predict, args.repeat)
        print(f"{'step':<40}{'seconds':>10}{'/ predict':>11}")
        for label, t in (("lwa-peel sky (copy, default)", t_peel), ("lwa-peel sky --in-place", t_inplace),
                         ("lwa-peel sky --in-place, 50 iterations", t_converged),
                         ("DP3 predict (same model, same MS)", t_predict)):
            print(f"{label:<40}{t:>10.3f}{t / t_predict:>11.2f}")
        print(f"ratio peel / predict: {t_peel / t_predict:.2f}")


if __name__ == "__main__":
    main()
