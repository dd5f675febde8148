"""Where the search must not look: around bright deep-I sources and around the A-team.

Bright sources (DESIGN.md): the local maxima of the deep Stokes I image whose peak exceeds a
high threshold are masked to `2 beams` radius, those above a low threshold to `1 beam` (V: 500σ /
100σ; I difference: 100σ / 30σ). σ is the typical noise of the deep I image (the median of its
block RMS grid, `lwa_transient.rms.local_residual_noise`), and a beam is the restoring-beam FWHM
(BMAJ): the PSF of a SIN all-sky image has a constant size in pixels, so the disks are drawn in
pixels.

A-team zones are spherical caps: 3°/5° (V) or 10°/15° (I) around Vir A / Tau A and around the
brightest two, Cyg A / Cas A (J2000 positions below; a TTCal sources.json may replace them).
For a SIN image without PV terms the pixel grid is linear in the direction cosines (l, m), so the
angular distance of every pixel to a source is an exact closed form (cos d = a·l + b·m + c·n),
evaluated only in the bounding box of the cap; this is our own code because going through
`WCS.all_pix2world` + `SkyCoord.separation` for millions of pixels per source would cost more than
the whole search. Other projections fall back to astropy (slow but exact).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from scipy import ndimage

from lwa_common.catalogs import CatalogSource, read_ttcal_sources
from lwa_common.errors import LwaError
from lwa_transient.detect import Island, islands

__all__ = [
    "ateam_sources",
    "present_ateam",
    "AteamSource",
    "ATEAM_J2000",
    "ateam_from_ttcal",
    "ateam_mask",
    "cap_mask",
    "BrightSource",
    "bright_sources",
    "source_mask",
    "bright_source_mask",
    "disk_mask",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AteamSource:
    """An A-team source; `major` sources (Cyg A, Cas A) get the larger exclusion radius."""

    name: str
    ra_deg: float
    dec_deg: float
    major: bool


# J2000 positions (NED / 3C): the radio centroids used for OVRO-LWA peeling.
ATEAM_J2000: tuple[AteamSource, ...] = (
    AteamSource("Cyg A", 299.868153, 40.733916, True),
    AteamSource("Cas A", 350.850000, 58.815000, True),
    AteamSource("Vir A", 187.705931, 12.391123, False),
    AteamSource("Tau A", 83.633212, 22.014460, False),
)


def ateam_from_ttcal(path: str | Path, *, freq_hz: float, major_jy: float = 5000.0) -> tuple[AteamSource, ...]:
    """A-team sources of a TTCal sources.json; `major` when the Stokes I flux at `freq_hz` ≥ `major_jy`."""
    out = []
    for src in read_ttcal_sources(path):
        if not isinstance(src, CatalogSource) or not src.has_position:
            continue
        flux = float(src.flux_at(freq_hz))
        out.append(AteamSource(src.name, src.ra_deg, src.dec_deg, flux >= major_jy))
    if not out:
        raise LwaError(f"A-team file {path} holds no source with a fixed position")
    return tuple(out)


def _unit(ra_deg: float, dec_deg: float) -> np.ndarray:
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    return np.array([math.cos(dec) * math.cos(ra), math.cos(dec) * math.sin(ra), math.sin(dec)])


class _SinGrid:
    """Pixel <-> direction cosines of a SIN celestial WCS without PV terms (zenithal, LONPOLE 180)."""

    def __init__(self, wcs: WCS):
        self.matrix = np.radians(wcs.pixel_scale_matrix)  # iwc (rad) per pixel
        self.inverse = np.linalg.inv(self.matrix)
        self.crpix0 = np.asarray(wcs.wcs.crpix, dtype=np.float64) - 1.0
        ra0, dec0 = (float(v) for v in wcs.wcs.crval)
        self.centre = _unit(ra0, dec0)
        a0, d0 = math.radians(ra0), math.radians(dec0)
        self.east = np.array([-math.sin(a0), math.cos(a0), 0.0])
        self.north = np.array([-math.sin(d0) * math.cos(a0), -math.sin(d0) * math.sin(a0), math.cos(d0)])

    @staticmethod
    def usable(wcs: WCS) -> bool:
        ctype = [str(c).upper() for c in wcs.wcs.ctype]
        if len(ctype) != 2 or not all(c.endswith("-SIN") for c in ctype) or wcs.wcs.get_pv():
            return False
        if wcs.has_distortion or wcs.wcs.lng != 0:
            return False
        wcs.wcs.set()
        return float(wcs.wcs.lonpole) == 180.0

    def lm_of_vectors(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return vec @ self.east, vec @ self.north, vec @ self.centre

    def pixels_of_lm(self, l: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pix = self.inverse @ np.vstack([l, m])
        return pix[0] + self.crpix0[0], pix[1] + self.crpix0[1]

    def lm_of_box(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        dx = (np.arange(x0, x1) - self.crpix0[0])[None, :]
        dy = (np.arange(y0, y1) - self.crpix0[1])[:, None]
        (m00, m01), (m10, m11) = self.matrix
        return m00 * dx + m01 * dy, m10 * dx + m11 * dy


def _cap_box(grid: _SinGrid, s: np.ndarray, radius_rad: float, shape: tuple[int, int]
             ) -> tuple[int, int, int, int] | None:
    """Pixel bounding box (y0, y1, x0, x1) of the visible part of a cap, or None when it is not visible."""
    # points on the cap boundary
    helper = np.array([0.0, 0.0, 1.0]) if abs(s[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(s, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(s, e1)
    phi = np.linspace(0.0, 2 * np.pi, 721)
    ring = (math.cos(radius_rad) * s[None, :]
            + math.sin(radius_rad) * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2))
    rl, rm, rn = grid.lm_of_vectors(ring)
    pts_l, pts_m = [rl[rn >= 0]], [rm[rn >= 0]]
    # horizon points (n = 0) inside the cap
    hl, hm = np.cos(phi), np.sin(phi)
    horizon = hl[:, None] * grid.east + hm[:, None] * grid.north
    inside = horizon @ s >= math.cos(radius_rad)
    pts_l.append(hl[inside])
    pts_m.append(hm[inside])
    sl, sm, sn = grid.lm_of_vectors(s[None, :])
    if sn[0] >= 0:
        pts_l.append(sl)
        pts_m.append(sm)
    l_all, m_all = np.concatenate(pts_l), np.concatenate(pts_m)
    if l_all.size == 0:
        return None
    corners_l = np.array([l_all.min(), l_all.min(), l_all.max(), l_all.max()])
    corners_m = np.array([m_all.min(), m_all.max(), m_all.min(), m_all.max()])
    px, py = grid.pixels_of_lm(corners_l, corners_m)
    ny, nx = shape
    x0, x1 = max(int(np.floor(px.min())) - 2, 0), min(int(np.ceil(px.max())) + 3, nx)
    y0, y1 = max(int(np.floor(py.min())) - 2, 0), min(int(np.ceil(py.max())) + 3, ny)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


def cap_mask(wcs: WCS, shape: tuple[int, int], ra_deg: float, dec_deg: float, radius_deg: float,
             *, out: np.ndarray | None = None) -> np.ndarray:
    """Pixels within `radius_deg` of (ra, dec) on the sky (OR-ed into `out` when given)."""
    mask = np.zeros(shape, dtype=bool) if out is None else out
    s = _unit(ra_deg, dec_deg)
    if _SinGrid.usable(wcs):
        grid = _SinGrid(wcs)
        box = _cap_box(grid, s, math.radians(radius_deg), shape)
        if box is None:
            return mask
        y0, y1, x0, x1 = box
        l, m = grid.lm_of_box(y0, y1, x0, x1)
        r2 = l * l + m * m
        n = np.sqrt(np.clip(1.0 - r2, 0.0, None))
        a, b, c = (float(v) for v in (s @ grid.east, s @ grid.north, s @ grid.centre))
        inside = (a * l + b * m + c * n >= math.cos(math.radians(radius_deg))) & (r2 <= 1.0)
        mask[y0:y1, x0:x1] |= inside
        return mask
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    ra, dec = wcs.all_pix2world(xx, yy, 0)
    good = np.isfinite(ra) & np.isfinite(dec)
    sep = np.full(shape, np.inf)
    sky = SkyCoord(ra[good] * u.deg, dec[good] * u.deg)
    sep[good] = sky.separation(SkyCoord(ra_deg * u.deg, dec_deg * u.deg)).deg
    mask |= sep <= radius_deg
    return mask


def ateam_mask(wcs: WCS, shape: tuple[int, int], sources: Sequence[AteamSource],
               radius_deg: tuple[float, float]) -> tuple[np.ndarray, list[str]]:
    """Union of the A-team caps (`radius_deg` = (other sources, major sources)); names that touch the image."""
    mask = np.zeros(shape, dtype=bool)
    touched = []
    for src in sources:
        radius = radius_deg[1] if src.major else radius_deg[0]
        before = np.count_nonzero(mask)  # not mask.sum(): a 4096² bool sum costs ~5 ms, this ~0.4
        cap_mask(wcs, shape, src.ra_deg, src.dec_deg, radius, out=mask)
        if np.count_nonzero(mask) > before:
            touched.append(f"{src.name} ({radius:g} deg)")
    return mask, touched


def disk_mask(shape: tuple[int, int], centres: Sequence[tuple[float, float, float]],
              *, out: np.ndarray | None = None) -> np.ndarray:
    """Pixels within radius of each (y, x, radius_px) centre."""
    mask = np.zeros(shape, dtype=bool) if out is None else out
    ny, nx = shape
    for y, x, r in centres:
        y0, y1 = max(int(math.floor(y - r)), 0), min(int(math.ceil(y + r)) + 1, ny)
        x0, x1 = max(int(math.floor(x - r)), 0), min(int(math.ceil(x + r)) + 1, nx)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = np.arange(y0, y1)[:, None] - y
        xx = np.arange(x0, x1)[None, :] - x
        mask[y0:y1, x0:x1] |= yy * yy + xx * xx <= r * r
    return mask


@dataclass(frozen=True)
class BrightSource:
    """A deep-I source to mask: pixel position, peak S/N (vs the deep image's typical RMS), radius,
    and the index of its island of pixels above the lowest threshold."""

    y: int
    x: int
    snr: float
    radius_px: float
    island: int


def bright_sources(
    snr: np.ndarray,
    *,
    beam_px: float,
    levels: Sequence[tuple[float, float]],
) -> tuple[list[BrightSource], list[Island]]:
    """Local maxima of a deep-I S/N map above the lowest of `levels`, and their islands.

    `levels`: (S/N threshold, radius in beams) pairs; a maximum gets the radius of the highest
    threshold it exceeds (e.g. ((500, 2), (100, 1)) for the V search). `BrightSource.island`
    indexes the returned islands (pixels above the lowest threshold).
    """
    levels = sorted(levels, key=lambda lv: lv[0], reverse=True)
    lowest = levels[-1][0]
    with np.errstate(invalid="ignore"):
        above = snr > lowest  # NaN compares False
    found = islands(above)
    size = max(3, int(round(beam_px)) | 1)
    half = size // 2
    ny, nx = snr.shape
    sources = []
    for index, island in enumerate(found):
        # local maxima (over a beam-sized window) of this island, in its padded box only
        ys, xs = island.box
        y0, y1 = max(ys.start - half, 0), min(ys.stop + half, ny)
        x0, x1 = max(xs.start - half, 0), min(xs.stop + half, nx)
        sub = np.where(np.isfinite(snr[y0:y1, x0:x1]), snr[y0:y1, x0:x1], -np.inf)
        own = np.zeros(sub.shape, dtype=bool)
        own[ys.start - y0: ys.stop - y0, xs.start - x0: xs.stop - x0] = island.pixels
        peaks = own & (sub == ndimage.maximum_filter(sub, size=size, mode="nearest"))
        for y, x in zip(*np.nonzero(peaks), strict=True):
            value = float(sub[y, x])
            beams = next(b for threshold, b in levels if value > threshold)
            sources.append(BrightSource(int(y) + y0, int(x) + x0, value, beams * beam_px, index))
    return sources, found


def source_mask(shape: tuple[int, int], sources: Sequence[BrightSource], found: Sequence[Island]) -> np.ndarray:
    """Disks around `sources`, plus every pixel of their islands (extended emission)."""
    mask = disk_mask(shape, [(s.y, s.x, s.radius_px) for s in sources])
    for index in sorted({s.island for s in sources}):
        island = found[index]
        mask[island.box] |= island.pixels
    return mask


def bright_source_mask(
    snr: np.ndarray,
    *,
    beam_px: float,
    levels: Sequence[tuple[float, float]],
) -> tuple[np.ndarray, list[BrightSource]]:
    """`bright_sources` then `source_mask`: the mask and the masked sources."""
    sources, found = bright_sources(snr, beam_px=beam_px, levels=levels)
    return source_mask(snr.shape, sources, found), sources


def ateam_sources(sources: tuple[AteamSource, ...], ttcal_file: Path | None, freq_mhz: float, *,
                  major_jy: float) -> tuple[AteamSource, ...]:
    """The A-team to mask at `freq_mhz`: `sources`, or those of a TTCal sources.json
    (`ateam_from_ttcal`: at least `major_jy` at that frequency, 60 MHz when unknown, is major)."""
    if ttcal_file is None:
        return sources
    freq = freq_mhz * 1e6 if math.isfinite(freq_mhz) else 60e6
    return ateam_from_ttcal(ttcal_file, freq_hz=freq, major_jy=major_jy)


def present_ateam(sources: Sequence[AteamSource], snr: np.ndarray, wcs: WCS, *, radius_px: float, sigma: float,
             label: str) -> tuple[AteamSource, ...]:
    """The A-team sources the deep I holds: S/N >= `sigma` within `radius_px` of the position."""
    ny, nx = snr.shape
    kept = []
    for src in sources:
        x, y = wcs.all_world2pix([[src.ra_deg, src.dec_deg]], 0)[0]
        if not (np.isfinite(x) and np.isfinite(y)) or not (-radius_px <= x < nx + radius_px
                                                             and -radius_px <= y < ny + radius_px):
            continue  # off the image: its cap cannot reach far in
        # the disk's bounding box only (the same pixels as over the whole image, at a fraction of the cost)
        y0, y1 = max(int(math.floor(y - radius_px)), 0), min(int(math.ceil(y + radius_px)) + 1, ny)
        x0, x1 = max(int(math.floor(x - radius_px)), 0), min(int(math.ceil(x + radius_px)) + 1, nx)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        values = snr[y0:y1, x0:x1][(yy - y) ** 2 + (xx - x) ** 2 <= radius_px ** 2]
        values = values[np.isfinite(values)]
        peak = float(values.max()) if values.size else 0.0
        if peak >= sigma:
            kept.append(src)
        else:
            log.info("%s: %s not in the deep I (peak %.0fσ within %.1f px < %g): no A-team cap", label, src.name,
                     peak, radius_px, sigma)
    return tuple(kept)
