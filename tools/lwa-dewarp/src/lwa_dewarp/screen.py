"""The offset screen: a smooth 2-D field of pixel offsets (observed minus true) over an image grid.

Fitting is scipy's `RBFInterpolator`: a smoothing RBF interpolant with a polynomial term, in
pixel coordinates normalised by the image half-size; the kernel (thin-plate spline with a
degree 1-3 term, or Gaussian / multiquadric with a constant or linear term, the Gaussians' scales
from 2 half-widths down to what the anchors' spacing resolves) is the one with the smallest
leave-one-out residual on the anchors (`candidate_kernels`). Each anchor's smoothing is
`smoothing` times its squared position error over the squared RMS offset (a noise-to-signal
ratio), so the value means the same on a 512 px test image and a 4096 px science image, and
faint anchors pull less. Anchors whose leave-one-out residual exceeds `clip_sigma` robust sigmas
are dropped and the model refitted (a wrong match must not bend the screen); the leave-one-out
residuals come from one matrix inverse (Rippa's formula), which scipy does not offer. The
linear term makes the screen extrapolate linearly outside the anchors' convex hull rather than
fall to zero; there its length is capped at the largest anchor offset so that a far corner (the
horizon) cannot run away.

The screen is sampled on a grid that is the image grid, or a coarser one (integer factor) for big
images: the field varies on degree scales, and a 4096^2 screen would cost 128 MB per file.

FITS layout (written with `lwa_common.fitsio.write_image`)::

    data[0] = dx, data[1] = dy      offsets in pixels of the REFERENCE image grid
    celestial WCS                   of the (possibly coarse) screen grid, ds9 overlays it on the sky
    SCRFACT                         coarse factor f: screen pixel i covers reference pixels f*i..f*i+f-1
    REFNAX1, REFNAX2                reference image size
    FREQMHZ, DATE-OBS, MJD-MID ...  of the image the screen was fitted on
    IMGCAT = 'screen', BUNIT = 'pixel'

The convention: a source whose true (catalogue) position is at reference pixel p appears at
p + d(p). Dewarping pulls the dewarped value at p from the observed image at p + d(p).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.interpolate import RBFInterpolator
from scipy.ndimage import map_coordinates
from scipy.spatial import ConvexHull, Delaunay, QhullError, cKDTree
from scipy.spatial.distance import cdist

from lwa_common.config import Dewarp
from lwa_common.errors import LwaError
from lwa_common.fitsio import read_image, write_image
from lwa_dewarp.extract import celestial_wcs

__all__ = ["Screen", "OffsetModel", "Kernel", "PlaneModel", "equidistant_wcs", "fit_offset_model", "sample_screen", "read_screen", "write_screen",
           "reference_wcs", "coarse_wcs"]

log = logging.getLogger(__name__)

OUTLIER_TRIM = 0.2  # the model is first chosen on the best 80 % of the anchors' leave-one-out residuals
TOOL = "lwa-dewarp"
_COPY_KEYS = ("FREQMHZ", "SUBBAND", "DATE-OBS", "DATE-END", "MJD-MID", "BMAJ", "BMIN", "BPA", "INTERVAL",
              "NINTERVL", "CONFIG", "ROBUST", "TAPER", "PBCOR", "TELESCOP", "RADESYS", "EQUINOX")


def coarse_wcs(wcs: WCS, factor: int) -> WCS:
    """WCS of a grid whose pixel i spans pixels factor*i .. factor*i+factor-1 of `wcs`'s grid."""
    out = wcs.deepcopy()
    out.wcs.crpix = (np.asarray(wcs.wcs.crpix) - 0.5) / factor + 0.5
    if out.wcs.has_cd():
        out.wcs.cd = np.asarray(wcs.wcs.cd) * factor
    else:
        out.wcs.cdelt = np.asarray(wcs.wcs.cdelt) * factor
    out.wcs.set()
    return out


def reference_wcs(wcs: WCS, factor: int) -> WCS:
    """Inverse of `coarse_wcs`."""
    out = wcs.deepcopy()
    out.wcs.crpix = (np.asarray(wcs.wcs.crpix) - 0.5) * factor + 0.5
    if out.wcs.has_cd():
        out.wcs.cd = np.asarray(wcs.wcs.cd) / factor
    else:
        out.wcs.cdelt = np.asarray(wcs.wcs.cdelt) / factor
    out.wcs.set()
    return out


@dataclass(frozen=True)
class OffsetModel:
    """The fitted smooth offset field d(x, y) in pixels (callable on arrays of pixel coordinates)."""

    rbf: RBFInterpolator
    centre: tuple[float, float]
    scale: float
    hull: Delaunay | None
    max_offset_px: float
    kind: str = ""
    card: str = ""
    kernel: Kernel | None = None

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        pts = np.column_stack([(x.ravel() - self.centre[0]) / self.scale, (y.ravel() - self.centre[1]) / self.scale])
        d = self.rbf(pts)
        outside = self.hull.find_simplex(pts) < 0 if self.hull is not None else np.ones(len(pts), dtype=bool)
        length = np.hypot(d[:, 0], d[:, 1])
        cap = outside & (length > self.max_offset_px)
        d[cap] *= (self.max_offset_px / length[cap])[:, None]
        return d[:, 0].reshape(x.shape), d[:, 1].reshape(x.shape)


def equidistant_wcs(wcs: WCS) -> WCS:
    """The grid of `wcs` in the zenithal equidistant (ARC) projection: same centre, pixel size and
    reference pixel, so its pixels match the image's near the centre. Ionospheric offsets vary
    smoothly with angle on the sky; in the image's SIN projection the same field is squeezed
    radially by cos(z) towards the horizon, so the screen is fitted in this plane instead."""
    out = wcs.celestial.deepcopy()
    out.wcs.ctype = [c[:5] + "ARC" if c[5:8] in ("SIN", "TAN", "ZEA", "STG", "ARC") else c
                     for c in out.wcs.ctype]
    out.wcs.set_pv([])
    out.wcs.set()
    return out


@dataclass(frozen=True)
class PlaneModel:
    """An `OffsetModel` of sky offsets over the equidistant plane, called with image pixels.

    The inner model maps a position in the plane of `plane` (pixels) to the offset there: with
    `frame` "radec" the local (dRA cos Dec, dDec) in units of `unit_arcmin` (the image pixel
    size, so that pixel-based tolerances keep their meaning), with "plane" the offset in plane
    pixels. Called with pixels of `image` it returns image-pixel offsets: image pixel -> sky ->
    plane -> offset -> sky -> image pixel. "radec" is the convention of lwa-sim's ionosphere
    (and of fits_warp); it is singular at the celestial pole, where "plane" is not. Pixels beyond the
    horizon of a SIN image take the offset of the horizon pixel in their direction from the
    centre (so a coarse screen interpolates smoothly across it); other pixels without a sky
    position get zero offsets."""

    inner: OffsetModel
    image: WCS
    plane: WCS
    unit_arcmin: float
    frame: str = "radec"

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        xs, ys = self._inside_horizon(x, y)
        dx, dy = self._offsets(xs, ys)
        return dx, dy

    def _inside_horizon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not all(str(c).endswith("SIN") for c in list(self.image.wcs.ctype)[:2]) or self.image.wcs.get_pv():
            return x, y
        cx, cy = np.asarray(self.image.wcs.crpix[:2], dtype=float) - 1.0
        horizon = 0.999 * np.degrees(1.0) / float(np.sqrt(np.abs(np.linalg.det(self.image.pixel_scale_matrix))))
        r = np.hypot(x - cx, y - cy)
        pull = np.minimum(1.0, horizon / np.maximum(r, 1e-12))
        return cx + (x - cx) * pull, cy + (y - cy) * pull

    def _offsets(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            ra, dec = self.image.pixel_to_world_values(x, y)
            xp, yp = self.plane.world_to_pixel_values(ra, dec)
            ok = np.isfinite(xp) & np.isfinite(yp)
            d0, d1 = self.inner(np.where(ok, xp, 0.0), np.where(ok, yp, 0.0))
            if self.frame == "plane":
                ra_o, dec_o = self.plane.pixel_to_world_values(xp + d0, yp + d1)
            else:
                ra_o, dec_o = offset_by(np.where(ok, ra, 0.0), np.where(ok, dec, 0.0),
                                        d0 * self.unit_arcmin, d1 * self.unit_arcmin)
            xo, yo = self.image.world_to_pixel_values(ra_o, dec_o)
        ok &= np.isfinite(xo) & np.isfinite(yo)
        return np.where(ok, xo - x, 0.0), np.where(ok, yo - y, 0.0)


def offset_by(ra_deg: np.ndarray, dec_deg: np.ndarray, dra_arcmin: np.ndarray, ddec_arcmin: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Positions moved by local offsets (dRA cos Dec, dDec; arcmin), as astropy's
    `SkyCoord.spherical_offsets_by` (the inverse of `spherical_offsets_to`), on plain arrays."""
    from astropy.coordinates import SkyCoord

    moved = SkyCoord(ra_deg, dec_deg, unit="deg").spherical_offsets_by(dra_arcmin * u.arcmin, ddec_arcmin * u.arcmin)
    return moved.ra.deg, moved.dec.deg


@dataclass(frozen=True)
class Kernel:
    """One screen model: an RBF kernel of scipy's `RBFInterpolator` (`epsilon` scales distances in
    units of the image half-size) plus a polynomial term of `degree`."""

    name: str
    degree: int
    epsilon: float = 1.0

    def __str__(self) -> str:
        eps = "" if self.name == "thin_plate_spline" else f" (scale {1.0 / self.epsilon:.2g} half-widths)"
        return f"{self.name}{eps} + degree-{self.degree} polynomial"

    @property
    def card(self) -> str:
        """A short form for a FITS card: 'gaussian eps=1 deg=1'."""
        return f"{self.name} eps={self.epsilon:g} deg={self.degree}"

    def matrix(self, r: np.ndarray) -> np.ndarray:
        """The kernel of distances `r`, as RBFInterpolator evaluates it."""
        r = self.epsilon * r
        if self.name == "gaussian":
            return np.exp(-(r**2))
        if self.name == "multiquadric":
            return -np.sqrt(1.0 + r**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r > 0, r**2 * np.log(r), 0.0)


def candidate_kernels(max_degree: int, spacing: float = 0.5) -> list[Kernel]:
    """The screen models compared by leave-one-out residual: the thin-plate spline (the least
    bending surface; what extrapolates is its polynomial term, degree 1 .. `max_degree`) and
    smoother fields -- Gaussian RBFs (with a constant or a linear term; a Gaussian process of that
    covariance) and multiquadrics, as a sum of long-wavelength modes (an ionospheric screen) is
    smooth on scales the thin-plate spline's r^2 log r cannot follow between sparse anchors.

    The Gaussians' scales run from 2 image half-widths down, by factors of sqrt(2), to twice the
    anchors' mean `spacing` (half-widths): a scale is resolved by two anchors or more across it, so
    dense anchors (a VLSSr-like catalogue) follow 10-degree structure that 30 anchors cannot, and a
    shorter scale would only put isolated bumps on the anchors (and extrapolate to the constant
    from the nearest one)."""
    out = [Kernel("thin_plate_spline", d) for d in range(1, max_degree + 1)]
    out += [Kernel("gaussian", degree, eps) for degree in (0, 1) for eps in gaussian_epsilons(spacing)]
    out += [Kernel("multiquadric", 1, eps) for eps in MULTIQUADRIC_EPSILONS]
    return out


def gaussian_epsilons(spacing: float) -> list[float]:
    """Gaussian inverse scales (per image half-width): 0.5 (2 half-widths) times sqrt(2)^k up to
    1 / (2 `spacing`), and at least up to `MIN_GAUSSIAN_EPSILON`."""
    top = max(MIN_GAUSSIAN_EPSILON, 0.5 / max(spacing, 1e-6))
    n = int(math.floor(2 * math.log2(top / GAUSSIAN_EPSILON_STEP[0]) + 1e-9)) + 1
    return [float(f"{GAUSSIAN_EPSILON_STEP[0] * GAUSSIAN_EPSILON_STEP[1] ** k:.3g}") for k in range(n)]


def anchor_spacing(norm: np.ndarray) -> float:
    """The anchors' mean spacing: sqrt(area of their convex hull / their number), in the units of
    `norm` (image half-widths); 0.5 when the hull is degenerate."""
    try:
        return math.sqrt(ConvexHull(norm).volume / len(norm))
    except (QhullError, ValueError):
        return 0.5


GAUSSIAN_EPSILON_STEP = (0.5, math.sqrt(2.0))  # the widest scale (2 half-widths) and the ratio between scales
MIN_GAUSSIAN_EPSILON = 2.0  # ... and at least down to half a half-width, whatever the density
MULTIQUADRIC_EPSILONS = (0.5, 1.0, 2.0)
TPS1 = Kernel("thin_plate_spline", 1)


def _build(points: np.ndarray, offsets: np.ndarray, weights: np.ndarray, *, centre, scale, smoothing: float,
           kernel: Kernel = TPS1) -> OffsetModel:
    norm = (points - np.asarray(centre)) / scale
    spread = np.linalg.svd(norm - norm.mean(axis=0), compute_uv=False) if len(norm) >= 3 else np.zeros(2)
    if spread[-1] <= 1e-2 * max(spread[0], 1e-12):
        raise LwaError("the anchors are degenerate (collinear or coincident): cannot fit a screen")
    try:
        rbf = RBFInterpolator(norm, offsets, kernel=kernel.name, epsilon=kernel.epsilon, degree=kernel.degree,
                              smoothing=smoothing * weights)
    except (ValueError, np.linalg.LinAlgError):
        raise LwaError("the anchors are degenerate (collinear or coincident): cannot fit a screen") from None
    try:
        hull = Delaunay(norm)
    except (QhullError, ValueError):  # collinear or too few anchors: cap everywhere
        hull = None
    max_offset = float(np.max(np.hypot(offsets[:, 0], offsets[:, 1]))) if len(offsets) else 0.0
    return OffsetModel(rbf, tuple(centre), scale, hull, max_offset, str(kernel), kernel.card, kernel)


def _monomials(norm: np.ndarray, degree: int) -> np.ndarray:
    """The polynomial term's basis: x^i y^j with i + j <= degree (columns), as RBFInterpolator's."""
    return np.column_stack([norm[:, 0] ** i * norm[:, 1] ** (t - i) for t in range(degree + 1) for i in range(t + 1)])


def _loo_residuals(norm: np.ndarray, offsets: np.ndarray, smoothing: np.ndarray, kernel: Kernel = TPS1
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Exact leave-one-out residuals of the smoothing RBF interpolant (Rippa 1999): with A the
    upper-left block of the inverse of the system matrix, e_i = (A y)_i / A_ii. One matrix
    inversion instead of n refits; the same system RBFInterpolator solves. Also returns A_ii:
    read as kriging, 1 / A_ii is the LOO prediction variance up to a common factor, large where
    an anchor has no close neighbours (the hull's edge), small in a crowd."""
    n = len(norm)
    poly = _monomials(norm, kernel.degree)
    m = poly.shape[1]
    system = np.zeros((n + m, n + m))
    system[:n, :n] = kernel.matrix(cdist(norm, norm)) + np.diag(smoothing)
    system[:n, n:] = poly
    system[n:, :n] = system[:n, n:].T
    try:
        a = np.linalg.inv(system)[:n, :n]
    except np.linalg.LinAlgError:
        raise LwaError("the anchors are degenerate (collinear or coincident): cannot fit a screen") from None
    diag = np.diag(a).copy()
    if not np.all(diag > 0) or not np.all(np.isfinite(a)):
        raise LwaError("the anchors are degenerate (collinear or coincident): cannot fit a screen")
    return (a @ offsets) / diag[:, None], diag


def _clip(norm: np.ndarray, offsets: np.ndarray, smoothing: np.ndarray, *, kernel: Kernel, clip_sigma: float,
          clip_floor_px: float, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The anchors kept by the outlier rejection of `fit_offset_model`, and their leave-one-out
    residuals (NaN for the dropped)."""
    n = len(norm)
    keep = np.ones(n, dtype=bool)
    cv = np.full((n, 2), np.nan)
    while True:
        idx = np.flatnonzero(keep)
        loo, diag = _loo_residuals(norm[idx], offsets[idx], smoothing[idx], kernel)
        cv[:] = np.nan
        cv[idx] = loo
        length = np.hypot(loo[:, 0], loo[:, 1])
        z = length * np.sqrt(diag)
        # the median length of a 2-D Gaussian residual vector is 1.1774 sigma (per axis)
        z_limit = clip_sigma * float(np.median(z)) / 1.1774
        bad = np.flatnonzero((z > z_limit) & (length > clip_floor_px))
        if not len(bad):
            return keep, cv
        near = cKDTree(norm[idx]).query(norm[idx][bad], k=min(6, len(idx)))[1]
        drop = [i for i, nb in zip(bad, near, strict=True) if z[i] >= z[nb].max()]
        # none is the worst of its neighbours (a worse one agrees within the floor): stop, else this loops
        if not drop or len(idx) - len(drop) < min_points:
            return keep, cv
        keep[idx[drop]] = False


def _loo_score(norm: np.ndarray, offsets: np.ndarray, smoothing: np.ndarray, kernel: Kernel, *, trim: float
               ) -> float:
    """RMS leave-one-out residual length of `kernel` on the anchors, the largest `trim` fraction
    left out (a wrong match must not choose the model); inf when the system is singular."""
    try:
        loo, _ = _loo_residuals(norm, offsets, smoothing, kernel)
    except LwaError:
        return math.inf
    sq = np.sort(np.sum(loo**2, axis=1))
    keep = max(1, int(math.ceil((1.0 - trim) * len(sq))))
    return float(np.sqrt(np.mean(sq[:keep])))


def _best_kernel(norm: np.ndarray, offsets: np.ndarray, smoothing: np.ndarray, max_degree: int, *,
                 trim: float = 0.0) -> Kernel:
    """The candidate model (`candidate_kernels`) with the smallest (trimmed) RMS leave-one-out
    residual; a polynomial term needs three anchors more than it has terms."""
    best, best_score = TPS1, math.inf
    for kernel in candidate_kernels(max_degree, anchor_spacing(norm)):
        if len(norm) < (kernel.degree + 1) * (kernel.degree + 2) // 2 + 3:
            continue
        score = _loo_score(norm, offsets, smoothing, kernel, trim=trim)
        if score < best_score:
            best, best_score = kernel, score
    return best


def _readmit(model: OffsetModel, points: np.ndarray, offsets: np.ndarray, weights: np.ndarray, keep: np.ndarray,
             cv: np.ndarray, *, smoothing: float, kernel: Kernel, clip_floor_px: float
             ) -> tuple[np.ndarray, np.ndarray, OffsetModel]:
    """Anchors dropped while a wrong match still spoiled their neighbours' residuals come back
    when the final model predicts them within `clip_floor_px`; the model is refitted with them."""
    out = np.flatnonzero(~keep)
    if not len(out) or clip_floor_px <= 0:
        return keep, cv, model
    px, py = model(points[out, 0], points[out, 1])
    back = out[np.hypot(offsets[out, 0] - px, offsets[out, 1] - py) <= clip_floor_px]
    if not len(back):
        return keep, cv, model
    keep = keep.copy()
    keep[back] = True
    norm = (points - np.asarray(model.centre)) / model.scale
    cv = np.full_like(cv, np.nan)
    cv[keep] = _loo_residuals(norm[keep], offsets[keep], smoothing * weights[keep], kernel)[0]
    log.info("%d anchors dropped as outliers are back: the final screen predicts them within %.2f px",
             len(back), clip_floor_px)
    return keep, cv, _build(points[keep], offsets[keep], weights[keep], centre=model.centre, scale=model.scale,
                            smoothing=smoothing, kernel=kernel)


def _anchor_weights(offsets: np.ndarray, pos_err: np.ndarray | None) -> np.ndarray:
    """Each anchor's noise-to-signal ratio (sigma_i / rms offset)^2, the same on any pixel scale;
    without position errors, 1 % of the rms offset for every anchor."""
    rms = float(np.sqrt(np.mean(np.sum(offsets**2, axis=1)) / 2.0))
    if pos_err is None:
        sigma = np.full(len(offsets), 0.01 * rms if rms > 0 else 1.0)
    else:
        sigma = np.asarray(pos_err, dtype=float)
        if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
            raise LwaError("anchor position errors must be positive and finite")
    return (sigma / max(rms, float(np.median(sigma)))) ** 2


def _choose_and_clip(norm: np.ndarray, offsets: np.ndarray, s_w: np.ndarray, kernel: Kernel | None,
                     max_degree: int, clip: dict) -> tuple[Kernel, np.ndarray, np.ndarray]:
    """The kernel (a given one, else chosen), the anchors kept by clipping with it, their LOO
    residuals: the model by leave-one-out on every anchor (the worst 20 % aside: wrong matches),
    clipped with, chosen again on the kept anchors, and clipped again when that changed the choice."""
    if kernel is not None:
        return (kernel, *_clip(norm, offsets, s_w, kernel=kernel, **clip))
    kernel = _best_kernel(norm, offsets, s_w, max_degree, trim=OUTLIER_TRIM)
    keep, cv = _clip(norm, offsets, s_w, kernel=kernel, **clip)
    chosen = _best_kernel(norm[keep], offsets[keep], s_w[keep], max_degree)
    if chosen != kernel:
        kernel = chosen
        keep, cv = _clip(norm, offsets, s_w, kernel=kernel, **clip)
    return kernel, keep, cv


def _rejected_residuals(model: OffsetModel, points: np.ndarray, offsets: np.ndarray, keep: np.ndarray,
                        cv: np.ndarray, clip_sigma: float) -> None:
    """The final model's prediction error at the anchors it dropped, into `cv`."""
    rejected = np.flatnonzero(~keep)
    if len(rejected):
        px, py = model(points[rejected, 0], points[rejected, 1])
        cv[rejected, 0] = offsets[rejected, 0] - px
        cv[rejected, 1] = offsets[rejected, 1] - py
        log.info("dropped %d outlier anchors (standardised leave-one-out residual > %.1f sigma)", len(rejected),
                 clip_sigma)


def fit_offset_model(
    points: np.ndarray,
    offsets: np.ndarray,
    *,
    shape: tuple[int, int],
    smoothing: float,
    pos_err: np.ndarray | None = None,
    clip_sigma: float = Dewarp.clip_sigma,
    clip_floor_px: float = 0.0,
    min_points: int = 3,
    max_degree: int = Dewarp.max_degree,
    kernel: Kernel | None = None,
) -> tuple[OffsetModel, np.ndarray, np.ndarray]:
    """Fit d(points) = offsets (pixels, shape (n, 2)) with outlier clipping.

    The thin-plate spline minimises sum_i |d_i - f(x_i)|^2 / s_i + (bending energy of f) with
    s_i = smoothing * (pos_err_i / rms offset)^2: a noise-to-signal ratio, so `smoothing` does not
    depend on the pixel scale, and noisier anchors weigh less. Its polynomial term (degree 1 to
    `max_degree`, chosen by leave-one-out residual) is what continues beyond the anchors' hull.

    Outliers are judged on leave-one-out residuals (a nearly interpolating spline passes through
    a wrong anchor, so its in-sample residual says nothing), standardised by their prediction
    error sqrt(1 / A_ii) so that a lone anchor at the edge of the hull, whose neighbours cannot
    predict it well, is not mistaken for a wrong match. An anchor is dropped when its standardised
    residual exceeds `clip_sigma` robust sigmas, its LOO residual exceeds `clip_floor_px`, and it
    is the worst among its five nearest anchors (a bad anchor also spoils its neighbours' LOO
    residuals); repeat. The clipping runs with a linear term, then again from all anchors with the
    degree that predicts the kept ones best.

    Returns the model, the boolean mask of the anchors kept, and the cross-validated residual
    vectors of every anchor (leave-one-out for kept anchors, the final model's prediction error
    for rejected ones): the honest accuracy of the screen at places it was not told about.

    A given `kernel` skips the model choice (its leave-one-out comparison of every candidate is
    most of the cost: one (n + m)^2 inverse each); the clipping runs with that kernel.
    """
    points = np.asarray(points, dtype=float)
    offsets = np.asarray(offsets, dtype=float)
    n = len(points)
    if n < 3:
        raise LwaError(f"need at least 3 anchors to fit a screen, got {n}")
    if smoothing < 0:
        raise LwaError(f"smoothing must be >= 0, got {smoothing}")
    ny, nx = shape
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    scale = max(nx, ny) / 2.0
    norm = (points - np.asarray(centre)) / scale
    _build(points, offsets, np.ones(n), centre=centre, scale=scale, smoothing=smoothing)  # degenerate? fail early
    weights = _anchor_weights(offsets, pos_err)
    clip = {"clip_sigma": clip_sigma, "clip_floor_px": clip_floor_px, "min_points": min_points}
    kernel, keep, cv = _choose_and_clip(norm, offsets, smoothing * weights, kernel, max_degree, clip)
    model = _build(points[keep], offsets[keep], weights[keep], centre=centre, scale=scale, smoothing=smoothing,
                   kernel=kernel)
    keep, cv, model = _readmit(model, points, offsets, weights, keep, cv, smoothing=smoothing, kernel=kernel,
                               clip_floor_px=clip_floor_px)
    _rejected_residuals(model, points, offsets, keep, cv, clip_sigma)
    log.info("screen: %s (the smallest leave-one-out residual of %d models)", kernel,
             len(candidate_kernels(max_degree, anchor_spacing(norm))))
    return model, keep, cv


@dataclass
class Screen:
    """Pixel offsets (observed minus true) sampled on a grid tied to a reference image grid."""

    dx: np.ndarray
    dy: np.ndarray
    factor: int
    ref_shape: tuple[int, int]  # (ny, nx)
    ref_wcs: WCS
    freq_mhz: float = math.nan
    header: fits.Header = field(default_factory=fits.Header)
    _cols: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)
    _rows: tuple[np.ndarray, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def is_identity(self) -> bool:
        """A screen that `fit` wrote because the fitted one did not beat the identity (or all zero)."""
        if str(self.header.get("DWSTATUS", "")).strip().upper() == "IDENTITY":
            return True
        return not (np.any(self.dx) or np.any(self.dy))

    def identity(self) -> Screen:
        """The same grid with zero offsets (dewarping with it leaves an image unchanged)."""
        return Screen(dx=np.zeros_like(self.dx), dy=np.zeros_like(self.dy), factor=self.factor,
                      ref_shape=self.ref_shape, ref_wcs=self.ref_wcs, freq_mhz=self.freq_mhz, header=self.header)

    @property
    def grid_wcs(self) -> WCS:
        return coarse_wcs(self.ref_wcs, self.factor)

    def offsets_at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear interpolation of the screen at reference-grid pixel coordinates (0-based)."""
        f = self.factor
        coords = np.array([(np.asarray(y, dtype=float) - (f - 1) / 2.0) / f,
                           (np.asarray(x, dtype=float) - (f - 1) / 2.0) / f])
        dx = map_coordinates(self.dx.astype(float), coords, order=1, mode="nearest")
        dy = map_coordinates(self.dy.astype(float), coords, order=1, mode="nearest")
        return dx, dy

    def full_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """dx, dy at every pixel of the reference grid (separable bilinear upsampling)."""
        yx = self.rows(0, self.ref_shape[0])
        return yx[1], yx[0]

    def rows(self, y0: int, y1: int, *, out: np.ndarray | None = None, scale: float = 1.0,
             work: np.ndarray | None = None) -> np.ndarray:
        """(dy, dx) * scale on reference rows y0..y1-1, every column, as one array (2, rows, nx):
        the layout of `map_coordinates` coordinates, so block-wise resampling fills them in place
        (`out`, and `work` of shape (rows, nx), are reused buffers: fresh pages cost more than the
        arithmetic)."""
        nx = self.ref_shape[1]
        if out is None:
            out = np.empty((2, y1 - y0, nx))
        if self.factor == 1:
            np.multiply(self.dy[y0:y1], scale, out=out[0])
            np.multiply(self.dx[y0:y1], scale, out=out[1])
            return out
        if self._cols is None:  # interpolate along x once, on the coarse rows: small
            x0, x1, wx = _axis_weights(nx, self.dx.shape[1], self.factor)
            self._cols = tuple(np.ascontiguousarray(np.asarray(c, dtype=float)[:, x0] * (1.0 - wx)
                                                    + np.asarray(c, dtype=float)[:, x1] * wx)
                               for c in (self.dy, self.dx))
            self._rows = _axis_weights(self.ref_shape[0], self.dx.shape[0], self.factor)
        lo, hi, w = (a[y0:y1] for a in self._rows)
        tmp = work if work is not None else np.empty((y1 - y0, nx))
        for plane, cols in zip(out, self._cols, strict=True):
            np.take(cols, lo, axis=0, out=plane, mode="clip")  # whole-row gathers; "clip": unbuffered
            plane *= ((1.0 - w) * scale)[:, None]
            np.take(cols, hi, axis=0, out=tmp, mode="clip")
            tmp *= (w * scale)[:, None]
            plane += tmp
        return out


def _axis_weights(n_fine: int, n_coarse: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.clip((np.arange(n_fine) - (factor - 1) / 2.0) / factor, 0.0, n_coarse - 1.0)
    lo = np.minimum(np.floor(pos).astype(int), max(n_coarse - 2, 0))
    hi = np.minimum(lo + 1, n_coarse - 1)
    return lo, hi, pos - lo


def sample_screen(model: OffsetModel, *, shape: tuple[int, int], wcs: WCS, max_grid_px: int = Dewarp.max_grid_px,
                  freq_mhz: float = math.nan, header: fits.Header | None = None) -> Screen:
    """Evaluate `model` on the reference grid (or a grid coarser by an integer factor so that
    neither side exceeds `max_grid_px`)."""
    ny, nx = shape
    factor = max(1, math.ceil(max(nx, ny) / max_grid_px))
    gy, gx = -(-ny // factor), -(-nx // factor)
    yy, xx = np.mgrid[0:gy, 0:gx].astype(float)
    xx = xx * factor + (factor - 1) / 2.0
    yy = yy * factor + (factor - 1) / 2.0
    dx, dy = model(xx, yy)
    return Screen(dx=dx.astype(np.float32), dy=dy.astype(np.float32), factor=factor, ref_shape=(ny, nx),
                  ref_wcs=wcs.celestial, freq_mhz=freq_mhz, header=header if header is not None else fits.Header())


def write_screen(path: str | Path, screen: Screen, *, cards: dict[str, tuple] | None = None,
                 argv: list[str] | None = None, extra_history: list[str] | None = None, overwrite: bool = True
                 ) -> Path:
    """Write `screen` as a FITS cube (2, ny, nx) with the layout of this module's docstring;
    `cards` are extra header keywords {key: (value, comment)}."""
    header = fits.Header()
    header.update(screen.grid_wcs.to_header())
    header["CTYPE3"], header["CRPIX3"], header["CRVAL3"], header["CDELT3"] = "DWPLANE", 1.0, 1.0, 1.0
    for key in _COPY_KEYS:
        if key in screen.header:
            header[key] = (screen.header[key], screen.header.comments[key])
    header["BUNIT"] = ("pixel", "offsets in pixels of the reference image grid")
    header["IMGCAT"] = ("screen", "ionospheric offset screen (lwa-dewarp)")
    header["PLANE1"] = ("DX", "observed - true x [reference pixels]")
    header["PLANE2"] = ("DY", "observed - true y [reference pixels]")
    header["SCRFACT"] = (screen.factor, "screen pixel = SCRFACT^2 reference pixels")
    header["REFNAX1"] = (screen.ref_shape[1], "reference image NAXIS1")
    header["REFNAX2"] = (screen.ref_shape[0], "reference image NAXIS2")
    if math.isfinite(screen.freq_mhz):
        header["FREQMHZ"] = (screen.freq_mhz, "frequency of the fitted image [MHz]")
    for key, (value, comment) in (cards or {}).items():
        if value is not None:
            header[key] = (value, comment)
    data = np.stack([screen.dx, screen.dy]).astype(np.float32)
    return write_image(path, data, header, tool=TOOL, argv=argv, extra_history=extra_history, overwrite=overwrite)


def read_screen(path: str | Path) -> Screen:
    """Read a screen written by `write_screen`; LwaError naming the file when it is not one."""
    path = Path(path)
    if not path.exists():
        raise LwaError(f"screen not found: {path}")
    data, header = read_image(path)
    if header.get("IMGCAT") != "screen" or data.ndim != 3 or data.shape[0] != 2:
        raise LwaError(f"{path} is not an lwa-dewarp screen (expected IMGCAT='screen' and 2 planes dx, dy)")
    try:
        factor = int(header["SCRFACT"])
        ref_shape = (int(header["REFNAX2"]), int(header["REFNAX1"]))
    except (KeyError, ValueError):
        raise LwaError(f"screen {path} lacks SCRFACT/REFNAX1/REFNAX2") from None
    wcs = reference_wcs(celestial_wcs(header), factor)
    return Screen(dx=np.asarray(data[0], dtype=np.float32), dy=np.asarray(data[1], dtype=np.float32), factor=factor,
                  ref_shape=ref_shape, ref_wcs=wcs, freq_mhz=float(header.get("FREQMHZ", math.nan)),
                  header=header)
