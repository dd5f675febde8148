"""lwa-sim: small OVRO-LWA-like observations with a known truth, for tests and demos."""

from lwa_sim.observe import ObserveSettings, observe
from lwa_sim.spec import TruthSpec, load_spec, parse_spec

__all__ = ["ObserveSettings", "observe", "TruthSpec", "load_spec", "parse_spec"]
