"""The images of a subband as the search sees them, and one image searched for peaks.

`load_image` reads the first plane (NaN beyond the horizon), `align` puts an image on the
subband's grid (same shape required; another phase centre reprojected with
`lwa_common.images.regrid_onto`), `restoring_beam_px` gives the unit of every radius (BMAJ in
pixels). `search_one` is the search of one (difference) image: local background and RMS
(`lwa_transient.rms`), peaks of either sign (`lwa_transient.detect`), each with its bi-lobe
partner; `candidates_from` turns them into `candidates.csv` rows. Why here: the V, I and sidelobe
modules all work on these, and none needs the others to do it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane, read_image, sky_mask
from lwa_common.images import ImageInfo, regrid_onto, same_grid
from lwa_common.naming import jname, jname_short
from lwa_transient.candidates import Candidate
from lwa_transient.detect import BilobeRule, Peak, bilobe_partner, find_peaks
from lwa_transient.rms import local_residual_rms

__all__ = ["SearchImage", "load_image", "is_empty", "align", "pixel_arcmin", "restoring_beam_px", "SearchOutcome",
           "search_one", "candidates_from"]

log = logging.getLogger(__name__)


@dataclass
class SearchImage:
    """One image as searched: its header reading, its first plane (float32, NaN beyond the
    horizon), and its celestial WCS (the subband grid's once aligned)."""

    info: ImageInfo
    data: np.ndarray
    header: fits.Header
    wcs: WCS


def load_image(info: ImageInfo) -> SearchImage:
    """The image of `info`, its header read once by `lwa_common.images`."""
    data, _ = read_image(info.path, require_finite=False)  # an empty image is skipped, not fatal
    header = info.header  # read once, by lwa_common.images
    plane = np.ascontiguousarray(image_plane(data), dtype=np.float32)
    wcs = celestial_wcs(header)
    np.putmask(plane, _off_sky(header, wcs), np.nan)  # beyond the horizon of an all-sky image: nothing is real
    return SearchImage(info, plane, header, wcs)


_OFF_SKY: dict[tuple, np.ndarray] = {}  # the last pixel grid's pixels beyond the horizon


def _off_sky(header: fits.Header, wcs: WCS) -> np.ndarray:
    """Pixels beyond the horizon (`sky_mask` inverted, read-only), made once per pixel grid: the
    images of a subband share one grid, and the mask costs ~15 ms per 4096² image."""
    key = (int(header["NAXIS1"]), int(header["NAXIS2"]), wcs.to_header_string(relax=True))
    if key not in _OFF_SKY:
        off = ~sky_mask(header)
        off.flags.writeable = False
        _OFF_SKY.clear()
        _OFF_SKY[key] = off
    return _OFF_SKY[key]


def is_empty(data: np.ndarray) -> bool:
    """Whether an image holds no finite non-zero pixel (skipped, not fatal). The middle rows are
    looked at first: an image with data has some there, and the whole image is then not read."""
    if data.size == 0:
        return True
    middle = data[data.shape[0] // 2 - 8: data.shape[0] // 2 + 8] if data.ndim == 2 else data
    return not (_has_signal(middle) or _has_signal(data))


def _has_signal(data: np.ndarray) -> bool:
    return bool(np.any(np.isfinite(data) & (data != 0)))  # no copy of the finite values


def align(img: SearchImage, ref: SearchImage, *, warn: bool = True) -> SearchImage:
    """`img` on the pixel grid of `ref`: same shape required; another phase centre is reprojected."""
    if img.data.shape != ref.data.shape:
        raise LwaError(
            f"image shapes differ: {img.info.path} is {img.data.shape[1]}x{img.data.shape[0]}, "
            f"{ref.info.path} is {ref.data.shape[1]}x{ref.data.shape[0]} (image them on the same grid)"
        )
    if same_grid((img.wcs, img.data.shape), (ref.wcs, ref.data.shape)):
        return img
    log.log(logging.WARNING if warn else logging.DEBUG,
            "%s is on another pixel grid (CRVAL/CRPIX) than %s: reprojecting it (bilinear)",
            img.info.path.name, ref.info.path.name)
    data = regrid_onto(img.data, (img.wcs, img.data.shape), (ref.wcs, ref.data.shape))
    return SearchImage(img.info, data.astype(np.float32), img.header, ref.wcs)


def pixel_arcmin(wcs: WCS) -> float:
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 60.0


def restoring_beam_px(images: Sequence[SearchImage]) -> float:
    for img in images:
        bmaj = img.header.get("BMAJ")
        if bmaj:
            return float(bmaj) * 60.0 / pixel_arcmin(img.wcs)
    names = ", ".join(str(i.info.path) for i in images)
    raise LwaError(f"no restoring beam (BMAJ) in the header of {names}: needed for the bright-source masks")


@dataclass
class SearchOutcome:
    """The peaks (with their bi-lobe partner or None) of an image minus its background, that
    residual, and its local RMS."""

    peaks: list[tuple[Peak, Any]]
    residual: np.ndarray
    rms: np.ndarray


def search_one(image: np.ndarray, *, box: int, smooth: int, rule: BilobeRule | None, mask: np.ndarray,
               threshold: float, signs: tuple[int, ...], beam_px: float) -> SearchOutcome:
    """Peaks of `image` minus its local background at |S/N| >= `threshold` (local RMS in blocks of
    `box` px, median over `smooth` × `smooth` blocks), of the `signs` asked for, outside `mask`;
    each with its bi-lobe partner under `rule` (None: no test)."""
    residual, rms = local_residual_rms(image, box=box, smooth=smooth)
    peaks = []
    for sign in signs:
        for peak in find_peaks(residual, rms, threshold=threshold, sign=sign, mask=mask):
            partner = bilobe_partner(residual, rms, peak, rule=rule, beam_px=beam_px) if rule is not None else None
            peaks.append((peak, partner))
    return SearchOutcome(peaks, residual, rms)


def candidates_from(outcome: SearchOutcome, img: SearchImage, *, stokes: str, interval: str, beam_px: float,
                    reference: str) -> list[Candidate]:
    """The `candidates.csv` rows of a searched image's peaks: class `artefact` (reason `bilobe`)
    for a peak with a bi-lobe partner, `candidate` otherwise."""
    arcmin = pixel_arcmin(img.wcs)
    out = []
    for peak, partner in outcome.peaks:
        ra, dec = img.wcs.all_pix2world([[peak.x_sub, peak.y_sub]], 0)[0]
        coord = SkyCoord(ra * u.deg, dec * u.deg)
        out.append(Candidate(
            stokes=stokes, interval=interval, ra=float(ra) % 360.0, dec=float(dec), jname=jname(coord),
            peak_jy=peak.value, rms_jy=peak.rms, snr=peak.snr, sign=peak.sign, bilobe=partner is not None,
            klass="artefact" if partner is not None else "candidate", catalog_match="",
            image=str(img.info.path), subband=img.info.subband, freq_mhz=img.info.freq_mhz,
            x=peak.x_sub, y=peak.y_sub,
            partner_snr=partner.snr if partner else math.nan,
            partner_ratio=partner.ratio if partner else math.nan,
            partner_sep_arcmin=partner.sep_px * arcmin if partner else math.nan,
            reason="bilobe" if partner is not None else "", beam_arcmin=beam_px * arcmin,
            folder=jname_short(coord), reference=reference,
        ))
    return out
