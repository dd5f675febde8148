"""lwa-peel: subtract bright sky sources and terrestrial RFI from OVRO-LWA visibilities.

TTCal-format source models (`lwa_common.catalogs.read_ttcal_sources`) become a DP3 sky model with
one direction per source; DP3 DDECal solves a gain per antenna per direction and subtracts the
corrupted model. `peel_ms` is the whole step for one MS, callable without click; `refine_model`
refines the sources' models once from a few MS of a subband-hour for every MS's peel.
"""

from lwa_peel.hourmodel import RefinedModel, refine_model
from lwa_peel.model import (
    Component,
    Direction,
    Skipped,
    fit_log_spectrum,
    rfi_azel,
    rfi_directions,
    sky_directions,
    skymodel_text,
    write_skymodel,
)
from lwa_peel.peel import PeelResult, ms_info, peel_ms, product_paths

__all__ = [
    "Component",
    "Direction",
    "Skipped",
    "PeelResult",
    "RefinedModel",
    "fit_log_spectrum",
    "ms_info",
    "peel_ms",
    "product_paths",
    "refine_model",
    "rfi_azel",
    "rfi_directions",
    "sky_directions",
    "skymodel_text",
    "write_skymodel",
]
