"""OVRO-LWA signal-path wiring from system_cfg.yml (lwa-antpos): correlator input, SNAP2, ARX.

Hot baselines and dead antennas often share a board (crosstalk in one ARX, a bad SNAP2), so the
QA heatmap is annotated with it. Antennas are matched by name ('LWA-123' and 'LWA123' both work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lwa_common.antpos import read_system_cfg
from lwa_common.errors import LwaError
from lwa_flag._ms import normalise_antenna_name

__all__ = ["Wiring", "load_wiring"]


@dataclass(frozen=True)
class Wiring:
    name: str
    corr_num: int
    snap2_location: int
    snap2_hostname: str
    arx_address: int
    arx_channels: tuple[int, int]
    used: bool

    @property
    def label(self) -> str:
        return f"{self.name} corr {self.corr_num} SNAP2 {self.snap2_location} ARX {self.arx_address}"


def load_wiring(system_cfg: str | Path) -> dict[str, Wiring]:
    """Normalised antenna name -> wiring, for every antenna in `system_cfg`."""
    path = Path(system_cfg)
    cfg = read_system_cfg(path)
    out: dict[str, Wiring] = {}
    for key, row in cfg.items():
        if not isinstance(row, dict):
            continue
        name = normalise_antenna_name(str(row.get("antname", key)))
        if name is None:
            continue
        try:
            out[name] = Wiring(
                name=name,
                corr_num=int(row.get("corr_num", -1)),
                snap2_location=int(row.get("snap2_location", -1)),
                snap2_hostname=str(row.get("snap2_hostname", "")),
                arx_address=int(row.get("arx_address", -1)),
                arx_channels=(int(row.get("pola_arx_channel", -1)), int(row.get("polb_arx_channel", -1))),
                used=bool(row.get("used", False)),
            )
        except (TypeError, ValueError):
            raise LwaError(f"system config {path}: antenna {key} has a non-integer wiring field") from None
    if not out:
        raise LwaError(f"system config {path} lists no LWA antennas")
    return out
