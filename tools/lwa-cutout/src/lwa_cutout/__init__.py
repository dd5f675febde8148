"""lwa-cutout: photometry on self-describing OVRO-LWA images.

Importable without click: `run_targets`, `run_solar_system`, `flux_check` (whole commands);
`find_sets` / `select_sets` (choose images by header); `measure_position` (the measurement core);
`run_photometry` with your own `Subject`s.
"""

from lwa_cutout.fluxcheck import Calibrator, FluxCheckResult, flux_check, load_calibrators, perley_butler_flux
from lwa_cutout.images import ImageSet, find_sets, scan_images, select_sets
from lwa_cutout.measure import GaussianFit, Measurement, RestoringBeam, measure_position, search_radius_deg
from lwa_cutout.photometry import PhotometrySettings, Placement, Subject, SubjectResult, run_photometry
from lwa_cutout.solar import BODIES, ephemeris, run_solar_system
from lwa_cutout.targets import TargetsRun, run_targets

__all__ = [
    "BODIES",
    "Calibrator",
    "FluxCheckResult",
    "GaussianFit",
    "ImageSet",
    "Measurement",
    "PhotometrySettings",
    "Placement",
    "RestoringBeam",
    "Subject",
    "SubjectResult",
    "TargetsRun",
    "ephemeris",
    "find_sets",
    "flux_check",
    "load_calibrators",
    "measure_position",
    "perley_butler_flux",
    "run_photometry",
    "run_solar_system",
    "run_targets",
    "scan_images",
    "search_radius_deg",
    "select_sets",
]
