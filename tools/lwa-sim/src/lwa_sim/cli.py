"""`lwa-sim`: simulated OVRO-LWA observations with a known truth."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import click
from astropy.time import Time

from lwa_common import LwaError
from lwa_common.cli import ExistingPath, NewPath, common_options, emit, json_option, run_main
from lwa_sim.array import LAYOUTS, default_system_cfg
from lwa_sim.observe import ObserveSettings, observe
from lwa_sim.spec import load_spec, parse_spec

__all__ = ["cli", "main"]

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Simulate OVRO-LWA observations (one MS per integration per subband) with a known truth."""


@cli.command("observe")
@click.argument("spec", type=ExistingPath, required=False)
@click.option("-o", "--output", type=NewPath, required=True, help="Folder for the MS files and truth.json.")
@click.option("--start", required=True, help="UTC start of the first integration (ISO, e.g. 2024-12-20T12:00:00).")
@click.option("--n-int", "n_int", type=click.IntRange(min=1), default=6, show_default=True,
              help="Number of integrations (one MS each).")
@click.option("--subband", "subbands", multiple=True, type=int, default=(55,), show_default=True,
              help="Subband label in MHz (repeat for several).")
@click.option("--n-channels", type=int, default=8, show_default=True, help="Channels per subband (divides 192).")
@click.option("--n-antennas", type=click.IntRange(min=3, max=352), default=64, show_default=True,
              help="Antennas (a deterministic subset, see --layout).")
@click.option("--layout", type=click.Choice(LAYOUTS), default="core", show_default=True,
              help="Antenna subset: 'core' spreads it over the compact core (a smooth PSF, the same for "
                   "every seed), then adds outriggers; 'spread' over the whole correlator list.")
@click.option("--system-cfg", type=ExistingPath, envvar="LWA_SYSTEM_CFG", default=None,
              help="OVRO-LWA system_cfg.yml (antenna positions); env LWA_SYSTEM_CFG; default: the "
                   "antenna table shipped with lwa-sim.")
@click.option("--integration-s", type=float, default=ObserveSettings.integration_s, show_default=True,
              help="Integration time.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise/RFI random seed.")
@click.option("--overwrite", is_flag=True, help="Write into an output folder that already holds MS files.")
@click.option("--without-ateam", is_flag=True,
              help="Leave the spec's A-team out (the control of an A-team sky: same seed, same noise).")
@json_option
@common_options
def observe_cmd(spec: Path | None, output: Path, start: str, n_int: int, subbands: tuple[int, ...],
                n_channels: int, n_antennas: int, layout: str, system_cfg: Path | None, integration_s: float, seed: int,
                overwrite: bool, without_ateam: bool, as_json: bool, cfg) -> None:
    """Write an observation described by the truth SPEC (YAML/JSON; empty sky if omitted).

    Writes OUTPUT/YYYYMMDD_HHMMSS_XXMHz.ms per integration and subband, OUTPUT/truth.json (every
    source's true and ionospherically shifted position, intrinsic and beam-attenuated flux, the
    transient intervals, RFI, hot baselines, dead antennas), OUTPUT/catalog.csv (true positions,
    73.8 MHz fluxes), OUTPUT/true_gains_XXMHz.h5 when the spec has gains and OUTPUT/rfi_sources.json
    (the site's RFI list: a TTCal entry per broadband emitter, for lwa-peel rfi) when it has
    emitters on every channel. Prints the MS paths.

    \b
    Example:
      lwa-sim observe truth.yaml -o sim/ --start 2024-12-20T12:00:00 --n-int 36 \\
          --subband 55 --n-channels 8 --n-antennas 64
    """
    try:
        t0 = Time(start, scale="utc")
    except ValueError:
        raise LwaError(f"--start '{start}' is not an ISO time like 2024-12-20T12:00:00") from None
    if output.exists() and any(output.glob("*.ms")) and not overwrite:
        raise LwaError(f"output folder {output} already holds MS files (use --overwrite)")
    truth_spec = load_spec(spec) if spec else parse_spec({})
    if without_ateam:
        truth_spec = dataclasses.replace(truth_spec, ateam=False)
    settings = ObserveSettings(
        start=t0, n_integrations=n_int, subbands_mhz=tuple(subbands), n_channels=n_channels,
        n_antennas=n_antennas, system_cfg=system_cfg or default_system_cfg(), layout=layout,
        integration_s=integration_s, seed=seed, site=cfg.site,
    )
    truth = observe(truth_spec, settings, output)
    paths = [str(output / f) for sb in truth["observation"]["subbands"] for f in sb["files"]]
    emit({"outputs": paths, "truth": str(output / "truth.json")} if as_json else paths, as_json=as_json)


@cli.command("score")
@click.argument("run_dir", type=ExistingPath)
@click.option("--truth", "truth_path", type=ExistingPath, required=True, help="The simulation's truth.json.")
@click.option("-o", "--output", type=NewPath, default=None, help="Also write the score JSON to this file.")
@click.option("--require", is_flag=True, help="Exit 1 when a goal of the science suite fails (naming it).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@click.option("--control", type=ExistingPath, default=None,
              help="Simulation of the same spec without the A-team (observe --without-ateam, same settings and "
                   "seed): scores the A-team peel (power left, field change, RMS near the A-team).")
@click.option("--control-run", type=ExistingPath, default=None,
              help="run_hour.sh work folder of that control sky: the image RMS 3-10 deg from the A-team is compared "
                   "with its deep image (else with dirty pixels of the control's visibilities).")
@json_option
@common_options
def score_cmd(run_dir: Path, truth_path: Path, output: Path | None, require: bool, overwrite: bool,
              control: Path | None, control_run: Path | None, as_json: bool, cfg) -> None:
    """Score a run_hour.sh work folder RUN_DIR (or one <hour>/<subband> folder) against the truth.

    Per source the PB-corrected flux against the intrinsic truth (peak and fitted), astrometry before
    and after dewarping in beams of the image's own header, every injected transient found or missed
    with its S/N, false candidates per image by Stokes and class, flag recall per injected fault and
    the flagged fraction of clean data (per flagger), whether dewarping engaged, the restoring beam
    of every configuration; then every goal (pass / fail / n/a). Prints a short table (the JSON
    with --json).

    \b
    Example:
      bin/demo.sh /tmp/demo --truth tests/scenarios/quiet_sky.yaml
      lwa-sim score /tmp/demo/run --truth /tmp/demo/sim/truth.json --require
    """
    from lwa_common.io import atomic_path, check_output
    from lwa_sim.score import format_table, score_run

    if output is not None:
        check_output(output, overwrite=overwrite)
    if control_run is not None and control is None:
        raise LwaError("--control-run needs --control (the control simulation)")
    result = score_run(run_dir, truth_path, control=control, control_run=control_run)
    if output is not None:
        with atomic_path(output) as tmp:
            tmp.write_text(json.dumps(result, indent=1))
    if as_json:
        emit(result, as_json=True)
    else:
        click.echo(format_table(result))
    failed = [k for k, v in result["goals"].items() if v["status"] == "fail"]
    if require and failed:
        raise LwaError("goals failed: " + "; ".join(f"{k} ({result['goals'][k]['detail']})" for k in failed))


def main() -> None:
    run_main(cli)
