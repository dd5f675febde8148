"""The peeled sources' models refined from the data (self-calibration of the model).

The shipped A-team model is a few Gaussians per source; the real Cyg A and Cas A are resolved
into lobes and hot spots that the array's longest baselines (1.6 km, ~12' at 55 MHz) see. With
antennas over the whole array that missing structure is what a peel leaves (2.1e-5 of the
A-team's power at real size, against the goal of 1e-5), and splitting a source into one
direction per component makes it worse (degenerate directions). So, as in the field's
self-calibration pipelines, after a first peel each peeled source's model gets what the data say
is missing, in the same direction (no new direction to solve):

1. DP3 on a pass's output writes a small scratch MS per source: the fixed field subtracted (when
   there is one), the source's own gains of that pass applied inverted (`applycal`), so what is
   left near the source is its residual in the frame of its model (the gains took out its flux
   scale and the ionospheric shift, which the model must not get twice), phase-shifted to the
   source (`phaseshift`) and averaged to >= 16 channels (bandwidth smearing within the small
   image: < 0.3' at 55 MHz). (wsclean 3.1's own `-shift` writes its source list at positions
   relative to the unshifted centre, so DP3 rephases instead.)
2. wsclean images it on a small grid (a quarter-beam pixels, the longest baseline's resolution),
   CLEANs inside a circle of `radius_arcmin` (or one resolution element, whichever is larger)
   with a spectral polynomial over a few output channels (`-fit-spectral-pol`), and writes its
   clean components (`-save-source-list`).
3. The components (apparent, like the rest of the model; fluxes may be negative, so an ordinary
   polynomial spectrum, DP3 `LogarithmicSI=false`) are added to the source's patch; the next pass
   solves and subtracts the refined model.

Own code only for the glue: DP3 and wsclean do the work; `lwa_common.catalogs.read_makesourcedb`
reads the components.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits

from lwa_common.catalogs import read_makesourcedb
from lwa_common.errors import LwaError
from lwa_common.ms import open_table
from lwa_common.parallel import job_cpus
from lwa_common.provenance import keep_tool_output
from lwa_peel.dp3 import run_dp3, write_parset
from lwa_peel.model import Component, Direction

__all__ = ["ImageGeometry", "image_geometry", "refine_directions", "sexagesimal"]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
_PIXELS_PER_BEAM = 4
_MIN_PIXELS = 64
_MAX_PIXELS = 512
_MIN_CHANNELS = 16  # channels kept for imaging (module docstring)


@dataclasses.dataclass(frozen=True)
class ImageGeometry:
    """The residual image around one source: pixels, pixel size, CLEAN circle, output channels."""

    size: int
    scale_arcmin: float
    radius_arcmin: float
    channels: int
    freq_step: int  # MS channels averaged into one before imaging


def image_geometry(ms: Path, *, radius_arcmin: float, channels: int) -> ImageGeometry:
    """Pixels of a quarter of the resolution (longest baseline, highest channel), a CLEAN circle of
    `radius_arcmin` or one resolution element (the larger), an image four times its radius across."""
    with open_table(ms) as t:
        uvw = t.getcol("UVW")
    with open_table(ms / "SPECTRAL_WINDOW") as t:
        freqs = np.asarray(t.getcell("CHAN_FREQ", 0), dtype=float)
    uv_max = float(np.max(np.hypot(uvw[:, 0], uvw[:, 1]))) * float(freqs.max()) / C_M_S
    if uv_max <= 0:
        raise LwaError(f"{ms}: no baseline longer than 0 m; cannot image a residual")
    beam_arcmin = math.degrees(1.0 / uv_max) * 60.0
    scale = beam_arcmin / _PIXELS_PER_BEAM
    radius = max(radius_arcmin, beam_arcmin)
    size = int(min(max(math.ceil(4 * radius / scale / 2) * 2, _MIN_PIXELS), _MAX_PIXELS))
    return ImageGeometry(size=size, scale_arcmin=scale, radius_arcmin=min(radius, 0.45 * size * scale),
                         channels=max(1, min(channels, freqs.size)), freq_step=max(1, freqs.size // _MIN_CHANNELS))


def _mask(path: Path, geometry: ImageGeometry) -> Path:
    """A FITS clean mask: 1 inside the circle about the image centre (wsclean's pixel N/2)."""
    n = geometry.size
    yy, xx = np.mgrid[:n, :n]
    inside = np.hypot(xx - n // 2, yy - n // 2) * geometry.scale_arcmin <= geometry.radius_arcmin
    fits.PrimaryHDU(inside.astype(np.float32)[None, None]).writeto(path, overwrite=True)
    return path


def _residual_in_model_frame(ms: Path, column: str, direction: Direction, *, h5parm: Path, skymodel: Path,
                             field_patch: str | None, out: Path, freq_step: int) -> Path:
    """A new MS `out`: `column` less the fixed field, corrected by `direction`'s inverted gains,
    phase-shifted to it and averaged over `freq_step` channels."""
    centre = [sexagesimal(direction.ra_deg, hours=True), sexagesimal(direction.dec_deg, hours=False)]
    steps = (["fieldsub"] if field_patch else []) + ["applycal", "shift"] + (["average"] if freq_step > 1 else [])
    params: dict[str, object] = {
        "msin": str(ms.absolute()), "msin.datacolumn": column, "msout": str(out.absolute()),
        "msout.overwrite": True, "numthreads": job_cpus(), "steps": steps,
        "applycal.type": "applycal", "applycal.parmdb": str(h5parm.absolute()),
        "applycal.steps": ["amplitude", "phase"], "applycal.amplitude.correction": "amplitude000",
        "applycal.phase.correction": "phase000", "applycal.direction": f"[{direction.patch}]",
        "shift.type": "phaseshift", "shift.phasecenter": centre,
        "average.type": "averager", "average.freqstep": freq_step,
    }
    if field_patch:
        params.update({"fieldsub.type": "predict", "fieldsub.sourcedb": str(skymodel.absolute()),
                       "fieldsub.sources": [field_patch], "fieldsub.operation": "subtract"})
    parset = out.with_suffix(".parset")
    write_parset(parset, params, comment=f"lwa-peel: {direction.name}'s residual in its model's frame")
    run_dp3(parset, what=f"DP3 residual of {direction.name} (field out, its gains applied, phased to it)")
    return out


def sexagesimal(deg: float, *, hours: bool) -> str:
    """RA as 19h59m28.3566s, Dec as +40d44m02.097s (what DP3 and wsclean parse)."""
    if hours:
        return Angle(deg, u.deg).to_string(unit=u.hour, sep="hms", precision=4)
    return Angle(deg, u.deg).to_string(unit=u.deg, sep="dms", precision=3, alwayssign=True)


def _wsclean_args(ms: Path, geometry: ImageGeometry, *, prefix: Path, mask: Path, clean_iterations: int) -> list[str]:
    """Stokes I of `ms` (phased to the source), CLEANed inside `mask`, components saved."""
    args = ["-name", str(prefix.absolute()), "-size", str(geometry.size), str(geometry.size),
            "-scale", f"{geometry.scale_arcmin / 60:.8f}", "-pol", "I", "-weight", "briggs", "0",
            "-niter", str(clean_iterations), "-mgain", "0.8", "-auto-threshold", "0.3",
            "-fits-mask", str(mask.absolute()), "-save-source-list", "-no-update-model-required",
            "-j", str(job_cpus()), "-temp-dir", str(prefix.parent.absolute())]
    if geometry.channels > 1:
        args += ["-channels-out", str(geometry.channels), "-join-channels", "-fit-spectral-pol",
                 str(min(geometry.channels, 3))]
    return [*args, str(ms.absolute())]


def _run_wsclean(args: Sequence[str], *, workdir: Path, label: str) -> None:
    exe = shutil.which("wsclean")
    if exe is None:
        raise LwaError("wsclean not found on PATH (Debian: apt-get install wsclean); needed to refine the model")
    text = shlex.join(["wsclean", *args])
    log.info("running wsclean (%s): %s", label, text)
    t0 = time.perf_counter()
    proc = subprocess.run([exe, *args], cwd=workdir, capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    keep_tool_output("wsclean", text, output)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()] or ["no output"]
        raise LwaError(f"wsclean failed for {label} (exit {proc.returncode}): {lines[-1]}")
    log.info("wsclean (%s) done in %.1f s", label, time.perf_counter() - t0)


def _components(path: Path, direction: Direction, round_no: int) -> tuple[Component, ...]:
    """wsclean's clean components as model components of `direction` (Stokes I, apparent)."""
    if not path.exists():
        raise LwaError(f"wsclean wrote no source list {path.name}")
    out = []
    for k, src in enumerate(read_makesourcedb(path)):
        out.append(Component(
            name=f"{direction.patch}_r{round_no}_{k}", ra_deg=src.ra_deg, dec_deg=src.dec_deg, i_jy=src.flux_jy,
            ref_freq_hz=src.ref_freq_hz, spectral_terms=tuple(src.spectral_index),
            major_arcsec=src.major_arcsec, minor_arcsec=src.minor_arcsec, pa_deg=src.pa_deg,
            log_si=src.spectral_law == "log"))
    return tuple(out)


def refine_directions(ms: Path, column: str, directions: Sequence[Direction], *, h5parm: Path, skymodel: Path,
                      field_patch: str | None, workdir: Path, radius_arcmin: float, channels: int,
                      clean_iterations: int, round_no: int = 1) -> list[Direction]:
    """Each direction with the clean components of its residual added (module docstring).

    `column`: a pass's peeled output; `h5parm`: that pass's solutions; `skymodel`: its model (with
    the fixed field patch `field_patch`, subtracted first). Scratch goes to `workdir`; the scratch
    MS of each source's residual stays there."""
    geometry = image_geometry(ms, radius_arcmin=radius_arcmin, channels=channels)
    log.info("model refinement: %d x %d px of %.2f', CLEAN within %.1f' of each source, %d channel(s)",
             geometry.size, geometry.size, geometry.scale_arcmin, geometry.radius_arcmin, geometry.channels)
    mask = _mask(workdir / "mask.fits", geometry)
    refined = []
    for d in directions:
        phased = _residual_in_model_frame(ms, column, d, h5parm=h5parm, skymodel=skymodel, field_patch=field_patch,
                                          out=workdir / f"{d.patch}.ms", freq_step=geometry.freq_step)
        prefix = workdir / d.patch
        _run_wsclean(_wsclean_args(phased, geometry, prefix=prefix, mask=mask, clean_iterations=clean_iterations),
                     workdir=workdir, label=f"residual of {d.name}")
        extra = _components(Path(f"{prefix}-sources.txt"), d, round_no)
        mid = float(np.mean([c.ref_freq_hz for c in d.components]))
        added = float(sum(c.flux_at(mid) for c in extra))
        log.info("model refinement: %s gets %d clean component(s), %+.2f Jy in all (model %.1f Jy)",
                 d.name, len(extra), added, d.flux_at(mid))
        refined.append(dataclasses.replace(d, components=d.components + extra))
    return refined
