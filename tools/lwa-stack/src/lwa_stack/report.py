"""The run's weblog: a folder of static HTML pages (jinja2 templates), browsable offline.

`build_weblog(RUNDIR, output=WEBLOG)` writes::

    WEBLOG/index.html          the run (date, LST range, subbands, software version + git hash, wall
                               time per stage), the subband x stage table of QA scores, the red items
    WEBLOG/stages/*.html       one page per stage and subband: score, its formula and inputs, tables,
                               QA plots, every step's exact command, status, wall time and log
    WEBLOG/images.html         a preview PNG of every science image (WCS axes, colour bar with units,
                               restoring beam), each linking to its FITS; the movies (<video>)
    WEBLOG/transients.html     candidates deduplicated across subbands and wideband stacks: paged,
                               sortable, thumbnails (full size on click), decimal and sexagesimal
                               coordinates, S/N, class, cutout FITS and PNG
    WEBLOG/targets.html, WEBLOG/targets/*.html
                               a page per target and solar-system body: photometry table, lightcurve
    WEBLOG/noise.html          the thermal-noise profile
    WEBLOG/files.html          every file of the run, linked
    WEBLOG/commands.sh         the run's commands in order, to replay it step by step

Links are relative (the weblog moves with its run folder); no page loads anything from a network.
QA scores and their formulas: `lwa_stack.qa`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.products import CANDIDATES, DETECTIONS_SUMMARY, PHOTOMETRY, THERMAL_NOISE
from lwa_common.provenance import git_hash, tool_version
from lwa_stack import qa as qa_mod
from lwa_stack.gather import SOLAR_BODIES, gather, parse_angle_deg
from lwa_stack.plots import image_preview, interval_flag_plot, lightcurve_plot, noise_plot
from lwa_stack.qa import (
    RUN_STAGES,
    SCORE_COLOURS,
    SUBBAND_STAGES,
    RunQA,
    Score,
    collect_run,
    score_colour,
    walk,
)

__all__ = ["build_weblog", "build_report", "text_summary", "html_summary", "score_colour", "qa_scores",
           "dedup_transients", "SCORE_COLOURS", "stage_formulas"]

log = logging.getLogger(__name__)


def stage_formulas() -> dict[str, str]:
    """Each stage's scoring rule, taken from the `lwa_stack.qa` docstring (one source for code and page)."""
    out: dict[str, str] = {}
    for block in re.split(r"\n\* ", qa_mod.__doc__ or "")[1:]:
        names, _, text = block.partition(":")
        text = " ".join(text.split())
        for name in names.split("/"):
            out[name.strip()] = text
    return out


def qa_scores(rundir: str | Path, *, cfg: Config) -> list[Score]:
    """Every stage's score of a run folder (see `lwa_stack.qa`)."""
    return collect_run(rundir, cfg=cfg).scores


# ---- links ---------------------------------------------------------------------------------------

class _Linker:
    def __init__(self, out: Path, final: Path) -> None:
        self.out, self.final = out, final

    def href(self, target: Path | str, page: str) -> str:
        """Relative URL from the page (a path inside the weblog) to `target` (absolute, or in the weblog)."""
        target = Path(target)
        if not target.is_absolute():
            target = self.final / target
        elif target.is_relative_to(self.out):
            target = self.final / target.relative_to(self.out)
        page_dir = (self.final / page).parent
        return urllib.parse.quote(os.path.relpath(target, page_dir))


# ---- transients --------------------------------------------------------------------------------

def _sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    return (c.ra.to_string(unit=u.hourangle, sep=":", precision=1, pad=True),
            c.dec.to_string(unit=u.deg, sep=":", precision=0, alwayssign=True, pad=True))


def dedup_transients(root: Path) -> list[dict[str, Any]]:
    """Candidates of every candidates.csv under `root`, merged when the same Stokes and interval put
    them within one restoring beam (the larger BMAJ of their images) of each other."""
    rows: list[dict[str, Any]] = []
    beams: dict[str, float] = {}
    for csv_path in walk(root, CANDIDATES.glob):
        try:
            df = pd.read_csv(csv_path)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        where = "wideband" if "Wideband" in csv_path.relative_to(root).parts else "subband"
        for rec in df.to_dict("records"):
            ra, dec = parse_angle_deg(rec.get("ra"), ra=True), parse_angle_deg(rec.get("dec"), ra=False)
            if ra is None or dec is None:
                continue
            img = str(rec.get("image", ""))
            if img not in beams:
                try:
                    beams[img] = float(fits.getheader(img).get("BMAJ", 0) or 0)
                except (OSError, ValueError):
                    beams[img] = 0.0
            for key in ("cutout", "png"):
                p = rec.get(key)
                if isinstance(p, str) and p and not Path(p).is_absolute():
                    rec[key] = str(csv_path.parent / p)
            rows.append({**rec, "ra_deg": ra, "dec_deg": dec, "beam_deg": beams[img], "where": where,
                         "label": str(rec.get("subband", "")) or where})
    rows.sort(key=lambda r: -float(r.get("snr") or 0))
    groups: list[dict[str, Any]] = []
    for r in rows:
        for g in groups:
            lead = g["lead"]
            if (lead.get("stokes"), lead.get("interval")) != (r.get("stokes"), r.get("interval")):
                continue
            d = math.degrees(math.acos(min(1.0, math.sin(math.radians(lead["dec_deg"])) * math.sin(math.radians(
                r["dec_deg"])) + math.cos(math.radians(lead["dec_deg"])) * math.cos(math.radians(r["dec_deg"]))
                * math.cos(math.radians(lead["ra_deg"] - r["ra_deg"])))))
            if d <= max(lead["beam_deg"], r["beam_deg"]) > 0:
                g["members"].append(r)
                break
        else:
            groups.append({"lead": r, "members": [r]})
    out = []
    for g in groups:
        lead = g["lead"]
        ra_s, dec_s = _sexagesimal(lead["ra_deg"], lead["dec_deg"])
        out.append({**lead, "ra_hms": ra_s, "dec_dms": dec_s, "seen_in": sorted({m["label"] for m in g["members"]}),
                    "members": g["members"]})
    return out


# ---- targets -----------------------------------------------------------------------------------

def _photometry_tables(root: Path) -> dict[str, list[Path]]:
    by_name: dict[str, list[Path]] = defaultdict(list)
    for p in walk(root, PHOTOMETRY.glob):
        by_name[PHOTOMETRY.subject(p)].append(p)
    return dict(sorted(by_name.items()))


_PHOT_SHOWN = ("subband", "freq_mhz", "interval", "stokes", "flux_jy", "snr", "detected", "I_peak_jy", "I_rms_jy",
               "I_snr", "V_peak_jy", "V_rms_jy", "V_snr", "I_note", "V_note")


# ---- run facts ---------------------------------------------------------------------------------

def _run_facts(run: RunQA) -> dict[str, Any]:
    plan = {}
    for p in (run.root / "plan.json", run.root.parent / "plan.json"):
        if p.is_file():
            try:
                plan = json.loads(p.read_text())
            except (OSError, ValueError):
                pass
            break
    hour = next((h for h in plan.get("hours", []) if h.get("label") == run.hour), None)
    lst = (f"{hour['lst_start_h']:.3f} h - {hour['lst_end_h']:.3f} h" if hour and "lst_start_h" in hour
           else run.state.get("range", run.hour))
    dates = sorted(str(im.header.get("DATE-OBS", "")) for im in run.images if im.header.get("DATE-OBS"))
    ends = sorted(str(im.header.get("DATE-END", "")) for im in run.images if im.header.get("DATE-END"))
    ghash = git_hash()
    return {"run": str(run.root), "hour": run.hour, "date": run.state.get("date", dates[0][:10] if dates else ""),
            "lst": lst, "data_span": f"{dates[0]} - {ends[-1]}" if dates and ends else "",
            "subbands": ", ".join(run.subbands) or "none", "mode": run.state.get("mode", ""),
            "version": f"{tool_version('lwa-stack')}{' (git ' + ghash + ')' if ghash else ''}",
            "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _commands(run: RunQA) -> str:
    lines = ["#!/usr/bin/env bash", f"# Every step of the run {run.root} ({run.hour}) in order, as the driver ran it.",
             "# Replay one step by hand by copying its line; each step's log is next to it.",
             "# (Without --bp-table the driver copies the input MS into <subband>/ms/ first: cp -r.)",
             "set -euo pipefail", ""]
    for sb in run.subbands:
        lines.append(f"# ---- {sb}")
        for stage in SUBBAND_STAGES:
            sc = run.get(stage, sb)
            for st in sc.steps if sc else []:
                if st.command:
                    lines.append(f"# {st.name}: {st.status}" + (f", {st.wall_s:.0f} s" if st.wall_s is not None else ""))
                    lines.append(st.command)
        lines.append("")
    lines.append("# ---- aggregation")
    for stage in RUN_STAGES:
        sc = run.get(stage, "run")
        for st in sc.steps if sc else []:
            if st.command:
                lines.append(f"# {st.name}: {st.status}")
                lines.append(st.command)
    rep = run.root / "logs" / "report.log"
    if rep.is_file() and (first := rep.read_text(errors="replace").splitlines()[:1]) and first[0].startswith("$ "):
        lines += ["# report", first[0][2:]]
    return "\n".join(lines) + "\n"


def _log_tail(path: Path, n: int = 150) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines if len(lines) <= n else [f"... ({len(lines) - n} lines above: open the log)", *lines[-n:]])


def _previews(run: RunQA, out: Path, old: Path | None) -> dict[Path, Path]:
    """Preview PNG per science image (not snapshots); reused from the previous weblog when newer."""
    done: dict[Path, Path] = {}
    for im in run.images:
        if im.info.category not in ("deep", "10min", "stack", "diff"):
            continue
        rel = im.path.relative_to(run.root)
        name = Path("previews") / (str(rel.with_suffix("")).replace(os.sep, "__") + ".png")
        target = out / name
        prev = old / name if old else None
        try:
            if prev and prev.is_file() and prev.stat().st_mtime >= im.path.stat().st_mtime:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(prev, target)
            else:
                image_preview(im.path, target)
            done[im.path] = target
        except (OSError, ValueError, LwaError) as err:
            log.warning("weblog: no preview of %s: %s", im.path, err)
    return done


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("lwa_stack", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.globals["colour"] = score_colour
    env.globals["COLOURS"] = SCORE_COLOURS
    return env


def _page_name(sc: Score) -> str:
    return f"stages/{sc.subband}_{sc.stage}.html"


def build_weblog(rundir: str | Path, *, output: str | Path, cfg: Config, overwrite: bool = False,
                 title: str | None = None, db_url: str | None = None) -> tuple[Path, RunQA, dict[str, Any]]:
    """Write the weblog folder; return (index.html, the run's QA, the gathered detections).

    With `db_url` (a products database, `lwa-db`), each target page also shows the target's
    lightcurves across every night ingested there (`lwa-db lightcurve`, run as a command: lwa-stack
    does not import another tool)."""
    root = Path(rundir).resolve()
    if not root.is_dir():
        raise LwaError(f"run folder not found: {root}")
    output = Path(output).resolve()
    if output.exists() and not overwrite:
        raise LwaError(f"output exists: {output} (use --overwrite to replace it)")
    if output.exists() and not (output / "index.html").exists() and any(output.iterdir()):
        raise LwaError(f"{output} is a non-empty folder that is not a weblog; give another -o")
    run = collect_run(root, cfg=cfg)
    summary = gather([root])
    title = title or f"lwa-pipe weblog: {root.parent.name}/{root.name}"
    with atomic_path(output, directory=True) as tmp:
        tmp.mkdir()
        tmp.chmod(0o755)  # a weblog is meant to be served and shared
        _write(run, summary, tmp, output, cfg, title, db_url)
    log.info("wrote %s: %d pages, overall QA %s, %d red items", output / "index.html",
             len(list(output.rglob("*.html"))), _fmt(run.overall), sum(len(s.items) for s in run.scores))
    return output / "index.html", run, summary


class _Render:
    """Renders one weblog page from its template (links relative to the page, written into `out`)."""

    def __init__(self, out: Path, final: Path, common: dict[str, Any]) -> None:
        self.out, self.env, self.link, self.common = out, _env(), _Linker(out, final), common

    def __call__(self, page: str, template: str, **ctx: Any) -> None:
        depth = page.count("/")
        html = self.env.get_template(template).render(**self.common, **ctx, page=page, root="../" * depth,
                                                      href=lambda p, _page=page: self.link.href(p, _page))
        (self.out / page).parent.mkdir(parents=True, exist_ok=True)
        (self.out / page).write_text(html, encoding="utf-8")


def _stage_images(sc: Score, sb_images: dict[str, list]) -> list:
    """The images shown on a stage page (raw on imaging, PB-corrected on pbcor, dewarped on dewarp)."""
    images = sb_images.get(sc.subband, []) if sc.stage in ("imaging", "pbcor", "dewarp", "wideband") else []
    if sc.stage == "pbcor":
        return [im for im in images if im.info.pbcor]
    if sc.stage == "dewarp":
        return [im for im in images if im.info.dewarped]
    if sc.stage == "imaging":
        return [im for im in images if not im.info.pbcor and not im.info.dewarped]
    return images


def _stage_pages(render: _Render, run: RunQA, previews: dict, cfg: Config) -> None:
    out = render.out
    formulas = stage_formulas()
    sb_images = defaultdict(list)
    for im in run.images:
        if im.path in previews:
            sub = im.path.relative_to(run.root).parts[0]
            sb_images["run" if im.info.category == "stack" else sub].append(im)
    for sc in run.scores:
        plots = list(sc.plots)
        if sc.stage == "flag" and sc.subband in run.intervals:
            plots.insert(0, interval_flag_plot(run.intervals[sc.subband], out / "plots" / f"{sc.subband}_flag_intervals.png",
                                               limit_percent=100 * cfg.report.qa_interval_flagged_max))
        if sc.stage == "noise":
            p = noise_plot(run.noise[run.noise["subband"].astype(str) == sc.subband], out / "plots" / f"{sc.subband}_noise.png")
            plots += [p] if p else []
        movies = walk(run.root / sc.subband / "movies", "*.mp4") if sc.stage == "movie" and \
            (run.root / sc.subband / "movies").is_dir() else []
        render(_page_name(sc), "stage.html", sc=sc, formula=formulas.get(sc.stage, ""), plots=plots,
               images=[(im, previews[im.path]) for im in _stage_images(sc, sb_images)], movies=movies,
               tables=[(t, df.to_dict("records"), list(df.columns)) for t, df in sc.tables],
               logs={st.name: _log_tail(st.log) for st in sc.steps}, page_kind="stage")


def _read_photometry(paths: list[Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        try:
            frames.append(pd.read_csv(p).assign(source_file=str(p)))
        except (OSError, ValueError):
            continue
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _target_pages(render: _Render, run: RunQA, db_url: str | None) -> list[dict[str, Any]]:
    """One page per target (table, lightcurve, nights from the database); the targets list."""
    out = render.out
    tpages = []
    for name, paths in _photometry_tables(run.root).items():
        df = _read_photometry(paths)
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
        plot = lightcurve_plot(df, out / "plots" / f"lightcurve_{safe}.png", title=name) if len(df) else None
        cols = [c for c in _PHOT_SHOWN if c in df.columns]
        det = df["detected"].astype(str).str.lower().isin(["true", "1"]).sum() if "detected" in df.columns else 0
        kind = "solar-system body" if name.lower() in SOLAR_BODIES or any(
            "solar" in str(p).lower() for p in paths) else "target"
        pngs = sorted({q for p in paths for q in p.parent.glob("*.png")})
        page = f"targets/{safe}.html"
        tpages.append({"name": name, "kind": kind, "page": page, "rows": len(df), "detected": int(det)})
        nights = db_lightcurves(name, db_url, out / "plots" / "db" / safe) if db_url else []
        render(page, "target.html", name=name, kind=kind, plot=plot, columns=cols, rows=df[cols].to_dict("records"),
               csvs=paths, pngs=pngs, nights=nights, page_kind="target")
    render("targets.html", "targets.html", targets=tpages, page_kind="targets")
    return tpages


def _files_page(render: _Render, run: RunQA, final: Path) -> None:
    """Every file of the run (but the weblog itself, hidden files and MS contents); commands.sh."""
    files = defaultdict(list)
    for p in sorted(run.root.rglob("*")):
        rel = p.relative_to(run.root)
        if any(part.startswith(".") or part == final.name or part.endswith(".ms") or part == "ms"
               for part in rel.parts[:-1]) or rel.parts[0] == final.name or p.name.startswith("."):
            continue
        if p.is_file() or p.suffix == ".ms":
            files[str(rel.parent)].append(p)
    render("files.html", "files.html", files=dict(files), page_kind="files")
    (render.out / "commands.sh").write_text(_commands(run))
    (render.out / "commands.sh").chmod(0o755)


def _stage_walls(run: RunQA) -> list[dict[str, Any]]:
    walls = []
    for stage, (stitle, _) in {**SUBBAND_STAGES, **RUN_STAGES}.items():
        per = {s.subband: s.wall_s for s in run.scores if s.stage == stage and s.wall_s is not None}
        if per:
            walls.append({"stage": stage, "title": stitle, "per": per, "total": sum(per.values())})
    return walls


def _write(run: RunQA, summary: dict[str, Any], out: Path, final: Path, cfg: Config, title: str,
           db_url: str | None = None) -> None:
    render = _Render(out, final, {"title": title, "facts": _run_facts(run)})
    previews = _previews(run, out, final if final.exists() else None)
    _stage_pages(render, run, previews, cfg)
    groups = defaultdict(list)
    for im in sorted(run.images, key=lambda i: str(i.path)):
        if im.path in previews:
            groups[im.path.relative_to(run.root).parts[0]].append((im, previews[im.path]))
    movies = walk(run.root, "*.mp4")
    render("images.html", "images.html", groups=dict(sorted(groups.items())), movies=movies, page_kind="images")
    cands = dedup_transients(run.root)
    render("transients.html", "transients.html", cands=cands, page_size=25, page_kind="transients")
    tpages = _target_pages(render, run, db_url)
    nplot = noise_plot(run.noise, out / "plots" / "thermal_noise.png")
    render("noise.html", "noise.html", plot=nplot, rows=run.noise.to_dict("records"), columns=list(run.noise.columns),
           csvs=walk(run.root, THERMAL_NOISE.glob), page_kind="noise")
    _files_page(render, run, final)
    render("index.html", "index.html", run=run, sub_stages=SUBBAND_STAGES, run_stages=RUN_STAGES,
           page_for=_page_name, items=[(s, it) for s in run.scores for it in s.items], walls=_stage_walls(run),
           summary=summary, n_cands=len(cands), n_targets=len(tpages), n_images=len(previews),
           n_movies=len(movies), overall=run.overall,
           detections=[p for p in walk(run.root, f"{DETECTIONS_SUMMARY.stem}.*")], page_kind="index")


def db_lightcurves(name: str, db_url: str, outdir: Path) -> list[dict[str, Path]]:
    """Stokes I and V lightcurves of `name` across the nights in the products database (`lwa-db
    lightcurve`): [{"stokes", "png", "csv"}]; none (with a WARNING) when lwa-db is not installed or
    the database does not know the source."""
    exe = shutil.which("lwa-db") or str(Path(sys.executable).parent / "lwa-db")
    found = []
    names = [name, name.replace("_", " ")] if "_" in name else [name]  # photometry folders use "_" for " "
    for stokes in ("I", "V"):
        for query in names:
            cmd = [exe, "lightcurve", query, "--stokes", stokes, "--db", db_url, "-o", str(outdir), "--overwrite"]
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
            except OSError as err:
                log.warning("no lightcurves across nights for %s: %s", name, err)
                return []
            if res.returncode == 0:
                break
        if res.returncode != 0:
            log.warning("no Stokes %s lightcurve across nights for %s: %s", stokes, name,
                        (res.stderr.strip().splitlines() or ["lwa-db failed"])[-1])
            continue
        log.info("lightcurve across nights: %s", shlex.join(cmd))
        pngs = sorted(outdir.glob(f"*_{stokes}*_lightcurve.png"))
        csvs = sorted(outdir.glob(f"*_{stokes}*_lightcurve.csv"))
        if pngs:
            found.append({"stokes": stokes, "png": pngs[-1], "csv": csvs[-1] if csvs else None})
    return found


def build_report(rundir: str | Path, *, output: str | Path, cfg: Config, overwrite: bool = False,
                 title: str | None = None) -> tuple[Path, list[Score], dict[str, Any]]:
    """`build_weblog`, returning (index.html, the stage scores, the gathered detections)."""
    index, run, summary = build_weblog(rundir, output=output, cfg=cfg, overwrite=overwrite, title=title)
    return index, run.scores, summary


def text_summary(scores: Sequence[Score], summary: dict[str, Any], *, link: str = "") -> str:
    """Plain-text part of the e-mail: the weblog's address, the QA table, the red items, detections."""
    lines = [f"Weblog: {link}", ""] if link else []
    lines.append("QA scores (>= 0.9 green, >= 0.66 blue, >= 0.33 yellow, else red):")
    lines += [f"  {s.subband:<8} {s.stage:<16} {s.label:<8} {s.detail}" for s in scores]
    red = [f"  {s.subband} {s.stage}: {it}" for s in scores for it in s.items]
    if red:
        lines += ["Red items:", *red]
    lines.append(f"Detections: {summary['n_detections']}")
    lines += [f"  {d['kind']}: {d['name']} {_fmt(d.get('subband'))} {_fmt(d.get('flux_jy'))}"
              for d in summary["detections"][:50]]
    return "\n".join(lines)


def html_summary(scores: Sequence[Score], summary: dict[str, Any], *, link: str, title: str) -> str:
    """HTML part of the e-mail: a link to the weblog and the summary table."""
    return _env().get_template("email.html").render(scores=scores, summary=summary, link=link, title=title)
