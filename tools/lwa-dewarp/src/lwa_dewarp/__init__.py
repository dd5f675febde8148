"""lwa_dewarp: ionospheric dewarping of OVRO-LWA images.

`fit_screen` measures the offsets of compact sources against a reference catalogue (VLSSr) and
fits a smooth offset screen; `apply_screen` / `dewarp_images` resample images with its inverse.
Names are imported on first use, so that `lwa-dewarp --help` does not load scipy and photutils.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Beam",
    "DewarpedImage",
    "FitResult",
    "OffsetModel",
    "Screen",
    "apply_screen",
    "beam_from_header",
    "dewarp_images",
    "dewarped_path",
    "find_compact_sources",
    "fit_offset_model",
    "fit_screen",
    "match_catalog",
    "read_screen",
    "resample_nan_aware",
    "sample_screen",
    "write_fit_products",
    "write_screen",
]

_HOME = {
    "Beam": "extract", "beam_from_header": "extract", "find_compact_sources": "extract",
    "DewarpedImage": "apply", "apply_screen": "apply", "dewarp_images": "apply", "dewarped_path": "apply",
    "resample_nan_aware": "apply",
    "FitResult": "fit", "fit_screen": "fit", "write_fit_products": "fit",
    "match_catalog": "match",
    "OffsetModel": "screen", "Screen": "screen", "fit_offset_model": "screen", "read_screen": "screen",
    "sample_screen": "screen", "write_screen": "screen",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"lwa_dewarp.{_HOME[name]}"), name)
    raise AttributeError(f"module 'lwa_dewarp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
