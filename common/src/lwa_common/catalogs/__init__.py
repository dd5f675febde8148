"""Sky models and reference catalogues: one frozen record per source, with its spectral law.

| module | reader | format | spectrum `flux_at(freq_hz)` |
|---|---|---|---|
| `ttcal` | `read_ttcal_sources` | TTCal sources.json (A-team models for peeling; RFI sources) | log-polynomial |
| `makesourcedb` | `read_makesourcedb` | makesourcedb / BBS / wsclean sky model text | log-polynomial, or ordinary polynomial when `LogarithmicSI` is false |
| `vlssr` | `read_vlssr` | VLSSr `FullVLSSCatalog.text` (73.8 MHz) | flat, or one spectral index you give |
| `cambridge` | `read_3c`, `read_4c` | LSL's 3c.dat (159 MHz) / 4c.dat (178 MHz), B1950 precessed to ICRS | flat, or one spectral index you give |
| `table` | `read_reference_csv`, `read_astropy_table` | CSV with ra / dec / flux columns; any table astropy reads | flat, or an `alpha` column |
| `reader` | `read_reference_catalog` | any of the above, chosen by content (`ACCEPTED_FORMATS`) | |

`model` holds the records (`CatalogSource`, `RfiSource`) and the spectral laws; `angles` the RA / Dec
parsing (astropy `Angle`). Bad input raises `LwaError` naming the file and the line (text formats)
or the source (JSON).
"""

from lwa_common.catalogs.angles import parse_angle_deg, parse_dec_deg, parse_ra_deg
from lwa_common.catalogs.cambridge import C3C_FREQ_HZ, C4C_FREQ_HZ, precess_b1950, read_3c, read_4c
from lwa_common.catalogs.makesourcedb import read_makesourcedb
from lwa_common.catalogs.model import (
    CatalogSource,
    RfiSource,
    fluxes_at,
    linear_polynomial_flux,
    log_polynomial_flux,
    source_coords,
)
from lwa_common.catalogs.reader import ACCEPTED_FORMATS, read_reference_catalog
from lwa_common.catalogs.table import read_astropy_table, read_reference_csv
from lwa_common.catalogs.ttcal import read_ttcal_sources
from lwa_common.catalogs.vlssr import VLSSR_FREQ_HZ, read_vlssr

__all__ = [
    "ACCEPTED_FORMATS",
    "C3C_FREQ_HZ",
    "C4C_FREQ_HZ",
    "CatalogSource",
    "RfiSource",
    "VLSSR_FREQ_HZ",
    "fluxes_at",
    "linear_polynomial_flux",
    "log_polynomial_flux",
    "parse_angle_deg",
    "parse_dec_deg",
    "parse_ra_deg",
    "precess_b1950",
    "read_3c",
    "read_4c",
    "read_astropy_table",
    "read_makesourcedb",
    "read_reference_catalog",
    "read_reference_csv",
    "read_ttcal_sources",
    "read_vlssr",
    "source_coords",
]
