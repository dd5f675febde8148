"""The OVRO-LWA antenna table `system_cfg.yml` (ovro-lwa/lwa-antpos): positions and wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lwa_common.errors import LwaError

__all__ = ["read_system_cfg"]


def read_system_cfg(path: str | Path) -> dict[str, dict[str, Any]]:
    """Antenna key (LWA-001 ...) -> its row (antname, corr_num, latitude, ..., ARX / SNAP2 wiring)."""
    path = Path(path)
    try:
        cfg = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as err:
        raise LwaError(f"cannot read system config {path}: {err.strerror}") from None
    except yaml.YAMLError:
        raise LwaError(f"system config {path} is not valid YAML") from None
    if not isinstance(cfg, dict):
        raise LwaError(f"system config {path} is not a mapping of antennas")
    return {str(k): v for k, v in cfg.items() if isinstance(v, dict)}
