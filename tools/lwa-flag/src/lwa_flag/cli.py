"""`lwa-flag`: antenna health, AOFlagger RFI, hot baselines and bad integrations.

Thin: parse and validate the options, then call the core function of each command in
`lwa_flag.commands` (which checks inputs, flags, writes the QA products and the JSON summary).
"""

from __future__ import annotations

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
from lwa_common.config import section_with
from lwa_flag.commands import (
    FlagRun,
    Target,
    flag_antenna_health,
    flag_hot_baselines,
    flag_integrations,
    flag_rfi,
)

__all__ = ["cli", "main"]



def _target_options(func):
    func = click.option("--summary", "summary_path", type=NewPath, default=None,
                        help="JSON flag summary path [default: <output folder>/<ms stem>.flag-<command>.json].")(func)
    func = click.option("--overwrite", is_flag=True, help="Replace existing outputs (copy, summary, QA files).")(func)
    func = click.option("--in-place", is_flag=True, help="Write the flags into the input MS itself.")(func)
    func = click.option("-o", "--output", type=NewPath, default=None,
                        help="Flag a copy of the MS written here (the input stays untouched).")(func)
    return func


def _target(output: Path | None, in_place: bool, overwrite: bool, summary_path: Path | None, *,
            dry_run: bool = False) -> Target:
    """The -o/--in-place choice as a `Target` (a usage error, exit 2, when both or neither are given)."""
    if in_place and output is not None:
        raise click.UsageError("use either -o/--output (flag a copy) or --in-place, not both")
    if not in_place and output is None and not dry_run:
        raise click.UsageError("give -o/--output (flag a copy) or --in-place (flag the input MS)")
    return Target(output=output, in_place=in_place, overwrite=overwrite, summary=summary_path)


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise click.BadParameter(f"must be {'>= 0' if allow_zero else '> 0'}, got {value}", param_hint=name)


def _window(value: int) -> None:
    if value < 3:
        raise click.BadParameter(f"must be >= 3, got {value}", param_hint="--window")


def _result(run: FlagRun, as_json: bool) -> None:
    emit(run.as_dict() if as_json else [str(p) for p in run.outputs], as_json=as_json)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Flag OVRO-LWA measurement sets: bad antennas, RFI, hot baselines, bad integrations.

    Every command reads an MS at an explicit path and writes flags into a copy (-o) or, with
    --in-place, into the MS itself, plus a JSON flag summary (% flagged before/after, what).
    """


# ----------------------------------------------------------------------------------------- antennas
@cli.command("antennas")
@click.argument("ms", type=ExistingPath)
@click.argument("health_file", type=ExistingPath, required=False)
@_target_options
@click.option("--source", type=click.Choice(["auto", "file", "mnc"]), default="auto", show_default=True,
              help="Where the bad-antenna list comes from; auto: HEALTH_FILE if given, else the MNC API.")
@click.option("--ids", type=click.Choice(["auto", "names", "correlators"]), default="auto", show_default=True,
              help="How bare numbers in the file are read (auto: integers are correlator numbers).")
@click.option("--system-cfg", type=ExistingPath, envvar="LWA_SYSTEM_CFG", default=None,
              help="system_cfg.yml, to map correlator numbers to antenna names; env LWA_SYSTEM_CFG.")
@click.option("--mnc-method", default="selfcorr", show_default=True, help="anthealth.get_badants method.")
@json_option
@common_options
def antennas_cmd(ms: Path, health_file: Path | None, output: Path | None, in_place: bool, overwrite: bool,
                 summary_path: Path | None, source: str, ids: str, system_cfg: Path | None, mnc_method: str,
                 as_json: bool, cfg) -> None:
    """Flag the antennas an antenna-health record marks bad (HEALTH_FILE, or the MNC API).

    HEALTH_FILE is CSV or YAML/JSON listing antenna names (LWA-123, LWA123, 123A) and/or
    correlator numbers, as MNC exports them (see the README for the accepted layouts). Without a
    file, the MNC API (`mnc.anthealth.get_badants`) is asked for the MS mid-time when the `mnc`
    package is importable. Every row of a bad antenna (cross and auto) is flagged.

    \b
    Example:
      lwa-flag antennas 20241220_120000_55MHz.ms badants.yml -o flagged.ms
      lwa-flag antennas obs.ms --in-place --source mnc
    """
    target = _target(output, in_place, overwrite, summary_path)
    if source == "file" and health_file is None:
        raise click.UsageError("--source file needs a HEALTH_FILE")
    _result(flag_antenna_health(ms, health_file, target=target, source=source, ids=ids, system_cfg=system_cfg,
                                mnc_method=mnc_method), as_json)


# ---------------------------------------------------------------------------------------------- rfi
@cli.command("rfi")
@click.argument("ms", type=ExistingPath)
@_target_options
@click.option("--strategy", type=ExistingPath, default=None,
              help="AOFlagger Lua strategy [default: the OVRO-LWA strategy shipped with lwa-flag].")
@click.option("--data-column", "column", default=None, **renamed("--column"), help="Data column to flag on [default: CORRECTED_DATA if present, else DATA].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="aoflagger -j (default: all cores).")
@click.option("--preamble", multiple=True,
              help="Lua statement run before the strategy, e.g. 'lwa_base_threshold = 1.5' (repeatable).")
@json_option
@common_options
def rfi_cmd(ms: Path, output: Path | None, in_place: bool, overwrite: bool, summary_path: Path | None,
            strategy: Path | None, column: str | None, threads: int | None, preamble: tuple[str, ...],
            as_json: bool, cfg) -> None:
    """Flag RFI with AOFlagger and a Lua strategy (OVRO-LWA-tuned by default).

    The exact aoflagger command is logged and stored in the summary. AOFlagger needs several time
    steps: on a one-integration MS only frequency-direction detection runs (narrow-band RFI is
    found, broadband RFI filling the whole integration is not); concatenate integrations first.
    Afterwards, unpolarised narrow-band RFI is flagged from the median Stokes I spectrum over all
    baselines of each integration (config [rfi]; spectrum_sigma = 0 turns it off).

    \b
    Example:
      lwa-flag rfi concat_55MHz.ms -o concat_55MHz.flagged.ms
      lwa-flag rfi concat_55MHz.ms --in-place --strategy my.lua --preamble 'lwa_base_threshold = 1.5'
    """
    target = _target(output, in_place, overwrite, summary_path)
    _result(flag_rfi(ms, target=target, strategy=strategy, column=column, threads=threads, preamble=preamble,
                     settings=cfg.rfi),
            as_json)


# ------------------------------------------------------------------------------------ hot-baselines
@cli.command("hot-baselines")
@click.argument("ms", type=ExistingPath)
@_target_options
@click.option("--data-column", "column", default=None, **renamed("--column"), help="Data column [default: CORRECTED_DATA, else DATA with a warning].")
@section_option("hot_baselines", "window", help="Rolling-median window (baselines).")
@section_option("hot_baselines", "sigma_uv", "--uv-sigma", "sigma_uv", **renamed("--sigma-uv"), help="Pass 1 threshold (sigma above the rolling median).")
@section_option("hot_baselines", "sigma_heatmap", "--heatmap-sigma", "sigma_heatmap", **renamed("--sigma-heatmap"),
                help="Pass 2 cross-pol robust z-score threshold.")
@section_option("hot_baselines", "antenna_fraction",
                help="Flag an antenna whole above this fraction of its baselines flagged.")
@section_option("hot_baselines", "min_uv_lambda", "--uv-min-lambda", "min_uv_lambda", **renamed("--min-uv-lambda"),
                help="Skip baselines shorter than this (wavelengths).")
@section_option("hot_baselines", "dead_fraction",
                help="Dead antenna: median amplitude below this fraction of the array's (0: off).")
@click.option("--uv-pass/--no-uv-pass", default=True, show_default=True, help="Pass 1: amplitude vs uv.")
@click.option("--crosspol-pass/--no-crosspol-pass", default=True, show_default=True,
              help="Pass 2: cross-pol heatmap.")
@click.option("--system-cfg", type=ExistingPath, envvar="LWA_SYSTEM_CFG", default=None,
              help="system_cfg.yml: annotate the heatmap with correlator/SNAP2/ARX wiring; env LWA_SYSTEM_CFG.")
@click.option("--qa-dir", type=NewPath, default=None,
              help="Folder for amp_vs_uv.png, heatmap.png, flagged_baselines.csv [default: <output folder>/QA].")
@click.option("--dry-run", is_flag=True, help="Detect and write the QA products and summary, flag nothing.")
@json_option
@common_options
def hot_cmd(ms: Path, output: Path | None, in_place: bool, overwrite: bool, summary_path: Path | None,
            column: str | None, window: int | None, sigma_uv: float | None, sigma_heatmap: float | None,
            antenna_fraction: float | None, min_uv_lambda: float | None, dead_fraction: float | None,
            uv_pass: bool, crosspol_pass: bool, system_cfg: Path | None, qa_dir: Path | None, dry_run: bool,
            as_json: bool, cfg) -> None:
    """Flag hot baselines (amplitude vs uv; cross-pol heatmap) and dead antennas.

    Pass 1: mean (|XX|+|YY|)/2 per baseline against a rolling median over the uv-sorted
    baselines (robust sigma = 1.4826 MAD). Pass 2: mean (|XY|+|YX|)/2 as an antenna x antenna
    matrix, robust z-score. Antennas with more than --antenna-fraction of their baselines
    flagged, and dead antennas, are flagged whole. Baselines under --uv-min-lambda are skipped.
    QA: amp_vs_uv.png, heatmap.png (with --system-cfg: annotated with correlator input, SNAP2
    and ARX board) and flagged_baselines.csv (ant1, ant2, names, uv_lambda, reason, score).

    \b
    Example:
      lwa-flag hot-baselines concat_55MHz.ms -o concat_55MHz.hb.ms \\
          --system-cfg ../shared/data/ovro-lwa/system_cfg.yml
    """
    target = _target(output, in_place, overwrite, summary_path, dry_run=dry_run)
    settings = section_with(cfg.hot_baselines, window=window, sigma_uv=sigma_uv, sigma_heatmap=sigma_heatmap,
                            antenna_fraction=antenna_fraction, min_uv_lambda=min_uv_lambda,
                            dead_fraction=dead_fraction)
    _window(settings.window)
    _positive("--uv-sigma", settings.sigma_uv)
    _positive("--heatmap-sigma", settings.sigma_heatmap)
    _positive("--uv-min-lambda", settings.min_uv_lambda, allow_zero=True)
    _positive("--dead-fraction", settings.dead_fraction, allow_zero=True)
    if not 0 < settings.antenna_fraction <= 1:
        raise click.BadParameter(f"must be in (0, 1], got {settings.antenna_fraction}",
                                 param_hint="--antenna-fraction")
    _result(flag_hot_baselines(ms, target=target, settings=settings, column=column, uv_pass=uv_pass,
                               crosspol_pass=crosspol_pass, system_cfg=system_cfg, qa_dir=qa_dir, dry_run=dry_run),
            as_json)


# ------------------------------------------------------------------------------------- integrations
@cli.command("integrations")
@click.argument("snapshots", type=ExistingPath, nargs=-1, required=True)
@click.option("--ms", "ms_list", type=ExistingPath, multiple=True, required=True,
              help="The MS holding those times: one concatenated MS, or repeat for per-integration MS.")
@_target_options
@section_option("snapshot_qa", "sigma", "--rms-sigma", "sigma", **renamed("--sigma"),
                help="Flag frames whose RMS deviates more than this (robust sigma) from the running median.")
@section_option("snapshot_qa", "low_ratio", help="Also flag frames with RMS below this x the running median.")
@section_option("snapshot_qa", "running_window", "--window", "window", help="Running-median window (frames).")
@section_option("snapshot_qa", "min_scatter_fraction",
                help="Floor of the RMS scatter, as a fraction of the median RMS.")
@click.option("--qa-dir", type=NewPath, default=None,
              help="Folder for snapshot_rms.png and bad_integrations.csv [default: <output folder>/QA].")
@json_option
@common_options
def integrations_cmd(snapshots: tuple[Path, ...], ms_list: tuple[Path, ...], output: Path | None, in_place: bool,
                     overwrite: bool, summary_path: Path | None, sigma: float | None, low_ratio: float | None,
                     window: int | None, min_scatter_fraction: float | None, qa_dir: Path | None, as_json: bool,
                     cfg) -> None:
    """Flag integrations whose pilot Stokes V snapshot RMS is an outlier (never a sky transient).

    SNAPSHOTS are Stokes V FITS images, one per integration (IMGCAT=snapshot; time from
    MJD-MID, else DATE-OBS). A frame is bad when its robust RMS deviates more than --rms-sigma from
    the running median, or is below --low-ratio x the quiet level (lower quartile) of its window.
    A high frame whose difference from its neighbours' median image is a compact source (peak >=
    snapshot_qa.compact_peak_ratio x its RMS) holds a transient and is kept. With fewer than
    snapshot_qa.min_frames snapshots nothing is flagged (WARNING). Its time is flagged in
    every --ms whose TIME lies within half an integration. With several --ms, -o is a folder
    receiving flagged copies under the same names. QA: snapshot_rms.png, bad_integrations.csv.

    \b
    Example:
      lwa-flag integrations snapshots/*-V-image.fits --ms concat_55MHz.ms -o concat_55MHz.qa.ms
      lwa-flag integrations snaps/*.fits --ms a.ms --ms b.ms --in-place
    """
    target = _target(output, in_place, overwrite, summary_path)
    settings = section_with(cfg.snapshot_qa, sigma=sigma, low_ratio=low_ratio, running_window=window,
                            min_scatter_fraction=min_scatter_fraction)
    _positive("--min-scatter-fraction", settings.min_scatter_fraction, allow_zero=True)
    _positive("--rms-sigma", settings.sigma)
    _positive("--low-ratio", settings.low_ratio, allow_zero=True)
    _window(settings.running_window)
    _result(flag_integrations(snapshots, ms=ms_list, target=target, settings=settings, qa_dir=qa_dir), as_json)


def main() -> None:
    run_main(cli)

