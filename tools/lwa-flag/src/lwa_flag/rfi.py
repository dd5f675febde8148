"""RFI flagging with AOFlagger (the Debian `aoflagger` command) and a Lua strategy.

We ship an OVRO-LWA strategy (`strategies/ovro-lwa.lua`, written for AOFlagger 3.1's Lua API; its
header explains the design) and accept any user strategy. The shipped strategy never flags a sky
signal: it detects on Stokes Q and U (no sky there) along time and frequency; unpolarised
narrow-band RFI is left to the array-spectrum pass that `lwa-flag rfi` runs after it
(`lwa_flag.spectrum`: on one baseline the sky's Stokes I spectrum beats like RFI). Time-direction detection needs at least ten
time steps; with fewer (e.g. one 10 s integration per MS) only frequency-direction detection runs:
narrow-band RFI is found, broadband RFI filling whole integrations is not.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from lwa_common.errors import LwaError
from lwa_common.ms import flag_chunks, open_table
from lwa_common.provenance import keep_tool_output
from lwa_flag._ms import any_polarization

__all__ = ["default_strategy", "aoflagger_command", "run_aoflagger", "flag_profile", "pick_rfi_column"]

log = logging.getLogger(__name__)


def default_strategy() -> Path:
    """Path of the OVRO-LWA strategy shipped with lwa-flag."""
    path = Path(str(files("lwa_flag") / "strategies" / "ovro-lwa.lua"))
    if not path.exists():
        raise LwaError(f"the shipped AOFlagger strategy is missing: {path} (broken install?)")
    return path


def pick_rfi_column(ms: str | Path, column: str | None = None) -> str:
    """`column` if given (must exist); else CORRECTED_DATA when present, else DATA."""
    with open_table(ms) as t:
        cols = t.colnames()
    if column:
        if column not in cols:
            raise LwaError(f"{ms}: no column {column} (has {', '.join(c for c in cols if c.endswith('DATA'))})")
        return column
    for name in ("CORRECTED_DATA", "DATA"):
        if name in cols:
            return name
    raise LwaError(f"{ms}: MS has neither CORRECTED_DATA nor DATA")


def slurm_read_mode(ms: str | Path, environ: dict[str, str] | None = None) -> list[str]:
    """["-indirect-read"] inside a Slurm job whose --mem the MS would not fit in twice, else [].

    AOFlagger's automatic read mode reads the whole MS into memory when the machine has room, and
    in a Slurm job it sees the whole node: an hour's MS (tens to hundreds of GB) would get the job
    killed by its own memory request. Reordered reading needs little memory.
    """
    env = os.environ if environ is None else environ
    mem_mb = env.get("SLURM_MEM_PER_NODE", "")
    if not mem_mb.isdigit() or not Path(ms).is_dir():
        return []
    size = sum(f.stat().st_size for f in Path(ms).rglob("*") if f.is_file())
    return ["-indirect-read"] if 2 * size > int(mem_mb) * 1024**2 else []


def aoflagger_command(ms: str | Path, *, strategy: str | Path, column: str = "DATA", threads: int | None = None,
                      preamble: tuple[str, ...] = (), executable: str = "aoflagger") -> list[str]:
    """The aoflagger command line (logged verbatim so that it can be rerun by hand)."""
    cmd = [executable]
    if threads:
        cmd += ["-j", str(int(threads))]
    cmd += ["-column", column, "-strategy", str(strategy), *slurm_read_mode(ms)]
    for statement in preamble:
        cmd += ["-preamble", statement]
    cmd.append(str(ms))
    return cmd


def _error_line(stderr: str, stdout: str) -> str:
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for ln in lines:
        if ".lua:" in ln or "rror" in ln:
            return ln
    if lines:
        return lines[-1]
    out = [ln.strip() for ln in (stdout or "").splitlines() if ln.strip()]
    return out[-1] if out else "no output"


def run_aoflagger(ms: str | Path, *, strategy: str | Path | None = None, column: str | None = None,
                  threads: int | None = None, preamble: tuple[str, ...] = (),
                  executable: str = "aoflagger", timeout_s: float | None = None) -> dict:
    """Run AOFlagger on `ms` (flags written into `ms` itself); returns the command and timing.

    Raises LwaError (one line) when aoflagger is missing, the strategy is unreadable or the run fails.
    """
    ms = Path(ms)
    exe = shutil.which(executable)
    if exe is None:
        raise LwaError(f"'{executable}' not found on PATH (install the Debian package aoflagger)")
    strategy = Path(strategy) if strategy else default_strategy()
    try:
        text = strategy.read_text()
    except OSError as err:
        raise LwaError(f"cannot read AOFlagger strategy {strategy}: {err.strerror}") from None
    if "function execute" not in text:
        raise LwaError(f"{strategy} is not an AOFlagger Lua strategy (no 'function execute')")
    column = pick_rfi_column(ms, column)
    cmd = aoflagger_command(ms, strategy=strategy, column=column, threads=threads, preamble=preamble,
                            executable=executable)
    log.info("running: %s", shlex.join(cmd))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise LwaError(f"aoflagger timed out after {timeout_s} s on {ms}") from None
    elapsed = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        log.debug("aoflagger: %s", line)
    keep_tool_output("aoflagger", shlex.join(cmd), proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise LwaError(f"aoflagger failed (exit {proc.returncode}) on {ms}: {_error_line(proc.stderr, proc.stdout)}")
    log.info("aoflagger finished in %.1f s", elapsed)
    return {"command": shlex.join(cmd), "strategy": str(strategy), "column": column, "seconds": round(elapsed, 2)}


def flag_profile(ms: str | Path, *, cross_only: bool = True) -> dict:
    """Flagged fraction per channel and per time step (cross-correlations by default).

    Per chunk, a channel counts as flagged in a row when any polarisation is: an OR of the
    polarisation planes (numpy's `any` over the short last axis is ~8x slower); a row's flagged
    fraction is its count of flags (an integer sum of the bytes) over its size, as `mean` gives it.
    """
    ms = Path(ms)
    per_chan = None
    n_chan_rows = 0
    times: dict[float, list[float]] = {}
    for f, cols in flag_chunks(ms, columns=("ANTENNA1", "ANTENNA2", "TIME")):
        sel = cols["ANTENNA1"] != cols["ANTENNA2"] if cross_only else np.ones(len(f), bool)
        tm = cols["TIME"][sel]
        frac_row = _row_counts(f)[sel] / f[0].size if f.size else np.zeros(0)
        chan = np.count_nonzero(any_polarization(f)[sel], axis=0)
        per_chan = chan if per_chan is None else per_chan + chan
        n_chan_rows += tm.size
        for tv in np.unique(tm):
            m = tm == tv
            acc = times.setdefault(float(tv), [0.0, 0.0])
            acc[0] += float(frac_row[m].sum())
            acc[1] += float(m.sum())
    per_time = [[tv, acc[0] / acc[1]] for tv, acc in sorted(times.items()) if acc[1]]
    return {
        "per_channel_percent": [round(100.0 * c / max(n_chan_rows, 1), 3) for c in (per_chan if per_chan is not None else [])],
        "per_time_percent": [[round(tv, 3), round(100.0 * fr, 3)] for tv, fr in per_time],
    }


def _row_counts(flags: np.ndarray) -> np.ndarray:
    """Flags set per row: a sum of the rows' bytes (uint16 while a row has fewer than 65536 elements)."""
    per_row = flags.reshape(len(flags), -1)
    dtype = np.uint16 if per_row.shape[1] < 2**16 else np.int64
    return np.add.reduce(per_row.view(np.uint8), axis=1, dtype=dtype)
