"""One core function per `lwa-flag` command: checks, flagging, QA products and the JSON summary.

Each takes paths, a `Target` (where the flags go) and, where the command has tunables, its config
section (`lwa_common.config.HotBaselines`, `SnapshotQA`); `lwa_flag.cli` only parses options into
these and prints the outputs. Every function checks its inputs and outputs before any flag is
written and returns a `FlagRun`::

    from lwa_common.config import HotBaselines
    from lwa_flag.commands import Target, flag_hot_baselines
    run = flag_hot_baselines("obs.ms", target=Target(output="obs.hb.ms"), settings=HotBaselines(sigma_uv=6))
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lwa_common.config import HotBaselines, Rfi, SnapshotQA
from lwa_common.errors import LwaError
from lwa_common.io import check_output
from lwa_common.ms import ms_time_range
from lwa_flag import _ms

__all__ = ["Target", "FlagRun", "flag_antenna_health", "flag_rfi", "flag_hot_baselines", "flag_integrations"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where the flags go: a copy at `output`, or the input itself (`in_place`); the summary path."""

    output: Path | None = None
    in_place: bool = False
    overwrite: bool = False
    summary: Path | None = None  # default: <output folder>/<ms stem>.flag-<command>.json

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output) if self.output is not None else None)
        object.__setattr__(self, "summary", Path(self.summary) if self.summary is not None else None)

    def check(self, *, dry_run: bool = False) -> None:
        if self.in_place and self.output is not None:
            raise LwaError("use either an output copy or in place, not both")
        if not (self.in_place or self.output is not None or dry_run):
            raise LwaError("give an output copy or in place")

    def final(self, ms: Path) -> Path:
        """The MS that ends up flagged (or, dry run, that would)."""
        return Path(self.output) if self.output is not None else ms

    def summary_path(self, final: Path, command: str) -> Path:
        return self.summary or _ms.default_summary_path(final, command)


@dataclass
class FlagRun:
    """What a command wrote and flagged: `outputs` (the MS, summary, QA files) and the summary numbers."""

    outputs: list[Path]
    before: float  # flagged fraction before (mean over the MS)
    after: float
    flagged: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"flagged_percent_before": 100 * self.before, "flagged_percent_after": 100 * self.after,
                "flagged": self.flagged, "outputs": [str(p) for p in self.outputs]}


def _check_outputs(paths: Sequence[Path], *, overwrite: bool) -> None:
    for p in paths:
        check_output(p, overwrite=overwrite)


def _flag(ms: Path, target: Target, action: Callable[[Path], tuple[Any, str]], *,
          processes: int = 0) -> tuple[float, float, Any]:
    """Flag-fraction before; `action` on the copy (or the MS in place), stamped; fraction after.

    `processes`: the flag counts' side-by-side readers (0: one per CPU of the job)."""
    before = _ms.flagged_fraction(ms, processes=processes)
    with _ms.flag_target(ms, output=target.output, in_place=target.in_place, overwrite=target.overwrite) as where:
        done, message = action(where)
        if message:
            _ms.stamp(where, message)
        after = _ms.flagged_fraction(where, processes=processes)
    return before, after, done


def _finish(command: str, *, ms: Path, final: Path, target: Target, summary: Path, before: float, after: float,
            flagged: dict[str, Any], outputs: list[Path]) -> FlagRun:
    _ms.write_summary(summary, command=command, inputs=[str(ms)], output=str(final), in_place=target.in_place,
                  before=before, after=after, flagged=flagged)
    log.info("%s: %.2f%% -> %.2f%% flagged", final, 100 * before, 100 * after)
    return FlagRun(outputs=outputs, before=before, after=after, flagged=flagged)


# ----------------------------------------------------------------------------------------- antennas
def flag_antenna_health(ms: str | Path, health_file: str | Path | None = None, *, target: Target,
                        source: str = "auto", ids: str = "auto", system_cfg: str | Path | None = None,
                        mnc_method: str = "selfcorr") -> FlagRun:
    """Flag every row of the antennas an antenna-health record (`health_file`, or the MNC API) marks bad."""
    from lwa_flag.antennas import flag_antennas, mnc_available, query_mnc, read_health_file, resolve_antennas

    ms = Path(ms)
    target.check()
    if source == "file" and health_file is None:
        raise LwaError("source 'file' needs a health file")
    _ms.validate_ms(ms)
    final = target.final(ms)
    summary = target.summary_path(final, "antennas")
    _check_outputs([summary], overwrite=target.overwrite)
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
    before, after, rows = _flag(ms, target, lambda where: (
        flag_antennas(where, found), f"lwa-flag antennas: {len(found)} antennas from {health.source}"))
    flagged = {"source": health.source, "listed": {"names": list(health.names), "corr_nums": list(health.corr_nums)},
               "antennas": [{"antenna": i, "name": n} for i, n in found.items()], "not_in_ms": missing,
               "rows_flagged": rows}
    return _finish("antennas", ms=ms, final=final, target=target, summary=summary, before=before, after=after,
                   flagged=flagged, outputs=[final, summary])


# ---------------------------------------------------------------------------------------------- rfi
def flag_rfi(ms: str | Path, *, target: Target, strategy: str | Path | None = None, column: str | None = None,
             threads: int | None = None, preamble: Sequence[str] = (), settings: Rfi = Rfi()) -> FlagRun:
    """Flag RFI with AOFlagger and a Lua strategy (the OVRO-LWA one shipped with lwa-flag by default),
    then unpolarised narrow-band RFI from the array's Stokes I spectrum (`lwa_flag.spectrum`)."""
    from lwa_flag.rfi import default_strategy, flag_profile, pick_rfi_column, run_aoflagger
    from lwa_flag.spectrum import flag_spectral_rfi

    ms = Path(ms)
    target.check()
    _ms.validate_ms(ms)
    column = pick_rfi_column(ms, column)
    strategy = strategy or default_strategy()
    final = target.final(ms)
    summary = target.summary_path(final, "rfi")
    _check_outputs([summary], overwrite=target.overwrite)

    def action(where: Path) -> tuple[dict, str]:
        run = run_aoflagger(where, strategy=strategy, column=column, threads=threads, preamble=preamble)
        spectrum = flag_spectral_rfi(where, column, settings)
        return ({"aoflagger": run, "array_spectrum": spectrum, **flag_profile(where)},
                f"lwa-flag rfi: {run['command']}; array spectrum {settings.spectrum_sigma:g} sigma")

    before, after, flagged = _flag(ms, target, action)
    return _finish("rfi", ms=ms, final=final, target=target, summary=summary, before=before, after=after,
                   flagged=flagged, outputs=[final, summary])


# ------------------------------------------------------------------------------------ hot-baselines
def flag_hot_baselines(ms: str | Path, *, target: Target, settings: HotBaselines = HotBaselines(),
                       column: str | None = None, uv_pass: bool = True, crosspol_pass: bool = True,
                       system_cfg: str | Path | None = None, qa_dir: str | Path | None = None,
                       dry_run: bool = False) -> FlagRun:
    """Flag hot baselines (amplitude vs uv; cross-pol heatmap) and dead antennas; QA plots and CSV.

    `dry_run`: detect and write the QA products and the summary, flag nothing.
    """
    from lwa_flag._plots import plot_amp_vs_uv, plot_heatmap
    from lwa_flag.hot import apply_hot_flags, find_hot_baselines, write_flagged_csv
    from lwa_flag.wiring import load_wiring

    ms = Path(ms)
    target.check(dry_run=dry_run)
    log.info("hot-baseline settings: %s", dataclasses.asdict(settings))
    _ms.validate_ms(ms)
    final = target.final(ms)
    qa_dir = Path(qa_dir) if qa_dir else final.parent / "QA"
    summary = target.summary_path(final, "hot-baselines")
    qa = {"amp_vs_uv": qa_dir / "amp_vs_uv.png", "heatmap": qa_dir / "heatmap.png",
          "csv": qa_dir / "flagged_baselines.csv"}
    _check_outputs([summary, *qa.values(), *([target.output] if target.output and not dry_run else [])],
                   overwrite=target.overwrite)
    wiring = load_wiring(system_cfg) if system_cfg else None

    result = find_hot_baselines(ms, column=column, settings=settings, uv_pass=uv_pass, crosspol_pass=crosspol_pass)
    if dry_run:
        before = after = _ms.flagged_fraction(ms, processes=settings.processes)
        rows = 0
    else:
        before, after, rows = _flag(ms, target, lambda where: (
            apply_hot_flags(where, result), f"lwa-flag hot-baselines: {int(result.flag_baseline.sum())} "
                                            f"baselines, {len(result.flagged_antennas)} antennas"),
            processes=settings.processes)
    title = f"{ms.name} ({result.stats.column}, {result.stats.freq_hz / 1e6:.2f} MHz)"
    plot_amp_vs_uv(result, qa["amp_vs_uv"], title=f"amplitude vs uv: {title}")
    plot_heatmap(result, qa["heatmap"], wiring=wiring, title=f"cross-pol heatmap: {title}")
    write_flagged_csv(qa["csv"], result)
    flagged = {**result.summary(), "rows_flagged": rows, "dry_run": dry_run,
               "qa": {k: str(v) for k, v in qa.items()}}
    return _finish("hot-baselines", ms=ms, final=final, target=target, summary=summary, before=before,
                   after=after, flagged=flagged, outputs=([] if dry_run else [final]) + [summary, *qa.values()])


# ------------------------------------------------------------------------------------- integrations
def _integration_outputs(ms_paths: list[Path], target: Target) -> tuple[list[Path], Path]:
    """The flagged MS (one per input) and the folder of the summary and QA."""
    if target.in_place:
        return ms_paths, ms_paths[0].parent
    out = Path(target.output)
    if len(ms_paths) == 1:
        return [out], out.parent
    if out.exists() and not out.is_dir():
        raise LwaError(f"-o {out}: with several --ms, -o must be a folder")
    if any(out.resolve() == p.parent.resolve() for p in ms_paths):
        raise LwaError(f"-o {out} is the folder of the input MS; choose another folder or --in-place")
    return [out / p.name for p in ms_paths], out


def _bad_times(frames: list, bad_mjd: list[float], ms_paths: list[Path]) -> tuple[dict[Path, list[float]], list]:
    """Per MS the TIME values of the bad frames; the frames matching no MS time (an error when all)."""
    from lwa_flag.integrations import match_times

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
    return per_ms, unmatched


def _flag_times(where: Path, *, times: list[float], message: str) -> tuple[int, str]:
    from lwa_flag.integrations import flag_times

    return flag_times(where, times), message


def _flag_times_each(ms_paths: list[Path], finals: list[Path], per_ms: dict[Path, list[float]],
                     target: Target, processes: int = 0) -> tuple[float, float, list[dict]]:
    """Flag the bad times in each MS (a copy, or in place); mean flagged fractions before and after."""
    total_before = total_after = 0.0
    flagged_ms = []
    for src, final in zip(ms_paths, finals):
        times = per_ms[src]
        if target.in_place and not times:
            before = after = _ms.flagged_fraction(src, processes=processes)
        else:
            one = dataclasses.replace(target, output=None if target.in_place else final)
            message = f"lwa-flag integrations: {len(times)} integrations from V snapshot RMS" if times else ""
            before, after, rows = _flag(src, one, functools.partial(_flag_times, times=times, message=message),
                                        processes=processes)
            flagged_ms.append({"ms": str(final), "times_mjd": [t / 86400.0 for t in times], "rows_flagged": rows})
        total_before += before / len(ms_paths)
        total_after += after / len(ms_paths)
    return total_before, total_after, flagged_ms


def flag_integrations(snapshots: Sequence[str | Path], *, ms: Sequence[str | Path], target: Target,
                      settings: SnapshotQA = SnapshotQA(), qa_dir: str | Path | None = None) -> FlagRun:
    """Flag the integrations whose pilot Stokes V snapshot RMS is an outlier (never a sky transient).

    Each bad snapshot's time is flagged in every MS of `ms` whose TIME lies within half an
    integration; with several MS and a copy, `target.output` is a folder receiving them by name.
    """
    from lwa_flag._plots import plot_snapshot_rms
    from lwa_flag.integrations import find_bad_integrations, read_frames, write_frames_csv

    target.check()
    ms_paths = [Path(p) for p in dict.fromkeys(ms)]
    names = [p.name for p in ms_paths]
    if len(set(names)) != len(names):
        raise LwaError("several --ms share a file name; give each MS once")
    for p in ms_paths:
        _ms.validate_ms(p)
    finals, base = _integration_outputs(ms_paths, target)
    qa_dir = Path(qa_dir) if qa_dir else base / "QA"
    summary = target.summary or (_ms.default_summary_path(finals[0], "integrations") if len(finals) == 1
                                 else base / "flag-integrations.json")
    qa = {"plot": qa_dir / "snapshot_rms.png", "csv": qa_dir / "bad_integrations.csv"}
    _check_outputs([summary, *qa.values(), *([] if target.in_place else finals)], overwrite=target.overwrite)

    frames = read_frames(list(snapshots), processes=settings.processes)
    result = find_bad_integrations(frames, settings=settings)
    per_ms, unmatched = _bad_times(frames, [f.mjd for f in result.bad_frames], ms_paths)
    before, after, flagged_ms = _flag_times_each(ms_paths, finals, per_ms, target, settings.processes)
    plot_snapshot_rms(result, qa["plot"])
    write_frames_csv(qa["csv"], result)
    flagged = {**result.summary(), "unmatched_frames": [f.path for f in unmatched], "ms": flagged_ms,
               "qa": {k: str(v) for k, v in qa.items()}}
    _ms.write_summary(summary, command="integrations", inputs=[str(p) for p in ms_paths],
                  output=[str(p) for p in finals], in_place=target.in_place, before=before, after=after,
                  flagged=flagged, extra={"snapshots": [str(s) for s in snapshots]})
    return FlagRun(outputs=[*finals, summary, *qa.values()], before=before, after=after, flagged=flagged)
