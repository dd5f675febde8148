"""Wideband transient search: lwa-transient's search core run on the wideband transient stacks.

The stacks are selected by header (IMGCAT = stack, tapered, Briggs 0, not PB-corrected: the
transient family of `lwa_stack.stack`) and handed to `lwa_transient.search.search_images`, which
groups them by SUBBAND -- the band name (Red/Green/Blue) for a stack -- and searches Stokes V deep
and every 10 min interval directly, Stokes I as (10 min - deep), with the masks and thresholds of the
config's `[transient]` table. Output: OUTDIR/candidates.csv and J-name folders with cutouts + PNGs.

lwa-transient is imported lazily (it is an optional dependency: `pip install lwa-stack[search]`).

Adapter: lwa-transient chooses images whose IMGCAT is `deep` or `10min`. A stack says IMGCAT = `stack`
and carries its category in STKCAT and INTERVAL (`deep` / `t000N`), so while the search runs, the
header reader lwa-transient's selection uses is wrapped to report a stack's category as `deep` when
INTERVAL is `deep` and `10min` otherwise. Nothing is copied or rewritten on disk. The wrapper is a no-op
for per-subband images and becomes unnecessary once lwa-transient accepts IMGCAT = stack itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.fitsio import ImageInfo, image_info
from lwa_stack.noise import find_images

__all__ = ["find_transient_stacks", "search_wideband", "stack_as_subband_image"]

log = logging.getLogger(__name__)


def stack_as_subband_image(info: ImageInfo) -> ImageInfo:
    """A stack's ImageInfo with IMGCAT replaced by the stacked images' category (deep / 10min)."""
    if info.category != "stack":
        return info
    return dataclasses.replace(info, category="deep" if info.interval in ("deep", "") else "10min")


def find_transient_stacks(inputs: Sequence[str | Path]) -> list[Path]:
    """Wideband stacks under `inputs` that the transient search uses (tapered, R0, non-PB)."""
    out = []
    for path in find_images(inputs):
        try:
            info = image_info(path)
        except LwaError as err:
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        if (info.category == "stack" and info.stokes in ("I", "V") and info.taper > 0 and not info.pbcor
                and info.robust is not None and abs(float(info.robust)) < 1e-6):
            out.append(path)
    return out


@contextlib.contextmanager
def _stack_aware_selection() -> Iterator[None]:
    import lwa_transient.select as select

    original = select.image_info

    def wrapped(path: str | Path) -> ImageInfo:
        return stack_as_subband_image(original(path))

    select.image_info = wrapped
    try:
        yield
    finally:
        select.image_info = original


def search_wideband(inputs: Sequence[str | Path], *, outdir: str | Path, cfg: Config,
                    catalog: str | Path | None = None, overwrite: bool = False, argv: list[str] | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """Search the transient stacks under `inputs`; write OUTDIR/candidates.csv + products.

    `overrides` go to `lwa_transient.SearchParams.from_config` (e.g. v_sigma=6). Returns the search
    summary (`SearchResult.summary()`: csv, n_candidates, by_class, outputs, ...).
    """
    try:
        from lwa_transient.search import SearchParams, search_images
    except ImportError as err:
        raise LwaError(f"the wideband search needs lwa-transient (pip install lwa-transient): {err}") from None
    stacks = find_transient_stacks(inputs)
    if not stacks:
        raise LwaError(f"no wideband transient stacks (IMGCAT=stack, TAPER>0, ROBUST 0, PBCOR=F) under "
                       f"{', '.join(map(str, inputs))}; run 'lwa-stack wideband' first")
    log.info("wideband transient search on %d stacks", len(stacks))
    params = SearchParams.from_config(cfg, **overrides)
    with _stack_aware_selection():
        result = search_images(stacks, output=outdir, params=params, catalog=catalog, overwrite=overwrite,
                               argv=argv)
    return result.summary()
