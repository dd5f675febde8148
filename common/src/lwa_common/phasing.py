"""Phase centres of an MS: read them, choose one, rotate visibilities to it (numpy over python-casacore).

The one implementation of the phase rotation, used by `lwa-image rephase` (when chgcentre is not
on PATH, and always for MS with several fields) and by the MS concatenation (`lwa_common.msconcat`).

For a baseline b (metres, equatorial frame) and phase centre p the MS holds ``uvw = R(p) b``
(rows of R: the u, v, w unit vectors of p). The visibilities on disk relate to those UVW as
``V = sum S exp(+2 pi i (u l + v m + w (n - 1)))`` -- the convention wsclean images correctly,
checked here with a direct Fourier sum over a simulated MS -- so ``V = sum S exp(2 pi i (b.s - b.p))``
and moving to p' means ``uvw' = R(p') R(p)^T uvw`` and ``V' = V exp(-2 pi i (w' - w) / lambda)``.
The tests check it by imaging with wsclean: sources at their true positions, and the same image
as wsclean's own ``-shift``. Rows of different fields are rotated from their own phase centre;
the result has one field.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, SkyCoord

from lwa_common.config import Site
from lwa_common.errors import LwaError
from lwa_common.ms import ms_time_range, open_table
from lwa_common.site import lst_hours, meridian_phase_centre

__all__ = [
    "PHASE_SIGN",
    "CHUNK_BYTES",
    "VIS_COLUMNS",
    "uvw_frame",
    "rephase_visibilities",
    "rephase_chunk",
    "parse_centre",
    "lst_hour_centre",
    "mid_time_centre",
    "resolve_centre",
    "format_centre",
    "field_directions",
    "set_one_field",
    "rephase_rows",
    "at_centre",
]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
PHASE_SIGN = -1.0
"""Sign of the phase rotation V' = V exp(PHASE_SIGN 2 pi i (w' - w) / lambda) (MS convention)."""
VIS_COLUMNS = ("DATA", "CORRECTED_DATA", "MODEL_DATA")
"""Visibility columns rotated when present."""
CHUNK_BYTES = 256 * 2**20
IN_PROGRESS_KEY = "LWA_REPHASE_IN_PROGRESS"
_TOLERANCE_RAD = 1e-10


def uvw_frame(ra_rad: float, dec_rad: float) -> np.ndarray:
    """3x3 matrix whose rows are the u, v, w unit vectors of the direction (ra, dec)."""
    sa, ca, sd, cd = np.sin(ra_rad), np.cos(ra_rad), np.sin(dec_rad), np.cos(dec_rad)
    return np.array([[-sa, ca, 0.0], [-sd * ca, -sd * sa, cd], [cd * ca, cd * sa, sd]])


def rephase_visibilities(uvw: np.ndarray, columns: Sequence[np.ndarray], freqs_hz: np.ndarray,
                         old_dir: tuple[float, float], new_dir: tuple[float, float]) -> np.ndarray:
    """New uvw (rows, 3) for `new_dir`; every array in `columns` (rows, chan, pol) is rotated in place.

    Directions are (ra, dec) in radians.
    """
    rot = uvw_frame(*new_dir) @ uvw_frame(*old_dir).T
    new_uvw = np.asarray(uvw, dtype=np.float64) @ rot.T
    dw = new_uvw[:, 2] - uvw[:, 2]
    phase = (PHASE_SIGN * 2.0 * np.pi / C_M_S) * dw[:, None] * np.asarray(freqs_hz, dtype=np.float64)[None, :]
    phasor = np.exp(1j * phase)
    for data in columns:
        data *= phasor[:, :, None].astype(data.dtype, copy=False)
    return new_uvw


def rephase_chunk(uvw: np.ndarray, columns: Sequence[np.ndarray], field_ids: np.ndarray, freqs_hz: np.ndarray,
                  field_dirs: np.ndarray, new_dir: tuple[float, float]) -> tuple[np.ndarray, int]:
    """Rotate rows of several fields (one spectral window) to `new_dir`; columns change in place.

    `field_dirs` is (n_fields, 2) radians, indexed by `field_ids`. Returns (new uvw, rows changed);
    rows already at `new_dir` are left alone.
    """
    uvw = np.array(uvw, dtype=np.float64)
    changed = 0
    for f in np.unique(field_ids):
        old = (float(field_dirs[f, 0]), float(field_dirs[f, 1]))
        if abs(old[0] - new_dir[0]) < _TOLERANCE_RAD and abs(old[1] - new_dir[1]) < _TOLERANCE_RAD:
            continue
        sel = np.flatnonzero(field_ids == f)
        whole = sel.size == uvw.shape[0]
        subs = list(columns) if whole else [c[sel] for c in columns]
        uvw[sel] = rephase_visibilities(uvw[sel], subs, freqs_hz, old, new_dir)
        if not whole:
            for col, sub in zip(columns, subs):
                col[sel] = sub
        changed += sel.size
    return uvw, changed


_SEXA = re.compile(r"^\s*(\S+)\s*[, ]\s*(\S+)\s*$")


def parse_centre(text: str) -> SkyCoord:
    """'10h30m00s +37d12m57s', '10:30:00 37:12:57' (hours, degrees) or '157.5 37.2' (degrees)."""
    match = _SEXA.match(text or "")
    if not match:
        raise LwaError(f"--centre '{text}' is not 'RA DEC' (e.g. '10h30m00s +37d12m57s' or '157.5 37.216')")
    ra_txt, dec_txt = match.groups()
    try:
        if re.fullmatch(r"[+-]?\d+(\.\d*)?", ra_txt):
            ra = Angle(float(ra_txt), unit=u.deg)
        else:
            ra = Angle(ra_txt, unit=u.hourangle)
        dec = Angle(dec_txt, unit=u.deg)
    except (ValueError, u.UnitsError):
        raise LwaError(f"--centre '{text}' cannot be read as RA DEC") from None
    if not -90 <= dec.deg <= 90:
        raise LwaError(f"--centre '{text}': declination outside -90..90 deg")
    return SkyCoord(ra=ra.wrap_at(360 * u.deg), dec=dec, frame="icrs")


def lst_hour_centre(lst_hour: float, site: Site | None = None) -> SkyCoord:
    """The meridian at the middle of the LST hour starting at `lst_hour` (10 -> 10h30m), OVRO latitude."""
    if not 0 <= lst_hour < 24:
        raise LwaError(f"--lst-hour {lst_hour} outside 0..24")
    return meridian_phase_centre(lst_hour, lst_hour + 1.0, site)


def mid_time_centre(ms_paths: Sequence[str | Path], site: Site | None = None) -> SkyCoord:
    """The meridian at the LST of the middle of the data in `ms_paths`, at the OVRO latitude."""
    starts, ends = zip(*(ms_time_range(p) for p in ms_paths))
    start, end = min(starts), max(ends)
    lst = float(lst_hours(start + (end - start) / 2, site))
    return meridian_phase_centre(lst, lst, site)


def resolve_centre(*, centre: str | SkyCoord | None, lst_hour: float | None, ms_paths: Sequence[str | Path],
                   site: Site | None = None) -> SkyCoord:
    """--centre wins, then --lst-hour, else the meridian at the middle of the data."""
    if centre is not None and lst_hour is not None:
        raise LwaError("give either --centre or --lst-hour, not both")
    if isinstance(centre, SkyCoord):
        return centre.icrs
    if centre is not None:
        return parse_centre(centre)
    if lst_hour is not None:
        return lst_hour_centre(lst_hour, site)
    return mid_time_centre(ms_paths, site)


def format_centre(centre: SkyCoord) -> str:
    return centre.to_string("hmsdms", precision=2)


def field_directions(ms: str | Path) -> np.ndarray:
    """PHASE_DIR (ra, dec) in radians per FIELD row, shape (n_fields, 2); ICRS/J2000 only."""
    with open_table(Path(ms) / "FIELD") as ft:
        ref = ft.getcolkeywords("PHASE_DIR").get("MEASINFO", {}).get("Ref", "J2000")
        if str(ref).upper() not in ("J2000", "ICRS"):
            raise LwaError(f"{ms}: FIELD PHASE_DIR is in {ref}; only J2000/ICRS phase centres are supported")
        dirs = np.asarray(ft.getcol("PHASE_DIR"), dtype=float)
        if "NUM_POLY" in ft.colnames() and np.any(ft.getcol("NUM_POLY") > 0):
            log.warning("%s: time-variable PHASE_DIR polynomials; using their constant terms", ms)
    return dirs[:, 0, :]


def _spw_freqs(ms: Path) -> dict[int, np.ndarray]:
    """DATA_DESC_ID -> channel frequencies."""
    with open_table(ms / "DATA_DESCRIPTION") as dd:
        spw_ids = dd.getcol("SPECTRAL_WINDOW_ID")
    with open_table(ms / "SPECTRAL_WINDOW") as sw:
        freqs = [np.asarray(sw.getcell("CHAN_FREQ", int(i)), dtype=float) for i in range(sw.nrows())]
    return {ddid: freqs[int(spw)] for ddid, spw in enumerate(spw_ids)}


def _chunk_rows(nchan: int, npol: int, ncols: int) -> int:
    return max(1024, CHUNK_BYTES // max(1, nchan * npol * 8 * max(ncols, 1)))


def set_one_field(ms: Path, centre: SkyCoord) -> None:
    """One field at `centre`: all direction columns, extra rows removed, SOURCE directions too."""
    new = np.array([centre.ra.rad, centre.dec.rad])
    with open_table(ms / "FIELD", readonly=False) as ft:
        for row in range(ft.nrows()):
            for col in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
                if col in ft.colnames():
                    ft.putcell(col, row, new[None, :])
            if "NUM_POLY" in ft.colnames():
                ft.putcell("NUM_POLY", row, 0)
        if ft.nrows() > 1:
            ft.removerows(list(range(1, ft.nrows())))
        source_id = int(ft.getcell("SOURCE_ID", 0)) if "SOURCE_ID" in ft.colnames() else -1
    src = ms / "SOURCE"
    if src.exists():
        with open_table(src, readonly=False) as st:
            if st.nrows() and "DIRECTION" in st.colnames():
                ids = st.getcol("SOURCE_ID")
                for row in np.flatnonzero((ids == source_id) | (st.nrows() == 1)):
                    st.putcell("DIRECTION", int(row), new)


def rephase_rows(ms: Path, centre: SkyCoord, *, collapse_fields: bool = True) -> int:
    """Rotate every row of `ms` (writable, in place) to `centre`; returns rows changed."""
    dirs = field_directions(ms)
    new = (float(centre.ra.rad), float(centre.dec.rad))
    freqs = _spw_freqs(ms)
    changed = 0
    with open_table(ms, readonly=False) as t:
        if IN_PROGRESS_KEY in t.getkeywords():
            raise LwaError(f"{ms}: an earlier in-place rephase was interrupted; the MS is inconsistent, "
                           "recreate it from its inputs")
        cols = [c for c in VIS_COLUMNS if c in t.colnames()]
        nrows = t.nrows()
        t.putkeyword(IN_PROGRESS_KEY, True)
        t.flush()
        nchan = max(f.size for f in freqs.values())
        step = _chunk_rows(nchan, 4, len(cols))
        for start in range(0, nrows, step):
            n = min(step, nrows - start)
            field = t.getcol("FIELD_ID", start, n)
            ddid = t.getcol("DATA_DESC_ID", start, n)
            uvw = t.getcol("UVW", start, n)
            data = {c: t.getcol(c, start, n) for c in cols}
            rows = 0
            for d in np.unique(ddid):
                sel = np.flatnonzero(ddid == d)
                whole = sel.size == n
                subs = [data[c] if whole else data[c][sel] for c in cols]
                new_uvw, k = rephase_chunk(uvw[sel], subs, field[sel], freqs[int(d)], dirs, new)
                if k:
                    uvw[sel] = new_uvw
                    if not whole:
                        for c, sub in zip(cols, subs):
                            data[c][sel] = sub
                rows += k
            if rows:
                t.putcol("UVW", uvw, start, n)
                for c in cols:
                    t.putcol(c, data[c], start, n)
            changed += rows
        if collapse_fields and len(dirs) > 1:
            t.putcol("FIELD_ID", np.zeros(nrows, dtype=np.int32))
    set_one_field(ms, centre)
    with open_table(ms, readonly=False) as t:
        t.removekeyword(IN_PROGRESS_KEY)
    return changed


def at_centre(dirs: np.ndarray, centre: SkyCoord) -> bool:
    """True when the MS of FIELD directions `dirs` has one field, at `centre`."""
    new = np.array([centre.ra.rad, centre.dec.rad])
    return dirs.shape[0] == 1 and bool(np.all(np.abs(dirs[0] - new) < _TOLERANCE_RAD))
