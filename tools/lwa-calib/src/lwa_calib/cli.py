"""`lwa-calib`: apply / solve OVRO-LWA bandpass + XY-phase tables, check delays (CASA, offline)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from lwa_calib.apply import apply_tables
from lwa_calib.caltables import gains_to_tables, read_true_gains
from lwa_calib.delay import delay_check
from lwa_calib.solve import XY_MODES, solve
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
from lwa_common.config import section_with
from lwa_common.errors import LwaError
from lwa_common.io import make_dirs

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Bandpass + XY-phase calibration of OVRO-LWA measurement sets with CASA (fully offline)."""


@cli.command("apply")
@click.argument("ms", nargs=-1, required=True, type=NewPath)
@click.option("--bp-table", type=NewPath, required=True, help="CASA bandpass (B Jones) table.")
@click.option("--xy-table", type=NewPath, default=None,
              help="CASA XY-phase (Xf Jones) table; omit to apply the bandpass alone.")
@click.option("-o", "--output", type=NewPath, default=None,
              help="Folder for the calibrated copies (CORRECTED_DATA) and failed.txt.")
@click.option("--in-place", is_flag=True, help="Write CORRECTED_DATA into the input MS instead of a copy.")
@click.option("--failed-list", type=NewPath, default=None,
              help="Where to list the MS that failed [OUTPUT/failed.txt; with --in-place beside the first MS].")
@click.option("--overwrite", is_flag=True, help="Replace calibrated copies that already exist in OUTPUT.")
@json_option
@common_options
def apply_cmd(ms: tuple[Path, ...], bp_table: Path, xy_table: Path | None, output: Path | None, in_place: bool,
              failed_list: Path | None, overwrite: bool, as_json: bool, cfg) -> None:
    """Apply a bandpass and an XY-phase table to each MS (casatasks applycal -> CORRECTED_DATA).

    Each MS goes into OUTPUT as a calibrated copy (the input is never modified unless --in-place).
    An MS that fails (unreadable, frequencies not in the tables, other antennas) is reported on
    stderr and listed with the reason in failed.txt; the others go on. Exit status 0 when at least
    one MS was calibrated (failed.txt tells which were not), 1 when all failed or a table is
    missing or unreadable. Prints the calibrated MS paths.

    A table may hold several spectral windows (one per subband): each MS gets the window holding
    its channels, its solutions averaged over each MS channel (e.g. 4 of a 192-channel table for a
    48-channel averaged MS). A table with no such window fails that MS.

    \b
    Example:
      lwa-calib apply 20240524_*_55MHz.ms --bp-table cal/bandpass.B \\
          --xy-table cal/xyphase.Xf -o calibrated/
    """
    if in_place and output is not None:
        raise click.UsageError("give either -o/--output or --in-place, not both")
    if not in_place and output is None:
        raise click.UsageError("missing -o/--output (or --in-place)")
    result = apply_tables(list(ms), bp_table=bp_table, xy_table=xy_table, outdir=output, in_place=in_place,
                          overwrite=overwrite, failed_list=failed_list)
    if not result.succeeded:
        shown = "; ".join(f"{path}: {why}" for path, why in result.failed[:5])
        more = f"; {len(result.failed) - 5} more" if len(result.failed) > 5 else ""
        raise LwaError(f"all {len(result.failed)} MS failed: {shown}{more}")  # the run's output folder is removed
    for path, why in result.failed:
        log.warning("failed: %s: %s", path, why)
    emit({"outputs": [str(p) for p in result.succeeded], "failed": [[str(p), w] for p, w in result.failed],
          "failed_list": str(result.failed_list)} if as_json else [str(p) for p in result.succeeded],
         as_json=as_json)


@cli.command("solve")
@click.argument("ms", nargs=-1, required=True, type=ExistingPath)
@click.option("--sources", type=ExistingPath, required=True, help="TTCal sources.json sky model (A-team).")
@click.option("-o", "--output", type=NewPath, required=True, help="Output folder for tables, QA and summary.")
@click.option("--source", "source_names", multiple=True,
              help="Use only this source of the sources file (repeat for several)  [default: all, config "
                   "calib.source_names].")
@section_option("calib", "refant", help="Reference antenna name or index (none: the one with the most "
                                        "unflagged data).")
@section_option("calib", "min_snr", "--solution-sigma", "min_snr", **renamed("--min-snr"),
                help="Reject solutions below this S/N (CASA minsnr of the solves).")
@section_option("calib", "uvrange", help="CASA uvrange selection for the solves, e.g. '>10lambda' (none: all).")
@section_option("calib", "min_elevation_deg", help="Leave sources below this elevation out of the model.")
@section_option("calib", "xy_mode", "--xy-phase", "xy_mode", type=click.Choice(XY_MODES),
                help="auto: solve the XY phase when the model has U or V flux, else skip with a warning; "
                     "solve: require it; skip: never.")
@section_option("calib", "sigma_antenna", "--antenna-sigma", "sigma_antenna", **renamed("--sigma-antenna"),
                help="Robust z-score above which an antenna's bandpass level is flagged.")
@section_option("calib", "sigma_channel", "--channel-sigma", "sigma_channel", **renamed("--sigma-channel"),
                help="Robust z-score above which a channel of an antenna's bandpass is flagged.")
@section_option("calib", "channel_window", type=click.IntRange(min=1),
                help="Running-median window (channels) of the channel flagging.")
@section_option("calib", "channel_quorum", type=click.FloatRange(0, 1),
                help="Flag a channel for all antennas when more than this fraction of them is flagged.")
@click.option("--keep-ms", is_flag=True, help="Keep the concatenated MS (with MODEL_DATA) in OUTPUT.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT folder.")
@json_option
@common_options
def solve_cmd(ms: tuple[Path, ...], sources: Path, output: Path, source_names: tuple[str, ...],
              refant: str | None, min_snr: float | None, uvrange: str | None, min_elevation_deg: float | None,
              xy_mode: str | None, sigma_antenna: float | None, sigma_channel: float | None,
              channel_window: int | None, channel_quorum: float | None, keep_ms: bool, overwrite: bool,
              as_json: bool, cfg) -> None:
    """Solve bandpass (+ XY phase) tables from calibrator MS files (e.g. one hour of one subband).

    Concatenates the MS, predicts the beam-weighted A-team model into MODEL_DATA, runs CASA
    bandpass (B, solint inf) and, when the model has polarised flux, polcal (Xf); flags outlier
    antennas / channels of the solutions and interpolates over flagged channels. Writes OUTPUT/
    bandpass.B, bandpass_raw.B, xyphase.Xf, qa/*.png, summary.json, summary.html, casa.log and
    prints the table paths.

    \b
    Example:
      lwa-calib solve 20240524_1[01]*_55MHz.ms --sources ateam_sources.json \\
          -o cal_55MHz/ --refant LWA-266
    """
    settings = section_with(cfg.calib, refant=refant, min_snr=min_snr, uvrange=uvrange,
                            min_elevation_deg=min_elevation_deg, source_names=tuple(source_names) or None,
                            xy_mode=xy_mode, sigma_antenna=sigma_antenna, sigma_channel=sigma_channel,
                            channel_window=channel_window, channel_quorum=channel_quorum)
    result = solve(list(ms), sources=sources, outdir=output, settings=settings,
                   beam_file=cfg.primary_beam.beam_file, keep_ms=keep_ms, overwrite=overwrite, site=cfg.site,
                   argv=list(sys.argv))
    outputs = [str(result.bp_table)] + ([str(result.xy_table)] if result.xy_table else [])
    emit({"outputs": outputs, "html": str(result.html), **result.summary} if as_json else outputs,
         as_json=as_json)


@cli.command("delay-check")
@click.argument("ms", type=ExistingPath)
@click.option("--reference", type=NewPath, required=True, help="Reference CASA delay (K Jones) table.")
@click.option("-o", "--output", type=NewPath, required=True,
              help="Folder for delay_check.csv, first_integration.K and casa.log.")
@section_option("calib", "delay_threshold_ns", "--threshold-ns", "threshold_ns", type=click.FloatRange(min=0),
                help="Report antennas whose delay differs from the reference by more (after removing the median).")
@click.option("--sources", type=ExistingPath, default=None,
              help="TTCal sources.json to model the sky [CASA's 1 Jy at the phase centre].")
@section_option("calib", "refant", help="Reference antenna name or index (none: the one with the most "
                                        "unflagged data).")
@section_option("calib", "delay_min_snr", "--solution-sigma", "min_snr", **renamed("--min-snr"),
                help="Reject delay solutions below this S/N (CASA minsnr of the delay solve).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier check in OUTPUT.")
@json_option
@common_options
def delay_check_cmd(ms: Path, reference: Path, output: Path, threshold_ns: float | None, sources: Path | None,
                    refant: str | None, min_snr: float | None, overwrite: bool, as_json: bool, cfg) -> None:
    """Solve delays on the first integration of MS (gaincal K) and compare with a reference table.

    Antennas whose delay (after removing the median offset per pol) differs by more than
    --threshold-ns are logged as warnings and marked 'off' in delay_check.csv. Exit status 0
    whatever the number of such antennas; prints the CSV path.

    \b
    Example:
      lwa-calib delay-check 20250202_190116_55MHz.ms -o delay_qa/ --threshold-ns 5 \\
          --reference delay_caltable_20250202/20h/20250202_190116_fullband.delay \\
          --sources ateam_sources.json
    """
    settings = section_with(cfg.calib, delay_threshold_ns=threshold_ns, refant=refant, delay_min_snr=min_snr)
    report = delay_check(ms, reference=reference, outdir=output, settings=settings, sources=sources,
                         overwrite=overwrite, site=cfg.site)
    emit(report.as_dict() if as_json else [str(report.csv)], as_json=as_json)


@cli.command("tables-from-gains")
@click.argument("gains", type=ExistingPath)
@click.option("--template", "template_ms", type=ExistingPath, required=True,
              help="An MS of the same array and subband (gives antennas, spw, field).")
@click.option("-o", "--output", type=NewPath, required=True, help="Folder for bandpass.B and xyphase.Xf.")
@click.option("--xy-phase-deg", type=float, default=0.0, show_default=True,
              help="XY phase moved from the Y gains into the Xf table.")
@click.option("--overwrite", is_flag=True, help="Replace existing tables.")
@common_options
def tables_from_gains_cmd(gains: Path, template_ms: Path, output: Path, xy_phase_deg: float, overwrite: bool,
                          cfg) -> None:
    """Write CASA B + Xf tables holding the gains of an lwa-sim true_gains_XXMHz.h5.

    Applying both tables removes exactly those gains (visibility_ij = g_i g_j^* model_ij).

    \b
    Example:
      lwa-calib tables-from-gains sim/true_gains_55MHz.h5 \\
          --template sim/20241220_120000_55MHz.ms -o truth_tables/ --xy-phase-deg 30
    """
    values, _, _ = read_true_gains(gains)
    make_dirs(output)
    from lwa_calib.casa_env import casa_log

    with casa_log(output / "casa.log"):
        bp, xy = gains_to_tables(gains=values, template_ms=template_ms, bp_table=output / "bandpass.B",
                                 xy_table=output / "xyphase.Xf", xy_phase_deg=xy_phase_deg, overwrite=overwrite)
    emit([str(bp), str(xy)])


def main() -> None:
    run_main(cli)
