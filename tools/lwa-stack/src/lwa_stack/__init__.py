"""lwa-stack: wideband stacks, thermal noise, 3-colour PNGs, gathered
detections, the run report and the archive of an OVRO-LWA run.

The core functions take paths or arrays and keyword-only options; the `lwa-stack` CLI is a thin layer
over them. Names are imported on first use (PEP 562), so the CLI starts without loading every module.
The wideband transient search is `lwa-transient search` run on the stacks (it takes them by header).
"""

from __future__ import annotations

from lwa_common.lazy import lazy_exports

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
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
