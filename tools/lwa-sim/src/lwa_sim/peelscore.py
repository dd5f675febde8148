"""How well the A-team was peeled (issue 22): the run's working MS against a control simulation.

The control is the same spec simulated without its A-team (`lwa-sim observe --without-ateam`,
same settings and seed, so the same noise). Per working MS of a run (`<subband folder>/ms/NAME`)
and the simulation's MS of the same name:

- A-team power left: Σ|peeled - control|² / Σ|simulated - control|² over the cross-correlations
  (XX, YY). The denominator is the noiseless A-team alone (the simulation is linear); the numerator
  is everything the peel got wrong, the field it removed included. An unpeeled MS scores ~1.
- Field-source change: for each steady source within `field_radius_deg` of an A-team source, the
  visibilities (peeled - control) phased to its apparent position and averaged (a dirty-image
  pixel of what peeling changed there), over its apparent flux (truth, beam at mid-time).
- RMS 3-10 deg from the A-team. `excess`: the RMS of dirty pixels of (peeled - control) (the same
  averages) at points spread over the 3-10 deg annuli: what peeling left there. The image RMS is
  the robust RMS (MAD) of the deep Stokes I image (Robust 0, untapered, not PB-corrected) in the
  annuli, every steady source masked within 2 beams. `rms_ratio`: the run's image RMS over the
  control run's (`--control-run`), else over the control's estimated from the run's own image,
  sqrt(run² - excess²) (the excess adds in quadrature; infinite when the excess exceeds the run's
  RMS). `rms_ratio_dirty` compares dirty pixels of peeled and control data themselves (dominated
  by the field's sidelobes at demo size, so it is reported, not scored).
- DDECal's convergence: the iterations of every `logs/peel-sky-*.log` of the run (lwa-peel's
  "DDECal converged in [N] iterations" / "did not converge" lines).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from lwa_common import LwaError
from lwa_common.ms import open_table
from lwa_common.sky import direction_cosines

__all__ = ["score_peel", "PEEL_GOALS"]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
PEEL_GOALS = {
    "ateam_power": "A-team visibility power left ≤ 1e-5 (against the noiseless A-team alone)",
    "ateam_field": "no field source within 12° of the A-team changed by more than 2 % of its flux by peeling",
    "ateam_rms": "RMS 3-10° from the A-team within 1.5× of the same sky without the A-team",
}
POWER_MAX = 1e-5
FIELD_MAX = 0.02
RMS_MAX = 1.5
FIELD_RADIUS_DEG = 12.0
RING_DEG = (3.0, 10.0)
RING_POINTS = 120


def _ateam_centres(truth: dict) -> dict[str, tuple[float, float]]:
    """Apparent flux-weighted centre of each A-team source (components named 'Cyg A:...')."""
    groups: dict[str, list[dict]] = {}
    for s in truth["sources"]:
        if s.get("kind") == "ateam" and s.get("el_deg_mid", -1) > 0:
            groups.setdefault(s["name"].split(":")[0], []).append(s)
    out = {}
    for name, comps in groups.items():
        w = np.array([abs(c["flux_jy"]) for c in comps])
        xyz = SkyCoord([c["apparent_ra_deg"] for c in comps] * u.deg,
                       [c["apparent_dec_deg"] for c in comps] * u.deg).cartesian.xyz.value @ w
        centre = SkyCoord(*xyz, representation_type="cartesian").spherical
        out[name] = (float(centre.lon.deg), float(centre.lat.deg))
    return out


def _ring(centre: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """`RING_POINTS` (ra, dec) uniformly over the 3-10 deg annulus around `centre`."""
    r = np.sqrt(rng.uniform(RING_DEG[0] ** 2, RING_DEG[1] ** 2, RING_POINTS))
    pa = rng.uniform(0, 360, RING_POINTS)
    p = SkyCoord(*centre, unit="deg").directional_offset_by(pa * u.deg, r * u.deg)
    return np.stack([p.ra.deg, p.dec.deg], axis=1)


def _read(ms: Path, column: str) -> dict[str, np.ndarray]:
    with open_table(ms) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        cross = a1 != a2
        return {"data": t.getcol(column)[cross][..., [0, 3]], "uvw": t.getcol("UVW")[cross]}


def _peeled_column(ms: Path) -> tuple[str, bool]:
    with open_table(ms) as t:
        for col in ("CORRECTED_DATA", "DATA"):
            if col in t.colnames() and "sky" in str(t.getcolkeywords(col).get("LWA_PEEL", "")):
                return col, True
        return ("CORRECTED_DATA" if "CORRECTED_DATA" in t.colnames() else "DATA"), False


def _phase_centre_freqs(ms: Path) -> tuple[float, float, np.ndarray]:
    with open_table(ms / "FIELD") as t:
        ra0, dec0 = t.getcell("PHASE_DIR", 0)[0]
    with open_table(ms / "SPECTRAL_WINDOW") as t:
        freqs = np.asarray(t.getcell("CHAN_FREQ", 0), dtype=float)
    return float(ra0), float(dec0), freqs


def _pixels(diff: np.ndarray, uvw: np.ndarray, ms: Path, radec_deg: np.ndarray) -> np.ndarray:
    """Stokes I dirty pixels (natural weights, mean over baselines, channels) at `radec_deg`."""
    ra0, dec0, freqs = _phase_centre_freqs(ms)
    stokes_i = 0.5 * (diff[..., 0] + diff[..., 1])  # (row, chan)
    out = np.empty(len(radec_deg))
    for k, (ra, dec) in enumerate(np.radians(radec_deg)):
        l, m, n = direction_cosines(ra, dec, ra0, dec0)  # noqa: E741
        tau = uvw[:, 0] * l + uvw[:, 1] * m + uvw[:, 2] * (n - 1)  # metres
        phase = np.exp(-2j * np.pi * tau[:, None] * freqs[None, :] / C_M_S)  # sign checked on lwa-sim skies (test_score)
        out[k] = float(np.mean(stokes_i * phase).real)
    return out


def _image_ring_rms(images: list, truth: dict, centres: dict[str, tuple[float, float]]) -> float | None:
    """Robust RMS of the deep I image in the 3-10 deg annuli, steady sources masked (2 beams)."""
    from lwa_sim.score import load_plane, pick_image, robust_rms

    im = pick_image(images, STOKES="I", IMGCAT="deep", ROBUST=0.0, TAPER=0.0, PBCOR=False, DEWARPED=False)
    if im is None:
        return None
    img, wcs = load_plane(im)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    sky = wcs.pixel_to_world(xx.ravel(), yy.ravel())
    ok = np.isfinite(sky.ra.deg)
    sky = SkyCoord(np.where(ok, sky.ra.deg, 0) * u.deg, np.where(ok, sky.dec.deg, 0) * u.deg)
    ring = np.zeros(img.size, bool)
    for c in centres.values():
        sep = sky.separation(SkyCoord(*c, unit="deg")).deg
        ring |= (sep >= RING_DEG[0]) & (sep <= RING_DEG[1])
    for s in truth["sources"]:
        if s.get("kind") != "ateam" and not s.get("transient"):
            pos = SkyCoord(s["apparent_ra_deg"], s["apparent_dec_deg"], unit="deg")
            ring &= sky.separation(pos).deg > 2 * im.bmaj_deg
    return robust_rms(img.ravel()[ring & ok])


def _convergence(folder: Path) -> dict[str, Any]:
    """DDECal iterations per peel log of the run, and how many solves did not converge."""
    iterations, failed = [], 0
    for log_path in sorted((folder / "logs").glob("peel-sky-*.log")):
        text = log_path.read_text(errors="replace")
        ok = re.search(r"DDECal converged in \[([\d, ]+)\] iterations", text)
        bad = re.search(r"did not converge within \d+ iterations \(took \[([\d, ]+)\]\)", text)
        found = ok or bad
        if found:
            iterations.append(max(int(v) for v in re.findall(r"\d+", found.group(1))))
            failed += bad is not None
    if not iterations:
        return {"n_logs": 0}
    return {"n_logs": len(iterations), "not_converged": failed, "iterations_min": min(iterations),
            "iterations_median": float(np.median(iterations)), "iterations_max": max(iterations)}


def score_peel(folder: Path, truth: dict, sim_dir: Path, control: Path, subband: str,
               images: tuple[list, list] | None = None) -> dict[str, Any]:
    """The A-team section of one subband folder's score (module docstring); `images`: the run's
    and the control run's images (lwa_sim.score.Image lists) for the image RMS ratio."""
    entry = next((s for s in truth["observation"]["subbands"] if s["subband"] == subband), None)
    centres = _ateam_centres(truth)
    if entry is None or not centres:
        return {"status": "no A-team in this sky"}
    field = []
    for s in truth["sources"]:
        fb = s.get("flux_by_subband", {}).get(subband)
        if s.get("kind") in ("ateam", "transient") or s.get("transient") or not fb or fb["apparent_jy"] <= 0:
            continue
        sep = min(float(SkyCoord(s["ra_deg"], s["dec_deg"], unit="deg").separation(
            SkyCoord(*c, unit="deg")).deg) for c in centres.values())
        if sep <= FIELD_RADIUS_DEG:
            field.append({"name": s["name"], "sep_deg": round(sep, 2), "apparent_jy": fb["apparent_jy"],
                          "pos": (s["apparent_ra_deg"], s["apparent_dec_deg"])})
    rng = np.random.default_rng(0)
    ring = np.concatenate([_ring(c, rng) for c in centres.values()])
    num = den = 0.0
    field_sum = np.zeros(len(field))
    ring_sum = np.zeros(len(ring))
    ctrl_ring_sum = np.zeros(len(ring))
    used, peeled_any = [], False
    for name in entry["files"]:
        run_ms, sim_ms, ctrl_ms = folder / "ms" / name, sim_dir / name, control / name
        if not (run_ms.is_dir() and sim_ms.is_dir()):
            continue
        if not ctrl_ms.is_dir():
            raise LwaError(f"control {control} has no {name}: simulate it with the run's settings "
                           "(lwa-sim observe SPEC --without-ateam, same start, size and seed)")
        column, peeled = _peeled_column(run_ms)
        peeled_any |= peeled
        run, sim, ctrl = _read(run_ms, column), _read(sim_ms, "DATA"), _read(ctrl_ms, "DATA")
        if run["data"].shape != ctrl["data"].shape:
            raise LwaError(f"{run_ms} and {ctrl_ms} differ in shape: not the same observation")
        diff = run["data"] - ctrl["data"]
        num += float(np.sum(np.abs(diff) ** 2))
        den += float(np.sum(np.abs(sim["data"] - ctrl["data"]) ** 2))
        pix = _pixels(diff, ctrl["uvw"], ctrl_ms, np.array([f["pos"] for f in field] + list(ring)).reshape(-1, 2))
        field_sum += pix[: len(field)]
        ring_sum += pix[len(field):]
        ctrl_ring_sum += _pixels(ctrl["data"], ctrl["uvw"], ctrl_ms, ring)
        used.append(name)
    if not used:
        return {"status": "no working MS under ms/ matching the simulation"}
    n = len(used)
    excess = float(np.sqrt(np.mean((ring_sum / n) ** 2)))
    ctrl_rms = float(np.sqrt(np.mean((ctrl_ring_sum / n) ** 2)))
    peeled_rms = float(np.sqrt(np.mean(((ctrl_ring_sum + ring_sum) / n) ** 2)))
    image_ratio = None
    if images is not None and images[0]:
        run_rms = _image_ring_rms(images[0], truth, centres)
        ctrl_img_rms = _image_ring_rms(images[1], truth, centres) if images[1] else None
        if run_rms and ctrl_img_rms:
            image_ratio = {"run_jy": run_rms, "control_jy": ctrl_img_rms, "ratio": run_rms / ctrl_img_rms,
                           "control": "image of the control run"}
        elif run_rms:
            est = float(np.sqrt(run_rms ** 2 - excess ** 2)) if run_rms > excess else 0.0
            image_ratio = {"run_jy": run_rms, "control_jy": est, "ratio": run_rms / est if est else float("inf"),
                           "control": "estimated: sqrt(run^2 - excess^2)"}
    changes = [{"name": f["name"], "sep_deg": f["sep_deg"], "apparent_jy": round(f["apparent_jy"], 3),
                "change": float(v / n / f["apparent_jy"])} for f, v in zip(field, field_sum, strict=True)]
    return {
        "status": "scored", "peeled": peeled_any, "n_ms": n, "control": str(control),
        "ddecal": _convergence(folder),
        "power_left": num / den if den > 0 else None,
        "field": changes,
        "field_max_abs_change": max((abs(c["change"]) for c in changes), default=None),
        "field_median_abs_change": float(np.median([abs(c["change"]) for c in changes])) if changes else None,
        "ring_excess_jy": excess, "ring_control_jy": ctrl_rms,
        "rms_ratio_dirty": peeled_rms / ctrl_rms if ctrl_rms > 0 else None,
        "rms_ratio_image": image_ratio,
        "rms_ratio": image_ratio["ratio"] if image_ratio else None,
    }


def peel_goals(res: dict | None) -> dict[str, dict]:
    """The three peel goals of one subband ('n/a' without an A-team section)."""
    from lwa_sim.score import goal_verdict

    if not res or res.get("status") != "scored":
        why = (res or {}).get("status", "no control simulation given (--control)")
        return {k: goal_verdict(None, why) for k in PEEL_GOALS}
    p, fmax, ratio = res["power_left"], res["field_max_abs_change"], res["rms_ratio"]
    return {
        "ateam_power": goal_verdict(p is not None and p <= POWER_MAX, f"{p:.2e} of the A-team's power left"
                                    + ("" if res["peeled"] else " (not peeled)")),
        "ateam_field": goal_verdict(None if fmax is None else fmax <= FIELD_MAX,
                                    f"{len(res['field'])} sources within {FIELD_RADIUS_DEG:g}°: median "
                                    f"{100 * (res['field_median_abs_change'] or 0):.2f} %, max {100 * (fmax or 0):.2f} %"),
        "ateam_rms": goal_verdict(None if ratio is None else ratio <= RMS_MAX, _rms_detail(res)),
    }


def _rms_detail(res: dict) -> str:
    img = res.get("rms_ratio_image")
    if img:
        return (f"deep I image 3-10°: {img['run_jy']:.3f} Jy vs {img['control_jy']:.3f} Jy without the A-team "
                f"({img['control']}; {img['ratio']:.2f}×); peel excess {res['ring_excess_jy']:.3f} Jy (dirty)")
    return f"no deep I image to measure (peel excess {res['ring_excess_jy']:.3f} Jy, dirty)"
