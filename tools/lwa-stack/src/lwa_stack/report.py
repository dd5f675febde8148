"""A one-file HTML report of a run, with per-stage QA scores coloured as in the ALMA pipeline weblog.

The page is self-contained (plots and images embedded as base64 PNG, so it survives e-mail):
per-stage QA scores, the thermal-noise profile (every thermal_noise.csv under the run), the gathered
detections, the flux-check plot when one exists (`*flux_check*.png`), the 3-colour images
(`*_3color.png`, downsized), and the first transient cutout PNGs (PNG files in and under the folders
holding a `candidates.csv`).

QA scores (0-1; colour green >= 0.9, blue >= 0.66, yellow >= 0.33, else red; a stage with nothing to
judge is "not run", grey). Each is a plain ratio of what the run holds, so a reader can recompute it:

* imaging: per subband, the fraction of the expected science images present (one per deep
  configuration, `imaging.intervals_out` per 10 min one, counted by header keys, non-PB), averaged.
* pbcor / dewarp: the fraction of non-PB, non-dewarped per-subband images with a primary-beam corrected
  (resp. dewarped) counterpart of the same keys.
* noise: the mean of (a) the fraction of per-subband images whose RMS lies within a factor 2 of a power
  law in frequency fitted (log-log) to their class (Stokes, category, robust, taper) -- outliers are
  broken subbands -- and (b) for Stokes V, min(r, 1/r) with r the measured 10 min / deep RMS ratio over
  its thermal expectation sqrt(NINTERVL).
* wideband: the mean of (a) the fraction of the stacks the run's per-subband images allow
  (`plan_stacks`) that exist and (b) median min(r, 1/r) of measured stack RMS over the expected STKRMS
  (stacks listed in a thermal_noise.csv).
* color: 3-colour PNGs present / 3.
* photometry: the fraction of `*_photometry.csv` files that are readable with a Detection (or
  lwa-cutout's `detected`) column.
* transient: per candidates.csv, min(1, transient.warn_candidates / n_candidates), averaged (a flood
  of candidates means artefacts).
* flux_check: the fraction of calibrator rows of `*flux_check*.csv` whose flux ratio column (`ratio`,
  `flux_ratio`, `Ratio`, `S_meas/S_model`) lies in [0.8, 1.25].
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.fitsio import ImageInfo, image_info
from lwa_common.io import atomic_path
from lwa_stack.gather import detection_column, gather, truthy
from lwa_stack.noise import NOISE_COLUMNS, find_images
from lwa_stack.stack import Candidate, bands_from_config, grid_signature, plan_stacks

__all__ = ["StageScore", "score_colour", "qa_scores", "build_report", "text_summary", "SCORE_COLOURS"]

log = logging.getLogger(__name__)

SCORE_COLOURS = {"green": "#9ad29a", "blue": "#9ac6ec", "yellow": "#f5e37a", "red": "#f09a9a",
                 "grey": "#dddddd"}


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


@dataclass(frozen=True)
class StageScore:
    stage: str
    score: float | None
    detail: str

    @property
    def colour(self) -> str:
        return score_colour(self.score)


@dataclass
class _Image:
    path: Path
    info: ImageInfo
    header: fits.Header


def _walk(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _inventory(root: Path) -> list[_Image]:
    out = []
    for path in find_images([root]):
        try:
            out.append(_Image(path, image_info(path), fits.getheader(path)))
        except (LwaError, OSError) as err:
            log.warning("report: skipping unreadable %s: %s", path, err)
    return out


def _noise_table(root: Path) -> pd.DataFrame:
    frames = []
    for p in _walk(root, "thermal_noise.csv"):
        try:
            df = pd.read_csv(p)
        except (OSError, ValueError) as err:
            log.warning("report: unreadable %s: %s", p, err)
            continue
        if all(c in df.columns for c in NOISE_COLUMNS):
            frames.append(df)
    if not frames:
        df = pd.DataFrame(columns=list(NOISE_COLUMNS))
    else:
        df = pd.concat(frames).drop_duplicates(subset="path", keep="last").reset_index(drop=True)
    for col in ("freq_mhz", "robust", "taper", "rms_jy"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df


def _key(info: ImageInfo) -> tuple:
    robust = None if info.robust is None else round(float(info.robust), 3)
    return (info.stokes, info.category, info.interval, robust, info.taper > 0)


def _expected_keys(cfg: Config) -> set[tuple]:
    keys = set()
    for conf in cfg.imaging.configurations:
        if conf.span == "deep":
            keys.add((conf.stokes, "deep", "deep", round(conf.robust, 3), conf.taper))
        else:
            for i in range(1, cfg.imaging.intervals_out + 1):
                keys.add((conf.stokes, "10min", f"t{i:04d}", round(conf.robust, 3), conf.taper))
    return keys


def _score_imaging(subband_images: list[_Image], cfg: Config) -> StageScore:
    expected = _expected_keys(cfg)
    per_sb: dict[str, set] = defaultdict(set)
    for im in subband_images:
        if not im.info.pbcor:
            per_sb[im.info.subband or f"{im.info.freq_mhz:.1f}MHz"].add(_key(im.info))
    if not per_sb:
        return StageScore("imaging", None, "no per-subband images with lwa-pipe headers")
    fracs = {sb: len(keys & expected) / len(expected) for sb, keys in per_sb.items()}
    detail = ", ".join(f"{sb} {round(f * len(expected))}/{len(expected)}" for sb, f in sorted(fracs.items()))
    return StageScore("imaging", float(np.mean(list(fracs.values()))), detail)


def _score_counterpart(subband_images: list[_Image], stage: str, attr: str) -> StageScore:
    base = [im for im in subband_images if not im.info.pbcor and not im.info.dewarped]
    have = {(im.info.subband, _key(im.info)) for im in subband_images if getattr(im.info, attr)}
    what = "primary-beam corrected" if attr == "pbcor" else "dewarped"
    if not have:
        return StageScore(stage, None, f"no {what} images")
    if not base:
        return StageScore(stage, None, f"{len(have)} {what} images, but no uncorrected images to compare with")
    n = sum((im.info.subband, _key(im.info)) in have for im in base)
    return StageScore(stage, n / len(base), f"{n}/{len(base)} images have a {stage} counterpart")


def _score_noise(noise: pd.DataFrame) -> StageScore:
    df = noise[(noise["imgcat"] != "stack") & np.isfinite(noise["rms_jy"]) & (noise["rms_jy"] > 0)]
    if df.empty:
        return StageScore("noise", None, "no thermal_noise.csv")
    parts, details = [], []
    good = total = 0
    for _, grp in df.groupby(["stokes", "imgcat", "robust", "taper"], dropna=False):
        freqs = grp["freq_mhz"].to_numpy(float)
        rms = grp["rms_jy"].to_numpy(float)
        if len(np.unique(freqs)) >= 3:
            coef = np.polyfit(np.log(freqs), np.log(rms), 1)
            resid = np.log(rms) - np.polyval(coef, np.log(freqs))
        else:
            resid = np.log(rms) - np.log(np.median(rms))
        good += int(np.sum(np.abs(resid) <= math.log(2)))
        total += len(rms)
    parts.append(good / total)
    details.append(f"{good}/{total} images within 2x of their class's noise-vs-frequency trend")
    v = df[(df["stokes"] == "V") & ~df["pbcor"].map(truthy)]
    ratios = []
    for _sb, grp in v.groupby("subband"):
        deep = grp[grp["imgcat"] == "deep"]["rms_jy"]
        short = grp[grp["imgcat"] == "10min"]
        if len(deep) and len(short):
            n = max(short["interval"].nunique(), 1)
            r = float(np.median(short["rms_jy"]) / np.median(deep)) / math.sqrt(n)
            ratios.append(min(r, 1 / r))
    if ratios:
        parts.append(float(np.median(ratios)))
        details.append(f"V 10min/deep noise vs sqrt(N) expectation {np.median(ratios):.2f}")
    return StageScore("noise", float(np.mean(parts)), "; ".join(details))


def _score_wideband(images: list[_Image], noise: pd.DataFrame, cfg: Config) -> StageScore:
    stacks = [im for im in images if im.info.category == "stack"]
    cands = [Candidate(im.path, im.info, grid_signature(im.header)) for im in images if im.info.category != "stack"]
    try:
        plans = plan_stacks(cands, bands_from_config(cfg.stack.bands_mhz))
    except LwaError:
        plans = []
    if not plans and not stacks:
        return StageScore("wideband", None, "no wideband stacks and no images to stack")
    parts, details = [], []
    names = {im.path.name for im in stacks}
    if plans:
        present = sum(p.name in names for p in plans)
        parts.append(present / len(plans))
        details.append(f"{present}/{len(plans)} possible stacks present")
    by_path = {str(Path(p)): r for p, r in zip(noise["path"], noise["rms_jy"], strict=True)}
    ratios = []
    for im in stacks:
        measured = by_path.get(str(im.path.resolve()))
        expected = im.header.get("STKRMS")
        if measured and expected and measured > 0 and expected > 0:
            r = measured / expected
            ratios.append(min(r, 1 / r))
    if ratios:
        parts.append(float(np.median(ratios)))
        details.append(f"stack noise / expected: median agreement {np.median(ratios):.2f} ({len(ratios)} stacks)")
    if not parts:
        return StageScore("wideband", None, f"{len(stacks)} stacks, nothing to compare")
    return StageScore("wideband", float(np.mean(parts)), "; ".join(details))


def _score_flux(root: Path) -> StageScore:
    rows = ok = 0
    for p in _walk(root, "*flux_check*.csv"):
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
    if not rows:
        return StageScore("flux_check", None, "no flux-check table with a ratio column")
    return StageScore("flux_check", ok / rows, f"{ok}/{rows} calibrator ratios within 0.8-1.25")


def qa_scores(rundir: str | Path, *, cfg: Config, images: list[_Image] | None = None,
              noise: pd.DataFrame | None = None) -> list[StageScore]:
    """Per-stage QA scores of a run folder (see the module docstring for the definitions)."""
    root = Path(rundir)
    images = _inventory(root) if images is None else images
    noise = _noise_table(root) if noise is None else noise
    subband_images = [im for im in images if im.info.category in ("deep", "10min")]
    scores = [
        _score_imaging(subband_images, cfg),
        _score_counterpart(subband_images, "pbcor", "pbcor"),
        _score_counterpart(subband_images, "dewarp", "dewarped"),
        _score_noise(noise),
        _score_wideband(images, noise, cfg),
    ]
    pngs = _walk(root, "*_3color.png")
    scores.append(StageScore("color", min(len(pngs), 3) / 3 if pngs else None, f"{len(pngs)} 3-colour PNGs"))
    phot = _walk(root, "*_photometry.csv")
    good = 0
    for p in phot:
        try:
            good += detection_column(pd.read_csv(p, nrows=1).columns) is not None
        except (OSError, ValueError):
            pass
    scores.append(StageScore("photometry", good / len(phot) if phot else None,
                             f"{good}/{len(phot)} photometry tables usable"))
    cand_files = _walk(root, "candidates.csv")
    fr = []
    n_total = 0
    for p in cand_files:
        try:
            n = len(pd.read_csv(p))
        except (OSError, ValueError, pd.errors.EmptyDataError):
            n = 0
        n_total += n
        fr.append(min(1.0, cfg.transient.warn_candidates / n) if n else 1.0)
    scores.append(StageScore("transient", float(np.mean(fr)) if fr else None,
                             f"{n_total} candidates in {len(cand_files)} tables"))
    scores.append(_score_flux(root))
    return scores


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _thumbnail(path: Path, max_px: int) -> str:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return _png_data_uri(buf.getvalue())


def _noise_plot(noise: pd.DataFrame) -> str | None:
    df = noise[np.isfinite(noise["rms_jy"]) & (noise["rms_jy"] > 0) & np.isfinite(noise["freq_mhz"])]
    if df.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    per = df[df["imgcat"] != "stack"]
    for (stokes, cat, robust, taper), grp in per.groupby(["stokes", "imgcat", "robust", "taper"], dropna=False):
        grp = grp.sort_values("freq_mhz")
        label = f"{stokes} {cat} R{robust:g} {'taper' if taper > 0 else 'no taper'}"
        ax.plot(grp["freq_mhz"], grp["rms_jy"] * 1e3, "o-", ms=4, lw=1, label=label)
    st = df[df["imgcat"] == "stack"]
    if not st.empty:
        ax.plot(st["freq_mhz"], st["rms_jy"] * 1e3, "k*", ms=10, label="wideband stacks")
    ax.set_yscale("log")
    ax.set_xlabel("frequency [MHz]")
    ax.set_ylabel("thermal noise [mJy/beam]")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return _png_data_uri(buf.getvalue())


_CSS = """
body{font-family:sans-serif;margin:1.5em;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #999;padding:3px 7px;font-size:90%}
th{background:#eee}img{max-width:100%}.imgs img{max-width:32%;margin:2px}
""" + "".join(f".qa-{k}{{background:{v}}}" for k, v in SCORE_COLOURS.items())

_DET_COLUMNS = ("kind", "run", "name", "subband", "freq_mhz", "stokes", "flux_jy", "snr", "ra_deg", "dec_deg")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _detections_html(summary: dict[str, Any]) -> str:
    dets = summary["detections"]
    if not dets:
        return "<p>No detections.</p>"
    rows = ["<table class='detections'><tr>" + "".join(f"<th>{c}</th>" for c in _DET_COLUMNS) + "</tr>"]
    for d in dets:
        rows.append("<tr>" + "".join(f"<td>{html.escape(_fmt(d.get(c)))}</td>" for c in _DET_COLUMNS) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _transient_pngs(root: Path, limit: int) -> list[Path]:
    out: list[Path] = []
    for csv_path in _walk(root, "candidates.csv"):
        for p in _walk(csv_path.parent, "*.png"):
            if p not in out:
                out.append(p)
    return out[:limit]


def build_report(rundir: str | Path, *, output: str | Path, cfg: Config, max_transient_pngs: int = 6,
                 thumbnail_px: int = 800, overwrite: bool = False, title: str | None = None
                 ) -> tuple[Path, list[StageScore], dict[str, Any]]:
    """Write the HTML report; return (path, QA scores, gathered detections)."""
    root = Path(rundir)
    if not root.is_dir():
        raise LwaError(f"run folder not found: {root}")
    output = Path(output)
    if output.exists() and not overwrite:
        raise LwaError(f"output exists: {output} (use --overwrite to replace it)")
    images = _inventory(root)
    noise = _noise_table(root)
    scores = qa_scores(root, cfg=cfg, images=images, noise=noise)
    summary = gather([root])
    title = title or f"lwa-pipe report: {root.resolve().name}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p>Run folder <code>{html.escape(str(root.resolve()))}</code>; written "
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>"]
    scored = [s.score for s in scores if s.score is not None]
    overall = min(scored) if scored else None
    parts.append("<h2>QA scores</h2><table class='qa'><tr><th>stage</th><th>score</th><th>detail</th></tr>")
    for s in scores:
        shown = "not run" if s.score is None else f"{s.score:.2f}"
        parts.append(f"<tr><td>{s.stage}</td><td class='qa-{s.colour}'>{shown}</td>"
                     f"<td>{html.escape(s.detail)}</td></tr>")
    parts.append(f"<tr><th>overall (lowest)</th><td class='qa-{score_colour(overall)}'>"
                 f"{'n/a' if overall is None else f'{overall:.2f}'}</td><td></td></tr></table>")
    parts.append(f"<h2>Detections ({summary['n_detections']})</h2>")
    parts.append(_detections_html(summary))
    parts.append("<h2>Thermal noise</h2>")
    plot = _noise_plot(noise)
    parts.append(f"<img alt='thermal noise profile' src='{plot}'>" if plot else "<p>No thermal_noise.csv.</p>")
    flux = _walk(root, "*flux_check*.png")
    if flux:
        parts.append("<h2>Flux-scale check</h2>")
        parts += [f"<img alt='{html.escape(p.name)}' src='{_thumbnail(p, thumbnail_px)}'>" for p in flux]
    color = _walk(root, "*_3color.png")
    if color:
        parts.append("<h2>3-colour images</h2><div class='imgs'>")
        parts += [f"<figure><img alt='{html.escape(p.name)}' src='{_thumbnail(p, thumbnail_px)}'>"
                  f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in color]
        parts.append("</div>")
    trans = _transient_pngs(root, max_transient_pngs)
    if trans:
        parts.append("<h2>Transient candidates (first cutouts)</h2><div class='imgs'>")
        parts += [f"<img alt='{html.escape(p.name)}' title='{html.escape(str(p.relative_to(root)))}' "
                  f"src='{_thumbnail(p, thumbnail_px // 2)}'>" for p in trans]
        parts.append("</div>")
    parts.append("</body></html>")
    with atomic_path(output) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    log.info("wrote %s: %d detections, QA %s", output, summary["n_detections"],
             ", ".join(f"{s.stage} {'-' if s.score is None else f'{s.score:.2f}'}" for s in scores))
    return output, scores, summary


def text_summary(scores: Sequence[StageScore], summary: dict[str, Any]) -> str:
    """Plain-text part of the e-mail."""
    lines = ["QA scores:"]
    lines += [f"  {s.stage:<11} {'not run' if s.score is None else f'{s.score:.2f} ({s.colour})'}  {s.detail}"
              for s in scores]
    lines.append(f"Detections: {summary['n_detections']}")
    lines += [f"  {d['kind']}: {d['name']} {_fmt(d.get('subband'))} {_fmt(d.get('flux_jy'))}"
              for d in summary["detections"][:50]]
    return "\n".join(lines)
