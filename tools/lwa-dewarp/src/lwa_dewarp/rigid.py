"""Rigid patches: compact sources are moved by the screen, not stretched by it.

A pull resampling D(p) = O(p + d(p)) by a screen d that varies across the image maps a
beam-shaped source onto the beam distorted by the screen's Jacobian J = 1 + grad d: its peak is
kept, but its fitted area, and so its integrated flux, changes by 1 / det J. The ionosphere does
no such thing: it shifts each compact source (the PSF stays the array's), and lwa-sim's offset
fields stretch by up to ~8 % over the sky at demo size. So around every compact peak the
resampling is a pure shift by the offset of that source, D(p) = O(p + delta_k), within
`radius_beams` (BMAJ) of its dewarped position, blended (cos^2 taper over `taper_beams`) into
the smooth remap beyond: peak, shape and integral of compact sources survive, and the diffuse
emission follows the screen. Where patches overlap their shifts are averaged with weights taper x
S/N, so a faint peak beside a bright source does not drag the bright one's shift.

The peaks are the local maxima of |image| (Stokes V: either sign) above `snr` local RMS
(photutils `Background2D` in boxes of 8 beams with `extract`'s sort-based box statistics, as `fit`
finds sources; its RMS is sampled at the pixels above `snr` x its minimum only,
`extract.local_rms_at`), one per beam; a peak's shift delta_k solves p_k + d(p_k) = q_k (q_k the
observed peak, a few fixed-point steps: |grad d| << 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lwa_common.errors import LwaError

__all__ = ["Patches", "find_patches"]

log = logging.getLogger(__name__)

MAX_PATCHES = 5000
BACKGROUND_BOX_BEAMS = 8.0  # local RMS boxes (as lwa-dewarp fit's source finding)
FIXED_POINT_STEPS = 8

# maps output pixel (x, y) arrays to input pixel (x, y) arrays (the smooth pull resampling)
CoordsAt = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Patches:
    """Compact sources to move rigidly: dewarped (output) positions and their shifts (pixels)."""

    x: np.ndarray
    y: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    radius_px: float
    taper_px: float
    level: np.ndarray | None = None  # |peak| / local RMS: where patches overlap the brighter one leads

    def __len__(self) -> int:
        return len(self.x)

    def blend(self, coords: np.ndarray, y0: int) -> None:
        """Replace, in place, the smooth input coordinates `coords` ((y, x) planes of output rows
        y0 .. y0 + rows - 1, every column) by the patches' shifts near their sources."""
        if not len(self):
            return
        rows, nx = coords.shape[1:]
        reach = self.radius_px + self.taper_px
        near = np.flatnonzero((self.y > y0 - reach - 1) & (self.y < y0 + rows + reach + 1))
        if not len(near):
            return
        weight = np.zeros((rows, nx))  # the largest taper of any patch (the blend with the smooth screen)
        total = np.zeros((rows, nx))  # sum of taper x level (the shift is the level-weighted mean)
        sum_x = np.zeros((rows, nx))
        sum_y = np.zeros((rows, nx))
        level = self.level if self.level is not None else np.ones(len(self))
        r_int = int(math.ceil(reach))
        for k in near:
            xlo, xhi = max(int(self.x[k]) - r_int, 0), min(int(self.x[k]) + r_int + 2, nx)
            ylo, yhi = max(int(self.y[k]) - r_int, y0), min(int(self.y[k]) + r_int + 2, y0 + rows)
            if xlo >= xhi or ylo >= yhi:
                continue
            yy, xx = np.mgrid[ylo:yhi, xlo:xhi]
            w = _taper(np.hypot(xx - self.x[k], yy - self.y[k]), self.radius_px, self.taper_px)
            sl = (slice(ylo - y0, yhi - y0), slice(xlo, xhi))
            np.maximum(weight[sl], w, out=weight[sl])
            wl = w * level[k]
            total[sl] += wl
            sum_x[sl] += wl * self.shift_x[k]
            sum_y[sl] += wl * self.shift_y[k]
        touched = (weight > 0) & (coords[0] > -1e5)  # pixels without a sky position stay so
        if not touched.any():
            return
        ty, tx = np.nonzero(touched)
        w = weight[touched]
        mean_x, mean_y = sum_x[touched] / total[touched], sum_y[touched] / total[touched]
        px, py = tx.astype(float), (ty + y0).astype(float)
        coords[1][touched] = w * (px + mean_x) + (1.0 - w) * coords[1][touched]
        coords[0][touched] = w * (py + mean_y) + (1.0 - w) * coords[0][touched]


def _taper(r: np.ndarray, radius: float, taper: float) -> np.ndarray:
    """1 within `radius`, cos^2 down to 0 at `radius + taper`."""
    if taper <= 0:
        return (r <= radius).astype(float)
    t = np.clip((r - radius) / taper, 0.0, 1.0)
    return np.cos(0.5 * math.pi * t) ** 2


def _peaks(planes: np.ndarray, *, snr: float, beam_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, |value| / local RMS) of the local maxima of |planes| (the largest over planes) above
    `snr` local RMS (`extract.local_rms_at`: boxes of `BACKGROUND_BOX_BEAMS`, so the noise that
    primary-beam correction raises towards the horizon does not pass for sources). Only pixels
    above `snr` x the lowest RMS can qualify: the RMS and the local-maximum test are evaluated
    there alone, not over the whole image."""
    from lwa_dewarp.extract import local_rms_at

    level = np.abs(planes[0]) if planes.ndim == 3 else np.abs(planes)
    for other in planes[1:] if planes.ndim == 3 else ():
        level = np.fmax(level, np.abs(other))  # NaN only where every plane is
    finite = np.isfinite(level)
    none = (np.empty(0), np.empty(0), np.empty(0))
    if finite.sum() < 16:
        return none
    plane0 = planes[0] if planes.ndim == 3 else planes
    # float64: the box statistics keep the image's dtype, and the RMS of a float32 image differs
    # from the float64 one by float32 rounding (< 2e-7)
    try:
        rms_at, rms_floor, _ = local_rms_at(np.where(finite, plane0, np.nan).astype(float, copy=False),
                                            box_px=max(16, int(round(BACKGROUND_BOX_BEAMS * beam_px))))
    except LwaError:
        return none
    filled = np.where(finite, level, 0.0)
    y, x = np.nonzero(filled > snr * rms_floor * (1.0 - 1e-9))
    y, x = _local_maxima(filled, y, x, size=max(3, 2 * int(round(beam_px / 2)) + 1))
    rms = rms_at(y, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rms > 0, filled[y, x] / rms, 0.0)
    keep = ratio > snr
    y, x, ratio = y[keep], x[keep], ratio[keep]
    if len(x) > MAX_PATCHES:
        order = np.argsort(ratio)[::-1][:MAX_PATCHES]
        log.warning("more than %d compact peaks: only the brightest are moved rigidly", MAX_PATCHES)
        y, x, ratio = y[order], x[order], ratio[order]
    return x.astype(float), y.astype(float), ratio


def _local_maxima(values: np.ndarray, y: np.ndarray, x: np.ndarray, *, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (y, x) of `values` (>= 0) that no pixel of their `size` x `size` window exceeds
    (`maximum_filter(values, size, mode='constant', cval=0) == values` at those pixels alone)."""
    half = size // 2
    padded = np.pad(values, half)
    top = np.ones(len(y), dtype=bool)
    centre = values[y, x]
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            top &= centre >= padded[y + half + dy, x + half + dx]
    return y[top], x[top]


def find_patches(planes: np.ndarray, coords_at: CoordsAt, *, beam_px: float, snr: float, radius_beams: float,
                 taper_beams: float) -> Patches:
    """The rigid patches of an image (`planes`: (k, ny, nx) or (ny, nx)) whose smooth resampling is
    `coords_at`; `beam_px` is BMAJ in pixels. No patches when `snr` <= 0."""
    empty = Patches(np.empty(0), np.empty(0), np.empty(0), np.empty(0), radius_beams * beam_px,
                    taper_beams * beam_px)
    if snr <= 0 or not (beam_px > 0):
        return empty
    qx, qy, level = _peaks(np.asarray(planes), snr=snr, beam_px=beam_px)
    if not len(qx):
        return empty
    # the dewarped position p of each peak: p + d(p) = q, by fixed-point steps
    px, py = qx.copy(), qy.copy()
    for _ in range(FIXED_POINT_STEPS):
        cx, cy = coords_at(px, py)
        ok = np.isfinite(cx) & np.isfinite(cy)
        px = np.where(ok, px + (qx - cx), px)
        py = np.where(ok, py + (qy - cy), py)
    cx, cy = coords_at(px, py)
    ok = np.isfinite(cx) & np.isfinite(cy) & (np.hypot(cx - qx, cy - qy) < 0.05)
    ny, nx = np.asarray(planes).shape[-2:]
    ok &= (px >= 0) & (px <= nx - 1) & (py >= 0) & (py <= ny - 1)
    log.info("rigid patches: %d compact peaks above %.1f sigma moved without stretching (radius %.1f + %.1f "
             "beams)", int(ok.sum()), snr, radius_beams, taper_beams)
    return Patches(px[ok], py[ok], (qx - px)[ok], (qy - py)[ok], radius_beams * beam_px, taper_beams * beam_px,
                   level[ok])
