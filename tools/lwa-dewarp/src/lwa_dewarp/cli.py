"""`lwa-dewarp`: ionospheric dewarping of OVRO-LWA images against a reference catalogue."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import click

from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, renamed, run_main
from lwa_common.config import Dewarp, default_text, section_with
from lwa_common.errors import LwaError
from lwa_common.images import image_hint_options
from lwa_common.io import check_output

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

_D = Dewarp()


def _default(name: str) -> str:
    return default_text("dewarp", name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Ionospheric dewarping: fit an offset screen against a reference catalogue, resample images."""


@cli.command("fit")
@click.argument("image", type=ExistingPath)
@click.option("--catalog", "catalog", type=NewPath, required=True,
              help="Reference catalogue: VLSSr text, CSV with ra/dec/flux, makesourcedb, TTCal JSON, the 3C/4C "
                   "files shipped with LSL, or a table astropy reads (B1950 positions precessed).")
@click.option("-o", "--output", type=NewPath, required=True, help="Screen FITS to write.")
@click.option("--qa-dir", type=NewPath, default=None,
              help="Folder for the diagnostics [default: OUTPUT without .fits + '_qa'].")
@click.option("--detection-sigma", "snr", **renamed("--snr"), type=click.FloatRange(min=0, min_open=True), default=None, help=f"Detection threshold in local RMS ({_default('snr')}).")
@click.option("--match-radius-beams", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Cross-match radius in restoring beams of IMAGE (geometric mean of BMAJ, BMIN) "
                   f"({_default('match_radius_beams')}).")
@click.option("--min-anchors", type=click.IntRange(min=3), default=None,
              help=f"Fewest anchors for a screen ({_default('min_anchors')}).")
@click.option("--spectral-index", type=float, default=None,
              help=f"Alpha for catalogue sources without one ({_default('spectral_index')}).")
@click.option("--reference-freq-mhz", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Catalogue frequency when the file has none ({_default('reference_freq_mhz')}).")
@click.option("--flux-ratio-max", type=click.FloatRange(min=1), default=None,
              help=f"Measured/expected flux must lie within this factor ({_default('flux_ratio_max')}, loose: "
                   "the beam attenuates an image without PB correction; on a PB-corrected image, PBCOR = T, "
                   f"{_default('flux_ratio_max_pbcor')}).")
@click.option("--smoothing", type=click.FloatRange(min=0), default=None,
              help="Thin-plate spline smoothing, a noise-to-signal weight: 0 interpolates the anchors, "
                   f"larger is stiffer ({_default('smoothing')}).")
@click.option("--max-size-beams", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Compact: fitted FWHM at most this many restoring beams ({_default('max_size_beams')}).")
@click.option("--max-grid-px", type=click.IntRange(min=16), default=None,
              help=f"Largest side of the screen grid; bigger images get a coarser screen ({_default('max_grid_px')}).")
@click.option("--cv-gain", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Keep the screen only when its leave-one-out RMS residual is at most this fraction of the "
                   f"RMS offset; else write a zero (identity) screen ({_default('cv_gain')}).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Write the diagnostic PNGs.")
@click.option("--overwrite", is_flag=True, help="Replace an existing screen and diagnostics.")
@json_option
@image_hint_options
@common_options
def fit_cmd(image: Path, catalog: Path, output: Path, qa_dir: Path | None, snr: float | None,
            match_radius_beams: float | None, min_anchors: int | None, spectral_index: float | None,
            reference_freq_mhz: float | None, flux_ratio_max: float | None, smoothing: float | None,
            max_size_beams: float | None, max_grid_px: int | None, cv_gain: float | None, plots: bool,
            overwrite: bool, as_json: bool, hints, cfg) -> None:
    """Fit an ionospheric offset screen on IMAGE (deep Stokes I) against --catalog.

    Compact sources above --detection-sigma are matched to the catalogue within --match-radius-beams (with a
    spectral-index flux check); their offsets give a smooth thin-plate-spline screen, written to
    OUTPUT as FITS (planes dx, dy in pixels of IMAGE's grid) with diagnostics in --qa-dir
    (anchors.csv, detections.csv, summary.json, offsets.png, screen.png, residuals.png).
    With fewer than --min-anchors anchors: a warning, no screen, exit 0 (the pipeline continues
    undewarped; --json reports "status": "too_few_anchors"). When the screen's leave-one-out
    residual does not beat the raw offsets (no ionosphere to correct): a warning and a zero
    screen with DWSTATUS = 'IDENTITY' ("status": "identity"), which `apply` copies images with,
    unchanged. Prints the screen path.

    \b
    Example:
      lwa-dewarp fit 55MHz-I-Deep-Taper-Robust-0-image.fits \\
          --catalog FullVLSSCatalog.text -o 55MHz-screen.fits --json
    """
    if not catalog.exists():
        raise LwaError(f"catalogue not found: {catalog}")
    if output.suffix.lower() != ".fits":
        raise LwaError(f"screen output must end in .fits: {output}")
    qa = qa_dir if qa_dir is not None else output.with_name(output.name[: -len(".fits")] + "_qa")
    check_output(output, overwrite=overwrite)
    check_output(qa / "summary.json", overwrite=overwrite)
    from lwa_dewarp.fit import fit_screen, write_fit_products

    settings = section_with(cfg.dewarp, snr=snr, match_radius_beams=match_radius_beams, min_anchors=min_anchors,
                            spectral_index=spectral_index, reference_freq_mhz=reference_freq_mhz,
                            flux_ratio_max=flux_ratio_max, flux_ratio_max_pbcor=flux_ratio_max,  # given: on either image
                            smoothing=smoothing, max_size_beams=max_size_beams,
                            max_grid_px=max_grid_px, cv_gain=cv_gain)
    result = fit_screen(image, catalog, settings=settings, hints=hints)
    write_fit_products(result, screen_path=output, qa_dir=qa, overwrite=overwrite, plots=plots)
    if as_json:
        emit(result.summary, as_json=True)
    elif result.screen is not None:
        emit([output])


@cli.command("apply")
@click.argument("images", type=ExistingPath, nargs=-1, required=True)
@click.option("--screen", type=ExistingPath, required=True, help="Screen FITS written by `lwa-dewarp fit`.")
@click.option("-o", "--output", "output_dir", type=NewPath, default=None,
              help="Folder for the *_dewarped.fits [default: next to each input].")
@click.option("--order", type=click.Choice(["1", "3"]), default=None,
              help=f"Interpolation: 3 cubic spline (keeps peaks), 1 bilinear ({_default('interp_order')}).")
@click.option("--freq-scaling/--no-freq-scaling", default=None,
              help="Scale offsets by (f_screen/f_image)^2 when the image frequency differs "
                   f"({_default('freq_scaling')}).")
@click.option("--overwrite", is_flag=True, help="Replace existing *_dewarped.fits.")
@json_option
@image_hint_options
@common_options
def apply_cmd(images: tuple[Path, ...], screen: Path, output_dir: Path | None, order: str | None,
              freq_scaling: bool | None, overwrite: bool, as_json: bool, hints, cfg) -> None:
    """Resample IMAGES (raw or PB-corrected, I or V) with the inverse warp of --screen.

    Writes X_dewarped.fits for every X.fits (next to it, or in --output), NaN-aware (NaN regions
    stay NaN, pixels drawing from outside the image are NaN), with DEWARPED = T, DWSCREEN and
    provenance HISTORY. Inputs already dewarped are refused. Prints the paths written.

    \b
    Example:
      lwa-dewarp apply 55MHz-*-image.fits 55MHz-*-image-pbcorr.fits \\
          --screen 55MHz-screen.fits -o dewarped/
    """
    from lwa_dewarp.apply import dewarp_images

    settings = section_with(cfg.dewarp, interp_order=int(order) if order is not None else None,
                            freq_scaling=freq_scaling)
    results = dewarp_images(images, screen=screen, output_dir=output_dir, overwrite=overwrite, settings=settings,
                            hints=hints)
    if as_json:
        emit({"screen": str(screen), "images": [dataclasses.asdict(r) for r in results]}, as_json=True)
    else:
        emit([r.output for r in results])


def main() -> None:
    run_main(cli)
