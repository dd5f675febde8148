"""Test helpers: concatenate per-integration MS in time.

AOFlagger needs several time steps, while lwa-sim writes one MS per 10 s integration; lwa-flag's
own tests and benchmark build a multi-integration MS with the pipeline's one MS concatenation
(`lwa_common.msconcat`, as `lwa-image concat` does).
"""

from __future__ import annotations

from pathlib import Path

from lwa_common import msconcat

__all__ = ["concat_ms"]


def concat_ms(inputs: list[str | Path], output: str | Path) -> Path:
    """Write `output`: every MS of `inputs` in time order, one field at the meridian of the data's
    mid-time (an existing `output` is replaced)."""
    return msconcat.concat_ms(inputs, output, overwrite=True, tool="lwa-flag").output
