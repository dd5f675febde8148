"""The blind transient search (DESIGN.md, "Transients"), callable without click.

Per subband, on tapered, non-primary-beam-corrected (dewarped when available) images chosen by
header (`lwa_transient.select`; lwa-stack's wideband stacks are searched per band the same way):

* **Stokes V** — the deep V image directly, and each 10 min V image minus the deep V image
  (`v_difference`: steady V sources and their dirty-beam sidelobes cancel; minus the noise-weighted
  mean of the other 10 min V images when bright bursts fill the deep V, `_VReference`): pixels with
  |V − background| ≥ `v_sigma` × local RMS, both signs. Masked: disks around deep-I sources above
  `v_mask_sigma[0]` σ (2 beams) and `v_mask_sigma[1]` σ (1 beam), A-team caps, and in a difference
  `v_source_mask_beams` around the deep-V sources. Artefact rules (README, "Algorithm"):
  `sidelobe` (explained by a brighter V source's dirty beam: its twin through the source holds
  1/`v_sidelobe_margin` of it — `mirror_value`, `twin_centre` — or, where the twin cannot judge, no
  brighter than the sidelobe envelope measured in the same image × `v_sidelobe_margin`; capped at
  `v_sidelobe_fraction`), `fainter` (a deep-V
  source fading), `echo` (a burst of another interval diluted into the deep V), `trend` (what
  the other intervals' differences predict at its place: an imaging difference; also for I).
* **Stokes I** — each 10 min R0 image minus the deep R0 image, positive only, ≥ `i_sigma` × local
  RMS of the difference; masks at `i_mask_sigma` (100σ → 2 beams, 30σ → 1 beam) and larger
  A-team caps. A deep-I source that is `steady_ratio` (2) times brighter in the 10 min image is the
  transient itself (diluted in the deep image) and is not masked in that interval.

Images of a subband must have one shape (else `LwaError`); one on another pixel grid (another
phase centre) is reprojected onto the deep I grid with `reproject_interp`, with a warning.

Every radius is in restoring beams (BMAJ) of the searched image's own header. Every candidate gets
the bi-lobe partner test (`lwa_transient.detect`), a catalogue match,
a J-name, and the brightest `max_cutouts` per subband per Stokes get a FITS cutout and a PNG in a
`J0553+31`-style folder. `candidates.csv` is always written (header only when nothing is found).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from scipy.stats import norm, theilslopes

from lwa_common.catalogs import read_reference_catalog
from lwa_common.config import Config, Cutout, Transient
from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane, read_image, sky_mask
from lwa_common.images import ImageHints, ImageInfo, image_info, regrid_onto, same_grid, scan_images
from lwa_common.io import atomic_path, check_output, make_dirs
from lwa_common.naming import jname, jname_short
from lwa_common.products import CANDIDATES
from lwa_transient.detect import BilobeRule, Island, Peak, bilobe_partner, find_peaks
from lwa_transient.masks import (
    ATEAM_J2000,
    AteamSource,
    BrightSource,
    ateam_from_ttcal,
    ateam_mask,
    bright_source_mask,
    bright_sources,
    disk_mask,
    source_mask,
)
from lwa_transient.products import cutout, write_cutout, write_png
from lwa_transient.rms import local_background_rms
from lwa_transient.select import SubbandImages, select_images

__all__ = ["SearchParams", "Candidate", "SearchResult", "CSV_COLUMNS", "search_images", "read_candidates",
           "mirror_value", "twin_centre"]

log = logging.getLogger(__name__)

CSV_COLUMNS = CANDIDATES.columns


_T = Transient()


def _pair(t: Transient, name: str) -> tuple[float, float]:
    """A two-number `[transient]` value as floats (TOML lists of integers included)."""
    value = getattr(t, name)
    try:
        a, b = value
        return float(a), float(b)
    except (TypeError, ValueError):
        raise LwaError(f"config: 'transient.{name}' must be two numbers, got {value!r}") from None


@dataclass(frozen=True)
class SearchParams:
    """Every knob of the search; the defaults are those of `lwa_common.config.Transient` (and
    `Cutout.size_deg`), and `from_config` takes them from a loaded config's `[transient]` table.

    Pairs: `*_mask_sigma` = (2-beam threshold, 1-beam threshold); `*_ateam_radius_deg` = (radius
    around Vir A / Tau A and other A-team sources, radius around the major ones Cyg A / Cas A);
    `bilobe_ratio` = (min, max) of |candidate| / |partner|; `bilobe_sigma` = (partner, candidate);
    `mask_beams` = (radius of the disks above the first `*_mask_sigma`, radius above the second),
    in restoring beams. `robust`: the ROBUST of the images to search.
    `steady_ratio`: in the I search, a deep-I source at least this many times brighter in the
    10 min image than in the deep image is the transient itself and is not masked there (0: off).
    `ateam` / `ateam_file` / `ateam_major_jy`: built-in J2000 A-team, or a TTCal sources.json whose
    sources at least `ateam_major_jy` bright at the image frequency get the larger radius; a cap is
    drawn only around a source the deep I holds at >= the first `i_mask_sigma` within
    `ateam_present_beams` of its position (peeled, set or absent: no sidelobes to mask).
    `stokes`: the searches to run; `products`: write cutouts and PNGs.
    """

    v_sigma: float = _T.v_sigma
    i_sigma: float = _T.i_sigma
    rms_box_px: int = _T.rms_box_px
    rms_smooth_boxes: int = _T.rms_smooth_boxes
    v_mask_sigma: tuple[float, float] = (_T.v_mask_high_sigma, _T.v_mask_low_sigma)
    i_mask_sigma: tuple[float, float] = (_T.i_mask_high_sigma, _T.i_mask_low_sigma)
    mask_beams: tuple[float, float] = _T.mask_beams
    steady_ratio: float = _T.steady_ratio
    v_ateam_radius_deg: tuple[float, float] = _T.v_ateam_radius_deg
    i_ateam_radius_deg: tuple[float, float] = _T.i_ateam_radius_deg
    ateam: tuple[AteamSource, ...] = ATEAM_J2000
    ateam_file: Path | None = None
    ateam_major_jy: float = _T.ateam_major_jy
    ateam_present_beams: float = _T.ateam_present_beams
    bilobe: bool = True
    bilobe_radius_beams: float = _T.bilobe_radius_beams
    bilobe_ratio: tuple[float, float] = _T.bilobe_ratio
    bilobe_sigma: tuple[float, float] = _T.bilobe_sigma
    drop_bilobe: bool = False
    catalog_match_beams: float = _T.catalog_match_beams
    v_difference: bool = _T.v_difference
    v_sidelobe_fraction: tuple[float, float] = _T.v_sidelobe_fraction
    v_sidelobe_margin: float = _T.v_sidelobe_margin
    v_sidelobe_mirror: bool = _T.v_sidelobe_mirror
    v_sidelobe_mirror_beams: float = _T.v_sidelobe_mirror_beams
    v_sidelobe_mirror_reach_beams: float = _T.v_sidelobe_mirror_reach_beams
    v_source_sigma: float = _T.v_source_sigma
    v_source_mask_beams: float = _T.v_source_mask_beams
    v_deep_noise_ratio: float = _T.v_deep_noise_ratio
    trend_fraction: float = _T.trend_fraction
    max_cutouts: int = _T.max_cutouts
    warn_candidates: int = _T.warn_candidates
    cutout_size_deg: float = Cutout().size_deg
    robust: float = _T.robust
    stokes: tuple[str, ...] = ("V", "I")
    products: bool = True

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> SearchParams:
        """Defaults from `cfg.transient` (and `cfg.cutout.size_deg`); `None` overrides are ignored."""
        t = cfg.transient
        base = cls(
            v_sigma=t.v_sigma, i_sigma=t.i_sigma, rms_box_px=t.rms_box_px, rms_smooth_boxes=t.rms_smooth_boxes,
            v_mask_sigma=(t.v_mask_high_sigma, t.v_mask_low_sigma),
            i_mask_sigma=(t.i_mask_high_sigma, t.i_mask_low_sigma), mask_beams=_pair(t, "mask_beams"),
            steady_ratio=t.steady_ratio,
            v_ateam_radius_deg=_pair(t, "v_ateam_radius_deg"), i_ateam_radius_deg=_pair(t, "i_ateam_radius_deg"),
            ateam_major_jy=t.ateam_major_jy, ateam_present_beams=t.ateam_present_beams,
            bilobe_radius_beams=t.bilobe_radius_beams, bilobe_ratio=_pair(t, "bilobe_ratio"),
            bilobe_sigma=_pair(t, "bilobe_sigma"), catalog_match_beams=t.catalog_match_beams,
            v_difference=t.v_difference, v_sidelobe_fraction=_pair(t, "v_sidelobe_fraction"),
            v_sidelobe_margin=t.v_sidelobe_margin, v_sidelobe_mirror=t.v_sidelobe_mirror,
            v_sidelobe_mirror_beams=t.v_sidelobe_mirror_beams,
            v_sidelobe_mirror_reach_beams=t.v_sidelobe_mirror_reach_beams,
            v_source_sigma=t.v_source_sigma, v_source_mask_beams=t.v_source_mask_beams,
            v_deep_noise_ratio=t.v_deep_noise_ratio,
            trend_fraction=t.trend_fraction,
            max_cutouts=t.max_cutouts, warn_candidates=t.warn_candidates, cutout_size_deg=cfg.cutout.size_deg,
            robust=t.robust,
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise LwaError(f"unknown search parameter(s): {', '.join(sorted(unknown))}")
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def check(self) -> None:
        """Fail before work on impossible values."""
        if self.v_sigma <= 0 or self.i_sigma <= 0:
            raise LwaError("--v-detection-sigma and --i-detection-sigma must be positive")
        if self.rms_box_px < 4:
            raise LwaError(f"--rms-box-px must be at least 4, got {self.rms_box_px}")
        if self.rms_smooth_boxes < 1:
            raise LwaError(f"--rms-smooth-boxes must be at least 1, got {self.rms_smooth_boxes}")
        for name in ("v_mask_sigma", "i_mask_sigma", "mask_beams", "v_ateam_radius_deg", "i_ateam_radius_deg",
                     "bilobe_ratio", "bilobe_sigma", "v_sidelobe_fraction"):
            if len(getattr(self, name)) != 2:
                raise LwaError(f"{name} takes two numbers, got {getattr(self, name)}")
        if not min(self.mask_beams) > 0:
            raise LwaError(f"--mask-beams must be positive, got {self.mask_beams}")
        if self.steady_ratio < 0:
            raise LwaError(f"--steady-ratio must be >= 0 (0: off), got {self.steady_ratio:g}")
        lo, hi = self.bilobe_ratio
        if not 0 < lo <= hi:
            raise LwaError(f"--bilobe-ratio needs 0 < min <= max, got {lo:g} {hi:g}")
        for name in ("v_mask_sigma", "i_mask_sigma"):
            a, b = getattr(self, name)
            if a < b:
                raise LwaError(f"--{name.replace('_', '-')} takes the 2-beam threshold first (>= the 1-beam one)")
        if not 0 <= self.trend_fraction:
            raise LwaError(f"--trend-fraction must be >= 0 (0: off), got {self.trend_fraction:g}")
        if not self.v_deep_noise_ratio > 0:
            raise LwaError(f"transient.v_deep_noise_ratio must be positive, got {self.v_deep_noise_ratio:g}")
        if self.v_sidelobe_margin < 0:
            raise LwaError(f"--v-sidelobe-margin must be >= 0, got {self.v_sidelobe_margin:g}")
        if self.v_sidelobe_mirror_beams < 0 or self.v_sidelobe_mirror_reach_beams < 0:
            raise LwaError("transient.v_sidelobe_mirror_beams and v_sidelobe_mirror_reach_beams must be >= 0")
        if not all(0 <= f < 1 for f in self.v_sidelobe_fraction):
            raise LwaError(f"--v-sidelobe-fraction takes fractions in [0, 1), got {self.v_sidelobe_fraction}")
        if self.bilobe_radius_beams <= 0 or self.catalog_match_beams < 0:
            raise LwaError("--bilobe-radius-beams must be positive and --match-radius-beams >= 0")
        if self.cutout_size_deg <= 0:
            raise LwaError("--cutout-size-deg must be positive")
        if self.max_cutouts < 0:
            raise LwaError("--max-cutouts must be >= 0")
        if not set(self.stokes) <= {"I", "V"} or not self.stokes:
            raise LwaError(f"--stokes must be I, V or both, got {self.stokes}")

    @property
    def mirror(self) -> tuple[float, float] | None:
        """(radius, reach) in beams of the sidelobe rule's mirror test, None when it is off."""
        return (self.v_sidelobe_mirror_beams, self.v_sidelobe_mirror_reach_beams) if self.v_sidelobe_mirror else None

    @property
    def rule(self) -> BilobeRule:
        return BilobeRule(radius_beams=self.bilobe_radius_beams, ratio_min=self.bilobe_ratio[0],
                          ratio_max=self.bilobe_ratio[1], partner_sigma=self.bilobe_sigma[0],
                          candidate_sigma=self.bilobe_sigma[1])


@dataclass
class Candidate:
    """One row of candidates.csv."""

    stokes: str
    interval: str
    ra: float
    dec: float
    jname: str
    peak_jy: float
    rms_jy: float
    snr: float
    sign: int
    bilobe: bool
    klass: str
    catalog_match: str
    image: str
    subband: str
    freq_mhz: float
    x: float
    y: float
    partner_snr: float = math.nan
    partner_ratio: float = math.nan
    partner_sep_arcmin: float = math.nan
    catalog_sep_arcmin: float = math.nan
    cutout: str = ""
    png: str = ""
    reason: str = ""  # why an artefact: bilobe, sidelobe (of a brighter V source), fainter (than deep V), echo, trend
    beam_arcmin: float = math.nan  # BMAJ of the searched image: the unit of every radius
    folder: str = ""  # J0553+31
    reference: str = field(default="", repr=False)  # deep I used for the difference / the I panel
    # V: the image(s) subtracted from a 10 min V: the deep V, or the others of the weighted mean (`_VReference`)
    subtracted: tuple[str, ...] = field(default=(), repr=False)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("klass")
        return {k: _fmt(k, d[k]) for k in CSV_COLUMNS}


_DECIMALS = {"beam_arcmin": 3, "ra": 6, "dec": 6, "x": 2, "y": 2, "snr": 2, "partner_snr": 2, "partner_ratio": 3,
             "partner_sep_arcmin": 2, "catalog_sep_arcmin": 2, "freq_mhz": 4}


def _fmt(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.{_DECIMALS[key]}f}" if key in _DECIMALS else f"{value:.6g}"
    return value


@dataclass
class SearchResult:
    candidates: list[Candidate]
    csv: Path
    products: list[Path]
    n_images: int
    skipped: list[str]

    def summary(self) -> dict[str, Any]:
        classes: dict[str, int] = {}
        for c in self.candidates:
            classes[c.klass] = classes.get(c.klass, 0) + 1
        return {"csv": str(self.csv), "n_candidates": len(self.candidates), "by_class": classes,
                "n_images": self.n_images, "skipped_images": self.skipped,
                "outputs": [str(self.csv), *map(str, self.products)]}


@dataclass
class _Image:
    info: ImageInfo
    data: np.ndarray
    header: fits.Header
    wcs: WCS


def _load(info: ImageInfo) -> _Image:
    data, _ = read_image(info.path, require_finite=False)  # an empty image is skipped, not fatal
    header = info.header  # read once, by lwa_common.images
    plane = np.ascontiguousarray(image_plane(data), dtype=np.float32)
    plane[~sky_mask(header)] = np.nan  # beyond the horizon of an all-sky image: nothing is real
    return _Image(info, plane, header, celestial_wcs(header))


def _is_empty(data: np.ndarray) -> bool:
    finite = np.isfinite(data)
    return data.size == 0 or not finite.any() or not np.any(data[finite] != 0)


def _align(img: _Image, ref: _Image, *, warn: bool = True) -> _Image:
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
    return _Image(img.info, data.astype(np.float32), img.header, ref.wcs)


def _pixel_arcmin(wcs: WCS) -> float:
    return float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 60.0


def _beam_px(images: Sequence[_Image]) -> float:
    for img in images:
        bmaj = img.header.get("BMAJ")
        if bmaj:
            return float(bmaj) * 60.0 / _pixel_arcmin(img.wcs)
    names = ", ".join(str(i.info.path) for i in images)
    raise LwaError(f"no restoring beam (BMAJ) in the header of {names}: needed for the bright-source masks")


def _ateam_sources(params: SearchParams, freq_mhz: float) -> tuple[AteamSource, ...]:
    if params.ateam_file is None:
        return params.ateam
    freq = freq_mhz * 1e6 if math.isfinite(freq_mhz) else 60e6
    return ateam_from_ttcal(params.ateam_file, freq_hz=freq, major_jy=params.ateam_major_jy)


def _present(sources: Sequence[AteamSource], snr: np.ndarray, wcs: WCS, *, radius_px: float, sigma: float,
             label: str) -> tuple[AteamSource, ...]:
    """The A-team sources the deep I holds: S/N >= `sigma` within `radius_px` of the position."""
    ny, nx = snr.shape
    yy, xx = np.ogrid[0:ny, 0:nx]
    kept = []
    for src in sources:
        x, y = wcs.all_world2pix([[src.ra_deg, src.dec_deg]], 0)[0]
        if not (np.isfinite(x) and np.isfinite(y)) or not (-radius_px <= x < nx + radius_px
                                                             and -radius_px <= y < ny + radius_px):
            continue  # off the image: its cap cannot reach far in
        values = snr[(yy - y) ** 2 + (xx - x) ** 2 <= radius_px ** 2]
        values = values[np.isfinite(values)]
        peak = float(values.max()) if values.size else 0.0
        if peak >= sigma:
            kept.append(src)
        else:
            log.info("%s: %s not in the deep I (peak %.0fσ within %.1f px < %g): no A-team cap", label, src.name,
                     peak, radius_px, sigma)
    return tuple(kept)


@dataclass
class _SearchOutcome:
    peaks: list[tuple[Peak, Any]]
    residual: np.ndarray
    rms: np.ndarray


def _search_one(image: np.ndarray, *, params: SearchParams, mask: np.ndarray, threshold: float,
                signs: tuple[int, ...], beam_px: float) -> _SearchOutcome:
    bg, rms = local_background_rms(image, box=params.rms_box_px, smooth=params.rms_smooth_boxes)
    residual = image - bg
    peaks = []
    for sign in signs:
        for peak in find_peaks(residual, rms, threshold=threshold, sign=sign, mask=mask):
            partner = (bilobe_partner(residual, rms, peak, rule=params.rule, beam_px=beam_px)
                       if params.bilobe else None)
            peaks.append((peak, partner))
    return _SearchOutcome(peaks, residual, rms)


def _candidates(outcome: _SearchOutcome, img: _Image, *, stokes: str, interval: str, beam_px: float,
                reference: str) -> list[Candidate]:
    pixel_arcmin = _pixel_arcmin(img.wcs)
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
            partner_sep_arcmin=partner.sep_px * pixel_arcmin if partner else math.nan,
            reason="bilobe" if partner is not None else "", beam_arcmin=beam_px * pixel_arcmin,
            folder=jname_short(coord), reference=reference,
        ))
    return out


def _v_sources(outcome: _SearchOutcome, sigma: float, beam_px: float, *, fraction: float, margin: float,
               mirror: tuple[float, float] | None = None, screen: np.ndarray | None = None) -> list[Peak]:
    """The bright V sources of a searched image (|S/N| >= `sigma`, masked areas included: a
    polarised source next to a bright I source is masked, its sidelobes are not), brightest first,
    without the peaks that are sidelobes of a brighter one (the sidelobe rule among themselves,
    `_explains`, with the mirror test when `mirror` is given)."""
    peaks = [peak for sign in (1, -1) for peak in find_peaks(outcome.residual, outcome.rms, threshold=sigma, sign=sign)]
    kept: list[Peak] = []
    envelopes: dict[int, _Envelope] = {}
    for peak in sorted(peaks, key=lambda q: -abs(q.value)):
        if any(_explains(outcome.residual, envelopes, k, peak.x_sub, peak.y_sub, peak.value, peak.rms, beam_px=beam_px,
                         fraction=fraction, margin=margin, mirror=mirror, screen=screen) for k in kept):
            continue
        kept.append(peak)
        if len(envelopes) < MAX_ENVELOPE_SOURCES:
            envelopes[id(peak)] = _Envelope(outcome.residual, peak, beam_px)
    return kept


def _sidelobe_limit(envelopes: dict[int, _Envelope] | None, source: Peak, x: float, y: float, beam_px: float,
                    fraction: float, margin: float) -> float:
    """The largest fraction of `source` its sidelobes reach at (x, y): 0 within 1 beam (the source
    itself), `margin` × its measured envelope there capped at `fraction` (`envelopes`; 0 for a
    source without one), or `fraction` when `envelopes` is None."""
    dist = math.hypot(x - source.x_sub, y - source.y_sub) / beam_px
    if dist <= 1.0:
        return 0.0
    if envelopes is None:
        return fraction
    env = envelopes.get(id(source))
    if env is None:
        return 0.0
    return min(fraction, margin * env.fraction_at(x, y))


def mirror_value(residual: np.ndarray, source_xy: tuple[float, float], xy: tuple[float, float], *, sign: int,
                 radius_px: float) -> float:
    """The image value of sign `sign` (the extreme one, signed) within `radius_px` of the point
    mirrored through `source_xy` from `xy` (2 source − point); NaN when no finite pixel is there
    (off the image, beyond the horizon).

    Why: a dirty beam is point-symmetric — the PSF of real visibilities measured at ±(u, v) is real
    and even, B(d) = B(−d), for any uv coverage, weighting and light curve (a burst shorter than
    the interval has the PSF of its own integrations, not the interval's, but that one is even
    too). So what a source S puts at offset d, S·B(d), it also puts at −d: a sidelobe of S has a
    twin of the same sign and about the same value through S, while a burst that happens to lie
    on a sidelobe crest of S does not (its twin holds only S's share of it). The extreme within a
    fraction of a beam allows for the sub-pixel position and a PSF not exactly even across an
    all-sky image (w-terms)."""
    ny, nx = residual.shape
    mx, my = 2.0 * source_xy[0] - xy[0], 2.0 * source_xy[1] - xy[1]
    r = max(radius_px, 0.5)
    x0, x1 = max(int(math.floor(mx - r)), 0), min(int(math.ceil(mx + r)), nx - 1)
    y0, y1 = max(int(math.floor(my - r)), 0), min(int(math.ceil(my + r)), ny - 1)
    if x0 > x1 or y0 > y1:
        return math.nan
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    window = residual[y0:y1 + 1, x0:x1 + 1]
    values = window[((yy - my) ** 2 + (xx - mx) ** 2 <= r * r) & np.isfinite(window)]
    if values.size == 0:
        return math.nan
    return float(sign * np.max(sign * values))


def twin_centre(source_xy: tuple[float, float], xy: tuple[float, float],
                screen: np.ndarray | None) -> tuple[float, float]:
    """The point to mirror (x, y) through to find its twin in a dewarped image: the source itself,
    moved by half the screen's second difference 2 d(s) − d(p) − d(m) (d: lwa-dewarp's offsets in
    pixels, dewarped(q) = observed(q + d(q)); m = 2 s − p).

    Why: the ionosphere shifts a source and its whole dirty beam by d at the source, so in the
    observed image the sidelobe at s + d(s) + e has its twin at s + d(s) − e; dewarping moves each
    pixel by its own d, so the twin of the sidelobe shown at p lies at 2 s − p + 2 d(s) − d(p) −
    d(m) (to first order). Measured on `low_elevation` (seed 505, screen offsets up to 3 beams):
    candidates 28–35 beams from a V source whose plain twins held 0.01 and 0.15 of them held
    1.09 and 0.63 at the corrected place. None, or a NaN offset: the source."""
    if screen is None:
        return source_xy
    ny, nx = screen.shape[1:]

    def offset(px: float, py: float) -> np.ndarray:
        ix, iy = min(max(round(px), 0), nx - 1), min(max(round(py), 0), ny - 1)
        return screen[:, iy, ix].astype(np.float64)

    (sx, sy), (x, y) = source_xy, xy
    corr = 2.0 * offset(sx, sy) - offset(x, y) - offset(2.0 * sx - x, 2.0 * sy - y)
    if not np.all(np.isfinite(corr)):
        return source_xy
    return sx + 0.5 * float(corr[0]), sy + 0.5 * float(corr[1])


def _explains(residual: np.ndarray | None, envelopes: dict[int, _Envelope] | None, source: Peak, x: float,
              y: float, value: float, rms: float, *, beam_px: float, fraction: float, margin: float,
              mirror: tuple[float, float] | None, screen: np.ndarray | None = None) -> bool:
    """Whether `source`'s dirty beam can explain a candidate `value` (local RMS `rms`) at (x, y),
    more than 1 beam from the source and at most `fraction` of it.

    The envelope measured around the source (`_sidelobe_limit`, × `margin`) says whether the beam
    reaches that level at that distance. With the mirror test (`mirror` = (radius, reach) in
    beams) and the twin within reach, its twin through the source (`mirror_value`: the beam's
    response at the opposite offset, same sign) says what the beam puts at this very place: the
    candidate is explained when the twin holds at least 1/`margin` of it; when it does not, only
    if the candidate is also no stronger than `margin` × the noise's own tail (`NOISE_TAIL_SIGMA`
    × `rms`) and within the envelope — there the twin's noise alone can take a true sidelobe's
    twin below 1/`margin` of it, so it cannot clear the candidate. Without the test, or where the
    twin is off the image or beyond reach (an all-sky beam is less point-symmetric far out), the
    envelope decides. `screen`: the lwa-dewarp screen of a dewarped image (`twin_centre`)."""
    dist = math.hypot(x - source.x_sub, y - source.y_sub) / beam_px
    if dist <= 1.0 or abs(value) > fraction * abs(source.value):
        return False
    envelope = abs(value) <= _sidelobe_limit(envelopes, source, x, y, beam_px, fraction, margin) * abs(source.value)
    if mirror is None or residual is None or dist > mirror[1]:
        return envelope
    sign = 1 if value >= 0 else -1
    centre = twin_centre((source.x_sub, source.y_sub), (x, y), screen)
    twin = mirror_value(residual, centre, (x, y), sign=sign, radius_px=mirror[0] * beam_px)
    if not math.isfinite(twin):
        return envelope
    if margin * sign * twin >= abs(value):
        return True
    return envelope and abs(value) < margin * NOISE_TAIL_SIGMA * rms


V_REFERENCE_MIN_OTHERS = 2  # other 10 min V images needed for their weighted mean to be a reference


class _VReference:
    """What each 10 min V image is searched minus: the deep V image while it is a clean reference,
    else, for the intervals quieter than the deep V (median local RMS below its), the
    inverse-variance weighted mean of the subband's other 10 min V images (weights 1 / local RMS²
    of each image, per pixel; needs `V_REFERENCE_MIN_OTHERS` of them). An interval noisier than
    the deep V holds a bright burst of its own, whose sidelobes dominate it: it keeps the deep V
    (with the weighted mean, the sidelobes of a 500 Jy burst in its own 2-integration image gave
    a false candidate at 5.6σ in `test_science.py`, that the deep V's noise kept below 5σ).

    Clean: the deep V's noise (median local RMS) is at most `v_deep_noise_ratio` (3) times what the
    10 min V images reach combined, 1/√(Σ 1/RMS²) of their median local RMSs. Measured 1.86–1.93
    on `pol_vbursts`, `iono_rfi_hot` and `hot_strengths` (the deep V is imaged on its own, not
    the mean of the 10 min images) and 6.2 on `loud_bursts`, where the deep V holds the bursts of
    the hour diluted
    with their dirty sidelobes: a 500 Jy burst of one 20 s integration made its RMS 0.26 Jy/beam
    against 0.065 in a quiet 10 min V image, and a 12 Jy burst of another interval came out of
    10 min − deep V at 5.8σ (25σ in its own image). Weighted by their noise, the intervals whose
    images a bright burst's sidelobes fill hardly enter the reference of the quiet ones; the
    searched interval is left out, so the difference's noise is independent of the reference's.
    Measured alternatives, used for every sky:
      - a median over all the intervals, the searched one included: 6 false candidates at 5–7.6σ
        in 12 images of `hot_strengths`, its MAD blind to the difference's tails;
      - a median of the others: it follows the bright bursts' sidelobes, which 4 of the 6
        intervals of `loud_bursts` hold (2 of 11 bursts lost);
      - the noise-weighted mean of the others on every sky: 11/11 on `loud_bursts`, but 3 false
        candidates at 5.0–5.5σ on `iono_rfi_hot` and 1 on `hot_strengths` (sidelobes of a bright
        V source changing over the hour), which the deep V — its own small differences from the
        10 min images add to each difference's noise — keeps below 5σ;
      - it for every interval when the deep V is not clean: 11/11 on `loud_bursts`, but the
        false candidate above. Kept for the quiet intervals only, `loud_bursts` finds the 40 Jy
        burst of t0003, which holds a 60 Jy one, only with the sidelobe rule's mirror test (the
        envelope alone took the fainter for a sidelobe of the brighter: 10/11).
    A burst S of interval j puts `share(k, j)` × S into the reference of interval k: its echo,
    which `_mark_echoes` judges. `images`: interval → `_Image`."""

    def __init__(self, images: dict[str, _Image], deep: _Image, params: SearchParams):
        self.images, self.deep = images, deep
        self.weights: dict[str, np.ndarray] = {}
        self.own: dict[str, np.ndarray] = {}  # each 10 min V image minus its background
        self.noise: dict[str, float] = {}  # median local RMS of each 10 min V image
        self.mean: set[str] = set()  # the intervals searched minus the weighted mean of the others
        if len(images) - 1 < V_REFERENCE_MIN_OTHERS:
            return
        box = {"box": params.rms_box_px, "smooth": params.rms_smooth_boxes}
        for k, img in images.items():
            bg, rms = local_background_rms(img.data, **box)
            with np.errstate(divide="ignore", invalid="ignore"):
                w = 1.0 / rms.astype(np.float64) ** 2
            w[~np.isfinite(w) | ~np.isfinite(img.data)] = 0.0
            self.weights[k] = w
            self.own[k] = img.data - bg
            self.noise[k] = _median_finite(rms)
        self.deep_noise = _median_finite(local_background_rms(deep.data, **box)[1])
        self.combined = 1.0 / math.sqrt(sum(1.0 / n**2 for n in self.noise.values() if n > 0) or math.inf)
        if self.deep_noise > params.v_deep_noise_ratio * self.combined:
            self.mean = {k for k, noise in self.noise.items() if noise < self.deep_noise}

    def describe(self) -> str:
        if not self.noise:
            return "the deep V"
        noise = f"deep V RMS {self.deep_noise:.3g} Jy/beam, the 10 min V images combined {self.combined:.3g}"
        if self.mean:
            rest = sorted(set(self.images) - self.mean)
            return (f"the noise-weighted mean of the other 10 min V images ({noise}: the deep V is not clean)"
                    + (f"; the deep V for {', '.join(rest)}, noisier than it" if rest else ""))
        return f"the deep V ({noise})"

    def paths(self, interval: str) -> tuple[str, ...]:
        if interval not in self.mean:
            return (str(self.deep.info.path),)
        return tuple(str(img.info.path) for k, img in self.images.items() if k != interval)

    def __call__(self, interval: str) -> np.ndarray:
        if interval not in self.mean:
            return self.deep.data
        num = np.zeros(self.deep.data.shape)
        den = np.zeros(self.deep.data.shape)
        for k, img in self.images.items():
            if k != interval:
                w = self.weights[k]
                num += w * np.where(w > 0, img.data, 0.0)
                den += w
        with np.errstate(divide="ignore", invalid="ignore"):
            return (num / den).astype(np.float32)  # NaN where no other interval has a pixel

    def share(self, interval: str, other: str, y: int, x: int) -> float:
        """The fraction of `other`'s image in the reference of `interval` at pixel (y, x) (with the
        deep V: S/N there against (N − 1)/N × S in the event's own difference)."""
        if interval not in self.mean:
            return 1.0 / (len(self.images) - 1)
        den = sum(float(w[y, x]) for k, w in self.weights.items() if k != interval)
        return float(self.weights[other][y, x]) / den if den > 0 else 0.0

    def holds(self, c: Candidate) -> bool:
        """Whether the candidate's own 10 min V image holds at least half of it (same sign); False
        with fewer than 1 + `V_REFERENCE_MIN_OTHERS` intervals (the share alone decides there)."""
        own = self.own.get(c.interval)
        if own is None:
            return False
        y, x = _pixel(c, own.shape)
        return c.sign * float(own[y, x]) >= 0.5 * abs(c.peak_jy)


def _median_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


def _pixel(c: Candidate, shape: tuple[int, ...]) -> tuple[int, int]:
    return min(max(round(c.y), 0), shape[0] - 1), min(max(round(c.x), 0), shape[1] - 1)


def _steady_v_mask(sources: Sequence[Peak], diff: np.ndarray, radius_px: float, steady_ratio: float) -> np.ndarray:
    """Disks (`v_source_mask_beams`, 1.5 beams) around the deep-V sources in a 10 min − deep V image: the main lobe of a steady
    source does not cancel exactly (its PSF changes from interval to interval). A source at least
    `steady_ratio` times brighter (same sign) in this interval than in the deep image varied: it is
    not masked (0: always masked)."""
    keep = []
    for s in sources:
        ten = s.value + float(diff[s.y, s.x])
        if steady_ratio > 0 and ten * s.sign >= steady_ratio * abs(s.value):
            continue
        keep.append((s.y_sub, s.x_sub, radius_px))
    return disk_mask(diff.shape, keep)


SIDELOBE_EDGES_BEAMS = (1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 50.0, 80.0, math.inf)
SIDELOBE_PERCENTILE = 99.5  # of |image| in each annulus: the sidelobe crests, not one compact burst
# the same percentile of |Gaussian noise| in σ (2.81): a twin's noise alone reaches it
NOISE_TAIL_SIGMA = float(norm.ppf(0.5 + SIDELOBE_PERCENTILE / 200.0))
MAX_ENVELOPE_SOURCES = 5  # the brightest V sources of an image get a measured envelope


class _Envelope:
    """The sidelobe envelope of one bright V source measured in its own image: for a point at
    distance r, the `SIDELOBE_PERCENTILE` of |image| over the annulus of `SIDELOBE_EDGES_BEAMS`
    holding r, over |source peak| — what the dirty beam (plus noise and other sources: an upper
    bound) puts at that distance. The pixels within `EXCLUDE_BEAMS` of the point asked about are
    left out, so a real burst cannot raise the envelope that would judge it."""

    EXCLUDE_BEAMS = 3.0
    MAX_RING_PIXELS = 400_000  # larger rings are subsampled (a regular stride)

    def __init__(self, residual: np.ndarray, source: Peak, beam_px: float):
        self.source, self.beam_px = source, beam_px
        ny, nx = residual.shape
        r = np.hypot((np.arange(ny) - source.y_sub)[:, None], (np.arange(nx) - source.x_sub)[None, :]) / beam_px
        finite = np.isfinite(residual)
        self.rings: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for lo, hi in zip(SIDELOBE_EDGES_BEAMS[:-1], SIDELOBE_EDGES_BEAMS[1:], strict=True):
            box = self._box(source, hi * beam_px, ny, nx)  # a bounded ring is looked for in its box only
            ys, xs = np.nonzero((r[box] >= lo) & (r[box] < hi) & finite[box])
            ys, xs = ys + box[0].start, xs + box[1].start  # row-major order, as over the whole image
            step = max(1, -(-ys.size // self.MAX_RING_PIXELS))
            ys, xs = ys[::step], xs[::step]
            self.rings.append((np.abs(residual[ys, xs]).astype(np.float64), ys, xs))

    @staticmethod
    def _box(source: Peak, radius_px: float, ny: int, nx: int) -> tuple[slice, slice]:
        """The pixels within `radius_px` of `source` lie in these (row, column) slices."""
        if not math.isfinite(radius_px):
            return slice(0, ny), slice(0, nx)
        return (slice(max(0, math.floor(source.y_sub - radius_px)), min(ny, math.ceil(source.y_sub + radius_px) + 1)),
                slice(max(0, math.floor(source.x_sub - radius_px)), min(nx, math.ceil(source.x_sub + radius_px) + 1)))

    def fraction_at(self, x: float, y: float) -> float:
        dist = math.hypot(x - self.source.x_sub, y - self.source.y_sub) / self.beam_px
        ring = int(np.searchsorted(SIDELOBE_EDGES_BEAMS, dist, side="right")) - 1
        if ring < 0:
            return 0.0
        values, ys, xs = self.rings[ring]
        keep = np.hypot(ys - y, xs - x) > self.EXCLUDE_BEAMS * self.beam_px
        if not keep.any():
            return 0.0
        return float(np.percentile(values[keep], SIDELOBE_PERCENTILE)) / abs(self.source.value)


def _mark_sidelobes(cands: list[Candidate], sources: Sequence[Peak], fraction: float, beam_px: float, *,
                    residual: np.ndarray | None = None, margin: float = 2.0, near_beams: float = 0.0,
                    mirror: tuple[float, float] | None = None, screen: np.ndarray | None = None) -> int:
    """Class `artefact` (reason `sidelobe`) for every candidate more than 1 beam from a V source and
    no brighter than what the dirty beam of that source can put there: `margin` × the source's
    sidelobe envelope measured in `residual` at the candidate's distance, at most `fraction` of the
    source; without `residual`, `fraction` of the source at any distance. Within `near_beams` of
    the source (the bi-lobe radius), a candidate of the opposite sign up to `fraction` of the source
    is one too: the first negative sidelobe of a dirty PSF (~0.2–0.3 of the peak on 64 antennas)
    lies there, where the measured envelope cannot judge (its ring is within `_Envelope.EXCLUDE_BEAMS`
    of the candidate)."""
    if fraction <= 0 or not sources:
        return 0
    ranked = sorted(sources, key=lambda s: -abs(s.value))
    envelopes = ({id(s): _Envelope(residual, s, beam_px) for s in ranked[:MAX_ENVELOPE_SOURCES]}
                 if residual is not None else None)
    n = 0
    for c in cands:
        if c.klass == "artefact":
            continue
        doubted: Peak | None = None  # the brightest source whose envelope, not its twin, would explain c
        for s in ranked:
            dist = math.hypot(c.x - s.x_sub, c.y - s.y_sub) / beam_px
            near = c.sign != s.sign and 1.0 < dist <= near_beams and abs(c.peak_jy) <= fraction * abs(s.value)
            rule = {"beam_px": beam_px, "fraction": fraction, "margin": margin}
            if near or _explains(residual, envelopes, s, c.x, c.y, c.peak_jy, c.rms_jy, mirror=mirror, screen=screen,
                                 **rule):
                c.klass, c.reason = "artefact", "sidelobe"
                n += 1
                break
            if doubted is None and _explains(residual, envelopes, s, c.x, c.y, c.peak_jy, c.rms_jy, mirror=None, **rule):
                doubted = s
        else:
            if doubted is not None:
                log.info("%s (V %s, %+.3g Jy/beam) is within the sidelobe envelope of the %+.3g Jy/beam V source "
                         "%.1f beams away, but its twin through the source holds less than 1/%g of it: not a sidelobe",
                         c.jname, c.interval, c.peak_jy, doubted.value,
                         math.hypot(c.x - doubted.x_sub, c.y - doubted.y_sub) / beam_px, margin)
    return n


def _mark_echoes(cands: list[Candidate], reference: _VReference) -> int:
    """In 10 min − reference V images, a burst S of interval j is `share` × S in the reference of
    interval k (its weight in the weighted mean of the others; with the deep V, S/N against
    (N − 1)/N × S in its own difference), so interval k shows −share × S at its place, summed over
    the intervals holding the event. A candidate whose opposite-sign counterparts within 1 beam in
    the other intervals predict at least half of it that way (the factor 2 leaves room for noise)
    and that its own 10 min image does not hold (`_VReference.holds`: less than half of it, same
    sign; a real burst is in its own image, an echo only in the reference) is such an echo: class
    `artefact`, reason `echo`. Two quiet intervals that are most of each other's reference show a
    burst of one as a mirror burst of the other, and an event of half of the intervals shows S/2
    in them and −S/2 in the others in 10 min − deep V: the own-image test tells which is real."""
    if len(reference.images) < 2:
        return 0
    n = 0
    shape = reference.deep.data.shape
    for c in cands:
        if c.klass == "artefact" or reference.holds(c):
            continue
        radius = c.beam_arcmin / 60.0
        y, x = _pixel(c, shape)
        strongest: dict[str, float] = {}  # per other interval, its strongest opposite-sign counterpart
        for b in cands:
            if b.interval != c.interval and b.sign != c.sign and _sep_deg(b, c) <= radius:
                strongest[b.interval] = max(strongest.get(b.interval, 0.0), abs(b.peak_jy))
        echo = sum(reference.share(c.interval, k, y, x) * v for k, v in strongest.items())
        if strongest and abs(c.peak_jy) <= 2.0 * echo:
            c.klass, c.reason = "artefact", "echo"
            n += 1
    return n


def trend_prediction(times: Sequence[float], values: Sequence[float], at: float) -> tuple[float, float]:
    """What `values` (at `times`) predict at `at`, and how well: a Theil–Sen line
    (`scipy.stats.theilslopes`, the median of the pairwise slopes: one other burst among the points
    does not tilt it) through 3 or more finite points, their median through fewer; with the median
    |value − line| of the points (0 with fewer than 3). (NaN, NaN) without any point."""
    t, v = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 3:
        return float(np.median(v)), 0.0
    slope, intercept = theilslopes(v, t)[:2]
    return float(intercept + slope * at), float(np.median(np.abs(v - (intercept + slope * t))))


def _mark_trends(cands: Sequence[Candidate], intervals: Sequence[str], samples: dict[str, np.ndarray],
                 fraction: float) -> int:
    """In 10 min − deep images, class `artefact` (reason `trend`) for a candidate whose place the
    other intervals' differences predict to at least `fraction` of its own value, same sign: their
    median (a steady level; a minority of other intervals holding an event does not move it), or
    a line over the interval order (`trend_prediction`) that passes within `fraction` of the value
    of those differences (median |residual|: a drift, not a step). A transient confined to one interval leaves −S/N in
    every other difference (its share of the deep image: opposite sign, flat), one straddling two
    intervals a single same-sign neighbour that the median slope ignores; what recurs with the
    same sign — the deep image's own PSF and weighting differing from every 10 min one around a
    bright source, a dirty sidelobe sweeping over the place as the sky rotates — is predicted by
    the others. `intervals`: every searched interval, in time order; `samples[interval]`: that
    interval's difference (minus background) at the pixel of each of `cands`. Limit: an event
    lasting more than half of the intervals is steady enough to be marked."""
    order = list(intervals)
    if fraction <= 0 or len(order) < 2:
        return 0
    n = 0
    for i, c in enumerate(cands):
        if c.klass == "artefact":
            continue
        others = [j for j, k in enumerate(order) if k != c.interval and k in samples]
        if not others:
            continue
        at = order.index(c.interval)
        values = [samples[order[j]][i] for j in others]
        guess, scatter = trend_prediction(others, values, at)
        level = fraction * abs(c.peak_jy)
        steady = c.sign * float(np.nanmedian(values)) >= level if np.isfinite(values).any() else False
        if steady or (math.isfinite(guess) and c.sign * guess >= level and scatter <= level):
            c.klass, c.reason = "artefact", "trend"
            n += 1
    return n


def _sep_deg(a: Candidate, b: Candidate) -> float:
    ra1, dec1, ra2, dec2 = (math.radians(v) for v in (a.ra, a.dec, b.ra, b.dec))
    cos = math.sin(dec1) * math.sin(dec2) + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2)
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def _mark_fainter(cands: list[Candidate], sources: Sequence[Peak], beam_px: float) -> int:
    """In a 10 min − deep V image, a candidate within 1 beam of a deep-V source and of the opposite
    sign is that source being fainter in this interval (e.g. a burst of another interval, diluted
    into the deep image): class `artefact`, reason `fainter`."""
    n = 0
    for c in cands:
        if c.klass == "artefact":
            continue
        for s in sources:
            if c.sign != s.sign and math.hypot(c.x - s.x_sub, c.y - s.y_sub) <= beam_px:
                c.klass, c.reason = "artefact", "fainter"
                n += 1
                break
    return n


@dataclass
class _IMasks:
    """The I-difference masks of a subband: deep-I sources (per-interval steadiness test) + A-team."""

    sources: list[BrightSource]
    islands: list[Island]
    zone: np.ndarray
    deep: np.ndarray  # deep I − background

    def for_interval(self, diff: np.ndarray, steady_ratio: float, *, label: str, wcs: WCS) -> np.ndarray:
        """Mask the steady sources only: a deep-I source whose 10 min flux (deep + diff) reaches
        `steady_ratio` × its deep flux varied — it is the transient itself, diluted in the deep
        image, and stays searchable (0 disables the test)."""
        keep = []
        for s in self.sources:
            deep = float(self.deep[s.y, s.x])
            if steady_ratio > 0 and deep > 0 and deep + float(diff[s.y, s.x]) >= steady_ratio * deep:
                ra, dec = wcs.all_pix2world([[s.x, s.y]], 0)[0]
                log.info("%s: deep-I source at RA %.3f Dec %+.3f is %.1f× brighter in this interval: not masked",
                         label, ra, dec, (deep + float(diff[s.y, s.x])) / deep)
                continue
            keep.append(s)
        return source_mask(diff.shape, keep, self.islands) | self.zone


class _Catalog:
    """A reference catalogue read once, for the 2′ cross-match."""

    def __init__(self, path: Path):
        self.path = path
        self.sources = [src for src in read_reference_catalog(path) if src.has_position]
        if not self.sources:
            log.warning("catalogue %s holds no source with a position: no cross-match", path)
        self.coords = SkyCoord([src.ra_deg for src in self.sources] * u.deg,
                               [src.dec_deg for src in self.sources] * u.deg) if self.sources else None

    def match(self, cands: list[Candidate], radius_beams: float) -> None:
        if self.coords is None or not cands:
            return
        pos = SkyCoord([c.ra for c in cands] * u.deg, [c.dec for c in cands] * u.deg)
        idx, sep, _ = pos.match_to_catalog_sky(self.coords)
        for c, i, s in zip(cands, np.atleast_1d(idx), np.atleast_1d(sep.arcmin), strict=True):
            if s <= radius_beams * c.beam_arcmin:
                c.catalog_match = self.sources[int(i)].name
                c.catalog_sep_arcmin = float(s)
                if c.klass != "artefact":
                    c.klass = "known"


class _Search:
    """One run: state shared by the subbands (params, output folder, catalogue, written products)."""

    def __init__(self, params: SearchParams, output: Path, argv: list[str] | None, catalog: _Catalog | None):
        self.params = params
        self.output = output
        self.argv = argv
        self.catalog = catalog
        self.products: list[Path] = []
        self.skipped: list[str] = []
        self.grid: _Image | None = None  # the subband's reference grid (deep I when there is one)
        self._cache: dict[str, _Image] = {}
        self._seen: set[str] = set()
        self.infos: dict[str, ImageInfo] = {}  # path -> the selection's reading of the image
        self.v_reference: _VReference | None = None  # the subband's 10 min V reference
        self._screens: dict[str, np.ndarray | None] = {}  # dewarp screens read for the mirror test

    # ------------------------------------------------------------------ loading

    def _load(self, info: ImageInfo | None) -> _Image | None:
        """The image on the subband grid, or None (with a warning) when it holds no usable pixel."""
        if info is None:
            return None
        key = str(info.path)
        if key in self._cache:
            return self._cache[key]
        if 0 in info.shape:
            log.warning("%s holds no image data: skipped", info.path)
            self.skipped.append(key)
            return None
        img = _load(info)
        if _is_empty(img.data):
            log.warning("%s has no finite non-zero pixel: skipped", info.path)
            self.skipped.append(key)
            return None
        if self.grid is None:
            self.grid = img
        img = _align(img, self.grid, warn=key not in self._seen)
        self._seen.add(key)
        if len(self._cache) >= 3:
            self._cache.clear()
        self._cache[key] = img
        return img

    def _check_shapes(self, group: SubbandImages) -> None:
        """Fail before work: every image of the subband has the same shape."""
        shapes = {info.path: info.shape for info in group.all()}
        sized = [path for path, shape in shapes.items() if 0 not in shape]
        if not sized:
            return
        ref = group.deep_i.path if group.deep_i is not None and group.deep_i.path in sized else sized[0]
        for path in sized:
            a, b = shapes[path], shapes[ref]
            if a != b:
                raise LwaError(f"image shapes differ: {path} is {a[1]}x{a[0]}, {ref} is {b[1]}x{b[0]} "
                               "(image them on the same grid)")

    # ------------------------------------------------------------------ search

    def subband(self, group: SubbandImages) -> list[Candidate]:
        p = self.params
        t0 = time.perf_counter()
        label = group.subband or "subband ?"
        self.grid = None
        self.v_reference = None
        self._cache.clear()
        self._check_shapes(group)
        deep_i = self._load(group.deep_i)
        v_mask = i_mask = None
        if deep_i is not None:
            v_mask, i_mask = self._masks(deep_i, label)
        elif group.deep_i is None:
            log.warning("%s: no deep I image: V search without bright-source masks, no I difference search", label)
        cands: list[Candidate] = []
        if "V" in p.stokes:
            cands += self._search_v(group, v_mask, label)
        if "I" in p.stokes:
            cands += self._search_i(group, deep_i, i_mask, label)
        if self.catalog is not None:
            self.catalog.match(cands, p.catalog_match_beams)
        if p.drop_bilobe:
            dropped = sum(c.bilobe for c in cands)
            cands = [c for c in cands if not c.bilobe]
            if dropped:
                log.info("%s: dropped %d bi-lobe candidate(s)", label, dropped)
        self._products(cands, label)
        log.info("%s: %d candidate(s) in %.1f s", label, len(cands), time.perf_counter() - t0)
        self._cache.clear()
        return cands

    def _masks(self, deep_i: _Image, label: str) -> tuple[np.ndarray, _IMasks]:
        p = self.params
        beam = _beam_px([deep_i])
        bg, rms = local_background_rms(deep_i.data, box=p.rms_box_px, smooth=p.rms_smooth_boxes)
        sigma = float(np.nanmedian(rms[np.isfinite(deep_i.data)]))
        snr = (deep_i.data - bg) / sigma
        b2, b1 = p.mask_beams
        v_bright, v_src = bright_source_mask(snr, beam_px=beam, levels=((p.v_mask_sigma[0], b2), (p.v_mask_sigma[1], b1)))
        i_src, i_islands = bright_sources(snr, beam_px=beam, levels=((p.i_mask_sigma[0], b2), (p.i_mask_sigma[1], b1)))
        ateam = _present(_ateam_sources(p, deep_i.info.freq_mhz), snr, deep_i.wcs,
                         radius_px=p.ateam_present_beams * beam, sigma=p.i_mask_sigma[0], label=label)
        v_zone, v_names = ateam_mask(deep_i.wcs, deep_i.data.shape, ateam, p.v_ateam_radius_deg)
        i_zone, i_names = ateam_mask(deep_i.wcs, deep_i.data.shape, ateam, p.i_ateam_radius_deg)
        v_mask = v_bright | v_zone
        i_masks = _IMasks(i_src, i_islands, i_zone, deep_i.data - bg)
        log.info("%s: deep I σ = %.4g Jy/beam, beam %.2f px; V masks: %d bright source(s), A-team %s (%.1f%% "
                 "masked); I masks: %d bright source(s), A-team %s", label, sigma, beam, len(v_src),
                 ", ".join(v_names) or "none", 100 * v_mask.mean(), len(i_src), ", ".join(i_names) or "none")
        return v_mask, i_masks

    def _screen(self, img: _Image) -> np.ndarray | None:
        """The lwa-dewarp screen (2, ny, nx: dx, dy in pixels) of a dewarped image for the sidelobe
        rule's mirror test: the file its DWSCREEN names, beside the image or in ../dewarp/ (the
        layout run_hour.sh writes); None when the test is off, the image is not dewarped, or the
        screen is not found or not on the image's grid (a warning: twins are then looked for
        without it)."""
        name = img.header.get("DWSCREEN")
        if self.params.mirror is None or not img.header.get("DEWARPED") or not name:
            return None
        folder = img.info.path.parent
        path = next((f for f in (folder / name, folder.parent / "dewarp" / name) if f.is_file()), None)
        key = str(path)
        if key not in self._screens:
            screen = None
            if path is not None:
                data = np.asarray(fits.getdata(path), dtype=np.float32)
                screen = data if data.shape == (2, *img.data.shape) else None
            if screen is None:
                log.warning("%s: dewarp screen %s not found beside it or in ../dewarp, or not on its grid: sidelobe "
                            "twins are looked for without it", img.info.path.name, name)
            self._screens[key] = screen
        return self._screens[key]

    def _beam(self, *images: _Image | None) -> float:
        """BMAJ in pixels of the first of `images` (then of the subband's reference grid, the deep I)
        whose header has one: dirty images made without a fitted PSF have none."""
        return _beam_px([im for im in (*images, self.grid) if im is not None])

    def _search_v(self, group: SubbandImages, mask: np.ndarray | None, label: str) -> list[Candidate]:
        """Deep V directly; each 10 min V minus deep V (`v_difference`); sidelobe and fading rules."""
        p = self.params
        out: list[Candidate] = []
        deep = self._load(group.deep_v) if group.deep_v else None
        if mask is None:
            ref = deep or next((im for im in map(self._load, group.ten_v.values()) if im is not None), None)
            if ref is None:
                return out
            mask = ateam_mask(ref.wcs, ref.data.shape, _ateam_sources(p, ref.info.freq_mhz), p.v_ateam_radius_deg)[0]
        deep_sources: list[Peak] = []
        deep_beam = math.nan
        if deep is not None:
            deep_beam = self._beam(deep)
            outcome = _search_one(deep.data, params=p, mask=mask, threshold=p.v_sigma, signs=(1, -1), beam_px=deep_beam)
            deep_screen = self._screen(deep)
            deep_sources = _v_sources(outcome, p.v_source_sigma, deep_beam, fraction=p.v_sidelobe_fraction[0],
                                      margin=p.v_sidelobe_margin, mirror=p.mirror, screen=deep_screen)
            ref = group.deep_i
            found = _candidates(outcome, deep, stokes="V", interval="deep", beam_px=deep_beam,
                                reference=str(ref.path) if ref else "")
            n_side = _mark_sidelobes(found, deep_sources, p.v_sidelobe_fraction[0], deep_beam,
                                     residual=outcome.residual, margin=p.v_sidelobe_margin,
                                     near_beams=p.bilobe_radius_beams, mirror=p.mirror, screen=deep_screen)
            log.info("%s V deep: %d candidate(s) at |S/N| >= %g (%d sidelobe(s) of %d V source(s))", label,
                     len(found), p.v_sigma, n_side, len(deep_sources))
            out += found
        difference = p.v_difference and deep is not None
        tens = {k: img for k in sorted(group.ten_v) if (img := self._load(group.ten_v[k])) is not None}
        reference = self.v_reference = _VReference(tens, deep, p) if difference else None
        if reference is not None:
            log.info("%s V: each 10 min V image is searched minus %s", label, reference.describe())
        per_interval: list[Candidate] = []
        residuals: dict[str, np.ndarray] = {}  # for the trend rule
        for interval, img in tens.items():
            beam = self._beam(img, deep)
            data = img.data - reference(interval) if reference is not None else img.data
            here = mask
            if difference and deep_sources:
                here = mask | _steady_v_mask(deep_sources, data, p.v_source_mask_beams * beam, p.steady_ratio)
            outcome = _search_one(data, params=p, mask=here, threshold=p.v_sigma, signs=(1, -1), beam_px=beam)
            if difference:
                residuals[interval] = outcome.residual
            ref = group.ten_i.get(interval) or group.deep_i
            found = _candidates(outcome, img, stokes="V", interval=interval, beam_px=beam,
                                reference=str(ref.path) if ref else "")
            if reference is not None:
                for c in found:
                    c.subtracted = reference.paths(interval)
            # the full dirty sidelobes of what is bright in this (difference) image, a bright burst
            # included; and the residual sidelobes of the steady deep-V sources
            screen = self._screen(img)
            own = _v_sources(outcome, p.v_source_sigma, beam, fraction=p.v_sidelobe_fraction[0],
                             margin=p.v_sidelobe_margin, mirror=p.mirror, screen=screen)
            n_side = _mark_sidelobes(found, own, p.v_sidelobe_fraction[0], beam,
                                     residual=outcome.residual, margin=p.v_sidelobe_margin,
                                     near_beams=p.bilobe_radius_beams, mirror=p.mirror, screen=screen)
            if difference:
                n_side += _mark_sidelobes(found, deep_sources, p.v_sidelobe_fraction[1], beam)
            n_faint = _mark_fainter(found, deep_sources, beam) if difference else 0
            log.info("%s V %s%s: %d candidate(s) at |S/N| >= %g (%d sidelobe(s), %d deep-V source(s) fainter)",
                     label, interval, " − reference" if difference else "", len(found), p.v_sigma, n_side, n_faint)
            per_interval += found
        if difference:
            n_echo = _mark_echoes(per_interval, reference)
            if n_echo:
                log.info("%s V: %d echo(es) of bursts of other intervals (in the reference)", label, n_echo)
            self._trends(per_interval, residuals, f"{label} V")
        return out + per_interval

    def _trends(self, cands: list[Candidate], residuals: dict[str, np.ndarray], label: str) -> None:
        """The trend rule (`_mark_trends`) on the candidates of the 10 min − reference differences
        whose background-subtracted images (`_SearchOutcome.residual`, by interval) the search kept:
        each is sampled at the candidates' pixels (no difference or background made a second time)."""
        p = self.params
        if p.trend_fraction <= 0 or all(c.klass == "artefact" for c in cands):
            return
        ny, nx = self.grid.data.shape
        ys = np.clip(np.rint([c.y for c in cands]).astype(int), 0, ny - 1)
        xs = np.clip(np.rint([c.x for c in cands]).astype(int), 0, nx - 1)
        samples = {interval: residuals[interval][ys, xs] for interval in sorted(residuals)}
        n = _mark_trends(cands, sorted(samples), samples, p.trend_fraction)
        if n:
            log.info("%s: %d candidate(s) predicted by the other intervals' differences (trend)", label, n)

    def _search_i(self, group: SubbandImages, deep_i: _Image | None, masks: _IMasks | None,
                  label: str) -> list[Candidate]:
        p = self.params
        out, residuals = [], {}  # residuals by interval: for the trend rule
        if deep_i is None or masks is None:
            if group.ten_i:
                log.warning("%s: 10 min I images but no usable deep I: no difference search", label)
            return out
        for interval in sorted(group.ten_i):
            img = self._load(group.ten_i[interval])
            if img is None:
                continue
            diff = img.data - deep_i.data
            mask = masks.for_interval(diff, p.steady_ratio, label=f"{label} I {interval}", wcs=img.wcs)
            beam = self._beam(img, deep_i)
            outcome = _search_one(diff, params=p, mask=mask, threshold=p.i_sigma, signs=(1,), beam_px=beam)
            residuals[interval] = outcome.residual
            found = _candidates(outcome, img, stokes="I", interval=interval, beam_px=beam,
                                reference=str(deep_i.info.path))
            log.info("%s I %s − deep: %d candidate(s) at S/N >= %g (%.1f%% masked)", label, interval, len(found),
                     p.i_sigma, 100 * mask.mean())
            out += found
        self._trends(out, residuals, f"{label} I")
        return out

    # ------------------------------------------------------------------ products

    def _products(self, cands: list[Candidate], label: str) -> None:
        p = self.params
        for stokes in ("V", "I"):
            members = [c for c in cands if c.stokes == stokes]
            if len(members) > p.warn_candidates:
                log.warning("%s Stokes %s: %d candidates (more than %d): check the images for artefacts",
                            label, stokes, len(members), p.warn_candidates)
            if not p.products or p.max_cutouts == 0:
                continue
            # real-looking candidates first, then the brightest
            ranked = sorted(members, key=lambda c: (c.klass == "artefact", -abs(c.snr)))
            for c in ranked[: p.max_cutouts]:
                self._write_products(c)

    def _reference_of(self, c: Candidate) -> np.ndarray:
        """The reference subtracted from a V candidate's 10 min image (the subband's `_VReference`)."""
        ref = self.v_reference
        if ref is not None and c.interval in ref.images and ref.paths(c.interval) == c.subtracted:
            return ref(c.interval)
        path = c.subtracted[0]
        return self._load(self.infos.get(path) or image_info(path)).data

    def _write_products(self, c: Candidate) -> None:
        p = self.params
        img = self._load(self.infos.get(c.image) or image_info(c.image))
        ref = self._load(self.infos.get(c.reference) or image_info(c.reference)) if c.reference else None
        coord = SkyCoord(c.ra * u.deg, c.dec * u.deg)
        if c.stokes == "I":
            searched = img.data - ref.data
            left_title, keywords = "deep I (reference)", {"IMGCAT": "diff"}
            right_title = f"I {c.interval} − deep"
        elif c.subtracted:
            searched = img.data - self._reference_of(c)
            left_title, keywords = f"I {ref.info.interval if ref else ''}".strip(), {"IMGCAT": "diff"}
            right_title = f"V {c.interval} − deep"
        else:
            searched = img.data
            left_title, keywords = f"I {ref.info.interval if ref else ''}".strip(), {}
            right_title = f"V {c.interval}"
        cut = cutout(searched, img.wcs, coord, p.cutout_size_deg)
        if cut is None:
            log.warning("candidate %s is off its image: no cutout", c.jname)
            return
        folder = self.output / c.folder
        make_dirs(folder)
        stem = f"{c.jname}_{c.subband or 'sb'}_{c.stokes}_{c.interval}"
        keywords.update({"CANDNAME": c.jname, "CANDRA": round(c.ra, 6), "CANDDEC": round(c.dec, 6),
                         "CANDPEAK": float(f"{c.peak_jy:.6g}"), "CANDSNR": round(c.snr, 2)})
        subtracted = (c.reference,) if c.stokes == "I" else c.subtracted
        minus = (f" minus {Path(subtracted[0]).name}" if len(subtracted) == 1
                 else f" minus the noise-weighted mean of {', '.join(Path(s).name for s in subtracted)}"
                 if subtracted else "")
        history = [f"cutout of {Path(c.image).name}{minus}"]
        fits_path = write_cutout(folder / f"{stem}.fits", cut, img.header, keywords=keywords, argv=self.argv,
                                 extra_history=history)
        left_cut = cutout(ref.data, ref.wcs, coord, p.cutout_size_deg) if ref is not None else None
        png = write_png(
            folder / f"{stem}.png", left=left_cut, right=cut, centre=coord, left_title=left_title or "I",
            right_title=right_title, title=f"{c.jname}  {c.subband}  Stokes {c.stokes} {c.interval}  [{c.klass}]",
            note=f"peak {c.peak_jy:+.3g} Jy/beam, S/N {c.snr:+.1f}, rms {c.rms_jy:.3g} Jy/beam"
                 + (f", match {c.catalog_match}" if c.catalog_match else ""),
            rms=c.rms_jy, size_deg=p.cutout_size_deg,
        )
        c.cutout, c.png = str(fits_path), str(png)
        self.products += [fits_path, png]


def _write_csv(path: Path, cands: Sequence[Candidate]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for c in cands:
        writer.writerow(c.row())
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


def read_candidates(path: str | Path) -> list[dict[str, str]]:
    """The rows of a candidates.csv (strings), for tests and downstream tools."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def search_images(
    inputs: Sequence[str | Path],
    *,
    output: str | Path,
    params: SearchParams | None = None,
    catalog: str | Path | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    hints: ImageHints | None = None,
) -> SearchResult:
    """Run the search on `inputs` (FITS files and/or folders) and write `output`/candidates.csv.

    `hints` say what the headers of plain (non-pipeline) images cannot (`lwa_common.images`).

    Returns the candidates (sorted by subband, Stokes, interval, decreasing |S/N|), the CSV path and
    the products written. Raises `LwaError` on unusable input (nothing selectable, shape mismatch).
    """
    params = params or SearchParams()
    params.check()
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise LwaError(f"output {output} exists and is not a folder")
    csv_path = check_output(CANDIDATES.path(output), overwrite=overwrite)
    catalog = Path(catalog) if catalog is not None else None
    if catalog is not None and not catalog.exists():
        raise LwaError(f"catalogue not found: {catalog}")
    if params.ateam_file is not None and not Path(params.ateam_file).exists():
        raise LwaError(f"A-team file not found: {params.ateam_file}")
    infos, _ = scan_images(inputs, hints, exclude=[output])  # lwa_common.images: discovery + headers, once
    groups = select_images(infos, robust=params.robust, hints=hints)
    cat = _Catalog(catalog) if catalog is not None else None
    log.info("search parameters: %s", {k: v for k, v in asdict(params).items() if k != "ateam"})
    make_dirs(output)
    run = _Search(params, output, argv, cat)
    run.infos = {str(i.path): i for g in groups.values() for i in g.all()}
    cands: list[Candidate] = []
    n_images = 0
    for subband in sorted(groups):
        n_images += len(groups[subband].all())
        cands += run.subband(groups[subband])
    if n_images and len(set(run.skipped)) >= n_images:
        raise LwaError(f"none of the {n_images} image(s) has a finite non-zero pixel: nothing to search")
    order = {"V": 0, "I": 1}
    cands.sort(key=lambda c: (c.subband, order.get(c.stokes, 2), c.interval != "deep", c.interval, -abs(c.snr)))
    _write_csv(csv_path, cands)
    counts: dict[str, int] = {}
    for c in cands:
        counts[c.klass] = counts.get(c.klass, 0) + 1
    log.info("%d candidate(s) from %d image(s) (%s); wrote %s and %d product file(s)", len(cands), n_images,
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none", csv_path, len(run.products))
    if run.skipped:
        log.warning("%d image(s) had no finite non-zero pixel and were skipped", len(run.skipped))
    return SearchResult(cands, csv_path, run.products, n_images, run.skipped)
