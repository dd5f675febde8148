"""Fixtures shared by every test folder (common/, tools/*/tests, tests/)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lwa_common.testing import shared_data_dir

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# The tools' console scripts live beside this interpreter (.venv/bin): tests run them by name, as a
# user with the venv activated would, also when pytest is started as .venv/bin/pytest.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "ovro-lwa" / "system_cfg.yml").exists():
        pytest.fail(f"reference data not found at {path} (set LWA_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def system_cfg(shared_data) -> Path:
    return shared_data / "ovro-lwa" / "system_cfg.yml"


@pytest.fixture(scope="session")
def sim_cache(tmp_path_factory):
    """Simulate once per session per (name, spec, settings); tests copy what they modify."""
    from astropy.time import Time

    from lwa_sim import ObserveSettings, observe, parse_spec

    cache: dict[str, tuple[Path, dict]] = {}

    def make(name: str, spec: dict, *, start: str = "2024-12-20T12:00:00", n_int: int = 6,
             subbands: tuple[int, ...] = (55,), n_channels: int = 8, n_antennas: int = 64, seed: int = 0,
             layout: str = "spread"):
        if name not in cache:
            out = tmp_path_factory.mktemp(f"sim_{name}")
            settings = ObserveSettings(start=Time(start), n_integrations=n_int, subbands_mhz=subbands,
                                       n_channels=n_channels, n_antennas=n_antennas,
                                       system_cfg=shared_data_dir() / "ovro-lwa" / "system_cfg.yml", seed=seed,
                                       layout=layout)
            truth = observe(parse_spec(spec), settings, out)
            cache[name] = (out, truth)
        return cache[name]

    return make


@pytest.fixture
def copy_ms(tmp_path):
    """Copy an MS (or several) into this test's tmp_path, so tests never touch the shared ones."""

    def _copy(*paths: Path) -> list[Path]:
        out = []
        for p in paths:
            dst = tmp_path / Path(p).name
            shutil.copytree(p, dst)
            out.append(dst)
        return out

    return _copy
