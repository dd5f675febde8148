"""lwa-image: OVRO-LWA imaging stage of lwa-pipe.

Concatenate and rephase per-integration MS, make the pilot snapshots and the science images with
wsclean, correct them for the primary beam and make snapshot movies. Every function here is
keyword-only past its inputs and usable without the CLI::

    from lwa_image import concat_ms, run_science, pbcor_images
    hour = concat_ms(sorted(Path("night").glob("*_55MHz.ms")), "hour.ms", lst_hour=10).output
    images = run_science(hour, "images/")
    pbcor_images(images, outdir="images/")
"""

from lwa_common.msconcat import ConcatResult, concat_ms
from lwa_common.phasing import lst_hour_centre, parse_centre, resolve_centre
from lwa_image._wsclean import Timings
from lwa_image.movie import make_movies
from lwa_image.pbcor import pbcor_image, pbcor_images
from lwa_image.rephase import rephase_ms
from lwa_image.science import run_science, select_configurations
from lwa_image.snapshots import run_snapshots

__all__ = [
    "ConcatResult",
    "Timings",
    "concat_ms",
    "lst_hour_centre",
    "make_movies",
    "parse_centre",
    "pbcor_image",
    "pbcor_images",
    "rephase_ms",
    "resolve_centre",
    "run_science",
    "run_snapshots",
    "select_configurations",
]
