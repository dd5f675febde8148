"""Cross-match detected compact sources with a reference catalogue (VLSSr or any CSV).

A detection is an anchor when, of the catalogue sources within the match radius (in beams of the
image, set by the caller), the nearest one whose flux agrees is unambiguous: no second catalogue
source of comparable flux (>= `BLEND_FRACTION` of the first) lies within the radius too (a blend
would bias the position, and two candidates make the match a guess), and no other detection
claims the same catalogue source more closely. The fluxes agree when the catalogue flux, scaled
from its reference frequency (73.8 MHz for VLSSr) to the image frequency with the catalogue's
spectral index or the default alpha = -0.8, is within a factor `flux_ratio_max` of the measured
flux.

The check is deliberately loose: the deep image the pipeline fits on is not primary-beam
corrected, so the measured flux is the catalogue flux times the beam response (about 0.2 at
20 deg elevation for the LWA dipole); a factor of 5 keeps sources down to that elevation and
still rejects confusion with a much brighter or fainter neighbour. On a PB-corrected image a
tighter `flux_ratio_max` (2 or 3) is appropriate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from lwa_common.catalogs import CatalogSource
from lwa_common.products import DEWARP_ANCHORS

__all__ = ["expected_flux", "match_catalog", "ANCHOR_COLUMNS", "BLEND_FRACTION"]

log = logging.getLogger(__name__)

BLEND_FRACTION = 0.2

ANCHOR_COLUMNS = list(DEWARP_ANCHORS.columns)


def expected_flux(source: CatalogSource, freq_hz: float, *, ref_freq_hz: float, alpha: float) -> float:
    """Catalogue flux at `freq_hz`: the source's own spectrum when it has one, else a power law
    with `alpha` from its reference frequency (or `ref_freq_hz` when it has none)."""
    has_ref = math.isfinite(source.ref_freq_hz) and source.ref_freq_hz > 0
    if has_ref and (source.spectral_index or source.components):
        return float(source.flux_at(freq_hz))
    ref = source.ref_freq_hz if has_ref else ref_freq_hz
    return float(source.flux_jy * (freq_hz / ref) ** alpha)


def _in_field(placed: Sequence[CatalogSource], wcs: WCS, valid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into `placed` of the catalogue sources that project onto finite pixels, and the
    pixel positions (x, y) of every placed source."""
    ra = np.array([s.ra_deg for s in placed])
    dec = np.array([s.dec_deg for s in placed])
    with np.errstate(invalid="ignore"):
        xc, yc = wcs.world_to_pixel_values(ra, dec)
    ny, nx = valid.shape
    ix, iy = np.round(np.nan_to_num(xc, nan=-1)).astype(int), np.round(np.nan_to_num(yc, nan=-1)).astype(int)
    inside = np.isfinite(xc) & np.isfinite(yc) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    inside[inside] = valid[iy[inside], ix[inside]]
    return np.flatnonzero(inside), np.asarray(xc, dtype=float), np.asarray(yc, dtype=float)


def _pick(det: SkyCoord, cat: SkyCoord, expected: np.ndarray, measured: np.ndarray, *, radius: u.Quantity,
          flux_ratio_max: float, counts: dict[str, int]) -> dict[int, tuple[int, float]]:
    """{catalogue index: (detection index, separation in arcmin)}: per detection the nearest
    catalogue source within `radius` whose flux agrees, unless another catalogue source within
    the radius has >= BLEND_FRACTION of its flux (a blend or an ambiguity); a catalogue source
    claimed by two detections goes to the closer."""
    i_det, i_cat, sep, _ = cat.search_around_sky(det, radius) if len(cat) else ([], [], [], None)
    i_det, i_cat = np.asarray(i_det, dtype=int), np.asarray(i_cat, dtype=int)
    sep = np.asarray(sep.to_value(u.arcmin)) if len(i_det) else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = measured[i_det] / expected[i_cat]
    agrees = (ratio >= 1.0 / flux_ratio_max) & (ratio <= flux_ratio_max)
    claimed: dict[int, tuple[int, float]] = {}
    for k in np.unique(i_det):
        mine = i_det == k
        ok = mine & agrees
        if not ok.any():
            counts["rejected_flux"] += 1
            continue
        best = np.flatnonzero(ok)[np.argmin(sep[ok])]
        j = int(i_cat[best])
        others = mine & (i_cat != j)
        if np.any(expected[i_cat[others]] >= BLEND_FRACTION * expected[j]):
            counts["rejected_blend"] += 1
            continue
        if j in claimed:
            counts["rejected_duplicate"] += 1
            if sep[best] >= claimed[j][1]:
                continue
        claimed[j] = (int(k), float(sep[best]))
    return claimed


def _anchor_row(source: CatalogSource, cat: SkyCoord, det: SkyCoord, det_row: pd.Series, *, expected: float,
                x_cat: float, y_cat: float, sep_arcmin: float) -> dict[str, Any]:
    dra, ddec = cat.spherical_offsets_to(det)
    return {
        "name": source.name, "cat_ra_deg": source.ra_deg, "cat_dec_deg": source.dec_deg,
        "expected_jy": expected, "x_cat": x_cat, "y_cat": y_cat,
        "x_obs": float(det_row["x"]), "y_obs": float(det_row["y"]), "obs_ra_deg": float(det_row["ra_deg"]),
        "obs_dec_deg": float(det_row["dec_deg"]), "flux_jy": float(det_row["flux_jy"]),
        "peak_jy": float(det_row["peak_jy"]), "snr": float(det_row["snr"]),
        "flux_ratio": float(det_row["flux_jy"]) / expected if expected > 0 else math.inf,
        "pos_err_px": float(det_row["pos_err_px"]),
        "dx_px": float(det_row["x"]) - x_cat, "dy_px": float(det_row["y"]) - y_cat,
        "dra_arcmin": float(dra.to_value(u.arcmin)), "ddec_arcmin": float(ddec.to_value(u.arcmin)),
        "sep_arcmin": sep_arcmin,
    }


def match_catalog(
    detections: pd.DataFrame,
    sources: Sequence[CatalogSource],
    wcs: WCS,
    valid: np.ndarray,
    *,
    freq_hz: float,
    radius_arcmin: float,
    flux_ratio_max: float,
    ref_freq_hz: float,
    alpha: float,
    predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Anchors (columns `ANCHOR_COLUMNS`) and counts of what was kept and why not.

    `detections` are compact sources from `find_compact_sources`; `valid` is the image's finite
    pixel mask (a catalogue source projected onto a NaN pixel is outside the field). Offsets are
    observed minus catalogue, in pixels (dx, dy) and on the sky (dra = dRA cos Dec, ddec; arcmin).
    With `predict` (catalogue RA, Dec in degrees -> where a screen expects them in the image) the
    detections are matched within the radius of the predicted positions (the blend test too),
    while the offsets stay observed minus catalogue.
    """
    counts = {"catalog": len(sources), "catalog_in_field": 0, "detections": len(detections), "matched": 0,
              "rejected_blend": 0, "rejected_flux": 0, "rejected_duplicate": 0}
    empty = pd.DataFrame(columns=ANCHOR_COLUMNS)
    placed = [s for s in sources if s.has_position]
    if not placed or not len(detections):
        return empty, counts
    idx, xc, yc = _in_field(placed, wcs, valid)
    counts["catalog_in_field"] = len(idx)
    if len(idx) == 0:
        return empty, counts
    cat = SkyCoord([placed[i].ra_deg for i in idx] * u.deg, [placed[i].dec_deg for i in idx] * u.deg)
    target = cat
    if predict is not None:
        p_ra, p_dec = predict(cat.ra.deg, cat.dec.deg)
        target = SkyCoord(np.where(np.isfinite(p_ra), p_ra, cat.ra.deg) * u.deg,
                          np.where(np.isfinite(p_dec), p_dec, cat.dec.deg) * u.deg)
    expected = np.array([expected_flux(placed[i], freq_hz, ref_freq_hz=ref_freq_hz, alpha=alpha) for i in idx])
    det = SkyCoord(detections["ra_deg"].to_numpy() * u.deg, detections["dec_deg"].to_numpy() * u.deg)
    claimed = _pick(det, target, expected, detections["flux_jy"].to_numpy(dtype=float),
                    radius=radius_arcmin * u.arcmin, flux_ratio_max=flux_ratio_max, counts=counts)
    rows = [_anchor_row(placed[idx[j]], cat[j], det[k], detections.iloc[k], expected=float(expected[j]),
                        x_cat=float(xc[idx[j]]), y_cat=float(yc[idx[j]]),
                        sep_arcmin=float(cat[j].separation(det[k]).to_value(u.arcmin)))
            for j, (k, _) in sorted(claimed.items(), key=lambda item: item[1][0])]
    anchors = pd.DataFrame(rows, columns=ANCHOR_COLUMNS)
    counts["matched"] = len(anchors)
    log.info("catalogue: %d sources, %d in the field; %d of %d compact detections matched within %.1f' of %s "
             "(rejected: %d blends, %d flux, %d duplicates)", counts["catalog"], counts["catalog_in_field"],
             counts["matched"], counts["detections"], radius_arcmin,
             "the screen's predictions" if predict is not None else "the catalogue", counts["rejected_blend"],
             counts["rejected_flux"], counts["rejected_duplicate"])
    return anchors, counts
