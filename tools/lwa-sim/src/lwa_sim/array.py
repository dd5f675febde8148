"""The OVRO-LWA antenna layout from system_cfg.yml (lwa-antpos), any subset of it.

The shipped `data/ovro_lwa_antennas.yml` (the position columns of lwa-antpos's system_cfg.yml,
BSD-3) is the default, so a simulation needs no external file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation

from lwa_common import LwaError
from lwa_common.antpos import read_system_cfg

__all__ = ["Array", "load_array", "default_system_cfg", "CORE_RADIUS_M", "LAYOUTS"]

LAYOUTS = ("core", "spread")

CORE_RADIUS_M = 250.0  # the compact core: antennas within this distance of the array's median position


def default_system_cfg() -> Path:
    """The antenna table shipped with lwa-sim (positions and correlator order of the 352 antennas)."""
    return Path(str(files("lwa_sim") / "data" / "ovro_lwa_antennas.yml"))


@dataclass(frozen=True)
class Array:
    names: tuple[str, ...]
    corr_nums: tuple[int, ...]
    ecef_rel_m: np.ndarray  # (n, 3) ECEF offsets from the array reference position
    info: tuple[dict, ...]  # the system_cfg rows (ARX/SNAP2 wiring)

    @property
    def n(self) -> int:
        return len(self.names)


def load_array(system_cfg: str | Path, *, n_antennas: int | None, location: EarthLocation,
               layout: str = "core") -> Array:
    """Antennas in correlator order (= MS ANTENNA order).

    `layout="core"`: a subset of `n_antennas` is taken from the compact core (within `CORE_RADIUS_M` of the array's
    median position), spread evenly over the core's correlator list, so that it samples the core's
    uv distribution: its PSF is the core's, smooth and the same for every seed and every subset size
    (a few outriggers among core antennas give a spiky PSF whose fitted beam jumps between runs).
    Beyond the core's size, outriggers are added spread evenly over theirs. `layout="spread"`: the
    subset is spread evenly over the whole correlator list (core and outriggers alike; the subset
    of earlier versions). Both are deterministic.
    """
    if layout not in LAYOUTS:
        raise LwaError(f"antenna layout must be one of {', '.join(LAYOUTS)}, not '{layout}'")
    cfg = read_system_cfg(system_cfg)
    path = Path(system_cfg)
    rows = [
        v for v in cfg.values()
        if v.get("used") and int(v.get("corr_num", -1)) >= 0
        and abs(float(v.get("elevation", 0))) < 10000
    ]
    if not rows:
        raise LwaError(f"system config {path} lists no used antennas with a correlator number")
    rows.sort(key=lambda r: int(r["corr_num"]))
    if n_antennas is not None:
        if not 3 <= n_antennas <= len(rows):
            raise LwaError(f"--n-antennas must be between 3 and {len(rows)}")
        rows = (_core_first_subset(rows, n_antennas) if layout == "core"
                else [rows[i] for i in _spread(len(rows), n_antennas)])
    pos = EarthLocation.from_geodetic(
        np.array([r["longitude"] for r in rows], dtype=float) * u.deg,
        np.array([r["latitude"] for r in rows], dtype=float) * u.deg,
        np.array([r["elevation"] for r in rows], dtype=float) * u.m,
    )
    rel = np.stack([
        (pos.x - location.x).to_value(u.m),
        (pos.y - location.y).to_value(u.m),
        (pos.z - location.z).to_value(u.m),
    ], axis=1)
    return Array(
        names=tuple(str(r["antname"]) for r in rows),
        corr_nums=tuple(int(r["corr_num"]) for r in rows),
        ecef_rel_m=rel,
        info=tuple(rows),
    )


def _spread(n_total: int, n: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, n_total - 1, n)).astype(int))


def _core_first_subset(rows: list[dict], n: int) -> list[dict]:
    """`n` rows: core antennas spread over the core's correlator order, then outriggers likewise."""
    lat = np.radians([float(r["latitude"]) for r in rows])
    lon = np.radians([float(r["longitude"]) for r in rows])
    earth_m = 6_371_000.0
    north = (lat - np.median(lat)) * earth_m
    east = (lon - np.median(lon)) * earth_m * np.cos(np.median(lat))
    is_core = np.hypot(north, east) <= CORE_RADIUS_M
    core = [r for r, c in zip(rows, is_core) if c]
    outer = [r for r, c in zip(rows, is_core) if not c]
    if n <= len(core):
        pick = [core[i] for i in _spread(len(core), n)]
    else:
        pick = core + [outer[i] for i in _spread(len(outer), n - len(core))]
    return sorted(pick, key=lambda r: int(r["corr_num"]))
