"""Wideband stacks: inverse-variance weighted co-adds of per-subband images, per colour band.

Images are chosen by header (never by file name) and grouped by band (FREQMHZ in
`cfg.stack.bands_mhz`, lower edge inclusive: Red 18–41, Green 41–64, Blue 64–85 MHz), STOKES,
IMGCAT, INTERVAL, ROBUST and taper. Two families are stacked, both from images that are NOT
primary-beam corrected:

* transient stacks: tapered (TAPER > 0), Briggs 0, Stokes I and V, the deep image and every 10 min
  interval tag (one stack per tag), for the wideband transient search;
* science stacks: untapered (TAPER = 0) deep Stokes I, Briggs 0 and -0.75, for the 3-colour images.

Per subband the dewarped image (DEWARPED = T) is used when there is one; otherwise the undewarped
image, with a warning (dewarping may legitimately have been skipped for lack of anchors).

Stack: S = sum_i w_i x_i / sum_i w_i per pixel over the finite inputs only (a NaN pixel has weight 0,
a pixel NaN in every input stays NaN), with w_i = 1 / sigma_i^2 and sigma_i the measured thermal noise
(`lwa_stack.noise`). The expected noise sqrt(sum w_i^2 sigma_i^2) / sum w_i is written as STKRMS.
Images on a different grid from the run's reference grid (the most common one) are regridded with
`reproject.reproject_interp` (bilinear) first.

Output names (for people; tools read the headers)::

    Wideband_{Band}_{Pol}_{cat}_{Taper}_{Robust}[_{interval}].fits

`Band` Red/Green/Blue; `Pol` I/V; `cat` the inputs' IMGCAT (`deep` or `10min`); `Taper` the literal
`Taper` when TAPER > 0 else `NoTaper`; `Robust` `Robust-0`, `Robust-0.75` (`Robust-` and |robust| for
robust <= 0, as in the science configuration names; `Robust+0.5` for positive values); `_interval`
(`_t0001` ...) only for 10 min stacks. E.g. `Wideband_Red_V_10min_Taper_Robust-0_t0003.fits`,
`Wideband_Blue_I_deep_NoTaper_Robust-0.75.fits`.

Keywords written (besides the inputs' STOKES, ROBUST, TAPER, INTERVAL, NINTERVL): IMGCAT = `stack`,
STKCAT (the inputs' IMGCAT), STKROLE (transient/science), BAND, BANDLO, BANDHI, SUBBAND (= the band
name), SUBBANDS (contributing subbands), NSUBBAND, FREQMHZ (effective frequency, the weighted mean
of the inputs' FREQMHZ; also CRVAL3), STKRMS, NREGRID, PBCOR = F, DEWARPED (all inputs dewarped),
DATE-OBS / DATE-END (earliest / latest input), MJD-MID (mean), BMAJ/BMIN (weighted mean); HISTORY
lists every input with its weight.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.io import fits

from lwa_common.config import Stack
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image, write_image
from lwa_common.images import ImageHints, ImageInfo, grid_key, regrid_onto, same_grid, scan_images
from lwa_common.progress import progress
from lwa_stack.noise import NoiseRecord, measure_image, read_noise_csv, write_noise_csv

__all__ = [
    "Band",
    "Candidate",
    "StackPlan",
    "StackResult",
    "bands_from_config",
    "band_of",
    "robust_token",
    "taper_token",
    "stack_name",
    "stack_role",
    "plan_stacks",
    "stack_arrays",
    "regrid",
    "grid_signature",
    "wideband",
    "SCIENCE_ROBUSTS",
]

log = logging.getLogger(__name__)

TOOL = "lwa-stack"
SCIENCE_ROBUSTS: tuple[float, ...] = (0.0, -0.75)
_ROBUST_TOL = 1e-6


@dataclass(frozen=True)
class Band:
    """A colour band: [lo_mhz, hi_mhz)."""

    name: str
    lo_mhz: float
    hi_mhz: float


def bands_from_config(bands_mhz: Iterable[Sequence]) -> list[Band]:
    """`cfg.stack.bands_mhz` ((name, lo, hi), ...) as Band objects, validated."""
    out = []
    for item in bands_mhz:
        try:
            name, lo, hi = item
            band = Band(str(name), float(lo), float(hi))
        except (TypeError, ValueError):
            raise LwaError(f"stack.bands_mhz entry {item!r} is not (name, lo_mhz, hi_mhz)") from None
        if not band.lo_mhz < band.hi_mhz:
            raise LwaError(f"stack.bands_mhz band {band.name}: lower edge {lo} is not below {hi}")
        out.append(band)
    return out


def band_of(freq_mhz: float, bands: Sequence[Band]) -> Band | None:
    """The band holding `freq_mhz` (lower edge inclusive, upper exclusive), or None."""
    if not math.isfinite(freq_mhz):
        return None
    for band in bands:
        if band.lo_mhz <= freq_mhz < band.hi_mhz:
            return band
    return None


def robust_token(robust: float | None) -> str:
    """0 -> 'Robust-0', -0.75 -> 'Robust-0.75', 0.5 -> 'Robust+0.5'; '' when unknown."""
    if robust is None:
        return ""
    if robust <= 0:
        return f"Robust-{abs(robust):g}"
    return f"Robust+{robust:g}"


def taper_token(taper: float) -> str:
    """'Taper' / 'NoTaper'; '' when unknown (NaN: a plain image's header does not say)."""
    if not math.isfinite(taper):
        return ""
    return "Taper" if taper > 0 else "NoTaper"


def stack_name(band: str, stokes: str, imgcat: str, taper: float, robust: float | None, interval: str) -> str:
    """`Wideband_{Band}_{Pol}_{cat}_{Taper}_{Robust}[_{interval}].fits` (interval only for 10 min;
    the taper and robust tokens left out when the inputs' headers do not say them)."""
    suffix = f"_{interval}" if imgcat != "deep" and interval and interval != "deep" else ""
    tokens = "".join(f"_{t}" for t in (taper_token(taper), robust_token(robust)) if t)
    return f"Wideband_{band}_{stokes}_{imgcat}{tokens}{suffix}.fits"


def _is(value: float | None, target: float) -> bool:
    return value is not None and abs(float(value) - target) < _ROBUST_TOL


def stack_role(info: ImageInfo, *, science_robusts: Sequence[float] = SCIENCE_ROBUSTS) -> str | None:
    """'transient', 'science' or None: which wideband family an image feeds (header only).

    A plain image whose header does not give TAPER / ROBUST joins the transient family (its
    stack's name and header then leave them out too).
    """
    if info.pbcor or info.category not in ("deep", "10min"):
        return None
    taper_ok = info.taper > 0 or not math.isfinite(info.taper)
    if taper_ok and info.stokes in ("I", "V") and (info.robust is None or _is(info.robust, 0.0)):
        return "transient"
    if (info.taper == 0 and info.stokes == "I" and info.category == "deep"
            and any(_is(info.robust, r) for r in science_robusts)):
        return "science"
    return None


@dataclass
class Candidate:
    """An input image: its header description and grid."""

    path: Path
    info: ImageInfo
    grid: tuple
    rms_jy: float = float("nan")


@dataclass
class StackPlan:
    """One wideband product and the per-subband images that go into it."""

    name: str
    role: str
    band: Band
    stokes: str
    imgcat: str
    interval: str
    robust: float | None
    taper: float
    inputs: list[Candidate] = field(default_factory=list)


@dataclass
class StackResult:
    path: Path
    plan: StackPlan
    used: list[tuple[Candidate, float]]
    skipped: list[tuple[Path, str]]
    freq_mhz: float
    expected_rms_jy: float
    n_regridded: int


grid_signature = grid_key  # kept importable: a hashable key of the pixel grid (lwa_common.images)


def _describe(info: ImageInfo) -> Candidate:
    try:
        grid = grid_key(info.header)
    except (ValueError, KeyError) as err:
        raise LwaError(f"cannot read the WCS of {info.path}: {err}") from None
    return Candidate(path=info.path, info=info, grid=grid)


def _subband_key(info: ImageInfo) -> str:
    return info.subband or f"{info.freq_mhz:.3f}MHz"


def plan_stacks(candidates: Iterable[Candidate], bands: Sequence[Band], *,
                science_robusts: Sequence[float] = SCIENCE_ROBUSTS) -> list[StackPlan]:
    """Group images into the wideband products (one image per subband per product)."""
    groups: dict[tuple, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for cand in candidates:
        info = cand.info
        role = stack_role(info, science_robusts=science_robusts)
        band = band_of(info.freq_mhz, bands)
        if role is None or band is None:
            continue
        robust = None if info.robust is None else round(float(info.robust), 4)
        interval = info.interval or ("deep" if info.category == "deep" else "")
        tapered = info.taper > 0 if math.isfinite(info.taper) else None
        key = (band.name, role, info.stokes, info.category, interval, robust, tapered)
        groups[key][_subband_key(info)].append(cand)
    by_name = {b.name: b for b in bands}
    plans = []
    for key in sorted(groups, key=lambda k: ([b.name for b in bands].index(k[0]), str(k[1:]))):
        band_name, role, stokes, imgcat, interval, robust, _ = key
        chosen = []
        for subband, cands in sorted(groups[key].items(), key=lambda kv: kv[1][0].info.freq_mhz):
            dewarped = [c for c in cands if c.info.dewarped]
            pool = dewarped or cands
            if not dewarped:
                log.warning("%s %s %s %s: no dewarped image, using the undewarped %s",
                            subband, stokes, imgcat, interval, pool[0].path)
            if len(pool) > 1:
                log.warning("%s: %d images with the same header keys (%s); using %s",
                            subband, len(pool), ", ".join(str(c.path) for c in pool), pool[0].path)
            chosen.append(pool[0])
        tapers = [c.info.taper for c in chosen if math.isfinite(c.info.taper)]
        taper = max(tapers) if tapers else math.nan
        plan = StackPlan(
            name=stack_name(band_name, stokes, imgcat, taper, robust, interval), role=role,
            band=by_name[band_name], stokes=stokes, imgcat=imgcat, interval=interval,
            robust=None if robust is None else float(robust), taper=taper, inputs=chosen,
        )
        plans.append(plan)
    names = Counter(p.name for p in plans)
    clash = [n for n, k in names.items() if k > 1]
    if clash:
        raise LwaError(f"two different image groups map to the same stack name {clash[0]}")
    return plans


def stack_arrays(arrays: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware weighted mean of equal-shape arrays: (sum w x / sum w over finite x, sum w).

    Pixels that are non-finite in every input (or have zero total weight) are NaN. Float32 throughout
    (the images' precision; a float32 sum of tens of terms is good to ~1e-6 relative).
    """
    if len(arrays) != len(weights) or not arrays:
        raise LwaError("stack needs as many weights as images, and at least one image")
    shape = np.shape(arrays[0])
    num = np.zeros(shape, dtype=np.float32)
    den = np.zeros(shape, dtype=np.float32)
    term = np.empty(shape, dtype=np.float32)
    finite = np.empty(shape, dtype=bool)
    for arr, w in zip(arrays, weights, strict=True):
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise LwaError(f"stack inputs differ in shape: {arr.shape} vs {shape} (regrid them first)")
        if not (math.isfinite(w) and w >= 0):
            raise LwaError(f"stack weight must be finite and >= 0, got {w}")
        np.isfinite(arr, out=finite)
        np.multiply(arr, np.float32(w), out=term, casting="same_kind")
        np.add(num, term, out=num, where=finite)
        np.add(den, np.float32(w), out=den, where=finite)
    out = np.full(shape, np.nan, dtype=np.float32)
    np.divide(num, den, out=out, where=den > 0)
    return out, den


def regrid(plane: np.ndarray, header: fits.Header, ref_header: fits.Header) -> np.ndarray:
    """Bilinear reprojection of a 2-D plane onto the reference grid (NaN outside its footprint)."""
    return regrid_onto(plane, header, ref_header)


def _collect(infos: Iterable[ImageInfo]) -> tuple[list[Candidate], list[tuple[Path, str]]]:
    cands, failed = [], []
    for info in infos:
        try:
            cand = _describe(info)
        except LwaError as err:
            log.warning("skipping unreadable image: %s", err)
            failed.append((info.path, str(err)))
            continue
        if cand.info.category == "stack":
            continue
        cands.append(cand)
    return cands, failed


def _noise_cache(paths: Iterable[Path]) -> dict[str, NoiseRecord]:
    cache: dict[str, NoiseRecord] = {}
    for p in paths:
        if p.is_file():
            try:
                cache.update(read_noise_csv(p))
            except LwaError as err:
                log.warning("ignoring noise table: %s", err)
    return cache


def _v_deep_noise(cands: Sequence[Candidate], book: _NoiseBook) -> dict[str, float]:
    """Per subband: the thermal noise of its deep, tapered, Briggs-0, non-PB Stokes V image."""
    out: dict[str, float] = {}
    for c in sorted(cands, key=lambda c: not c.info.dewarped):
        i = c.info
        key = _subband_key(i)
        if (key not in out and i.stokes == "V" and i.category == "deep" and not i.pbcor and i.taper > 0
                and _is(i.robust, 0.0)):
            try:
                out[key] = book.rms(i)
            except LwaError as err:
                log.debug("no deep V noise for %s: %s", key, err)
    return out


def _time_keywords(headers: Sequence[fits.Header]) -> dict:
    starts = [str(h["DATE-OBS"]) for h in headers if h.get("DATE-OBS")]
    ends = [str(h["DATE-END"]) for h in headers if h.get("DATE-END")]
    mids = [float(h["MJD-MID"]) for h in headers if h.get("MJD-MID") is not None]
    return {"DATE-OBS": min(starts) if starts else None, "DATE-END": max(ends) if ends else None,
            "MJD-MID": statistics.fmean(mids) if mids else None}


def _write_stack(plan: StackPlan, used: list[tuple[Candidate, np.ndarray, fits.Header, float]],
                 ref_header: fits.Header, out_path: Path, n_regrid: int, *, argv: list[str] | None,
                 overwrite: bool) -> tuple[StackResult, np.ndarray]:
    weights = [w for *_, w in used]
    stacked, _ = stack_arrays([a for _, a, _, _ in used], weights)
    wsum = float(sum(weights))
    freqs = [c.info.freq_mhz for c, *_ in used]
    f_eff = float(np.dot(weights, freqs) / wsum)
    expected = math.sqrt(sum(w * w * c.rms_jy**2 for (c, *_), w in zip(used, weights, strict=True))) / wsum
    header = ref_header.copy()
    while "HISTORY" in header:
        del header["HISTORY"]
    headers = [h for _, _, h, _ in used]
    for key in ("BMAJ", "BMIN"):
        vals = [(float(h[key]), w) for h, w in zip(headers, weights, strict=True) if h.get(key) is not None]
        if vals:
            header[key] = sum(v * w for v, w in vals) / sum(w for _, w in vals)
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{i}", "")).upper().startswith("FREQ"):
            header[f"CRVAL{i}"] = f_eff * 1e6
            header[f"CDELT{i}"] = (plan.band.hi_mhz - plan.band.lo_mhz) * 1e6
    subbands = [_subband_key(c.info) for c, *_ in used]
    header["STKCAT"] = (plan.imgcat, "IMGCAT of the stacked per-subband images")
    header["STKROLE"] = (plan.role, "wideband family: transient or science")
    header["BAND"] = (plan.band.name, "wideband colour band")
    header["BANDLO"] = (plan.band.lo_mhz, "band lower edge [MHz]")
    header["BANDHI"] = (plan.band.hi_mhz, "band upper edge [MHz]")
    header["NSUBBAND"] = (len(used), "number of stacked subbands")
    header["SUBBANDS"] = (",".join(subbands), "stacked subbands")
    header["STKRMS"] = (expected, "expected stack noise from input noise [Jy/beam]")
    header["NREGRID"] = (n_regrid, "inputs regridded onto this grid")
    ninterval = headers[0].get("NINTERVL")
    keywords = {
        "STOKES": plan.stokes, "IMGCAT": "stack", "INTERVAL": plan.interval, "NINTERVL": ninterval,
        "ROBUST": plan.robust, "TAPER": plan.taper if math.isfinite(plan.taper) else None, "PBCOR": False,
        "DEWARPED": all(c.info.dewarped for c, *_ in used), "SUBBAND": plan.band.name,
        "FREQMHZ": round(f_eff, 4), **_time_keywords(headers),
    }
    history = [f"stack {plan.name}: {len(used)} subbands, f_eff {f_eff:.3f} MHz"]
    history += [f"input {_subband_key(c.info)} w={w:.6g} rms={c.rms_jy:.6g} {c.path.name}" for c, _, _, w in used]
    data = stacked[None, None] if int(ref_header.get("NAXIS", 2)) >= 4 else stacked
    write_image(out_path, data, header, tool=TOOL, keywords=keywords, argv=argv, extra_history=history,
                overwrite=overwrite)
    log.info("wrote %s: %d subbands (%s), f_eff %.2f MHz, expected rms %.4g Jy/beam",
             out_path.name, len(used), ",".join(subbands), f_eff, expected)
    return StackResult(path=out_path, plan=plan, used=[(c, w) for c, _, _, w in used], skipped=[],
                       freq_mhz=f_eff, expected_rms_jy=expected, n_regridded=n_regrid), stacked


def wideband(
    inputs: Sequence[str | Path],
    *,
    outdir: str | Path,
    bands: Sequence[Band],
    noise_csv: str | Path | None = None,
    weight_from: Literal["image", "v-deep"] = "image",
    science_robusts: Sequence[float] = SCIENCE_ROBUSTS,
    inner_fraction: float = Stack.noise_inner_fraction,
    clip_sigma: float = Stack.noise_clip_sigma,
    overwrite: bool = False,
    argv: list[str] | None = None,
    hints: ImageHints | None = None,
) -> list[StackResult]:
    """Make every wideband stack from the images under `inputs`; write them and thermal_noise.csv.

    thermal_noise.csv in `outdir` lists the noise of every input image and of every stack written
    (IMGCAT = stack; compare with the stack's STKRMS).

    Weights are 1/rms^2 of each image (`weight_from='image'`) or of its subband's deep Stokes V image
    (`'v-deep'`, falling back to the image itself). Noise comes from `noise_csv`, or the
    thermal_noise.csv in `outdir` and in each input folder, when the row's file is unchanged; otherwise
    it is measured on the pixels read for the stack (each input is read once). A subband whose image
    cannot be read or measured is skipped with a warning.
    """
    outdir = Path(outdir)
    if weight_from not in ("image", "v-deep"):
        raise LwaError(f"weight_from must be 'image' or 'v-deep', got {weight_from!r}")
    explicit = read_noise_csv(noise_csv) if noise_csv is not None else None  # fail before work
    infos, _ = scan_images(inputs, hints, exclude=[outdir])
    cands, unreadable = _collect(infos)
    plans = plan_stacks(cands, bands, science_robusts=science_robusts)
    if not plans:
        raise LwaError(f"no per-subband images to stack under {', '.join(map(str, inputs))} "
                       "(need non-PB Stokes I/V images with a frequency in a band; deep or 10 min)")
    for plan in plans:
        out = outdir / plan.name
        if out.exists() and not overwrite:
            raise LwaError(f"output exists: {out} (use --overwrite to replace it)")
    log.info("%d images found, %d wideband products planned", len(cands), len(plans))

    if explicit is None:
        explicit = _noise_cache([outdir / "thermal_noise.csv"] + [Path(d) / "thermal_noise.csv" for d in inputs
                                                                  if Path(d).is_dir()])
    book = _NoiseBook(explicit, inner_fraction=inner_fraction, sigma=clip_sigma)
    v_noise = _v_deep_noise(cands, book) if weight_from == "v-deep" else {}
    ref_grid = _reference_grid(plans)
    results = []
    for plan in progress(plans, what="wideband", logger=log):
        result = _stack_plan(plan, ref_grid, book, v_noise, outdir / plan.name, argv=argv)
        if result is not None:
            results.append(result)
    log.info("thermal noise: %d images (%d reused from thermal_noise.csv), %d failed",
             len(book.reused) + len(book.measured), len(book.reused), len(book.failed))
    if not results:
        raise LwaError(f"no wideband stack could be made: every input image failed ({len(book.failed)} failures)")
    write_noise_csv(outdir / "thermal_noise.csv", book.table())
    if unreadable or book.failed:
        log.warning("%d images skipped (unreadable or unmeasurable)", len(unreadable) + len(book.failed))
    return results


class _NoiseBook:
    """Thermal noise per image: a cached row while its file is unchanged, else measured on the pixels
    the caller has read; what was measured or failed, for thermal_noise.csv and the warnings."""

    def __init__(self, cache: dict[str, NoiseRecord], *, inner_fraction: float, sigma: float) -> None:
        self.cache = {k: v for k, v in cache.items() if v.matches_file()}
        self.measured: dict[str, NoiseRecord] = {}
        self.products: dict[str, NoiseRecord] = {}
        self.reused: set[str] = set()
        self.failed: dict[str, str] = {}
        self.inner_fraction, self.sigma = inner_fraction, sigma

    def rms(self, info: ImageInfo, data: np.ndarray | None = None) -> float:
        """The noise of `info`'s image (LwaError when it cannot be measured); `data` its pixels
        when already read."""
        key = str(Path(info.path).resolve())
        if key in self.failed:
            raise LwaError(self.failed[key])
        rec = self.measured.get(key) or self.cache.get(key)
        if rec is not None and key not in self.measured:
            self.reused.add(key)
        if rec is None:
            try:
                rec = measure_image(info, inner_fraction=self.inner_fraction, sigma=self.sigma, data=data)
            except LwaError as err:
                self.failed[key] = str(err)
                raise
            self.measured[key] = rec
        return rec.rms_jy

    def add_product(self, path: Path, data: np.ndarray) -> NoiseRecord:
        """Measure a written stack on its in-memory pixels."""
        rec = measure_image(path, inner_fraction=self.inner_fraction, sigma=self.sigma, data=data)
        self.products[rec.path] = rec
        return rec

    def table(self) -> list[NoiseRecord]:
        return list({**self.cache, **self.measured, **self.products}.values())


def _read_input(cand: Candidate, book: _NoiseBook, ref_grid: _RefGrid) -> tuple[np.ndarray, fits.Header, bool]:
    """One input's plane on the reference grid, its header and whether it was regridded; its noise
    goes into `cand.rms_jy` (measured on these pixels unless cached)."""
    data, header = read_image(cand.path, require_finite=False)  # "no usable pixels" from the noise
    plane = image_plane(data)
    cand.rms_jy = book.rms(cand.info, plane)
    if cand.grid == ref_grid.signature or same_grid(cand.info, ref_grid.header):
        return plane, header, False
    log.info("regridding %s onto the reference grid of %s", cand.path.name, ref_grid.path.name)
    return regrid(plane, header, ref_grid.header), header, True


def _stack_plan(plan: StackPlan, ref_grid: _RefGrid, book: _NoiseBook, v_noise: dict[str, float], out_path: Path,
                *, argv: list[str] | None) -> StackResult | None:
    """Read the plan's inputs (once each), stack, write and measure the stack; None when no input is usable."""
    used, skipped = [], []
    for cand in plan.inputs:
        try:
            plane, header, regridded = _read_input(cand, book, ref_grid)
        except LwaError as err:
            log.warning("skipping %s in %s: %s", _subband_key(cand.info), plan.name, err)
            skipped.append((cand.path, str(err)))
            continue
        sigma_w = v_noise.get(_subband_key(cand.info), cand.rms_jy)
        used.append((cand, plane, header, 1.0 / sigma_w**2, regridded))
    if not used:
        log.warning("no usable subband for %s; not written", plan.name)
        return None
    result, stacked = _write_stack(plan, [u[:4] for u in used], ref_grid.header, out_path,
                                   sum(u[4] for u in used), argv=argv, overwrite=True)
    result.skipped = skipped
    try:
        rec = book.add_product(result.path, stacked)
    except LwaError as err:
        log.warning("cannot measure the noise of %s: %s", result.path.name, err)
    else:
        log.info("%s: measured rms %.4g Jy/beam, expected %.4g (ratio %.2f)", result.path.name, rec.rms_jy,
                 result.expected_rms_jy, rec.rms_jy / result.expected_rms_jy)
    return result


@dataclass
class _RefGrid:
    signature: tuple
    path: Path
    header: fits.Header


def _reference_grid(plans: Sequence[StackPlan]) -> _RefGrid:
    """The most common grid among the inputs (ties: the lowest-frequency image's)."""
    usable = [c for p in plans for c in p.inputs]
    counts = Counter(c.grid for c in usable)
    best = max(counts.values())
    first = min((c for c in usable if counts[c.grid] == best), key=lambda c: (c.info.freq_mhz, str(c.path)))
    return _RefGrid(signature=first.grid, path=first.path, header=first.info.header)
