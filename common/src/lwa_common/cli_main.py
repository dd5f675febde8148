"""`lwa-common`: small commands the driver calls (LST range -> UTC hours, pre-flight audit)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from lwa_common.cli import NewPath, common_options, run_main
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_writable_folder
from lwa_common.plan import Problem, format_problems, job_resources, make_plan, subband_placement, write_plan
from lwa_common.site import split_lst_range

__all__ = ["main", "cli"]

log = logging.getLogger(__name__)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Shared lwa-pipe utilities."""


@cli.command("lst-range")
@click.argument("lst_range")
@click.option("--date", required=True, help="UTC date YYYY-MM-DD of the observation.")
@common_options
def lst_range(lst_range: str, date: str, cfg) -> None:
    """Split LST_RANGE (e.g. 10h-12h) into LST hours with UTC boundaries at OVRO; prints JSON.

    \b
    Example:
      lwa-common lst-range 10h-12h --date 2024-12-20
    """
    hours = split_lst_range(lst_range, date, cfg.site)
    click.echo(json.dumps([h.as_dict() for h in hours], indent=1))


@cli.command("audit")
@click.option("--data", type=NewPath, required=True, help="Folder holding the MS files (searched recursively).")
@click.option("--subbands", required=True, help="Comma-separated subband labels in MHz, e.g. 55,73.")
@click.option("--range", "lst_range", required=True, help="LST range, e.g. 10h-11h.")
@click.option("--date", required=True, help="UTC date YYYY-MM-DD.")
@click.option("--workdir", type=NewPath, required=True, help="Work folder (checked for free disk).")
@click.option("--bp-table", type=NewPath, default=None, help="CASA bandpass table.")
@click.option("--xy-table", type=NewPath, default=None, help="CASA XY-phase table.")
@click.option("--file", "files", multiple=True, type=NewPath, help="Other input file that must exist (repeat).")
@click.option("--tool", "tools", multiple=True, help="Command that must be on PATH (repeat).")
@click.option("--min-free-gb", type=float, default=1.0, show_default=True)
@click.option("--remap", "remaps", multiple=True, metavar="SUBBAND=NODE",
              help="Run SUBBAND's jobs on NODE (or partition:NAME), over config cluster.nodes (repeat).")
@click.option("-o", "--output", type=NewPath, required=True, help="Plan JSON (MS lists per subband and hour).")
@common_options
def audit(data, subbands, lst_range, date, workdir, bp_table, xy_table, files, tools, min_free_gb, remaps, output,
          cfg):
    """Pre-flight audit: data per subband and LST hour, tables, files, tools, disk; writes a plan.

    Names everything missing in its one error line and exits 1 before anything is submitted (-v
    also logs them as a table); otherwise
    writes the plan JSON (MS files per subband and LST hour, each subband's node, the node-local
    work folder) and prints its path. DATA may be the observatory's archive
    (<root>/<XXMHz>/<YYYY-MM-DD>/<HH>/<name>.ms[.tar]), a flat folder, or any depth in between.

    \b
    Example:
      lwa-common audit --data /lustre/night --subbands 55,73 --range 10h-11h --date 2024-12-20 \\
          --workdir run/ --bp-table bp.B --xy-table xy.Xf --tool wsclean -o run/plan.json
    """
    try:
        sbs = [int(s.strip().removesuffix("MHz")) for s in subbands.split(",") if s.strip()]
    except ValueError:
        raise LwaError(f"--subbands '{subbands}' must be a comma-separated list like 55,73") from None
    placement = subband_placement(cfg.cluster.nodes, remaps, sbs)
    jobs = job_resources(cfg.cluster.jobs)
    plan = make_plan(
        data=data, subbands=sbs, lst_range=lst_range, date=date, workdir=workdir,
        tables={"bandpass": bp_table, "xy-phase": xy_table},
        files={str(f): f for f in files}, tools=list(tools), min_free_gb=min_free_gb,
        skip_subbands=cfg.observation.skip_subbands_mhz,
    )
    for what, folder in (("output", output.parent), ("workdir", workdir)):
        try:
            check_writable_folder(folder)
        except LwaError as err:
            plan.problems.append(Problem(what, str(folder), str(err)))
    if plan.problems:
        log.info("pre-flight audit problems:\n%s", format_problems(plan.problems))
        raise LwaError(f"pre-flight audit found {len(plan.problems)} problem(s); nothing was submitted: "
                       + "; ".join(f"{p.what} {p.where}: {p.detail}" for p in plan.problems))
    plan.placement, plan.local_workdir = placement, cfg.cluster.local_workdir
    plan.jobs, plan.peel_tasks, plan.account = jobs, cfg.cluster.peel_tasks, cfg.cluster.account
    plan.peel_refine_once = cfg.peel.model_refine_once and cfg.peel.model_refine_rounds > 0
    write_plan(plan, output)
    click.echo(str(output))


@cli.command("unpack")
@click.argument("files", nargs=-1, required=True, type=NewPath)
@click.option("-o", "--output", type=NewPath, required=True, help="Work folder the tars are unpacked into.")
@common_options
def unpack(files: tuple[Path, ...], output: Path, cfg) -> None:
    """Print the MS to work on: each MS of FILES as it is, each .ms.tar unpacked into OUTPUT.

    The archive is only read. A tar unpacked before is reused. A file that cannot be used (an
    unreadable tar, no MS in it, not an MS) is named in one warning line and in
    OUTPUT/unpack_failed.txt ("path<TAB>reason"), and the rest go on; exit 1 only when none is usable.

    \b
    Example:
      lwa-common unpack /lustre/archive/55MHz/2024-12-20/10/*_55MHz_averaged.ms.tar -o /local/run/10h/55MHz/ms
    """
    from lwa_common.datatree import local_copies

    usable, failed = local_copies(files, output)
    with atomic_path(output / "unpack_failed.txt") as tmp:
        tmp.write_text("".join(f"{p}\t{why}\n" for p, why in failed))
    for _, why in failed:
        log.warning("%s", why)
    if not usable:  # the run's output folder goes, so the error line lists the reasons
        more = f"; {len(failed) - 5} more" if len(failed) > 5 else ""
        raise LwaError(f"none of the {len(files)} files is a usable MS: "
                       + "; ".join(why for _, why in failed[:5]) + more)
    click.echo("\n".join(map(str, usable)))


@cli.command("state")
@click.argument("state_file", type=NewPath)
@click.argument("assignments", nargs=-1)
def state(state_file: Path, assignments: tuple[str, ...]) -> None:
    """Record KEY=VALUE pairs (dotted keys nest) in the run state; without pairs print the state.

    Safe with any number of concurrent jobs on any nodes (Lustre, NFS): each call adds one record
    to STATE_FILE.d/ and refreshes STATE_FILE, always a complete JSON document of every record.

    \b
    Example:
      lwa-common state run/state.json subbands.55MHz.image=done subbands.55MHz.image_job=1234
      lwa-common state run/state.json
    """
    from lwa_common.state import parse_assignments, read_state, update_state

    if not assignments:
        click.echo(json.dumps(read_state(state_file), indent=1, sort_keys=True))
        return
    update_state(state_file, parse_assignments(assignments))


def main() -> None:
    run_main(cli)
