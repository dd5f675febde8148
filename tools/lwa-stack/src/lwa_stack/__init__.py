"""lwa-stack: wideband stacks, thermal noise, 3-colour PNGs, gathered
detections, the run report and the archive of an OVRO-LWA run.

The core functions take paths or arrays and keyword-only options; the `lwa-stack` CLI is a thin layer
over them. Names are imported on first use (PEP 562), so the CLI starts without loading every module.
The wideband transient search is `lwa-transient search` run on the stacks (it takes them by header).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "archive": ("archive_run", "plan_archive", "sha256_file", "verify_manifest"),
    "color": ("COMPOSITES", "color_images", "rgb_composite", "stretch"),
    "gather": ("gather", "scan_run", "write_summary"),
    "mail": ("SmtpSettings", "build_message", "send_message", "smtp_settings"),
    "noise": ("NoiseRecord", "find_images", "measure_image", "measure_images", "read_noise_csv", "robust_rms",
              "write_noise_csv"),
    "report": ("build_report", "build_weblog", "qa_scores", "score_colour"),
    "browser": ("check_weblog",),
    "stack": ("Band", "bands_from_config", "plan_stacks", "regrid", "stack_arrays", "stack_name", "wideband"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lwa_stack' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lwa_stack.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
