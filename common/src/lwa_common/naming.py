"""Names: OVRO-LWA MS file names and IAU-style J-names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lwa_common.errors import LwaError

if TYPE_CHECKING:  # annotations only: importing astropy.coordinates costs a CLI 0.1-0.2 s at start, astropy.time
    # (and astropy.units) 0.2 s: parse_ms_name imports it when it makes a Time
    from astropy.coordinates import SkyCoord
    from astropy.time import Time

__all__ = ["MsName", "MS_NAME_FORMS", "parse_ms_name", "format_ms_name", "jname", "jname_short", "subband_label"]

# the observatory's names: plain or frequency-averaged MS, either possibly tarred (older hours)
_MS_RE = re.compile(r"^(\d{8})_(\d{6})_(\d+)MHz(_averaged)?\.ms(\.tar)?$")
MS_NAME_FORMS = "YYYYMMDD_HHMMSS_XXMHz.ms, YYYYMMDD_HHMMSS_XXMHz_averaged.ms, either + .tar"


@dataclass(frozen=True)
class MsName:
    time: Time
    subband_mhz: int
    averaged: bool = False
    tarred: bool = False

    @property
    def ms_name(self) -> str:
        """The MS folder's name (a tar's name without `.tar`)."""
        return format_ms_name(self.time, self.subband_mhz, averaged=self.averaged)

    @property
    def subband(self) -> str:
        return subband_label(self.subband_mhz)


def subband_label(mhz: int | float) -> str:
    return f"{int(round(mhz))}MHz"


def parse_ms_name(name: str) -> MsName:
    """'20241220_103000_55MHz.ms' -> MsName(time, 55); also `..._55MHz_averaged.ms` and `.ms.tar`."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    match = _MS_RE.match(base)
    try:
        stamp = datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S") if match else None
    except ValueError:
        stamp = None
    if stamp is None:
        raise LwaError(f"'{base}' is not an OVRO-LWA MS name ({MS_NAME_FORMS})")
    from astropy.time import Time

    return MsName(Time(stamp, scale="utc"), int(match.group(3)), averaged=bool(match.group(4)),
                  tarred=bool(match.group(5)))


def format_ms_name(time: Time, subband_mhz: int | float, *, averaged: bool = False) -> str:
    stamp = time.utc.datetime.strftime("%Y%m%d_%H%M%S")
    return f"{stamp}_{subband_label(subband_mhz)}{'_averaged' if averaged else ''}.ms"


def _parts(coord: SkyCoord) -> tuple[str, str]:
    ra = coord.icrs.ra.hms
    dec = coord.icrs.dec
    sign = "-" if dec.deg < 0 else "+"
    d, m, s = (abs(x) for x in dec.signed_dms[1:])
    # truncate (IAU convention), never round up into 60
    ra_txt = f"{int(ra.h):02d}{int(ra.m):02d}{int(ra.s):02d}"
    dec_txt = f"{sign}{int(d):02d}{int(m):02d}{int(s):02d}"
    return ra_txt, dec_txt


def jname(coord: SkyCoord) -> str:
    """Full J-name, e.g. J055312+312045."""
    ra_txt, dec_txt = _parts(coord)
    return f"J{ra_txt}{dec_txt}"


def jname_short(coord: SkyCoord) -> str:
    """Folder J-name, e.g. J0553+31 (hhmm, signed whole degrees)."""
    ra_txt, dec_txt = _parts(coord)
    return f"J{ra_txt[:4]}{dec_txt[:3]}"
