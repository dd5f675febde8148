"""lwa-transient: blind Stokes V and Stokes I difference-image transient search for OVRO-LWA."""

from lwa_transient.candidates import CSV_COLUMNS, Candidate, SearchResult, read_candidates
from lwa_transient.detect import BilobeRule, Peak, bilobe_partner, find_peaks
from lwa_transient.masks import ATEAM_J2000, AteamSource, ateam_mask, bright_source_mask, cap_mask
from lwa_transient.rms import local_background_rms
from lwa_transient.rules import trend_prediction
from lwa_transient.search import search_images
from lwa_transient.settings import SearchOptions
from lwa_transient.sidelobes import mirror_value, twin_centre

__all__ = [
    "search_images",
    "SearchOptions",
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
