"""Angles of catalogue and target files: degrees or sexagesimal text, parsed by astropy's `Angle`.

Numbers are degrees ("83.63", "83.63deg"; "1.2rad" in radians). Text with unit letters is read as
it says ("05h34m31.9s" hours, "+22d00m52s" degrees). Colon- or space-separated sexagesimal without
unit letters ("05:34:31.9", "05 34 31.9") is hours for RA and degrees for Dec; makesourcedb's
dotted "48.13.00.061" is always degrees. Minutes or seconds of 60 or more are errors.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import astropy.units as u
from astropy.coordinates import Angle

from lwa_common.errors import LwaError

__all__ = ["parse_ra_deg", "parse_dec_deg", "parse_angle_deg"]

_DOTTED_RE = re.compile(r"([+-]?\d+)\.(\d+)\.(\d+(?:\.\d*)?)")  # makesourcedb degrees: dd.mm.ss[.sss]
_UNIT_LETTERS = re.compile(r"[hdmsr\u00b0\u2032\u2033'\"]|deg|rad", re.IGNORECASE)


def parse_angle_deg(value: Any, *, sexagesimal_unit: u.Unit, what: str = "angle") -> float:
    """Degrees from a number or a text (module doc); `sexagesimal_unit` for bare h:m:s / d:m:s."""
    if isinstance(value, bool):
        raise LwaError(f"cannot parse {what} {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise LwaError(f"cannot parse {what} {value!r}: not a finite number")
        return float(value)
    text = str(value).strip().strip("'\"").strip().replace("\u2212", "-")
    if not text:
        raise LwaError(f"{what} is empty")
    try:
        return float(text)
    except ValueError:
        pass
    dotted = _DOTTED_RE.fullmatch(text)
    if dotted:
        text, unit = ":".join(dotted.groups()), u.deg
    else:
        unit = None if _UNIT_LETTERS.search(text) else sexagesimal_unit
    hint = "05h34m31.9s / 05:34:31.9" if sexagesimal_unit == u.hourangle else "+22d00m52s / +22:00:52"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns (not fails) on 60 seconds
            degrees = Angle(text, unit=unit).to_value(u.deg)
    except (ValueError, TypeError, u.UnitsError, Warning) as err:
        raise LwaError(f"cannot parse {what} '{text}' (expected degrees like 83.63 or sexagesimal like {hint}):"
                       f" {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not math.isfinite(degrees):
        raise LwaError(f"cannot parse {what} '{text}': not finite")
    return float(degrees)


def parse_ra_deg(value: Any) -> float:
    """Right ascension in degrees, in [0, 360): numbers are degrees, h:m:s and 'h m s' are hours.

    A negative value (wsclean writes RA -04:00:29.9) wraps round. Raises `LwaError`.

    >>> round(parse_ra_deg("05h34m31.94s"), 6), parse_ra_deg("83.5")
    (83.633083, 83.5)
    """
    degrees = parse_angle_deg(value, sexagesimal_unit=u.hourangle, what="RA")
    if not -360.0 <= degrees <= 360.0:
        raise LwaError(f"RA {value!r} is outside [0h, 24h) / [0, 360) deg")
    return degrees % 360.0


def parse_dec_deg(value: Any) -> float:
    """Declination in degrees: numbers are degrees, d:m:s / 'd m s' / d.m.s are degrees.

    >>> round(parse_dec_deg("-00:30:00"), 6), round(parse_dec_deg("+48.13.00.061"), 6)
    (-0.5, 48.216684)
    """
    degrees = parse_angle_deg(value, sexagesimal_unit=u.deg, what="Dec")
    if not -90.0 <= degrees <= 90.0:
        raise LwaError(f"Dec {value!r} is outside [-90, 90] deg")
    return degrees
