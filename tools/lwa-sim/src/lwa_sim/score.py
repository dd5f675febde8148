"""Score a pipeline run against the simulation's truth (`lwa-sim score`).

Reads a `bin/run_hour.sh` work folder (or one `<hour>/<subband>` folder of it) by its products:
images by their FITS headers (docs/ARCHITECTURE.md), `transients/candidates.csv`, the flags of
the concatenated MS, the flaggers' QA CSVs, `dewarp/screen_qa/anchors.csv` and the target
photometry CSVs. Every radius is in beams of the measured image's own header (BMAJ).

The goals (issue 15, item 5) are evaluated as stated in `GOALS`; each is `pass`, `fail` or
`n/a` (nothing in this sky to test it on), with the numbers behind it. The dewarp's held-out
sources are all the scored ones: those outside the fit by their position in the dewarped image,
the anchors by where the screen fitted without them (anchors.csv `heldout_ra_deg`/`_dec_deg`,
lwa-dewarp's refit) puts them against where the ionosphere truly put them.

The scorer measures fluxes and positions with its own astropy Gaussian fits (`_fit_source`), not
with the pipeline's fitter (`lwa_common.fitting`), on purpose: it judges the pipeline's
measurements, so a defect in the pipeline's fitter must show in the score, not cancel out.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.stats import mad_std
from astropy.time import Time

from lwa_common import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane, read_image
from lwa_common.products import BAD_INTEGRATIONS, FLAGGED_BASELINES
from lwa_sim.peelscore import PEEL_GOALS, peel_goals, score_peel

__all__ = ["GOALS", "ScoreSettings", "score_run", "format_table"]

log = logging.getLogger(__name__)

GOALS = {
    "transient_recall": "≥ 95 % of injected ≥ 8σ V and I events found (not marked artefact)",
    "transient_false": "≤ 1 false candidate (not marked artefact) per 10 searched 10-min images",
    "flag_recall": "≥ 95 % of injected RFI and hot-baseline visibilities flagged",
    "flag_false": "< 2 % of clean visibilities flagged",
    "dewarp_engaged": "dewarp engages when ≥ 6 anchors exist (isolated, ≥ 10σ) and the median offset is ≥ 0.5 beam",
    "dewarp_residual": "≤ 0.2 beam after dewarping on ≥ 95 % of the held-out sources offset ≥ 1 beam",
    "dewarp_no_harm": "dewarping never worsens the median astrometry",
    "flux": "point sources within 5 % of intrinsic truth after PB correction (≥ 95 % of them), median ≤ 2 %",
    "target_v": "target photometry: Stokes V within 5 % of truth",
    "psf_sampling": "≥ 3 pixels per BMAJ in every image configuration",
    **PEEL_GOALS,  # issue 22: scored against a control simulation without the A-team (lwa_sim.peelscore)
}


@dataclass(frozen=True)
class ScoreSettings:
    """How the truth is compared with the products (radii in restoring beams)."""

    match_beams: float = 1.0  # a candidate / fitted source belongs to a truth source within this
    isolation_beams: float = 3.0  # a scored source has no other source ≥ 20 % of its flux this close
    min_snr_flux: float = 20.0  # sources scored for flux: apparent flux / image RMS at least this
    min_snr_astrometry: float = 10.0
    transient_sigma: float = 8.0  # the recall goal covers events at least this many σ
    bright_jy: float = 200.0  # "bright source" for the transient distance column


# ---- images -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Image:
    path: Path
    header: fits.Header

    def key(self, name: str, default: Any = None) -> Any:
        return self.header.get(name, default)

    @property
    def bmaj_deg(self) -> float:
        return float(self.header["BMAJ"])

    @property
    def pixel_deg(self) -> float:
        return abs(float(self.header.get("CDELT2", self.header.get("CDELT1"))))


def _images(folder: Path) -> list[Image]:
    out = []
    for p in sorted(folder.glob("*.fits")):
        try:
            h = fits.getheader(p)
        except (OSError, ValueError):
            continue
        if "STOKES" in h and "IMGCAT" in h and "BMAJ" in h:
            out.append(Image(p, h))
    return out


def pick_image(images: list[Image], **want: Any) -> Image | None:
    """The image whose header has every wanted value; a dewarped one when `DEWARPED` is asked."""
    for im in images:
        if all(_same(im.key(k), v) for k, v in want.items()):
            return im
    return None


def _same(value: Any, want: Any) -> bool:
    if isinstance(want, bool):
        return bool(value) == want
    if isinstance(want, float):
        return value is not None and abs(float(value) - want) < 1e-6
    return str(value) == str(want)


def load_plane(im: Image) -> tuple[np.ndarray, Any]:
    """The image's sky plane (float) and its celestial WCS."""
    data, header = read_image(im.path)
    return image_plane(data).astype(float), celestial_wcs(header)


def robust_rms(values: np.ndarray) -> float:
    """Robust RMS of the finite values (NaN with fewer than 10)."""
    v = values[np.isfinite(values)]
    if v.size < 10:
        return float("nan")
    return float(mad_std(v))


def _local_rms(img: np.ndarray, x: float, y: float, radius_px: float) -> float:
    """Robust RMS in a box of ±radius around (x, y), the central 2 radii/3 left out."""
    r = max(int(radius_px), 8)
    xi, yi = int(round(x)), int(round(y))
    cut = img[max(yi - r, 0): yi + r + 1, max(xi - r, 0): xi + r + 1]
    yy, xx = np.mgrid[max(yi - r, 0): max(yi - r, 0) + cut.shape[0], max(xi - r, 0): max(xi - r, 0) + cut.shape[1]]
    outer = np.hypot(xx - x, yy - y) > r / 3
    return robust_rms(cut[outer])


def _fit_source(img: np.ndarray, x: float, y: float, beam_px: float, header: fits.Header) -> dict[str, Any]:
    """Fit near (x, y): a Gaussian of the restoring beam's shape (peak, position) and a free
    elliptical Gaussian (integrated flux = its volume / the beam's). `converged` says whether the
    free fit stayed sane (finite, the peak within a beam of the guess, size within 0.5-3 beams)."""
    from astropy.modeling import fitting, models

    h = max(int(round(1.5 * beam_px)), 3)
    xi, yi = int(round(x)), int(round(y))
    ny, nx = img.shape
    if not (h <= xi < nx - h and h <= yi < ny - h):
        return {"converged": False}
    cut = img[yi - h: yi + h + 1, xi - h: xi + h + 1]
    yy, xx = np.mgrid[yi - h: yi + h + 1, xi - h: xi + h + 1]
    good = np.isfinite(cut)
    if good.sum() < 9:
        return {"converged": False}
    near = good & (np.hypot(xx - x, yy - y) <= max(0.5 * beam_px, 1.5))
    if not near.any():
        return {"converged": False}
    k = np.argmax(np.where(near, cut, -np.inf))
    xc, yc, peak_px = float(xx.flat[k]), float(yy.flat[k]), float(cut.flat[k])
    sig_maj = float(header["BMAJ"]) / abs(float(header["CDELT2"])) / 2.3548
    sig_min = float(header.get("BMIN", header["BMAJ"])) / abs(float(header["CDELT2"])) / 2.3548
    theta = math.radians(float(header.get("BPA", 0.0)) + 90.0)  # BPA east of north; x axis is RA (west)
    fitter = fitting.LevMarLSQFitter()
    fixed = models.Gaussian2D(peak_px, xc, yc, sig_maj, sig_min, theta,
                              fixed={"x_stddev": True, "y_stddev": True, "theta": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f1 = fitter(fixed + models.Const2D(0.0), xx[good], yy[good], cut[good])
        free = models.Gaussian2D(peak_px, xc, yc, sig_maj, sig_min, theta) + models.Const2D(0.0)
        f2 = fitter(free, xx[good], yy[good], cut[good])
    g1, g2 = f1[0], f2[0]
    out = {"peak_pixel": peak_px, "x": float(g1.x_mean.value), "y": float(g1.y_mean.value),
           "peak_fit": float(g1.amplitude.value)}
    sx, sy = abs(float(g2.x_stddev.value)), abs(float(g2.y_stddev.value))
    integ = float(g2.amplitude.value) * sx * sy / (sig_maj * sig_min)
    ok = (np.isfinite(integ) and math.hypot(float(g2.x_mean.value) - x, float(g2.y_mean.value) - y) <= beam_px
          and 0.5 * sig_min <= min(sx, sy) and max(sx, sy) <= 3 * sig_maj
          and math.hypot(out["x"] - x, out["y"] - y) <= beam_px)
    out.update({"integrated_fit": integ, "converged": bool(ok)})
    return out


# ---- truth ------------------------------------------------------------------------------------------

def _truth_sources(truth: dict, subband: str) -> list[dict]:
    out = []
    for s in truth["sources"]:
        fb = s.get("flux_by_subband", {}).get(subband)
        if fb is None:
            continue
        out.append({**s, "_fb": fb})
    return out


def _sep_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).deg


def _position(src: dict, dewarped: bool) -> list[float]:
    """Where a source is in an image: its true position when dewarped, else the shifted one."""
    return [src["ra_deg"], src["dec_deg"]] if dewarped else [src["apparent_ra_deg"], src["apparent_dec_deg"]]


def _pixels(steady: list[dict], wcs, dewarped: bool) -> np.ndarray:
    """Pixel (x, y) of every steady source in an image (`_position`); NaN below the horizon."""
    out = np.full((len(steady), 2), np.nan)
    up = [i for i, s in enumerate(steady) if s["el_deg_mid"] > 0]
    if up:
        out[up] = wcs.all_world2pix([_position(steady[i], dewarped) for i in up], 0)
    return out


def _sep_either(cand: dict, src: dict) -> float:
    """Degrees from a candidate to a source's true or shifted position, whichever is closer
    (the searched image may be dewarped, well or not)."""
    ra, dec = float(cand["ra"]), float(cand["dec"])
    return float(min(_sep_deg(ra, dec, src["ra_deg"], src["dec_deg"]),
                     _sep_deg(ra, dec, src["apparent_ra_deg"], src["apparent_dec_deg"])))


def _isolated(i: int, steady: list[dict], where: np.ndarray, radius_px: float) -> bool:
    """No other source of at least 20 % of source `i`'s apparent flux within `radius_px` of it on the
    image's pixel grid (`where`, from `_pixels`). Pixels, not degrees on the sky: the restoring beam
    is one shape in pixels of the SIN grid, so on the sky it stretches away from the phase centre
    (radially by 1/cos of the distance, 1.9x at 58 deg); two sources 3.3 deg apart there are 1.9
    beams apart in the image and blend."""
    flux = np.array([o["_fb"]["apparent_jy"] for o in steady])
    d = np.hypot(where[:, 0] - where[i, 0], where[:, 1] - where[i, 1])
    close = (d < radius_px) & (flux >= 0.2 * flux[i])
    close[i] = False
    return not bool(close.any())


# ---- measurements -------------------------------------------------------------------------------------

def _photometry(images: list[Image], steady: list[dict], st: ScoreSettings) -> dict[str, Any]:
    """Deep I, Robust 0, untapered, PB-corrected (dewarped when it exists): peak and fitted flux."""
    im = (pick_image(images, STOKES="I", IMGCAT="deep", ROBUST=0.0, TAPER=0.0, PBCOR=True, DEWARPED=True)
          or pick_image(images, STOKES="I", IMGCAT="deep", ROBUST=0.0, TAPER=0.0, PBCOR=True))
    if im is None:
        return {"image": None, "sources": []}
    img, wcs = load_plane(im)
    beam_px = im.bmaj_deg / im.pixel_deg
    where = _pixels(steady, wcs, bool(im.key("DEWARPED")))
    rows = []
    for i, s in enumerate(steady):
        if s.get("major_arcsec", 0) or s["el_deg_mid"] <= 0:
            continue
        x, y = where[i]  # a dewarped image has the source at its true position, else where the ionosphere put it
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= yi < img.shape[0] and 0 <= xi < img.shape[1]) or not np.isfinite(img[yi, xi]):
            continue
        truth_jy = s["_fb"]["intrinsic_jy"]
        rms = _local_rms(img, x, y, 6 * beam_px)
        fit = _fit_source(img, x, y, beam_px, im.header)
        row = {"name": s["name"], "el_deg": round(s["el_deg_mid"], 1), "truth_jy": truth_jy,
               "snr": truth_jy / rms if rms > 0 else float("nan"),
               "isolated": _isolated(i, steady, where, st.isolation_beams * beam_px),
               "converged": fit.get("converged", False)}
        if "peak_fit" in fit:
            row.update({"peak_jy": fit["peak_fit"], "peak_err": fit["peak_fit"] / truth_jy - 1})
        if fit.get("converged"):
            row.update({"integrated_jy": fit["integrated_fit"], "integrated_err": fit["integrated_fit"] / truth_jy - 1})
        row["scored"] = bool(row["isolated"] and row["snr"] >= st.min_snr_flux and "peak_err" in row)
        rows.append(row)
    return {"image": im.path.name, "bmaj_arcmin": im.bmaj_deg * 60, "sources": rows}


def _astrometry(images: list[Image], steady: list[dict], anchors_used: dict[str, tuple[float, float]],
                st: ScoreSettings, screen_applied: bool = True) -> dict[str, Any]:
    """True position vs fitted position in the deep I Taper Robust 0 image, before and after
    dewarp, and the held-out errors after (`_heldout`; `screen_applied`: the fit's status is ok)."""
    out: dict[str, Any] = {}
    for label, dewarped in (("before", False), ("after", True)):
        im = pick_image(images, STOKES="I", IMGCAT="deep", ROBUST=0.0, PBCOR=False, CONFIG="I-Deep-Taper-Robust-0",
                        DEWARPED=dewarped)
        if im is None:
            continue
        img, wcs = load_plane(im)
        beam_px = im.bmaj_deg / im.pixel_deg
        where = _pixels(steady, wcs, dewarped)
        rows = []
        for i, s in enumerate(steady):
            if s["el_deg_mid"] <= 0:
                continue
            x, y = where[i]  # the apparent (shifted) position before dewarping, the true one after
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            rms = _local_rms(img, x, y, 6 * beam_px) if 0 <= x < img.shape[1] and 0 <= y < img.shape[0] else np.nan
            snr = s["_fb"]["apparent_jy"] / rms if rms > 0 else float("nan")
            if not (snr >= st.min_snr_astrometry and _isolated(i, steady, where, st.isolation_beams * beam_px)):
                continue
            fit = _fit_source(img, x, y, beam_px, im.header)
            if "x" not in fit:
                continue
            err = _fit_error_beams(fit, (x, y), wcs, s, im)
            true_off = float(_sep_deg(s["apparent_ra_deg"], s["apparent_dec_deg"], s["ra_deg"], s["dec_deg"]))
            rows.append({"name": s["name"], "error_beams": err, "true_offset_beams": true_off / im.bmaj_deg,
                         "anchor": s["name"] in anchors_used, "snr": snr})
        out[label] = {"image": im.path.name, "bmaj_arcmin": im.bmaj_deg * 60, "sources": rows,
                      "median_error_beams": float(np.median([r["error_beams"] for r in rows])) if rows else None}
        if dewarped:
            out["heldout"] = _heldout(out[label], steady, anchors_used, screen_applied, im.bmaj_deg)
    return out


def _fit_error_beams(fit: dict, guess: tuple[float, float], wcs, src: dict, im: Image) -> float:
    """Beams from a source's true position to where the beam fit put it; inf (a miss, JSON null) when
    the fit left its 1.5-beam box around the guess or the sky: the source is not where it should be
    (real_density_iono: a source the screen left 4.5 beams off, whose fit ran off the horizon and
    gave NaN, which every comparison passed over and which made the median NaN)."""
    if math.hypot(fit["x"] - guess[0], fit["y"] - guess[1]) > 1.5 * im.bmaj_deg / im.pixel_deg:
        return math.inf
    ra_f, dec_f = wcs.all_pix2world([[fit["x"], fit["y"]]], 0)[0]
    if not (math.isfinite(ra_f) and math.isfinite(dec_f)):
        return math.inf
    return float(_sep_deg(ra_f, dec_f, src["ra_deg"], src["dec_deg"])) / im.bmaj_deg


def _errors(rows: list[dict]) -> np.ndarray:
    """The rows' `error_beams` as an array, a lost source (None in JSON) as inf."""
    return np.array([math.inf if r["error_beams"] is None else r["error_beams"] for r in rows], dtype=float)


def _anchors_used(folder: Path) -> tuple[dict[str, tuple[float, float]], dict | None]:
    """The catalogue sources the dewarp fit used, each with where the screen fitted without it
    puts it in the image (`heldout_ra_deg`, `heldout_dec_deg` of anchors.csv: RA, Dec degrees;
    NaN when not recorded), and the fit's summary.json."""
    qa = folder / "dewarp" / "screen_qa"
    used: dict[str, tuple[float, float]] = {}
    summary = None
    if (qa / "summary.json").exists():
        summary = json.loads((qa / "summary.json").read_text())
    if (qa / "anchors.csv").exists():
        with open(qa / "anchors.csv") as f:
            for row in csv.DictReader(f):
                name = row.get("name") or row.get("cat_name") or row.get("catalog_name")
                if name and str(row.get("used", "")).lower() in ("true", "1", "yes"):
                    used[name] = (_float(row.get("heldout_ra_deg")) or math.nan,
                                  _float(row.get("heldout_dec_deg")) or math.nan)
    return used, summary


def _heldout(after: dict, steady: list[dict], anchors: dict[str, tuple[float, float]], screen_applied: bool,
             bmaj_deg: float) -> list[dict]:
    """Every scored source in the dewarped image with the error a user gets where the screen was
    not told the answer, in beams: a source outside the fit by its fitted position in the dewarped
    image; an anchor by the screen fitted without it (lwa-dewarp's held-out refit): the distance
    between where that screen puts the source and where the ionosphere truly put it (the source
    shows up in the dewarped image displaced by that much). No held-out prediction, or an identity
    screen: the anchor stays at its true offset."""
    by_name = {s["name"]: s for s in steady}
    rows = []
    for r in after.get("sources", []):
        if r["name"] not in anchors:
            rows.append({**r, "heldout_by": "image"})
            continue
        s, (ra, dec) = by_name[r["name"]], anchors[r["name"]]
        if screen_applied and math.isfinite(ra) and math.isfinite(dec):
            err = float(_sep_deg(ra, dec, s["apparent_ra_deg"], s["apparent_dec_deg"])) / bmaj_deg
        else:
            err = r["true_offset_beams"]
        rows.append({**r, "error_beams": err, "heldout_by": "refit"})
    return rows


def _candidates(folder: Path) -> list[dict]:
    path = folder / "transients" / "candidates.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _searched(images: list[Image]) -> dict[tuple, Image]:
    """The 10-min images the search reads, one per (Stokes, interval); dewarped preferred, as lwa-transient does."""
    ten = [im for im in images if im.key("IMGCAT") == "10min" and not im.key("PBCOR")
           and float(im.key("TAPER", 0) or 0) > 0 and _same(im.key("ROBUST"), 0.0)]
    searched: dict[tuple, Image] = {}
    for im in ten:
        k = (im.key("STOKES"), im.key("INTERVAL"))
        if k not in searched or im.key("DEWARPED"):
            searched[k] = im
    return searched


def _event(s: dict, interval: str, duty: float, im: Image | None, *, subband: str, bright: list[dict],
           cands: list[dict], used: set[int], st: ScoreSettings) -> dict[str, Any]:
    """One injected event (a transient in one image): its expected S/N there, and the candidate that
    finds it (nearest of the same Stokes, interval and sign within `match_beams`; marked in `used`)."""
    tr = s["transient"]
    ev = {"name": s["name"], "stokes": tr["stokes"], "interval": interval,
          "apparent_jy": s["flux_by_subband"][subband]["apparent_jy"], "duty": duty, "found": False,
          "found_any_class": False}
    if bright:
        ev["bright_sep_beams"] = None
    if im is None:
        ev["expected_snr"] = None
        return ev
    img, wcs = load_plane(im)
    beam_px = im.bmaj_deg / im.pixel_deg
    x, y = wcs.all_world2pix([_position(s, im.key("DEWARPED"))], 0)[0]
    rms = _local_rms(img, x, y, 6 * beam_px) if np.isfinite(x) else float("nan")
    ev["expected_snr"] = abs(ev["apparent_jy"]) * duty / rms if rms > 0 else None
    if bright:
        seps = [float(_sep_deg(s["ra_deg"], s["dec_deg"], b["ra_deg"], b["dec_deg"])) for b in bright]
        ev["bright_sep_beams"] = min(seps) / im.bmaj_deg
    best = None
    for i, c in enumerate(cands):
        if c["stokes"] != tr["stokes"] or c["interval"] != interval or float(c["sign"]) * ev["apparent_jy"] <= 0:
            continue
        sep = _sep_either(c, s)
        if sep <= st.match_beams * im.bmaj_deg and (best is None or sep < best[1]):
            best = (i, sep)
    if best is not None:
        c = cands[best[0]]
        used.add(best[0])
        ev.update({"found_any_class": True, "found": c["class"] != "artefact", "class": c["class"],
                   "snr": float(c["snr"]), "sep_beams": best[1] / im.bmaj_deg})
    return ev


def _real_unmatched(cands: list[dict], used: set[int], steady: list[dict], truth: dict, subband: str,
                    beam: float, st: ScoreSettings) -> tuple[set[int], set[int]]:
    """Candidates not matched to an event that are still real: a steady circularly polarised source
    in a 10-min V image, and a transient seen in the deep image (its fluence spread over the hour)."""
    pol = [s for s in steady if s.get("v_frac")]
    steady_v = {i for i, c in enumerate(cands) if i not in used and c["stokes"] == "V" and any(
        float(c["sign"]) * s["v_frac"] > 0 and _sep_either(c, s) <= st.match_beams * beam for s in pol)}
    bursts = [s for s in truth["sources"] if s.get("transient") and subband in s.get("flux_by_subband", {})]
    deep_t = {i for i, c in enumerate(cands) if i not in used and c["interval"] == "deep" and any(
        c["stokes"] == s["transient"]["stokes"] and float(c["sign"]) * s["flux_by_subband"][subband]["apparent_jy"] > 0
        and _sep_either(c, s) <= st.match_beams * beam for s in bursts)}
    return steady_v, deep_t


def _transients(images: list[Image], truth: dict, subband: str, cands: list[dict], steady: list[dict],
                st: ScoreSettings) -> dict[str, Any]:
    """Per injected event (transient x interval): found or missed, its S/N; false candidates."""
    searched = _searched(images)
    bright = [s for s in steady if s["_fb"]["intrinsic_jy"] >= st.bright_jy]
    n_img = (max([int(im.key("NINTERVL", 0) or 0) for im in searched.values()] + [0])
             or len(truth["observation"]["intervals"]))
    events, used = [], set()
    for s in truth["sources"]:
        tr = s.get("transient")
        if not tr or subband not in s.get("flux_by_subband", {}):
            continue
        for idx, duty in _image_intervals(truth, tr["intervals"], n_img).items():
            interval = f"t{idx + 1:04d}"
            events.append(_event(s, interval, duty, searched.get((tr["stokes"], interval)), subband=subband,
                                 bright=bright, cands=cands, used=used, st=st))
    beam = max((im.bmaj_deg for im in searched.values()), default=1.0)
    steady_v, deep_t = _real_unmatched(cands, used, steady, truth, subband, beam, st)
    false = [c for i, c in enumerate(cands) if i not in used and i not in steady_v and i not in deep_t]
    by: dict[str, int] = {}
    for c in false:
        key = f"{c['stokes']}/{'artefact' if c['class'] == 'artefact' else 'not_artefact'}"
        by[key] = by.get(key, 0) + 1
    n_images = len(searched)
    not_art = sum(1 for c in false if c["class"] != "artefact")
    return {"events": events, "n_images_searched": n_images, "steady_v_detections": len(steady_v),
            "transients_in_deep": len(deep_t),
            "n_images_by_stokes": {p: sum(1 for k in searched if k[0] == p) for p in ("I", "V")},
            "false_by_stokes_class": by, "false_not_artefact": not_art,
            "false_not_artefact_per_10_images": 10 * not_art / n_images if n_images else None,
            "false_candidates": [{k: c[k] for k in ("stokes", "interval", "ra", "dec", "snr", "class")}
                                 for c in false][:200]}


def _image_intervals(truth: dict, intervals: list[int], n_img: int) -> dict[int, float]:
    """A transient's spec intervals -> {10-min image interval (0-based): the fraction of that image's
    integrations the event is on} (1.0 when the spec's intervals are the images' own)."""
    obs = truth["observation"]
    n_int = int(obs["n_integrations"])
    span = {iv["index"]: iv["integrations"] for iv in obs["intervals"]}
    image_of = [min(k * n_img // n_int, n_img - 1) for k in range(n_int)]
    on = {k for i in intervals if i in span for k in range(span[i][0], span[i][1] + 1)}
    return {j: sum(image_of[k] == j for k in on) / image_of.count(j) for j in sorted({image_of[k] for k in on})}


@dataclass
class _FlagData:
    """The FLAG column of the concatenated MS with what the scorer needs to judge it."""

    flags: np.ndarray  # (row, chan, pol), FLAG_ROW folded in
    a1: np.ndarray
    a2: np.ndarray
    k: np.ndarray  # integration index of each row
    t0: float  # start, MJD seconds
    dt: float  # integration, s

    @property
    def cross(self) -> np.ndarray:
        return self.a1 != self.a2


def _read_flags(ms: Path, truth: dict) -> _FlagData:
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        flags = t.getcol("FLAG") | t.getcol("FLAG_ROW")[:, None, None]
        a1, a2, times = t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("TIME")
    obs = truth["observation"]
    t0 = Time(obs["start"], scale="utc").mjd * 86400.0
    dt = float(obs["integration_s"])
    k = np.clip(np.floor((times - t0) / dt).astype(int), 0, obs["n_integrations"] - 1)
    return _FlagData(flags, a1, a2, k, t0, dt)


def _fault_selections(fd: _FlagData, truth: dict) -> dict[str, np.ndarray]:
    """Row/channel/pol mask of every injected fault (RFI bursts and emitters, hot baselines, dead antennas)."""
    shape, nchan = fd.flags.shape, fd.flags.shape[1]
    chans, everything = np.arange(nchan), np.ones(fd.flags.shape, bool)
    out: dict[str, np.ndarray] = {}
    for kind in ("bursts", "emitters"):
        for i, b in enumerate(truth["rfi"][kind]):
            ch = np.isin(chans, b["channels"]) if b["channels"] is not None else np.ones(nchan, bool)
            it = np.isin(fd.k, b["integrations"]) if b["integrations"] is not None else np.ones(len(fd.k), bool)
            out[f"rfi_{kind[:-1]}_{i}"] = it[:, None, None] & ch[None, :, None] & everything
    for h in truth["hot_baselines"]:
        sel = ((fd.a1 == h["ant1"]) & (fd.a2 == h["ant2"])) | ((fd.a1 == h["ant2"]) & (fd.a2 == h["ant1"]))
        amp = h.get("amplitude_jy", truth.get("hot_amplitude_jy"))
        out[f"hot_{h['ant1']}-{h['ant2']}_{amp:g}Jy"] = np.broadcast_to(sel[:, None, None], shape)
    for d in truth["dead_antennas"]:
        sel = (fd.a1 == d["index"]) | (fd.a2 == d["index"])
        out[f"dead_{d['index']}"] = np.broadcast_to(sel[:, None, None], shape)
    return out


def _transient_integrations(truth: dict) -> set[int]:
    out: set[int] = set()
    for s in truth["sources"]:
        if s.get("transient"):
            for iv in truth["observation"]["intervals"]:
                if iv["index"] in s["transient"]["intervals"]:
                    out.update(range(iv["integrations"][0], iv["integrations"][1] + 1))
    return out


def _qa_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _by_flagger(fd: _FlagData, flagged_clean: np.ndarray, n_clean: int, qa: Path) -> dict[str, float]:
    """Flagged clean data attributed to the flaggers: the hot-baseline list, the bad integrations,
    the rest AOFlagger (run first in the chain)."""
    per: dict[str, float] = {}
    explained = np.zeros(fd.flags.shape, bool)
    hot_csv, bad_csv = FLAGGED_BASELINES.path(qa), BAD_INTEGRATIONS.path(qa)
    if hot_csv.exists():
        sel = np.zeros(len(fd.a1), bool)
        for row in _qa_rows(hot_csv):
            i, j = int(row["ant1"]), row.get("ant2")
            if j in (None, ""):
                sel |= (fd.a1 == i) | (fd.a2 == i)
            else:
                sel |= ((fd.a1 == i) & (fd.a2 == int(j))) | ((fd.a1 == int(j)) & (fd.a2 == i))
        m = flagged_clean & sel[:, None, None]
        per["hot-baselines"] = float(m.sum() / n_clean) if n_clean else 0.0
        explained |= m
    if bad_csv.exists():
        bad_k: set[int] = set()
        for row in _qa_rows(bad_csv):
            mjd = row.get("mjd") or row.get("time_mjd") or row.get("mjd_mid")
            if str(row.get("bad", "1")).lower() in ("1", "true") and mjd not in (None, ""):
                bad_k.add(int(np.floor((float(mjd) * 86400.0 - fd.t0) / fd.dt)))
        m = flagged_clean & np.isin(fd.k, sorted(bad_k))[:, None, None] & ~explained
        per["integrations"] = float(m.sum() / n_clean) if n_clean else 0.0
        explained |= m
    per["rfi (AOFlagger, the rest)"] = float((flagged_clean & ~explained).sum() / n_clean) if n_clean else 0.0
    return per


def _flags(folder: Path, truth: dict) -> dict[str, Any]:
    """Recall of every injected fault and the flagged fraction of clean visibilities, from the
    FLAG column of the concatenated MS, attributed to the flaggers by their QA lists."""
    ms = sorted(p for p in folder.glob("*.ms") if p.is_dir())
    if not ms:
        return {"ms": None}
    fd = _read_flags(ms[0], truth)
    cross = fd.cross[:, None, None]
    fault = np.zeros(fd.flags.shape, bool)
    faults: dict[str, dict] = {}
    selections = _fault_selections(fd, truth)
    # Broadband emitters the run peeled (lwa-peel rfi with the site's list) are removed, not flagged:
    # their visibilities count as data, and the images judge the peel.
    peeled = sorted(n for n in selections if n.startswith("rfi_emitter_")
                    and truth["rfi"]["emitters"][int(n.rsplit("_", 1)[1])]["channels"] is None) \
        if any(folder.rglob("*.peel-rfi.h5")) else []
    for name in peeled:
        del selections[name]
    for name, sel in selections.items():
        sel = sel & cross
        if sel.any():
            faults[name] = {"cells": int(sel.sum()), "recall": float(fd.flags[sel].mean())}
            fault |= sel
    clean = ~fault & cross
    n_clean = int(clean.sum())
    flagged_clean = fd.flags & clean
    out: dict[str, Any] = {"ms": ms[0].name, "faults": faults, "peeled_emitters": peeled,
                           "false_flag_fraction": float(flagged_clean.sum() / n_clean) if n_clean else None}
    rfi = [v for n, v in faults.items() if n.startswith("rfi")]
    if rfi:  # RFI: of all its visibilities; hot baselines: each counts once
        out["rfi_recall"] = sum(v["recall"] * v["cells"] for v in rfi) / sum(v["cells"] for v in rfi)
    hot = [v["recall"] for n, v in faults.items() if n.startswith("hot")]
    if hot:
        out["hot_recall"] = float(np.mean(hot))
    per_chan = flagged_clean.sum(axis=(0, 2)) / np.maximum(clean.sum(axis=(0, 2)), 1)
    out["false_flag_by_channel"] = [round(float(v), 4) for v in per_chan]
    burst_int = _transient_integrations(truth)
    if burst_int:
        sel = clean & np.isin(fd.k, sorted(burst_int))[:, None, None]
        out["false_flag_in_transient_integrations"] = float(fd.flags[sel].mean()) if sel.any() else None
    out["false_flag_by_flagger"] = _by_flagger(fd, flagged_clean, n_clean, folder / "qa")
    return out


def _targets(folder: Path, steady: list[dict], subband: str, beam_deg: float) -> list[dict]:
    """Target photometry (lwa-cutout targets, its deep row) against the truth of the matching source:
    Stokes I and V, the peak and the fitted flux (when reported)."""
    rows = []
    for path in sorted((folder / "photometry").glob("*/*_photometry.csv")):
        with open(path) as f:
            meas = [m for m in csv.DictReader(f) if m.get("interval") == "deep"]
        for m in meas:
            ra, dec = _float(m.get("pos_ra_deg")), _float(m.get("pos_dec_deg"))
            if ra is None or dec is None or not steady:
                continue
            src = min(steady, key=lambda s: float(_sep_deg(ra, dec, s["ra_deg"], s["dec_deg"])))
            if float(_sep_deg(ra, dec, src["ra_deg"], src["dec_deg"])) > beam_deg:
                continue
            for stokes in ("I", "V"):
                truth_jy = src["_fb"]["intrinsic_jy"] * (src.get("v_frac", 0.0) if stokes == "V" else 1.0)
                peak, fitted = _float(m.get(f"{stokes}_peak_jy")), _float(m.get(f"{stokes}_fit_flux_jy"))
                if truth_jy == 0 or peak is None:
                    continue
                rows.append({"target": path.parent.name, "source": src["name"], "stokes": stokes,
                             "truth_jy": truth_jy, "peak_jy": peak, "peak_err": peak / truth_jy - 1,
                             "fitted_jy": fitted, "fitted_err": None if fitted is None else fitted / truth_jy - 1,
                             "pbcor": m.get("pbcor")})
    return rows


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ---- the whole run ------------------------------------------------------------------------------------

def _subband_folders(run: Path) -> list[Path]:
    if (run / "images").is_dir():
        return [run]
    return sorted(p.parent for p in run.rglob("images") if p.is_dir() and "Wideband" not in p.parts)


def score_run(run: str | Path, truth_path: str | Path, *, settings: ScoreSettings | None = None,
              control: str | Path | None = None, control_run: str | Path | None = None) -> dict[str, Any]:
    """Score every `<hour>/<subband>` folder under `run` against `truth_path` (truth.json).

    `control`: the simulation of the same spec without the A-team (same settings and seed); with it
    the peel of the A-team is scored too (`lwa_sim.peelscore`); `control_run`: a run_hour.sh work
    folder of that control, for the image RMS near the A-team."""
    st = settings or ScoreSettings()
    run, truth_path = Path(run), Path(truth_path)
    try:
        truth = json.loads(truth_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LwaError(f"cannot read truth {truth_path}: {err}") from None
    if "sources" not in truth or "observation" not in truth:
        raise LwaError(f"{truth_path} is not an lwa-sim truth.json (no sources/observation)")
    folders = _subband_folders(run)
    if not folders:
        raise LwaError(f"no images/ folder under {run}: not a run_hour.sh work folder")
    out = {"run": str(run), "truth": str(truth_path), "settings": st.__dict__, "subbands": []}
    for folder in folders:
        images = _images(folder / "images")
        if not images:
            continue
        subband = str(images[0].key("SUBBAND"))
        sources = _truth_sources(truth, subband)
        steady = [s for s in sources if not s.get("transient")]
        anchors_used, dewarp_summary = _anchors_used(folder)
        deep_beam = next((im.bmaj_deg for im in images if im.key("CONFIG") == "I-Deep-Taper-Robust-0"),
                         images[0].bmaj_deg)
        res = {
            "folder": str(folder.relative_to(run)) if folder != run else ".",
            "subband": subband,
            "psf": {im.key("CONFIG"): {"bmaj_arcmin": round(im.bmaj_deg * 60, 2),
                                       "pixels_per_bmaj": round(im.bmaj_deg / im.pixel_deg, 2)}
                    for im in images if not im.key("PBCOR") and not im.key("DEWARPED")},
            "photometry": _photometry(images, steady, st),
            "astrometry": _astrometry(images, steady, anchors_used, st,
                                      screen_applied=(dewarp_summary or {}).get("status") == "ok"),
            "dewarp": {"engaged": any(im.key("DEWARPED") for im in images),
                       "screen": (folder / "dewarp" / "screen.fits").exists(),
                       "summary": {k: dewarp_summary.get(k) for k in (
                           "status", "n_anchors", "n_matched", "median_offset_before_arcmin",
                           "median_offset_after_cv_arcmin")} if dewarp_summary else None},
            "transients": _transients(images, truth, subband, _candidates(folder), steady, st),
            "flagging": _flags(folder, truth),
            "targets": _targets(folder, steady, subband, deep_beam),
            "ateam": score_peel(folder, truth, truth_path.parent, Path(control), subband,
                                _control_images(run, folder, control_run, images)) if control else None,
        }
        res["goals"] = _goals(res, steady, st)
        out["subbands"].append(res)
    if not out["subbands"]:
        raise LwaError(f"no images with lwa-pipe headers under {run}")
    out["goals"] = _merge_goals([s["goals"] for s in out["subbands"]])
    return _native(out)


def _control_images(run: Path, folder: Path, control_run: str | Path | None, images: list[Image]
                    ) -> tuple[list[Image], list[Image]]:
    """This folder's images and those of the same folder in the control run (empty without one)."""
    if control_run is None:
        return images, []
    other = _images(Path(control_run) / folder.relative_to(run) / "images")
    if not other:
        raise LwaError(f"control run {control_run} has no images in {folder.relative_to(run)}/images")
    return images, other


def _native(value: Any) -> Any:
    """Plain JSON types (numpy scalars to Python; NaN/inf to None)."""
    if isinstance(value, dict):
        return {str(k): _native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def goal_verdict(ok: bool | None, detail: str) -> dict[str, Any]:
    """A goal's entry in the score: pass / fail, or n/a when it could not be judged (None)."""
    return {"status": "n/a" if ok is None else ("pass" if ok else "fail"), "detail": detail}


def _goals(res: dict, steady: list[dict], st: ScoreSettings) -> dict[str, dict]:
    g: dict[str, dict] = {}
    ev = [e for e in res["transients"]["events"] if (e.get("expected_snr") or 0) >= st.transient_sigma]
    if ev:
        frac = sum(e["found"] for e in ev) / len(ev)
        g["transient_recall"] = goal_verdict(frac >= 0.95, f"{sum(e['found'] for e in ev)}/{len(ev)} found")
    else:
        g["transient_recall"] = goal_verdict(None, "no injected event ≥ 8σ")
    per10 = res["transients"]["false_not_artefact_per_10_images"]
    g["transient_false"] = goal_verdict(None if per10 is None else per10 <= 1.0,
                                        f"{res['transients']['false_not_artefact']} in "
                                        f"{res['transients']['n_images_searched']} images ({per10 if per10 is None else round(per10, 2)} per 10)")
    fl = res["flagging"]
    if fl.get("ms") is None:
        g["flag_recall"] = goal_verdict(None, "no concatenated MS")
        g["flag_false"] = goal_verdict(None, "no concatenated MS")
    else:
        rec = {k: fl[f"{k}_recall"] for k in ("rfi", "hot") if f"{k}_recall" in fl}
        g["flag_recall"] = goal_verdict(min(rec.values()) >= 0.95 if rec else None,
                                        ", ".join(f"{k} {100 * v:.1f} % flagged" for k, v in rec.items())
                                        or "no RFI or hot baseline injected")
        f = fl["false_flag_fraction"]
        g["flag_false"] = goal_verdict(None if f is None else f < 0.02,
                                       "no clean data (every visibility holds an injected fault)" if f is None
                                       else f"{100 * f:.2f} % of clean data flagged")
    ast = res["astrometry"]
    before = ast.get("before", {})
    n_anchor_able = len(before.get("sources", []))
    offs = {r["name"]: r["true_offset_beams"] for r in before.get("sources", [])}
    med_off = float(np.median(list(offs.values()))) if offs else 0.0
    eng = res["dewarp"]["engaged"]
    what = f"{'engaged' if eng else 'not engaged'}; {n_anchor_able} isolated sources ≥ " \
           f"{st.min_snr_astrometry:g}σ, median offset {med_off:.2f} beam"
    g["dewarp_engaged"] = goal_verdict(eng if n_anchor_able >= 6 and med_off >= 0.5 else None, what)
    after = ast.get("after")
    far = [n for n, o in offs.items() if o >= 1.0]
    if len(far) < 3:
        g["dewarp_residual"] = goal_verdict(None, f"{len(far)} sources offset ≥ 1 beam")
    elif not after:
        g["dewarp_residual"] = goal_verdict(False, f"not dewarped; {len(far)} sources offset ≥ 1 beam")
    else:
        held = [r for r in ast.get("heldout", []) if r["name"] in far]
        frac = float(np.mean([r["error_beams"] <= 0.2 for r in held])) if held else None
        n_refit = sum(r["heldout_by"] == "refit" for r in held)
        g["dewarp_residual"] = goal_verdict(None if frac is None else frac >= 0.95,
                                            f"{0 if frac is None else 100 * frac:.0f} % of {len(held)} held-out sources "
                                            f"offset ≥ 1 beam are ≤ 0.2 beam after ({n_refit} anchors by the screen "
                                            f"fitted without them, {len(held) - n_refit} outside the fit)")
    if after and before.get("median_error_beams") is not None and after.get("median_error_beams") is not None:
        b, a = before["median_error_beams"], after["median_error_beams"]
        g["dewarp_no_harm"] = goal_verdict(a <= max(1.1 * b, b + 0.02), f"median {b:.3f} → {a:.3f} beam")
    else:
        g["dewarp_no_harm"] = goal_verdict(None if not eng else False, "not dewarped" if not eng else "no astrometry")
    scored = [r for r in res["photometry"]["sources"] if r["scored"]]
    if scored:
        # A point source's flux is the amplitude of the restoring beam fitted to it (the matched filter,
        # `peak_err`); the free Gaussian's volume carries two more parameters and ~2x the noise (Condon
        # 1997): 4-6 % at 20-50 sigma, the goal's own size. A source whose free fit did not converge
        # (confused, extended, a residual on top) fails whatever its peak.
        errs = np.abs([r["peak_err"] if r.get("converged") else np.inf for r in scored])
        within = float(np.mean(errs <= 0.05))
        med = float(np.median(errs))
        free = np.abs([r["integrated_err"] for r in scored if r.get("converged")])
        free_txt = f"; free fit: {100 * np.mean(free <= 0.05):.0f} % within 5 %, median {100 * np.median(free):.1f} %" \
            if len(free) else ""
        g["flux"] = goal_verdict(within >= 0.95 and med <= 0.02,
                                 f"{100 * within:.0f} % of {len(scored)} within 5 %, median error {100 * med:.1f} % "
                                 f"(point-source fit, absolute{free_txt})")
    else:
        g["flux"] = goal_verdict(None, "no isolated source ≥ 20σ")
    tv = [t for t in res["targets"] if t["stokes"] == "V"]
    g["target_v"] = goal_verdict(
        all(abs(t["peak_err"]) <= 0.05 and (t["fitted_err"] is None or abs(t["fitted_err"]) <= 0.05) for t in tv)
        if tv else None,
        ", ".join(f"{t['target']} peak {_pct(t['peak_err'])}, fitted {_pct(t['fitted_err'])}" for t in tv)
        or "no V target")
    ppb = [v["pixels_per_bmaj"] for v in res["psf"].values()]
    g["psf_sampling"] = goal_verdict(min(ppb) >= 3 if ppb else None, f"min {min(ppb) if ppb else float('nan'):.1f} px/BMAJ")
    g.update(peel_goals(res.get("ateam")))
    return g


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f} %"


def _merge_goals(per_subband: list[dict]) -> dict[str, dict]:
    out = {}
    for key in GOALS:
        vals = [g[key] for g in per_subband if key in g]
        st = [v["status"] for v in vals]
        status = "fail" if "fail" in st else ("pass" if "pass" in st else "n/a")
        out[key] = {"status": status, "detail": "; ".join(v["detail"] for v in vals), "goal": GOALS[key]}
    return out


def format_table(result: dict) -> str:
    """A short human-readable table of a score."""
    lines = []
    for sb in result["subbands"]:
        lines.append(f"== {sb['folder']} ({sb['subband']})")
        ph = [r for r in sb["photometry"]["sources"] if r["scored"]]
        if ph:
            pk = np.abs([r["peak_err"] for r in ph])
            it = np.abs([r.get("integrated_err", np.inf) for r in ph])
            lines.append(f"flux ({sb['photometry']['image']}): {len(ph)} sources; |peak err| median "
                         f"{100 * np.median(pk):.1f} %, max {100 * pk.max():.1f} %; |fitted err| median "
                         f"{100 * np.median(it):.1f} %, ≤5 %: {int((it <= 0.05).sum())}/{len(ph)}")
        for label in ("before", "after"):
            a = sb["astrometry"].get(label)
            if a and a["sources"]:
                errs = _errors(a["sources"])
                lines.append(f"astrometry {label} dewarp: {len(errs)} sources, median {np.median(errs):.3f} "
                             f"beam, ≤0.2 beam {100 * np.mean(errs <= 0.2):.0f} % (BMAJ {a['bmaj_arcmin']:.1f}′)")
        held = sb["astrometry"].get("heldout")
        if held:
            errs = _errors(held)
            lines.append(f"astrometry held out after dewarp: {len(errs)} sources "
                         f"({sum(r['heldout_by'] == 'refit' for r in held)} anchors refitted without them), median "
                         f"{np.median(errs):.3f} beam, ≤0.2 beam {100 * np.mean(errs <= 0.2):.0f} %")
        tr = sb["transients"]
        for e in tr["events"]:
            snr = e.get("snr")
            exp = e.get("expected_snr")
            lines.append(f"transient {e['name']} {e['stokes']} {e['interval']}: "
                         f"{'found' if e['found'] else ('artefact' if e['found_any_class'] else 'MISSED')}"
                         f" (expected {'—' if exp is None else f'{exp:.1f}σ'}, measured "
                         f"{'—' if snr is None else f'{snr:.1f}σ'}"
                         + (f", {e['bright_sep_beams']:.1f} beam from a bright source" if e.get("bright_sep_beams") else "")
                         + ")")
        lines.append(f"false candidates: {tr['false_by_stokes_class']} in {tr['n_images_by_stokes']} images")
        fl = sb["flagging"]
        if fl.get("ms"):
            faults = ", ".join(f"{k} {100 * v['recall']:.0f} %" for k, v in fl["faults"].items())
            lines.append(f"flag recall: {faults or 'no fault injected'}"
                         + (f"; peeled, not flagged: {', '.join(fl['peeled_emitters'])}" if fl.get("peeled_emitters") else ""))
            per = ", ".join(f"{k} {100 * v:.2f} %" for k, v in fl["false_flag_by_flagger"].items())
            burst = fl.get("false_flag_in_transient_integrations")
            frac = fl["false_flag_fraction"]
            lines.append("clean data flagged: " + ("— (no clean data)" if frac is None else f"{100 * frac:.2f} % ({per})")
                         + ("" if burst is None else f"; in the transients' integrations {100 * burst:.2f} %"))
        psf = ", ".join(f"{k} {v['bmaj_arcmin']:.0f}′/{v['pixels_per_bmaj']:.1f}px" for k, v in sb["psf"].items())
        lines.append(f"BMAJ: {psf}")
        lines.append(f"dewarp engaged: {sb['dewarp']['engaged']}")
        at = sb.get("ateam") or {}
        if at.get("status") == "scored":
            worst = max(at["field"], key=lambda f: abs(f["change"]), default=None)
            lines.append(f"A-team ({'peeled' if at['peeled'] else 'not peeled'}, {at['n_ms']} MS): power left "
                         f"{at['power_left']:.2e}; field within 12°: {len(at['field'])} sources, median |change| "
                         f"{100 * (at['field_median_abs_change'] or 0):.2f} %"
                         + (f", worst {worst['name']} {100 * worst['change']:+.2f} %" if worst else "")
                         + (f"; RMS 3-10° {at['rms_ratio']:.2f}× the sky without it" if at["rms_ratio"] else ""))
            dd = at.get("ddecal") or {}
            if dd.get("n_logs"):
                lines.append(f"DDECal: {dd['n_logs']} solves, iterations {dd['iterations_min']}-{dd['iterations_max']} "
                             f"(median {dd['iterations_median']:g}), {dd['not_converged']} not converged")
    lines.append("goals:")
    for k, v in result["goals"].items():
        lines.append(f"  {v['status']:>4}  {k}: {v['detail']}")
    return "\n".join(lines)
