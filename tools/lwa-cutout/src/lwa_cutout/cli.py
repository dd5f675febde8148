"""`lwa-cutout`: target photometry, solar-system bodies and the flux-scale check (thin click layer)."""

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
    renamed,
    run_main,
    section_option,
)
from lwa_common.config import Config, default_text, section_with
from lwa_common.errors import LwaError
from lwa_common.images import image_hint_options
from lwa_cutout.fluxcheck import flux_check
from lwa_cutout.photometry import PhotometrySettings
from lwa_cutout.solar import BODIES, run_solar_system
from lwa_cutout.targets import run_targets

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

images_option = click.option("--images", "image_dirs", type=ExistingPath, multiple=True,
                             help="Folder (searched recursively) or FITS file with the images; repeatable.")
fallback_option = click.option("--fallback-dir", "fallback_dirs", type=ExistingPath, multiple=True,
                               help="Folder used for a role (deep I, t0003 V, ...) with no PB-corrected image in "
                                    "--images; repeatable.")
output_option = click.option("-o", "--output", type=NewPath, required=True, help="Output folder.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing photometry CSVs / outputs.")
png_option = click.option("--plots/--no-plots", "png", **renamed("--png/--no-png"), default=True, show_default=True, help="Write the 2-panel PNGs.")


def measurement_options(func):
    """Options shared by `targets` and `solar-system` (defaults from cfg.cutout)."""
    opts = [
        section_option("cutout", "size_deg", "--cutout-size-deg", "size_deg", **renamed("--size-deg"), type=click.FloatRange(min=0, min_open=True), help="Cutout side."),
        section_option("cutout", "min_elevation_deg", type=click.FloatRange(-90, 90),
                       help="Skip a subject below this elevation at the image mid-time."),
        section_option("cutout", "ionospheric_pad_arcsec_at_85mhz", "--pad-arcsec", "pad_arcsec",
                       type=click.FloatRange(min=0),
                       help="Ionospheric padding of the search radius at 85 MHz, scaled by 85/nu."),
        section_option("cutout", "detection_sigma", type=click.FloatRange(min=0, min_open=True),
                       help="Detection / fit threshold in local RMS."),
        click.option("--annulus-beams", type=(float, float), default=None,
                     help="Inner and outer radius of the RMS annulus in BMAJ  ["
                          f"{default_text('cutout', 'annulus_inner_beams')}; "
                          f"{default_text('cutout', 'annulus_outer_beams')}]."),
        section_option("imaging", "intervals_out", "--intervals-out", "intervals", **renamed("--intervals"),
                       type=click.IntRange(min=0),
                       help="Rows per set when there are no 10 min images."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _settings(cfg: Config, size_deg, min_elevation_deg, pad_arcsec, detection_sigma, annulus_beams, png
              ) -> PhotometrySettings:
    if annulus_beams is not None and not 0 <= annulus_beams[0] < annulus_beams[1]:
        raise click.BadParameter("the inner radius must be >= 0 and below the outer one", param_hint="--annulus-beams")
    inner, outer = annulus_beams if annulus_beams else (None, None)
    settings = PhotometrySettings.from_config(
        cfg, png=png, size_deg=size_deg, min_elevation_deg=min_elevation_deg,
        ionospheric_pad_arcsec_at_85mhz=pad_arcsec, detection_sigma=detection_sigma, annulus_inner_beams=inner,
        annulus_outer_beams=outer,
    )
    log.info("photometry settings: %s", settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Photometry on self-describing OVRO-LWA images: targets, solar-system bodies, flux-scale check."""


@cli.command("targets")
@click.argument("target_files", metavar="TARGETS.csv...", nargs=-1, required=True, type=ExistingPath)
@images_option
@fallback_option
@output_option
@measurement_options
@click.option("--confusing-catalog", type=ExistingPath, default=None,
              help="Reference catalogue (makesourcedb, VLSSr, CSV, TTCal, LSL's 3C/4C, an astropy table) to resolve "
                   "confusing sources given by name.")
@png_option
@overwrite_option
@json_option
@image_hint_options
@common_options
def targets_cmd(target_files, image_dirs, fallback_dirs, output, size_deg, min_elevation_deg, pad_arcsec,
                detection_sigma, annulus_beams, intervals, confusing_catalog, png, overwrite, as_json, hints,
                cfg) -> None:
    """Photometry of every target of TARGETS.csv in the images of --images.

    Per image set (subband + hour), chosen by header (PB-corrected and dewarped first, then
    PB-corrected, then --fallback-dir), every target above --min-elevation-deg at the mid-time is
    measured in deep I (confusing sources masked within 1 FWHM), deep V, each 10 min I minus the
    deep I and each 10 min V. Writes OUTPUT/<target>/<target>_photometry.csv (1 + N rows per set,
    input columns first), 2x2 deg FITS cutouts and a 2-panel PNG per row. Prints the CSV paths.

    \b
    Example:
      lwa-cutout targets stars.csv pulsars.csv --images science/55MHz \\
          --fallback-dir science/55MHz/raw -o photometry/ -v
    """
    if not image_dirs:
        raise click.UsageError("give the images with --images DIR")
    settings = _settings(cfg, size_deg, min_elevation_deg, pad_arcsec, detection_sigma, annulus_beams, png)
    run = run_targets(target_files, images=image_dirs, fallback_dirs=fallback_dirs, output_dir=output,
                      settings=settings, confusing_catalog=confusing_catalog,
                      default_intervals=section_with(cfg.imaging, intervals_out=intervals).intervals_out,
                      overwrite=overwrite, hints=hints)
    summary = run.summary()
    emit(summary if as_json else summary["csv"], as_json=as_json)


@cli.command("solar-system")
@click.argument("images", metavar="[IMAGES]...", nargs=-1, type=ExistingPath)
@images_option
@fallback_option
@output_option
@click.option("--bodies", default=",".join(BODIES), show_default=True,
              help="Comma-separated bodies to measure.")
@measurement_options
@png_option
@overwrite_option
@json_option
@image_hint_options
@common_options
def solar_cmd(images, image_dirs, fallback_dirs, output, bodies, size_deg, min_elevation_deg, pad_arcsec,
              detection_sigma, annulus_beams, intervals, png, overwrite, as_json, hints, cfg) -> None:
    """Photometry of the Moon and the planets (astropy built-in ephemeris) in IMAGES / --images.

    Each body above --min-elevation-deg at the set's mid-time is placed at every image's mid-time
    and measured like a target (Stokes I and V). Cutout headers carry BODY, BODYRA, BODYDEC,
    BODYDIST (AU), BODYDIAM (arcsec) and BODYEL. Writes OUTPUT/<Body>/<Body>_photometry.csv,
    cutouts and PNGs. Prints the CSV paths.

    \b
    Example:
      lwa-cutout solar-system --images science/55MHz -o solar/ --bodies moon,jupiter
    """
    sources = [*images, *image_dirs]
    if not sources:
        raise click.UsageError("give images as arguments or with --images DIR")
    names = [b.strip() for b in bodies.split(",") if b.strip()]
    unknown = [b for b in names if b.lower() not in BODIES]
    if unknown or not names:
        raise click.BadParameter(f"unknown body {', '.join(unknown) or '(none)'}; known: {', '.join(BODIES)}",
                                 param_hint="--bodies")
    settings = _settings(cfg, size_deg, min_elevation_deg, pad_arcsec, detection_sigma, annulus_beams, png)
    results = run_solar_system(images=sources, output_dir=output, fallback_dirs=fallback_dirs, bodies=names,
                               settings=settings,
                               default_intervals=section_with(cfg.imaging, intervals_out=intervals).intervals_out,
                               overwrite=overwrite, hints=hints)
    csvs = [str(r.csv) for r in results if r.rows]
    summary = {
        "measured": [r.subject.name for r in results if r.rows],
        "skipped_elevation": {r.subject.name: r.skipped for r in results if r.skipped},
        "detections": {r.subject.name: r.detected_rows for r in results if r.detected_rows},
        "csv": csvs,
        "outputs": [str(p) for r in results for p in r.outputs],
    }
    emit(summary if as_json else csvs, as_json=as_json)


@cli.command("flux-check")
@click.argument("images", metavar="[IMAGES]...", nargs=-1, type=ExistingPath)
@images_option
@click.option("--skymodel", type=ExistingPath, default=None,
              help="Scaife & Heald 2012 calibrators in makesourcedb format (sky/scaife_heald_2012_calibrators.skymodel) "
                   "[default: flux_scale.skymodel of --config].")
@output_option
@section_option("flux_scale", "calibrators", type=str, help="Comma-separated calibrators.")
@section_option("flux_scale", "min_elevation_deg", type=click.FloatRange(-90, 90),
                help="Only calibrators above this elevation.")
@click.option("--measure", type=click.Choice(["fit", "peak"]), default="fit", show_default=True,
              help="Measured flux: integrated flux of the Gaussian fit, or the peak (between pixels at >= 3 px per beam).")
@png_option
@overwrite_option
@json_option
@image_hint_options
@common_options
def flux_check_cmd(images, image_dirs, skymodel, output, calibrators, min_elevation_deg, measure, png, overwrite,
                   as_json, hints, cfg) -> None:
    """Compare calibrator fluxes in PB-corrected deep I images with their models.

    Scaife & Heald 2012 (3C48, 3C147, 3C196, 3C286, 3C295, 3C380, from --skymodel) and Perley &
    Butler 2017 (3C123) at each image's FREQMHZ; calibrators above --min-elevation-deg at the
    image mid-time. Writes OUTPUT/flux_check.csv and OUTPUT/flux_check.png (ratio vs frequency;
    measured vs model) and prints their paths. Non-PB-corrected images are measured with a warning.

    \b
    Example:
      lwa-cutout flux-check --images science/ -o qa/ \\
          --skymodel ../shared/data/sky/scaife_heald_2012_calibrators.skymodel
    """
    if not images and not image_dirs:
        raise click.UsageError("give images as arguments or with --images DIR")
    skymodel = skymodel or (Path(cfg.flux_scale.skymodel) if cfg.flux_scale.skymodel else None)
    if skymodel is None:
        raise click.UsageError("give --skymodel (or flux_scale.skymodel in --config)")
    if not skymodel.is_file():
        raise LwaError(f"flux_scale.skymodel not found: {skymodel}")
    names = tuple(c.strip() for c in calibrators.split(",") if c.strip()) if calibrators else None
    settings = section_with(cfg.flux_scale, calibrators=names or None, min_elevation_deg=min_elevation_deg)
    result = flux_check(images=images, image_dirs=image_dirs, skymodel=skymodel, output_dir=output, settings=settings,
                        photometry=cfg.cutout, measure=measure, site=cfg.site, overwrite=overwrite, png=png,
                        hints=hints)
    summary = result.summary()
    emit(summary if as_json else summary["outputs"], as_json=as_json)


def main() -> None:
    run_main(cli)


if __name__ == "__main__":  # pragma: no cover
    main()
