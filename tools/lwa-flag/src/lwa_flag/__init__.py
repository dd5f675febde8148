"""lwa-flag: flag OVRO-LWA measurement sets -- antenna health, AOFlagger RFI, hot baselines, bad
integrations from the pilot Stokes V snapshots.

The core functions take paths (or arrays) and keyword-only options; `lwa_flag.cli` is a thin click
layer over them::

    from lwa_common.config import HotBaselines
    from lwa_flag import find_hot_baselines, apply_hot_flags
    result = find_hot_baselines("obs.ms", settings=HotBaselines(sigma_uv=7.0))
    apply_hot_flags("obs_copy.ms", result)
"""

from lwa_flag.antennas import HealthList, flag_antennas, query_mnc, read_health_file, resolve_antennas
from lwa_flag.hot import (
    BaselineStats,
    HotBaselineResult,
    apply_hot_flags,
    baseline_stats,
    detect_hot_baselines,
    find_hot_baselines,
    write_flagged_csv,
)
from lwa_flag.integrations import (
    IntegrationResult,
    find_bad_integrations,
    flag_times,
    match_times,
    read_frames,
)
from lwa_flag.rfi import aoflagger_command, default_strategy, run_aoflagger
from lwa_flag.testing import concat_ms
from lwa_flag.wiring import Wiring, load_wiring

__all__ = [
    "HealthList",
    "read_health_file",
    "query_mnc",
    "resolve_antennas",
    "flag_antennas",
    "BaselineStats",
    "HotBaselineResult",
    "baseline_stats",
    "detect_hot_baselines",
    "find_hot_baselines",
    "apply_hot_flags",
    "write_flagged_csv",
    "IntegrationResult",
    "read_frames",
    "find_bad_integrations",
    "match_times",
    "flag_times",
    "default_strategy",
    "aoflagger_command",
    "run_aoflagger",
    "concat_ms",
    "Wiring",
    "load_wiring",
]
