"""Archive a run's products into an archive root that accumulates night after night.

Every file a run archives lies under a path that names the run (`{run}`: `--run-name`, else the run
folder's name), so runs never share a file; the only shared files are the merged views, rebuilt from
every run's own files:

1. run-local: `runs/{run}/{path in the run}` -- every product file of the run (MS folders and hidden
   files excluded unless asked for).
2. samples: `samples/{sample}/{target}/{sb}/{run}/{file}` -- per target of the sample: its
   `{target}_photometry.csv` and the files beside it whose names start with `{target}` (cutout FITS,
   PNGs). `{sb}` is the file's FITS SUBBAND (a band name for wideband products), else the subband
   column of the photometry table when it holds one value, else the run's single subband, else `all`.
   Solar-system bodies (a table under a `solar` folder or named after a body, as `lwa_stack.gather`
   classifies them) are not sample targets, detected or not.
   `samples/{sample}/{target}/{target}_photometry.csv` merges every run's tables of the target (all
   nights, all subbands): one row per run and row of its table (subband and interval), the run named
   in the first column, sorted by `date_obs`.
3. detections: `detections/{kind}/{name}/{run}/{file}` for every gathered target or solar-system
   detection (the photometry table and the target's files), and `detections/transient/{run}/{folder}`
   -- the whole folder of every `candidates.csv` with at least one candidate (table, J-name folders,
   PNGs), its path relative to the run kept. `detections/detections.csv` lists every archived run's
   detections (the `lwa-stack gather` columns, `run` the archive's run name).

Every copy is written atomically (temporary file, then rename) and its sha256 is compared with the
source's before the rename; `manifests/{run}.json` lists every source file with its checksum and
copies (and the run's detections and observation start), and `manifests/{run}.sha256` is a
`sha256sum -c` file (run it from ROOT). The merged views are derived, so not in the manifests.

Reruns and several nights: re-archiving the same run is a no-op (no file rewritten); a destination
that differs is an error unless `overwrite`, which replaces (and, for files the run no longer has,
removes) only that run's files. A run name already archived for another observation (the earliest
FITS DATE-OBS differs) is refused even with `overwrite`: give the new run another name.

Concurrency: any number of runs may be archived into one root at once (e.g. 16 subbands of a
night, one run name each). Per-run files never collide; the merged views are rebuilt with
`lwa_common.state.converge_view` (rename-only, no lock: see that module for why), so no run's rows
are lost. Two processes archiving the *same* run name at once are not supported.
Sources are never deleted, except with `move`, and then only after every copy of that file has
been verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from astropy.io import fits

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.products import PHOTOMETRY
from lwa_common.state import converge_view, replace_bytes
from lwa_stack.gather import SUMMARY_COLUMNS, is_solar, scan_run

__all__ = ["sha256_file", "plan_archive", "archive_run", "verify_manifest", "ArchivePlan"]

log = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _safe(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9+\-_.]+", "_", str(name).strip()).strip("._")
    return text or "unnamed"


@dataclass
class ArchivePlan:
    run: str
    rundir: Path
    root: Path
    copies: dict[Path, list[Path]] = field(default_factory=lambda: defaultdict(list))
    observed: str = "unknown"
    detections: list[dict[str, Any]] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)

    def add(self, src: Path, dst_rel: Path) -> None:
        dst = self.root / dst_rel
        if dst not in self.copies[src]:
            self.copies[src].append(dst)


def _product_files(rundir: Path, *, include_ms: bool, exclude: Iterable[Path]) -> list[Path]:
    excluded = [e.resolve() for e in exclude]
    out = []
    for dirpath, dirnames, filenames in os.walk(rundir):
        d = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = (d / name).resolve()
            if name.startswith(".") or any(sub == e or e in sub.parents for e in excluded):
                continue
            if name.endswith(".ms") and not include_ms:
                continue
            keep.append(name)
        dirnames[:] = keep
        out += [d / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def _fits_subband(path: Path) -> str | None:
    if path.suffix.lower() not in (".fits", ".fit", ".fts"):
        return None
    try:
        header = fits.getheader(path)
    except (OSError, ValueError):
        return None
    value = header.get("SUBBAND") or header.get("BAND")
    return str(value) if value else None


def _table_subband(path: Path) -> str | None:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    for col in ("subband", "Subband", "SUBBAND"):
        if col in df.columns:
            vals = df[col].dropna().astype(str).unique()
            if len(vals) == 1:
                return vals[0]
    return None


def _run_subband(files: list[Path]) -> str | None:
    labels = set()
    for p in files:
        if p.suffix.lower() == ".fits":
            sb = _fits_subband(p)
            if sb and sb.endswith("MHz"):
                labels.add(sb)
    return labels.pop() if len(labels) == 1 else None


def _target_files(csv_path: Path, target: str) -> list[Path]:
    return sorted(p for p in csv_path.parent.iterdir()
                  if p.is_file() and p.name.startswith(target) and not p.name.startswith("."))


def _observed(files: list[Path]) -> str:
    """The run's observation start: its earliest FITS DATE-OBS (to the second), else 'unknown'."""
    stamps = []
    for p in files:
        if p.suffix.lower() not in (".fits", ".fit", ".fts"):
            continue
        try:
            value = fits.getheader(p).get("DATE-OBS")
        except (OSError, ValueError):
            continue
        if value:
            stamps.append(str(value)[:19])
    return min(stamps) if stamps else "unknown"


def plan_archive(rundir: str | Path, *, root: str | Path, sample: str, run_name: str | None = None,
                 include_ms: bool = False) -> ArchivePlan:
    """Every (source file -> destinations) of the three tiers; nothing is written."""
    rundir = Path(rundir).resolve()
    root = Path(root).resolve()
    if not rundir.is_dir():
        raise LwaError(f"run folder not found: {rundir}")
    if rundir == root or root in rundir.parents:
        raise LwaError(f"run folder {rundir} lies inside the archive root {root}")
    run = _safe(run_name or rundir.name)
    plan = ArchivePlan(run=run, rundir=rundir, root=root)
    files = _product_files(rundir, include_ms=include_ms, exclude=[root])
    if not files:
        raise LwaError(f"run folder {rundir} holds no product files to archive")
    plan.observed = _observed(files)
    for f in files:
        plan.add(f, Path("runs") / run / f.relative_to(rundir))

    detections, _ = scan_run(rundir)
    plan.detections = detections
    run_sb = _run_subband(files)
    for csv_path in (f for f in files if PHOTOMETRY.matches(f)):
        target = PHOTOMETRY.subject(csv_path)
        if is_solar(csv_path, rundir, target):
            continue
        table_sb = _table_subband(csv_path)
        plan.targets.add(_safe(target))
        for f in _target_files(csv_path, target):
            sb = _fits_subband(f) or table_sb or run_sb or "all"
            plan.add(f, Path("samples") / _safe(sample) / _safe(target) / _safe(sb) / run / f.name)

    cand_dirs = set()
    for det in detections:
        src = Path(det["source_file"])
        if det["kind"] == "transient":
            cand_dirs.add(src.parent)
            continue
        target = PHOTOMETRY.subject(src)
        for f in _target_files(src, target):
            plan.add(f, Path("detections") / det["kind"] / _safe(det["name"]) / run / f.name)
    for d in sorted(cand_dirs):
        for f in _product_files(d, include_ms=False, exclude=[root]):
            plan.add(f, Path("detections") / "transient" / run / d.relative_to(rundir) / f.relative_to(d))
    return plan


def _copy_verified(src: Path, dst: Path, digest: str) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
        got = sha256_file(tmp)
        if got != digest:
            raise LwaError(f"copy of {src} to {dst} does not verify (sha256 {got[:12]} != {digest[:12]})")


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise LwaError(f"archive manifest {path} is not JSON ({err})") from None


def _check_same_run(plan: ArchivePlan, old: dict[str, Any] | None) -> None:
    if old is None:
        return
    was = old.get("observed", "unknown")
    if "unknown" not in (was, plan.observed) and was != plan.observed:
        raise LwaError(f"run name '{plan.run}' is already archived for another observation (starting {was}; "
                       f"this run starts {plan.observed}): give this run another --run-name")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value.item() if hasattr(value, "item") else value


def archive_run(rundir: str | Path, *, root: str | Path, sample: str, run_name: str | None = None,
                move: bool = False, overwrite: bool = False, include_ms: bool = False) -> dict[str, Any]:
    """Copy the run into the archive tiers, verify, write the manifests, merge the views; the manifest."""
    plan = plan_archive(rundir, root=root, sample=sample, run_name=run_name, include_ms=include_ms)
    mdir = plan.root / "manifests"
    old = _read_manifest(mdir / f"{plan.run}.json")
    _check_same_run(plan, old)
    digests = {src: sha256_file(src) for src in plan.copies}
    conflicts = []
    todo: list[tuple[Path, Path]] = []
    for src, dsts in plan.copies.items():
        for dst in dsts:
            if dst.exists():
                if dst.is_dir():
                    raise LwaError(f"archive destination {dst} is a folder")
                if sha256_file(dst) == digests[src]:
                    continue
                if not overwrite:
                    conflicts.append(dst)
                    continue
            todo.append((src, dst))
    if conflicts:
        raise LwaError(f"{len(conflicts)} archive files of run {plan.run} differ from the run's (first: "
                       f"{conflicts[0]}); use --overwrite to replace them")
    for src, dst in todo:
        _copy_verified(src, dst, digests[src])
    n_copies = sum(len(d) for d in plan.copies.values())
    log.info("archived %d files of run %s: %d copies written, %d already present", len(plan.copies), plan.run,
             len(todo), n_copies - len(todo))

    manifest = {
        "run": plan.run, "source": str(plan.rundir), "sample": sample, "root": str(plan.root),
        "observed": plan.observed,
        "written": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "moved": move,
        "files": [{"source": str(src.relative_to(plan.rundir)), "sha256": digests[src], "size": src.stat().st_size,
                   "copies": [str(d.relative_to(plan.root)) for d in dsts]}
                  for src, dsts in sorted(plan.copies.items())],
        "detections": [{k: _plain(v) for k, v in d.items()} for d in plan.detections],
        "targets": sorted(plan.targets),
    }
    if old is not None and overwrite:  # copies the run had before and no longer has
        now = {c for f in manifest["files"] for c in f["copies"]}
        for rel in sorted({c for f in old.get("files", []) for c in f["copies"]} - now):
            (plan.root / rel).unlink(missing_ok=True)
            log.info("--overwrite: removed %s (no longer in run %s)", rel, plan.run)
    same = old is not None and {k: v for k, v in old.items() if k != "written"} == {
        k: v for k, v in json.loads(json.dumps(manifest)).items() if k != "written"}
    if same:
        manifest["written"] = old["written"]
    else:
        replace_bytes(mdir / f"{plan.run}.json", json.dumps(manifest, indent=1).encode())
    lines = [f"{digests[src]}  {d.relative_to(plan.root)}" for src, dsts in sorted(plan.copies.items()) for d in dsts]
    checksums = ("\n".join(lines) + "\n").encode()
    if not same or not (mdir / f"{plan.run}.sha256").is_file():
        replace_bytes(mdir / f"{plan.run}.sha256", checksums)
    _merge_views(plan.root, sample=_safe(sample), targets=plan.targets)

    if move:
        bad = verify_manifest(plan.root / "manifests" / f"{plan.run}.json")
        if bad:
            raise LwaError(f"not moving: {len(bad)} archived copies do not verify (first: {bad[0]})")
        for src in plan.copies:
            src.unlink()
        for dirpath, _, _ in sorted(os.walk(plan.rundir), key=lambda t: -len(t[0])):
            d = Path(dirpath)
            if d != plan.rundir and not any(d.iterdir()):
                d.rmdir()
        log.info("--move: removed %d verified source files from %s", len(plan.copies), plan.rundir)
    return manifest


def _visible(paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith(".") and p.is_file())


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def _render_target(tables: list[Path]) -> bytes:
    frames = []
    for path in tables:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as err:
            log.warning("merged table: skipped %s (%s)", path, err)
            continue
        run, sb = path.parent.name, path.parent.parent.name
        if "subband" not in df.columns:
            df.insert(0, "subband", sb)
        df.insert(0, "run", run)
        frames.append(df)
    if not frames:
        return b""
    merged = pd.concat(frames, ignore_index=True, sort=False).fillna("")
    keys = [c for c in ("date_obs", "run", "subband", "interval") if c in merged.columns]
    return _csv_bytes(merged.sort_values(keys, kind="stable"))


def _render_detections(manifests: list[Path]) -> bytes:
    rows = []
    for path in manifests:
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a manifest being replaced: its writer re-merges afterwards
        for det in manifest.get("detections", []):
            rows.append({**det, "run": manifest["run"], "observed": manifest.get("observed", "")})
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(("observed", *SUMMARY_COLUMNS, *(
        k for r in rows for k in r)))))
    return _csv_bytes(df.sort_values(["observed", "run", "kind", "name"], kind="stable"))


def _merge_views(root: Path, *, sample: str, targets: Iterable[str]) -> None:
    """Rebuild the per-target tables of `targets` and detections/detections.csv from every run's files."""
    for target in sorted(targets):
        folder = root / "samples" / sample / target
        converge_view(PHOTOMETRY.path(folder, target),
                      sources=lambda f=folder, t=target: _visible(f.glob(f"*/*/{PHOTOMETRY.file_name(t)}")),
                      render=_render_target)
    converge_view(root / "detections" / "detections.csv", sources=lambda: _visible((root / "manifests").glob("*.json")),
                  render=_render_detections)


def verify_manifest(manifest_path: str | Path) -> list[str]:
    """Destinations (relative to the root) whose sha256 no longer matches the manifest."""
    manifest_path = Path(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise LwaError(f"cannot read archive manifest {manifest_path}: {err}") from None
    root = Path(manifest["root"])
    bad = []
    for entry in manifest["files"]:
        for rel in entry["copies"]:
            p = root / rel
            if not p.is_file() or sha256_file(p) != entry["sha256"]:
                bad.append(rel)
    return bad
