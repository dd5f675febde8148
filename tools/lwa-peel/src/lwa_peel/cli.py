"""`lwa-peel`: subtract bright sky sources and terrestrial RFI from one MS (DP3 DDECal)."""

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
from lwa_common.config import default_text, section_with
from lwa_peel.hourmodel import refine_model
from lwa_peel.peel import peel_ms
from lwa_peel.steps import MODES

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)


def _shared(func):
    """Options common to `sky` and `rfi` (defaults from the config's [peel] table)."""
    options = [
        click.argument("ms", type=ExistingPath),
        click.option("--sources", "sources", type=ExistingPath, required=True,
                     help="TTCal-format sources.json."),
        click.option("-o", "--output", type=NewPath, default=None,
                     help="Write the peeled data into this copy of MS (the input stays untouched)."),
        click.option("--in-place", is_flag=True, help="Peel MS itself instead of a copy."),
        click.option("--output-column", "column", default="CORRECTED_DATA", show_default=True, **renamed("--column"),
                     help="Column receiving the peeled visibilities (created when missing)."),
        click.option("--data-column", "input_column", default=None, **renamed("--input-column"),
                     help="Column to peel  [default: CORRECTED_DATA, else DATA]."),
        section_option("peel", "uv_min_lambda", type=click.FloatRange(min=0),
                       help="Ignore shorter baselines in the solve."),
        section_option("peel", "max_iterations", type=click.IntRange(min=1), help="DDECal iterations."),
        section_option("peel", "tolerance", type=click.FloatRange(min=0, min_open=True),
                       help="DDECal convergence tolerance."),
        section_option("peel", "step_size", type=click.FloatRange(min=0, max=1, min_open=True),
                       help="DDECal step size."),
        click.option("--channels-per-solution", type=click.IntRange(min=0), default=None,
                     help="Channels per gain solution, taken as given; 0 = the whole band  [sky: "
                          f"{default_text('peel', 'channels_per_solution')}; rfi: from one channel, as many as keep "
                          "the sky the emitter's gains absorb below peel.rfi_max_absorption (config "
                          "peel.rfi_channels_per_solution: unset = this rule)]."),
        section_option("peel", "mode", type=click.Choice(MODES), help="DDECal solution type."),
        click.option("--overwrite", is_flag=True, help="Replace an existing output MS and its side products."),
        json_option,
        common_options,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(kind: str, ms: Path, sources: Path, output: Path | None, in_place: bool, as_json: bool, cfg, *,
         column: str, input_column: str | None, overwrite: bool, channels_per_solution: int | None,
         beam_file: Path | None = None, field: Path | None = None, **given) -> None:
    if (output is None) == (not in_place):
        raise click.UsageError("give either -o/--output OUT.ms or --in-place (not both)")
    per_channel = "rfi_channels_per_solution" if kind == "rfi" else "channels_per_solution"
    settings = section_with(cfg.peel, **given, **{per_channel: channels_per_solution})
    primary_beam = section_with(cfg.primary_beam, beam_file=str(beam_file) if beam_file else None)
    result = peel_ms(ms, sources, kind=kind, output=output, in_place=in_place, column=column,
                     input_column=input_column, overwrite=overwrite, field=field, settings=settings,
                     primary_beam=primary_beam)
    if as_json:
        emit(result.as_dict(), as_json=True)
    else:
        emit([p for p in (result.ms, result.solutions) if p is not None])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Peel bright sky sources and terrestrial RFI from OVRO-LWA visibilities with DP3."""


@cli.command("sky")
@_shared
@section_option("peel", "min_elevation_deg", help="Skip sources below this elevation at the MS mid-time.")
@section_option("peel", "beam", help="Multiply the model by the Stokes I primary beam at each source.")
@section_option("peel", "smoothness_mhz", type=click.FloatRange(min=0),
                help="DDECal smoothness constraint: Gaussian kernel FWHM along frequency for per-channel solutions; "
                     "0 = off.")
@section_option("primary_beam", "beam_file", type=ExistingPath,
                help="Beam h5 for --beam (none: the analytic dipole).")
@section_option("peel", "field_min_jy", type=click.FloatRange(min=0),
                help="Field sources fainter than this (apparent, band centre) are left out.")
@section_option("peel", "field_refine",
                help="With --field: peel twice, fitting the field sources' positions (moved by the ionosphere) "
                     "on the first pass's output.")
@section_option("peel", "field_refine_max_arcmin", type=click.FloatRange(min=0, min_open=True),
                help="Farthest a field source may move from its catalogue position.")
@section_option("peel", "model_refine_rounds", type=click.IntRange(min=0),
                help="Passes before the final one whose residual around each peeled source is imaged (wsclean) and "
                     "its clean components added to that source's model; 0 = the model as given.")
@section_option("peel", "model_refine_radius_arcmin", type=click.FloatRange(min=0, min_open=True),
                help="CLEAN the residual within this radius of each peeled source (at least one resolution element).")
@click.option("--field", type=ExistingPath, default=None,
              help="Reference catalogue of the field (VLSSr, CSV, makesourcedb...): its sources are kept fixed "
                   "(subtracted before the solve, added back after), so the gains cannot absorb them.")
def sky_cmd(ms: Path, sources: Path, output: Path | None, in_place: bool, as_json: bool, cfg, **settings) -> None:
    """Peel the sky sources of a TTCal sources.json (e.g. the A-team) from MS.

    Sources below the horizon (or --min-elevation-deg) at the MS mid-time are skipped with an
    INFO line. Each source becomes one direction of a DP3 sky model (point / Gaussian components,
    log-polynomial spectra, times the beam); DDECal solves one gain per antenna and direction over
    the MS, ignoring baselines under --uv-min-lambda, and subtracts the corrupted model. With
    --field, the catalogue's sources stay in the model as one fixed direction (never solved) so the
    solve does not eat them: field sources near the A-team then change by < 1 % instead of 3-7 %
    at demo size (64 antennas); the field's positions (moved by the ionosphere) and fluxes are
    fitted on a first pass's output and the second pass peels with them (--no-field-refine: one
    pass). Each source's model is refined from the data first (--model-refine-rounds, 2 by
    default): after a pass, its residual (its gains applied inverted) is imaged around it with
    wsclean and the clean components are added to its model for the next pass (the structure a
    few Gaussians lack, which long baselines see). DDECal's iterations are logged (and converged: true/false). Writes
    OUT.ms (or MS with --in-place) plus NAME.peel-sky.{h5,skymodel,parset} beside it; prints the
    paths written (MS, solutions) or a JSON summary with --json.

    \b
    Example:
      lwa-peel sky 20241220_120000_55MHz.ms --sources ateam_sources.json \\
          --field FullVLSSCatalog.text -o peeled/20241220_120000_55MHz.ms -v
    """
    _run("sky", ms, sources, output, in_place, as_json, cfg, **settings)


def _rfi_field_options(func):
    """The field options of `rfi` (as `sky`'s): the catalogue kept fixed in the emitter's solve."""
    options = [
        section_option("peel", "beam", help="With --field: multiply the field by the Stokes I primary beam."),
        section_option("primary_beam", "beam_file", type=ExistingPath,
                       help="Beam h5 for --beam (none: the analytic dipole)."),
        section_option("peel", "field_min_jy", type=click.FloatRange(min=0),
                       help="Field sources fainter than this (apparent, band centre) are left out."),
        section_option("peel", "field_refine",
                       help="With --field: peel twice, fitting the field sources' positions on the first pass."),
        section_option("peel", "field_refine_max_arcmin", type=click.FloatRange(min=0, min_open=True),
                       help="Farthest a field source may move from its catalogue position."),
        click.option("--field", type=ExistingPath, default=None,
                     help="Reference catalogue of the field: its sources are kept fixed in the solve, so the "
                          "emitter's gains cannot absorb them."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command("rfi")
@_shared
@_rfi_field_options
def rfi_cmd(ms: Path, sources: Path, output: Path | None, in_place: bool, as_json: bool, cfg, **settings) -> None:
    """Peel terrestrial RFI sources (TTCal lat/long/el entries with a tabulated spectrum) from MS.

    Each emitter's direction is the az/el of the vector from the array centre to it (Earth
    curvature included), turned into RA/Dec at the MS mid-time and treated as a far-field source;
    emitters with no flux in the MS band are skipped with an INFO line. No elevation cut: these
    sources sit near the horizon. Then the same DDECal solve-and-subtract as `sky`, writing
    NAME.peel-rfi.{h5,skymodel,parset}. Without a sky model the emitter's gains absorb the sky's
    sidelobe at the emitter (demo size: ~1.5 % gain errors, 5e-4 of the emitter's power left with
    the whole band, 2.4e-3 per channel); --field keeps the catalogue fixed in the solve, as
    for `sky` (1e-7 left when the catalogue's positions are right; with the ionosphere moving
    sources by ~1 beam it does not help without the positions fitted).

    \b
    Example:
      lwa-peel rfi 20241220_120000_55MHz.ms --sources rfi_sources.json --in-place -v
    """
    _run("rfi", ms, sources, output, in_place, as_json, cfg, **settings)


@cli.command("refine-model")
@click.argument("ms", nargs=-1, required=True, type=ExistingPath)
@click.option("--sources", "sources", type=ExistingPath, required=True, help="TTCal-format sources.json to refine.")
@click.option("-o", "--output", type=NewPath, required=True, help="The refined sources.json to write.")
@click.option("--field", type=ExistingPath, default=None,
              help="Reference catalogue of the field, kept fixed in the passes (as for `sky`).")
@section_option("peel", "model_refine_rounds", type=click.IntRange(min=1),
                help="Passes per MS whose residual around each source is imaged and CLEANed into its model.")
@section_option("peel", "model_refine_ms", type=click.IntRange(min=1),
                help="Refine from this many of the MS given, spread evenly over them (sorted by name).")
@section_option("peel", "field_refine", help="With --field: fit the field sources' positions on each pass.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@json_option
@common_options
def refine_model_cmd(ms: tuple[Path, ...], sources: Path, output: Path, field: Path | None,
                     model_refine_rounds: int | None, model_refine_ms: int | None, field_refine: bool | None,
                     overwrite: bool, as_json: bool, cfg) -> None:
    """Refine the sky sources' models once from one or a few MS of a subband-hour.

    The MS chosen (--model-refine-ms of those given, spread over them: one is the middle one) are
    peeled on scratch copies as `sky` does with --model-refine-rounds (a pass, the field fit, each
    source's residual imaged with wsclean and its clean components added to its model, per round).
    The components added are divided by the primary beam at the source at that MS's time and
    written as intrinsic components (ordinary-polynomial spectra, "spectral-law": "linear") into a
    copy of --sources: every per-MS `lwa-peel sky --sources OUTPUT --model-refine-rounds 0` then
    multiplies them by the beam at its own time and peels with no refinement round. Several MS:
    each one's components weighted 1/N (their mean). Prints the model written (or a JSON summary).

    \b
    Example:
      lwa-peel refine-model ms/*.ms --sources ateam_sources.json --field catalog.csv \\
          -o peel-sky-model.json -v
      lwa-peel sky ms/20241220_120000_55MHz.ms --sources peel-sky-model.json --field catalog.csv \\
          --model-refine-rounds 0 --in-place
    """
    settings = section_with(cfg.peel, field_refine=field_refine, model_refine_ms=model_refine_ms,
                            model_refine_rounds=model_refine_rounds)
    result = refine_model(ms, sources, output=output, field=field, overwrite=overwrite, settings=settings,
                          primary_beam=cfg.primary_beam)
    emit(result.as_dict() if as_json else [result.output], as_json=as_json)


def main() -> None:
    run_main(cli)
