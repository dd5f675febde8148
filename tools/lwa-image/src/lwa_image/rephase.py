"""Move the phase centre of an MS (e.g. to the meridian of an LST hour at the OVRO latitude).

wsclean's companion `chgcentre` does this, but Debian's wsclean package does not ship it, so the
rotation (`lwa_common.phasing`, which also says how it is checked) is used whenever chgcentre is
not on PATH, and always for MS with several fields, which chgcentre would leave as several fields.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import astropy.units as u
from astropy.coordinates import SkyCoord

from lwa_common.errors import LwaError
from lwa_common.ms import check_ms, check_ms_output, ms_output
from lwa_common.phasing import at_centre, field_directions, format_centre, rephase_rows
from lwa_common.provenance import stamp_ms

__all__ = ["rephase_ms"]

log = logging.getLogger(__name__)

_NOTHING_DONE = "already at the centre"


def _chgcentre(ms: Path, centre: SkyCoord) -> str:
    exe = shutil.which("chgcentre")
    if exe is None:
        raise LwaError("chgcentre not found on PATH (Debian's wsclean lacks it); use --method numpy")
    ra = centre.ra.to_string(unit=u.hourangle, sep="hms", precision=3, pad=True)
    dec = centre.dec.to_string(unit=u.deg, sep="dms", precision=2, alwayssign=True, pad=True)
    cmd = [exe, str(ms), ra, dec]
    text = " ".join(["chgcentre", str(ms), ra, dec])
    log.info("running: %s", text)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise LwaError(f"chgcentre failed on {ms} (exit {proc.returncode}): {last}")
    return text


def _choose_method(method: str, n_fields: int) -> str:
    if method not in ("auto", "numpy", "chgcentre"):
        raise LwaError(f"unknown rephase method '{method}' (auto, numpy, chgcentre)")
    if method == "auto":
        return "chgcentre" if shutil.which("chgcentre") and n_fields == 1 else "numpy"
    if method == "chgcentre" and n_fields > 1:
        raise LwaError("chgcentre keeps several fields; use --method numpy for an MS with several fields")
    return method


def _rephase_path(ms: Path, centre: SkyCoord, method: str) -> str:
    dirs = field_directions(ms)
    n_fields = dirs.shape[0]
    if at_centre(dirs, centre):
        log.info("%s is already phased to %s; nothing to do", ms, format_centre(centre))
        return _NOTHING_DONE
    how = _choose_method(method, n_fields)
    t0 = time.perf_counter()
    if how == "chgcentre":
        note = _chgcentre(ms, centre)
    else:
        rows = rephase_rows(ms, centre)
        note = f"numpy rotation of {rows} rows"
    log.info("rephased %s to %s (%s) in %.1f s", ms, format_centre(centre), note, time.perf_counter() - t0)
    return note


def rephase_ms(ms: str | Path, *, centre: SkyCoord, output: str | Path | None = None, in_place: bool = False,
               method: str = "auto", overwrite: bool = False) -> Path:
    """Rephase `ms` to `centre` (ICRS): into a copy at `output`, or in place when `in_place`.

    `method`: 'auto' (chgcentre when on PATH and the MS has one field, else numpy), 'numpy',
    'chgcentre'. Returns the rephased MS. An MS already at `centre` is left as is (rerun-safe).
    """
    ms = Path(ms)
    final = check_ms_output(ms, output, in_place=in_place, overwrite=overwrite)
    check_ms(ms, need_pols=())  # rows, readable columns, subtables: before any copy
    dirs = field_directions(ms)
    _choose_method(method, dirs.shape[0])
    message = f"lwa-image rephase to {format_centre(centre)}"
    with ms_output(ms, output, in_place=in_place, overwrite=overwrite) as target:
        # in place, an MS already at the centre is not touched (not even its HISTORY): reruns are no-ops
        if _rephase_path(target, centre, method) != _NOTHING_DONE or not in_place:
            stamp_ms(target, tool="lwa-image", message=message)
    return final
