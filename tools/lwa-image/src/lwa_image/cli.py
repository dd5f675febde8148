"""`lwa-image`: concat, rephase, snapshots, science, pbcor, movie (thin click layer)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from lwa_common.cli import (
    ExistingPath,
    NewPath,
    common_options,
    emit,
    json_option,
    overwrite_option,
    renamed,
    run_main,
    section_option,
)
from lwa_common.config import Config, section_with
from lwa_common.images import image_hint_options

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

_DEFAULTS = Config()
_CONFIG_NAMES = ", ".join(c.name for c in _DEFAULTS.imaging.configurations)

centre_option = click.option(
    "--centre", default=None, metavar="'RA DEC'",
    help="Phase centre, e.g. '10h30m00s +37d12m57s' or '157.5 37.216' (degrees).")
lst_hour_option = click.option(
    "--lst-hour", type=click.FloatRange(0, 24, max_open=True), default=None,
    help="Phase centre on the meridian at the middle of this LST hour (10 -> 10h30m), OVRO latitude. "
         "Default (neither option): the meridian at the middle of the data.")
data_column_option = click.option(
    "--data-column", default=None, help="MS column to image [default: CORRECTED_DATA if present, else DATA].")
subband_option = click.option(
    "--subband", default=None, help="Subband label for headers and names [default: from the frequency, e.g. 55MHz].")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """OVRO-LWA imaging: concatenate and rephase MS, snapshots, science images, PB correction, movies."""


@cli.command("concat")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=NewPath, required=True, help="Output MS.")
@centre_option
@lst_hour_option
@click.option("--delete-inputs", is_flag=True, help="Delete the inputs used, after the output has been verified.")
@overwrite_option
@json_option
@common_options
def concat_cmd(inputs: tuple[Path, ...], output: Path, centre: str | None, lst_hour: float | None,
               delete_inputs: bool, overwrite: bool, as_json: bool, cfg: Config) -> None:
    """Concatenate the MS INPUTS into one MS with one field at one phase centre.

    Unreadable inputs and inputs with other channels are skipped, logged and listed in
    OUTPUT.skipped.txt; CORRECTED_DATA missing from some inputs is filled from their DATA.
    Prints the output MS (JSON summary with --json).

    \b
    Example:
      lwa-image concat night/20241220_10*_55MHz.ms -o work/55MHz-10h.ms --lst-hour 10
    """
    from lwa_common.msconcat import concat_ms

    result = concat_ms(list(inputs), output, centre=centre, lst_hour=lst_hour, site=cfg.site,
                       overwrite=overwrite, delete_inputs=delete_inputs)
    emit(result.as_dict() if as_json else result.output, as_json=as_json)


@cli.command("rephase")
@click.argument("ms", type=ExistingPath)
@click.option("-o", "--output", type=NewPath, default=None, help="Rephased copy (or use --in-place).")
@click.option("--in-place", is_flag=True, help="Rephase MS itself instead of writing a copy.")
@centre_option
@lst_hour_option
@click.option("--method", type=click.Choice(["auto", "numpy", "chgcentre"]), default="auto", show_default=True,
              help="auto: chgcentre when on PATH (one-field MS), else our numpy rotation.")
@overwrite_option
@common_options
def rephase_cmd(ms: Path, output: Path | None, in_place: bool, centre: str | None, lst_hour: float | None,
                method: str, overwrite: bool, cfg: Config) -> None:
    """Move the phase centre of MS (UVW and DATA/CORRECTED_DATA/MODEL_DATA), e.g. to an LST meridian.

    Prints the rephased MS.

    \b
    Example:
      lwa-image rephase work/55MHz-10h.ms -o work/55MHz-10h-lst.ms --centre "10h30m00s +37d12m57s"
    """
    from lwa_common.phasing import resolve_centre
    from lwa_image.rephase import rephase_ms

    if in_place == (output is not None):
        raise click.UsageError("give exactly one of -o/--output or --in-place")
    target = resolve_centre(centre=centre, lst_hour=lst_hour, ms_paths=[ms], site=cfg.site)
    emit(rephase_ms(ms, centre=target, output=output, in_place=in_place, method=method, overwrite=overwrite))


@cli.command("snapshots")
@click.argument("ms", type=ExistingPath)
@click.option("-o", "--output", type=NewPath, required=True, help="Output folder.")
@section_option("snapshot_qa", "size", type=click.IntRange(min=16), help="Image size in pixels.")
@click.option("--scale-deg", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Pixel size in degrees  [default: {_DEFAULTS.snapshot_qa.scale_arcmin / 60:g} "
                   f"({_DEFAULTS.snapshot_qa.scale_arcmin:g} arcmin), config snapshot_qa.scale_arcmin].")
@click.option("--scale-arcmin", type=click.FloatRange(min=0, min_open=True), default=None, hidden=True,
              help="Old spelling: --scale-deg, in arcmin.")
@data_column_option
@subband_option
@overwrite_option
@json_option
@common_options
def snapshots_cmd(ms: Path, output: Path, size: int | None, scale_deg: float | None, scale_arcmin: float | None,
                  data_column: str | None, subband: str | None, overwrite: bool, as_json: bool, cfg: Config) -> None:
    """Dirty Stokes I and V image of every integration of MS (one wsclean run, -intervals-out N).

    Writes OUTPUT/{SUBBAND}-{I,V}-Snapshot-t000N-image.fits (IMGCAT = snapshot) and prints them.

    \b
    Example:
      lwa-image snapshots work/55MHz-10h.ms -o work/snapshots/
    """
    if scale_deg is not None:
        scale_arcmin = scale_deg * 60
    settings = section_with(cfg.snapshot_qa, size=size, scale_arcmin=scale_arcmin)
    from lwa_image.snapshots import run_snapshots

    paths = run_snapshots(ms, output, settings=settings, imaging=cfg.imaging, data_column=data_column,
                          subband=subband, overwrite=overwrite)
    emit([str(p) for p in paths], as_json=as_json)


@cli.command("science")
@click.argument("ms", type=ExistingPath)
@click.option("-o", "--output", type=NewPath, required=True, help="Output folder.")
@click.option("--only", multiple=True, metavar="NAME",
              help=f"Run only this configuration (repeatable). Names: {_CONFIG_NAMES}.")
@section_option("imaging", "size", type=click.IntRange(min=16), help="Image size in pixels.")
@section_option("imaging", "scale_deg", type=click.FloatRange(min=0, min_open=True), help="Pixel size in degrees.")
@click.option("--niter-scale", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Multiply every configuration's CLEAN iteration limit (quick looks, tests).")
@section_option("imaging", "intervals_out", type=click.IntRange(min=1), help="Intervals of the 10min images.")
@data_column_option
@subband_option
@overwrite_option
@json_option
@common_options
def science_cmd(ms: Path, output: Path, only: tuple[str, ...], size: int | None, scale_deg: float | None,
                niter_scale: float, intervals_out: int | None, data_column: str | None, subband: str | None,
                overwrite: bool, as_json: bool, cfg: Config) -> None:
    """The science images of MS: the 7 configurations (5 deep + 2 x 6 interval images), self-describing FITS.

    Writes OUTPUT/{SUBBAND}-{CONFIG}[-t000N]-image.fits and prints them. The wsclean command of
    each configuration is logged as run and recorded, rerunnable (-name = OUTPUT prefix), in the
    HISTORY of its images. The 10-min I images are restored with the beam of the deep robust-0 I
    image (run first, or read from OUTPUT when --only skips it; header BEAMREF).

    \b
    Example:
      lwa-image science work/55MHz-10h.ms -o images/ --only I-Deep-Taper-Robust-0 --only V-Taper-Deep
    """
    imaging = section_with(cfg.imaging, size=size, scale_deg=scale_deg, intervals_out=intervals_out)
    from lwa_image.science import run_science

    paths = run_science(ms, output, imaging=imaging, only=list(only), niter_scale=niter_scale, data_column=data_column,
                        subband=subband, overwrite=overwrite,
                        exact_intervals=intervals_out is not None)  # given: fewer time steps is an error
    emit([str(p) for p in paths], as_json=as_json)


@cli.command("pbcor")
@click.argument("images", nargs=-1, required=True, type=ExistingPath)
@click.option("-o", "--output", type=NewPath, default=None, help="Output folder [default: beside each image].")
@section_option("primary_beam", "beam_file", "--beam-file", "beam_file", type=ExistingPath, **renamed("--beam"),
                help="Beam h5 file (OVRO-LWA layout); none: the shipped analytic dipole beam.")
@section_option("primary_beam", "min_elevation_deg", help="NaN below this elevation.")
@section_option("primary_beam", "min_response", help="NaN where the beam is below this.")
@overwrite_option
@json_option
@image_hint_options
@common_options
def pbcor_cmd(images: tuple[Path, ...], output: Path | None, beam_file: Path | None,
              min_elevation_deg: float | None, min_response: float | None, overwrite: bool, as_json: bool,
              hints, cfg: Config) -> None:
    """Primary-beam correct IMAGES at their frequency and mid-time: writes *-pbcorr.fits (PBCOR = T).

    Frequency and time are read from each header (FREQMHZ, else the FREQ axis; MJD-MID, else
    DATE-OBS..DATE-END, else DATE-OBS plus half of --duration-s), so a plain WSClean image works.

    \b
    Example:
      lwa-image pbcor images/55MHz-I-Deep-Taper-Robust-0-image.fits --beam-file OVRO-LWA_MROsoil_updatedheight.h5
      lwa-image pbcor wsclean-image.fits -o pbcor/       # a plain WSClean image
    """
    settings = section_with(cfg.primary_beam, beam_file=str(beam_file) if beam_file else None,
                            min_elevation_deg=min_elevation_deg, min_response=min_response)
    from lwa_image.pbcor import pbcor_images

    paths = pbcor_images(list(images), outdir=output, settings=settings, overwrite=overwrite, hints=hints)
    emit([str(p) for p in paths], as_json=as_json)


@cli.command("movie")
@click.argument("inputs", nargs=-1, required=True, type=ExistingPath)
@click.option("-o", "--output", type=NewPath, required=True, help="Output folder for the MP4 files.")
@section_option("snapshot_qa", "movie_fps", "--fps", "fps", type=click.FloatRange(min=0, min_open=True),
                help="Frames per second.")
@section_option("snapshot_qa", "movie_max_frames", "--max-frames", "max_frames", type=click.IntRange(min=1),
                help="Subsample the snapshots evenly to at most this many frames.")
@section_option("snapshot_qa", "movie_max_size_px", "--max-size-px", "max_size_px", type=click.IntRange(min=16),
                help="Block-average frames down to at most this many pixels a side.")
@overwrite_option
@json_option
@common_options
def movie_cmd(inputs: tuple[Path, ...], output: Path, fps: float | None, max_frames: int | None,
              max_size_px: int | None, overwrite: bool, as_json: bool, cfg: Config) -> None:
    """MP4 movies of snapshot images (files or folders): raw I, median-subtracted I, raw V.

    Writes OUTPUT/{SUBBAND}-snapshots-{I-raw,I-medsub,V-raw}.mp4 and prints them.

    \b
    Example:
      lwa-image movie work/snapshots/ -o qa/
    """
    qa = section_with(cfg.snapshot_qa, movie_fps=fps, movie_max_frames=max_frames, movie_max_size_px=max_size_px)
    from lwa_image.movie import make_movies

    paths = make_movies(list(inputs), output, fps=qa.movie_fps, max_frames=qa.movie_max_frames,
                        max_size_px=qa.movie_max_size_px, overwrite=overwrite)
    emit([str(p) for p in paths], as_json=as_json)


def main() -> None:
    run_main(cli)
