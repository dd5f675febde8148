"""Cross-match detected compact sources with a reference catalogue (VLSSr or any CSV).

A detection is an anchor when its nearest catalogue source lies within the match radius, no
second catalogue source of comparable flux (>= `BLEND_FRACTION` of the first) lies within the
radius too (a blend would bias the position), no other detection claims the same catalogue source
more closely, and the fluxes agree: the catalogue flux, scaled from its reference frequency
(73.8 MHz for VLSSr) to the image frequency with the catalogue's spectral index or the default
alpha = -0.8, is within a factor `flux_ratio_max` of the measured flux.

The check is deliberately loose: the deep image the pipeline fits on is not primary-beam
corrected, so the measured flux is the catalogue flux times the beam response (about 0.2 at
20 deg elevation for the LWA dipole); a factor of 5 keeps sources down to that elevation and
still rejects confusion with a much brighter or fainter neighbour. On a PB-corrected image a
tighter `flux_ratio_max` (2 or 3) is appropriate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from lwa_common.catalogs import CatalogSource

__all__ = ["expected_flux", "match_catalog", "ANCHOR_COLUMNS", "BLEND_FRACTION"]

log = logging.getLogger(__name__)

BLEND_FRACTION = 0.2

ANCHOR_COLUMNS = [
    "name", "cat_ra_deg", "cat_dec_deg", "expected_jy", "x_cat", "y_cat", "x_obs", "y_obs", "obs_ra_deg",
    "obs_dec_deg", "flux_jy", "peak_jy", "snr", "flux_ratio", "pos_err_px", "dx_px", "dy_px", "dra_arcmin",
    "ddec_arcmin", "sep_arcmin",
]


def expected_flux(source: CatalogSource, freq_hz: float, *, ref_freq_hz: float, alpha: float) -> float:
    """Catalogue flux at `freq_hz`: the source's own spectrum when it has one, else a power law
    with `alpha` from its reference frequency (or `ref_freq_hz` when it has none)."""
    has_ref = math.isfinite(source.ref_freq_hz) and source.ref_freq_hz > 0
    if has_ref and (source.spectral_index or source.components):
        return float(source.flux_at(freq_hz))
    ref = source.ref_freq_hz if has_ref else ref_freq_hz
    return float(source.flux_jy * (freq_hz / ref) ** alpha)


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
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Anchors (columns `ANCHOR_COLUMNS`) and counts of what was kept and why not.

    `detections` are compact sources from `find_compact_sources`; `valid` is the image's finite
    pixel mask (a catalogue source projected onto a NaN pixel is outside the field). Offsets are
    observed minus catalogue, in pixels (dx, dy) and on the sky (dra = dRA cos Dec, ddec; arcmin).
    """
    counts = {"catalog": len(sources), "catalog_in_field": 0, "detections": len(detections), "matched": 0,
              "rejected_blend": 0, "rejected_flux": 0, "rejected_duplicate": 0}
    empty = pd.DataFrame(columns=ANCHOR_COLUMNS)
    placed = [s for s in sources if s.has_position]
    if not placed or not len(detections):
        return empty, counts
    ra = np.array([s.ra_deg for s in placed])
    dec = np.array([s.dec_deg for s in placed])
    with np.errstate(invalid="ignore"):
        xc, yc = wcs.world_to_pixel_values(ra, dec)
    ny, nx = valid.shape
    ix, iy = np.round(np.nan_to_num(xc, nan=-1)).astype(int), np.round(np.nan_to_num(yc, nan=-1)).astype(int)
    inside = np.isfinite(xc) & np.isfinite(yc) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    inside[inside] = valid[iy[inside], ix[inside]]
    idx = np.flatnonzero(inside)
    counts["catalog_in_field"] = len(idx)
    if len(idx) == 0:
        return empty, counts
    cat = SkyCoord(ra[idx] * u.deg, dec[idx] * u.deg)
    expected = np.array([expected_flux(placed[i], freq_hz, ref_freq_hz=ref_freq_hz, alpha=alpha) for i in idx])
    det = SkyCoord(detections["ra_deg"].to_numpy() * u.deg, detections["dec_deg"].to_numpy() * u.deg)
    radius = radius_arcmin * u.arcmin
    nearest, sep, _ = det.match_to_catalog_sky(cat)
    if len(idx) > 1:
        second, sep2, _ = det.match_to_catalog_sky(cat, nthneighbor=2)
    else:
        second, sep2 = nearest, np.full(len(det), np.inf) * u.deg
    rows = []
    claimed: dict[int, int] = {}
    for k in range(len(det)):
        if sep[k] > radius:
            continue
        j = int(nearest[k])
        if sep2[k] <= radius and expected[int(second[k])] >= BLEND_FRACTION * expected[j]:
            counts["rejected_blend"] += 1
            continue
        det_row = detections.iloc[k]
        ratio = float(det_row["flux_jy"]) / expected[j] if expected[j] > 0 else math.inf
        if not (1.0 / flux_ratio_max <= ratio <= flux_ratio_max):
            counts["rejected_flux"] += 1
            continue
        if j in claimed:
            counts["rejected_duplicate"] += 1
            if sep[k] >= sep[claimed[j]]:
                continue
            rows = [r for r in rows if r["_cat"] != j]
        claimed[j] = k
        source = placed[idx[j]]
        dra, ddec = cat[j].spherical_offsets_to(det[k])
        rows.append({
            "_cat": j, "name": source.name, "cat_ra_deg": source.ra_deg, "cat_dec_deg": source.dec_deg,
            "expected_jy": expected[j], "x_cat": float(xc[idx[j]]), "y_cat": float(yc[idx[j]]),
            "x_obs": float(det_row["x"]), "y_obs": float(det_row["y"]), "obs_ra_deg": float(det_row["ra_deg"]),
            "obs_dec_deg": float(det_row["dec_deg"]), "flux_jy": float(det_row["flux_jy"]),
            "peak_jy": float(det_row["peak_jy"]), "snr": float(det_row["snr"]), "flux_ratio": ratio,
            "pos_err_px": float(det_row["pos_err_px"]),
            "dx_px": float(det_row["x"]) - float(xc[idx[j]]), "dy_px": float(det_row["y"]) - float(yc[idx[j]]),
            "dra_arcmin": float(dra.to_value(u.arcmin)), "ddec_arcmin": float(ddec.to_value(u.arcmin)),
            "sep_arcmin": float(sep[k].to_value(u.arcmin)),
        })
    anchors = pd.DataFrame([{k: v for k, v in r.items() if k != "_cat"} for r in rows], columns=ANCHOR_COLUMNS)
    counts["matched"] = len(anchors)
    log.info("catalogue: %d sources, %d in the field; %d of %d compact detections matched within %.1f' "
             "(rejected: %d blends, %d flux, %d duplicates)", counts["catalog"], counts["catalog_in_field"],
             counts["matched"], counts["detections"], radius_arcmin, counts["rejected_blend"],
             counts["rejected_flux"], counts["rejected_duplicate"])
    return anchors, counts
