"""Benchmark lwa-flag against the floor of the same work (issue 17).

Builds its own data in a temporary folder (lwa-sim: 256 antennas, 48 channels, --integrations
integrations concatenated into one MS), then times, interleaved, best of --repeat, after a warm-up
(so everything works from the page cache):

* hot baselines: `lwa_flag.find_hot_baselines(ms)` (one chunked read of the data column and FLAG,
  the per-baseline reduction, both passes, dead antennas) vs the floor, a chunked casacore read of
  the same two columns (`getcolnp` into reused 16 MB buffers; a whole-column `getcol` is several
  times slower and would hide the pass's own cost). Goal <= 1.3.
* RFI: the `lwa-flag rfi --in-place` CLI (process start-up, checks, summary) vs the `aoflagger`
  process it runs, same strategy and column, on the same MS. Goal <= 1.1.

    .venv/bin/python bench/bench_flag.py [--antennas 256] [--channels 48] [--integrations 2] [--repeat 5]

Prints `bench NAME: ratio X goal <= Y held|short` per figure.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from lwa_common.testing import bench_line, best_of, run_cli

GOAL_HOT = 1.3
GOAL_RFI = 1.1


def build(folder: Path, n_ant: int, n_chan: int, n_int: int) -> Path:
    from astropy.time import Time

    from lwa_common.testing import system_cfg_path
    from lwa_flag import concat_ms
    from lwa_sim import ObserveSettings, observe, parse_spec

    spec = parse_spec({"random_sources": {"count": 20, "flux_jy": [20, 200], "seed": 1},
                       "hot_baselines": {"pairs": [[3, 40], [10, n_ant - 20]], "amplitude_jy": 30.0},
                       "dead_antennas": [7]})
    settings = ObserveSettings(start=Time("2024-12-20T12:00:00"), n_integrations=n_int, subbands_mhz=(55,),
                               n_channels=n_chan, n_antennas=n_ant, system_cfg=system_cfg_path(), seed=0)
    observe(spec, settings, folder / "sim")
    return concat_ms(sorted((folder / "sim").glob("*.ms")), folder / "bench.ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--antennas", type=int, default=256)
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--integrations", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from casacore.tables import table

    from lwa_flag import find_hot_baselines
    from lwa_flag.rfi import aoflagger_command, default_strategy

    with tempfile.TemporaryDirectory(prefix="bench_flag_") as tmp:
        t0 = time.perf_counter()
        ms = build(Path(tmp), args.antennas, args.channels, args.integrations)
        with table(str(ms), ack=False) as t:
            nrows = t.nrows()
            column = "CORRECTED_DATA" if "CORRECTED_DATA" in t.colnames() else "DATA"
            size_mb = t.getcol(column).nbytes / 1e6  # also the warm-up read
        print(f"data: {ms.name}, {nrows} rows x {args.channels} channels x 4 pols, {column} {size_mb:.0f} MB "
              f"(built in {time.perf_counter() - t0:.1f} s)")

        def hot_pass() -> None:
            find_hot_baselines(ms, column=column)

        def chunked_read() -> None:  # the I/O the pass does, without any computing
            with table(str(ms), ack=False) as t:
                cell = t.getcell(column, 0)
                step = int(16e6 // (cell.size * 8))
                buf = np.empty((min(step, nrows),) + cell.shape, np.complex64)
                fbuf = np.empty(buf.shape, bool)
                for start in range(0, nrows, step):
                    n = min(step, nrows - start)
                    t.getcolnp(column, buf[:n], startrow=start, nrow=n)
                    t.getcolnp("FLAG", fbuf[:n], startrow=start, nrow=n)

        strategy = default_strategy()
        summary = Path(tmp) / "rfi.json"

        def rfi_cli() -> None:
            res = run_cli(["lwa-flag", "rfi", str(ms), "--in-place", "--column", column, "--summary", str(summary),
                           "--overwrite"])
            if res.returncode:
                raise SystemExit(f"lwa-flag rfi failed: {res.stderr.strip()}")

        def rfi_floor() -> None:
            subprocess.run(aoflagger_command(ms, strategy=strategy, column=column), check=True,
                           capture_output=True)

        hot_pass()  # warm-up (imports, page cache)
        rfi_cli()
        best = best_of({"hot": hot_pass, "read": chunked_read, "rfi": rfi_cli, "aoflagger": rfi_floor},
                       args.repeat)
        result = find_hot_baselines(ms, column=column)
        print(f"best of {args.repeat}: find_hot_baselines {best['hot']:.3f} s | chunked read of {column} + FLAG "
              f"{best['read']:.3f} s")
        print(f"best of {args.repeat}: lwa-flag rfi --in-place {best['rfi']:.3f} s | aoflagger {best['aoflagger']:.3f} s")
        print(f"found: {len(result.flagged_pairs())} hot baselines, dead antennas {sorted(result.dead)}")
        bench_line(f"flag-hot-baselines-{args.antennas}ant", best["hot"] / best["read"], GOAL_HOT)
        bench_line(f"flag-rfi-cli-{args.antennas}ant", best["rfi"] / best["aoflagger"], GOAL_RFI)

if __name__ == "__main__":
    main()
