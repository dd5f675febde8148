"""`lwa-flag`: antenna health, AOFlagger RFI, hot baselines and bad integrations.

Thin: parse and validate, then call the keyword-only core functions of `lwa_flag.antennas`,
`lwa_flag.rfi`, `lwa_flag.hot` and `lwa_flag.integrations`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, run_main
from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.io import check_output
from lwa_common.ms import ms_time_range
from lwa_flag._ms import (
    default_summary_path,
    flag_target,
    flagged_fraction,
    stamp,
    validate_ms,
    write_summary,
)

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)
_D = Config()  # defaults, for the help texts (the resolved --config values are used at run time)


def _cfg_help(text: str, section: str, key: str) -> str:
    return f"{text} [default: {getattr(getattr(_D, section), key)}, config {section}.{key}]"


def _target_options(func):
    func = click.option("--summary", "summary_path", type=NewPath, default=None,
                        help="JSON flag summary path [default: <output folder>/<ms stem>.flag-<command>.json].")(func)
    func = click.option("--overwrite", is_flag=True, help="Replace existing outputs (copy, summary, QA files).")(func)
    func = click.option("--in-place", is_flag=True, help="Write the flags into the input MS itself.")(func)
    func = click.option("-o", "--output", type=NewPath, default=None,
                        help="Flag a copy of the MS written here (the input stays untouched).")(func)
    return func


def _check_target(output: Path | None, in_place: bool) -> None:
    if in_place and output is not None:
        raise click.UsageError("use either -o/--output (flag a copy) or --in-place, not both")
    if not in_place and output is None:
        raise click.UsageError("give -o/--output (flag a copy) or --in-place (flag the input MS)")


def _final(ms: Path, output: Path | None, in_place: bool) -> Path:
    return ms if in_place else Path(output)


def _check_outputs(paths: list[Path], *, overwrite: bool) -> None:
    for p in paths:
        check_output(p, overwrite=overwrite)


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise click.BadParameter(f"must be {'>= 0' if allow_zero else '> 0'}, got {value}", param_hint=name)


def _result(outputs: list[Path], summary: dict, as_json: bool) -> None:
    emit({**summary, "outputs": [str(p) for p in outputs]} if as_json else [str(p) for p in outputs],
         as_json=as_json)


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
    from lwa_flag.antennas import flag_antennas, mnc_available, query_mnc, read_health_file, resolve_antennas

    _check_target(output, in_place)
    if source == "file" and health_file is None:
        raise click.UsageError("--source file needs a HEALTH_FILE")
    validate_ms(ms)
    final = _final(ms, output, in_place)
    summary_path = summary_path or default_summary_path(final, "antennas")
    _check_outputs([summary_path], overwrite=overwrite)
    if source == "mnc" or (source == "auto" and health_file is None):
        if not mnc_available():
            raise LwaError("no HEALTH_FILE given and the OVRO-LWA mnc package is not importable "
                           "(give a CSV/YAML health file)")
        if health_file is not None:
            log.warning("--source mnc: ignoring %s", health_file)
        start, end = ms_time_range(ms)
        health = query_mnc((start.mjd + end.mjd) / 2, method=mnc_method)
    else:
        health = read_health_file(health_file, ids=ids)
    found, missing = resolve_antennas(health, ms, system_cfg=system_cfg)
    log.info("health record %s: %d names, %d correlator numbers; %d antennas in this MS%s", health.source,
             len(health.names), len(health.corr_nums), len(found),
             f"; not in the MS: {', '.join(missing)}" if missing else "")
    if not health.empty and not found:
        log.warning("none of the %d bad antennas listed is in %s", len(health.names) + len(health.corr_nums), ms)
    before = flagged_fraction(ms)
    with flag_target(ms, output=output, in_place=in_place, overwrite=overwrite) as target:
        rows = flag_antennas(target, found)
        stamp(target, f"lwa-flag antennas: {len(found)} antennas from {health.source}")
        after = flagged_fraction(target)
    flagged = {"source": health.source, "listed": {"names": list(health.names), "corr_nums": list(health.corr_nums)},
               "antennas": [{"antenna": i, "name": n} for i, n in found.items()], "not_in_ms": missing,
               "rows_flagged": rows}
    write_summary(summary_path, command="antennas", inputs=[str(ms)], output=str(final), in_place=in_place,
                  before=before, after=after, flagged=flagged)
    log.info("%s: %.2f%% -> %.2f%% flagged", final, 100 * before, 100 * after)
    _result([final, summary_path], {"flagged_percent_before": 100 * before, "flagged_percent_after": 100 * after,
                                    "flagged": flagged}, as_json)


# ---------------------------------------------------------------------------------------------- rfi
@cli.command("rfi")
@click.argument("ms", type=ExistingPath)
@_target_options
@click.option("--strategy", type=ExistingPath, default=None,
              help="AOFlagger Lua strategy [default: the OVRO-LWA strategy shipped with lwa-flag].")
@click.option("--column", default=None, help="Data column to flag on [default: CORRECTED_DATA if present, else DATA].")
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

    \b
    Example:
      lwa-flag rfi concat_55MHz.ms -o concat_55MHz.flagged.ms
      lwa-flag rfi concat_55MHz.ms --in-place --strategy my.lua --preamble 'lwa_base_threshold = 1.5'
    """
    from lwa_flag.rfi import default_strategy, flag_profile, pick_rfi_column, run_aoflagger

    _check_target(output, in_place)
    validate_ms(ms)
    column = pick_rfi_column(ms, column)
    strategy = strategy or default_strategy()
    final = _final(ms, output, in_place)
    summary_path = summary_path or default_summary_path(final, "rfi")
    _check_outputs([summary_path], overwrite=overwrite)
    before = flagged_fraction(ms)
    with flag_target(ms, output=output, in_place=in_place, overwrite=overwrite) as target:
        run = run_aoflagger(target, strategy=strategy, column=column, threads=threads, preamble=preamble)
        stamp(target, f"lwa-flag rfi: {run['command']}")
        after = flagged_fraction(target)
        profile = flag_profile(target)
    flagged = {"aoflagger": run, **profile}
    write_summary(summary_path, command="rfi", inputs=[str(ms)], output=str(final), in_place=in_place,
                  before=before, after=after, flagged=flagged)
    log.info("%s: %.2f%% -> %.2f%% flagged", final, 100 * before, 100 * after)
    _result([final, summary_path], {"flagged_percent_before": 100 * before, "flagged_percent_after": 100 * after,
                                    "flagged": flagged}, as_json)


# ------------------------------------------------------------------------------------ hot-baselines
@cli.command("hot-baselines")
@click.argument("ms", type=ExistingPath)
@_target_options
@click.option("--column", default=None, help="Data column [default: CORRECTED_DATA, else DATA with a warning].")
@click.option("--window", type=int, default=None, help=_cfg_help("Rolling-median window (baselines).",
                                                                  "hot_baselines", "window"))
@click.option("--sigma-uv", type=float, default=None, help=_cfg_help("Pass 1 threshold (sigma above the rolling "
                                                                      "median).", "hot_baselines", "sigma_uv"))
@click.option("--sigma-heatmap", type=float, default=None,
              help=_cfg_help("Pass 2 cross-pol robust z-score threshold.", "hot_baselines", "sigma_heatmap"))
@click.option("--antenna-fraction", type=float, default=None,
              help=_cfg_help("Flag an antenna whole above this fraction of its baselines flagged.",
                             "hot_baselines", "antenna_fraction"))
@click.option("--min-uv-lambda", type=float, default=None,
              help=_cfg_help("Skip baselines shorter than this (wavelengths).", "hot_baselines", "min_uv_lambda"))
@click.option("--dead-fraction", type=float, default=None,
              help=_cfg_help("Dead antenna: median amplitude below this fraction of the array's (0: off).",
                             "hot_baselines", "dead_fraction"))
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
    """Flag hot baselines (amp vs uv at 7 sigma; cross-pol heatmap at 5 sigma) and dead antennas.

    Pass 1: mean (|XX|+|YY|)/2 per baseline against a rolling median over the uv-sorted
    baselines (robust sigma = 1.4826 MAD). Pass 2: mean (|XY|+|YX|)/2 as an antenna x antenna
    matrix, robust z-score. Antennas with more than --antenna-fraction of their baselines
    flagged, and dead antennas, are flagged whole. Baselines under --min-uv-lambda are skipped.
    QA: amp_vs_uv.png, heatmap.png (with --system-cfg: annotated with correlator input, SNAP2
    and ARX board) and flagged_baselines.csv (ant1, ant2, names, uv_lambda, reason, score).

    \b
    Example:
      lwa-flag hot-baselines concat_55MHz.ms -o concat_55MHz.hb.ms \\
          --system-cfg ../shared/data/ovro-lwa/system_cfg.yml
    """
    from lwa_flag._plots import plot_amp_vs_uv, plot_heatmap
    from lwa_flag.hot import apply_hot_flags, find_hot_baselines, write_flagged_csv
    from lwa_flag.wiring import load_wiring

    if not dry_run:
        _check_target(output, in_place)
    elif output is not None and in_place:
        raise click.UsageError("use either -o/--output or --in-place, not both")
    hb = cfg.hot_baselines
    settings = {
        "window": hb.window if window is None else window,
        "sigma_uv": hb.sigma_uv if sigma_uv is None else sigma_uv,
        "sigma_heatmap": hb.sigma_heatmap if sigma_heatmap is None else sigma_heatmap,
        "antenna_fraction": hb.antenna_fraction if antenna_fraction is None else antenna_fraction,
        "min_uv_lambda": hb.min_uv_lambda if min_uv_lambda is None else min_uv_lambda,
        "dead_fraction": hb.dead_fraction if dead_fraction is None else dead_fraction,
    }
    if settings["window"] < 3:
        raise click.BadParameter(f"must be >= 3, got {settings['window']}", param_hint="--window")
    for name in ("sigma_uv", "sigma_heatmap"):
        _positive("--" + name.replace("_", "-"), settings[name])
    for name in ("min_uv_lambda", "dead_fraction"):
        _positive("--" + name.replace("_", "-"), settings[name], allow_zero=True)
    if not 0 < settings["antenna_fraction"] <= 1:
        raise click.BadParameter(f"must be in (0, 1], got {settings['antenna_fraction']}",
                                 param_hint="--antenna-fraction")
    log.info("hot-baseline settings: %s", settings)
    validate_ms(ms)
    final = _final(ms, output, in_place) if not dry_run else (output or ms)
    qa_dir = Path(qa_dir) if qa_dir else Path(final).parent / "QA"
    summary_path = summary_path or default_summary_path(final, "hot-baselines")
    qa = {"amp_vs_uv": qa_dir / "amp_vs_uv.png", "heatmap": qa_dir / "heatmap.png",
          "csv": qa_dir / "flagged_baselines.csv"}
    _check_outputs([summary_path, *qa.values()], overwrite=overwrite)
    if not dry_run and output is not None:
        check_output(output, overwrite=overwrite)
    wiring = load_wiring(system_cfg) if system_cfg else None

    result = find_hot_baselines(ms, column=column, uv_pass=uv_pass, crosspol_pass=crosspol_pass, **settings)
    before = flagged_fraction(ms)
    rows = 0
    if dry_run:
        after = before
    else:
        with flag_target(ms, output=output, in_place=in_place, overwrite=overwrite) as target:
            rows = apply_hot_flags(target, result)
            stamp(target, f"lwa-flag hot-baselines: {int(result.flag_baseline.sum())} baselines, "
                          f"{len(result.flagged_antennas)} antennas")
            after = flagged_fraction(target)
    title = f"{Path(ms).name} ({result.stats.column}, {result.stats.freq_hz / 1e6:.2f} MHz)"
    plot_amp_vs_uv(result, qa["amp_vs_uv"], title=f"amplitude vs uv: {title}")
    plot_heatmap(result, qa["heatmap"], wiring=wiring, title=f"cross-pol heatmap: {title}")
    write_flagged_csv(qa["csv"], result)
    flagged = {**result.summary(), "rows_flagged": rows, "dry_run": dry_run,
               "qa": {k: str(v) for k, v in qa.items()}}
    write_summary(summary_path, command="hot-baselines", inputs=[str(ms)], output=str(final),
                  in_place=in_place, before=before, after=after, flagged=flagged)
    log.info("%s: %.2f%% -> %.2f%% flagged", final, 100 * before, 100 * after)
    outs = ([] if dry_run else [final]) + [summary_path, *qa.values()]
    _result(outs, {"flagged_percent_before": 100 * before, "flagged_percent_after": 100 * after,
                   "flagged": flagged}, as_json)


# ------------------------------------------------------------------------------------- integrations
@cli.command("integrations")
@click.argument("snapshots", type=ExistingPath, nargs=-1, required=True)
@click.option("--ms", "ms_list", type=ExistingPath, multiple=True, required=True,
              help="The MS holding those times: one concatenated MS, or repeat for per-integration MS.")
@_target_options
@click.option("--sigma", type=float, default=None,
              help=_cfg_help("Flag frames deviating more than this from the running median.", "snapshot_qa", "sigma"))
@click.option("--low-ratio", type=float, default=None,
              help=_cfg_help("Also flag frames with RMS below this x the running median.", "snapshot_qa", "low_ratio"))
@click.option("--window", type=int, default=None,
              help=_cfg_help("Running-median window (frames).", "snapshot_qa", "running_window"))
@click.option("--min-scatter-fraction", type=float, default=None,
              help=_cfg_help("Floor of the RMS scatter, as a fraction of the median RMS.", "snapshot_qa",
                             "min_scatter_fraction"))
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
    MJD-MID, else DATE-OBS). A frame is bad when its robust RMS deviates more than --sigma from
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
    from lwa_flag._plots import plot_snapshot_rms
    from lwa_flag.integrations import (
        find_bad_integrations,
        flag_times,
        match_times,
        read_frames,
        write_frames_csv,
    )

    _check_target(output, in_place)
    sq = cfg.snapshot_qa
    sigma = sq.sigma if sigma is None else sigma
    low_ratio = sq.low_ratio if low_ratio is None else low_ratio
    window = sq.running_window if window is None else window
    min_scatter_fraction = sq.min_scatter_fraction if min_scatter_fraction is None else min_scatter_fraction
    _positive("--min-scatter-fraction", min_scatter_fraction, allow_zero=True)
    _positive("--sigma", sigma)
    _positive("--low-ratio", low_ratio, allow_zero=True)
    if window < 3:
        raise click.BadParameter(f"must be >= 3, got {window}", param_hint="--window")
    ms_paths = [Path(p) for p in dict.fromkeys(ms_list)]
    names = [p.name for p in ms_paths]
    if len(set(names)) != len(names):
        raise LwaError("several --ms share a file name; give each MS once")
    for p in ms_paths:
        validate_ms(p)
    if in_place:
        finals = ms_paths
        base = ms_paths[0].parent
    elif len(ms_paths) == 1:
        finals = [Path(output)]
        base = Path(output).parent
    else:
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise LwaError(f"-o {out_dir}: with several --ms, -o must be a folder")
        if any(out_dir.resolve() == p.parent.resolve() for p in ms_paths):
            raise LwaError(f"-o {out_dir} is the folder of the input MS; choose another folder or --in-place")
        finals = [out_dir / p.name for p in ms_paths]
        base = out_dir
    qa_dir = Path(qa_dir) if qa_dir else base / "QA"
    summary_path = summary_path or (default_summary_path(finals[0], "integrations") if len(finals) == 1
                                    else base / "flag-integrations.json")
    qa = {"plot": qa_dir / "snapshot_rms.png", "csv": qa_dir / "bad_integrations.csv"}
    _check_outputs([summary_path, *qa.values(), *([] if in_place else finals)], overwrite=overwrite)

    frames = read_frames(list(snapshots))
    result = find_bad_integrations(frames, sigma=sigma, low_ratio=low_ratio, window=window,
                                   min_scatter_fraction=min_scatter_fraction, min_frames=sq.min_frames,
                                   low_quantile=sq.low_quantile, compact_peak_ratio=sq.compact_peak_ratio)
    bad_mjd = [f.mjd for f in result.bad_frames]
    matches = match_times([f.mjd for f in frames], ms_paths)
    unmatched = [f for f in frames if not matches[f.mjd]]
    if len(unmatched) == len(frames):
        raise LwaError(f"no snapshot time matches a TIME in the given MS (first snapshot {frames[0].isot}); "
                       "wrong --ms?")
    if unmatched:
        log.warning("%d snapshots match no MS time: %s", len(unmatched), ", ".join(f.isot for f in unmatched[:5]))
    for f in frames:
        f.ms_matches = [str(m[0]) for m in matches[f.mjd]]
    per_ms: dict[Path, list[float]] = {p: [] for p in ms_paths}
    for m in bad_mjd:
        for ms, t in matches[m]:
            per_ms[ms].append(t)
    total_before = total_after = 0.0
    flagged_ms = []
    for src, final in zip(ms_paths, finals):
        before = flagged_fraction(src)
        times = per_ms[src]
        if in_place and not times:
            after = before
        else:
            with flag_target(src, output=None if in_place else final, in_place=in_place,
                             overwrite=overwrite) as target:
                rows = flag_times(target, times)
                if times:
                    stamp(target, f"lwa-flag integrations: {len(times)} integrations from V snapshot RMS")
                after = flagged_fraction(target)
            flagged_ms.append({"ms": str(final), "times_mjd": [t / 86400.0 for t in times], "rows_flagged": rows})
        total_before += before / len(ms_paths)
        total_after += after / len(ms_paths)
    plot_snapshot_rms(result, qa["plot"])
    write_frames_csv(qa["csv"], result)
    flagged = {**result.summary(), "unmatched_frames": [f.path for f in unmatched], "ms": flagged_ms,
               "qa": {k: str(v) for k, v in qa.items()}}
    write_summary(summary_path, command="integrations", inputs=[str(p) for p in ms_paths],
                  output=[str(p) for p in finals], in_place=in_place, before=total_before, after=total_after,
                  flagged=flagged, extra={"snapshots": [str(s) for s in snapshots]})
    _result([*finals, summary_path, *qa.values()],
            {"flagged_percent_before": 100 * total_before, "flagged_percent_after": 100 * total_after,
             "flagged": flagged}, as_json)


def main() -> None:
    run_main(cli)

