"""lwa-calib: apply and solve OVRO-LWA bandpass + XY-phase calibration tables; check delays.

Core functions (no click needed): `apply_tables`, `solve`, `delay_check`, `gains_to_tables`,
`write_caltable`, `read_caltable`, `write_model_data`, `flag_solutions`. CASA is imported lazily
and configured offline (`lwa_calib.casa_env`).
"""

from lwa_calib.apply import ApplyResult, apply_tables
from lwa_calib.caltables import CalTable, gains_to_tables, read_caltable, read_true_gains, write_caltable
from lwa_calib.delay import DelayReport, compare_delays, delay_check
from lwa_calib.flagging import FlagResult, flag_solutions, interpolate_flagged
from lwa_calib.skymodel import load_components, predict_visibilities, write_model_data
from lwa_calib.solve import SolveResult, SolveSettings, solve

__all__ = [
    "ApplyResult",
    "apply_tables",
    "CalTable",
    "gains_to_tables",
    "read_caltable",
    "read_true_gains",
    "write_caltable",
    "DelayReport",
    "compare_delays",
    "delay_check",
    "FlagResult",
    "flag_solutions",
    "interpolate_flagged",
    "load_components",
    "predict_visibilities",
    "write_model_data",
    "SolveResult",
    "SolveSettings",
    "solve",
]
