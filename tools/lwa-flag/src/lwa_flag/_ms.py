"""MeasurementSet plumbing shared by every lwa-flag command.

Where flags go (a copy at `-o`, or the input with `--in-place`), the flagged fraction before and
after, chunked reads of the main table, OR-ing flags into rows, antenna names, and the JSON flag
summary. All reads of the main table are chunked (an hour of OVRO-LWA data does not fit in memory).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import LINEAR_POLS, check_ms, flag_chunks, ms_output, open_table
from lwa_common.parallel import map_ordered, row_blocks
from lwa_common.provenance import command_line, stamp_ms, tool_version

__all__ = [
    "TOOL",
    "any_polarization",
    "validate_ms",
    "flag_target",
    "flagged_fraction",
    "antenna_names",
    "normalise_antenna_name",
    "chunk_rows",
    "flag_rows",
    "write_summary",
    "default_summary_path",
    "stamp",
]

log = logging.getLogger(__name__)

TOOL = "lwa-flag"
# Rows per chunk are chosen so that one chunk of visibilities stays near this many bytes.
CHUNK_BYTES = 128 * 1024**2
# FLAG elements per process task of `flagged_fraction` (an hour at 48 channels: ~65 blocks)
FLAG_BLOCK_BYTES = 64 * 1024**2


def validate_ms(path: str | Path, *, need_data: bool = True) -> Path:
    """Fail before work: the MS exists, has rows, XX XY YX YY, and (optionally) a data column."""
    path = Path(path)
    if not path.exists():
        raise LwaError(f"MS not found: {path}")
    if not (path / "table.dat").exists():
        raise LwaError(f"{path} is not a casacore table (no table.dat)")
    if need_data:
        check_ms(path, need_pols=LINEAR_POLS)
    else:
        with open_table(path) as t:
            if t.nrows() == 0:
                raise LwaError(f"{path}: MS has no rows")
    with open_table(path) as t:
        if "FLAG" not in t.colnames():
            raise LwaError(f"{path}: MS has no FLAG column")
    return path


def default_summary_path(ms: Path, command: str) -> Path:
    """`<folder>/<ms stem>.flag-<command>.json`, next to the flagged MS."""
    ms = Path(ms)
    return ms.parent / f"{ms.stem}.flag-{command}.json"


def flag_target(ms: Path, *, output: Path | None, in_place: bool, overwrite: bool):
    """The MS to write flags into (a context manager): `ms` itself with `in_place`, else a copy at
    `output`, removed again when flagging fails (`lwa_common.ms.ms_output`, `named`: the logged
    aoflagger command names the flagged MS)."""
    if not in_place and output is None:
        raise LwaError("give -o/--output (a copy to flag) or --in-place")
    return ms_output(ms, output, in_place=in_place, overwrite=overwrite, named=True)


def chunk_rows(path: Path, *, n_chan: int | None = None, n_pol: int = 4, itemsize: int = 8) -> int:
    """Rows per chunk so that a chunk of `n_chan` x `n_pol` visibilities is about CHUNK_BYTES."""
    if n_chan is None:
        with open_table(Path(path) / "SPECTRAL_WINDOW") as sw:
            n_chan = int(np.asarray(sw.getcell("CHAN_FREQ", 0)).size)
    return max(1024, CHUNK_BYTES // max(1, n_chan * n_pol * itemsize))


def flagged_fraction(path: Path, *, processes: int = 0) -> float:
    """Fraction of FLAG elements set (all rows, channels, polarisations); FLAG_ROW counts too.

    Blocks of FLAG_BLOCK_BYTES are counted side by side in `processes` processes (0: one per CPU
    of the job); integer counts, so the same fraction whatever the number of processes.
    """
    with open_table(path) as t:
        n = t.nrows()
        per_row = int(np.asarray(t.getcell("FLAG", 0)).size) if n else 1
    blocks = row_blocks(n, max(1024, FLAG_BLOCK_BYTES // max(1, per_row)))
    counts = map_ordered(_count_flags, [(str(path), b) for b in blocks], processes=processes)
    flagged, total = (sum(c[k] for c in counts) for k in (0, 1))
    return flagged / total if total else 0.0


def _count_flags(task: tuple[str, tuple[int, int]]) -> tuple[int, int]:
    """(flagged, all) FLAG elements of one block of rows (a process's task of `flagged_fraction`)."""
    path, rows = task
    flagged = total = 0
    for f, _ in flag_chunks(path, rows=rows):
        flagged += int(np.count_nonzero(f))
        total += f.size
    return flagged, total


_NAME_RE = re.compile(r"^\s*(?:LWA)?[-_ ]?0*(\d+)([AB])?\s*$", re.IGNORECASE)
# older OVRO-LWA correlators name the antennas ANT001 ... (their own numbering, not LWA station numbers)
_OLD_NAME_RE = re.compile(r"^\s*ANT[-_ ]?0*(\d+)([AB])?\s*$", re.IGNORECASE)


def normalise_antenna_name(name: str) -> str | None:
    """'LWA266', 'LWA-266', 'lwa-266B', '266A' -> 'LWA-266'; 'ANT001', 'ant-1' -> 'ANT001' (the names
    of older correlators, kept apart from LWA station numbers); None when not an antenna name."""
    match = _NAME_RE.match(str(name))
    if match:
        return f"LWA-{int(match.group(1)):03d}"
    match = _OLD_NAME_RE.match(str(name))
    if match:
        return f"ANT{int(match.group(1)):03d}"
    return None


def antenna_names(path: Path) -> list[str]:
    """NAME column of the ANTENNA table (row index = MS antenna index)."""
    with open_table(Path(path) / "ANTENNA") as at:
        return [str(n) for n in at.getcol("NAME")]


def flag_rows(path: Path, select, *, description: str = "") -> int:
    """OR full-row flags into the rows for which `select(chunk_dict) -> bool[nrow]` is true.

    `select` gets a dict with ANTENNA1, ANTENNA2 and TIME of the chunk. Returns rows flagged.
    """
    n_flagged = 0
    with open_table(path, readonly=False) as t:
        n = t.nrows()
        step = chunk_rows(path, itemsize=1)
        has_flag_row = "FLAG_ROW" in t.colnames()
        for start in range(0, n, step):
            nrow = min(step, n - start)
            cols = {c: t.getcol(c, startrow=start, nrow=nrow) for c in ("ANTENNA1", "ANTENNA2", "TIME")}
            rows = np.asarray(select(cols), dtype=bool)
            if not rows.any():
                continue
            f = t.getcol("FLAG", startrow=start, nrow=nrow)
            f[rows] = True
            t.putcol("FLAG", f, startrow=start, nrow=nrow)
            if has_flag_row:
                fr = t.getcol("FLAG_ROW", startrow=start, nrow=nrow)
                fr[rows] = True
                t.putcol("FLAG_ROW", fr, startrow=start, nrow=nrow)
            n_flagged += int(rows.sum())
    if description:
        log.info("%s: flagged %d rows (%s)", path, n_flagged, description)
    return n_flagged


def stamp(path: Path, message: str) -> None:
    """Record this command in the MS HISTORY table."""
    try:
        stamp_ms(path, tool=TOOL, message=message)
    except RuntimeError as err:  # a HISTORY table we cannot write is not worth failing the run
        log.warning("%s: could not append to HISTORY: %s", path, str(err).splitlines()[0])


def write_summary(path: Path, *, command: str, inputs: list[str], output: list[str] | str, in_place: bool,
                  before: float, after: float, flagged: dict[str, Any], extra: dict[str, Any] | None = None
                  ) -> Path:
    """The small JSON flag summary: % flagged before/after and what was flagged."""
    summary = {
        "tool": TOOL,
        "version": tool_version(TOOL),
        "command": command,
        "command_line": command_line(),
        "time_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": inputs,
        "output": output,
        "in_place": in_place,
        "flagged_percent_before": round(100.0 * before, 4),
        "flagged_percent_after": round(100.0 * after, 4),
        "flagged": flagged,
    }
    if extra:
        summary.update(extra)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=_json_default) + "\n")
    return Path(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def any_polarization(flags: np.ndarray) -> np.ndarray:
    """(row, channel) of a (row, channel, polarization) FLAG block: flagged in any polarization, as an
    OR of the polarization planes (numpy's `any` over the short last axis is ~8-100x slower)."""
    out = flags[..., 0].copy()
    for k in range(1, flags.shape[2]):
        out |= flags[..., k]
    return out
