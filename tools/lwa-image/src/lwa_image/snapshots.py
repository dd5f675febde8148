"""Pilot snapshots: dirty Stokes I and V of every integration (one wsclean run, -intervals-out N).

The snapshots feed the bad-integration detection (lwa-flag integrations) and the movies. They are
dirty images (``-niter 0``) without a fitted PSF (BMAJ = 0): the QA needs only their RMS, and
skipping the PSF halves the cost of 360 images of 4096^2 (``[snapshot_qa]`` size and scale_arcmin;
with the wgridder, 2048^2 at 3.75' costs 35 % less, with w-stacking 25 % more: tools/lwa-image README).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from lwa_common.config import Imaging, SnapshotQA
from lwa_common.errors import LwaError
from lwa_common.ms import data_column as pick_data_column
from lwa_common.ms import ms_info
from lwa_image._wsclean import (
    Timings,
    check_products,
    finalize_product,
    gridder_args,
    product_name,
    rerun_command,
    run_wsclean,
    scratch_dir,
    wsclean_output,
)

__all__ = ["SNAPSHOT_CONFIGS", "run_snapshots"]

log = logging.getLogger(__name__)

SNAPSHOT_CONFIGS = {"I": "I-Snapshot", "V": "V-Snapshot"}
"""CONFIG keyword (and file-name part) of the snapshot images per Stokes."""


def run_snapshots(ms: str | Path, outdir: str | Path, *, settings: SnapshotQA | None = None,
                  imaging: Imaging | None = None, robust: float = 0.0,
                  data_column: str | None = None, subband: str | None = None, overwrite: bool = False,
                  timings: Timings | None = None) -> list[Path]:
    """Dirty I and V per time step of `ms`; returns the FITS written (I and V of t0001, t0002, ...).

    Grid: `settings` (the `[snapshot_qa]` section)'s `size` and `scale_arcmin`; the gridder:
    `imaging` (the `[imaging]` section); None: the defaults (a CLI builds them with
    `lwa_common.config.section_with`)."""
    t_start = time.perf_counter()
    settings = settings if settings is not None else SnapshotQA()
    imaging = imaging if imaging is not None else Imaging()
    ms, outdir = Path(ms), Path(outdir)
    size, scale_arcmin = int(settings.size), float(settings.scale_arcmin)
    if size < 16 or scale_arcmin <= 0:
        raise LwaError(f"bad snapshot size/scale: {size} px, {scale_arcmin} arcmin")
    info = ms_info(ms, subband=subband)
    n = info.n_times
    times = info.interval_keywords(n)  # DATE-OBS/DATE-END/MJD-MID, once for I and V
    planned = [(outdir / product_name(info.subband, SNAPSHOT_CONFIGS[s], i), s, i)
               for i in range(1, n + 1) for s in ("I", "V")]
    check_products([p for p, _, _ in planned], overwrite=overwrite)
    column = data_column or pick_data_column(ms, "CORRECTED_DATA")
    if column not in info.columns:
        raise LwaError(f"{ms}: no column {column}")
    log.info("snapshots of %s: %d time steps, %d px at %g arcmin, column %s", ms, n, size, scale_arcmin, column)
    args = ["-size", str(size), str(size), "-scale", f"{scale_arcmin:g}amin", "-weight", "briggs", f"{robust:g}",
            "-pol", "I,V", "-niter", "0", "-intervals-out", str(n), "-data-column", column,
            "-no-update-model-required", "-no-dirty", *gridder_args(imaging)]
    written: list[Path] = []
    with scratch_dir(outdir, "snapshots") as tmp:
        prefix = tmp / f"{info.subband}-snapshot"
        run_wsclean([*args, "-temp-dir", str(tmp), "-name", str(prefix), str(ms.resolve())], workdir=tmp,
                    timings=timings, label="snapshots",
                    keep_log=outdir / f"{info.subband}-snapshots-wsclean-failed.log")
        command = rerun_command(args, prefix=outdir.resolve() / prefix.name, ms=ms.resolve())
        for path, stokes, i in planned:
            src = wsclean_output(prefix, i, n, stokes)
            keywords = {
                "STOKES": stokes, "IMGCAT": "snapshot", "INTERVAL": f"t{i:04d}", "NINTERVL": n,
                "CONFIG": SNAPSHOT_CONFIGS[stokes], "ROBUST": float(robust), "TAPER": 0.0,
                "PBCOR": False, "DEWARPED": False, "SUBBAND": info.subband,
                "FREQMHZ": round(info.freq_mhz, 6), **times[i - 1],
            }
            written.append(finalize_product(src, path, keywords=keywords, command=command,
                                            extra_history=[f"ms: {ms.resolve()}"], scratch=tmp))
    if timings is not None:
        timings.total_s += time.perf_counter() - t_start
    log.info("snapshots: %d images in %s", len(written), outdir)
    return written
