"""Simulated observations for the lwa-flag tests (session-cached by the root `sim_cache`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

SKY = {"random_sources": {"count": 20, "flux_jy": [20, 200], "seed": 1}}

# ten isolated hot baselines (antenna indices), none touching antennas 7 (hot antenna) or 11 (dead)
HOT_PAIRS = [[2, 50], [4, 61], [13, 77], [20, 33], [25, 90], [30, 44], [38, 70], [47, 85], [55, 66], [60, 93]]
# antenna 7 hot with 26 of its 95 baselines (27 % > 25 %): the antenna rule must flag it whole
HOT_ANTENNA = 7
HOT_ANTENNA_PAIRS = [[HOT_ANTENNA, k] for k in range(14, 14 + 26 * 3, 3)]
DEAD = 11


@pytest.fixture(scope="session")
def hot_sim(sim_cache):
    """96 antennas, 8 channels, 2 integrations; hot baselines at 30 Jy (a few times the cross-hand
    noise, far below the sky's scatter in the parallel hands), a hot antenna and a dead one."""
    spec = {**SKY, "hot_baselines": {"pairs": HOT_PAIRS + HOT_ANTENNA_PAIRS, "amplitude_jy": 30.0},
            "dead_antennas": [DEAD]}
    out, truth = sim_cache("flag_hot", spec, n_int=2, n_antennas=96, n_channels=8)
    return sorted(out.glob("*.ms")), truth


@pytest.fixture(scope="session")
def strong_sim(sim_cache):
    """The same array with very hot baselines (1500 Jy): visible even against the sky in pass 1."""
    spec = {**SKY, "hot_baselines": {"pairs": HOT_PAIRS, "amplitude_jy": 1500.0}}
    out, truth = sim_cache("flag_strong", spec, n_int=1, n_antennas=96, n_channels=8)
    return sorted(out.glob("*.ms")), truth


@pytest.fixture(scope="session")
def small_sim(sim_cache):
    """A small plain observation (16 antennas, 4 channels, 8 integrations) for CLI and error tests."""
    out, truth = sim_cache("flag_small", {"random_sources": {"count": 5, "flux_jy": [20, 100], "seed": 2}},
                           n_int=8, n_antennas=16, n_channels=4)
    return sorted(out.glob("*.ms")), truth


def flag_digest(ms: Path) -> str:
    """Checksum of the FLAG (and FLAG_ROW) column: proves an input MS was left untouched."""
    with table(str(ms), ack=False) as t:
        h = hashlib.sha256(np.ascontiguousarray(t.getcol("FLAG")).tobytes())
        if "FLAG_ROW" in t.colnames():
            h.update(np.ascontiguousarray(t.getcol("FLAG_ROW")).tobytes())
        h.update(str(t.nrows()).encode())
    return h.hexdigest()


def read_flags(ms: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with table(str(ms), ack=False) as t:
        return t.getcol("FLAG"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")


@pytest.fixture
def digest():
    return flag_digest


@pytest.fixture
def flags_of():
    return read_flags


@pytest.fixture(scope="session")
def hot_truth():
    return {"pairs": [tuple(p) for p in HOT_PAIRS], "antenna": HOT_ANTENNA,
            "antenna_pairs": [tuple(p) for p in HOT_ANTENNA_PAIRS], "dead": DEAD}


@pytest.fixture(autouse=True)
def _restore_logging():
    """In-process CLI runs (CliRunner) install log handlers on the root logger; undo that."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
