"""3-colour PNGs from the Red / Green / Blue wideband deep Stokes I stacks.

Three composites, each channel stretched on its own between its [0.5, 99.8] percentiles
(`cfg.stack.stretch_percentiles`) and clipped to [0, 1]; NaN (off-sky) pixels are black:

* `mixed`: Red from Robust -0.75, Green and Blue from Robust 0 -- the sharper weighting where the
  beam is widest, so the three channels have closer resolution;
* `Robust-0`: all three channels Briggs 0;
* `Robust-0.75`: all three channels Briggs -0.75.

Channels are chosen by header (IMGCAT = stack, STKCAT = deep, STOKES = I, PBCOR = F, BAND), the
untapered science stacks first and the tapered ones when no untapered stack exists, so the command
works on any folder of wideband FITS. A composite with one channel missing is made with that channel
black (warning); with two or more missing it is skipped. A run with a single band (one subband, say)
has no 3-colour image: the command then logs "skipped: ..." and writes nothing (not an error). Channels on a different grid from the first
channel are regridded onto it. The PNG has one pixel per image pixel, north up (FITS row 0 at the
bottom).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from lwa_common.config import Stack
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_info, image_plane, read_image
from lwa_common.io import atomic_path
from lwa_stack.noise import find_images
from lwa_stack.stack import grid_signature, regrid, robust_token

__all__ = ["COMPOSITES", "Composite", "find_wideband_deep_i", "stretch", "rgb_composite", "color_images",
           "composite_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Composite:
    """A 3-colour product: its label and the robust of each channel (Red, Green, Blue)."""

    label: str
    robusts: tuple[float, float, float]


COMPOSITES: tuple[Composite, ...] = (
    Composite("mixed", (-0.75, 0.0, 0.0)),
    Composite("Robust-0", (0.0, 0.0, 0.0)),
    Composite("Robust-0.75", (-0.75, -0.75, -0.75)),
)


def composite_name(comp: Composite, *, tapered: bool = False) -> str:
    return f"Wideband_I_deep_{'Taper' if tapered else 'NoTaper'}_{comp.label}_3color.png"


def find_wideband_deep_i(inputs: Sequence[str | Path]) -> dict[tuple[str, str, bool], Path]:
    """Deep Stokes I wideband stacks under `inputs`, keyed by (BAND, robust token, tapered)."""
    found: dict[tuple[str, str, bool], Path] = {}
    for path in find_images(inputs):
        try:
            info = image_info(path)
            header = fits.getheader(path)
        except (LwaError, OSError) as err:
            log.warning("skipping unreadable %s: %s", path, err)
            continue
        if info.category != "stack" or info.stokes != "I" or info.pbcor or info.robust is None:
            continue
        if str(header.get("STKCAT", info.interval)) != "deep":
            continue
        band = str(header.get("BAND", ""))
        key = (band, robust_token(float(info.robust)), info.taper > 0)
        if key in found:
            log.warning("two %s stacks: %s and %s; using the first", key, found[key], path)
            continue
        found[key] = path
    return found


def stretch(plane: np.ndarray, percentiles: Sequence[float] = Stack.stretch_percentiles) -> np.ndarray:
    """Percentile stretch to [0, 1] over finite pixels; non-finite pixels become 0."""
    plane = np.asarray(plane, dtype=np.float64)
    finite = np.isfinite(plane)
    if not finite.any():
        return np.zeros(plane.shape)
    lo, hi = np.percentile(plane[finite], list(percentiles))
    if not hi > lo:
        hi = lo + 1.0
    out = np.clip((plane - lo) / (hi - lo), 0.0, 1.0)
    out[~finite] = 0.0
    return out


def rgb_composite(red: np.ndarray | None, green: np.ndarray | None, blue: np.ndarray | None, *,
                  percentiles: Sequence[float] = Stack.stretch_percentiles) -> np.ndarray:
    """(ny, nx, 3) float RGB in [0, 1]; a None channel is black."""
    present = [c for c in (red, green, blue) if c is not None]
    if not present:
        raise LwaError("3-colour image needs at least one channel")
    shape = np.shape(present[0])
    chans = []
    for c in (red, green, blue):
        if c is None:
            chans.append(np.zeros(shape))
        elif np.shape(c) != shape:
            raise LwaError(f"3-colour channels differ in shape: {np.shape(c)} vs {shape}")
        else:
            chans.append(stretch(c, percentiles))
    return np.stack(chans, axis=-1)


def _load(path: Path, ref: tuple[tuple, fits.Header] | None) -> tuple[np.ndarray, tuple, fits.Header]:
    data, header = read_image(path, require_finite=False)  # its own all-NaN check
    plane = image_plane(data)
    sig = grid_signature(header)
    if ref is not None and sig != ref[0]:
        log.info("regridding %s onto the first channel's grid", path.name)
        plane = regrid(plane, header, ref[1])
    return plane, sig, header


def color_images(inputs: Sequence[str | Path], *, outdir: str | Path, band_names: Sequence[str],
                 percentiles: Sequence[float] = Stack.stretch_percentiles, overwrite: bool = False) -> list[Path]:
    """Write the three 3-colour PNGs (those whose channels exist) into `outdir`; return their paths."""
    if len(band_names) != 3:
        raise LwaError(f"3-colour images need exactly three bands (red, green, blue), got {list(band_names)}")
    lo, hi = percentiles
    if not 0 <= lo < hi <= 100:
        raise LwaError(f"stretch percentiles must satisfy 0 <= lo < hi <= 100, got {list(percentiles)}")
    outdir = Path(outdir)
    found = find_wideband_deep_i(inputs)
    if not found:
        raise LwaError(f"no deep Stokes I wideband stacks (IMGCAT=stack) under {', '.join(map(str, inputs))}")
    jobs = []
    for comp in COMPOSITES:
        for tapered in (False, True):
            paths = [found.get((b, robust_token(r), tapered)) for b, r in zip(band_names, comp.robusts, strict=True)]
            if sum(p is not None for p in paths) >= 2:
                jobs.append((comp, tapered, paths))
                break
        else:
            log.warning("3-colour %s: fewer than two of the %s channels exist; skipped", comp.label,
                        "/".join(band_names))
    if not jobs:
        bands = sorted({band for band, _, _ in found})
        log.warning("skipped: a 3-colour image needs deep Stokes I stacks of two bands of the same robust; "
                    "this run has %s (nothing written)", "/".join(bands) or "none")
        return []
    for comp, tapered, _ in jobs:
        out = outdir / composite_name(comp, tapered=tapered)
        if out.exists() and not overwrite:
            raise LwaError(f"output exists: {out} (use --overwrite to replace it)")
    import matplotlib.image as mpimg

    written = []
    for comp, tapered, paths in jobs:
        ref = None
        planes: list[np.ndarray | None] = []
        for band, path in zip(band_names, paths, strict=True):
            if path is None:
                log.warning("3-colour %s: no %s stack; that channel is black", comp.label, band)
                planes.append(None)
                continue
            plane, sig, header = _load(path, ref)
            ref = ref or (sig, header)
            planes.append(plane)
        rgb = rgb_composite(*planes, percentiles=percentiles)
        out = outdir / composite_name(comp, tapered=tapered)
        with atomic_path(out) as tmp:
            mpimg.imsave(tmp, rgb, origin="lower", format="png")
        log.info("wrote %s (%d x %d) from %s", out.name, rgb.shape[1], rgb.shape[0],
                 ", ".join(p.name if p else "-" for p in paths))
        written.append(out)
    return written
