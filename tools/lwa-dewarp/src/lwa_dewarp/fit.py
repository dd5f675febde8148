"""`fit`: measure ionospheric offsets of compact sources against a reference catalogue and fit a
smooth screen (detection: `extract`, matching: `match`, spline: `screen`, plots: `plots`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from lwa_common.catalogs import CatalogSource, read_reference_catalog
from lwa_common.config import Dewarp
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image
from lwa_common.images import ImageHints, info_from_header
from lwa_common.io import atomic_path, make_dirs
from lwa_dewarp.extract import Beam, beam_from_header, celestial_wcs, find_compact_sources
from lwa_dewarp.match import match_catalog
from lwa_dewarp.screen import (
    Kernel,
    PlaneModel,
    Screen,
    equidistant_wcs,
    fit_offset_model,
    sample_screen,
    write_screen,
)

__all__ = ["FitResult", "fit_screen", "write_fit_products", "image_freq_mhz", "STATUS_OK", "STATUS_TOO_FEW", "STATUS_IDENTITY"]

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_TOO_FEW = "too_few_anchors"
STATUS_IDENTITY = "identity"  # a screen was fitted but does not beat the identity: zero screen
OFFSET_FRAMES = ("radec", "plane")
DWSTATUS = {STATUS_OK: "SCREEN", STATUS_IDENTITY: "IDENTITY"}  # the header keyword of each
MAX_HELDOUT_FITS = 60  # held-out refits: leave-one-out up to this many anchors, else this many folds
# ... and above that many anchors the folds reuse the full fit's screen model (kernel) instead of
# choosing it again: the choice is most of a fit's cost, O(n^3) per candidate, and with hundreds
# of anchors it no longer hangs on the few held out
MAX_PASSES = 10  # matching passes: the first around the catalogue, then around the last screen's predictions


@dataclass
class FitResult:
    """What `fit_screen` found. `screen` is None when there were too few anchors, zero when
    `status` is identity."""

    screen: Screen | None
    status: str
    anchors: pd.DataFrame
    detections: pd.DataFrame
    summary: dict[str, Any]
    plane: np.ndarray = field(repr=False)
    header: fits.Header = field(repr=False)
    beam: Beam = field(repr=False)


def image_freq_mhz(header: fits.Header, hints: ImageHints | None = None) -> float:
    """The image frequency by the one header rule of `lwa_common.images` (FREQMHZ, else the FREQ axis); NaN if none."""
    return info_from_header("image", header, hints).freq_mhz


def _load_image(image: str | Path | tuple[np.ndarray, fits.Header]) -> tuple[np.ndarray, fits.Header, str]:
    if isinstance(image, (str, Path)):
        data, header = read_image(image)
        return image_plane(data).astype(float), header, str(image)
    data, header = image
    return image_plane(np.asarray(data)).astype(float), header, "image"


def _load_catalog(catalog: str | Path | Sequence[CatalogSource], *, ref_freq_hz: float, alpha: float
                  ) -> tuple[list[CatalogSource], str]:
    if isinstance(catalog, (str, Path)):
        sources = read_reference_catalog(catalog, ref_freq_hz=ref_freq_hz, spectral_index=alpha)
        name = str(catalog)
    else:
        sources, name = list(catalog), "catalogue"
    if not any(s.has_position for s in sources):
        raise LwaError(f"{name} has no sources with a position")
    return sources, name


def _corrected_sep(wcs: WCS, x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Separation (arcmin) between pixel positions and catalogue positions."""
    wra, wdec = wcs.pixel_to_world_values(x, y)
    return SkyCoord(wra * u.deg, wdec * u.deg).separation(SkyCoord(ra * u.deg, dec * u.deg)).to_value(u.arcmin)


def _median(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return round(float(np.median(values)), 4) if len(values) else None


@dataclass
class _Inputs:
    """The image and catalogue of one fit, read and checked."""

    plane: np.ndarray
    header: fits.Header
    name: str
    beam: Beam
    wcs: WCS
    freq_mhz: float
    sources: list[CatalogSource]
    catalog_name: str
    pbcor: bool = False  # PBCOR = T: fluxes comparable with the catalogue's (`flux_ratio_max_pbcor`)

    @property
    def beam_px(self) -> float:
        return math.sqrt(self.beam.bmaj_px * self.beam.bmin_px)


def _checked_settings(settings: Dewarp | None) -> Dewarp:
    """`settings` (the `[dewarp]` section; None: the defaults), validated: a one-line `LwaError`
    naming the value out of range."""
    d = settings if settings is not None else Dewarp()
    for name, low in (("snr", 0.0), ("match_radius_beams", 0.0), ("flux_ratio_max", 1.0), ("flux_ratio_max_pbcor", 1.0),
                      ("reference_freq_mhz", 0.0), ("max_size_beams", 0.0), ("clip_sigma", 0.0),
                      ("cv_gain", 0.0), ("background_box_beams", 0.0), ("fit_box_beams", 0.0)):
        value = getattr(d, name)
        if not (math.isfinite(value) and value > low):
            raise LwaError(f"dewarp.{name} must be > {low:g}, got {value}")
    for name in ("clip_floor_beams", "position_floor_beams", "smoothing", "rematch_radius_beams", "rigid_snr",
                 "rigid_radius_beams", "rigid_taper_beams"):
        value = getattr(d, name)
        if not (math.isfinite(value) and value >= 0):
            raise LwaError(f"dewarp.{name} must be >= 0, got {value}")
    if d.max_grid_px < 16:
        raise LwaError(f"max grid px must be at least 16, got {d.max_grid_px}")
    if d.offset_frame not in OFFSET_FRAMES:
        raise LwaError(f"dewarp.offset_frame must be one of {', '.join(OFFSET_FRAMES)}, got {d.offset_frame!r}")
    if not 1 <= d.max_degree <= 3:
        raise LwaError(f"dewarp.max_degree must be 1, 2 or 3, got {d.max_degree}")
    if d.min_anchors < 3:
        raise LwaError(f"min anchors must be at least 3, got {d.min_anchors}")
    return d


def _read_inputs(image: str | Path | tuple[np.ndarray, fits.Header],
                 catalog: str | Path | Sequence[CatalogSource], d: Dewarp, hints: ImageHints | None = None) -> _Inputs:
    plane, header, image_name = _load_image(image)
    info = info_from_header(image_name, header, hints)  # the one reading of the header (lwa_common.images)
    if info.stokes not in ("I", ""):
        raise LwaError(f"{image_name} is a Stokes {info.stokes} image; fit needs Stokes I")
    if info.dewarped:
        raise LwaError(f"{image_name} is already dewarped (DEWARPED = T); fit the screen on the original image")
    beam = beam_from_header(header, where=image_name)
    freq_mhz = info.require("freq").freq_mhz
    wcs = celestial_wcs(header)
    if not wcs.has_celestial:
        raise LwaError(f"{image_name} has no celestial WCS")
    sources, catalog_name = _load_catalog(catalog, ref_freq_hz=d.reference_freq_mhz * 1e6, alpha=d.spectral_index)
    return _Inputs(plane, header, image_name, beam, wcs, freq_mhz, sources, catalog_name, pbcor=info.pbcor)


def _find_anchors(inp: _Inputs, d: Dewarp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(detections, compact detections, anchors, match counts); the match radius is
    `match_radius_beams` geometric-mean beams of the image's header."""
    detections = find_compact_sources(inp.plane, inp.header, snr=d.snr, max_size_beams=d.max_size_beams,
                                      background_box_beams=d.background_box_beams, fit_box_beams=d.fit_box_beams)
    compact = detections[detections["compact"]].reset_index(drop=True)
    anchors, counts = _match(compact, inp, d, radius_beams=d.match_radius_beams)
    return detections, compact, anchors, counts


def _match(compact: pd.DataFrame, inp: _Inputs, d: Dewarp, *, radius_beams: float, predict=None
           ) -> tuple[pd.DataFrame, dict[str, int]]:
    anchors, counts = match_catalog(compact, inp.sources, inp.wcs, np.isfinite(inp.plane),
                                    freq_hz=inp.freq_mhz * 1e6, radius_arcmin=radius_beams * inp.beam.fwhm_arcmin,
                                    flux_ratio_max=d.flux_ratio_max, ref_freq_hz=d.reference_freq_mhz * 1e6,
                                    alpha=d.spectral_index, predict=predict)
    anchors = anchors.copy()
    for col in ("fit_dx_px", "fit_dy_px", "cv_dx_px", "cv_dy_px", "after_arcmin", "after_cv_arcmin", "heldout_ra_deg",
                "heldout_dec_deg", "heldout_arcmin"):
        anchors[col] = np.nan
    anchors["used"] = False
    return anchors, counts


def _rematch(compact: pd.DataFrame, inp: _Inputs, d: Dewarp, anchors: pd.DataFrame, model: PlaneModel,
             counts: dict[str, int]) -> tuple[pd.DataFrame, PlaneModel, dict[str, int]]:
    """Further passes: every catalogue source is looked for within `rematch_radius_beams` of where
    the last screen puts it, and the screen refitted on those anchors, until a pass adds no anchor
    (at most `MAX_PASSES`): offsets beyond the first radius are found from the anchors next to
    them outwards (lwa-sim skies have sources 3-5.5 beams off), and the first pass's nearest-source
    guesses are checked against the field. The last good pass stands; none when the first screen
    does not beat the identity."""
    if d.rematch_radius_beams <= 0:
        return anchors, model, counts
    for _ in range(MAX_PASSES - 1):
        if not _judge(anchors[anchors["used"]], inp.beam, d)["screen_beats_identity"]:
            break
        again, counts2 = _match(compact, inp, d, radius_beams=d.rematch_radius_beams, predict=_predictor(inp, model))
        if len(again) < d.min_anchors:
            break
        try:
            model2 = _fit_anchors(again, inp, d)
        except LwaError:
            break
        log.info("pass around the screen's predictions: %d anchors (before: %d)", len(again), len(anchors))
        grew = int(again["used"].sum()) > int(anchors["used"].sum())
        anchors, model, counts = again, model2, counts2
        if not grew:
            break
    return anchors, model, counts


def _predictor(inp: _Inputs, model: PlaneModel):
    """Catalogue (RA, Dec) -> where `model` puts them in the image (degrees; NaN off the image)."""
    def predict(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            x, y = inp.wcs.world_to_pixel_values(ra, dec)
            ok = np.isfinite(x) & np.isfinite(y)
            dx, dy = model(np.where(ok, x, 0.0), np.where(ok, y, 0.0))
            pra, pdec = inp.wcs.pixel_to_world_values(x + dx, y + dy)
        return np.where(ok, pra, np.nan), np.where(ok, pdec, np.nan)

    return predict


def _base_summary(inp: _Inputs, d: Dewarp, detections: pd.DataFrame, compact: pd.DataFrame,
                  anchors: pd.DataFrame, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "image": inp.name, "catalog": inp.catalog_name, "freq_mhz": round(inp.freq_mhz, 4),
        "beam_arcmin": round(inp.beam.fwhm_arcmin, 4), "pixel_arcmin": round(inp.beam.pixel_deg * 60, 4),
        "match_radius_arcmin": round(d.match_radius_beams * inp.beam.fwhm_arcmin, 4),
        "n_detected": len(detections), "n_compact": len(compact), "n_catalog": counts["catalog"],
        "n_catalog_in_field": counts["catalog_in_field"], "n_matched": counts["matched"],
        "n_rejected_blend": counts["rejected_blend"], "n_rejected_flux": counts["rejected_flux"],
        "n_rejected_duplicate": counts["rejected_duplicate"], "min_anchors": d.min_anchors,
        "settings": dataclasses.asdict(d),
        "median_offset_before_arcmin": _median(anchors["sep_arcmin"]) if len(anchors) else None,
    }


def _plane_fit(anchors: pd.DataFrame, inp: _Inputs, d: Dewarp, kernel: Kernel | None = None
               ) -> tuple[PlaneModel, np.ndarray, np.ndarray, np.ndarray]:
    """The screen of `anchors` (outliers clipped) in the equidistant plane: the model, the kept
    mask, the cross-validated residuals (`fit_offset_model`; its model choice skipped when
    `kernel` is given) and the anchors' plane positions; LwaError when the anchors are degenerate."""
    plane = equidistant_wcs(inp.wcs)
    unit = inp.beam.pixel_deg * 60.0
    ra, dec = anchors["cat_ra_deg"].to_numpy(), anchors["cat_dec_deg"].to_numpy()
    points = np.column_stack(plane.world_to_pixel_values(ra, dec))
    if d.offset_frame == "plane":
        offsets = np.column_stack(plane.world_to_pixel_values(anchors["obs_ra_deg"].to_numpy(),
                                                              anchors["obs_dec_deg"].to_numpy())) - points
    else:
        offsets = anchors[["dra_arcmin", "ddec_arcmin"]].to_numpy() / unit
    inner, keep, cv = fit_offset_model(points, offsets, shape=inp.plane.shape, smoothing=d.smoothing,
                                       pos_err=np.hypot(anchors["pos_err_px"].to_numpy(),
                                                        d.position_floor_beams * inp.beam_px),
                                       clip_sigma=d.clip_sigma, clip_floor_px=d.clip_floor_beams * inp.beam_px,
                                       min_points=d.min_anchors, max_degree=d.max_degree, kernel=kernel)
    return PlaneModel(inner, inp.wcs, plane, unit, d.offset_frame), keep, cv, points


def _fit_anchors(anchors: pd.DataFrame, inp: _Inputs, d: Dewarp) -> PlaneModel:
    """Fit the screen on the anchors (`_plane_fit`), filling the anchors' fitted (image pixels),
    cross-validated (sky offsets in image pixel units) and corrected columns;
    LwaError when the anchors are degenerate."""
    model, keep, cv, points = _plane_fit(anchors, inp, d)
    plane, unit = model.plane, model.unit_arcmin
    ra, dec = anchors["cat_ra_deg"].to_numpy(), anchors["cat_dec_deg"].to_numpy()
    fx, fy = model(anchors["x_cat"].to_numpy(), anchors["y_cat"].to_numpy())
    anchors["fit_dx_px"], anchors["fit_dy_px"] = fx, fy
    anchors["cv_dx_px"], anchors["cv_dy_px"] = cv[:, 0], cv[:, 1]
    anchors["used"] = keep
    anchors["after_arcmin"] = _corrected_sep(inp.wcs, anchors["x_obs"].to_numpy() - fx,
                                             anchors["y_obs"].to_numpy() - fy, ra, dec)
    if d.offset_frame == "plane":
        anchors["after_cv_arcmin"] = _corrected_sep(plane, points[:, 0] + cv[:, 0], points[:, 1] + cv[:, 1], ra, dec)
    else:
        anchors["after_cv_arcmin"] = np.hypot(cv[:, 0], cv[:, 1]) * unit
    return model


def _heldout(anchors: pd.DataFrame, inp: _Inputs, d: Dewarp, model: PlaneModel) -> pd.DataFrame:
    """Each anchor held out in turn (in `MAX_HELDOUT_FITS` folds when there are more anchors): the
    screen fitted by the whole procedure (model choice, outlier clipping) on the others, and
    where it puts that anchor's catalogue position in the image (`heldout_ra_deg`, `heldout_dec_deg`; NaN when the others are degenerate), with its
    separation from where the anchor was measured (`heldout_arcmin`). What a source outside the
    fit gets from the screen, compared with the truth by `lwa-sim score`; unlike the leave-one-out
    residual it includes the model choice and the clipping. Above `MAX_HELDOUT_FITS` anchors each
    fold keeps `model`'s kernel (the full fit's choice) and only clips and refits."""
    out = anchors.copy()
    kernel = model.inner.kernel if len(out) > MAX_HELDOUT_FITS else None
    pra, pdec = np.full(len(out), np.nan), np.full(len(out), np.nan)
    ra, dec = out["cat_ra_deg"].to_numpy(), out["cat_dec_deg"].to_numpy()
    fold = np.arange(len(out)) % min(len(out), MAX_HELDOUT_FITS)  # one anchor per fit, up to that many fits
    for k in np.unique(fold):
        held = fold == k
        try:
            refit = _plane_fit(out[~held], inp, d, kernel)[0]
        except LwaError:
            continue
        pra[held], pdec[held] = _predictor(inp, refit)(ra[held], dec[held])
    out["heldout_ra_deg"], out["heldout_dec_deg"] = pra, pdec
    ok = np.isfinite(pra) & np.isfinite(pdec)
    sep = np.full(len(out), np.nan)
    if ok.any():
        sep[ok] = SkyCoord(pra[ok] * u.deg, pdec[ok] * u.deg).separation(
            SkyCoord(out["obs_ra_deg"].to_numpy()[ok] * u.deg, out["obs_dec_deg"].to_numpy()[ok] * u.deg)).arcmin
    out["heldout_arcmin"] = sep
    return out


def _heldout_summary(anchors: pd.DataFrame, beam: Beam) -> dict[str, Any]:
    """The held-out residuals (`_heldout`) of the anchors offset >= 1 beam, against their measured
    positions: the fraction within 0.2 beam (issue 15's dewarp goal, without a truth) and the median."""
    far = anchors[(anchors["sep_arcmin"] >= beam.fwhm_arcmin)]
    res = far["heldout_arcmin"].to_numpy() / beam.fwhm_arcmin
    res = np.where(np.isfinite(res), res, far["sep_arcmin"].to_numpy() / beam.fwhm_arcmin)
    return {"n_heldout_offset_1beam": len(far),
            "heldout_within_0p2_beam": round(float(np.mean(res <= 0.2)), 4) if len(res) else None,
            "median_heldout_beams": _median(anchors["heldout_arcmin"] / beam.fwhm_arcmin)}


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else math.nan


def _judge(used: pd.DataFrame, beam: Beam, d: Dewarp) -> dict[str, Any]:
    """Does the screen beat the identity on the anchors it was not told about? The identity's
    residual is the offset itself; the screen's is its leave-one-out residual."""
    before = _rms(used["sep_arcmin"].to_numpy()) / beam.fwhm_arcmin
    after = _rms(used["after_cv_arcmin"].to_numpy()) / beam.fwhm_arcmin
    better = bool(after <= d.cv_gain * before)
    return {"rms_offset_before_beams": round(before, 4), "rms_offset_after_cv_beams": round(after, 4),
            "screen_beats_identity": better}


def _offset_summary(used: pd.DataFrame, beam: Beam) -> dict[str, float | None]:
    return {
        "median_offset_before_arcmin": _median(used["sep_arcmin"]),
        "median_offset_after_arcmin": _median(used["after_arcmin"]),
        "median_offset_after_cv_arcmin": _median(used["after_cv_arcmin"]),
        "median_offset_before_beams": _median(used["sep_arcmin"] / beam.fwhm_arcmin),
        "median_offset_after_cv_beams": _median(used["after_cv_arcmin"] / beam.fwhm_arcmin),
    }


def _log_start(inp: _Inputs, d: Dewarp) -> None:
    """What is fitted against what, with which settings (one INFO line)."""
    log.info("fit: %s (%.2f MHz, beam %.2f' = %.2f px) against %s (%d sources); snr %.1f, radius %.2f beams, "
             "alpha %.2f, flux ratio <= %.1f, smoothing %.3g, >= %d anchors", inp.name, inp.freq_mhz,
             inp.beam.fwhm_arcmin, inp.beam_px, inp.catalog_name, len(inp.sources), d.snr, d.match_radius_beams,
             d.spectral_index, d.flux_ratio_max, d.smoothing, d.min_anchors)


def _log_screen(n_used: int, summary: dict, inp: _Inputs) -> None:
    """The fitted screen's anchors and offsets before/after (one INFO line)."""
    log.info("screen from %d anchors (%d outliers dropped): median offset %.2f' before, %.2f' after "
             "(cross-validated %.2f'; beam %.2f')", n_used, summary["n_rejected_outliers"],
             summary["median_offset_before_arcmin"], summary["median_offset_after_arcmin"],
             summary["median_offset_after_cv_arcmin"], inp.beam.fwhm_arcmin)


def fit_screen(
    image: str | Path | tuple[np.ndarray, fits.Header],
    catalog: str | Path | Sequence[CatalogSource],
    *,
    settings: Dewarp | None = None,
    hints: ImageHints | None = None,
) -> FitResult:
    """Fit an offset screen on a (deep, Stokes I) image against a reference catalogue.

    `image` is a FITS path or (data, header); `catalog` a catalogue path (VLSSr text, CSV with
    ra/dec/flux, makesourcedb, TTCal JSON) or `CatalogSource`s. `settings` is the `[dewarp]` section (None: the defaults; a caller
    changes values with `lwa_common.config.section_with`); every radius is in beams of the image's header.
    With fewer than `min_anchors` anchors the result has `status == "too_few_anchors"` and no
    screen; when the screen's cross-validated residual does not beat the identity's (the raw
    offsets) by `cv_gain`, `status == "identity"` and the screen is zero (the images stay as
    they are). Neither is an error: the pipeline continues undewarped.
    """
    d = _checked_settings(settings)
    inp = _read_inputs(image, catalog, d, hints)
    if inp.pbcor:  # the measured flux is intrinsic: the flux test can be tight
        d = dataclasses.replace(d, flux_ratio_max=d.flux_ratio_max_pbcor)
    _log_start(inp, d)
    detections, compact, anchors, counts = _find_anchors(inp, d)
    summary = _base_summary(inp, d, detections, compact, anchors, counts)

    def result(screen: Screen | None, status: str, n: int, why: str = "") -> FitResult:
        if why:
            log.warning("%s: the image stays undewarped", why)
        summary.update({"status": status, "n_anchors": n, "screen": None})
        return FitResult(screen, status, anchors, detections, summary, inp.plane, inp.header, inp.beam)

    if len(anchors) < d.min_anchors:
        return result(None, STATUS_TOO_FEW, len(anchors), f"only {len(anchors)} anchors matched (need {d.min_anchors})")
    try:
        model = _fit_anchors(anchors, inp, d)
    except LwaError as err:  # collinear or coincident anchors: as good as too few
        return result(None, STATUS_TOO_FEW, len(anchors), f"{len(anchors)} anchors, but {err}")
    anchors, model, counts = _rematch(compact, inp, d, anchors, model, counts)
    summary.update(_base_summary(inp, d, detections, compact, anchors, counts))
    used = anchors[anchors["used"]]
    summary.update(n_rejected_outliers=int((~anchors["used"]).sum()), screen_model=model.inner.kind,
                   screen_model_card=model.inner.card)
    if len(used) < d.min_anchors:
        return result(None, STATUS_TOO_FEW, len(used),
                      f"only {len(used)} anchors left after outlier rejection (need {d.min_anchors})")
    verdict = _judge(used, inp.beam, d)
    anchors = _heldout(anchors, inp, d, model)
    summary.update(_heldout_summary(anchors, inp.beam))
    screen = sample_screen(model, shape=inp.plane.shape, wcs=inp.wcs, max_grid_px=d.max_grid_px,
                           freq_mhz=inp.freq_mhz, header=inp.header)
    summary.update(verdict)
    summary.update(_offset_summary(used, inp.beam), screen_factor=screen.factor)
    if not verdict["screen_beats_identity"]:
        screen = screen.identity()
        summary["max_screen_offset_px"] = 0.0
        return result(screen, STATUS_IDENTITY, len(used),
                      f"the screen's cross-validated RMS residual ({verdict['rms_offset_after_cv_beams']:.3f} beam) "
                      f"does not beat the raw offsets ({verdict['rms_offset_before_beams']:.3f} beam) by "
                      f"{d.cv_gain:g}x: identity screen")
    summary["max_screen_offset_px"] = round(float(np.nanmax(np.hypot(screen.dx, screen.dy))), 4)
    _log_screen(len(used), summary, inp)
    return result(screen, STATUS_OK, len(used))


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_fit_products(
    result: FitResult,
    *,
    screen_path: str | Path,
    qa_dir: str | Path,
    argv: list[str] | None = None,
    overwrite: bool = False,
    plots: bool = True,
) -> list[Path]:
    """Write the screen FITS (when there is one) and the diagnostics; returns the paths written.

    Diagnostics in `qa_dir`: anchors.csv (every match: offsets, fitted screen, residuals,
    cross-validated residuals, used flag), detections.csv, summary.json, and the PNGs offsets.png
    (offset vectors on the image), screen.png (dx, dy, |d|) and residuals.png (before/after).
    A run with too few anchors removes a screen left by an earlier run (with `overwrite`).
    """
    from lwa_dewarp import plots as qa_plots

    screen_path, qa_dir = Path(screen_path), Path(qa_dir)
    written: list[Path] = []
    s = result.summary
    if result.screen is not None:
        cards = {
            "NANCHOR": (s["n_anchors"], "anchors used for the screen"),
            "OFFMED0": (s["median_offset_before_arcmin"], "median offset before dewarping [arcmin]"),
            "OFFMED1": (s["median_offset_after_arcmin"], "median residual after (in-sample) [arcmin]"),
            "OFFMEDCV": (s["median_offset_after_cv_arcmin"], "median residual after (cross-valid.) [arcmin]"),
            "DWSMOOTH": (s["settings"]["smoothing"], "screen smoothing (noise-to-signal)"),
            "DWMODEL": (str(s.get("screen_model_card", ""))[:40], "screen model (least held-out residual)"),
            "DWSTATUS": (DWSTATUS[result.status], "SCREEN: fitted; IDENTITY: no gain, zero screen"),
            "RMSOFF0": (s["rms_offset_before_beams"], "RMS anchor offset before [beams]"),
            "RMSOFFCV": (s["rms_offset_after_cv_beams"], "RMS leave-one-out residual of screen [beams]"),
        }
        write_screen(screen_path, result.screen, cards=cards, argv=argv, overwrite=overwrite,
                     extra_history=[f"image: {s['image']}", f"catalog: {s['catalog']}"])
        written.append(screen_path)
        s["screen"] = str(screen_path)
    elif screen_path.exists() and overwrite:
        log.warning("removing the screen of an earlier run: %s", screen_path)
        screen_path.unlink()
    make_dirs(qa_dir)
    written.append(_write_text(qa_dir / "anchors.csv", result.anchors.to_csv(index=False, float_format="%.6g")))
    written.append(_write_text(qa_dir / "detections.csv",
                               result.detections.to_csv(index=False, float_format="%.6g")))
    if plots:
        written += qa_plots.write_plots(result, qa_dir)
    s["qa"] = [str(p) for p in written if p != screen_path] + [str(qa_dir / "summary.json")]
    written.append(_write_text(qa_dir / "summary.json", json.dumps(s, indent=1, default=str) + "\n"))
    return written
