"""Where the field sources really are: their positions fitted on the data after a first peel.

A reference catalogue gives true positions; the ionosphere moves every source by arcminutes (8'
and more at 55 MHz), differently across the sky. Kept fixed at its catalogue positions, the field
model is then wrong by a fringe on every baseline (a 70 Jy source 8' off is half wrong at 40
wavelengths), and the A-team solve fits that error: at demo size this was most of what peeling
left (the A-team power left fell from 1.9e-7 to 2.8e-8 with the true field positions, and to
1.2e-7 only with the true A-team model; measured on the `ateam_peel` sky).

So `lwa-peel sky --field` peels twice: the first pass removes the A-team (field at catalogue
positions); on its output each field component brighter than `min_flux_jy` is moved to where the
data put it (Stokes I of the cross-correlations, the other field components subtracted): a grid
search of the dirty image within `max_offset_arcmin` on channel-averaged visibilities, then
Gauss-Newton on every channel for the offset and an amplitude scale (catalogue fluxes are off by
their errors and by the assumed spectral index), both applied. A fit that runs to the edge of the
search or finds a scale outside [0.5, 2] keeps the catalogue position and flux. The second pass peels the original data with the
moved field.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from lwa_common.ms import open_table
from lwa_common.sky import direction_cosines
from lwa_peel.model import Direction

__all__ = ["FieldFit", "refine_field"]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
_GN_ITERATIONS = 6
_SCALE_RANGE = (0.5, 2.0)
_BLOCKS = 16  # channel groups the fit runs on (bandwidth smearing within one: < 1e-3 rad)
_SWEEPS = 2  # the first fits see the others at their catalogue positions; the second does not


@dataclasses.dataclass(frozen=True)
class FieldFit:
    """One field component's fit: offset (arcmin, RA*cos(Dec) and Dec) and amplitude scale."""

    name: str
    flux_jy: float
    d_ra_arcmin: float
    d_dec_arcmin: float
    scale: float
    moved: bool


def _read(ms: Path, column: str, uv_min_lambda: float):
    """Stokes I of the unflagged cross-correlations, UVW (m), frequencies, the phase centre."""
    with open_table(ms) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        keep = a1 != a2
        data = t.getcol(column)[keep]
        flags = t.getcol("FLAG")[keep]
        uvw = t.getcol("UVW")[keep]
    with open_table(ms / "SPECTRAL_WINDOW") as t:
        freqs = np.asarray(t.getcell("CHAN_FREQ", 0), dtype=float)
    with open_table(ms / "FIELD") as t:
        ra0, dec0 = (float(v) for v in t.getcell("PHASE_DIR", 0)[0])
    vis = 0.5 * (data[..., 0] + data[..., -1])
    good = ~(flags[..., 0] | flags[..., -1])
    uv_len = np.hypot(uvw[:, 0], uvw[:, 1])[:, None] * freqs[None, :] / C_M_S
    weight = (good & (uv_len >= uv_min_lambda)).astype(float)
    return np.where(weight > 0, vis, 0).astype(np.complex64), weight.astype(np.float32), uvw, freqs, (ra0, dec0)


def _lmn(ra_deg: float, dec_deg: float, centre: tuple[float, float]) -> np.ndarray:
    return np.array(direction_cosines(np.radians(ra_deg), np.radians(dec_deg), *centre), dtype=float)


def _radec(lmn: np.ndarray, centre: tuple[float, float]) -> tuple[float, float]:
    """(RA, Dec) in degrees of direction cosines (l, m) about `centre` (inverse SIN projection)."""
    ra0, dec0 = centre
    l, m = float(lmn[0]), float(lmn[1])  # noqa: E741
    n = np.sqrt(max(1.0 - l * l - m * m, 0.0))
    dec = np.arcsin(m * np.cos(dec0) + n * np.sin(dec0))
    ra = ra0 + np.arctan2(l, n * np.cos(dec0) - m * np.sin(dec0))
    return float(np.degrees(ra) % 360.0), float(np.degrees(dec))


def _phase(uvw: np.ndarray, freqs: np.ndarray, lmn: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
    """exp(2 pi i tau nu / c): the visibility of a unit point source at `lmn` (lwa-sim / DP3 sign),
    phased to `origin` (default the phase centre). Evenly spaced channels take a running product
    instead of an exponential per channel."""
    origin = np.array([0.0, 0.0, 1.0]) if origin is None else origin
    tau = uvw @ (np.asarray(lmn) - origin) * (2 * np.pi / C_M_S)
    step = np.diff(freqs)
    if freqs.size < 3 or not np.allclose(step, step[0], rtol=1e-9, atol=0):
        return np.exp(1j * tau[:, None] * freqs[None, :])
    out = np.empty((tau.size, freqs.size), dtype=complex)
    out[:, 0] = np.exp(1j * tau * freqs[0])
    out[:, 1:] = np.exp(1j * tau * step[0])[:, None]
    return np.cumprod(out, axis=1, out=out)


def _with_n(l: float, m: float) -> np.ndarray:  # noqa: E741
    return np.array([l, m, np.sqrt(max(1.0 - l * l - m * m, 0.0))])


def _blocks(rotated: np.ndarray, weight: np.ndarray, freqs: np.ndarray, spectrum: np.ndarray):
    """Sums over up to `_BLOCKS` groups of channels of data phased to the source (it barely moves
    within a group), with the groups' weights, mean frequencies and mean spectrum."""
    starts = np.unique(np.linspace(0, freqs.size, min(_BLOCKS, freqs.size) + 1).astype(int)[:-1])
    counts = np.diff(np.append(starts, freqs.size))
    return (np.add.reduceat(rotated, starts, axis=1), np.add.reduceat(weight, starts, axis=1),
            np.add.reduceat(freqs, starts) / counts, np.add.reduceat(spectrum, starts) / counts)


def _grid_search(vis, weight, uvw, freqs, spectrum, lmn, max_offset_rad) -> np.ndarray:
    """Peak of the dirty image (channel blocks summed at their mean frequency) of `vis`, phased to
    `lmn`, within `max_offset_rad` of it."""
    mid = float(np.mean(freqs))
    summed = (vis * spectrum[None, :]).sum(axis=1)
    u = (uvw[:, 0] - uvw[:, 2] * lmn[0] / lmn[2]) * mid / C_M_S
    v = (uvw[:, 1] - uvw[:, 2] * lmn[1] / lmn[2]) * mid / C_M_S
    used = weight.sum(axis=1) > 0
    uv_max = float(np.max(np.hypot(u[used], v[used]))) if np.any(used) else 1.0
    step = min(1.0 / (4.0 * uv_max), max_offset_rad / 4.0)
    n = int(np.ceil(max_offset_rad / step))
    offsets = np.arange(-n, n + 1) * step
    dl, dm = np.meshgrid(offsets, offsets, indexing="ij")
    inside = np.hypot(dl, dm) <= max_offset_rad
    dl, dm = dl[inside], dm[inside]
    image = np.array([np.sum(summed * np.exp(2j * np.pi * (u * a + v * b))).real for a, b in zip(dl, dm, strict=True)])
    best = int(np.argmax(image))
    return _with_n(lmn[0] + dl[best], lmn[1] + dm[best])


def _gauss_newton(vis, weight, uvw, freqs, spectrum, origin, lmn) -> tuple[np.ndarray, float]:
    """Least-squares offset and amplitude scale of a point source of `spectrum` near `lmn`, on `vis`
    phased to `origin` (normal equations of the three real parameters)."""
    scale, start = 1.0, lmn
    k = 2 * np.pi * freqs[None, :] / C_M_S
    for _ in range(_GN_ITERATIONS):
        model = spectrum[None, :] * _phase(uvw, freqs, lmn, origin) * weight
        resid = vis - scale * model
        cols = (model, 1j * k * (uvw[:, 0] - uvw[:, 2] * lmn[0] / lmn[2])[:, None] * scale * model,
                1j * k * (uvw[:, 1] - uvw[:, 2] * lmn[1] / lmn[2])[:, None] * scale * model)
        normal = np.array([[np.vdot(a, b).real for b in cols] for a in cols])
        rhs = np.array([np.vdot(a, resid).real for a in cols])
        if not np.all(np.isfinite(normal)):
            return start, float("nan")  # diverged: the caller keeps the catalogue's position
        step = np.linalg.lstsq(normal, rhs, rcond=None)[0]
        if np.hypot(lmn[0] + step[1], lmn[1] + step[2]) >= 1.0:
            return start, float("nan")  # a step off the sky (a source far outside the search)
        scale += step[0]
        lmn = _with_n(lmn[0] + step[1], lmn[1] + step[2])
        if max(abs(step[1]), abs(step[2])) < 1e-7:
            break
    return lmn, float(scale)


def refine_field(ms: Path, column: str, field: Direction, *, min_flux_jy: float, max_offset_arcmin: float,
                 uv_min_lambda: float = 0.0) -> tuple[Direction, list[FieldFit]]:
    """`field` with its components brighter than `min_flux_jy` (apparent, band centre) moved to the
    positions that `column` of `ms` (the A-team already peeled) puts them at (module docstring)."""
    target, weight, uvw, freqs, centre = _read(ms, column, uv_min_lambda)
    ref = float(np.mean(freqs))
    comps = list(field.components)
    lmns = [_lmn(c.ra_deg, c.dec_deg, centre) for c in comps]
    spectra = [np.asarray(c.flux_at(freqs), dtype=float) for c in comps]

    def model(i: int) -> np.ndarray:
        return spectra[i][None, :] * _phase(uvw, freqs, lmns[i]) * weight

    resid = target.copy()
    for i in range(len(comps)):
        resid -= model(i)
    max_offset = np.radians(max_offset_arcmin / 60.0)
    fits: dict[int, FieldFit] = {}
    order = sorted(range(len(comps)), key=lambda i: -comps[i].flux_at(ref))
    for i in order * _SWEEPS:
        c, cat = comps[i], field.components[i]
        if c.flux_at(ref) < min_flux_jy or c.is_gaussian or lmns[i][2] <= 0:
            continue
        phase = _phase(uvw, freqs, lmns[i])
        resid += spectra[i][None, :] * phase * weight  # this component's own data back in
        vis, w_blk, f_blk, s_blk = _blocks(resid * np.conj(phase), weight, freqs, spectra[i])
        del phase
        start = _grid_search(vis, w_blk, uvw, f_blk, s_blk, lmns[i], max_offset)
        lmn, scale = _gauss_newton(vis, w_blk, uvw, f_blk, s_blk, lmns[i], start)
        home = _lmn(cat.ra_deg, cat.dec_deg, centre)
        total = scale * c.i_jy / cat.i_jy  # against the catalogue
        offset = np.hypot(lmn[0] - home[0], lmn[1] - home[1])
        moved = bool(offset < 0.95 * max_offset and _SCALE_RANGE[0] <= total <= _SCALE_RANGE[1])
        ra, dec = _radec(lmn, centre) if moved else (cat.ra_deg, cat.dec_deg)
        d_ra = ((ra - cat.ra_deg + 180.0) % 360.0 - 180.0) * np.cos(np.radians(cat.dec_deg)) * 60.0
        fits[i] = FieldFit(c.name, float(cat.flux_at(ref)), float(d_ra), float((dec - cat.dec_deg) * 60.0),
                           total if moved else 1.0, moved)
        total = total if moved else 1.0
        comps[i] = dataclasses.replace(cat, ra_deg=ra, dec_deg=dec, i_jy=cat.i_jy * total, q_jy=cat.q_jy * total,
                                       u_jy=cat.u_jy * total, v_jy=cat.v_jy * total)
        lmns[i] = lmn if moved else home
        spectra[i] = np.asarray(cat.flux_at(freqs), dtype=float) * total
        resid -= model(i)
    fits = [fits[i] for i in order if i in fits]
    if fits:
        offsets = [np.hypot(f.d_ra_arcmin, f.d_dec_arcmin) for f in fits if f.moved]
        scales = [f.scale for f in fits if f.moved]
        log.info("field positions fitted on a pass before the final one: %d of %d component(s) moved (median %.2f', max %.2f'; "
                 "flux x%.3f median, %.3f-%.3f), %d kept as catalogued", len(offsets), len(fits),
                 float(np.median(offsets)) if offsets else 0.0, max(offsets, default=0.0),
                 float(np.median(scales)) if scales else 1.0, min(scales, default=1.0), max(scales, default=1.0),
                 len(fits) - len(offsets))
    return dataclasses.replace(field, components=tuple(comps)), fits

