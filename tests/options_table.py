"""Write docs/options.md: every option of every lwa-pipe command, from the commands themselves.

    .venv/bin/python tests/options_table.py > docs/options.md

tests/test_options_table.py checks that docs/options.md is what this prints, so the table cannot
fall behind the code. One row per option name: which commands take it, and its help's first
sentence from one of them; before it, the naming rules, the names that still mean the same thing
in different tools (none, issue 18) and the old spellings kept as hidden aliases.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]

# every spelling ever used for one meaning (issue 18, item 2): at most one of each may be visible;
# the others stay as hidden aliases (lwa_common.cli.renamed), listed under "Old spellings"
SYNONYMS = [
    ("pixel size", ("--scale-deg", "--scale-arcmin", "--image-scale-deg")),
    ("detection threshold (sigma)", ("--detection-sigma", "--snr", "--sigma")),
    ("S/N floor of a calibration solve", ("--solution-sigma", "--min-snr")),
    ("visibility column read", ("--data-column", "--input-column", "--column")),
    ("match radius", ("--match-radius-beams", "--match-arcmin", "--match-radius-arcmin", "--match-beams")),
    ("cutout size", ("--cutout-size-deg", "--size-deg")),
    ("minimum uv distance", ("--uv-min-lambda", "--min-uv-lambda")),
    ("plots", ("--plots", "--png", "--products")),
    ("number of time intervals", ("--intervals-out", "--intervals")),
    ("primary-beam file", ("--beam-file",)),
]

RULES = [
    "Units end the name: `-deg`, `-arcmin`, `-arcsec`, `-lambda`, `-beams` (restoring beams, BMAJ), `-mhz`, "
    "`-s`, `-jy`, `-px`, `-ns`, `-gb`.",
    "A threshold in units of the noise (a signal-to-noise ratio) ends in `-sigma`: `--detection-sigma`, "
    "`--v-detection-sigma`, `--uv-sigma`, `--solution-sigma`.",
    "The visibility column a command reads is `--data-column`; the one it writes, `--output-column`.",
    "Pixel size `--scale-deg`, image side `--size` (pixels), cutout side `--cutout-size-deg`, "
    "cross-match radius `--match-radius-beams`, shortest baseline used `--uv-min-lambda`, "
    "time intervals `--intervals-out` (wsclean's name), beam model `--beam-file`.",
    "PNG diagnostics are switched with `--plots/--no-plots`.",
    "Defaults live once, in `lwa_common.config`; help shows the value and, for most options, its config key "
    "(`default: VALUE, config SECTION.KEY`).",
]


def _entry_points() -> list[tuple[str, click.Command]]:
    out = []
    for pyproject in sorted([REPO / "common" / "pyproject.toml", *REPO.glob("tools/*/pyproject.toml")]):
        scripts = tomllib.loads(pyproject.read_text()).get("project", {}).get("scripts", {})
        for name, target in sorted(scripts.items()):
            module, attr = target.split(":")
            obj = getattr(importlib.import_module(module), attr)
            group = getattr(importlib.import_module(module), "cli", None) if not isinstance(obj, click.Command) else obj
            if isinstance(group, click.Command):
                out.append((name, group))
    return out


def _walk(prefix: str, cmd: click.Command):
    if isinstance(cmd, click.Group):
        for sub in sorted(cmd.commands):
            yield from _walk(f"{prefix} {sub}", cmd.commands[sub])
    else:
        yield prefix, cmd


def _first_sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", (text or "").strip())
    m = re.match(r"(.+?[.)])( |$)", text)
    return (m.group(1) if m else text).replace("|", "\\|")


def table() -> str:
    uses: dict[str, list[str]] = {}
    helps: dict[str, str] = {}
    old: dict[str, tuple[str, set[str]]] = {}
    for name, root in _entry_points():
        for path, cmd in _walk(name, root):
            for p in cmd.params:
                if not isinstance(p, click.Option):
                    continue
                if p.hidden:  # an old spelling kept as its own option (another unit): its help names the new one
                    now = re.search(r"--[a-z][a-z-]*", p.help or "")
                    for o in p.opts:
                        old.setdefault(o, (now.group(0) if now else "?", set()))[1].add(path)
                    continue
                hidden = set(getattr(p, "old_names", ()))
                for o in sorted(hidden):
                    family = p.secondary_opts if o in p.secondary_opts else p.opts
                    now = next(n for n in family if n.startswith("--") and n not in hidden)
                    old.setdefault(o, (now, set()))[1].add(path)
                for opt in [o for o in p.opts if o.startswith("--") and o not in hidden]:
                    if opt in ("--help", "--version"):
                        continue
                    uses.setdefault(opt, []).append(path)
                    helps.setdefault(opt, _first_sentence(p.help or ""))
    lines = ["# Options of every command", "",
             "Generated by `tests/options_table.py` from the commands themselves (a test keeps it current).",
             "Every command also takes `-h/--help` and `--version`; the common `-v/--verbose`, `--log-file`,",
             "`--config` and `--json` mean the same everywhere.", "",
             "## One vocabulary", ""]
    lines += [f"- {rule}" for rule in RULES]
    lines += ["", "## Names that still mean one thing in different spellings", ""]
    rows = []
    for meaning, names in SYNONYMS:
        present = [n for n in names if n in uses]
        if len(present) > 1:
            rows.append(f"| {meaning} | " + ", ".join(f"`{n}` ({len(uses[n])})" for n in present) + " |")
    lines += ["| meaning | names in use |", "|---|---|", *rows] if rows else ["None."]
    lines += ["", "## Old spellings (hidden from help, still accepted for one release)", "",
              "| old | now | commands |", "|---|---|---|"]
    for o in sorted(old):
        now, cmds = old[o]
        lines.append(f"| `{o}` | `{now}` | " + ", ".join(f"`{c}`" for c in sorted(cmds)) + " |")
    lines += ["", "## Every option", "", "| option | commands | meaning (first sentence of its help) |", "|---|---|---|"]
    for opt in sorted(uses):
        cmds = ", ".join(f"`{c}`" for c in sorted(set(uses[opt])))
        lines.append(f"| `{opt}` | {cmds} | {helps[opt]} |")
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    sys.stdout.write(table())
