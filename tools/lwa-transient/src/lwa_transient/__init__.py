"""lwa-transient: blind Stokes V and Stokes I difference-image transient search for OVRO-LWA."""

from lwa_transient.detect import BilobeRule, Peak, bilobe_partner, find_peaks
from lwa_transient.masks import ATEAM_J2000, AteamSource, ateam_mask, bright_source_mask, cap_mask
from lwa_transient.rms import local_background_rms
from lwa_transient.search import (
    CSV_COLUMNS,
    Candidate,
    SearchParams,
    SearchResult,
    mirror_value,
    read_candidates,
    search_images,
    trend_prediction,
    twin_centre,
)

__all__ = [
    "search_images",
    "SearchParams",
    "SearchResult",
    "Candidate",
    "CSV_COLUMNS",
    "read_candidates",
    "trend_prediction",
    "mirror_value",
    "twin_centre",
    "local_background_rms",
    "find_peaks",
    "bilobe_partner",
    "BilobeRule",
    "Peak",
    "bright_source_mask",
    "ateam_mask",
    "cap_mask",
    "AteamSource",
    "ATEAM_J2000",
]
