"""Wideband transient search: lwa-transient's search core run on the wideband transient stacks.

The stacks are selected by header (IMGCAT = stack, tapered, Briggs 0, not PB-corrected: the
transient family of `lwa_stack.stack`) and handed to `lwa_transient.search.search_images`, which
takes a stack as deep when its INTERVAL is `deep` and as 10 min otherwise, groups them by SUBBAND --
the band name (Red/Green/Blue) for a stack -- and searches Stokes V deep and every 10 min interval
directly, Stokes I as (10 min - deep), with the masks and thresholds of the config's `[transient]`
table. Output: OUTDIR/candidates.csv and J-name folders with cutouts + PNGs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints, scan_images
from lwa_transient.search import SearchParams, search_images

__all__ = ["find_transient_stacks", "search_wideband"]

log = logging.getLogger(__name__)


def find_transient_stacks(inputs: Sequence[str | Path], hints: ImageHints | None = None) -> list[Path]:
    """Wideband stacks under `inputs` that the transient search uses (tapered, R0, non-PB; a stack
    whose header does not give TAPER / ROBUST is taken), plus plain images (no IMGCAT: a WSClean
    image, searched as it is)."""
    infos, _ = scan_images(inputs, hints)
    out = []
    for info in infos:
        if not info.labelled:
            out.append(info.path)
        elif (info.category == "stack" and info.stokes in ("I", "V") and info.taper != 0 and not info.pbcor
                and (info.robust is None or abs(float(info.robust)) < 1e-6)):
            out.append(info.path)
    return out


def search_wideband(inputs: Sequence[str | Path], *, outdir: str | Path, cfg: Config,
                    catalog: str | Path | None = None, overwrite: bool = False, argv: list[str] | None = None,
                    hints: ImageHints | None = None, **overrides: Any) -> dict[str, Any]:
    """Search the transient stacks under `inputs`; write OUTDIR/candidates.csv + products.

    `overrides` go to `lwa_transient.SearchParams.from_config` (e.g. v_sigma=6). Returns the search
    summary (`SearchResult.summary()`: csv, n_candidates, by_class, outputs, ...).
    """
    stacks = find_transient_stacks(inputs, hints)
    if not stacks:
        raise LwaError(f"no wideband transient stacks (IMGCAT=stack, TAPER>0, ROBUST 0, PBCOR=F) under "
                       f"{', '.join(map(str, inputs))}; run 'lwa-stack wideband' first")
    log.info("wideband transient search on %d stacks", len(stacks))
    params = SearchParams.from_config(cfg, **overrides)
    result = search_images(stacks, output=outdir, params=params, catalog=catalog, overwrite=overwrite, argv=argv,
                           hints=hints)
    return result.summary()
