"""The lwa-stack console script: outputs, exit codes, one-line errors, inputs untouched."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from astropy.io import fits

from lwa_common.testing import run_cli

COMMANDS = ("noise", "wideband", "color", "gather", "report", "archive")


def _hashes(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_example(command):
    res = run_cli(["lwa-stack", command, "--help"])
    assert res.returncode == 0 and "Example:" in res.stdout and f"lwa-stack {command}" in res.stdout


def test_noise_wideband_color_chain(synth, tmp_path):
    for sb in (18, 23, 46, 50, 69, 73):
        for robust in (0.0, -0.75):
            synth.make(sb, taper=0, robust=robust, noise=0.7)
        synth.make(sb, stokes="V", noise=0.7)
    before = _hashes(synth.run)
    noise_csv = tmp_path / "noise" / "thermal_noise.csv"
    res = run_cli(["lwa-stack", "noise", str(synth.run), "-o", str(noise_csv)])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(noise_csv)
    df = pd.read_csv(noise_csv)
    assert len(df) == 18 and df["rms_jy"].between(0.65, 0.75).all()
    wb = tmp_path / "wb"
    res = run_cli(["lwa-stack", "wideband", str(synth.run), "-o", str(wb), "--noise-csv", str(noise_csv), "--json",
                   "-v"])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["outputs"]) == 9  # 3 bands x (V deep taper + I deep notaper R0 + R-0.75)
    assert "18 reused" in res.stderr.replace("(", "").replace(")", "") or "18 images (18 reused" in res.stderr
    red = next(s for s in out["stacks"] if s["path"].endswith("Wideband_Red_V_deep_Taper_Robust-0.fits"))
    assert red["subbands"] == ["18MHz", "23MHz"] and red["expected_rms_jy"] == pytest.approx(0.7 / 2**0.5, rel=0.05)
    assert _hashes(synth.run) == before  # inputs untouched
    res = run_cli(["lwa-stack", "wideband", str(synth.run), "-o", str(wb)])
    assert res.returncode == 1 and "--overwrite" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(["lwa-stack", "color", str(wb), "-o", str(wb)])
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.split()) == 3
    assert fits.getheader(wb / "Wideband_Blue_I_deep_NoTaper_Robust-0.75.fits")["SUBBANDS"] == "69MHz,73MHz"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wideband", "{empty}", "-o", "{tmp}/wb"], "no per-subband images to stack"),
        (["noise", "{bad}", "-o", "{tmp}/n.csv"], "no image could be measured"),
        (["color", "{empty}", "-o", "{tmp}/c"], "no deep Stokes I wideband stacks"),
        (["archive", "{empty}", "--archive-root", "{tmp}/a", "--sample", "x"], "holds no product files"),
        (["wideband", "{empty}", "-o", "{tmp}/wb", "--noise-csv", "{bad}"], "not a thermal_noise.csv"),
    ],
)
def test_bad_input_exits_1_with_one_line(tmp_path, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad.fits"
    bad.write_text("not a FITS file")
    subs = {"{empty}": str(empty), "{tmp}": str(tmp_path), "{bad}": str(bad)}
    argv = []
    for a in args:
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    res = run_cli(["lwa-stack", *argv])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert bad.read_text() == "not a FITS file"


def test_usage_errors_exit_2(tmp_path):
    assert run_cli(["lwa-stack", "wideband", str(tmp_path)]).returncode == 2  # no -o
    assert run_cli(["lwa-stack", "wideband", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]).returncode == 2
    assert run_cli(["lwa-stack", "noise", str(tmp_path), "-o", "x.csv", "--inner-fraction", "2"]).returncode == 2
    assert run_cli(["lwa-stack", "report", str(tmp_path), "-o", str(tmp_path / "r.html"), "--smtp-port",
                    "70000"]).returncode == 2
    assert run_cli(["lwa-stack", "frobnicate"]).returncode == 2


def test_noise_box_from_config_or_option(synth, tmp_path):
    """`[stack] noise_inner_fraction` in --config sets the noise box as --inner-fraction does; the option wins."""
    synth.make(55, noise=0.7)
    config = tmp_path / "lwa.toml"
    config.write_text("[stack]\nnoise_inner_fraction = 0.2\n")
    n_pix = {}
    for name, extra in {"default": [], "config": ["--config", str(config)],
                        "option": ["--inner-fraction", "0.2"],
                        "both": ["--config", str(config), "--inner-fraction", "0.5"]}.items():
        out = tmp_path / name / "thermal_noise.csv"
        res = run_cli(["lwa-stack", "noise", str(synth.run), "-o", str(out), *extra])
        assert res.returncode == 0, res.stderr
        n_pix[name] = int(pd.read_csv(out)["n_pix"].iloc[0])
    assert n_pix["config"] == n_pix["option"] < n_pix["default"] == n_pix["both"]
