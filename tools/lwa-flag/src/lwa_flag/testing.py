"""Test helpers: concatenate per-integration MS in time.

AOFlagger needs several time steps, while lwa-sim writes one MS per 10 s integration. The pipeline
proper concatenates with `lwa-image concat`; this small helper (rows appended with python-casacore,
subtables from the first MS) lets lwa-flag's own tests and benchmark build a multi-integration MS
without depending on another tool.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import open_table

__all__ = ["concat_ms"]


def concat_ms(inputs: list[str | Path], output: str | Path) -> Path:
    """Write `output`: the first MS (subtables and rows) plus the main-table rows of the others.

    The inputs must share the spectral window, polarisation setup and antennas (as the
    integrations of one lwa-sim subband do); rows are appended in the order given.
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise LwaError("concat_ms: no input MS")
    with atomic_path(output, directory=True) as tmp:
        shutil.copytree(inputs[0], tmp, symlinks=True)
        with open_table(tmp, readonly=False) as t:
            columns = [c for c in t.colnames() if c != "FLAG_CATEGORY"]
            shape = t.getcell("DATA", 0).shape if "DATA" in columns else None
            for p in inputs[1:]:
                with open_table(p) as s:
                    if shape is not None and s.getcell("DATA", 0).shape != shape:
                        raise LwaError(f"concat_ms: {p} has data shape {s.getcell('DATA', 0).shape}, not {shape}")
                    missing = set(columns) - set(s.colnames())
                    if missing:
                        raise LwaError(f"concat_ms: {p} lacks columns {sorted(missing)}")
                    n0 = t.nrows()
                    t.addrows(s.nrows())
                    for c in columns:
                        t.putcol(c, s.getcol(c), startrow=n0, nrow=s.nrows())
    return Path(output)
