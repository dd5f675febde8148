"""lwa-flag: flag OVRO-LWA measurement sets -- antenna health, AOFlagger RFI, hot baselines, bad
integrations from the pilot Stokes V snapshots.

The core functions take paths (or arrays) and keyword-only options; `lwa_flag.cli` is a thin click
layer over them::

    from lwa_common.config import HotBaselines
    from lwa_flag import find_hot_baselines, apply_hot_flags
    result = find_hot_baselines("obs.ms", settings=HotBaselines(sigma_uv=7.0))
    apply_hot_flags("obs_copy.ms", result)

Names are imported on first use (PEP 562), so `lwa-flag rfi` starts without loading scipy.stats and
the other passes' modules.
"""

from __future__ import annotations

from lwa_common.lazy import lazy_exports

_EXPORTS = {
    "antennas": ("HealthList", "flag_antennas", "query_mnc", "read_health_file", "resolve_antennas"),
    "hot": ("BaselineStats", "HotBaselineResult", "apply_hot_flags", "baseline_stats", "detect_hot_baselines",
            "find_hot_baselines", "write_flagged_csv"),
    "integrations": ("IntegrationResult", "find_bad_integrations", "flag_times", "match_times", "read_frames"),
    "rfi": ("aoflagger_command", "default_strategy", "run_aoflagger"),
    "testing": ("concat_ms",),
    "wiring": ("Wiring", "load_wiring"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
