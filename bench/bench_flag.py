"""Benchmark lwa-flag against the floor of the same work (issue 17).

Builds its own data in a temporary folder (lwa-sim: 256 antennas, 48 channels, --integrations
integrations concatenated into one MS), then times, interleaved, best of --repeat, after a warm-up
(so everything works from the page cache):

* hot baselines: `lwa_flag.find_hot_baselines(ms)` (one chunked read of the data column, FLAG,
  ANTENNA1/2 and UVW; per sample |V| of the four products and the Q/U residual; per baseline the
  sums of those and of their squares over unflagged channels and times, the counts; the two passes'
  rolling and robust statistics, dead antennas) vs its floor, a subset of that work done the
  fewest-operations way: the same chunked reads (`getcolnp` into reused 16 MB buffers; a
  whole-column `getcol` is several times slower), |V| of every sample and the Q/U residual, their
  sums and sums of squares over the unflagged channels (one matrix product each: the pass's means
  and its per-sample spread), their per-baseline sums (`np.bincount`) and one rolling median over
  the uv-sorted baselines (no counts, cross-pol or dead-antenna statistics, one rolling median of
  the pass's six: a lower bound of the pass). Goal <= 1.3.
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
    from scipy.ndimage import median_filter

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

        def hot_floor() -> None:  # the pass's reads and its least arithmetic (module docstring)
            with table(str(ms), ack=False) as t:
                cell = t.getcell(column, 0)
                step = int(16e6 // (cell.size * 8))
                buf = np.empty((min(step, nrows),) + cell.shape, np.complex64)
                fbuf = np.empty(buf.shape, bool)
                amp = np.empty(buf.shape, np.float32)
                ones = np.ones(cell.shape[0], np.float32)
                piece = max(1, (1 << 20) // buf[0].nbytes)
                sums, squares = np.zeros((5, args.antennas ** 2)), np.zeros((5, args.antennas ** 2))
                for start in range(0, nrows, step):
                    n = min(step, nrows - start)
                    a1, a2 = t.getcol("ANTENNA1", start, n), t.getcol("ANTENNA2", start, n)
                    uvw = t.getcol("UVW", start, n)
                    t.getcolnp(column, buf[:n], startrow=start, nrow=n)
                    t.getcolnp("FLAG", fbuf[:n], startrow=start, nrow=n)
                    data, flags = buf[:n], fbuf[:n]
                    per_row, per_row_sq = np.empty((n, 5)), np.empty((n, 5))
                    for lo in range(0, n, piece):  # cache-sized pieces, as the pass (faster than whole chunks)
                        rows = slice(lo, min(lo + piece, n))
                        d = data[rows]
                        d1, d2 = d[..., 0] - d[..., 3], d[..., 1] + d[..., 2]
                        qu = np.sqrt(d1.real ** 2 + d1.imag ** 2 + d2.real ** 2 + d2.imag ** 2)[..., None]
                        a = np.abs(d, out=amp[rows])
                        np.putmask(a, flags[rows], 0.0)
                        per_row[rows, :4], per_row[rows, 4:] = np.matmul(ones, a), np.matmul(ones, qu)
                        per_row_sq[rows, :4] = np.matmul(ones, np.square(a, out=a))
                        per_row_sq[rows, 4:] = np.matmul(ones, np.square(qu, out=qu))
                    key = a1.astype(np.int64) * args.antennas + a2
                    for j in range(5):
                        sums[j] += np.bincount(key, weights=per_row[:, j], minlength=sums.shape[1])
                        squares[j] += np.bincount(key, weights=per_row_sq[:, j], minlength=sums.shape[1])
                    np.bincount(key, weights=np.hypot(uvw[:, 0], uvw[:, 1]), minlength=sums.shape[1])
            order = np.argsort(sums[4], kind="stable")  # stands for the uv order
            median_filter(sums[0][order], size=101, mode="nearest")

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
        cpu: dict[str, float] = {}
        best = best_of({"hot": hot_pass, "floor": hot_floor, "rfi": rfi_cli, "aoflagger": rfi_floor},
                       args.repeat, cpu=cpu)
        result = find_hot_baselines(ms, column=column)
        print(f"best of {args.repeat}: find_hot_baselines {best['hot']:.3f} s | floor (reads, |V|, channel and "
              f"baseline sums and squares, a rolling median) {best['floor']:.3f} s")
        print(f"CPU: find_hot_baselines {cpu['hot']:.3f} s, floor {cpu['floor']:.3f} s, "
              f"ratio {cpu['hot'] / cpu['floor']:.2f}; lwa-flag rfi {cpu['rfi']:.3f} s, aoflagger "
              f"{cpu['aoflagger']:.3f} s, ratio {cpu['rfi'] / cpu['aoflagger']:.2f}")
        print(f"best of {args.repeat}: lwa-flag rfi --in-place {best['rfi']:.3f} s | aoflagger {best['aoflagger']:.3f} s")
        print(f"found: {len(result.flagged_pairs())} hot baselines, dead antennas {sorted(result.dead)}")
        bench_line(f"flag-hot-baselines-{args.antennas}ant", best["hot"] / best["floor"], GOAL_HOT)
        bench_line(f"flag-rfi-cli-{args.antennas}ant", best["rfi"] / best["aoflagger"], GOAL_RFI)

if __name__ == "__main__":
    main()
