"""QA of a run folder, per subband and stage, on the ALMA weblog's scale, from measured quantities.

A run folder is what `bin/run_hour.sh` writes for one LST hour: `<subband>/logs/<step>.log` (first
line the exact command; `.<step>.done` when it succeeded), the products under `<subband>/`, and the
aggregation's `logs/` beside them; `state.json` one folder up. Every step is `done`, `failed` (a log
without its done marker; state.json's `failed` key names it too), `skipped` (its log says so, e.g.
`lwa-stack color` with one band) or `not run`.

Scores (0-1; >= 0.9 green, >= 0.66 blue, >= 0.33 yellow, else red). A failed or incomplete stage scores 0. A stage
that ran but has nothing to measure shows "done" without a score. Any *red item* (science lost: a
mostly-flagged interval, a fit that did not converge, a restoring beam far from its expectation, a
dewarp screen that worsens astrometry) caps its stage at 0.32 and names the cause. The thresholds
are the config's `[report]` `qa_*` keys.

* flag: F = fraction of visibilities flagged in the final MS. Score = `ramp(F)`: 1 at F = 0, 0.9 at
  `qa_flag_fraction[0]`, 0.66 at `[1]`, 0.33 at `[2]`, 0 at 1 (piecewise linear). Red item: an
  imaging interval (the MS times split as wsclean's `-intervals-out`) flagged > `qa_interval_flagged_max`.
* snapshots: B = fraction of snapshot frames `lwa-flag integrations` marked bad
  (`qa/bad_integrations.csv`); score `ramp(B)`.
* imaging: mean over configurations of present / expected science images (by header); red items for
  every image whose BMAJ is below `qa_min_pixels_per_beam` pixels, or off by more than
  `qa_beam_ratio_max` from its expectation (10 min images: the deep image of the same Stokes, robust,
  taper; deep images: the median BMAJ of the subband's deep images of the same taper).
* noise: the fraction of images within 2x of their class's noise-vs-frequency trend, averaged with
  the Stokes V 10 min / deep noise ratio over its expectation sqrt(NINTERVL) as min(r, 1/r).
* pbcor: images with a primary-beam corrected counterpart / images.
* dewarp: the cross-validated median residual R = OFFMEDCV / BMAJ (beams) of the screen: 1 when
  R <= `qa_dewarp_max_beam`, falling as `qa_dewarp_max_beam / R` x 0.9 beyond; a screen whose
  cross-validated residual exceeds the undewarped offset (OFFMEDCV > OFFMED0) is a red item; no
  screen (too few anchors) scores 0.5 with the count of anchors found.
* photometry: measurements whose Gaussian fit converged / measurements with a fit; a detection whose
  fit did not converge or failed is a red item.
* transients / wideband-search: candidates not classed artefact or known, N, against an allowance
  A = max(`transient.warn_candidates`, `qa_false_per_image` x images searched): min(1, A / N).
* wideband: present / possible stacks averaged with the median min(r, 1/r) of measured / expected
  (STKRMS) stack noise.
* flux-check: calibrator flux ratios within 0.8-1.25 / calibrators.
* color: 3-colour PNGs present / 3 (skipped with one band).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.fitsio import ImageInfo, image_info
from lwa_common.products import (
    BAD_INTEGRATIONS,
    CANDIDATES,
    FLAGGED_BASELINES,
    FLUX_CHECK,
    PHOTOMETRY,
    THERMAL_NOISE,
)
from lwa_stack.gather import detection_column, truthy
from lwa_stack.noise import NOISE_COLUMNS, find_images
from lwa_stack.stack import Candidate, bands_from_config, grid_signature, plan_stacks

__all__ = ["SUBBAND_STAGES", "RUN_STAGES", "Step", "Score", "RunQA", "score_colour", "ramp", "collect_run",
           "walk", "SCORE_COLOURS", "RED_CAP"]

log = logging.getLogger(__name__)

SCORE_COLOURS = {"green": "#9ad29a", "blue": "#9ac6ec", "yellow": "#f5e37a", "red": "#f09a9a",
                 "grey": "#dddddd"}
RED_CAP = 0.32
# (scope, stage, title, regular expression of the driver's step names): the stages of each subband
# (its own logs), then those of the run (the aggregation's logs)
_STAGES: tuple[tuple[str, str, str, str], ...] = (
    ("subband", "setup", "Set-up, peeling and concatenation", r"calibrate|peel-(sky|rfi)-\d+|concat"),
    ("subband", "flag", "Flagging", r"flag-antennas|flag-rfi|flag-hot"),
    ("subband", "snapshots", "Snapshots and integration QA", r"snapshots|flag-integrations"),
    ("subband", "imaging", "Science imaging", r"science"),
    ("subband", "noise", "Thermal noise", r"$^"),
    ("subband", "pbcor", "Primary-beam correction", r"pbcor"),
    ("subband", "dewarp", "Ionospheric dewarping", r"dewarp-fit|dewarp-apply"),
    ("subband", "photometry", "Target and solar-system photometry", r"targets|solar"),
    ("subband", "transients", "Transient search", r"transients"),
    ("subband", "movie", "Snapshot movies", r"movie"),
    ("run", "flux-check", "Flux-scale check", r"flux-check"),
    ("run", "wideband", "Wideband stacks", r"wideband"),
    ("run", "color", "3-colour images", r"color"),
    ("run", "wideband-search", "Wideband transient search", r"wideband-search"),
    ("run", "wideband-solar", "Solar-system photometry on the stacks", r"wideband-solar"),
    ("run", "gather", "Gathered detections", r"gather"),
)
# stage -> (title, step-name pattern)
SUBBAND_STAGES: dict[str, tuple[str, str]] = {st: (t, p) for scope, st, t, p in _STAGES if scope == "subband"}
RUN_STAGES: dict[str, tuple[str, str]] = {st: (t, p) for scope, st, t, p in _STAGES if scope == "run"}
_WALL_RE = re.compile(r"^# lwa-pipe step .* exit (\d+) after (\d+(?:\.\d+)?) s", re.MULTILINE)
_FINISHED_RE = re.compile(r"finished in (\d+(?:\.\d+)?) s")


def score_colour(score: float | None) -> str:
    """ALMA weblog colour of a QA score: green >= 0.9, blue >= 0.66, yellow >= 0.33, red below."""
    if score is None or not math.isfinite(score):
        return "grey"
    if score >= 0.9:
        return "green"
    if score >= 0.66:
        return "blue"
    if score >= 0.33:
        return "yellow"
    return "red"


def ramp(fraction: float, knots: tuple[float, float, float]) -> float:
    """1 at 0, 0.9 / 0.66 / 0.33 at the three knots, 0 at 1; piecewise linear in between."""
    xs = [0.0, *knots, 1.0]
    return float(np.interp(min(max(fraction, 0.0), 1.0), xs, [1.0, 0.9, 0.66, 0.33, 0.0]))


def walk(root: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` under `root` (hidden folders and the weblog itself skipped)."""
    return sorted(p for p in root.rglob(pattern)
                  if p.is_file() and not any(part.startswith(".") or part == "weblog"
                                             for part in p.relative_to(root).parts[:-1]))


@dataclass
class Step:
    """One driver step: its log, exact command, status and wall time."""

    name: str
    status: str  # done / failed / skipped / incomplete (killed or still running) / running (the report)
    log: Path
    command: str
    wall_s: float | None


@dataclass
class Score:
    stage: str
    subband: str  # "run" for the run-wide stages
    title: str
    status: str  # done / failed / skipped / not run
    score: float | None = None
    detail: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)  # red items naming the cause
    steps: list[Step] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)

    @property
    def value(self) -> float | None:
        """The score with the failure and red-item rules applied."""
        if self.status in ("failed", "incomplete"):
            return 0.0
        if self.score is None:
            return RED_CAP if self.items else None
        return min(self.score, RED_CAP) if self.items else self.score

    @property
    def colour(self) -> str:
        return score_colour(self.value)

    @property
    def label(self) -> str:
        if self.status in ("failed", "incomplete"):
            return self.status.upper()
        if self.value is not None:
            return f"{self.value:.2f}"
        return {"done": "done", "skipped": "skipped"}.get(self.status, "not run")

    @property
    def wall_s(self) -> float | None:
        walls = [s.wall_s for s in self.steps if s.wall_s is not None]
        return float(sum(walls)) if walls else None


@dataclass
class _Image:
    path: Path
    info: ImageInfo
    header: fits.Header


@dataclass
class RunQA:
    root: Path
    hour: str
    subbands: list[str]
    scores: list[Score]
    state: dict[str, Any]
    images: list[_Image]
    noise: pd.DataFrame
    intervals: dict[str, pd.DataFrame]  # subband -> per-interval flag table

    def get(self, stage: str, subband: str) -> Score | None:
        return next((s for s in self.scores if s.stage == stage and s.subband == subband), None)

    @property
    def overall(self) -> float | None:
        vals = [s.value for s in self.scores if s.value is not None]
        return min(vals) if vals else None


# ---- steps -------------------------------------------------------------------------------------

def _read_step(logs: Path, name: str, failed_in_state: str | None) -> Step:
    log_path = logs / f"{name}.log"
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    first = text.splitlines()[0] if text else ""
    command = first[2:] if first.startswith("$ ") else ""
    done = (logs / f".{name}.done").exists()
    m = _WALL_RE.search(text)
    wall = float(m.group(2)) if m else None
    if wall is None and (f := _FINISHED_RE.findall(text)):
        wall = float(f[-1])
    if done:
        status = "skipped" if "skipped: " in text else "done"
    elif name == "report":
        status = "running"
    elif (m and m.group(1) != "0") or failed_in_state == name:
        status = "failed"
    else:  # a log without its done marker nor an exit line: killed, or still running
        status = "incomplete"
    return Step(name, status, log_path, command, wall)


def _steps(logs: Path, pattern: str, failed_in_state: str | None) -> list[Step]:
    if not logs.is_dir():
        return []
    rx = re.compile(rf"^(?:{pattern})$")
    # <step>.log only: <step>.<tool>.log beside it is that step's wsclean/aoflagger/DP3 output
    names = sorted({p.stem for p in logs.glob("*.log") if "." not in p.stem and rx.match(p.stem)})
    return [_read_step(logs, n, failed_in_state) for n in names]


def _status(steps: list[Step]) -> str:
    if not steps:
        return "not run"
    if any(s.status == "failed" for s in steps):
        return "failed"
    if any(s.status == "incomplete" for s in steps):
        return "incomplete"
    if all(s.status == "skipped" for s in steps):
        return "skipped"
    return "done"


# ---- inventory ---------------------------------------------------------------------------------

def _inventory(root: Path) -> list[_Image]:
    out = []
    for path in find_images([root]):
        if "weblog" in path.relative_to(root).parts:
            continue
        try:
            header = fits.getheader(path)
            if "CUTOUT" in header or "CANDNAME" in header or "STOKES" not in header:
                continue  # cutouts (lwa-cutout, lwa-transient) and screens are not science images
            out.append(_Image(path, image_info(path), header))
        except (LwaError, OSError) as err:
            log.warning("qa: skipping unreadable %s: %s", path, err)
    return out


def _noise_table(root: Path) -> pd.DataFrame:
    frames = []
    for p in walk(root, THERMAL_NOISE.glob):
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError) as err:
            log.warning("qa: unreadable %s: %s", p, err)
            continue
        if all(c in df.columns for c in NOISE_COLUMNS):
            frames.append(df)
    df = (pd.concat(frames).drop_duplicates(subset="path", keep="last").reset_index(drop=True) if frames
          else pd.DataFrame(columns=list(NOISE_COLUMNS)))
    for col in ("freq_mhz", "robust", "taper", "rms_jy"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def _read_state(root: Path) -> dict[str, Any]:
    for p in (root / "state.json", root.parent / "state.json"):
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except (OSError, ValueError) as err:
                log.warning("qa: unreadable %s: %s", p, err)
    return {}


def _subbands(root: Path, state: dict[str, Any], hour: str) -> list[str]:
    label = re.compile(r"\d+(\.\d+)?MHz")
    found = {p.name for p in root.iterdir() if p.is_dir() and label.fullmatch(p.name)}
    for key in state.get("subbands", {}):
        h, _, sb = key.partition("/")
        if h == hour and label.fullmatch(sb):  # not the hour's own steps ("10h/all")
            found.add(sb)
    return sorted(found, key=lambda s: float(s.removesuffix("MHz")))


def _key(info: ImageInfo) -> tuple:
    robust = None if info.robust is None else round(float(info.robust), 3)
    return (info.stokes, info.category, info.interval, robust, info.taper > 0)


# ---- per-subband measurements ------------------------------------------------------------------

def _interval_flags(sbdir: Path, n_intervals: int) -> pd.DataFrame | None:
    """Per imaging interval: flagged fraction of the final MS and the part of each flagger."""
    ms = next(iter(sorted(p for p in sbdir.glob("*.ms") if (p / "table.dat").exists())), None)
    if ms is None:
        return None
    from lwa_common.ms import flag_chunks, open_table

    try:
        with open_table(ms) as t:
            utimes = np.unique(t.getcol("TIME"))
        nflag = np.zeros(len(utimes))
        ntot = np.zeros(len(utimes))
        for f, cols in flag_chunks(ms, columns=("TIME",)):
            idx = np.searchsorted(utimes, cols["TIME"])
            np.add.at(nflag, idx, f.reshape(len(f), -1).sum(axis=1))
            np.add.at(ntot, idx, f[0].size)
    except (LwaError, RuntimeError) as err:
        log.warning("qa: cannot read flags of %s: %s", ms, err)
        return None
    groups = np.array_split(np.arange(len(utimes)), max(1, min(n_intervals, len(utimes))))
    rfi = _flag_json(sbdir, "rfi")
    per_time_rfi = dict((round(t, 1), p) for t, p in (rfi or {}).get("flagged", {}).get("per_time_percent", []))
    bad = _bad_frames(sbdir)
    rows = []
    for i, g in enumerate(groups, start=1):
        t0, t1 = utimes[g[0]], utimes[g[-1]]
        rfi_pct = [per_time_rfi.get(round(float(t), 1)) for t in utimes[g]]
        rfi_pct = [p for p in rfi_pct if p is not None]
        n_bad = None
        if bad is not None:
            mjd_s = bad["mjd"].to_numpy(float) * 86400.0
            sel = (mjd_s >= t0 - 1) & (mjd_s <= t1 + 1)
            n_bad = f"{int(bad['bad'][sel].astype(int).sum())}/{int(sel.sum())}"
        rows.append({"interval": f"t{i:04d}", "integrations": len(g),
                     "flagged_percent": round(100.0 * nflag[g].sum() / max(ntot[g].sum(), 1), 2),
                     "aoflagger_percent": round(float(np.mean(rfi_pct)), 2) if rfi_pct else None,
                     "bad_integrations": n_bad})
    return pd.DataFrame(rows)


def _flag_json(sbdir: Path, command: str) -> dict[str, Any] | None:
    p = next(iter(sorted(sbdir.glob(f"*.flag-{command}.json"))), None)
    try:
        return json.loads(p.read_text()) if p else None
    except (OSError, ValueError):
        return None


def _bad_frames(sbdir: Path) -> pd.DataFrame | None:
    p = BAD_INTEGRATIONS.path(sbdir / "qa")
    try:
        df = pd.read_csv(p) if p.is_file() else None
    except (OSError, ValueError):
        return None
    return df if df is not None and {"mjd", "bad"} <= set(df.columns) else None


def _score_flag(sc: Score, sbdir: Path, cfg: Config, intervals: pd.DataFrame | None) -> None:
    reasons = []
    for command in ("antennas", "rfi", "hot-baselines", "integrations"):
        js = _flag_json(sbdir, command)
        if js:
            added = float(js.get("flagged_percent_after", 0)) - float(js.get("flagged_percent_before", 0))
            reasons.append({"flagger": f"lwa-flag {command}", "added_percent": round(added, 3),
                            "after_percent": js.get("flagged_percent_after")})
    if reasons:
        sc.tables.append(("Flags per reason (percentage of all visibilities each flagger added)",
                          pd.DataFrame(reasons)))
    hot = FLAGGED_BASELINES.path(sbdir / "qa")
    if hot.is_file():
        try:
            df = pd.read_csv(hot)
            if "reason" in df.columns:
                counts = df["reason"].astype(str).str.split(":").str[0].value_counts()
                sc.tables.append(("Hot baselines and antennas by reason",
                                  counts.rename_axis("reason").reset_index(name="count")))
        except (OSError, ValueError):
            pass
    sc.plots += [p for p in (sbdir / "qa" / "heatmap.png", sbdir / "qa" / "amp_vs_uv.png") if p.is_file()]
    if intervals is not None and len(intervals):
        total = float(np.average(intervals["flagged_percent"], weights=intervals["integrations"])) / 100.0
        sc.tables.insert(0, ("Flagged fraction per imaging interval", intervals))
        sc.score = ramp(total, cfg.report.qa_flag_fraction)
        sc.inputs["flagged fraction F"] = f"{total:.4f}"
        sc.detail = f"{100 * total:.1f} % of the visibilities flagged"
        for _, row in intervals.iterrows():
            if row["flagged_percent"] / 100.0 > cfg.report.qa_interval_flagged_max:
                why = [f"AOFlagger {row['aoflagger_percent']} %"] if row["aoflagger_percent"] is not None else []
                if row["bad_integrations"]:
                    why.append(f"{row['bad_integrations']} integrations flagged by lwa-flag integrations")
                sc.items.append(f"interval {row['interval']} is {row['flagged_percent']:.0f} % flagged "
                                f"({'; '.join(why) or 'cause not recorded'}): its science is lost")
    elif reasons:
        total = float(reasons[-1]["after_percent"] or 0) / 100.0
        sc.score = ramp(total, cfg.report.qa_flag_fraction)
        sc.inputs["flagged fraction F"] = f"{total:.4f}"
        sc.detail = f"{100 * total:.1f} % flagged (flag summaries; no MS to split per interval)"


def _score_snapshots(sc: Score, sbdir: Path, cfg: Config) -> None:
    bad = _bad_frames(sbdir)
    sc.plots += [p for p in (sbdir / "qa" / "snapshot_rms.png",) if p.is_file()]
    if bad is None or not len(bad):
        return
    frac = float(bad["bad"].astype(int).mean())
    sc.score = ramp(frac, cfg.report.qa_flag_fraction)
    sc.inputs.update({"frames": len(bad), "bad frames": int(bad["bad"].astype(int).sum()), "B": f"{frac:.3f}"})
    sc.detail = f"{int(bad['bad'].astype(int).sum())}/{len(bad)} snapshot frames flagged as RMS outliers"
    shown = bad[bad["bad"].astype(int) == 1]
    if len(shown):
        cols = [c for c in ("time_utc", "rms", "running_median", "score", "reason") if c in shown.columns]
        sc.tables.append(("Integrations flagged by their snapshot RMS", shown[cols]))


def _expected_keys(cfg: Config) -> set[tuple]:
    keys = set()
    for conf in cfg.imaging.configurations:
        if conf.span == "deep":
            keys.add((conf.stokes, "deep", "deep", round(conf.robust, 3), conf.taper))
        else:
            for i in range(1, cfg.imaging.intervals_out + 1):
                keys.add((conf.stokes, "10min", f"t{i:04d}", round(conf.robust, 3), conf.taper))
    return keys


def _beam_arcmin(h: fits.Header) -> float | None:
    b = h.get("BMAJ")
    return float(b) * 60.0 if b and float(b) > 0 else None


def _score_imaging(sc: Score, ims: list[_Image], cfg: Config) -> None:
    base = [im for im in ims if not im.info.pbcor and not im.info.dewarped] or \
        [im for im in ims if not im.info.pbcor]  # as imaged; the dewarped copies when only they are left
    if not base:
        return
    expected = _expected_keys(cfg)
    have = {_key(im.info) for im in base}
    sc.score = len(have & expected) / len(expected)
    sc.inputs.update({"images expected": len(expected), "present": len(have & expected)})
    sc.detail = f"{len(have & expected)}/{len(expected)} science images"
    rows = []
    deep_by = {(im.info.stokes, im.info.robust, im.info.taper > 0): _beam_arcmin(im.header)
               for im in base if im.info.category == "deep"}
    med_by_taper: dict[bool, float] = {}
    for taper in (True, False):
        vals = [_beam_arcmin(im.header) for im in base if im.info.category == "deep" and (im.info.taper > 0) == taper]
        vals = [v for v in vals if v]
        if vals:
            med_by_taper[taper] = float(np.median(vals))
    for im in sorted(base, key=lambda i: i.path.name):
        bmaj = _beam_arcmin(im.header)
        pix = abs(float(im.header.get("CDELT1", 0))) * 60.0 or None
        if im.info.category == "10min":
            exp = deep_by.get((im.info.stokes, im.info.robust, im.info.taper > 0))
            what = "the deep image of its configuration"
        else:
            exp = med_by_taper.get(im.info.taper > 0)
            what = "the median of the subband's deep images"
        rows.append({"image": im.path.name, "BMAJ_arcmin": None if bmaj is None else round(bmaj, 2),
                     "expected_arcmin": None if exp is None else round(exp, 2),
                     "pixels_per_beam": None if not (bmaj and pix) else round(bmaj / pix, 2)})
        if bmaj and pix and bmaj / pix < cfg.report.qa_min_pixels_per_beam:
            sc.items.append(f"{im.path.name}: restoring beam {bmaj:.1f}' is only {bmaj / pix:.1f} pixels of "
                            f"{pix:.1f}' (< {cfg.report.qa_min_pixels_per_beam:g}): the PSF is undersampled")
        if bmaj and exp:
            r = bmaj / exp
            if max(r, 1 / r) > cfg.report.qa_beam_ratio_max:
                sc.items.append(f"{im.path.name}: fitted beam {bmaj:.1f}' is {r:.2f}x {what} ({exp:.1f}')")
    sc.tables.append(("Restoring beams", pd.DataFrame(rows)))


def _score_counterpart(sc: Score, ims: list[_Image], attr: str) -> None:
    base = [im for im in ims if not im.info.pbcor and not im.info.dewarped]
    have = {_key(im.info) for im in ims if getattr(im.info, attr)}
    if not base:
        return
    n = sum(_key(im.info) in have for im in base)
    sc.score = n / len(base)
    sc.inputs.update({"images": len(base), "with counterpart": n})
    sc.detail = f"{n}/{len(base)} images have a {'primary-beam corrected' if attr == 'pbcor' else 'dewarped'} copy"


def _score_dewarp(sc: Score, sbdir: Path, ims: list[_Image], cfg: Config) -> None:
    screen = sbdir / "dewarp" / "screen.fits"
    fit_log = sbdir / "logs" / "dewarp-fit.log"
    if screen.is_file():
        h = fits.getheader(screen)
        deep = next((im for im in ims if im.info.category == "deep" and im.info.stokes == "I" and not im.info.pbcor
                     and not im.info.dewarped and im.info.taper > 0 and im.info.robust == 0), None)
        bmaj = _beam_arcmin(deep.header) if deep else None
        off0, offcv = h.get("OFFMED0"), h.get("OFFMEDCV")
        sc.inputs.update({"anchors": h.get("NANCHOR"), "OFFMED0 (arcmin)": off0, "OFFMEDCV (arcmin)": offcv,
                          "BMAJ (arcmin)": None if bmaj is None else round(bmaj, 2)})
        if offcv is not None and bmaj:
            r = float(offcv) / bmaj
            sc.inputs["R (beams)"] = round(r, 3)
            lim = cfg.report.qa_dewarp_max_beam
            sc.score = 1.0 if r <= lim else 0.9 * lim / r
            sc.detail = f"{h.get('NANCHOR')} anchors; cross-validated residual {offcv:.2f}' = {r:.2f} beam"
            if str(h.get("DWSTATUS", "")).strip().upper() == "IDENTITY":  # the images were left as they were
                sc.score = 1.0
                sc.detail += "; identity screen (no gain on held-out anchors): the images are left undewarped"
            elif off0 is not None and float(offcv) > float(off0):
                sc.items.append(f"the screen worsens astrometry on held-out anchors ({offcv:.2f}' after vs "
                                f"{off0:.2f}' before)")
        return
    if fit_log.is_file():
        text = fit_log.read_text(errors="replace")
        m = re.search(r"(\d+)\s+anchors?", text)
        sc.score = 0.5
        sc.inputs["anchors"] = m.group(1) if m else "?"
        sc.detail = (f"no screen ({m.group(1) if m else 'too few'} anchors matched): the images are not dewarped "
                     "and their astrometry is uncorrected")


_FIT_BAD = re.compile(r"not have converged|fit failed", re.IGNORECASE)


def _score_photometry(sc: Score, sbdir: Path) -> None:
    tables = [p for d in ("photometry", "solar") for p in walk(sbdir / d, PHOTOMETRY.glob)] \
        if sbdir.is_dir() else []
    n_fit = n_ok = 0
    for p in tables:
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError):
            continue
        det = detection_column(df.columns)
        for col in [c for c in df.columns if c.endswith("_note")]:
            stokes = col.removesuffix("_note")
            notes = df[col].fillna("").astype(str)
            fitted = df[f"{stokes}_detected"].map(truthy) if f"{stokes}_detected" in df.columns \
                else pd.Series(True, index=df.index)
            bad = notes.str.contains(_FIT_BAD) & fitted
            n_fit += int(fitted.sum())
            n_ok += int((fitted & ~bad).sum())
            for i in np.flatnonzero(bad.to_numpy()):
                row = df.iloc[i]
                if det is None or truthy(row[det]):
                    name = PHOTOMETRY.subject(p)
                    sc.items.append(f"{name} {row.get('subband', '')} {row.get('interval', '')} "
                                    f"Stokes {stokes}: {notes.iloc[i]}; its flux is not trustworthy")
    sc.inputs.update({"tables": len(tables), "measurements": n_fit, "fits converged": n_ok})
    if n_fit:
        sc.score = n_ok / n_fit
        sc.detail = f"{n_ok}/{n_fit} measurements without a fit problem in {len(tables)} tables"


def _score_candidates(sc: Score, csv_files: list[Path], n_images: int, cfg: Config) -> None:
    n = 0
    for p in csv_files:
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        cls = df["class"].astype(str).str.lower() if "class" in df.columns else pd.Series([""] * len(df))
        n += int((~cls.isin(["artefact", "known"])).sum())
    if not csv_files:
        return
    allow = max(float(cfg.transient.warn_candidates), cfg.report.qa_false_per_image * n_images)
    sc.score = min(1.0, allow / n) if n else 1.0
    sc.inputs.update({"candidates N": n, "images searched": n_images, "allowance A": round(allow, 2)})
    sc.detail = f"{n} candidates (not artefact, not known) from {n_images} images; allowance {allow:g}"


def _score_noise(sc: Score, noise: pd.DataFrame) -> None:
    df = noise[(noise["imgcat"] != "stack") & np.isfinite(noise["rms_jy"]) & (noise["rms_jy"] > 0)]
    if df.empty:
        return
    parts, details = [], []
    good = total = 0
    for _, grp in df.groupby(["stokes", "imgcat", "robust", "taper"], dropna=False):
        freqs, rms = grp["freq_mhz"].to_numpy(float), grp["rms_jy"].to_numpy(float)
        if len(np.unique(freqs)) >= 3:
            coef = np.polyfit(np.log(freqs), np.log(rms), 1)
            resid = np.log(rms) - np.polyval(coef, np.log(freqs))
        else:
            resid = np.log(rms) - np.log(np.median(rms))
        good += int(np.sum(np.abs(resid) <= math.log(2)))
        total += len(rms)
    parts.append(good / total)
    details.append(f"{good}/{total} images within 2x of their class's noise trend")
    v = df[(df["stokes"] == "V") & ~df["pbcor"].map(truthy)]
    deep, short = v[v["imgcat"] == "deep"]["rms_jy"], v[v["imgcat"] == "10min"]
    if len(deep) and len(short):
        r = float(np.median(short["rms_jy"]) / np.median(deep)) / math.sqrt(max(short["interval"].nunique(), 1))
        parts.append(min(r, 1 / r))
        details.append(f"V 10 min / deep noise over sqrt(N): {r:.2f}")
    sc.score = float(np.mean(parts))
    sc.detail = "; ".join(details)
    sc.inputs.update({"images measured": total})


def _score_wideband(sc: Score, images: list[_Image], noise: pd.DataFrame, cfg: Config) -> None:
    stacks = [im for im in images if im.info.category == "stack"]
    cands = [Candidate(im.path, im.info, grid_signature(im.header)) for im in images if im.info.category != "stack"]
    try:
        plans = plan_stacks(cands, bands_from_config(cfg.stack.bands_mhz))
    except LwaError:
        plans = []
    parts, details = [], []
    names = {im.path.name for im in stacks}
    if plans:
        present = sum(p.name in names for p in plans)
        parts.append(present / len(plans))
        details.append(f"{present}/{len(plans)} possible stacks present")
    by_path = {str(Path(p)): r for p, r in zip(noise["path"], noise["rms_jy"], strict=True)}
    ratios = []
    for im in stacks:
        measured, expected = by_path.get(str(im.path.resolve())), im.header.get("STKRMS")
        if measured and expected and measured > 0 and expected > 0:
            ratios.append(min(measured / expected, expected / measured))
    if ratios:
        parts.append(float(np.median(ratios)))
        details.append(f"stack noise / expected: median agreement {np.median(ratios):.2f} ({len(ratios)} stacks)")
    if parts:
        sc.score = float(np.mean(parts))
        sc.detail = "; ".join(details)
        sc.inputs.update({"stacks": len(stacks), "possible": len(plans)})


def _score_flux(sc: Score, root: Path) -> None:
    rows = ok = 0
    for p in walk(root, f"*{FLUX_CHECK.stem}*.csv"):
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError):
            continue
        col = next((c for c in ("ratio", "flux_ratio", "Ratio", "S_meas/S_model") if c in df.columns), None)
        if col is None:
            continue
        r = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        r = r[np.isfinite(r)]
        rows += len(r)
        ok += int(np.sum((r >= 0.8) & (r <= 1.25)))
        sc.tables.append((p.name, df))
    sc.plots += walk(root, f"*{FLUX_CHECK.stem}*.png")
    if rows:
        sc.score = ok / rows
        sc.detail = f"{ok}/{rows} calibrator ratios within 0.8-1.25"
        sc.inputs.update({"calibrators": rows, "within 0.8-1.25": ok})


def _images_searched(ims: list[_Image], cfg: Config) -> int:
    return sum(1 for im in ims if not im.info.pbcor and im.info.taper > 0 and im.info.robust is not None
               and abs(float(im.info.robust) - cfg.transient.robust) < 1e-3
               and (im.info.stokes == "V" or im.info.category == "10min"))


# ---- the run -----------------------------------------------------------------------------------

def _failed_detail(sc: Score) -> str:
    bad = next(s for s in sc.steps if s.status == sc.status)
    return f"step {bad.name} {sc.status}: see its log"


def _measure_subband_stage(sc: Score, sbdir: Path, ims: list, iv: pd.DataFrame | None, noise: pd.DataFrame,
                           cfg: Config) -> None:
    """The measured quantities and score of one subband stage that ran (`sc.stage`)."""
    stage, sb = sc.stage, sc.subband
    if stage == "flag":
        _score_flag(sc, sbdir, cfg, iv)
    elif stage == "snapshots":
        _score_snapshots(sc, sbdir, cfg)
    elif stage == "imaging":
        _score_imaging(sc, ims, cfg)
    elif stage == "noise":
        _score_noise(sc, noise[noise["subband"].astype(str) == sb])
    elif stage == "pbcor":
        _score_counterpart(sc, ims, "pbcor")
    elif stage == "dewarp":
        _score_dewarp(sc, sbdir, ims, cfg)
        if sc.score is not None and sc.score >= 0.5 and (sbdir / "dewarp" / "screen.fits").exists():
            sub = Score("", sb, "", "done")
            _score_counterpart(sub, ims, "dewarped")
            if sub.score is not None:
                sc.inputs["dewarped copies"] = sub.detail
    elif stage == "photometry":
        _score_photometry(sc, sbdir)
    elif stage == "transients":
        _score_candidates(sc, walk(sbdir / "transients", CANDIDATES.glob), _images_searched(ims, cfg), cfg)
    elif stage == "movie":
        movies = walk(sbdir / "movies", "*.mp4") if (sbdir / "movies").is_dir() else []
        sc.score = 1.0 if movies else 0.0
        sc.detail = f"{len(movies)} movies"


def _subband_scores(root: Path, sb: str, st: dict, images: list, noise: pd.DataFrame, cfg: Config
                    ) -> tuple[list[Score], pd.DataFrame | None]:
    """One Score per subband stage of subband `sb`, and its per-interval flag table (if any)."""
    sbdir = root / sb
    ims = [im for im in images if im.info.category in ("deep", "10min") and im.path.is_relative_to(sbdir)]
    iv = _interval_flags(sbdir, cfg.imaging.intervals_out) if sbdir.is_dir() else None
    scores = []
    for stage, (title, pattern) in SUBBAND_STAGES.items():
        steps = _steps(sbdir / "logs", pattern, st.get("failed"))
        sc = Score(stage, sb, title, _status(steps), steps=steps)
        if stage == "noise":  # measured by the aggregation (thermal_noise.csv), on this subband's images
            sc.status = "done" if (noise["subband"].astype(str) == sb).any() else "not run"
        if sc.status in ("done", "skipped"):
            _measure_subband_stage(sc, sbdir, ims, iv, noise, cfg)
        elif sc.status in ("failed", "incomplete"):
            sc.detail = _failed_detail(sc)
        scores.append(sc)
    return scores, iv


def _measure_run_stage(sc: Score, root: Path, images: list, noise: pd.DataFrame, cfg: Config) -> None:
    """The measured quantities and score of one aggregation stage that ran (`sc.stage`)."""
    if sc.stage == "flux-check":
        _score_flux(sc, root)
    elif sc.stage == "wideband":
        _score_wideband(sc, images, noise, cfg)
    elif sc.stage == "color":
        pngs = walk(root, "*_3color.png")
        sc.score = min(len(pngs), 3) / 3
        sc.detail = f"{len(pngs)} 3-colour PNGs"
        sc.plots += pngs
    elif sc.stage == "wideband-search":
        stacks = [im for im in images if im.info.category == "stack"]
        n_img = sum(1 for im in stacks if im.info.taper > 0 and (im.info.stokes == "V" or im.info.interval != "deep"))
        found = root / "Wideband" / "transients"
        _score_candidates(sc, walk(found, CANDIDATES.glob) if found.is_dir() else [], n_img, cfg)


def _run_scores(root: Path, images: list, noise: pd.DataFrame, cfg: Config) -> list[Score]:
    """One Score per aggregation stage (the run's own logs)."""
    scores = []
    for stage, (title, pattern) in RUN_STAGES.items():
        steps = _steps(root / "logs", pattern, None)
        sc = Score(stage, "run", title, _status(steps), steps=steps)
        if sc.status == "done":
            _measure_run_stage(sc, root, images, noise, cfg)
        elif sc.status == "skipped":
            sc.detail = next((ln[ln.index("skipped: "):] for s in steps
                              for ln in s.log.read_text(errors="replace").splitlines() if "skipped: " in ln), "skipped")
        elif sc.status in ("failed", "incomplete"):
            sc.detail = _failed_detail(sc)
        scores.append(sc)
    return scores


def collect_run(rundir: str | Path, *, cfg: Config) -> RunQA:
    """Every stage's status, steps, measured quantities and score (see the module docstring)."""
    root = Path(rundir).resolve()
    if not root.is_dir():
        raise LwaError(f"run folder not found: {root}")
    state = _read_state(root)
    hour = root.name
    subbands = _subbands(root, state, hour)
    images = _inventory(root)
    noise = _noise_table(root)
    scores: list[Score] = []
    intervals: dict[str, pd.DataFrame] = {}
    for sb in subbands:
        st = state.get("subbands", {}).get(f"{hour}/{sb}", {})
        sb_scores, iv = _subband_scores(root, sb, st, images, noise, cfg)
        scores += sb_scores
        if iv is not None:
            intervals[sb] = iv
    scores += _run_scores(root, images, noise, cfg)
    return RunQA(root, hour, subbands, scores, state, images, noise, intervals)
