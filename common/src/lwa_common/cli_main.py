"""`lwa-common`: small commands the driver calls (LST range -> UTC hours, pre-flight audit)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from lwa_common.cli import NewPath, common_options, run_main
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.plan import format_problems, make_plan, write_plan
from lwa_common.site import split_lst_range

__all__ = ["main", "cli"]


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
@click.option("-o", "--output", type=NewPath, required=True, help="Plan JSON (MS lists per subband and hour).")
@common_options
def audit(data, subbands, lst_range, date, workdir, bp_table, xy_table, files, tools, min_free_gb, output, cfg):
    """Pre-flight audit: data per subband and LST hour, tables, files, tools, disk; writes a plan.

    Prints one table of everything missing and exits 1 before anything is submitted; otherwise
    writes the plan JSON (MS files per subband and LST hour) and prints its path.

    \b
    Example:
      lwa-common audit --data /lustre/night --subbands 55,73 --range 10h-11h --date 2024-12-20 \\
          --workdir run/ --bp-table bp.B --xy-table xy.Xf --tool wsclean -o run/plan.json
    """
    try:
        sbs = [int(s.strip().removesuffix("MHz")) for s in subbands.split(",") if s.strip()]
    except ValueError:
        raise LwaError(f"--subbands '{subbands}' must be a comma-separated list like 55,73") from None
    plan = make_plan(
        data=data, subbands=sbs, lst_range=lst_range, date=date, workdir=workdir,
        tables={"bandpass": bp_table, "xy-phase": xy_table},
        files={str(f): f for f in files}, tools=list(tools), min_free_gb=min_free_gb,
        skip_subbands=cfg.observation.skip_subbands_mhz,
    )
    if plan.problems:
        click.echo(format_problems(plan.problems), err=True)
        raise LwaError(f"pre-flight audit found {len(plan.problems)} problem(s); nothing was submitted")
    write_plan(plan, output)
    click.echo(str(output))


@cli.command("state")
@click.argument("state_file", type=NewPath)
@click.argument("assignments", nargs=-1)
def state(state_file: Path, assignments: tuple[str, ...]) -> None:
    """Update the run-state JSON: KEY=VALUE pairs (dotted keys nest), timestamped.

    \b
    Example:
      lwa-common state run/state.json subbands.55MHz.image=done subbands.55MHz.image_job=1234
    """
    data = json.loads(state_file.read_text()) if state_file.exists() else {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LwaError(f"state assignment '{item}' is not KEY=VALUE")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise LwaError(f"state key '{key}' crosses a non-table value")
        node[parts[-1]] = value
    data["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    with atomic_path(state_file) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def main() -> None:
    run_main(cli)
