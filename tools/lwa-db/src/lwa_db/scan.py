"""Read one run folder into records, validating everything before the database is touched.

A run is one LST hour of one night as `bin/run_hour.sh` leaves it (`WORKDIR/<hour>/`): subband
folders (`55MHz/images`, `snapshots`, `photometry`, `solar`, `transients`, `qa`, `dewarp`), the
aggregation's `Wideband/` (stacks, `transients/`, `solar/`), `qa/flux_check.csv` and `summary/`.
What is read, by content and never by file name alone:

| product | read from | becomes |
|---|---|---|
| FITS image, stack, snapshot, screen, cutout | the self-describing header (docs/ARCHITECTURE.md); science images and stacks also their robust RMS (MAD of the inner half) and footprint | `images` |
| `*_photometry.csv` (lwa-cutout targets / solar-system) | per row and Stokes: `{S}_fit_*`, `{S}_peak_jy`, `{S}_cat_jy`, `{S}_rms_jy`, `{S}_snr`, `{S}_detected` | `measurements` kind `target` / `solar_system` |
| `candidates.csv` (lwa-transient search, per subband and wideband) | `stokes`, `interval`, `ra`, `dec`, `peak_jy`, `rms_jy`, `snr`, `class`, `image` (its `MJD-MID`) | `measurements` kind `transient` |
| `flux_check.csv` (lwa-cutout flux-check) | `calibrator`, `measured_jy`, `ratio`, `ratio_err` | `measurements` kind `flux_check` and `qa` |
| `qa/*.json`, lwa-flag's `*.flag-*.json` summaries | every top-level number (e.g. `flagged_percent_after`) | `qa` |
| `state.json` of the work folder, the tools' HISTORY stamps, `LWAVER` | | `runs.provenance` |

A run is refused (LwaError, nothing written) when a FITS file is unreadable or truncated, a
product lacks a keyword the database needs, a CSV cannot be parsed or lacks a needed column, a
candidate's image is missing, an atomic write is still in progress (`.*.tmp` or `.wsclean-*`
folders), or the folder holds no product at all.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std

from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane
from lwa_common.io import write_in_progress
from lwa_common.products import CANDIDATES, DETECTIONS_SUMMARY, FLUX_CHECK, PHOTOMETRY

__all__ = ["RunRecords", "scan_run", "run_folders", "truthy", "PHOTOMETRY_NEEDS", "CANDIDATE_NEEDS"]

log = logging.getLogger(__name__)

IMAGE_NEEDS = ("STOKES", "IMGCAT", "SUBBAND", "FREQMHZ", "MJD-MID", "BMAJ")
PHOTOMETRY_NEEDS = PHOTOMETRY.required
CANDIDATE_NEEDS = CANDIDATES.required
FLUX_CHECK_NEEDS = FLUX_CHECK.required
_HISTORY_TOOLS = ("lwa-image", "lwa-dewarp", "lwa-stack", "lwa-cutout", "lwa-transient", "wsclean")


@dataclass
class RunRecords:
    """Everything of one run, as plain dicts ready for the database (paths relative to the run)."""

    name: str
    path: str
    hour: str
    content_hash: str
    images: list[dict[str, Any]] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    qa: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def mjd_range(self) -> tuple[float | None, float | None]:
        mjds = [m for m in (r.get("mjd_mid") for r in self.images) if m is not None]
        mjds += [m["mjd"] for m in self.measurements if m.get("mjd") is not None]
        return (min(mjds), max(mjds)) if mjds else (None, None)


def truthy(value: Any) -> bool:
    """True/1/yes (any case); blank, NaN, False, 0 are false."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "t", "1", "yes", "y")


def _float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _walk(root: Path, suffix: str) -> list[Path]:
    """Files ending in `suffix` under `root`; hidden entries and Measurement Sets (`*.ms`) skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(".ms"))
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(suffix) and not f.startswith(".")]
    return out


def _unfinished(root: Path) -> Path | None:
    """A folder of a write still in progress (`lwa_common.io.write_in_progress`)."""
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            if write_in_progress(d):
                return Path(dirpath) / d
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(".ms")]
    return None


def run_folders(path: Path) -> list[Path]:
    """The run folders of `path`: itself when it holds products, else its hour folders (a work folder)."""
    path = Path(path)
    if not path.is_dir():
        raise LwaError(f"run folder not found: {path}")
    if (path / "state.json").exists() or (path / "plan.json").exists():
        hours = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                       and p.name not in ("jobs",) and _has_products(p))
        if hours:
            return hours
    return [path]


def _has_products(folder: Path) -> bool:
    return any(True for _ in _walk(folder, ".fits")) or any(True for _ in _walk(folder, ".csv"))


# ---------------------------------------------------------------- FITS
def _fits_header(path: Path) -> tuple[fits.Header, int, int]:
    """Primary header, data offset and data size; LwaError if unreadable or truncated."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                header = hdul[0].header.copy()
                info = hdul.fileinfo(0)
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise LwaError(f"corrupt FITS file {path}: {err}") from None
    size = path.stat().st_size
    if info["datLoc"] + info["datSpan"] > size:
        raise LwaError(f"truncated FITS file {path}: {size} bytes, header and data need "
                       f"{info['datLoc'] + info['datSpan']} (partial write?)")
    return header, info["datLoc"], info["datSpan"]


def _robust_rms(path: Path) -> float | None:
    """MAD-based standard deviation of the inner half of the image (NaN-aware)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=True) as hdul:
                plane = image_plane(hdul[0].data)
                ny, nx = plane.shape
                inner = np.asarray(plane[ny // 4: ny - ny // 4, nx // 4: nx - nx // 4], dtype=np.float64)
    except (OSError, ValueError, TypeError) as err:
        raise LwaError(f"corrupt FITS data in {path}: {err}") from None
    if not np.isfinite(inner).any():
        return None
    rms = float(mad_std(inner, ignore_nan=True))
    return rms if math.isfinite(rms) and rms > 0 else None


def _footprint(header: fits.Header) -> tuple[float | None, float | None, float | None]:
    """Centre (deg) and radius (deg) of the sky an image covers (SIN: clipped at the horizon)."""
    try:
        w = celestial_wcs(header)
        nx, ny = int(header["NAXIS1"]), int(header["NAXIS2"])
        ra, dec = (float(v) for v in w.wcs_pix2world([[(nx - 1) / 2, (ny - 1) / 2]], 0)[0])
        half = 0.5 * min(nx * abs(float(header["CDELT1"])), ny * abs(float(header["CDELT2"])))
    except (KeyError, ValueError, TypeError):
        return None, None, None
    if str(header.get("CTYPE1", "")).endswith("-SIN"):
        half = math.degrees(math.asin(min(1.0, math.radians(half))))
    return ra, dec, min(half, 180.0)


def _product(header: fits.Header) -> str | None:
    if "CANDNAME" in header or "CUTOUT" in header:
        return "cutout"
    cat = str(header.get("IMGCAT", "")).strip()
    if not cat:
        return None
    return {"screen": "screen", "stack": "stack", "snapshot": "snapshot"}.get(cat, "image")


def _image_record(path: Path, root: Path, header: fits.Header) -> dict[str, Any] | None:
    product = _product(header)
    if product is None:
        log.debug("%s has no IMGCAT: not a lwa-pipe product, not registered", path)
        return None
    if product in ("image", "stack"):
        missing = [k for k in IMAGE_NEEDS if k not in header]
        if missing:
            raise LwaError(f"image {path} lacks header keyword(s) {', '.join(missing)} "
                           "(see docs/ARCHITECTURE.md: self-describing images)")
    wideband = product == "stack" or str(header.get("STKCAT", "")).strip() != ""
    subband = str(header.get("SUBBAND", "")).strip() or None
    band = str(header.get("BAND", "")).strip() or subband
    ra, dec, radius = _footprint(header) if product in ("image", "stack", "snapshot") else (None, None, None)
    rms = _robust_rms(path) if product in ("image", "stack", "snapshot") else None
    return {
        "path": str(path.relative_to(root)), "product": product,
        "stokes": str(header.get("STOKES", "")).strip() or None,
        "imgcat": str(header.get("IMGCAT", "")).strip() or None,
        "interval": str(header.get("INTERVAL", "")).strip() or None,
        "nintervl": _int(header.get("NINTERVL")),
        "config": str(header.get("CONFIG", "")).strip() or None,
        "role": str(header.get("STKROLE", "")).strip() or None,
        "robust": _float(header.get("ROBUST")), "taper": _float(header.get("TAPER")),
        "pbcor": bool(header.get("PBCOR", False)), "dewarped": bool(header.get("DEWARPED", False)),
        "subband": subband, "band": band, "wideband": wideband,
        "freq_mhz": _float(header.get("FREQMHZ")),
        "date_obs": str(header.get("DATE-OBS", "")).strip() or None,
        "date_end": str(header.get("DATE-END", "")).strip() or None,
        "mjd_mid": _float(header.get("MJD-MID")),
        "bmaj_deg": _float(header.get("BMAJ")), "bmin_deg": _float(header.get("BMIN")),
        "bpa_deg": _float(header.get("BPA")), "rms_jy": rms,
        "ra_deg": ra, "dec_deg": dec, "radius_deg": radius,
        "lwaver": str(header.get("LWAVER", "")).strip() or None,
    }


def _int(value: Any) -> int | None:
    x = _float(value)
    return int(x) if x is not None else None


def _history_tools(header: fits.Header) -> dict[str, str]:
    """The provenance stamps of a header: tool -> its first HISTORY line."""
    out: dict[str, str] = {}
    for line in header.get("HISTORY", []):
        text = str(line)
        for tool in _HISTORY_TOOLS:
            if text.startswith(tool) and tool not in out:
                out[tool] = text[:200]
    return out


# ---------------------------------------------------------------- CSVs
def _read_csv(path: Path, needs: tuple[str, ...], what: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LwaError(f"cannot read {what} {path}: {err}") from None
    if not columns and not rows:
        raise LwaError(f"{what} {path} is empty (no header line: partial write?)")
    missing = [c for c in needs if c not in columns]
    if missing:
        raise LwaError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise LwaError(f"{what} {path}, line {i}: wrong number of cells (truncated file?)")
    return rows


def _extra(row: dict[str, str], used: set[str]) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in used and v not in ("", None)})


def _photometry_rows(path: Path, root: Path, cfg: Config) -> list[dict[str, Any]]:
    rows = _read_csv(path, PHOTOMETRY_NEEDS, "photometry table")
    default = PHOTOMETRY.subject(path)
    solar = any("solar" in p.lower() for p in path.relative_to(root).parts[:-1])
    out = []
    for i, row in enumerate(rows, start=2):
        name = PHOTOMETRY.value(row, "name", default)
        mjd = _float(row["mjd_mid"])
        ra, dec = _float(row["pos_ra_deg"]), _float(row["pos_dec_deg"])
        if mjd is None or ra is None or dec is None:
            raise LwaError(f"photometry table {path}, line {i}: no mjd_mid / position")
        beam = _float(row.get("beam_major_arcsec"))
        interval = row["interval"].strip()
        for stokes in ("I", "V"):
            if f"{stokes}_rms_jy" not in row:
                continue
            detected = truthy(row.get(f"{stokes}_detected", ""))
            rms = _float(row[f"{stokes}_rms_jy"])
            diff = stokes == "I" and row.get("I_kind", "").strip() not in ("", "deep")
            if detected:
                fit = _float(row.get(f"{stokes}_fit_flux_jy" if stokes == "I" else f"{stokes}_fit_peak_jy"))
                flux = fit if fit is not None else _float(row.get(f"{stokes}_peak_jy"))
            else:
                flux = _float(row.get(f"{stokes}_cat_jy"))
            if flux is None and rms is None:
                continue  # no image for this cell ("no image" note)
            used = {c for c in row if c.startswith(f"{stokes}_")}
            out.append({
                "kind": "solar_system" if solar else "target", "name": name, "stokes": stokes,
                "subband": row["subband"].strip(), "band": row["subband"].strip(), "wideband": False,
                "freq_mhz": _float(row.get("freq_mhz")), "interval": interval, "difference": diff,
                "mjd": mjd, "ra_deg": ra, "dec_deg": dec,
                "beam_deg": beam / 3600.0 if beam is not None else None,
                "flux_jy": flux, "flux_err_jy": rms, "snr": _float(row.get(f"{stokes}_snr")),
                "detected": detected,
                "upper_limit_jy": None if detected or rms is None else cfg.cutout.detection_sigma * rms,
                "klass": None, "image_path": row.get(f"{stokes}_image", ""),
                "source_file": str(path.relative_to(root)),
                "extra": _extra(row, used | {"subband", "freq_mhz", "interval", "mjd_mid", "pos_ra_deg",
                                             "pos_dec_deg"}),
            })
    return out


def _by_name(index: dict[Path, dict[str, Any]]) -> dict[str, Path]:
    """File name -> path of the run's images whose name is unique in the run (for moved runs)."""
    seen: dict[str, list[Path]] = {}
    for p in index:
        seen.setdefault(p.name, []).append(p)
    return {name: paths[0] for name, paths in seen.items() if len(paths) == 1}


def _locate(cell: str, csv_path: Path, root: Path, index: dict[Path, dict[str, Any]],
            names: dict[str, Path]) -> Path:
    """The image a CSV cell names: as written (absolute, or relative to the CSV, the run or the cwd),
    else the run's image of that file name (a run moved or archived since, or run from another folder)."""
    path = _resolve(cell, csv_path, root)
    if path in index or path.exists():
        return path
    return names.get(Path(cell).name, path)


def _candidate_rows(path: Path, root: Path, image_index: dict[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = _read_csv(path, CANDIDATE_NEEDS, "candidates table")
    names = _by_name(image_index)
    rel = str(path.relative_to(root))
    extra_used = {*CANDIDATE_NEEDS, "jname", "class", "subband", "freq_mhz"}
    out = []
    headers: dict[Path, dict[str, Any]] = {}
    for i, row in enumerate(rows, start=2):
        image = _locate(row["image"], path, root, image_index, names)
        rec = image_index.get(image) or headers.get(image)
        if rec is None:
            if not image.exists():
                raise LwaError(f"candidates table {path}, line {i}: image {row['image']} not found (partial run?)")
            header = _fits_header(image)[0]
            rec = {"mjd_mid": _float(header.get("MJD-MID")), "bmaj_deg": _float(header.get("BMAJ")),
                   "wideband": str(header.get("IMGCAT", "")) == "stack",
                   "band": str(header.get("BAND", "") or header.get("SUBBAND", "")) or None}
            headers[image] = rec
        ra, dec = _float(row["ra"]), _float(row["dec"])
        if ra is None or dec is None:
            raise LwaError(f"candidates table {path}, line {i}: no position")
        subband = row.get("subband", "").strip() or rec.get("band")
        out.append({
            "kind": "transient", "name": row.get("jname", "").strip() or None, "stokes": row["stokes"].strip(),
            "subband": subband, "band": rec.get("band") or subband, "wideband": bool(rec.get("wideband")),
            "freq_mhz": _float(row.get("freq_mhz")), "interval": row["interval"].strip(), "difference": False,
            "mjd": rec.get("mjd_mid"), "ra_deg": ra, "dec_deg": dec, "beam_deg": rec.get("bmaj_deg"),
            "flux_jy": _float(row["peak_jy"]), "flux_err_jy": _float(row["rms_jy"]), "snr": _float(row["snr"]),
            "detected": True, "upper_limit_jy": None, "klass": row.get("class", "").strip() or None,
            "image_path": str(image), "source_file": rel, "extra": _extra(row, extra_used),
        })
    return out


def _flux_check_rows(path: Path, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = _read_csv(path, FLUX_CHECK_NEEDS, "flux-check table")
    meas, qa_rows = [], []
    for row in rows:
        ratio = _float(row["ratio"])
        measured = _float(row["measured_jy"])
        err = _float(row.get("ratio_err"))
        meas.append({
            "kind": "flux_check", "name": row["calibrator"].strip(), "stokes": "I",
            "subband": row["subband"].strip(), "band": row["subband"].strip(), "wideband": False,
            "freq_mhz": _float(row.get("freq_mhz")), "interval": "deep", "difference": False,
            "mjd": _float(row.get("mjd_mid")), "ra_deg": _float(row.get("ra_deg")), "dec_deg": _float(row.get("dec_deg")),
            "beam_deg": None, "flux_jy": measured,
            "flux_err_jy": measured * err / ratio if measured is not None and err is not None and ratio else None,
            "snr": _float(row.get("snr")), "detected": measured is not None, "upper_limit_jy": None,
            "klass": None, "image_path": row.get("image", ""), "source_file": str(path.relative_to(root)),
            "extra": _extra(row, set(FLUX_CHECK_NEEDS)),
        })
        qa_rows.append({"subband": row["subband"].strip(), "kind": "flux_ratio", "name": row["calibrator"].strip(),
                        "value": ratio, "extra": json.dumps({"ratio_err": err, "model_jy": row.get("model_jy")})})
    return meas, qa_rows


def _qa_json(path: Path, root: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LwaError(f"corrupt QA file {path}: {err}") from None
    if not isinstance(data, dict):
        return []
    subband = next((p for p in path.relative_to(root).parts if p.endswith("MHz")), None)
    kind = path.stem.split(".", 1)[1] if ".flag-" in path.name else path.stem  # 55MHz-10h.flag-rfi -> flag-rfi
    return [{"subband": subband, "kind": kind, "name": str(k), "value": float(v), "extra": None}
            for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


@functools.lru_cache(maxsize=4096)
def _resolve(value: str, csv_path: Path, root: Path) -> Path:
    """An image path of a CSV cell: absolute, or relative to the CSV's folder, the run or the cwd."""
    p = Path(value)
    if p.is_absolute():
        return p.resolve()
    for base in (csv_path.parent, root, Path.cwd()):
        if (base / p).exists():
            return (base / p).resolve()
    return (csv_path.parent / p).resolve()


# ---------------------------------------------------------------- one run
def scan_run(folder: str | Path, *, cfg: Config, name: str | None = None) -> RunRecords:
    """Every product of one run folder, validated; LwaError on anything corrupt or partial."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise LwaError(f"run folder not found: {folder}")
    busy = _unfinished(root)
    if busy is not None:
        raise LwaError(f"run {root} is being written ({busy} is an unfinished atomic write): "
                       "ingest it when its step has finished")
    digest = hashlib.sha256()
    image_recs: list[dict[str, Any]] = []
    index: dict[Path, dict[str, Any]] = {}
    history: dict[str, str] = {}
    versions: set[str] = set()
    for path in _walk(root, ".fits"):
        header, offset, span = _fits_header(path)
        rec = _image_record(path, root, header)
        digest.update(f"{path.relative_to(root)}:{offset + span}:".encode() + header.tostring().encode())
        if rec is None:
            continue
        image_recs.append(rec)
        index[path.resolve()] = rec
        if rec["product"] in ("image", "stack"):
            for tool, line in _history_tools(header).items():
                history.setdefault(tool, line)
        if rec["lwaver"]:
            versions.add(rec["lwaver"])
    meas: list[dict[str, Any]] = []
    qa_rows: list[dict[str, Any]] = []
    csvs = _walk(root, ".csv")
    for path in csvs:
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
        if PHOTOMETRY.matches(path):
            meas += _photometry_rows(path, root, cfg)
        elif CANDIDATES.matches(path):
            meas += _candidate_rows(path, root, index)
        elif FLUX_CHECK.matches(path):
            m, q = _flux_check_rows(path, root)
            meas += m
            qa_rows += q
    for path in _walk(root, ".json"):
        if "qa" in path.relative_to(root).parts[:-1] or ".flag-" in path.name:
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
            qa_rows += _qa_json(path, root)
    if not image_recs and not meas:
        raise LwaError(f"run {root} holds no product (no lwa-pipe FITS image, photometry or candidates table)")
    csv_paths = {str(p.relative_to(root)): p for p in csvs}
    names = _by_name(index)
    for m in meas:
        cell = m.pop("image_path") or ""
        rec = index.get(_locate(cell, csv_paths[m["source_file"]], root, index, names)) if cell else None
        m["image_path"] = rec["path"] if rec else None
        if rec is not None and rec["wideband"]:  # photometry on a stack: its band, not a subband
            m["wideband"], m["band"] = True, rec["band"] or m["band"]
    dates = sorted(d for d in (r.get("date_obs") for r in image_recs) if d)
    if name is None:
        day = dates[0][:10].replace("-", "") if dates else None
        if day is None:
            raise LwaError(f"run {root}: no DATE-OBS in any image to name the run; give --run-name")
        name = f"{day}-{root.name}"
    state = root.parent / "state.json"
    provenance: dict[str, Any] = {"tools": history, "lwaver": sorted(versions), "files": {
        "fits": len(image_recs), "csv": len(csvs)}}
    if state.exists():
        try:
            provenance["state"] = json.loads(state.read_text())
        except (OSError, ValueError):
            log.warning("unreadable %s: run provenance without it", state)
    for extra in ("weblog/index.html", f"summary/{DETECTIONS_SUMMARY.file_name()}"):
        if (root / extra).exists():
            provenance.setdefault("products", []).append(extra)
    records = RunRecords(name=name, path=str(root), hour=root.name, content_hash=digest.hexdigest(),
                         images=image_recs, measurements=meas, qa=qa_rows, provenance=provenance)
    ends = sorted(d for d in (r.get("date_end") for r in image_recs) if d)
    records.provenance["date_obs"] = dates[0] if dates else None
    records.provenance["date_end"] = ends[-1] if ends else None
    log.info("run %s (%s): %d FITS products, %d measurements, %d QA values", name, root, len(image_recs),
             len(meas), len(qa_rows))
    return records
