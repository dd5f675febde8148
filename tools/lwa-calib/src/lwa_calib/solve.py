"""Solve bandpass and XY-phase tables from a calibrator observation (after the OVRO-LWA pipeline).

Steps (every CASA call is logged with its arguments; CASA's own log goes to OUTDIR/casa.log):

1. concatenate the calibrator MS files (`lwa_common.msconcat`: time order, one field at the meridian
   of the mid-time) in a work folder;
2. predict the A-team model (TTCal sources.json, Stokes I beam-weighted per integration) into
   MODEL_DATA by a direct Fourier transform (`lwa_calib.skymodel` says why not ``ft``);
3. ``bandpass`` (bandtype 'B', solint 'inf', one solution for the whole span: combine scan, field,
   obs) against that model -> ``bandpass_raw.B``;
4. flag outlier antennas / channels in the solutions (robust z-scores on amplitude) and interpolate
   over flagged channels (`lwa_calib.flagging`) -> ``bandpass.B``;
5. XY phase: ``polcal`` poltype 'Xf' with ``bandpass.B`` applied -> ``xyphase.Xf``.

   For linear feeds the X-Y phase of the reference antenna is invisible in the parallel hands; it
   shows only in the cross hands, ``XY = e^{i x} (U + iV)``, so it can be measured only against a
   model with polarised flux (U or V). The A-team is unpolarised at these frequencies, and our
   model (like the OVRO-LWA pipeline's) leaves out the instrumental polarisation of the dipole
   beam, so an A-team-only model does not determine it: with ``xy_mode="auto"`` the step is then
   skipped with a warning (and the QA page says so); ``"solve"`` makes that an error before any
   work; ``"skip"`` never solves it. A model with U or V (a polarised source in the sources file,
   as lwa-sim injects) gives the XY phase per channel. Channels the bandpass flagged for all
   antennas are flagged and interpolated in the XY table too;
6. QA: bandpass amplitude and phase vs frequency per antenna, flagged fractions, XY phase,
   ``summary.json`` and ``summary.html``.

The output folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lwa_calib.caltables import read_caltable, update_caltable
from lwa_calib.casa_env import casa_log, run_task
from lwa_calib.flagging import FlagResult, flag_solutions, interpolate_flagged
from lwa_calib.skymodel import Component, load_components, write_model_data
from lwa_common import msconcat
from lwa_common.config import Calibration, Site
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output
from lwa_common.ms import check_ms, flag_chunks, ms_info, open_table

__all__ = ["SolveSettings", "SolveResult", "solve", "concat_ms", "choose_refant", "model_is_polarised"]

log = logging.getLogger(__name__)

BP_RAW = "bandpass_raw.B"
BP_TABLE = "bandpass.B"
XY_TABLE = "xyphase.Xf"
XY_MODES = ("auto", "solve", "skip")


SolveSettings = Calibration  # the `[calib]` section of lwa_common.config (the name lwa-calib used first)


@dataclass
class SolveResult:
    outdir: Path
    bp_table: Path
    xy_table: Path | None
    raw_table: Path
    summary: dict
    plots: list[Path] = field(default_factory=list)
    html: Path | None = None


def concat_ms(ms_list: list[Path], dest: Path) -> Path:
    """One MS at `dest` holding all of `ms_list` in time order, one field (`lwa_common.msconcat`);
    the inputs are only read."""
    return msconcat.concat_ms(ms_list, dest, tool="lwa-calib").output


def choose_refant(ms: Path, refant: str = "") -> str:
    """`refant` checked against the MS antennas, or the antenna with the most unflagged cross data."""
    with open_table(ms / "ANTENNA") as at:
        names = list(at.getcol("NAME"))
    if refant:
        if refant in names:
            return refant
        if refant.isdigit() and int(refant) < len(names):
            return refant
        raise LwaError(f"--refant {refant!r} is neither an antenna name nor an index below {len(names)} of {ms}")
    good = np.zeros(len(names))
    for flag, cols in flag_chunks(ms, columns=("ANTENNA1", "ANTENNA2")):
        frac = 1.0 - flag.reshape(len(flag), -1).mean(axis=1)
        b1, b2 = cols["ANTENNA1"], cols["ANTENNA2"]
        cross = b1 != b2
        np.add.at(good, b1[cross], frac[cross])
        np.add.at(good, b2[cross], frac[cross])
    best = int(np.argmax(good))  # first of the ties: lowest index
    log.info("reference antenna: %d (%s), the one with the most unflagged data", best, names[best])
    return str(best)


def model_is_polarised(components: list[Component], freqs_hz: np.ndarray) -> bool:
    """True when some component has Stokes U or V flux (the cross hands carry a signal)."""
    for comp in components:
        s = comp.stokes_at(np.asarray(freqs_hz, dtype=float))
        if np.any(np.abs(s["U"]) > 1e-6 * np.max(np.abs(s["I"]) + 1e-30)) or np.any(
                np.abs(s["V"]) > 1e-6 * np.max(np.abs(s["I"]) + 1e-30)):
            return True
    return False


def _casa(task: str, **kwargs) -> None:
    run_task(task, **kwargs)
    if not Path(kwargs["caltable"]).exists():
        raise LwaError(f"CASA {task} wrote no table {kwargs['caltable']} (no usable data? see casa.log)")


def _solve_xy(ms: Path, table: Path, bp_table: Path, settings: Calibration, refant: str,
              channel_flags: np.ndarray) -> dict:
    _casa("polcal", vis=str(ms), caltable=str(table), poltype="Xf", solint="inf", refant=refant,
          combine="scan,field,obs", uvrange=settings.uvrange, minsnr=settings.min_snr,
          gaintable=[str(bp_table)], interp=["nearest,nearest"])
    xy = read_caltable(table, expect="Xf")
    flags = xy.flags.copy()
    if channel_flags.size == flags.shape[1]:
        flags[:, channel_flags, :] = True
    values, new_flags, interpolated = interpolate_flagged(xy.values, flags)
    update_caltable(table, values=values, flags=new_flags)
    phase = np.degrees(np.angle(values[0, :, 0]))
    return {"phase_deg": phase.tolist(), "flagged_channels": int(flags[0, :, 0].sum()),
            "interpolated_channels": int(interpolated[0, :, 0].sum())}


@dataclass
class _Inputs:
    """The checked inputs of one solve."""

    ms_paths: list[Path]
    sources: str | Path
    components: list[Component]
    freqs_hz: np.ndarray
    polarised: bool


@dataclass
class _Solved:
    """What the CASA steps produced in the work folder."""

    refant: str
    ms_summary: object
    apparent: dict
    bp_raw: object
    flagged: FlagResult
    xy_info: dict
    xy_path: Path | None


def _check_inputs(ms_list: list[str | Path], sources: str | Path, settings: Calibration) -> _Inputs:
    """Fail before work: the MS, the sky model, the XY mode against it, the reference antenna."""
    if settings.xy_mode not in XY_MODES:
        raise LwaError(f"xy mode {settings.xy_mode!r} is not one of {', '.join(XY_MODES)}")
    ms_paths = [Path(p) for p in ms_list]
    if not ms_paths:
        raise LwaError("no MS given")
    for p in ms_paths:
        check_ms(p)
    components = load_components(sources, names=settings.source_names or None)
    freqs = ms_info(ms_paths[0]).freqs_hz
    polarised = model_is_polarised(components, freqs)
    if settings.xy_mode == "solve" and not polarised:
        raise LwaError(f"{sources}: the model has no polarised (U or V) flux, so it cannot determine the "
                       "XY phase (use --xy-phase auto or skip)")
    if settings.refant:
        choose_refant(ms_paths[0], settings.refant)  # fail before work on an unknown antenna
    return _Inputs(ms_paths=ms_paths, sources=sources, components=components, freqs_hz=freqs, polarised=polarised)


def _bandpass(ms: Path, tmp: Path, refant: str, settings: Calibration) -> tuple[object, FlagResult]:
    """CASA bandpass -> bandpass_raw.B; its outliers flagged and interpolated -> bandpass.B."""
    raw = tmp / BP_RAW
    _casa("bandpass", vis=str(ms), caltable=str(raw), bandtype="B", solint="inf", refant=refant,
          combine="scan,field,obs", uvrange=settings.uvrange, minsnr=settings.min_snr, solnorm=False)
    bp_raw = read_caltable(raw, expect="B")
    flagged = flag_solutions(bp_raw.values, bp_raw.flags, sigma_antenna=settings.sigma_antenna,
                             sigma_channel=settings.sigma_channel, window=settings.channel_window,
                             channel_quorum=settings.channel_quorum)
    shutil.copytree(raw, tmp / BP_TABLE)
    update_caltable(tmp / BP_TABLE, values=flagged.values, flags=flagged.flags)
    return bp_raw, flagged


def _xy_phase(ms: Path, tmp: Path, refant: str, settings: Calibration, polarised: bool,
              flagged: FlagResult) -> tuple[dict, Path | None]:
    """The XY-phase step: solved into xyphase.Xf, or the reason it was not."""
    xy_info: dict = {"solved": False}
    if settings.xy_mode == "skip":
        xy_info["reason"] = "not requested (--xy-phase skip)"
        return xy_info, None
    if not polarised:
        xy_info["reason"] = ("the sky model is unpolarised: the XY phase is not determined by it "
                             "(needs a source with U or V)")
        log.warning("XY phase not solved: %s", xy_info["reason"])
        return xy_info, None
    xy_path = tmp / XY_TABLE
    xy_info.update(_solve_xy(ms, xy_path, tmp / BP_TABLE, settings, refant, flagged.channel_flags))
    xy_info["solved"] = True
    return xy_info, xy_path


def _solve_in(tmp: Path, inputs: _Inputs, settings: Calibration, *, beam, site: Site | None,
              keep_ms: bool) -> _Solved:
    """Concatenate, predict the model, solve the bandpass and the XY phase, all under `tmp`."""
    work = tmp / "work"
    work.mkdir()
    with casa_log(tmp / "casa.log"):
        ms = concat_ms(inputs.ms_paths, work / "calibrator.ms")
        summary_ms = ms_info(ms)
        apparent = write_model_data(ms, components=inputs.components, beam=beam, site=site,
                                    min_elevation_deg=settings.min_elevation_deg)
        if not any(v > 0 for v in apparent.values()):
            raise LwaError(f"no source of {inputs.sources} is above {settings.min_elevation_deg} deg elevation "
                           "during the observation")
        refant = choose_refant(ms, settings.refant)
        bp_raw, flagged = _bandpass(ms, tmp, refant, settings)
        xy_info, xy_path = _xy_phase(ms, tmp, refant, settings, inputs.polarised, flagged)
    if keep_ms:
        shutil.move(str(ms), str(tmp / "calibrator.ms"))
    shutil.rmtree(work, ignore_errors=True)
    return _Solved(refant=refant, ms_summary=summary_ms, apparent=apparent, bp_raw=bp_raw, flagged=flagged,
                   xy_info=xy_info, xy_path=xy_path)


def _summary(inputs: _Inputs, solved: _Solved, settings: Calibration, extra: dict) -> dict:
    """summary.json's content (without the run time)."""
    names, flagged, sms, freqs = solved.bp_raw.names, solved.flagged, solved.ms_summary, inputs.freqs_hz
    antenna_pols = list(zip(*np.nonzero(flagged.antenna_flags)))
    return {
        "inputs": [str(p) for p in inputs.ms_paths],
        "sources_file": str(inputs.sources),
        "n_integrations": int(sms.n_times),
        "time_start": sms.time_start.isot,
        "time_end": sms.time_end.isot,
        "freq_mhz": [float(freqs.min() / 1e6), float(freqs.max() / 1e6)],
        "n_antennas": int(len(names)),
        "refant": solved.refant,
        "apparent_flux_jy": solved.apparent,
        "flagged_fraction": flagged.flagged_fraction,
        "flagged_antenna_pols": [[names[a], "XY"[p]] for a, p in antenna_pols],
        "flagged_antennas": sorted({names[a] for a, _ in antenna_pols}),
        "flagged_channels": np.flatnonzero(flagged.channel_flags).tolist(),
        "interpolated_solutions": int(flagged.interpolated.sum()),
        "xy_phase": solved.xy_info,
        "tables": {"bandpass": BP_TABLE, "bandpass_raw": BP_RAW,
                   "xy_phase": XY_TABLE if solved.xy_path else None},
        "settings": {**asdict(settings), **extra},
    }


def _log_result(solved: _Solved, settings: Calibration, runtime_s: float) -> None:
    flagged = solved.flagged
    if flagged.flagged_fraction > settings.max_flagged_fraction:
        log.warning("solve: %.1f %% of the bandpass solutions are flagged (more than %.0f %%): check the "
                    "calibrator data and model before applying these tables", 100 * flagged.flagged_fraction,
                    100 * settings.max_flagged_fraction)
    log.info("solve: refant %s, %.1f %% of solutions flagged (%d antenna-pols, %d channels), XY phase %s; "
             "%.1f s", solved.refant, 100 * flagged.flagged_fraction, int(flagged.antenna_flags.sum()),
             int(flagged.channel_flags.sum()), "solved" if solved.xy_path else "not solved", runtime_s)


def solve(
    ms_list: list[str | Path], *, sources: str | Path, outdir: str | Path, settings: Calibration = Calibration(),
    beam_file: str = "", keep_ms: bool = False, overwrite: bool = False, site: Site | None = None,
    argv: list[str] | None = None,
) -> SolveResult:
    """Solve bandpass (+ XY phase) tables from the calibrator MS files into `outdir`.

    `settings`: the `[calib]` config section; `beam_file`: the primary beam (empty: lwa_common's
    analytic dipole); `keep_ms`: keep the concatenated MS (with MODEL_DATA) in `outdir`.
    """
    from lwa_calib import qa
    from lwa_common.beam import load_beam

    t_start = time.perf_counter()
    inputs = _check_inputs(ms_list, sources, settings)
    outdir = check_output(Path(outdir), overwrite=overwrite)
    beam = load_beam(beam_file or None)
    with atomic_path(outdir, directory=True) as tmp:
        tmp.mkdir(parents=True)
        solved = _solve_in(tmp, inputs, settings, beam=beam, site=site, keep_ms=keep_ms)
        summary = {**_summary(inputs, solved, settings, {"beam_file": beam_file, "keep_ms": keep_ms}), "argv": argv}
        plots = qa.solve_plots(tmp / "qa", bp_raw=solved.bp_raw, flagged=solved.flagged,
                               xy_phase_deg=np.asarray(solved.xy_info.get("phase_deg", [])),
                               freqs_hz=solved.bp_raw.freqs_hz)
        summary["runtime_s"] = round(time.perf_counter() - t_start, 1)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1))
        html = qa.write_summary_html(tmp / "summary.html", summary=summary, plots=plots, root=tmp)

    rel = [p.relative_to(tmp) for p in plots]
    _log_result(solved, settings, summary["runtime_s"])
    return SolveResult(outdir=outdir, bp_table=outdir / BP_TABLE,
                       xy_table=outdir / XY_TABLE if solved.xy_path else None, raw_table=outdir / BP_RAW,
                       summary=summary, plots=[outdir / r for r in rel], html=outdir / html.relative_to(tmp))
