"""`fit`: measure ionospheric offsets of compact sources against a reference catalogue and fit a
smooth screen (detection: `extract`, matching: `match`, spline: `screen`, plots: `plots`)."""

from __future__ import annotations

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
from lwa_common.config import Config, Dewarp
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image
from lwa_common.images import ImageHints, info_from_header
from lwa_common.io import atomic_path
from lwa_dewarp.extract import Beam, beam_from_header, celestial_wcs, find_compact_sources
from lwa_dewarp.match import match_catalog
from lwa_dewarp.screen import Screen, fit_offset_model, sample_screen, write_screen

__all__ = ["FitResult", "fit_screen", "write_fit_products", "image_freq_mhz", "STATUS_OK", "STATUS_TOO_FEW"]

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_TOO_FEW = "too_few_anchors"


@dataclass
class FitResult:
    """What `fit_screen` found. `screen` is None when there were too few anchors."""

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


def _settings(cfg: Config | Dewarp | None) -> Dewarp:
    if cfg is None:
        return Dewarp()
    return cfg.dewarp if isinstance(cfg, Config) else cfg


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


def fit_screen(
    image: str | Path | tuple[np.ndarray, fits.Header],
    catalog: str | Path | Sequence[CatalogSource],
    *,
    cfg: Config | Dewarp | None = None,
    snr: float | None = None,
    match_radius_arcmin: float | None = None,
    min_anchors: int | None = None,
    spectral_index: float | None = None,
    reference_freq_mhz: float | None = None,
    flux_ratio_max: float | None = None,
    smoothing: float | None = None,
    max_size_beams: float | None = None,
    max_grid_px: int | None = None,
    clip_sigma: float | None = None,
    hints: ImageHints | None = None,
) -> FitResult:
    """Fit an offset screen on a (deep, Stokes I) image against a reference catalogue.

    `image` is a FITS path or (data, header); `catalog` a catalogue path (VLSSr text, CSV with
    ra/dec/flux, makesourcedb, TTCal JSON) or `CatalogSource`s. Unset keyword values come from
    `cfg.dewarp` (lwa_common.config.Dewarp). With fewer than `min_anchors` anchors the result has
    `status == "too_few_anchors"` and no screen (not an error: the pipeline continues undewarped).
    """
    d = _settings(cfg)
    snr = d.snr if snr is None else snr
    radius = d.match_radius_arcmin if match_radius_arcmin is None else match_radius_arcmin
    min_anchors = d.min_anchors if min_anchors is None else min_anchors
    alpha = d.spectral_index if spectral_index is None else spectral_index
    ref_mhz = d.reference_freq_mhz if reference_freq_mhz is None else reference_freq_mhz
    ratio_max = d.flux_ratio_max if flux_ratio_max is None else flux_ratio_max
    smoothing = d.smoothing if smoothing is None else smoothing
    max_size_beams = d.max_size_beams if max_size_beams is None else max_size_beams
    max_grid_px = d.max_grid_px if max_grid_px is None else max_grid_px
    clip_sigma = d.clip_sigma if clip_sigma is None else clip_sigma
    for name, value, low in (("snr", snr, 0.0), ("match radius", radius, 0.0), ("flux ratio max", ratio_max, 1.0),
                             ("reference frequency", ref_mhz, 0.0), ("max size", max_size_beams, 0.0),
                             ("clip sigma", clip_sigma, 0.0)):
        if not (math.isfinite(value) and value > low):
            raise LwaError(f"{name} must be > {low:g}, got {value}")
    for name, value in (("dewarp.clip_floor_beams", d.clip_floor_beams),
                        ("dewarp.position_floor_beams", d.position_floor_beams)):
        if not (math.isfinite(value) and value >= 0):
            raise LwaError(f"{name} must be >= 0, got {value}")
    if max_grid_px < 16:
        raise LwaError(f"max grid px must be at least 16, got {max_grid_px}")
    if min_anchors < 3:
        raise LwaError(f"min anchors must be at least 3, got {min_anchors}")
    if smoothing < 0:
        raise LwaError(f"smoothing must be >= 0, got {smoothing}")

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
    sources, catalog_name = _load_catalog(catalog, ref_freq_hz=ref_mhz * 1e6, alpha=alpha)
    log.info("fit: %s (%.2f MHz, beam %.2f' = %.2f px) against %s (%d sources); snr %.1f, radius %.1f', "
             "alpha %.2f, flux ratio <= %.1f, smoothing %.3g, >= %d anchors", image_name, freq_mhz,
             beam.fwhm_arcmin, math.sqrt(beam.bmaj_px * beam.bmin_px), catalog_name, len(sources), snr, radius,
             alpha, ratio_max, smoothing, min_anchors)

    detections = find_compact_sources(plane, header, snr=snr, max_size_beams=max_size_beams)
    compact = detections[detections["compact"]].reset_index(drop=True)
    anchors, counts = match_catalog(compact, sources, wcs, np.isfinite(plane), freq_hz=freq_mhz * 1e6,
                                    radius_arcmin=radius, flux_ratio_max=ratio_max, ref_freq_hz=ref_mhz * 1e6,
                                    alpha=alpha)
    beam_px = math.sqrt(beam.bmaj_px * beam.bmin_px)
    summary: dict[str, Any] = {
        "image": image_name, "catalog": catalog_name, "freq_mhz": round(freq_mhz, 4),
        "beam_arcmin": round(beam.fwhm_arcmin, 4), "pixel_arcmin": round(beam.pixel_deg * 60, 4),
        "n_detected": len(detections), "n_compact": len(compact), "n_catalog": counts["catalog"],
        "n_catalog_in_field": counts["catalog_in_field"], "n_matched": counts["matched"],
        "n_rejected_blend": counts["rejected_blend"], "n_rejected_flux": counts["rejected_flux"],
        "n_rejected_duplicate": counts["rejected_duplicate"], "min_anchors": min_anchors,
        "settings": {"snr": snr, "match_radius_arcmin": radius, "spectral_index": alpha,
                     "reference_freq_mhz": ref_mhz, "flux_ratio_max": ratio_max, "smoothing": smoothing,
                     "max_size_beams": max_size_beams, "max_grid_px": max_grid_px, "clip_sigma": clip_sigma,
                     "clip_floor_beams": d.clip_floor_beams, "position_floor_beams": d.position_floor_beams},
        "median_offset_before_arcmin": _median(anchors["sep_arcmin"]) if len(anchors) else None,
    }
    anchors = anchors.copy()
    for col in ("fit_dx_px", "fit_dy_px", "cv_dx_px", "cv_dy_px", "after_arcmin", "after_cv_arcmin"):
        anchors[col] = np.nan
    anchors["used"] = False

    def too_few(n: int, why: str) -> FitResult:
        log.warning("%s: no screen, the image stays undewarped", why)
        summary.update({"status": STATUS_TOO_FEW, "n_anchors": n, "screen": None})
        return FitResult(None, STATUS_TOO_FEW, anchors, detections, summary, plane, header, beam)

    if len(anchors) < min_anchors:
        return too_few(len(anchors), f"only {len(anchors)} anchors matched (need {min_anchors})")
    points = anchors[["x_cat", "y_cat"]].to_numpy()
    offsets = anchors[["dx_px", "dy_px"]].to_numpy()
    try:
        model, keep, cv = fit_offset_model(points, offsets, shape=plane.shape, smoothing=smoothing,
                                           pos_err=np.hypot(anchors["pos_err_px"].to_numpy(),
                                                            d.position_floor_beams * beam_px),
                                           clip_sigma=clip_sigma, clip_floor_px=d.clip_floor_beams * beam_px,
                                           min_points=min_anchors)
    except LwaError as err:  # collinear or coincident anchors: as good as too few
        return too_few(len(anchors), f"{len(anchors)} anchors, but {err}")
    fx, fy = model(points[:, 0], points[:, 1])
    anchors["fit_dx_px"], anchors["fit_dy_px"] = fx, fy
    anchors["cv_dx_px"], anchors["cv_dy_px"] = cv[:, 0], cv[:, 1]
    anchors["used"] = keep
    ra, dec = anchors["cat_ra_deg"].to_numpy(), anchors["cat_dec_deg"].to_numpy()
    anchors["after_arcmin"] = _corrected_sep(wcs, points[:, 0] + offsets[:, 0] - fx, points[:, 1] + offsets[:, 1] - fy,
                                             ra, dec)
    anchors["after_cv_arcmin"] = _corrected_sep(wcs, points[:, 0] + cv[:, 0], points[:, 1] + cv[:, 1], ra, dec)
    n_used = int(keep.sum())
    summary["n_rejected_outliers"] = int((~keep).sum())
    if n_used < min_anchors:
        return too_few(n_used, f"only {n_used} anchors left after outlier rejection (need {min_anchors})")
    used = anchors[anchors["used"]]
    screen = sample_screen(model, shape=plane.shape, wcs=wcs, max_grid_px=max_grid_px, freq_mhz=freq_mhz,
                           header=header)
    length = np.hypot(screen.dx, screen.dy)
    summary.update({
        "status": STATUS_OK, "n_anchors": n_used,
        "median_offset_before_arcmin": _median(used["sep_arcmin"]),
        "median_offset_after_arcmin": _median(used["after_arcmin"]),
        "median_offset_after_cv_arcmin": _median(used["after_cv_arcmin"]),
        "median_offset_before_beams": _median(used["sep_arcmin"] / beam.fwhm_arcmin),
        "median_offset_after_cv_beams": _median(used["after_cv_arcmin"] / beam.fwhm_arcmin),
        "max_screen_offset_px": round(float(np.nanmax(length)), 4),
        "screen_factor": screen.factor,
    })
    log.info("screen from %d anchors (%d outliers dropped): median offset %.2f' before, %.2f' after "
             "(cross-validated %.2f'; beam %.2f')", n_used, summary["n_rejected_outliers"],
             summary["median_offset_before_arcmin"], summary["median_offset_after_arcmin"],
             summary["median_offset_after_cv_arcmin"], beam.fwhm_arcmin)
    return FitResult(screen, STATUS_OK, anchors, detections, summary, plane, header, beam)


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
            "DWSMOOTH": (s["settings"]["smoothing"], "thin-plate spline smoothing"),
        }
        write_screen(screen_path, result.screen, cards=cards, argv=argv, overwrite=overwrite,
                     extra_history=[f"image: {s['image']}", f"catalog: {s['catalog']}"])
        written.append(screen_path)
        s["screen"] = str(screen_path)
    elif screen_path.exists() and overwrite:
        log.warning("removing the screen of an earlier run: %s", screen_path)
        screen_path.unlink()
    qa_dir.mkdir(parents=True, exist_ok=True)
    written.append(_write_text(qa_dir / "anchors.csv", result.anchors.to_csv(index=False, float_format="%.6g")))
    written.append(_write_text(qa_dir / "detections.csv",
                               result.detections.to_csv(index=False, float_format="%.6g")))
    if plots:
        written += qa_plots.write_plots(result, qa_dir)
    s["qa"] = [str(p) for p in written if p != screen_path] + [str(qa_dir / "summary.json")]
    written.append(_write_text(qa_dir / "summary.json", json.dumps(s, indent=1, default=str) + "\n"))
    return written
