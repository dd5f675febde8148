"""`lwa-common`: small commands the driver calls (LST range -> UTC hours, pre-flight audit)."""

from __future__ import annotations

import json

import click

from lwa_common.cli import common_options, run_main
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


def main() -> None:
    run_main(cli)
