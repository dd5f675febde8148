"""Shared simulations for the lwa-calib tests (session-cached; tests copy what they modify)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

# one bright calibrator near the zenith of START, with Stokes V so the cross hands carry a signal
CAL_SOURCE = {"name": "cal", "ra": 151.0, "dec": 37.0, "flux_jy": 5000.0, "ref_freq_mhz": 55.0,
              "spectral_index": -0.7, "v_frac": 0.2}
GAINS = {"amplitude_rms": 0.1, "phase_rms_deg": 30.0, "xy_phase_deg": 40.0, "seed": 5}
SMALL = {"n_int": 2, "n_antennas": 32, "n_channels": 8, "seed": 1}


def ttcal_entry(src: dict, *, polarised: bool = True) -> dict:
    """The same source in TTCal sources.json form (a pure power law: index [alpha])."""
    return {"name": src["name"], "ra": src["ra"], "dec": src["dec"], "I": src["flux_jy"],
            "V": src["flux_jy"] * src["v_frac"] if polarised else 0.0, "Q": 0.0, "U": 0.0,
            "freq": src["ref_freq_mhz"] * 1e6, "index": [src["spectral_index"]]}


@pytest.fixture(scope="session", autouse=True)
def _casa_cache(tmp_path_factory):
    """Keep the CASA site config and start-up log of the tests in a temporary folder."""
    old = os.environ.get("LWA_CALIB_CACHE")
    os.environ["LWA_CALIB_CACHE"] = str(tmp_path_factory.mktemp("casa_cache"))
    yield
    if old is None:
        os.environ.pop("LWA_CALIB_CACHE", None)
    else:
        os.environ["LWA_CALIB_CACHE"] = old


@pytest.fixture(scope="session")
def cal_sources(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sky") / "cal_sources.json"
    path.write_text(json.dumps([ttcal_entry(CAL_SOURCE)]))
    return path


@pytest.fixture(scope="session")
def unpolarised_sources(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sky_unpol") / "cal_unpolarised.json"
    path.write_text(json.dumps([ttcal_entry(CAL_SOURCE, polarised=False)]))
    return path


@pytest.fixture(scope="session")
def sim_model(sim_cache):
    """Gain-free, noiseless: the model visibilities."""
    return sim_cache("calib_model", {"sources": [CAL_SOURCE], "noise": {"sigma_jy": 0.0}}, **SMALL)


@pytest.fixture(scope="session")
def sim_gains(sim_cache):
    """Same sky and array, corrupted by known gains (55 MHz; plus a 41 MHz subband)."""
    return sim_cache("calib_gains", {"sources": [CAL_SOURCE], "noise": {"sigma_jy": 0.0}, "gains": GAINS},
                     subbands=(55, 41), **SMALL)


@pytest.fixture(scope="session")
def sim_solve(sim_cache):
    """A calibrator hour in miniature: gains, low noise, one dead antenna, RFI in channel 3."""
    spec = {"sources": [CAL_SOURCE], "noise": {"sigma_jy": 1.0}, "gains": GAINS, "dead_antennas": [5],
            "rfi": [{"channels": [3], "amplitude_jy": 3000.0}]}
    return sim_cache("calib_solve", spec, n_int=3, n_antennas=32, n_channels=8, seed=1)


def ms_files(outdir: Path, subband: str = "55MHz") -> list[Path]:
    return sorted(outdir.glob(f"*_{subband}.ms"))


def tree_digest(path: Path) -> str:
    """Hash of every file (name, size, content) under an MS: proves it was not modified."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file() and p.name != "table.lock"):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def reference_normalised(gains: np.ndarray, ref: int) -> np.ndarray:
    """gains[ant, chan, pol] with the phase of the reference antenna's X gain removed per channel."""
    phase = gains[ref, :, 0] / np.abs(gains[ref, :, 0])
    return gains / phase[None, :, None]


@pytest.fixture(scope="session")
def helpers():
    """The helpers above, for the test modules (importlib mode: they cannot import conftest)."""
    from types import SimpleNamespace

    return SimpleNamespace(ms_files=ms_files, tree_digest=tree_digest, reference_normalised=reference_normalised,
                           CAL_SOURCE=CAL_SOURCE, GAINS=GAINS)
