"""Peaks above a threshold in an S/N map, and the PSF bi-lobe partner test.

Detection: the pixels whose signed S/N (`sign` × (image − background) / RMS) reaches the
threshold, outside the mask, are grouped into 8-connected islands (`scipy.ndimage.label`); each
island gives one candidate at its extreme pixel, refined to sub-pixel precision by a parabola
through the pixel and its two neighbours along each axis.

Bi-lobe test (explicit rule, all numbers configurable; defaults from `cfg.transient`):
a candidate of sign s and S/N |c| ≥ `candidate_sigma` (4) has a bi-lobe partner when, within
`radius_beams` (2 restoring beams, BMAJ of the image) of it, an island of pixels of the opposite sign reaches −s × S/N ≥
`partner_sigma` (3) and the flux ratio |candidate peak| / |partner peak| lies in
[`ratio_min`, `ratio_max`] (0.2–5). A candidate with a partner is flagged `bilobe=True`: a real
burst is a single-signed PSF, whereas a positive/negative pair of comparable strength a few
beams apart is what a position shift (ionosphere, dewarping residual) of a steady source leaves in
a difference image, and what beam squint / polarisation leakage of a steady I source leaves in V.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Peak", "BilobeRule", "Partner", "Island", "islands", "find_peaks", "bilobe_partner"]

_EIGHT = np.ones((3, 3), dtype=bool)
_COARSE = 32


@dataclass(frozen=True)
class Island:
    """One 8-connected island of True pixels: its bounding box origin and its pixels there."""

    y0: int
    x0: int
    pixels: np.ndarray  # bool, the island's bounding box

    @property
    def box(self) -> tuple[slice, slice]:
        return (slice(self.y0, self.y0 + self.pixels.shape[0]), slice(self.x0, self.x0 + self.pixels.shape[1]))


def islands(above: np.ndarray) -> list[Island]:
    """The 8-connected islands of a boolean image, found without labelling the whole image.

    Labelling a 4096² image costs more than the rest of the search when only a few pixels are
    set; instead the `_COARSE`-pixel blocks holding a set pixel are labelled (an island only
    spans connected blocks), and each cluster of blocks is labelled at full resolution.
    """
    ny, nx = above.shape
    by, bx = -(-ny // _COARSE), -(-nx // _COARSE)
    padded = above
    if (by * _COARSE, bx * _COARSE) != (ny, nx):
        padded = np.zeros((by * _COARSE, bx * _COARSE), dtype=bool)
        padded[:ny, :nx] = above
    # rows of blocks first (a reduction along the outer axis runs over whole contiguous rows), then
    # along each block's columns: the same blocks as .any(axis=(1, 3)), ~15x faster at 4096²
    coarse = padded.reshape(by, _COARSE, bx * _COARSE).any(axis=1).reshape(by, bx, _COARSE).any(axis=2)
    if not coarse.any():
        return []
    clusters, _ = ndimage.label(coarse, structure=_EIGHT)
    out = []
    for k, cbox in enumerate(ndimage.find_objects(clusters), start=1):
        if cbox is None:
            continue
        y0, x0 = cbox[0].start * _COARSE, cbox[1].start * _COARSE
        own_blocks = np.repeat(np.repeat(clusters[cbox] == k, _COARSE, axis=0), _COARSE, axis=1)
        sub = padded[y0: cbox[0].stop * _COARSE, x0: cbox[1].stop * _COARSE] & own_blocks
        labels, _ = ndimage.label(sub, structure=_EIGHT)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None:
                out.append(Island(y0 + box[0].start, x0 + box[1].start, labels[box] == index))
    return out


@dataclass(frozen=True)
class Peak:
    """One detection: extreme pixel (y, x), refined position, value above background, S/N, sign."""

    y: int
    x: int
    y_sub: float
    x_sub: float
    value: float  # image − background at the extreme pixel (Jy/beam, signed)
    snr: float  # signed
    rms: float
    sign: int
    npix: int


@dataclass(frozen=True)
class BilobeRule:
    """The partner test; see the module docstring. Its values come from `[transient]` (`bilobe_*`,
    `lwa_transient.settings.bilobe_rule`): no defaults of its own."""

    radius_beams: float
    ratio_min: float
    ratio_max: float
    partner_sigma: float
    candidate_sigma: float


@dataclass(frozen=True)
class Partner:
    y: int
    x: int
    snr: float  # signed (opposite to the candidate)
    ratio: float  # |candidate| / |partner|
    sep_px: float


def _parabola(m1: float, c0: float, p1: float) -> float:
    den = m1 - 2 * c0 + p1
    if not np.isfinite(den) or den == 0:
        return 0.0
    off = 0.5 * (m1 - p1) / den
    return float(np.clip(off, -0.5, 0.5))


def _refine(img: np.ndarray, y: int, x: int) -> tuple[float, float]:
    """Sub-pixel position from parabolas through the extreme pixel and its neighbours (`img` oriented)."""
    ny, nx = img.shape
    dx = dy = 0.0
    if 0 < x < nx - 1:
        dx = _parabola(*(float(v) for v in img[y, x - 1: x + 2]))
    if 0 < y < ny - 1:
        dy = _parabola(*(float(v) for v in img[y - 1: y + 2, x]))
    return y + dy, x + dx


def find_peaks(
    residual: np.ndarray,
    rms: np.ndarray,
    *,
    threshold: float,
    sign: int,
    mask: np.ndarray | None = None,
) -> list[Peak]:
    """Islands of `sign` × residual / rms ≥ `threshold` (outside `mask`), one Peak each.

    `residual` is image − background. Returns peaks sorted by decreasing |S/N|. Only the bounding
    boxes of the islands are visited after the thresholding (`islands`), so the cost is a few
    passes over the image whatever the number of islands.
    """
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.divide(residual, rms) if sign == 1 else np.divide(np.negative(residual), rms)
        above = s >= threshold  # NaN compares False
    if mask is not None:
        above &= ~mask
    if not above.any():
        return []
    peaks = []
    for island in islands(above):
        sub = np.where(island.pixels, s[island.box], -np.inf)
        dy, dx = np.unravel_index(int(np.argmax(sub)), sub.shape)
        y, x = island.y0 + int(dy), island.x0 + int(dx)
        y0, x0 = max(y - 1, 0), max(x - 1, 0)
        local = sign * residual[y0: y + 2, x0: x + 2]
        local = np.where(np.isfinite(local), local, -np.inf)
        ys, xs = _refine(local, y - y0, x - x0)
        peaks.append(Peak(y=y, x=x, y_sub=ys + y0, x_sub=xs + x0, value=float(residual[y, x]),
                          snr=float(s[y, x]) * sign, rms=float(rms[y, x]), sign=sign,
                          npix=int(island.pixels.sum())))
    peaks.sort(key=lambda p: -abs(p.snr))
    return peaks


def bilobe_partner(
    residual: np.ndarray,
    rms: np.ndarray,
    peak: Peak,
    *,
    rule: BilobeRule,
    beam_px: float,
) -> Partner | None:
    """The strongest opposite-sign partner of `peak` satisfying `rule`, or None (`beam_px`: BMAJ in pixels)."""
    if abs(peak.snr) < rule.candidate_sigma:
        return None
    r = rule.radius_beams * beam_px
    # islands are labelled in a box twice the radius, so that a lobe whose flank reaches into the
    # radius but whose peak lies outside it is not taken for a partner
    big = 2 * r + 2
    ny, nx = residual.shape
    y0, y1 = max(int(np.floor(peak.y - big)), 0), min(int(np.ceil(peak.y + big)) + 1, ny)
    x0, x1 = max(int(np.floor(peak.x - big)), 0), min(int(np.ceil(peak.x + big)) + 1, nx)
    res = residual[y0:y1, x0:x1]
    with np.errstate(invalid="ignore", divide="ignore"):
        opposite = -peak.sign * res / rms[y0:y1, x0:x1]
    opposite = np.where(np.isfinite(opposite), opposite, -np.inf)
    cand = opposite >= rule.partner_sigma
    if not cand.any():
        return None
    labels, n = ndimage.label(cand, structure=_EIGHT)
    best: Partner | None = None
    for (py, px) in ndimage.maximum_position(opposite, labels, np.arange(1, n + 1)):
        py, px = int(py), int(px)
        sep = float(np.hypot(py + y0 - peak.y, px + x0 - peak.x))
        value = abs(float(res[py, px]))
        if sep > r or value == 0:
            continue
        ratio = abs(peak.value) / value
        if not rule.ratio_min <= ratio <= rule.ratio_max:
            continue
        snr = float(opposite[py, px])
        if best is None or snr > abs(best.snr):
            best = Partner(y=py + y0, x=px + x0, snr=-peak.sign * snr, ratio=ratio, sep_px=sep)
    return best
