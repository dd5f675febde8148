"""The science images: the 7 configurations of DESIGN.md (17 images: 5 deep, 2 x 6 intervals) with wsclean.

Every parameter comes from `lwa_common.config.Imaging` (the `[imaging]` section); the configurations
themselves are its ``configurations``. Each configuration is one wsclean run; its products
are rewritten as self-describing images (STOKES, IMGCAT, INTERVAL, NINTERVL, CONFIG, ROBUST, TAPER,
PBCOR, DEWARPED, SUBBAND, FREQMHZ, BEAMREF and the time range of the data in each image).

Restoring beam: the 10-min images are compared with the deep image of the same weighting
(lwa-cutout measures 10 min − deep, lwa-transient searches the difference), so a cleaned 10-min
configuration is restored with the beam of its deep counterpart (`beam_reference`: same Stokes,
robust and taper; I-Taper-10min -> I-Deep-Taper-Robust-0) through wsclean's ``-beam-shape``,
not with the beam fitted to its own PSF: two slightly different Gaussians leave a residual of a
few per cent of every steady source in the difference. The deep configuration therefore runs
first; when ``--only`` leaves it out, its image in the output folder is read instead; without it
wsclean's fitted beam is kept (warning). ``BEAMREF`` names the image the beam came from
(``fitted``: wsclean's fit of this image's own PSF).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common.config import ImageConfiguration, Imaging
from lwa_common.errors import LwaError
from lwa_common.ms import MsInfo, TimeRange, interval_bounds, ms_info
from lwa_common.ms import data_column as pick_data_column
from lwa_common.parallel import job_cpus
from lwa_image._wsclean import (
    Timings,
    below_elevation,
    check_products,
    finalize_product,
    gridder_args,
    product_name,
    rerun_command,
    run_wsclean,
    scratch_dir,
    wsclean_date_obs,
    wsclean_output,
)

__all__ = ["select_configurations", "wsclean_science_args", "planned_products", "run_science", "Product",
           "RestoringBeam", "beam_reference", "read_restoring_beam"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Product:
    """One image a configuration makes: where it goes and what its header says."""

    path: Path
    config: ImageConfiguration
    interval: int | None  # 1-based, None for deep
    n_intervals: int
    times: TimeRange

    def keywords(self, *, subband: str, freq_mhz: float, taper_lambda: float) -> dict[str, object]:
        deep = self.interval is None
        return {
            "STOKES": self.config.stokes,
            "IMGCAT": "deep" if deep else "10min",
            "INTERVAL": "deep" if deep else f"t{self.interval:04d}",
            "NINTERVL": 1 if deep else self.n_intervals,
            "CONFIG": self.config.name,
            "ROBUST": float(self.config.robust),
            "TAPER": float(taper_lambda) if self.config.taper else 0.0,
            "PBCOR": False,
            "DEWARPED": False,
            "SUBBAND": subband,
            "FREQMHZ": round(freq_mhz, 6),
            **self.times.keywords(),
        }


@dataclass(frozen=True)
class RestoringBeam:
    """A restoring beam (FWHM, degrees; BPA as in the FITS header) and the image it was read from."""

    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float
    source: str  # file name of the image it comes from

    def wsclean_args(self) -> list[str]:
        """wsclean 3.1: ``-beam-shape <maj> <min> <pa>`` (FWHM, arcsec by default; PA in degrees)."""
        return ["-beam-shape", f"{self.bmaj_deg * 3600!r}asec", f"{self.bmin_deg * 3600!r}asec",
                f"{self.bpa_deg!r}deg"]  # repr: the shortest text that reads back as the same float

    def cards(self) -> dict[str, tuple[object, str]]:
        return {"BMAJ": (self.bmaj_deg, "[deg] restoring beam FWHM, major axis"),
                "BMIN": (self.bmin_deg, "[deg] restoring beam FWHM, minor axis"),
                "BPA": (self.bpa_deg, "[deg] restoring beam position angle"),
                "BEAMREF": (self.source, "image the beam is from")}


FITTED = "fitted"  # BEAMREF of an image restored with the fit of its own PSF


def beam_reference(conf: ImageConfiguration, imaging: Imaging) -> ImageConfiguration | None:
    """The deep configuration whose restoring beam a cleaned 10-min configuration uses (or None).

    Same Stokes, robust and taper, cleaned; the first in ``imaging.configurations`` order.
    Dirty configurations (V) keep their own fitted beam: their pixels do not depend on it.
    """
    if conf.span != "10min" or conf.niter <= 0:
        return None
    for ref in imaging.configurations:
        if (ref.span == "deep" and ref.niter > 0 and ref.stokes == conf.stokes and ref.robust == conf.robust
                and ref.taper == conf.taper):
            return ref
    return None


def read_restoring_beam(path: Path, *, config: str | None = None) -> RestoringBeam | None:
    """BMAJ/BMIN/BPA of an lwa-image product; None (with a warning) when unusable."""
    try:
        header = fits.getheader(path)
    except (OSError, ValueError) as err:
        log.warning("cannot read the restoring beam of %s: %s", path, err)
        return None
    if config is not None and header.get("CONFIG") != config:
        log.warning("%s: CONFIG is %r, not %r: its restoring beam is not used", path, header.get("CONFIG"), config)
        return None
    try:
        bmaj, bmin, bpa = (float(header[k]) for k in ("BMAJ", "BMIN", "BPA"))
    except (KeyError, TypeError, ValueError):
        log.warning("%s has no valid BMAJ/BMIN/BPA: its restoring beam is not used", path)
        return None
    if not (np.isfinite([bmaj, bmin, bpa]).all() and bmaj > 0 and bmin > 0):
        log.warning("%s: BMAJ/BMIN = %g/%g deg: its restoring beam is not used", path, bmaj, bmin)
        return None
    return RestoringBeam(bmaj, bmin, bpa, Path(path).name)


def _order_references_first(confs: list[ImageConfiguration], imaging: Imaging) -> list[ImageConfiguration]:
    """Run every selected beam-reference configuration before the configurations that use it."""
    refs = {id(r) for c in confs if (r := beam_reference(c, imaging)) is not None}
    return sorted(confs, key=lambda c: 0 if id(c) in refs else 1)  # stable: otherwise the given order


def _existing_reference_beam(ref: ImageConfiguration, path: Path, info: MsInfo) -> RestoringBeam | None:
    """The beam of a deep image made by an earlier run (``--only`` skipped it this time)."""
    if not path.exists():
        return None
    beam = read_restoring_beam(path, config=ref.name)
    if beam is None:
        return None
    header = fits.getheader(path)
    whole = info.whole()
    try:
        off = max(abs((Time(header["DATE-OBS"]) - whole.start).sec), abs((Time(header["DATE-END"]) - whole.end).sec))
    except (KeyError, ValueError):
        off = float("inf")
    if off > 1.0:
        log.warning("%s does not cover the same time range as %s (made from another MS?); its restoring beam "
                    "is used anyway", path, info.path)
    log.info("restoring beam from the existing %s: %.1f x %.1f arcsec, PA %.2f deg", path, beam.bmaj_deg * 3600,
             beam.bmin_deg * 3600, beam.bpa_deg)
    return beam


def select_configurations(imaging: Imaging, only: Sequence[str] | None) -> list[ImageConfiguration]:
    """The configurations named in `only` (all when empty); unknown names are errors."""
    known = {c.name: c for c in imaging.configurations}
    if not only:
        return list(imaging.configurations)
    out = []
    for name in only:
        if name not in known:
            hint = difflib.get_close_matches(name, list(known), n=1)
            typo = f" (typo? did you mean '{hint[0]}')" if hint else ""
            raise LwaError(f"--only: unknown configuration '{name}'{typo}; valid: {', '.join(known)}")
        if known[name] not in out:
            out.append(known[name])
    return out


def clean_horizon_deg(imaging: Imaging) -> float:
    """The elevation (from the phase centre) below which CLEAN never works: ``-horizon-mask`` of a cleaned run.

    ``imaging.clean_horizon_deg``, never below ``imaging.horizon_mask_deg`` (0: that one). Near
    the horizon the direction cosine n changes fast across a pixel and the response there is no
    longer the phase centre's PSF, which CLEAN's minor loop subtracts: with the wgridder the
    multiscale CLEAN of the tapered deep I diverged there (docs/performance.md).
    """
    return max(imaging.clean_horizon_deg, imaging.horizon_mask_deg)


def wsclean_science_args(conf: ImageConfiguration, imaging: Imaging, *, size: int, scale_deg: float,
                         niter: int, intervals_out: int, data_column: str, share: int = 1,
                         steps: tuple[int, int] | None = None) -> list[str]:
    """wsclean options (without -name and the MS) for one science configuration.

    A 10-min configuration is one run of ``-intervals-out``, or with `steps` (first, stop) the run
    of one of its intervals (``-interval``: the same time steps, weights and CLEAN as that interval
    of ``-intervals-out``).
    """
    args = ["-size", str(size), str(size), "-scale", f"{scale_deg:g}deg",
            "-weight", "briggs", f"{conf.robust:g}", "-pol", conf.stokes,
            "-horizon-mask", f"{clean_horizon_deg(imaging) if niter > 0 else imaging.horizon_mask_deg:g}deg",
            "-data-column", data_column, "-no-update-model-required", *gridder_args(imaging, share=share)]
    if conf.taper:
        args += ["-taper-inner-tukey", f"{imaging.taper_inner_tukey_lambda:g}"]
    if conf.span == "10min":
        args += ["-interval", str(steps[0]), str(steps[1])] if steps else ["-intervals-out", str(intervals_out)]
    if niter > 0:
        args += ["-niter", str(niter), "-mgain", f"{imaging.mgain:g}",
                 "-auto-threshold", f"{imaging.auto_threshold:g}", "-auto-mask", f"{imaging.auto_mask:g}"]
        if conf.multiscale:
            args += ["-multiscale", "-multiscale-scale-bias", f"{imaging.multiscale_scale_bias:g}"]
        if imaging.local_rms:
            args += ["-local-rms"]
            if conf.multiscale:  # wsclean 3.1 (Debian) aborts in the fast multiscale sub-minor loop with
                args += ["-no-multiscale-fast-subminor"]  # -local-rms (free(): invalid size)
    else:  # dirty: still fit a PSF so the header carries a restoring beam
        args += ["-niter", "0", "-make-psf"]
    return args


def planned_products(confs: Sequence[ImageConfiguration], info: MsInfo, outdir: Path, *,
                     intervals_out: int) -> list[Product]:
    products = []
    for conf in confs:
        if conf.span == "deep":
            products.append(Product(outdir / product_name(info.subband, conf.name), conf, None, 1, info.whole()))
        elif conf.span == "10min":
            for i, rng in enumerate(info.intervals(intervals_out), start=1):
                products.append(Product(outdir / product_name(info.subband, conf.name, i), conf, i,
                                        intervals_out, rng))
        else:
            raise LwaError(f"configuration {conf.name}: span must be 'deep' or '10min', got '{conf.span}'")
    return products


def _check_wsclean_time(src: Path, product: Product) -> None:
    """wsclean's DATE-OBS is the centroid of the first time step it imaged: it must match ours."""
    text = wsclean_date_obs(src)
    if not text:
        return
    try:
        theirs = Time(text, scale="utc")
    except ValueError:
        return
    diff = abs((theirs - product.times.first_centroid).sec)
    if diff > 1.0:
        log.warning("%s: wsclean DATE-OBS %s differs from the expected first time step %s by %.1f s",
                    src.name, text, product.times.first_centroid.isot, diff)


def _restoring_beam(conf: ImageConfiguration, imaging: Imaging, made: dict[str, Path], outdir: Path,
                    info: MsInfo) -> RestoringBeam | None:
    """The beam `conf` must be restored with (its deep reference's), or None for wsclean's fit."""
    ref = beam_reference(conf, imaging)
    if ref is None:
        return None
    if ref.name in made:
        beam = read_restoring_beam(made[ref.name], config=ref.name)
        if beam is not None:
            log.info("%s restored with the beam of %s: %.1f x %.1f arcsec, PA %.2f deg", conf.name, beam.source,
                     beam.bmaj_deg * 3600, beam.bmin_deg * 3600, beam.bpa_deg)
            return beam
    else:
        beam = _existing_reference_beam(ref, outdir / product_name(info.subband, ref.name), info)
        if beam is not None:
            return beam
    log.warning("%s: no usable %s image in %s: its images keep wsclean's fitted restoring beam, which differs "
                "slightly from the deep image's (10 min - deep differences will show steady sources)",
                conf.name, ref.name, outdir)
    return None


def _check_beam_applied(src: Path, beam: RestoringBeam) -> None:
    """wsclean must have written the beam it was given (the header then gets the exact reference values)."""
    header = fits.getheader(src)
    got = [float(header.get(k, 0.0)) for k in ("BMAJ", "BMIN", "BPA")]
    want = [beam.bmaj_deg, beam.bmin_deg, beam.bpa_deg]
    if not np.allclose(got, want, rtol=1e-6, atol=1e-6):
        raise LwaError(f"wsclean restored {src.name} with BMAJ/BMIN/BPA {got}, not the -beam-shape {want}")


def parallel_configurations(imaging: Imaging, n_configurations: int) -> int:
    """How many configurations wsclean images at once: ``imaging.parallel_configurations``, or with
    0 one per `imaging.cores_per_configuration` CPUs (one at a time on a small machine)."""
    n = imaging.parallel_configurations or job_cpus() // imaging.cores_per_configuration
    return max(1, min(n, n_configurations))


@dataclass(frozen=True)
class _Unit:
    """One wsclean run: a configuration, or one interval of a 10-min configuration (`interval`, 1-based)."""

    conf: ImageConfiguration
    interval: int | None = None
    steps: tuple[int, int] | None = None  # the interval's (first, stop) time steps

    @property
    def label(self) -> str:
        return self.conf.name if self.interval is None else f"{self.conf.name}-t{self.interval:04d}"


def _units(confs: Sequence[ImageConfiguration], info: MsInfo, intervals_out: int, *, split: bool) -> list[_Unit]:
    """The wsclean runs of `confs`: with `split`, a 10-min configuration's intervals run one by one."""
    out = []
    for conf in confs:
        if split and conf.span == "10min" and intervals_out > 1:
            bounds = interval_bounds(info.n_times, intervals_out)
            out += [_Unit(conf, i, b) for i, b in enumerate(bounds, start=1)]
        else:
            out.append(_Unit(conf))
    return out


def _image_unit(unit: _Unit, *, ms: Path, outdir: Path, imaging: Imaging, products: list[Product], info: MsInfo,
                size: int, scale_deg: float, niter_scale: float, intervals_out: int, column: str,
                beam: RestoringBeam | None, share: int, timings: Timings | None) -> list[Path]:
    """One wsclean run in a private scratch folder, then its products."""
    conf = unit.conf
    niter = max(1, round(conf.niter * niter_scale)) if conf.niter > 0 else 0
    args = wsclean_science_args(conf, imaging, size=size, scale_deg=scale_deg, niter=niter,
                                intervals_out=intervals_out, data_column=column, share=share, steps=unit.steps)
    if beam is not None:
        args += beam.wsclean_args()
    mine = [p for p in products if p.config is conf and (unit.interval is None or p.interval == unit.interval)]
    written = []
    with scratch_dir(outdir, unit.label) as tmp:
        prefix = tmp / f"{info.subband}-{unit.label}"
        run_wsclean([*args, "-temp-dir", str(tmp), "-name", str(prefix), str(ms.resolve())], workdir=tmp,
                    timings=timings, label=unit.label,
                    keep_log=outdir / f"{info.subband}-{unit.label}-wsclean-failed.log")
        command = rerun_command(args, prefix=outdir.resolve() / prefix.name, ms=ms.resolve())
        horizon = {"HORIZON": (imaging.horizon_mask_deg if imaging.blank_below_horizon else 0.0,
                               "[deg] pixels below it are NaN (0: none)")}
        for product in mine:
            if unit.interval is None:
                src = wsclean_output(prefix, product.interval, intervals_out)
            else:  # one -interval run: wsclean writes no interval tag
                src = wsclean_output(prefix, None, 1)
            if product.interval is not None:
                _check_wsclean_time(src, product)
            if beam is not None:
                _check_beam_applied(src, beam)
            cards = beam.cards() if beam is not None else {"BEAMREF": (FITTED, "beam fitted to this image's PSF")}
            keywords = product.keywords(subband=info.subband, freq_mhz=info.freq_mhz,
                                        taper_lambda=imaging.taper_inner_tukey_lambda)
            blank = below_elevation(src, imaging.horizon_mask_deg) if imaging.blank_below_horizon else None
            written.append(finalize_product(src, product.path, keywords=keywords, command=command,
                                            extra_history=[f"ms: {ms.resolve()}"], cards={**cards, **horizon},
                                            blank=blank, scratch=tmp))
    return written


def _run_units(units: list[_Unit], job: Callable[..., list[Path]], *, imaging: Imaging, outdir: Path, info: MsInfo,
               at_once: int) -> list[list[Path]]:
    """Run every unit, `at_once` at a time; a unit restored with a deep image's beam starts when that
    image is written (the references are submitted first, so a waiting unit never blocks them)."""
    refs = {id(r) for u in units if (r := beam_reference(u.conf, imaging)) is not None}
    order = sorted(range(len(units)), key=lambda k: (0 if id(units[k].conf) in refs
                                                     else 2 if beam_reference(units[k].conf, imaging) else 1))
    futures: dict[int, Future] = {}
    deep: dict[str, Future] = {}  # reference configuration name -> the future of its run

    def run(unit: _Unit) -> list[Path]:
        ref = beam_reference(unit.conf, imaging)
        made = {}
        if ref is not None and ref.name in deep:
            made[ref.name] = deep[ref.name].result()[0]
        return job(unit, beam=_restoring_beam(unit.conf, imaging, made, outdir, info))

    with ThreadPoolExecutor(max_workers=at_once) as pool:
        for k in order:
            futures[k] = pool.submit(run, units[k])
            if id(units[k].conf) in refs:
                deep[units[k].conf.name] = futures[k]
        return [futures[k].result() for k in range(len(units))]


def run_science(ms: str | Path, outdir: str | Path, *, imaging: Imaging | None = None,
                only: Sequence[str] | None = None, niter_scale: float = 1.0, data_column: str | None = None,
                subband: str | None = None, overwrite: bool = False, exact_intervals: bool = False,
                timings: Timings | None = None) -> list[Path]:
    """Image `ms` in the science configurations; returns the FITS written (in `outdir`).

    `imaging` is the `[imaging]` section (None: the defaults); grid and intervals are its `size`,
    `scale_deg` and `intervals_out` (a CLI builds
    it with `lwa_common.config.section_with`). An MS with fewer time steps than `intervals_out`
    gets one interval per step, with a warning, unless `exact_intervals` (the intervals were asked
    for: then it is an error). `niter_scale` multiplies every configuration's CLEAN iteration limit
    (tests use small values); `data_column` defaults to CORRECTED_DATA when present, else DATA.
    """
    t_start = time.perf_counter()
    imaging = imaging if imaging is not None else Imaging()
    ms, outdir = Path(ms), Path(outdir)
    confs = _order_references_first(select_configurations(imaging, only), imaging)
    size, scale_deg, intervals_out = int(imaging.size), float(imaging.scale_deg), int(imaging.intervals_out)
    if size < 16 or scale_deg <= 0 or niter_scale < 0:
        raise LwaError(f"bad imaging size/scale/niter-scale: {size}, {scale_deg}, {niter_scale}")
    info = ms_info(ms, subband=subband)
    if info.n_times < intervals_out and not exact_intervals:  # asked-for intervals stay an error
        log.warning("%s has %d time step(s), fewer than the default %d intervals: imaging %d interval(s)",
                    ms, info.n_times, intervals_out, info.n_times)
        intervals_out = info.n_times
    products = planned_products(confs, info, outdir, intervals_out=intervals_out)
    check_products([p.path for p in products], overwrite=overwrite)
    column = data_column or pick_data_column(ms, "CORRECTED_DATA")
    if column not in info.columns:
        raise LwaError(f"{ms}: no column {column}")
    log.info("science imaging of %s (%s, %.3f MHz, %d time steps, column %s): %s; %d px at %g deg",
             ms, info.subband, info.freq_mhz, info.n_times, column, ", ".join(c.name for c in confs), size,
             scale_deg)
    at_once = parallel_configurations(imaging, len(_units(confs, info, intervals_out, split=True)))
    units = _units(confs, info, intervals_out, split=at_once > 1)
    threads = max(1, job_cpus() // at_once) if at_once > 1 and imaging.threads == 0 else imaging.threads
    log.info("%d wsclean run(s) at a time%s: %d run(s)", at_once,
             f", {threads} wsclean threads each" if at_once > 1 else "", len(units))
    job = partial(_image_unit, ms=ms, outdir=outdir, imaging=replace(imaging, threads=threads), share=at_once,
                  products=products, info=info, size=size, scale_deg=scale_deg, niter_scale=niter_scale,
                  intervals_out=intervals_out, column=column, timings=timings)
    by_unit = _run_units(units, job, imaging=imaging, outdir=outdir, info=info, at_once=at_once)
    by_conf: dict[str, list[Path]] = {}
    for unit, paths in zip(units, by_unit):
        by_conf.setdefault(unit.conf.name, []).extend(paths)
    written = [p for c in confs for p in by_conf[c.name]]
    if timings is not None:
        timings.total_s += time.perf_counter() - t_start
    log.info("science: %d images in %s", len(written), outdir)
    return written
