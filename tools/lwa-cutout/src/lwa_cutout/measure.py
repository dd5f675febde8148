"""Photometry of one sky position in an all-sky image.

For a position (a catalogue target, a planet, a calibrator) `measure_position` reports

- the **catalogue-position value**: the image bilinearly interpolated at the position (Jy/beam);
- the **peak** within the search circle, radius = BMAJ + 120" x (85 / nu MHz) (the restoring
  beam plus room for an ionospheric shift, which grows as nu^-2 but is padded linearly as in the
  seed pipeline); Stokes I takes the largest value, Stokes V the largest |value| (with its sign).
  The peak is the image's maximum between pixels: the top of the Gaussian through the 3 x 3
  pixels around the brightest one (`gaussian_peak_3x3`), its value and position, when the beam
  spans >= 3 px (the brightest pixel alone reads up to 7 % low at 4 px per beam, 30 % at 1.5);
  the brightest pixel itself on coarser pixels or where the 3 x 3 has a gap or a pixel of the
  other sign;
- the **local RMS**: 1.4826 x MAD in an annulus of 3-6 beams (`cfg.cutout`), NaN-aware, so
  sources inside the annulus do not inflate it;
- a **Gaussian fit** (`lwa_common.fitting`: astropy.modeling Gaussian2D, trust-region least
  squares) around the peak when the peak is above `detection_sigma` x RMS. A *point fit* (the
  restoring beam's shape; amplitude and centre free; the pixels within 0.75 BMAJ, the main lobe)
  always runs; for Stokes I a *free fit* follows, and when it converges and is resolved (geometric
  mean FWHM >= 1.2 x the beam's) its integral is the flux, else the point fit's peak is. Stokes V
  images are dirty: a free shape takes the sidelobes for extent (it read V 3-4x too high) and the
  beam-shaped fit reads 3-7 % high (the main lobe is not the restoring Gaussian on its flanks), so
  V is the peak of the Gaussian through the 3 x 3 pixels at the top of the lobe (the point fit's
  position; its peak where the 3 x 3 has a pixel of the other sign, or below 3 px per beam, where
  the 3 x 3 reaches the flanks too). The model is evaluated at pixel centres, as wsclean samples its restored beam,
  so the peak between pixels is right at any sampling (checked down to 1.5 px per beam, where the
  peak pixel alone reads up to ~30 % low). A fit that did not converge (iteration limit, a
  parameter on its bound, no finite covariance) is never reported: no `fit_*` values, and a note.

Pixels closer than `mask_radius_deg` (1 FWHM in the pipeline) to a confusing source are NaN for
the peak search, the RMS and the fit, so a brighter neighbour can neither be taken for the peak
nor enter the fit or RMS (the catalogue-position value is read from the unmasked image); with
masked pixels near the peak only the point fit is used. The fitted centre is bounded to 0.5 beam
of the peak pixel, so the wings of a masked neighbour cannot pull it.

Every distance (search circle, annulus, masks) is an angular separation computed per pixel and
every radius is in beams of the image's header (the search circle adds an ionospheric allowance,
`pad_arcsec_at_85mhz` x 85 / nu, to one BMAJ); the fit runs in pixel space where wsclean's PSF is
shift-invariant, so the integrated flux is ``peak x fitted area / restoring-beam area`` with both
areas in pixels.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from lwa_common.config import Cutout
from lwa_common.errors import LwaError
from lwa_common.fitting import FWHM_PER_SIGMA, GaussianFit2D, fit_gaussian, gaussian_peak_3x3
from lwa_common.products import MEASUREMENT_COLUMNS

__all__ = [
    "RestoringBeam",
    "GaussianFit",
    "Measurement",
    "MEASUREMENT_COLUMNS",
    "search_radius_deg",
    "robust_rms",
    "bilinear",
    "angular_separation_deg",
    "measure_position",
]

log = logging.getLogger(__name__)

MIN_ANNULUS_PIXELS = 8
FIT_HALF_BOX_BEAMS = 1.5  # the fit uses pixels within 1.5 BMAJ of the peak
MAX_FIT_BOX_BEAMS = 4.0  # an extended source is refitted on a box up to 1.5 x 4 BMAJ
FIT_CENTRE_BEAMS = 0.5  # the fitted centre stays within 0.5 BMAJ of the peak pixel
POINT_FIT_RADIUS_BEAMS = 0.75  # the point (beam-shaped) fit uses the pixels within 0.75 BMAJ: the main lobe
MIN_PX_PER_BEAM_3X3 = 3.0  # coarser: the 3 x 3 reaches the lobe's flanks, the beam-shaped fit is used
RESOLVED_FACTOR = 1.2  # a free fit this much wider than the beam (geometric mean) is an extended source


@dataclass(frozen=True)
class RestoringBeam:
    """Restoring beam from BMAJ / BMIN / BPA (degrees; BPA east of north)."""

    major_deg: float
    minor_deg: float
    pa_deg: float = 0.0

    @classmethod
    def from_header(cls, header: fits.Header, *, fallback: RestoringBeam | None = None,
                    where: str = "image") -> RestoringBeam:
        bmaj, bmin = header.get("BMAJ"), header.get("BMIN")
        if bmaj is None or not np.isfinite(float(bmaj)) or float(bmaj) <= 0:
            if fallback is not None:
                return fallback
            raise LwaError(f"{where} has no restoring beam (BMAJ missing or not positive)")
        bmin = float(bmin) if bmin is not None and float(bmin) > 0 else float(bmaj)
        return cls(float(bmaj), bmin, float(header.get("BPA", 0.0) or 0.0))


@dataclass(frozen=True)
class GaussianFit:
    """A 2-D Gaussian fitted around the peak. Sizes are FWHM; PA east of north."""

    peak_jy: float
    flux_jy: float  # integrated: peak x fitted area / beam area
    ra_deg: float
    dec_deg: float
    major_arcsec: float
    minor_arcsec: float
    pa_deg: float
    x: float
    y: float
    resolved: bool = False  # larger than the beam: flux_jy is the integral, else the point-fit peak


@dataclass(frozen=True)
class Measurement:
    """Everything measured at one position in one image (NaN where not measurable)."""

    stokes: str
    cat_jy: float
    peak_jy: float
    peak_ra_deg: float
    peak_dec_deg: float
    peak_offset_arcsec: float
    rms_jy: float
    snr: float
    detected: bool
    fit: GaussianFit | None
    search_radius_arcsec: float
    masked_px: int = 0
    note: str = ""

    @classmethod
    def empty(cls, stokes: str, *, search_radius_arcsec: float = math.nan, note: str = "") -> Measurement:
        nan = math.nan
        return cls(stokes, nan, nan, nan, nan, nan, nan, nan, False, None, search_radius_arcsec, 0, note)

    @property
    def best_flux_jy(self) -> float:
        """Integrated flux of the fit when there is one, else the peak value."""
        return self.fit.flux_jy if self.fit is not None else self.peak_jy

    def columns(self, prefix: str, image: str = "") -> dict[str, Any]:
        """This measurement as CSV cells named `{prefix}_{MEASUREMENT_COLUMNS}`."""
        fit = self.fit
        values = {
            "image": image,
            "cat_jy": self.cat_jy,
            "peak_jy": self.peak_jy,
            "peak_ra_deg": self.peak_ra_deg,
            "peak_dec_deg": self.peak_dec_deg,
            "peak_offset_arcsec": self.peak_offset_arcsec,
            "rms_jy": self.rms_jy,
            "snr": self.snr,
            "detected": self.detected,
            "fit_peak_jy": fit.peak_jy if fit else math.nan,
            "fit_flux_jy": fit.flux_jy if fit else math.nan,
            "fit_ra_deg": fit.ra_deg if fit else math.nan,
            "fit_dec_deg": fit.dec_deg if fit else math.nan,
            "fit_major_arcsec": fit.major_arcsec if fit else math.nan,
            "fit_minor_arcsec": fit.minor_arcsec if fit else math.nan,
            "fit_pa_deg": fit.pa_deg if fit else math.nan,
            "masked_px": self.masked_px,
            "note": self.note,
        }
        return {f"{prefix}_{key}": values[key] for key in MEASUREMENT_COLUMNS}


def search_radius_deg(beam_major_deg: float, freq_mhz: float, *,
                      pad_arcsec_at_85mhz: float = Cutout.ionospheric_pad_arcsec_at_85mhz) -> float:
    """BMAJ + pad x (85 / nu): the beam plus an ionospheric allowance (DESIGN.md)."""
    if not freq_mhz or not np.isfinite(freq_mhz) or freq_mhz <= 0:
        raise LwaError(f"image frequency {freq_mhz!r} MHz is not usable for the search radius")
    return float(beam_major_deg) + pad_arcsec_at_85mhz * (85.0 / freq_mhz) / 3600.0


def robust_rms(values: np.ndarray) -> float:
    """astropy `mad_std` (1.4826 x median absolute deviation) of the finite values (NaN when too few)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < MIN_ANNULUS_PIXELS:
        return math.nan
    return float(mad_std(v))


def bilinear(image: np.ndarray, x: float, y: float) -> float:
    """Bilinear interpolation at pixel (x, y) (0-based); NaN outside or next to a NaN pixel."""
    ny, nx = image.shape
    if not (np.isfinite(x) and np.isfinite(y)) or x < 0 or y < 0 or x > nx - 1 or y > ny - 1:
        return math.nan
    x0, y0 = min(int(math.floor(x)), nx - 2) if nx > 1 else 0, min(int(math.floor(y)), ny - 2) if ny > 1 else 0
    fx, fy = x - x0, y - y0
    x1, y1 = min(x0 + 1, nx - 1), min(y0 + 1, ny - 1)
    v00, v10, v01, v11 = image[y0, x0], image[y0, x1], image[y1, x0], image[y1, x1]
    value = (1 - fx) * (1 - fy) * v00 + fx * (1 - fy) * v10 + (1 - fx) * fy * v01 + fx * fy * v11
    return float(value)


def angular_separation_deg(ra1: Any, dec1: Any, ra2: Any, dec2: Any) -> np.ndarray:
    """Great-circle separation (Vincenty formula, stable at all distances), degrees; arrays broadcast."""
    l1, b1, l2, b2 = (np.radians(np.asarray(a, dtype=float)) for a in (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    sdl, cdl = np.sin(dl), np.cos(dl)
    sb1, cb1, sb2, cb2 = np.sin(b1), np.cos(b1), np.sin(b2), np.cos(b2)
    num = np.hypot(cb2 * sdl, cb1 * sb2 - sb1 * cb2 * cdl)
    den = sb1 * sb2 + cb1 * cb2 * cdl
    return np.degrees(np.arctan2(num, den))


def _pixel_scale_deg(wcs: WCS) -> tuple[float, float]:
    sx, sy = proj_plane_pixel_scales(wcs)
    return float(sx), float(sy)


def _x_axis_east(wcs: WCS) -> bool:
    """True when RA increases with x (CDELT1 > 0): the beam PA then turns the other way."""
    try:
        return bool(wcs.pixel_scale_matrix[0, 0] > 0)
    except (AttributeError, IndexError):
        return False


def _fit(
    box: np.ndarray, xp: int, yp: int, *, beam: RestoringBeam, scale_deg: float, x_east: bool,
    masked: np.ndarray | None, point_only: bool,
) -> tuple[FitOutcome | None, str]:
    """The Gaussian fit of one peak (`lwa_common.fitting`), in pixels of `box`; (outcome, note).

    A **point fit** always runs: the restoring beam's shape, amplitude and centre free, on the
    pixels within `POINT_FIT_RADIUS_BEAMS` of the peak (the main lobe, also of a dirty image's
    PSF), no background term. With `point_only` (Stokes V: dirty images, whose sidelobes a free
    shape would take for extent) the peak is that of the Gaussian through the 3 x 3 pixels at the
    top of the main lobe (`gaussian_peak_3x3`; the point fit where that fails). Otherwise a **free fit** follows on a box of `FIT_HALF_BOX_BEAMS` (refitted
    on a larger box for an extended source); when it converges and is resolved (geometric-mean
    FWHM ≥ `RESOLVED_FACTOR` × the beam's) its integral is the flux, else the point fit's peak is.
    A fit that did not converge is never used: (None, the reason).
    """
    sig_maj = beam.major_deg / scale_deg / FWHM_PER_SIGMA
    sig_min = beam.minor_deg / scale_deg / FWHM_PER_SIGMA
    theta0 = math.radians(90.0 - beam.pa_deg) if x_east else math.radians(90.0 + beam.pa_deg)
    bmaj_px = beam.major_deg / scale_deg
    reach = max(1.0, FIT_CENTRE_BEAMS * bmaj_px)
    radius = max(POINT_FIT_RADIUS_BEAMS * bmaj_px, 1.5)
    point = fit_gaussian(box, xp, yp, sigma_x=sig_maj, sigma_y=sig_min, theta=theta0, fixed_shape=True,
                         fit_offset=False, half_box=int(math.ceil(radius)) + 1, radius=radius, centre_reach=reach)
    if point is not None and not point.converged:
        log.debug("point fit did not converge: %s", point.message)
    point_ok = point if point is not None and point.converged else None
    if point_only:
        # a dirty image: the peak of the Gaussian through the 3 x 3 pixels at the top of the main
        # lobe (the beam-shaped fit, biased by the lobe's non-Gaussian flanks, gives the position)
        if point_ok is None:
            return None, _no_fit(point)
        top = gaussian_peak_3x3(box, xp, yp) if _well_sampled(beam, scale_deg) else None
        if top is not None:
            point_ok = replace(point_ok, amplitude=top[0])
        return FitOutcome(point_ok, resolved=False), ""
    if masked is not None and _masked_near(masked, xp, yp, bmaj_px):
        # a masked neighbour's unmasked wings would widen a free shape: the beam shape only
        if point_ok is None:
            return None, _no_fit(point)
        return FitOutcome(point_ok, resolved=False), ""
    half = max(2, int(math.ceil(FIT_HALF_BOX_BEAMS * bmaj_px)))
    free = fit_gaussian(box, xp, yp, sigma_x=sig_maj, sigma_y=sig_min, theta=theta0, half_box=half,
                        centre_reach=reach)
    if free is not None and free.converged and free.sigma_major * FWHM_PER_SIGMA > 1.2 * bmaj_px:
        # an extended source: refit on a box matched to its size
        half = int(math.ceil(FIT_HALF_BOX_BEAMS * min(free.sigma_major * FWHM_PER_SIGMA, MAX_FIT_BOX_BEAMS * bmaj_px)))
        wide = fit_gaussian(box, xp, yp, sigma_x=free.sigma_x, sigma_y=free.sigma_y, theta=free.theta,
                            half_box=half, centre_reach=reach)
        if wide is not None and wide.converged:
            free = wide
    resolved = (free is not None and free.converged
                and math.sqrt(free.sigma_x * free.sigma_y) >= RESOLVED_FACTOR * math.sqrt(sig_maj * sig_min))
    if resolved:
        return FitOutcome(free, resolved=True), ""
    if point_ok is not None:
        return FitOutcome(point_ok, resolved=False), ""
    if free is not None and free.converged:
        return FitOutcome(free, resolved=False), ""
    return None, _no_fit(point if point is not None else free)


def _masked_near(masked: np.ndarray, xp: int, yp: int, bmaj_px: float) -> bool:
    half = max(2, int(math.ceil(FIT_HALF_BOX_BEAMS * bmaj_px)))
    return bool(masked[max(yp - half, 0): yp + half + 1, max(xp - half, 0): xp + half + 1].any())


def _no_fit(fit: GaussianFit2D | None) -> str:
    if fit is None:
        return "Gaussian fit failed"
    return f"Gaussian fit did not converge ({fit.message}): no fitted flux"


@dataclass(frozen=True)
class FitOutcome:
    fit: GaussianFit2D
    resolved: bool


@dataclass(frozen=True)
class _Cutout:
    """The pixels around a position: values (NaN off the sky and in masks), sky positions,
    separations from the position (deg), the box's corner in the image, and the masks."""

    raw: np.ndarray  # values, NaN off the sky only (the catalogue value ignores the masks)
    box: np.ndarray  # values, NaN off the sky and in the masks
    ra: np.ndarray
    dec: np.ndarray
    sep: np.ndarray
    xlo: int
    ylo: int
    masked: np.ndarray

    @property
    def on_sky(self) -> np.ndarray:
        return np.isfinite(self.sep)


def _cutout(image: np.ndarray, wcs: WCS, x0: float, y0: float, ra_deg: float, dec_deg: float, *, reach_deg: float,
            mask: Sequence[tuple[float, float]], mask_radius_deg: float) -> _Cutout:
    """The box of `reach_deg` around pixel (x0, y0), with per-pixel sky positions and masks."""
    ny, nx = image.shape
    sx, sy = _pixel_scale_deg(wcs)
    half = int(math.ceil(reach_deg / min(sx, sy))) + 2
    xlo, xhi = max(int(math.floor(x0)) - half, 0), min(int(math.ceil(x0)) + half + 1, nx)
    ylo, yhi = max(int(math.floor(y0)) - half, 0), min(int(math.ceil(y0)) + half + 1, ny)
    raw = np.array(image[ylo:yhi, xlo:xhi], dtype=float)
    yy, xx = np.mgrid[ylo:yhi, xlo:xhi]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pra, pdec = wcs.pixel_to_world_values(xx.astype(float), yy.astype(float))
    sep = angular_separation_deg(ra_deg, dec_deg, pra, pdec)
    raw[~np.isfinite(sep)] = np.nan
    masked = np.zeros(raw.shape, dtype=bool)
    for mra, mdec in mask:
        msep = angular_separation_deg(mra, mdec, pra, pdec)
        masked |= np.isfinite(msep) & (msep < mask_radius_deg)
    box = raw.copy()
    box[masked] = np.nan
    return _Cutout(raw, box, pra, pdec, sep, xlo, ylo, masked)


def measure_position(
    image: np.ndarray,
    wcs: WCS,
    ra_deg: float,
    dec_deg: float,
    *,
    beam: RestoringBeam,
    freq_mhz: float,
    stokes: str = "I",
    mask: Sequence[tuple[float, float]] = (),
    mask_radius_deg: float | None = None,
    pad_arcsec_at_85mhz: float = Cutout.ionospheric_pad_arcsec_at_85mhz,
    annulus_beams: tuple[float, float] = (Cutout.annulus_inner_beams, Cutout.annulus_outer_beams),
    detection_sigma: float = Cutout.detection_sigma,
    fit: bool = True,
) -> Measurement:
    """Measure the source at (ra_deg, dec_deg) in a 2-D `image` with celestial `wcs`.

    `stokes` "V" looks for the largest |value| (sign kept), anything else for the largest value.
    `mask` lists (ra, dec) of confusing sources whose pixels within `mask_radius_deg` (default:
    BMAJ) are ignored. Returns a `Measurement`; nothing here raises for a position off the image.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise LwaError(f"measure_position needs a 2-D image, got shape {image.shape}")
    signed_abs = stokes.upper() == "V"
    radius = search_radius_deg(beam.major_deg, freq_mhz, pad_arcsec_at_85mhz=pad_arcsec_at_85mhz)
    radius_arcsec = radius * 3600.0
    inner, outer = (a * beam.major_deg for a in annulus_beams)
    if not 0 <= inner < outer:
        raise LwaError(f"annulus {annulus_beams} beams: the inner radius must be below the outer one")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra_deg, dec_deg))
    ny, nx = image.shape
    if not (np.isfinite(x0) and np.isfinite(y0)) or not (-0.5 <= x0 < nx - 0.5 and -0.5 <= y0 < ny - 0.5):
        return Measurement.empty(stokes, search_radius_arcsec=radius_arcsec, note="outside image")

    cut = _cutout(image, wcs, x0, y0, ra_deg, dec_deg, reach_deg=max(outer, radius + FIT_HALF_BOX_BEAMS * beam.major_deg),
                  mask=mask, mask_radius_deg=beam.major_deg if mask_radius_deg is None else mask_radius_deg)
    in_search = cut.on_sky & (cut.sep <= radius)
    n_masked = int((cut.masked & in_search).sum())
    notes = []
    if mask and cut.masked[int(round(y0)) - cut.ylo, int(round(x0)) - cut.xlo]:
        notes.append("position masked")
    cat = bilinear(cut.raw, x0 - cut.xlo, y0 - cut.ylo)  # the catalogue value ignores the masks
    rms = robust_rms(cut.box[cut.on_sky & (cut.sep >= inner) & (cut.sep <= outer)])
    search_vals = np.where(in_search & np.isfinite(cut.box), cut.box, np.nan)
    if not np.isfinite(search_vals).any():
        notes.append("no finite pixel in the search circle")
        return Measurement(stokes, cat, math.nan, math.nan, math.nan, math.nan, rms, math.nan, False, None,
                           radius_arcsec, n_masked, "; ".join(notes))
    flat = np.abs(search_vals) if signed_abs else search_vals
    iy, ix = np.unravel_index(int(np.nanargmax(flat)), cut.box.shape)
    peak, peak_ra, peak_dec, peak_sep = _peak_between_pixels(cut, ix, iy, wcs=wcs, beam=beam, ra_deg=ra_deg,
                                                             dec_deg=dec_deg)
    snr = peak / rms if np.isfinite(rms) and rms > 0 else math.nan
    level = abs(snr) if signed_abs else snr
    detected = bool(np.isfinite(level) and level >= detection_sigma)
    gfit = None
    if fit and detected:
        gfit = _fit_peak(cut, ix, iy, beam=beam, wcs=wcs, point_only=signed_abs, notes=notes)
    return Measurement(stokes, cat, peak, peak_ra, peak_dec, peak_sep * 3600.0, rms, snr, detected, gfit, radius_arcsec,
                       n_masked, "; ".join(notes))


def _well_sampled(beam: RestoringBeam, scale_deg: float) -> bool:
    """True when the beam spans at least `MIN_PX_PER_BEAM_3X3` pixels (geometric mean FWHM): the
    3 x 3 pixels around a peak then lie on the top of its lobe."""
    return math.sqrt(beam.major_deg * beam.minor_deg) / scale_deg >= MIN_PX_PER_BEAM_3X3


def _peak_between_pixels(cut: _Cutout, ix: int, iy: int, *, wcs: WCS, beam: RestoringBeam, ra_deg: float,
                         dec_deg: float) -> tuple[float, float, float, float]:
    """(value, RA, Dec, separation from the position in deg) of the image's maximum near the
    brightest pixel (ix, iy) of `cut`: the top of the Gaussian through its 3 x 3 pixels when the
    beam is well sampled, else (or where that fails) the pixel itself."""
    pixel = (float(cut.box[iy, ix]), float(cut.ra[iy, ix]), float(cut.dec[iy, ix]), float(cut.sep[iy, ix]))
    sx, sy = _pixel_scale_deg(wcs)
    top = gaussian_peak_3x3(cut.box, ix, iy) if _well_sampled(beam, math.sqrt(sx * sy)) else None
    if top is None:
        return pixel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ra, dec = (float(v) for v in wcs.pixel_to_world_values(top[1] + cut.xlo, top[2] + cut.ylo))
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return pixel
    return top[0], ra, dec, float(angular_separation_deg(ra_deg, dec_deg, ra, dec))


def _fit_peak(cut: _Cutout, ix: int, iy: int, *, beam: RestoringBeam, wcs: WCS, point_only: bool,
              notes: list[str]) -> GaussianFit | None:
    """The Gaussian fit of the peak pixel (ix, iy) of `cut` in image terms; None (and a note) when
    it did not converge."""
    sx, sy = _pixel_scale_deg(wcs)
    scale = math.sqrt(sx * sy)
    outcome, note = _fit(cut.box, ix, iy, beam=beam, scale_deg=scale, x_east=_x_axis_east(wcs), masked=cut.masked,
                         point_only=point_only)
    if outcome is None:
        notes.append(note)
        return None
    return _fit_result(outcome, beam=beam, wcs=wcs, xlo=cut.xlo, ylo=cut.ylo, scale=scale, sx=sx, sy=sy)


def _fit_result(outcome: FitOutcome, *, beam: RestoringBeam, wcs: WCS, xlo: int, ylo: int, scale: float,
                sx: float, sy: float) -> GaussianFit:
    g = outcome.fit
    major_px, minor_px, theta = g.sigma_major, g.sigma_minor, g.theta_major
    beam_area_px = math.pi / (4.0 * math.log(2.0)) * beam.major_deg * beam.minor_deg / (sx * sy)
    flux = g.amplitude * g.area_px / beam_area_px if outcome.resolved else g.amplitude
    x, y = g.x + xlo, g.y + ylo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ra, dec = (float(v) for v in wcs.pixel_to_world_values(x, y))
    pa = (math.degrees(theta) - 90.0) % 180.0 if not _x_axis_east(wcs) else (90.0 - math.degrees(theta)) % 180.0
    return GaussianFit(
        peak_jy=g.amplitude,
        flux_jy=flux,
        ra_deg=ra,
        dec_deg=dec,
        major_arcsec=major_px * FWHM_PER_SIGMA * scale * 3600.0,
        minor_arcsec=minor_px * FWHM_PER_SIGMA * scale * 3600.0,
        pa_deg=pa,
        x=x,
        y=y,
        resolved=outcome.resolved,
    )
