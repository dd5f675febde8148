"""Packaging: every CLI prints its version, and every package installs alone from its folder.

A user who wants one tool runs `pip install common tools/<tool>` in a fresh environment; that must
resolve without any unpublished lwa-pipe package (a tool depends on lwa-common only) and give a
working command. The install test uses uv (same resolver metadata as pip, but it links from its cache,
so eleven fresh environments fit in CI's time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lwa_common.testing import run_cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "common", *sorted(p.parent for p in (ROOT / "tools").glob("*/pyproject.toml"))]


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def _scripts() -> list[tuple[str, str, str]]:
    out = []
    for folder in PACKAGES:
        project = _project(folder)
        for script in project.get("scripts", {}):
            out.append((script, project["name"], project["version"]))
    return out


@pytest.mark.parametrize(("script", "dist", "version"), _scripts(), ids=lambda v: str(v))
def test_every_cli_prints_its_version(script, dist, version):
    res = run_cli([script, "--version"])
    assert res.returncode == 0, res.stderr
    words = res.stdout.split()
    assert words[:2] == [dist, version], res.stdout


def test_driver_prints_its_version():
    res = subprocess.run([str(ROOT / "bin" / "run_hour.sh"), "--version"], capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("run_hour.sh " + _project(ROOT / "common")["version"])


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: p.name)
def test_metadata_is_complete(folder):
    project = _project(folder)
    build = tomllib.loads((folder / "pyproject.toml").read_text())["build-system"]
    assert "setuptools>=77" in build["requires"]  # SPDX license strings need setuptools >= 77
    assert project["license"] == "GPL-3.0-or-later" and project["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert (folder / project["readme"]).exists()
    lwa_deps = [d for d in project.get("dependencies", []) if d.startswith("lwa-")]
    assert all(d.startswith(("lwa-common>=", "lwa-common[ms]>=")) for d in lwa_deps), lwa_deps  # no unpublished tool


def _uv() -> str:
    exe = Path(sys.executable).parent / "uv"
    found = str(exe) if exe.exists() else shutil.which("uv")
    if not found:
        pytest.fail("uv not found (bin/setup.sh installs it into .venv)")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("folder", PACKAGES[1:], ids=lambda p: p.name)
def test_tool_installs_alone(folder, tmp_path):
    uv = _uv()
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    env["VIRTUAL_ENV"] = str(venv)
    res = subprocess.run([uv, "pip", "install", "-q", str(ROOT / "common"), str(folder)], capture_output=True,
                         text=True, env=env, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    project = _project(folder)
    for script in project.get("scripts", {}):
        res = subprocess.run([str(venv / "bin" / script), "--version"], capture_output=True, text=True,
                             check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[:2] == [project["name"], project["version"]]
        res = subprocess.run([str(venv / "bin" / script), "--help"], capture_output=True, text=True, check=False)
        assert res.returncode == 0 and "Usage:" in res.stdout, res.stderr
    if not any(d.startswith(("lwa-common[ms]", "python-casacore")) for d in project.get("dependencies", [])):
        # a FITS-only tool: lwa-common without its [ms] extra, so no python-casacore
        res = subprocess.run([str(venv / "bin" / "python"), "-c", "import casacore"], capture_output=True,
                             text=True, check=False)
        assert res.returncode != 0, f"{project['name']} pulled python-casacore"
    # the wheel carries the licence
    dist_info = list((venv / "lib").glob(f"python3*/site-packages/{project['name'].replace('-', '_')}-*.dist-info"))
    assert dist_info and list(dist_info[0].rglob("LICENSE")), dist_info
