"""docs/options.md lists every option of every command as the code has it (tests/options_table.py)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import click
import pytest

from lwa_common.testing import run_cli

REPO = Path(__file__).resolve().parents[1]


def test_options_table_is_current():
    spec = importlib.util.spec_from_file_location("options_table", REPO / "tests" / "options_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    current = (REPO / "docs" / "options.md").read_text()
    assert current == mod.table(), ("docs/options.md is out of date: "
                                    ".venv/bin/python tests/options_table.py > docs/options.md")


def _table_module():
    spec = importlib.util.spec_from_file_location("options_table", REPO / "tests" / "options_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _renamed_options():
    """(command path, command, option) for every option that keeps old spellings as hidden aliases."""
    mod = _table_module()
    out = []
    for name, root in mod._entry_points():
        for path, cmd in mod._walk(name, root):
            out += [(path, cmd, p) for p in cmd.params if getattr(p, "old_names", ())]
    return mod, out


def test_one_name_per_meaning():
    """No two visible names for one meaning (issue 18); every old spelling is still declared somewhere."""
    mod, renamed = _renamed_options()
    visible, hidden = set(), set()
    for name, root in mod._entry_points():
        for _, cmd in mod._walk(name, root):
            for p in cmd.params:
                if isinstance(p, click.Option) and not p.hidden:
                    old = set(getattr(p, "old_names", ()))
                    visible |= {o for o in p.opts if o not in old}
                    hidden |= old
    for meaning, names in mod.SYNONYMS:
        assert len([n for n in names if n in visible]) <= 1, (meaning, [n for n in names if n in visible])
    assert len(renamed) >= 20
    assert {"--png", "--products", "--size-deg", "--min-uv-lambda", "--snr", "--column", "--match-beams",
            "--intervals", "--min-snr", "--v-sigma", "--beam"} <= hidden


def test_old_spellings_parse_to_the_same_option_and_stay_out_of_help():
    """Each hidden alias reaches the same parameter as the new name; --help shows only the new name."""
    _, renamed = _renamed_options()
    for path, cmd, param in renamed:
        ctx = click.Context(cmd, info_name=path)
        help_text = cmd.get_help(ctx)
        for old in param.old_names:
            assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", help_text), (path, old)
            if param.is_flag:
                expected = old not in param.secondary_opts
                args = [old]
            else:
                expected, args = "7", [old, "7"]
            opts, _, _ = cmd.make_parser(ctx).parse_args(args)
            assert opts.get(param.name) == expected, (path, old, opts)
            new = next(o for o in (param.secondary_opts if old in param.secondary_opts else param.opts)
                       if o not in param.old_names)
            opts_new, _, _ = cmd.make_parser(ctx).parse_args([new] if param.is_flag else [new, "7"])
            assert opts_new == opts, (path, old, new)


@pytest.mark.parametrize("argv, new", [
    (["lwa-dewarp", "fit", "x.fits", "--catalog", "c.csv", "-o", "s.fits", "--snr", "-1"], "--detection-sigma"),
    (["lwa-cutout", "targets", "t.csv", "-o", "out", "--size-deg", "0"], "--cutout-size-deg"),
    (["lwa-flag", "hot-baselines", "x.ms", "--in-place", "--min-uv-lambda", "abc"], "--uv-min-lambda"),
    (["lwa-calib", "solve", "x.ms", "--sources", "s.json", "-o", "cal", "--min-snr", "abc"], "--solution-sigma"),
])
def test_old_spelling_works_on_the_real_command(argv, new, tmp_path):
    """The installed command takes the old spelling and names the option by its new name in a usage error."""
    for name in ("x.fits", "c.csv", "t.csv", "s.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "x.ms").mkdir()
    res = run_cli(argv, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert new in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert "No such option" not in res.stderr


def test_run_hour_dry_run_prints_the_steps_and_runs_nothing(tmp_path):
    """bin/run_hour.sh --dry-run (local): every step's exact command on stdout, nothing created."""
    data = tmp_path / "data"
    for name in ("20241220_115600_55MHz.ms", "20241220_120600_55MHz.ms"):
        (data / name).mkdir(parents=True)
    work = tmp_path / "work"
    res = subprocess.run(["bash", str(REPO / "bin" / "run_hour.sh"), "--range", "10h-11h", "--date", "2024-12-20",
                          "--subbands", "55", "--data", str(data), "--workdir", str(work), "--dry-run",
                          "--image-scale-deg", "0.5"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    steps = [line.split(":")[0] for line in lines]
    for step in ("[10h/55MHz] copy", "[10h/55MHz] concat", "[10h/55MHz] flag-rfi", "[10h/55MHz] snapshots",
                 "[10h/55MHz] science", "[10h/55MHz] pbcor", "[10h/all] wideband", "[10h/all] report"):
        assert step in steps, (step, res.stdout)
    snapshots = next(line for line in lines if line.startswith("[10h/55MHz] snapshots:"))
    assert "lwa-image snapshots" in snapshots and "--scale-deg 0.5" in snapshots and snapshots.endswith(" -v")
    assert steps.index("[10h/55MHz] concat") < steps.index("[10h/55MHz] science") < steps.index("[10h/all] report")
    assert not work.exists()
    assert sorted(p.name for p in data.iterdir()) == ["20241220_115600_55MHz.ms", "20241220_120600_55MHz.ms"]
