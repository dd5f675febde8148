"""`lwa-db`: the products database. Thin: parse and validate, then call the core functions."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
from pathlib import Path

import click

from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, run_main, section_option
from lwa_common.config import Config, section_with
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)

db_option = click.option(
    "--db", "db_url", envvar="LWA_DB_URL", default=None, metavar="URL",
    help="Database: an SQLite file path or URL (sqlite:///lwa.sqlite), or postgresql+psycopg://user:pw@host/db. "
         "Default: $LWA_DB_URL, else [database] url of the config (sqlite:///lwa-products.sqlite).")


def _url(db_url: str | None, cfg: Config) -> str:
    return db_url or cfg.database.url


def _open(db_url: str | None, cfg: Config, *, create: bool):
    from lwa_db.schema import open_database

    url = _url(db_url, cfg)
    if not create:
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else (url if "://" not in url else None)
        if path is not None and not Path(path).exists():
            raise LwaError(f"database not found: {path} (run lwa-db ingest first, or give --db)")
    return open_database(url, settings=cfg.database, create=create)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The OVRO-LWA products database: runs, images, photometry and candidates; sources across nights,
    lightcurves and variability (eta, V)."""


@cli.command("ingest")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=ExistingPath)
@db_option
@click.option("--run-name", default=None, help="Name of the run (one RUN_DIR only). Default: YYYYMMDD-<hour> "
                                               "from the first DATE-OBS and the folder name.")
@json_option
@common_options
def ingest_cmd(run_dirs: tuple[Path, ...], db_url: str | None, run_name: str | None, as_json: bool, cfg) -> None:
    """Register every product of each RUN_DIR (one LST hour of bin/run_hour.sh, or a work folder:
    each of its hours) in the database, then associate its measurements into sources.

    Images come from their self-describing FITS headers, photometry, candidates, flux-check and QA
    from the run's CSV/JSON files. A run is ingested in one transaction: a corrupt or partial run is
    refused and leaves the database unchanged. Ingesting a run again is a no-op when nothing changed
    and replaces its rows when it did. Several processes may ingest at once (SQLite on one node;
    PostgreSQL anywhere). Prints one line per run: name, status (new/updated/unchanged), images,
    measurements, new sources.

    \b
    Example:
      lwa-db ingest night1/10h night2/10h night3/10h --db nights.sqlite
    """
    from lwa_db.ingest import store_run
    from lwa_db.scan import run_folders, scan_run

    folders = [f for d in run_dirs for f in run_folders(d)]
    if run_name and len(folders) > 1:
        raise LwaError(f"--run-name names one run; {len(folders)} were given")
    records = [scan_run(f, cfg=cfg, name=run_name) for f in folders]  # everything validated before any write
    names = [r.name for r in records]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LwaError(f"two run folders have the same run name {dup[0]}: give them apart with --run-name")
    engine = _open(db_url, cfg, create=True)
    results = [store_run(engine, rec, cfg=cfg) for rec in records]
    if as_json:
        emit([r.as_dict() for r in results], as_json=True)
    else:
        for r in results:
            click.echo(f"{r.run}\t{r.status}\t{r.n_images} images\t{r.n_measurements} measurements\t"
                       f"{r.n_new_sources} new sources")


@cli.command("lightcurve")
@click.argument("query", metavar="NAME|RA,DEC")
@db_option
@click.option("--stokes", type=click.Choice(["I", "V"]), default="I", show_default=True)
@click.option("--subband", default=None, help="Only this subband (55MHz or 55).")
@click.option("--wideband", is_flag=True, help="Only the wideband stacks (measurements and limits).")
@click.option("-o", "--output", type=NewPath, required=True,
              help="Folder for <jname>_<stokes>[_<band>]_lightcurve.csv and .png.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@json_option
@common_options
def lightcurve_cmd(query: str, db_url: str | None, stokes: str, subband: str | None, wideband: bool, output: Path,
                   overwrite: bool, as_json: bool, cfg) -> None:
    """Lightcurve of one source: a J-name, a target's name, or RA,DEC in degrees (the nearest source
    within the association radius). Writes a CSV (time, flux, error, SNR, detected, upper limit,
    run, band, interval, image) and a PNG (time on x; detections with errors, forced photometry as
    open circles, upper limits as down triangles). Prints the two paths.

    \b
    Example:
      lwa-db lightcurve "CR Dra" --stokes V --subband 55MHz --db nights.sqlite -o lightcurves/
    """
    from lwa_db.lightcurve import lightcurve, subband_label, write_lightcurve

    if subband and wideband:
        raise click.UsageError("--subband and --wideband exclude each other")
    subband = subband_label(subband) if subband else None
    engine = _open(db_url, cfg, create=False)
    src, rows = lightcurve(engine, query, cfg=cfg, stokes=stokes, subband=subband, wideband=wideband)
    if not rows:
        raise LwaError(f"source {src['jname']} has no Stokes {stokes} point"
                       f"{' in ' + subband if subband else ' in the wideband stacks' if wideband else ''}")
    suffix = f"_{subband}" if subband else "_wideband" if wideband else ""
    stem = f"{src['jname']}_{stokes}{suffix}_lightcurve"
    csv_path, png_path = output / f"{stem}.csv", output / f"{stem}.png"
    for p in (csv_path, png_path):
        check_output(p, overwrite=overwrite)
    write_lightcurve(src, rows, csv_path=csv_path, png_path=png_path)
    summary = {"source": src["jname"], "name": src["name"], "points": len(rows),
               "detections": sum(r["detected"] for r in rows), "outputs": [str(csv_path), str(png_path)]}
    emit(summary if as_json else summary["outputs"], as_json=as_json)


VARIABLE_COLUMNS = ("jname", "name", "ra_deg", "dec_deg", "stokes", "band", "n_points", "eta", "v", "mean_flux_jy",
                    "wmean_flux_jy", "max_flux_jy", "n_detections")


@cli.command("variables")
@db_option
@section_option("database", "eta_min", help="Minimum eta (weighted reduced chi^2).")
@section_option("database", "v_min", help="Minimum V (modulation index).")
@section_option("database", "min_points", type=click.IntRange(min=2), help="Minimum number of flux points.")
@click.option("--stokes", type=click.Choice(["I", "V"]), default=None, help="Only this Stokes parameter.")
@click.option("--band", default=None, help="Only this band (a subband label such as 55MHz, or a stack band).")
@click.option("-o", "--output", type=NewPath, default=None, help="Write the CSV here instead of stdout.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@json_option
@common_options
def variables_cmd(db_url: str | None, eta_min: float | None, v_min: float | None, min_points: int | None,
                  stokes: str | None, band: str | None, output: Path | None, overwrite: bool, as_json: bool,
                  cfg) -> None:
    """Sources whose eta and V (Swinbank et al. 2015) both reach the thresholds, per Stokes and band,
    with the number of flux points; most variable (eta) first. CSV on stdout (or --output).

    \b
    Example:
      lwa-db variables --eta-min 10 --v-min 0.3 --stokes I --db nights.sqlite
    """
    from lwa_db.query import variable_sources

    settings = section_with(cfg.database, eta_min=eta_min, v_min=v_min, min_points=min_points)
    rows = variable_sources(_open(db_url, cfg, create=False), settings=settings, stokes=stokes, band=band)
    _table(rows, VARIABLE_COLUMNS, output=output, overwrite=overwrite, as_json=as_json)


SOURCE_COLUMNS = ("jname", "name", "ra_deg", "dec_deg", "moving", "n_measurements", "n_detections", "first_mjd",
                  "last_mjd", "n_runs", "n_ambiguous")


@cli.command("sources")
@db_option
@click.option("-o", "--output", type=NewPath, default=None, help="Write the CSV here instead of stdout.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@json_option
@common_options
def sources_cmd(db_url: str | None, output: Path | None, overwrite: bool, as_json: bool, cfg) -> None:
    """The running catalogue: every source with its J-name, position, measurements, detections, time
    span, runs and ambiguous associations. CSV on stdout (or --output).

    \b
    Example:
      lwa-db sources --db nights.sqlite
    """
    from lwa_db.query import source_table

    _table(source_table(_open(db_url, cfg, create=False)), SOURCE_COLUMNS, output=output, overwrite=overwrite,
           as_json=as_json)


def _table(rows: list[dict], columns: tuple[str, ...], *, output: Path | None, overwrite: bool, as_json: bool) -> None:
    if as_json:
        emit(rows, as_json=True)
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "" if v is None else v) for k, v in r.items()})
    if output is None:
        sys.stdout.write(buf.getvalue())
        return
    check_output(output, overwrite=overwrite)
    with atomic_path(output) as tmp:
        tmp.write_text(buf.getvalue())
    emit([output])


def main() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    run_main(cli)
