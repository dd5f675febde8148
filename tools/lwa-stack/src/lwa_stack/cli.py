"""`lwa-stack`: thermal noise, wideband stacks, 3-colour PNGs, wideband transient search, gathered
detections, the run report and the archive. Thin: parse and validate, then call the core functions."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, run_main, section_option
from lwa_common.config import section_with
from lwa_common.errors import LwaError
from lwa_common.images import image_hint_options
from lwa_common.io import check_output
from lwa_common.products import THERMAL_NOISE

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

inputs_argument = click.argument("inputs", nargs=-1, required=True, type=ExistingPath)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
inner_option = section_option("stack", "noise_inner_fraction", "--inner-fraction", "inner_fraction",
                              type=click.FloatRange(0.05, 1.0),
                              help="Noise is measured in the central box covering this fraction of each axis.")
clip_option = section_option("stack", "noise_clip_sigma", "--clip-sigma", "clip_sigma", type=click.FloatRange(min=1.5),
                             help="Sigma-clipping threshold of the noise estimate.")


def _noise_options(func):
    """The noise-measurement options and the shared vocabulary of the commands reading images."""
    for option in reversed((inner_option, clip_option, overwrite_option, json_option, image_hint_options,
                            common_options)):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Wideband stacks, thermal noise, 3-colour PNGs, gathered detections, report and archive."""


@cli.command("noise")
@inputs_argument
@click.option("-o", "--output", type=NewPath, required=True, help="CSV to write (thermal_noise.csv).")
@_noise_options
def noise_cmd(inputs: tuple[Path, ...], output: Path, inner_fraction: float | None, clip_sigma: float | None,
              overwrite: bool, as_json: bool, hints, cfg) -> None:
    """Measure the thermal noise (sigma-clipped robust RMS, NaN-aware) of every FITS image in INPUTS.

    INPUTS are FITS files or folders (searched recursively). Writes one row per image: path, SUBBAND,
    FREQMHZ, STOKES, IMGCAT, INTERVAL, ROBUST, TAPER, PBCOR, DEWARPED, rms_jy, n_pix. An image that
    cannot be measured is skipped with a warning. Prints the CSV path.

    \b
    Example:
      lwa-stack noise run/55MHz run/73MHz -o run/Wideband/thermal_noise.csv
      lwa-stack noise wsclean-image.fits -o noise.csv      # a plain WSClean image
    """
    from lwa_stack.noise import find_images, measure_images, read_noise_csv, write_noise_csv

    settings = section_with(cfg.stack, noise_inner_fraction=inner_fraction, noise_clip_sigma=clip_sigma)
    check_output(output, overwrite=overwrite)
    images = find_images(inputs)
    if not images:
        raise LwaError(f"no FITS images under {', '.join(map(str, inputs))}")
    cache = read_noise_csv(output) if output.exists() else {}
    records, failed = measure_images(images, cache=cache, inner_fraction=settings.noise_inner_fraction,
                                     sigma=settings.noise_clip_sigma, hints=hints)
    if not records:
        raise LwaError(f"no image could be measured ({len(failed)} failed; first: {failed[0][1]})")
    for path, why in failed:
        log.warning("skipped %s: %s", path, why)
    write_noise_csv(output, records)
    emit({"outputs": [str(output)], "measured": len(records), "failed": [str(p) for p, _ in failed]}
         if as_json else [str(output)], as_json=as_json)


@cli.command("wideband")
@inputs_argument
@click.option("-o", "--output", type=NewPath, required=True, help="Folder for the Wideband_*.fits stacks.")
@click.option("--noise-csv", type=ExistingPath, default=None,
              help="thermal_noise.csv to take the noise from (default: OUTPUT's and each input folder's, "
                   "else measured).")
@click.option("--weight-from", type=click.Choice(["image", "v-deep"]), default="image", show_default=True,
              help="Weight 1/rms^2 from each image's own noise, or from its subband's deep Stokes V image.")
@_noise_options
def wideband_cmd(inputs: tuple[Path, ...], output: Path, noise_csv: Path | None, weight_from: str,
                 inner_fraction: float | None, clip_sigma: float | None, overwrite: bool, as_json: bool, hints,
                 cfg) -> None:
    """Inverse-variance weighted Red/Green/Blue stacks of the per-subband images under INPUTS.

    Images are chosen by header: transient stacks (TAPER>0, ROBUST 0, not PB-corrected, dewarped when
    available; Stokes I and V; deep and each 10 min INTERVAL) and science stacks (no taper, deep Stokes
    I, ROBUST 0 and -0.75). A plain WSClean image (no TAPER / ROBUST in its header) joins the
    transient family, its stack named without those tokens. Bands from the config's stack.bands_mhz. Writes
    OUTPUT/Wideband_{Band}_{Pol}_{cat}_{Taper}_{Robust}[_{interval}].fits (IMGCAT=stack, BAND,
    SUBBANDS, effective FREQMHZ, STKRMS) and OUTPUT/thermal_noise.csv. A subband whose image is
    unreadable is skipped with a warning. Prints the stack paths.

    \b
    Example:
      lwa-stack wideband run/*MHz -o run/Wideband
      lwa-stack wideband wsclean-image.fits -o wideband/   # a plain WSClean image
    """
    from lwa_stack.stack import bands_from_config, wideband

    settings = section_with(cfg.stack, noise_inner_fraction=inner_fraction, noise_clip_sigma=clip_sigma)
    if output.exists() and not output.is_dir():
        raise LwaError(f"output {output} exists and is not a folder")
    results = wideband(inputs, outdir=output, bands=bands_from_config(settings.bands_mhz), noise_csv=noise_csv,
                       weight_from=weight_from, inner_fraction=settings.noise_inner_fraction,
                       clip_sigma=settings.noise_clip_sigma,
                       overwrite=overwrite, argv=sys.argv, hints=hints)
    if as_json:
        emit({"outputs": [str(r.path) for r in results], "noise_csv": str(THERMAL_NOISE.path(output)),
              "stacks": [{"path": str(r.path), "band": r.plan.band.name, "freq_mhz": r.freq_mhz,
                          "expected_rms_jy": r.expected_rms_jy, "subbands": [c.info.subband for c, _ in r.used],
                          "skipped": [str(p) for p, _ in r.skipped]} for r in results]}, as_json=True)
    else:
        emit([str(r.path) for r in results])


@cli.command("color")
@inputs_argument
@click.option("-o", "--output", type=NewPath, required=True, help="Folder for the 3-colour PNGs.")
@section_option("stack", "stretch_percentiles", "--percentiles", "percentiles", type=(float, float),
                help="Per-channel stretch percentiles LO HI.")
@overwrite_option
@json_option
@common_options
def color_cmd(inputs: tuple[Path, ...], output: Path, percentiles: tuple[float, float] | None, overwrite: bool,
              as_json: bool, cfg) -> None:
    """Three 3-colour PNGs (mixed, Robust-0, Robust-0.75) from the wideband deep Stokes I stacks in INPUTS.

    Channels are selected by header (IMGCAT=stack, STKCAT=deep, STOKES=I, BAND); each is stretched
    between its own percentiles. mixed = Red Robust-0.75 + Green/Blue Robust-0. Prints the PNG paths.

    \b
    Example:
      lwa-stack color run/Wideband -o run/Wideband
    """
    from lwa_stack.color import color_images

    settings = section_with(cfg.stack, stretch_percentiles=percentiles)
    written = color_images(inputs, outdir=output, band_names=[b[0] for b in settings.bands_mhz],
                           percentiles=settings.stretch_percentiles, overwrite=overwrite)
    emit({"outputs": [str(p) for p in written]} if as_json else [str(p) for p in written], as_json=as_json)


@cli.command("gather")
@click.argument("rundirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=NewPath, required=True,
              help="Folder for detections_summary.csv and detections_summary.json.")
@overwrite_option
@json_option
@common_options
def gather_cmd(rundirs: tuple[Path, ...], output: Path, overwrite: bool, as_json: bool, cfg) -> None:
    """Gather target, solar-system and transient detections of RUNDIRS into one summary.

    Scans *_photometry.csv (rows with Detection true; solar-system bodies by folder or name) and
    transient candidates.csv files. Prints the two summary paths.

    \b
    Example:
      lwa-stack gather run/ -o run/summary
    """
    from lwa_stack.gather import gather, write_summary

    summary = gather(rundirs)
    paths = write_summary(summary, output, overwrite=overwrite)
    emit({"outputs": [str(p) for p in paths], "n_detections": summary["n_detections"],
          "counts": summary["counts"]} if as_json else [str(p) for p in paths], as_json=as_json)


@cli.command("report")
@click.argument("rundir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=NewPath, required=True, help="Weblog folder to write (index.html and pages).")
@click.option("--title", default=None, help="Page title (default: 'lwa-pipe weblog: RUN/HOUR').")
@click.option("--weblog-url", default=None,
              help="Address the weblog is published at, for the e-mail (default: its file:// address).")
@click.option("--db", "db_url", default=None,
              help="Products database (lwa-db URL or SQLite file): target pages show their lightcurves across nights.")
@click.option("--email-to", multiple=True, help="Also e-mail the summary and the weblog's address (repeatable).")
@click.option("--email-from", default=None, help="Sender address (env LWA_SMTP_FROM).")
@click.option("--smtp-host", default=None, help="SMTP server (env LWA_SMTP_HOST; default localhost).")
@click.option("--smtp-port", type=click.IntRange(1, 65535), default=None, help="SMTP port (env LWA_SMTP_PORT; 25).")
@click.option("--smtp-user", default=None,
              help="SMTP login (env LWA_SMTP_USER); the password is read from env LWA_SMTP_PASSWORD only.")
@overwrite_option
@json_option
@common_options
def report_cmd(rundir: Path, output: Path, title: str | None, weblog_url: str | None, db_url: str | None,
               email_to: tuple[str, ...],
               email_from: str | None, smtp_host: str | None, smtp_port: int | None, smtp_user: str | None,
               overwrite: bool, as_json: bool, cfg) -> None:
    """The weblog of RUNDIR (one LST hour of bin/run_hour.sh): a folder of static pages, browsable offline.

    index.html: the run, a subband x stage table of QA scores on ALMA's scale (>= 0.9 green, >= 0.66
    blue, >= 0.33 yellow, else red) computed from measured quantities, the red items (science lost).
    A page per stage and subband (formula, inputs, plots, exact commands, logs); image previews
    linking to the FITS, movies; deduplicated transient candidates; a page per target; commands.sh.
    Optionally e-mails the summary table and the weblog's address. Prints the index path.

    \b
    Example:
      lwa-stack report run/10h -o run/10h/weblog
      LWA_SMTP_HOST=smtp.example.org LWA_SMTP_PORT=587 LWA_SMTP_USER=pipe LWA_SMTP_PASSWORD=... \\
          lwa-stack report run/10h -o run/10h/weblog --email-to team@example.org
    """
    from lwa_stack.mail import build_message, send_message, smtp_settings
    from lwa_stack.report import build_weblog, html_summary, text_summary

    if output.exists() and not overwrite:
        raise LwaError(f"output exists: {output} (use --overwrite to replace it)")
    settings = smtp_settings(cfg, host=smtp_host, port=smtp_port, user=smtp_user, sender=email_from) if email_to \
        else None
    index, run, summary = build_weblog(rundir, output=output, cfg=cfg, overwrite=overwrite, title=title,
                                       db_url=db_url)
    if settings is not None:
        link = weblog_url.rstrip("/") + "/index.html" if weblog_url else index.resolve().as_uri()
        subject = title or f"lwa-pipe weblog: {rundir.resolve().parent.name}/{rundir.resolve().name}"
        msg = build_message(html_summary(run.scores, summary, link=link, title=subject), subject=subject,
                            sender=settings.sender, to=list(email_to), text=text_summary(run.scores, summary, link=link))
        send_message(msg, settings)
    emit({"outputs": [str(index)], "overall": run.overall,
          "scores": {f"{s.subband}/{s.stage}": s.value for s in run.scores},
          "red_items": [f"{s.subband} {s.stage}: {it}" for s in run.scores for it in s.items],
          "n_detections": summary["n_detections"], "emailed": list(email_to)} if as_json else [str(index)],
         as_json=as_json)


@cli.command("archive")
@click.argument("rundir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--archive-root", type=NewPath, required=True, help="Root of the archive tree.")
@click.option("--sample", required=True, help="Target sample name (samples/{sample}/{target}/{sb}/{run}).")
@click.option("--run-name", default=None,
              help="Name of the run in the archive, e.g. with its date (default: RUNDIR's name).")
@click.option("--move", is_flag=True, help="Delete the archived source files once every copy verifies.")
@click.option("--include-ms", is_flag=True, help="Also archive MeasurementSet folders (*.ms).")
@overwrite_option
@json_option
@common_options
def archive_cmd(rundir: Path, archive_root: Path, sample: str, run_name: str | None, move: bool, include_ms: bool,
                overwrite: bool, as_json: bool, cfg) -> None:
    """Add RUNDIR's products to ARCHIVE_ROOT: runs/{run}/, samples/{sample}/{target}/{sb}/{run}/, detections/.

    The archive accumulates: every file lies under a path naming the run, and the per-target tables
    samples/{sample}/{target}/{target}_photometry.csv and detections/detections.csv merge every
    run's rows. Every copy is sha256-verified; manifests/{run}.json and manifests/{run}.sha256
    (sha256sum -c from the root) list them. Re-archiving a run is a no-op; --overwrite replaces only
    that run's changed files; a run name already archived for another observation is refused.
    Sources are kept unless --move (then deleted only after the copies verify). Prints the
    manifest path.

    \b
    Example:
      lwa-stack archive run/10h --archive-root /lustre/archive --sample exoplanets --run-name 2024-12-20-10h
    """
    from lwa_stack.archive import archive_run

    if not sample.strip() or "/" in sample:
        raise click.BadParameter("must be a non-empty name without '/'", param_hint="--sample")
    manifest = archive_run(rundir, root=archive_root, sample=sample, run_name=run_name, move=move,
                           overwrite=overwrite, include_ms=include_ms)
    mpath = Path(manifest["root"]) / "manifests" / f"{manifest['run']}.json"
    emit({"outputs": [str(mpath)], "files": len(manifest["files"]),
          "copies": sum(len(f["copies"]) for f in manifest["files"])} if as_json else [str(mpath)], as_json=as_json)


def main() -> None:
    run_main(cli)
