"""Benchmark: the hot-baseline detection pass vs a plain casacore getcol of the same column.

Builds its own data in a temporary folder (lwa-sim: 256 antennas, 48 channels, two integrations
concatenated into one MS), then times, alternately and after a warm-up read (so both work from the
page cache), `lwa_flag.find_hot_baselines(ms)` -- one chunked read of the data column and FLAG,
the per-baseline reduction, both passes and dead-antenna detection -- and
`table(ms).getcol(column)` alone. Prints both times and their ratio (goal: <= 1.5).

    /work/venv/bin/python bench/bench_flag.py [--antennas 256] [--channels 48] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build(folder: Path, n_ant: int, n_chan: int, n_int: int) -> Path:
    from astropy.time import Time

    from lwa_common.testing import system_cfg_path
    from lwa_flag import concat_ms
    from lwa_sim import ObserveSettings, observe, parse_spec

    spec = parse_spec({"random_sources": {"count": 20, "flux_jy": [20, 200], "seed": 1},
                       "hot_baselines": {"pairs": [[3, 40], [10, 200]], "amplitude_jy": 30.0},
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

    with tempfile.TemporaryDirectory(prefix="bench_flag_") as tmp:
        t0 = time.perf_counter()
        ms = build(Path(tmp), args.antennas, args.channels, args.integrations)
        with table(str(ms), ack=False) as t:
            nrows = t.nrows()
            column = "CORRECTED_DATA" if "CORRECTED_DATA" in t.colnames() else "DATA"
            size_mb = t.getcol(column).nbytes / 1e6  # also the warm-up read
        print(f"data: {ms.name}, {nrows} rows x {args.channels} channels x 4 pols, {column} {size_mb:.0f} MB "
              f"(built in {time.perf_counter() - t0:.1f} s)")

        def plain_getcol() -> None:
            with table(str(ms), ack=False) as t:
                t.getcol(column)

        def hot_pass() -> None:
            find_hot_baselines(ms, column=column)

        def chunked_read() -> None:  # the I/O the pass does, without any computing
            from lwa_flag.hot import _reduce_channels  # noqa: F401  (same import cost)

            with table(str(ms), ack=False) as t:
                cell = t.getcell(column, 0)
                step = int(16e6 // (cell.size * 8))
                buf = np.empty((min(step, nrows),) + cell.shape, np.complex64)
                fbuf = np.empty(buf.shape, bool)
                for start in range(0, nrows, step):
                    n = min(step, nrows - start)
                    t.getcolnp(column, buf[:n], startrow=start, nrow=n)
                    t.getcolnp("FLAG", fbuf[:n], startrow=start, nrow=n)

        hot_pass()  # warm-up (imports, page cache)
        base, tool, io = [], [], []
        for _ in range(args.repeat):
            for fn, store in ((plain_getcol, base), (hot_pass, tool), (chunked_read, io)):
                t1 = time.perf_counter()
                fn()
                store.append(time.perf_counter() - t1)
        b, h = statistics.median(base), statistics.median(tool)
        result = find_hot_baselines(ms, column=column)
        print(f"plain getcol({column}):        median {b:.3f} s  (min {min(base):.3f})")
        print(f"find_hot_baselines (2 passes): median {h:.3f} s  (min {min(tool):.3f})")
        print(f"  of which reading {column} + FLAG in 16 MB chunks: median {statistics.median(io):.3f} s")
        print(f"found: {len(result.flagged_pairs())} hot baselines, dead antennas {sorted(result.dead)}")
        print(f"ratio hot-baseline pass / getcol = {h / b:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
