"""Benchmark `lwa-peel sky` against the external processes doing the same work (issue 17: the CLI <= 1.1).

Builds its own data in a temporary folder (lwa-sim: the real OVRO-LWA A-team model on the sky at
2024-12-20T12:00 UTC, where Cas A and Vir A are up and Cyg A has set, with antenna gains), then
times, interleaved and best of --repeat, on one MS peeled in place (DATA -> PEELED_DATA, so every
repeat does the full solve and subtraction):

  one pass  `lwa-peel sky MS --sources ateam --in-place --model-refine-rounds 0` (a process:
            start-up, MS checks, sky model, beam, parset, DP3, marker and HISTORY) vs its floor,
            the `DP3` process on the parset that run wrote (same MS, same columns, same solve);
  default   the same CLI with the default model refinement (`peel.model_refine_rounds` passes
            before the final one, each imaging every peeled source's residual with wsclean) vs its
            floor, the wall time of the DP3 and wsclean processes that very run started (from its
            log: the least the same work can take, since they run one after the other);

and, for reference, `lwa_peel.peel_ms` in process on the same MS (default settings).

    .venv/bin/python bench/bench_peel.py --n-antennas 96 --n-channels 32

Prints `bench peel-cli-...: ratio X goal <= 1.1 held|short` for each.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

from astropy.time import Time

from lwa_common.config import Peel, section_with
from lwa_common.testing import bench_line, best_of, run_cli, shared_data_dir, system_cfg_path
from lwa_peel import peel_ms
from lwa_peel.dp3 import run_dp3
from lwa_sim import ObserveSettings, observe, parse_spec

GOAL = 1.1
# the wall of each DP3 and wsclean process a run started, from its -v log (lwa_peel.dp3.run_dp3, selfcal)
PROCESS_WALL = re.compile(r"(?:DP3 [^\n]* finished|wsclean \([^\n]*\) done) in ([0-9.]+) s")


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

        work = tmp / "inplace.ms"
        shutil.copytree(ms, work)
        iterations = [] if args.max_iterations is None else ["--max-iterations", str(args.max_iterations)]

        external: list[float] = []  # wall of the external processes of the last default CLI run

        def cli(*extra: str) -> str:
            res = run_cli(["lwa-peel", "sky", str(work), "--sources", str(ateam), "--in-place", "--data-column",
                           "DATA", "--output-column", "PEELED_DATA", "--overwrite", "-v", *iterations, *extra])
            if res.returncode:
                raise SystemExit(f"lwa-peel sky failed: {res.stderr.strip()}")
            return res.stderr

        def cli_default() -> None:
            external.append(sum(float(s) for s in PROCESS_WALL.findall(cli())))

        cli("--model-refine-rounds", "0")  # warm-up; writes the one-pass parset the floor reruns
        (parset,) = work.parent.glob(f"{work.stem}*.peel-sky.parset")
        (skymodel,) = work.parent.glob(f"{work.stem}*.peel-sky.skymodel")  # a default run rewrites both
        parset, skymodel = (Path(shutil.copy(p, tmp / f"one-pass{p.suffix}")) for p in (parset, skymodel))

        def floor() -> None:
            run_dp3(parset, [f"msin={work.absolute()}", f"ddecal.h5parm={tmp / 'floor.h5'}",
                             f"ddecal.sourcedb={skymodel}"], what="DP3 floor")
            (tmp / "floor.h5").unlink(missing_ok=True)

        def in_process() -> None:
            peel_ms(work, ateam, in_place=True, input_column="DATA", column="PEELED_DATA",
                    settings=section_with(Peel(), max_iterations=args.max_iterations))

        runs = {"one pass": lambda: cli("--model-refine-rounds", "0"), "floor": floor, "default": cli_default,
                "in process": in_process}
        best = best_of(runs, args.repeat)
        best["external"] = min(external)
        print(f"{'step (best of ' + str(args.repeat) + ')':<58}{'seconds':>10}")
        for label, key in (("lwa-peel sky --in-place --model-refine-rounds 0 (CLI)", "one pass"),
                           ("DP3 on the parset of that run (process)", "floor"),
                           ("lwa-peel sky --in-place, default refinement (CLI)", "default"),
                           ("its DP3 and wsclean processes (from its log)", "external"),
                           ("lwa_peel.peel_ms in place, default (in process)", "in process")):
            print(f"{label:<58}{best[key]:>10.3f}")
        name = f"{args.n_antennas}ant-{args.n_channels}ch"
        bench_line(f"peel-cli-{name}-one-pass", best["one pass"] / best["floor"], GOAL)
        bench_line(f"peel-cli-{name}-default", best["default"] / best["external"], GOAL)

if __name__ == "__main__":
    main()
