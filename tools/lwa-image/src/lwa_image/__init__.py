"""lwa-image: OVRO-LWA imaging stage of lwa-pipe.

Concatenate and rephase per-integration MS, make the pilot snapshots and the science images with
wsclean, correct them for the primary beam and make snapshot movies. Every function here is
keyword-only past its inputs and usable without the CLI::

    from lwa_image import concat_ms, run_science, pbcor_images
    hour = concat_ms(sorted(Path("night").glob("*_55MHz.ms")), "hour.ms", lst_hour=10).output
    images = run_science(hour, "images/")
    pbcor_images(images, outdir="images/")
"""

from __future__ import annotations

from lwa_common.lazy import lazy_exports

_EXPORTS = {  # names are imported on first use (PEP 562): `lwa-image pbcor` starts without the MS modules
    "lwa_common.msconcat": ("ConcatResult", "concat_ms"),
    "lwa_common.phasing": ("lst_hour_centre", "parse_centre", "resolve_centre"),
    "_wsclean": ("Timings",),
    "movie": ("make_movies",),
    "pbcor": ("pbcor_image", "pbcor_images"),
    "rephase": ("rephase_ms",),
    "science": ("run_science", "select_configurations"),
    "snapshots": ("run_snapshots",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
