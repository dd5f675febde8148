"""Find compact sources in a restored image: photutils detection + a small Gaussian fit per peak.

Detection is photutils: a local background and RMS from `Background2D` (sigma-clipped median and
MAD-based RMS in boxes of `background_box_beams` (8) beams, with the NaN pixels outside the horizon excluded;
a global sigma-clipped estimate when the image is too small for boxes) and the local maxima above
`snr` times the local RMS from `find_peaks`.

The box statistics are Background2D's own (sigma clipping included), but its median and MAD-std
estimators are replaced by `SortedMedian` / `SortedMADStd`: the same numbers (numpy's median of
the finite values, astropy's `mad_std`; bitwise on the bench images and on a dense run's 34
products), taken from one vectorised `np.sort` of every box instead of `np.nanmedian`, which runs
`np.apply_along_axis` over the boxes (boxes of >= 600 pixels) and dominated `lwa-dewarp apply`'s
time (bench/bench_dewarp.py). The 3 x 3 median filter of the RMS mesh (photutils'
`generic_filter` with a Python `nanmedian` per mesh point) is the same sort over the nine
neighbours (`mesh_median_filter`). No library gives this: bottleneck (photutils' own fast path)
changes astropy's NaN statistics at float rounding in every tool, and lwa_transient's block
statistics are another estimator (no sigma clipping, no IDW fill).

Positions and sizes come from a least-squares fit of an elliptical Gaussian plus a constant in a
box of 2 x `fit_box_beams` (1.2) beams around each peak (the project's one fitter,
`lwa_common.fitting.fit_gaussian`; a fit that did not converge is no detection), not from a segment
centroid: a moment centroid over a thresholded segment is biased by the segment boundary and by
neighbouring emission, and the dewarp screen needs positions good to a small fraction of the beam.
The fitted size decides whether a source is compact (close to the restoring beam BMAJ/BMIN).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.stats import SigmaClip, sigma_clipped_stats
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.ndimage import map_coordinates, spline_filter

from lwa_common.config import Dewarp
from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs
from lwa_common.fitting import FWHM_PER_SIGMA, MAD_TO_SIGMA, GaussianFit2D, fit_gaussian

__all__ = ["Beam", "beam_from_header", "celestial_wcs", "estimate_background", "local_rms_at", "find_compact_sources",
           "mesh_median_filter", "SortedMedian", "SortedMADStd", "DETECTION_COLUMNS"]

log = logging.getLogger(__name__)

MESH_FILTER_SIZE = 3  # Background2D's median filter over the box mesh
SIGMA_RANGE = (0.15, 6.0)  # free sigmas: 0.15 x the beam's minor .. 6 x its major sigma
MAX_PEAKS = 20000

DETECTION_COLUMNS = [
    "x", "y", "ra_deg", "dec_deg", "peak_jy", "flux_jy", "rms_jy", "snr", "fwhm_maj_px", "fwhm_min_px",
    "pos_err_px", "compact",
]


class Beam:
    """The restoring beam: FWHM in degrees (header) and in pixels of the image grid."""

    def __init__(self, bmaj_deg: float, bmin_deg: float, bpa_deg: float, pixel_deg: float) -> None:
        self.bmaj_deg, self.bmin_deg, self.bpa_deg, self.pixel_deg = bmaj_deg, bmin_deg, bpa_deg, pixel_deg

    @property
    def bmaj_px(self) -> float:
        return self.bmaj_deg / self.pixel_deg

    @property
    def bmin_px(self) -> float:
        return self.bmin_deg / self.pixel_deg

    @property
    def fwhm_arcmin(self) -> float:
        """Geometric-mean FWHM (arcmin): the 'beam' that astrometric tolerances refer to."""
        return math.sqrt(self.bmaj_deg * self.bmin_deg) * 60.0

    @property
    def area_px(self) -> float:
        """Gaussian beam area in pixels (converts Jy/beam sums to Jy)."""
        return math.pi / (4.0 * math.log(2.0)) * self.bmaj_px * self.bmin_px


def beam_from_header(header: fits.Header, *, where: str = "image") -> Beam:
    """The restoring beam of a wsclean-style header; LwaError when BMAJ/BMIN are missing."""
    try:
        bmaj = float(header["BMAJ"])
        bmin = float(header.get("BMIN", bmaj))
    except (KeyError, TypeError, ValueError):
        raise LwaError(f"{where} has no restoring beam (BMAJ/BMIN keywords); expected a restored image") from None
    if not (bmaj > 0 and bmin > 0 and math.isfinite(bmaj) and math.isfinite(bmin)):
        raise LwaError(f"{where} has an invalid restoring beam BMAJ={bmaj} BMIN={bmin}")
    scales = np.abs(proj_plane_pixel_scales(celestial_wcs(header)))  # deg (CUNIT deg)
    pixel = float(np.sqrt(scales[0] * scales[1]))
    return Beam(bmaj, bmin, float(header.get("BPA", 0.0)), pixel)


def _sorted_last(data: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(values sorted along the last axis, NaN last; finite count of each row) of `data` reduced
    over `axis` (None: all of it), the dtype kept (numpy's median is float32 for float32)."""
    values = np.asarray(data)
    values = values.reshape(-1) if axis is None else np.moveaxis(values, axis, -1)
    ordered = np.sort(values, axis=-1)
    return ordered, np.count_nonzero(~np.isnan(ordered), axis=-1)


def _ranked_median(ordered: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median of the finite values of each sorted row (NaN when it has none), computed as numpy's
    median is: the middle value, or the sum of the two middle values divided by 2. Rows may be
    empty (Background2D's sigma clipping without an axis returns the kept values alone)."""
    if ordered.shape[-1] == 0:
        return np.full(count.shape, np.nan, dtype=ordered.dtype)
    lo = np.maximum((count - 1) // 2, 0)[..., None]
    hi = np.maximum(count // 2, 0)[..., None]
    low = np.take_along_axis(ordered, lo, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, hi, axis=-1)[..., 0]
    median = (low + high) / 2
    return np.where(count > 0, median, np.nan).astype(ordered.dtype, copy=False)


class SortedMedian:
    """photutils background estimator: `MedianBackground` (np.nanmedian of each box) from one sort
    of every box; the sigma clipping is Background2D's."""

    sigma_clip = None

    def __call__(self, data: np.ndarray, axis: int | None = None, masked: bool = False) -> np.ndarray:
        return _ranked_median(*_sorted_last(data, axis))


class SortedMADStd:
    """photutils RMS estimator: `MADStdBackgroundRMS` (astropy `mad_std` with NaN ignored: 1.4826 x
    the median of |x - median|) from two sorts of every box."""

    sigma_clip = None

    def __call__(self, data: np.ndarray, axis: int | None = None, masked: bool = False) -> np.ndarray:
        ordered, count = _sorted_last(data, axis)  # a copy of our own: |x - median| is made in it
        deviation = np.abs(np.subtract(ordered, _ranked_median(ordered, count)[..., None], out=ordered), out=ordered)
        deviation.sort(axis=-1)  # NaN stays last: the counts hold
        return _ranked_median(deviation, count) * MAD_TO_SIGMA


def mesh_median_filter(mesh: np.ndarray, size: int = MESH_FILTER_SIZE) -> np.ndarray:
    """Background2D's median filter of a box mesh: the median of the finite values among each
    point's `size` x `size` neighbours, NaN beyond the edges (`generic_filter(mesh, nanmedian,
    mode='constant', cval=nan)`), from one sort of the stacked neighbours; computed in float64
    and returned in the mesh's dtype, as generic_filter does."""
    mesh = np.asarray(mesh)
    if size <= 1:
        return mesh
    half = size // 2
    ny, nx = mesh.shape
    padded = np.pad(mesh.astype(float), half, constant_values=np.nan)
    stack = np.stack([padded[dy:dy + ny, dx:dx + nx] for dy in range(size) for dx in range(size)], axis=-1)
    return _ranked_median(*_sorted_last(stack, -1)).astype(mesh.dtype, copy=False)


def estimate_background(plane: np.ndarray, *, box_px: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Local background and RMS maps (photutils `Background2D`), or global sigma-clipped values.

    NaN pixels are excluded (coverage mask). Returns (background, rms, method).
    """
    background, rms, method = _local_rms(plane, *_background2d(plane, box_px))
    return background(), rms, method


def local_rms_at(plane: np.ndarray, *, box_px: int) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], float, str]:
    """The RMS map of `estimate_background` at chosen pixels, without the full-size map: (rms_at(y, x) for
    integer pixel arrays, a lower bound of the RMS over the finite pixels, method).

    The full map is photutils' cubic spline zoom of the box mesh (samples at box centres, mode
    'reflect', clipped to the mesh range): sampling that spline with `map_coordinates` at a few
    pixels gives the same values (to ~1e-15) for a fraction of the time of the full-size zoom,
    and the clip makes the mesh minimum a lower bound, so that pixels below `snr` x that bound
    need no RMS at all. Any other case (a mesh value <= 0, the global fallback) uses the full map.
    """
    bkg, box = _background2d(plane, box_px, filter_size=1)  # the mesh filter is ours: same values, vectorised
    if bkg is not None:
        mesh = np.asarray(mesh_median_filter(bkg.background_rms_mesh), dtype=float)
        if np.isfinite(mesh).all() and mesh.min() > 0:
            return _mesh_spline(mesh, np.broadcast_to(bkg.box_size, 2)), float(mesh.min()), f"Background2D box {box} px"
        bkg, box = _background2d(plane, box_px)  # the full map: photutils' own filter and zoom
    _, rms, method = _local_rms(plane, bkg, box)
    finite = np.isfinite(plane)
    return (lambda y, x: rms[y, x]), float(np.min(rms[finite])), method


def _mesh_spline(mesh: np.ndarray, box_size: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """rms_at(y, x): the clipped cubic spline of `mesh` whose samples are the centres of boxes of
    `box_size` (y, x) pixels (photutils' zoom of the mesh with grid_mode, evaluated at points)."""
    coeffs = spline_filter(mesh, order=3, mode="reflect")
    low, high = mesh.min(), mesh.max()

    def rms_at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        cy = (np.asarray(y, dtype=float) + 0.5) / box_size[0] - 0.5
        cx = (np.asarray(x, dtype=float) + 0.5) / box_size[1] - 0.5
        values = map_coordinates(coeffs, [cy, cx], order=3, mode="reflect", prefilter=False)
        return np.clip(values, low, high)

    return rms_at


def _background2d(plane: np.ndarray, box_px: int, *, filter_size: int = MESH_FILTER_SIZE):
    """(photutils Background2D in boxes of `box_px` or None when the image is too small for boxes
    or has too few unmasked ones, the box size); LwaError without finite pixels. Its meshes are
    median-filtered over `filter_size` boxes (1: not filtered)."""
    from photutils.background import Background2D

    finite = np.isfinite(plane)
    if not finite.any():
        raise LwaError("image has no finite pixels")
    ny, nx = plane.shape
    box = int(min(box_px, ny // 4, nx // 4))
    if box < 8:
        return None, box
    try:
        return Background2D(
            np.where(finite, plane, 0.0), box, coverage_mask=~finite, filter_size=filter_size,
            sigma_clip=SigmaClip(sigma=3.0, maxiters=10), bkg_estimator=SortedMedian(),
            bkg_rms_estimator=SortedMADStd(), exclude_percentile=50.0,
        ), box
    except ValueError as err:  # too few unmasked boxes
        log.info("Background2D failed (%s); using global sigma-clipped statistics", err)
        return None, box


def _local_rms(plane: np.ndarray, bkg, box: int) -> tuple[Callable[[], np.ndarray], np.ndarray, str]:
    """(background map on demand, RMS map, method): those of `bkg` (Background2D or None) when
    every finite pixel gets a positive RMS, else the global sigma-clipped median and RMS."""
    finite = np.isfinite(plane)
    if bkg is not None:
        rms = np.asarray(bkg.background_rms, dtype=float)
        good = np.isfinite(rms) & (rms > 0)
        if good[finite].all():
            return lambda: np.asarray(bkg.background, dtype=float), rms, f"Background2D box {box} px"
    _, median, std = sigma_clipped_stats(plane[finite], sigma=3.0, maxiters=10)
    if not std > 0:
        raise LwaError("image noise is zero: cannot set a detection threshold")
    return lambda: np.full(plane.shape, float(median)), np.full(plane.shape, float(std)), "global sigma-clipped"


def _fit_one(plane: np.ndarray, xp: int, yp: int, beam: Beam, half: int) -> GaussianFit2D | None:
    """The free elliptical Gaussian (+ constant) of the peak at (xp, yp), started at the restoring
    beam (`lwa_common.fitting.fit_gaussian`); None unless the fit converged."""
    s_maj = beam.bmaj_px / FWHM_PER_SIGMA
    s_min = beam.bmin_px / FWHM_PER_SIGMA
    fit = fit_gaussian(plane, xp, yp, sigma_x=s_maj, sigma_y=s_min, theta=math.radians(90.0 + beam.bpa_deg),
                       half_box=half, centre_reach=half, sigma_range=SIGMA_RANGE)
    return fit if fit is not None and fit.converged else None


def find_compact_sources(
    plane: np.ndarray,
    header: fits.Header,
    *,
    snr: float,
    max_size_beams: float = Dewarp.max_size_beams,
    background_box_beams: float = Dewarp.background_box_beams,
    fit_box_beams: float = Dewarp.fit_box_beams,
) -> pd.DataFrame:
    """Sources above `snr` x local RMS, each fitted with a Gaussian; `compact` marks beam-sized ones.

    `plane` is the 2-D image (Jy/beam; NaN = no data), `header` gives the WCS and the restoring
    beam. Every aperture is in beams of that header: background boxes of `background_box_beams`,
    Gaussian fits in a box of half-side `fit_box_beams` (BMAJ). Returns one row per fitted peak with columns `DETECTION_COLUMNS` (x, y 0-based pixels;
    flux_jy the Gaussian's integral; pos_err_px the expected 1-sigma position error).
    """
    from photutils.detection import find_peaks

    if snr <= 0:
        raise LwaError(f"--detection-sigma must be positive, got {snr}")
    plane = np.asarray(plane, dtype=float)
    beam = beam_from_header(header)
    wcs = celestial_wcs(header)
    box_px = max(16, int(round(background_box_beams * beam.bmaj_px)))
    background, rms, method = estimate_background(plane, box_px=box_px)
    finite = np.isfinite(plane)
    subtracted = np.where(finite, plane - background, np.nan)
    residual = np.nan_to_num(subtracted, nan=0.0)
    footprint = max(3, 2 * int(round(beam.bmaj_px / 2)) + 1)
    table = find_peaks(residual, threshold=snr * rms, box_size=footprint, mask=~finite, n_peaks=MAX_PEAKS)
    n_peaks = 0 if table is None else len(table)
    log.info("background: %s; median RMS %.4g; %d peaks above %.1f sigma", method,
             float(np.median(rms[finite])), n_peaks, snr)
    if n_peaks >= MAX_PEAKS:
        log.warning("more than %d peaks above %.1f sigma: kept the brightest", MAX_PEAKS, snr)
    rows = []
    half = max(3, int(math.ceil(fit_box_beams * beam.bmaj_px)))
    for xp, yp in zip(table["x_peak"] if n_peaks else [], table["y_peak"] if n_peaks else [], strict=True):
        xp, yp = int(xp), int(yp)
        fit = _fit_one(subtracted, xp, yp, beam, half)
        if fit is None:
            continue
        amp, x0, y0, sa, sb = fit.amplitude, fit.x, fit.y, fit.sigma_x, fit.sigma_y
        local_rms = float(rms[yp, xp])
        fwhm_maj = FWHM_PER_SIGMA * max(sa, sb)
        fwhm_min = FWHM_PER_SIGMA * min(sa, sb)
        ratio = amp / local_rms
        compact = (
            ratio >= snr
            and fwhm_maj <= max_size_beams * beam.bmaj_px
            and fwhm_min >= 0.5 * beam.bmin_px
            and abs(x0 - xp) <= max(1.0, beam.bmaj_px)
            and abs(y0 - yp) <= max(1.0, beam.bmaj_px)
        )
        rows.append({
            "x": float(x0), "y": float(y0), "peak_jy": float(amp),
            "flux_jy": float(amp * 2 * math.pi * sa * sb / beam.area_px), "rms_jy": local_rms,
            "snr": float(ratio), "fwhm_maj_px": float(fwhm_maj), "fwhm_min_px": float(fwhm_min),
            "pos_err_px": float(math.sqrt(2.0) * math.sqrt(sa * sb) / max(ratio, 1e-3)), "compact": bool(compact),
        })
    out = pd.DataFrame(rows, columns=[c for c in DETECTION_COLUMNS if c not in ("ra_deg", "dec_deg")])
    if len(out):
        ra, dec = wcs.pixel_to_world_values(out["x"].to_numpy(), out["y"].to_numpy())
        out.insert(2, "ra_deg", np.mod(ra, 360.0))
        out.insert(3, "dec_deg", dec)
        out = out[np.isfinite(out["ra_deg"]) & np.isfinite(out["dec_deg"])]
    else:
        out.insert(2, "ra_deg", pd.Series(dtype=float))
        out.insert(3, "dec_deg", pd.Series(dtype=float))
    out = out.sort_values("snr", ascending=False).reset_index(drop=True)
    log.info("fitted %d sources, %d compact (FWHM <= %.2f beams)", len(out), int(out["compact"].sum()),
             max_size_beams)
    return out
