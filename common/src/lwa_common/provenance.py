"""Provenance: which tool, which version (and git hash), when, with which command line.

`stamp_header` writes HISTORY cards into a FITS header and never duplicates them: a rerun of the
same command replaces its own earlier stamp rather than adding another. `stamp_ms` appends one row
to an MS HISTORY table (the casacore convention for recording what touched a MeasurementSet).
"""

from __future__ import annotations

import functools
import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: an MS tool need not import astropy.io.fits (0.1-0.3 s) at start
    from astropy.io import fits

__all__ = ["tool_version", "git_hash", "command_line", "stamp_header", "read_stamp", "stamp_ms", "PROV_PREFIX",
           "keep_tool_output"]

PROV_PREFIX = "lwa-pipe"
# the MS's TIME unit, UTC seconds since MJD 0, at the Unix epoch (MJD 40587): a HISTORY row's time needs
# no astropy (0.2 s of start-up in a tool that only flags an MS)
UNIX_EPOCH_MJD_S = 40587 * 86400.0


@functools.cache
def tool_version(distribution: str) -> str:
    """The installed version of `distribution` (read once per process: importlib.metadata scans the
    installed distributions, ~5 ms, and every FITS written asks twice)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0+unknown"


@functools.cache
def git_hash() -> str:
    """Short git hash of the lwa-pipe checkout this code runs from ('' when not in git)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    if argv:
        argv = [Path(argv[0]).name, *argv[1:]]
    return shlex.join(argv)


def _stamp_lines(tool: str, argv: list[str] | None, extra: list[str] | None) -> list[str]:
    ver = tool_version(tool)
    ghash = git_hash()
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    lines = [f"{ver}{' git ' + ghash if ghash else ''} {when}Z", f"cmd: {command_line(argv)}"]
    return lines + list(extra or [])


def _tag(tool: str) -> str:
    return f"{PROV_PREFIX}[{tool}] "


def stamp_header(
    header: fits.Header,
    *,
    tool: str,
    argv: list[str] | None = None,
    extra: list[str] | None = None,
) -> fits.Header:
    """Add provenance HISTORY for `tool`, replacing an earlier stamp of the same tool.

    Every card of a stamp starts with `lwa-pipe[<tool>] ` (long lines are cut into several cards,
    each tagged), so other tools' stamps -- the chain of custody -- are kept in order and only this
    tool's own previous cards go: writing the same product twice leaves one stamp per tool.
    """
    tag = _tag(tool)
    history = [str(card) for card in header.get("HISTORY", [])]
    if not _at_end_unstamped(header, history, tag):
        kept = [text for text in history if not text.startswith(tag)]
        while "HISTORY" in header:
            del header["HISTORY"]
        for text in kept:
            header.add_history(text)
    for line in _stamp_lines(tool, argv, extra):
        for piece in _pieces(line, 72 - len(tag) - 1):
            header.add_history(tag + piece)
    return header


def _at_end_unstamped(header: fits.Header, history: list[str], tag: str) -> bool:
    """Whether `header`'s HISTORY cards (`history`) close it and none is from `tag`: then removing
    them and adding them back, as a restamp does, would leave them where they are, so the new stamp
    is only appended (a wsclean product's header: 4 deletions and re-additions saved per image)."""
    if any(text.startswith(tag) for text in history):
        return False
    keys = list(header.keys())
    return all(key == "HISTORY" for key in keys[len(keys) - len(history):])


def _pieces(line: str, width: int) -> list[str]:
    """Cut `line` into card-sized pieces; continuation pieces start with '+'.

    FITS drops trailing blanks of a card, so a cut never leaves a blank at the end of a piece: it
    moves to the start of the next one, where it survives behind the '+'.
    """
    pieces, rest, first = [], line, True
    while True:
        cut = min(width, len(rest))
        while 0 < cut < len(rest) and rest[cut - 1] == " ":
            cut -= 1
        if cut == 0:
            cut = min(width, len(rest))
        pieces.append(("" if first else "+") + rest[:cut])
        rest, first = rest[cut:], False
        if not rest:
            return pieces


def read_stamp(header: fits.Header, tool: str) -> list[str]:
    """The lines of `tool`'s stamp in `header`, long lines joined back whole."""
    tag = _tag(tool)
    lines: list[str] = []
    for card in header.get("HISTORY", []):
        text = str(card)
        if not text.startswith(tag):
            continue
        piece = text[len(tag):]
        if piece.startswith("+") and lines:
            lines[-1] += piece[1:]
        else:
            lines.append(piece)
    return lines


def stamp_ms(ms: str | Path, *, tool: str, argv: list[str] | None = None, message: str = "") -> None:
    """Append a row to the MS HISTORY subtable (if it exists) recording this command."""
    from casacore.tables import table

    hist = Path(ms) / "HISTORY"
    if not hist.exists():
        return
    with table(str(hist), readonly=False, ack=False) as t:
        row = t.nrows()
        t.addrows(1)
        t.putcell("TIME", row, time.time() + UNIX_EPOCH_MJD_S)
        t.putcell("MESSAGE", row, message or f"{tool} {tool_version(tool)}")
        t.putcell("PRIORITY", row, "INFO")
        t.putcell("ORIGIN", row, PROV_PREFIX)
        t.putcell("APPLICATION", row, tool)
        t.putcell("CLI_COMMAND", row, [command_line(argv)])
        t.putcell("APP_PARAMS", row, [""])
        t.putcell("OBJECT_ID", row, 0)
        t.putcell("OBSERVATION_ID", row, -1)


TOOL_LOG_DIR_ENV = "LWA_TOOL_LOG_DIR"
STEP_ENV = "LWA_STEP"


def keep_tool_output(tool: str, command: str, output: str) -> Path | None:
    """Keep the full output of an external tool (wsclean, aoflagger, DP3) beside the step log.

    When ``$LWA_TOOL_LOG_DIR`` is set (bin/run_hour.sh sets it to the subband's logs folder, and
    ``$LWA_STEP`` to the step's name), the command line and everything the tool printed are appended
    to ``<dir>/<step>.<tool>.log``; returns that path, or None when the variable is unset. Never fatal:
    a log that cannot be written is not a reason to lose the step's work.
    """
    folder = os.environ.get(TOOL_LOG_DIR_ENV)
    if not folder:
        return None
    step = os.environ.get(STEP_ENV) or Path(sys.argv[0]).name
    path = Path(folder) / f"{step}.{tool}.log"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        with open(path, "a") as fh:
            fh.write(f"# {stamp} $ {command}\n{output.rstrip()}\n")
    except OSError:
        return None
    return path
