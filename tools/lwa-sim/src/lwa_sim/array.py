"""The OVRO-LWA antenna layout from system_cfg.yml (lwa-antpos), any subset of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation

from lwa_common import LwaError
from lwa_common.antpos import read_system_cfg

__all__ = ["Array", "load_array"]


@dataclass(frozen=True)
class Array:
    names: tuple[str, ...]
    corr_nums: tuple[int, ...]
    ecef_rel_m: np.ndarray  # (n, 3) ECEF offsets from the array reference position
    info: tuple[dict, ...]  # the system_cfg rows (ARX/SNAP2 wiring)

    @property
    def n(self) -> int:
        return len(self.names)


def load_array(system_cfg: str | Path, *, n_antennas: int | None, location: EarthLocation) -> Array:
    """Antennas in correlator order (= MS ANTENNA order); a subset of `n_antennas` is spread
    evenly over the correlator list so that it samples the core and the outriggers alike."""
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
        pick = np.unique(np.round(np.linspace(0, len(rows) - 1, n_antennas)).astype(int))
        rows = [rows[i] for i in pick]
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
