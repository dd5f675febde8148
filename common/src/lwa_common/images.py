"""The one reading of an image's identity, FITS discovery, and pixel-grid comparison.

Every tool that reads images asks this module what an image is (`image_info`), which FITS files
a list of files and folders holds (`find_images`, `scan_images`), whether two images share a
pixel grid (`same_grid`) and how to put one onto another's grid (`regrid_onto`).

What an image is, fact by fact (our own keywords, docs/ARCHITECTURE.md, win when present; a plain
WSClean or CASA-exported image is read from its standard cards; what neither says comes from the
user's `ImageHints`, the `--kind/--interval/--image-stokes/--freq-mhz/--duration-s` options):

| fact | read from (first that exists) |
|---|---|
| Stokes | `STOKES` keyword; the STOKES axis (CRVAL 1..4 = I Q U V, -1..-8 = RR LL RL LR XX YY XY YX); `--image-stokes` |
| frequency | `FREQMHZ` (ours: a stack's weighted mean); the FREQ axis (CRVAL: WSClean's centre of the imaged band); `--freq-mhz` |
| time | `DATE-OBS` .. `DATE-END`, `MJD-MID` (their middle when absent); without `DATE-END` the span is `--duration-s` long from `DATE-OBS`, or, when that is not given either, the image time is `DATE-OBS` (a snapshot) |
| kind | `IMGCAT`; `--kind`; else `deep` (a lone image is a deep image) |
| interval | `INTERVAL`; `deep` for a deep image; `--interval` (a 10 min image needs one) |
| restoring beam | `BMAJ`, `BMIN`, `BPA` (deg); else WSClean's PSF beside the image (`NAME-psf.fits` for `NAME-image[-pbcorr].fits`: its `BMAJ`..., or a Gaussian fitted to its main lobe), copied into the header read; None when neither exists (each tool then says what it does) |
| subband | `SUBBAND`; else the OVRO-LWA subband holding the frequency (`55MHz`) |
| ROBUST, TAPER, PBCOR, DEWARPED, CONFIG, NINTERVL | our keywords; unknown robust is None, unknown taper NaN, PBCOR/DEWARPED false |

A fact that a tool needs and nobody gave is an `LwaError` naming the fact and the option that
supplies it (`ImageInfo.require`).

Two images share a grid when their celestial WCS agree within `GRID_TOLERANCE` (CRVAL 1e-7 deg,
CRPIX 1e-4 px, pixel matrix 1e-7 relative, same projection and PV) and their planes have one shape.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.subbands import subband_of_freq

if TYPE_CHECKING:  # astropy.wcs (with astropy.coordinates and table, ~80 ms) loads where a grid is compared
    from astropy.wcs import WCS

__all__ = [
    "header_stokes",
    "ImageHints",
    "ImageInfo",
    "image_info",
    "psf_path",
    "beam_from_psf",
    "info_from_header",
    "find_images",
    "scan_images",
    "same_grid",
    "grid_key",
    "regrid_onto",
    "GRID_TOLERANCE",
    "FITS_SUFFIXES",
    "HINT_OPTIONS",
    "image_hint_options",
]

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts")
KINDS = ("deep", "10min")
GRID_TOLERANCE = {"crval_deg": 1e-7, "crpix_px": 1e-4, "scale_rtol": 1e-7}
HINT_OPTIONS = {"kind": "--kind", "interval": "--interval", "stokes": "--image-stokes", "freq": "--freq-mhz",
                "time": "--duration-s"}
"""The option that supplies each fact, named in the errors."""

_STOKES_AXIS = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR", -5: "XX", -6: "YY",
                -7: "XY", -8: "YX"}
_NOT_IMAGES = ("screen",)  # IMGCAT of products that are not sky images
_PRODUCT_KEYS = ("CUTOUT", "CANDNAME")  # cutouts written by lwa-cutout / lwa-transient


@dataclass(frozen=True)
class ImageHints:
    """What the user says about images whose headers cannot tell (the CLI's identity options)."""

    kind: str | None = None  # deep / 10min
    interval: str | None = None  # t0003 (or 3)
    stokes: str | None = None
    freq_mhz: float | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise LwaError(f"{HINT_OPTIONS['kind']} must be one of {', '.join(KINDS)}, got '{self.kind}'")
        if self.interval is not None and interval_tag(self.interval) is None:
            raise LwaError(f"{HINT_OPTIONS['interval']} must be an interval tag like t0003, got '{self.interval}'")
        if self.freq_mhz is not None and not (math.isfinite(self.freq_mhz) and self.freq_mhz > 0):
            raise LwaError(f"{HINT_OPTIONS['freq']} must be positive, got {self.freq_mhz}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise LwaError(f"{HINT_OPTIONS['time']} must be >= 0, got {self.duration_s}")


def image_hint_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What the user says about images whose headers cannot tell (`lwa_common.images.ImageHints`).

    Adds --kind, --interval, --image-stokes, --freq-mhz, --duration-s and passes `hints`. They
    fill only facts the header lacks (a plain WSClean / CASA image); our keywords always win.
    """
    import functools

    import click

    @click.option(HINT_OPTIONS["kind"], "hint_kind", type=click.Choice(KINDS), default=None,
                  help="Kind of the images without an IMGCAT keyword [default: deep].")
    @click.option(HINT_OPTIONS["interval"], "hint_interval", default=None, metavar="TAG",
                  help="Interval tag (e.g. t0003) of 10 min images without an INTERVAL keyword.")
    @click.option(HINT_OPTIONS["stokes"], "hint_stokes", type=click.Choice(["I", "Q", "U", "V"]), default=None,
                  help="Stokes of images with neither a STOKES keyword nor a STOKES axis.")
    @click.option(HINT_OPTIONS["freq"], "hint_freq_mhz", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="Frequency (MHz) of images with neither a FREQ axis nor FREQMHZ.")
    @click.option(HINT_OPTIONS["time"], "hint_duration_s", type=click.FloatRange(min=0), default=None,
                  help="Data span (s) from DATE-OBS of images without DATE-END [default: a snapshot at DATE-OBS].")
    @functools.wraps(func)
    def wrapper(*args: Any, hint_kind: str | None, hint_interval: str | None, hint_stokes: str | None,
                hint_freq_mhz: float | None, hint_duration_s: float | None, **kwargs: Any) -> Any:
        try:
            hints = ImageHints(kind=hint_kind, interval=hint_interval, stokes=hint_stokes, freq_mhz=hint_freq_mhz,
                               duration_s=hint_duration_s)
        except LwaError as err:
            raise click.BadParameter(str(err)) from None
        return func(*args, hints=hints, **kwargs)

    return wrapper


def interval_tag(text: Any) -> str | None:
    """'t0003', 'T3', '3' -> 't0003'; 'deep' -> 'deep'; None when not an interval."""
    value = str(text).strip().lower()
    if value == "deep":
        return "deep"
    digits = value[1:] if value.startswith("t") else value
    return f"t{int(digits):04d}" if digits.isdigit() else None


@dataclass(frozen=True)
class ImageInfo:
    """What a tool needs to choose and use an image: read from its header once (module doc)."""

    path: Path
    stokes: str  # I / V / ... ; "" unknown
    category: str  # IMGCAT (deep / 10min / stack / diff / snapshot ...), a plain image's kind
    interval: str  # deep / t0001 ... ; "" unknown
    robust: float | None
    taper: float  # NaN when the header does not say
    pbcor: bool
    dewarped: bool
    subband: str
    freq_mhz: float  # NaN unknown
    mjd_mid: float | None
    mjd_start: float | None = None
    mjd_end: float | None = None
    n_intervals: int = 1
    config: str = ""
    beam_deg: tuple[float, float, float] | None = None  # BMAJ, BMIN, BPA
    shape: tuple[int, int] = (0, 0)  # (ny, nx) of the sky plane
    labelled: bool = False  # the header carries IMGCAT (a pipeline product)
    header: fits.Header = field(default_factory=fits.Header, repr=False, compare=False)

    @property
    def kind(self) -> str:
        """`deep` or `10min` for a searchable image (a wideband stack by its INTERVAL), else IMGCAT."""
        if self.category == "stack":
            return "deep" if self.interval == "deep" else "10min"
        return self.category

    @property
    def date_obs(self) -> str:
        return Time(self.mjd_start, format="mjd", scale="utc").isot if self.mjd_start is not None else ""

    @property
    def date_end(self) -> str:
        return Time(self.mjd_end, format="mjd", scale="utc").isot if self.mjd_end is not None else ""

    def missing(self, *facts: str) -> list[str]:
        """Which of `facts` (stokes, freq, time, interval) the header and the hints did not give."""
        gaps = []
        for fact in facts:
            if fact == "stokes" and not self.stokes:
                gaps.append("stokes")
            elif fact == "freq" and not (math.isfinite(self.freq_mhz) and self.freq_mhz > 0):
                gaps.append("freq")
            elif fact == "time" and self.mjd_mid is None:
                gaps.append("time")
            elif fact == "interval" and not self.interval:
                gaps.append("interval")
        return gaps

    def require(self, *facts: str) -> ImageInfo:
        """Self, or an LwaError naming the first missing fact and the option that supplies it."""
        gaps = self.missing(*facts)
        if gaps:
            raise LwaError(f"{self.path}: {_MISSING[gaps[0]]}")
        return self

    def describe(self) -> str:
        flags = f"PBCOR={'T' if self.pbcor else 'F'} DEWARPED={'T' if self.dewarped else 'F'}"
        return f"{self.path} ({self.config or self.category} {self.stokes} {self.interval}, {flags})"


_MISSING = {
    "stokes": f"the Stokes parameter is unknown (no STOKES keyword or STOKES axis): give {HINT_OPTIONS['stokes']}",
    "freq": f"the frequency is unknown (no FREQ axis or FREQMHZ): give {HINT_OPTIONS['freq']}",
    "time": "the observing time is unknown (no DATE-OBS or MJD-MID)",
    "interval": f"a 10 min image without an INTERVAL keyword: give {HINT_OPTIONS['interval']} (e.g. t0003)",
}


def _axis(header: fits.Header, prefix: str) -> int | None:
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{i}", "")).strip().upper().startswith(prefix):
            return i
    return None


def header_stokes(header: fits.Header) -> str:
    """The image's Stokes parameter ("I", "V", "XX"...): our STOKES keyword, else wsclean's STOKES
    axis; "" when the header names neither."""
    value = str(header.get("STOKES", "") or "").strip().upper()
    if value:
        return value
    axis = _axis(header, "STOKES")
    if axis is None:
        return ""
    return _STOKES_AXIS.get(int(round(float(header.get(f"CRVAL{axis}", 0)))), "")


def _stokes(header: fits.Header, hints: ImageHints) -> str:
    return header_stokes(header) or (hints.stokes or "").strip().upper()


def _freq_mhz(header: fits.Header, hints: ImageHints) -> float:
    if header.get("FREQMHZ") is not None:
        return float(header["FREQMHZ"])
    axis = _axis(header, "FREQ")
    if axis is not None and header.get(f"CRVAL{axis}") is not None:
        return float(header[f"CRVAL{axis}"]) / 1e6
    return float(hints.freq_mhz) if hints.freq_mhz is not None else math.nan


def _mjd(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(Time(str(value).strip(), scale="utc").mjd)
    except ValueError:
        return None


def _times(header: fits.Header, hints: ImageHints) -> tuple[float | None, float | None, float | None]:
    start, end = _mjd(header.get("DATE-OBS")), _mjd(header.get("DATE-END"))
    mid = header.get("MJD-MID")
    mid = float(mid) if mid is not None else None
    if start is not None and end is None and hints.duration_s is not None:
        end = start + hints.duration_s / 86400.0
    if mid is None and start is not None:
        mid = (start + end) / 2 if end is not None else start
    return start, end, mid


def _subband(header: fits.Header, freq_mhz: float) -> str:
    label = str(header.get("SUBBAND", "") or "").strip()
    if label or not math.isfinite(freq_mhz):
        return label
    try:
        return f"{subband_of_freq(freq_mhz * 1e6)}MHz"
    except LwaError:
        return f"{freq_mhz:.0f}MHz"


def _beam(header: fits.Header) -> tuple[float, float, float] | None:
    bmaj, bmin = header.get("BMAJ"), header.get("BMIN")
    if not bmaj or not bmin:
        return None
    return float(bmaj), float(bmin), float(header.get("BPA", 0.0) or 0.0)


def _float_or(value: Any, default: float | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def info_from_header(path: str | Path, header: fits.Header, hints: ImageHints | None = None) -> ImageInfo:
    """The `ImageInfo` of an already read header (the module doc's rules)."""
    hints = hints or ImageHints()
    labelled = bool(str(header.get("IMGCAT", "") or "").strip())
    category = str(header.get("IMGCAT", "") or "").strip().lower() if labelled else (hints.kind or "deep")
    interval = interval_tag(header.get("INTERVAL", "")) or ""
    if not interval:
        if category == "deep":
            interval = "deep"
        elif hints.interval is not None:
            interval = interval_tag(hints.interval) or ""
    freq = _freq_mhz(header, hints)
    start, end, mid = _times(header, hints)
    naxis = int(header.get("NAXIS", 0))
    return ImageInfo(
        path=Path(path),
        stokes=_stokes(header, hints),
        category=category,
        interval=interval,
        robust=_float_or(header.get("ROBUST"), None),
        taper=_float_or(header.get("TAPER"), math.nan),
        pbcor=bool(header.get("PBCOR", False)),
        dewarped=bool(header.get("DEWARPED", False)),
        subband=_subband(header, freq),
        freq_mhz=freq,
        mjd_mid=mid,
        mjd_start=start,
        mjd_end=end,
        n_intervals=int(_float_or(header.get("NINTERVL"), 1) or 1),
        config=str(header.get("CONFIG", "") or ""),
        beam_deg=_beam(header),
        shape=(int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0))) if naxis >= 2 else (0, 0),
        labelled=labelled,
        header=header,
    )


_PSF_OF = ("-image-pbcorr.fits", "-image.fits", "-dirty.fits", "-residual.fits", "-model.fits")


def psf_path(path: str | Path) -> Path | None:
    """WSClean's PSF beside an image (`NAME-psf.fits` for `NAME-image.fits` and its siblings), if present."""
    path = Path(path)
    for suffix in _PSF_OF:
        if path.name.endswith(suffix):
            psf = path.with_name(path.name[: -len(suffix)] + "-psf.fits")
            return psf if psf.is_file() else None
    return None


def beam_from_psf(psf: str | Path) -> tuple[float, float, float] | None:
    """(BMAJ, BMIN, BPA) in degrees of a PSF image: its own BMAJ cards, else a Gaussian fitted to its
    main lobe (the half-maximum area around the peak sets the start; `lwa_common.fitting`). None when
    the fit does not converge."""
    from astropy.wcs.utils import proj_plane_pixel_scales
    from scipy import ndimage

    from lwa_common.fitsio import celestial_wcs, image_plane
    from lwa_common.fitting import FWHM_PER_SIGMA, fit_gaussian

    with fits.open(psf) as hdul:
        header, data = hdul[0].header, hdul[0].data
        beam = _beam(header)
        if beam is not None:
            return beam
        plane = np.nan_to_num(image_plane(np.asarray(data, dtype=float)))
    scale = float(np.mean(proj_plane_pixel_scales(celestial_wcs(header))))  # deg per pixel
    y0, x0 = np.unravel_index(np.argmax(plane), plane.shape)
    peak = plane[y0, x0]
    if not peak > 0:
        return None
    reach = 64
    box = plane[max(y0 - reach, 0): y0 + reach + 1, max(x0 - reach, 0): x0 + reach + 1]
    labels, _ = ndimage.label(box > peak / 2)
    n_half = int((labels == labels[min(y0, reach), min(x0, reach)]).sum())
    fwhm_px = max(2.0 * math.sqrt(n_half / math.pi), 1.0)
    sigma = fwhm_px / FWHM_PER_SIGMA
    fit = fit_gaussian(plane, float(x0), float(y0), sigma_x=sigma, sigma_y=sigma,
                       half_box=max(3, int(math.ceil(fwhm_px))), fit_offset=False, radius=fwhm_px)
    if fit is None or not fit.converged:
        return None
    to_fwhm_deg = FWHM_PER_SIGMA * scale
    bpa = math.degrees(math.atan2(-math.cos(fit.theta_major), math.sin(fit.theta_major))) % 180.0
    return fit.sigma_major * to_fwhm_deg, fit.sigma_minor * to_fwhm_deg, bpa


def _beam_from_sibling_psf(path: Path, header: fits.Header) -> None:
    """Without BMAJ in `header`: take the beam of WSClean's PSF beside `path` into `header` (in memory)."""
    psf = psf_path(path)
    if psf is None:
        return
    try:
        beam = beam_from_psf(psf)
    except (OSError, ValueError, TypeError, LwaError) as err:
        log.debug("no beam from %s: %s", psf, err)
        return
    if beam is not None:
        header["BMAJ"], header["BMIN"], header["BPA"] = beam
        header.add_history(f"lwa-pipe: BMAJ/BMIN/BPA read from {psf.name} (the image had no restoring beam)")
        log.info("%s has no restoring beam: %.3f x %.3f deg, PA %.1f from %s", path.name, *beam, psf.name)


def image_info(path: str | Path, hints: ImageHints | None = None) -> ImageInfo:
    """Read one FITS header and interpret it (module doc); LwaError when it is not readable."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.getheader(path)
    except FileNotFoundError:
        raise LwaError(f"image not found: {path}") from None
    except (OSError, ValueError, TypeError) as err:
        raise LwaError(f"cannot read FITS header {path}: {err}") from None
    if _beam(header) is None:
        _beam_from_sibling_psf(path, header)
    return info_from_header(path, header, hints)


# --------------------------------------------------------------------------- discovery


def find_images(inputs: Iterable[str | Path], *, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """FITS files given directly (any name), or found recursively under given folders.

    Folder search: files ending in .fits/.fit/.fts (any case), hidden folders and files skipped, as
    are the `exclude` folders (an output folder inside an input folder; never the input itself).
    Each file once (by resolved path), in the order given, sorted within a folder.
    """
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            root = item.resolve()
            skip = [Path(e).resolve() for e in exclude]
            skip = [e for e in skip if e != root and not root.is_relative_to(e)]
            for p in sorted(item.rglob("*")):
                rel = p.relative_to(item)
                if (p.suffix.lower() not in FITS_SUFFIXES or any(part.startswith(".") for part in rel.parts)
                        or not p.is_file() or any(p.resolve().is_relative_to(e) for e in skip)):
                    continue
                out.append(p)
        elif item.is_file():
            out.append(item)
        else:
            raise LwaError(f"input not found: {item}")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def scan_images(inputs: Iterable[str | Path], hints: ImageHints | None = None, *,
                exclude: Sequence[str | Path] = ()) -> tuple[list[ImageInfo], list[tuple[Path, str]]]:
    """`image_info` of every sky image under `inputs`, plus (path, reason) of the files skipped.

    Skipped: unreadable files, headers without a 2-D image, dewarp screens, model images (BUNIT
    JY/PIXEL) and cutouts written by lwa-cutout / lwa-transient (keywords CUTOUT / CANDNAME).
    When the inputs hold lwa-pipe images (IMGCAT), FITS files without IMGCAT found in folders are
    WSClean's by-products next to them (dirty, psf, residual), not images; named as files, they
    are used.
    """
    inputs = list(inputs)
    named = {Path(p).resolve() for p in inputs if Path(p).is_file()}
    infos, skipped = [], []
    for path in find_images(inputs, exclude=exclude):
        try:
            info = image_info(path, hints)
        except LwaError as err:
            log.warning("skipping %s", err)
            skipped.append((path, str(err)))
            continue
        why = ("a dewarp screen" if info.category in _NOT_IMAGES else
               "a cutout" if any(k in info.header for k in _PRODUCT_KEYS) else
               "a model image (BUNIT JY/PIXEL)" if str(info.header.get("BUNIT", "")).upper() == "JY/PIXEL" else
               "no 2-D image" if 0 in info.shape else "")
        if why:
            log.debug("skipping %s: %s", path, why)
            skipped.append((path, why))
            continue
        infos.append(info)
    if any(i.labelled for i in infos):
        plain = [i for i in infos if not i.labelled and i.path.resolve() not in named]
        for info in plain:
            log.debug("skipping %s: no IMGCAT in a folder of lwa-pipe images (a WSClean by-product?)", info.path)
            skipped.append((info.path, "no IMGCAT among lwa-pipe images (name it as a file to use it)"))
        dropped = {i.path for i in plain}
        infos = [i for i in infos if i.path not in dropped]
    return infos, skipped


# --------------------------------------------------------------------------- grids


def _grid(item: Any) -> tuple[WCS, tuple[int, int]]:
    from astropy.wcs import WCS

    from lwa_common.fitsio import celestial_wcs

    if isinstance(item, ImageInfo):
        return celestial_wcs(item.header), item.shape
    if isinstance(item, fits.Header):
        return celestial_wcs(item), (int(item.get("NAXIS2", 0)), int(item.get("NAXIS1", 0)))
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], WCS):
        wcs, shape = item
        return (wcs.celestial if wcs.naxis > 2 else wcs), (int(shape[-2]), int(shape[-1]))
    raise LwaError(f"a grid is a FITS header, an ImageInfo or (WCS, shape), got {type(item).__name__}")


def same_grid(a: Any, b: Any) -> bool:
    """Do `a` and `b` (headers, ImageInfos or (WCS, shape) pairs) share one pixel grid?"""
    (wa, sa), (wb, sb) = _grid(a), _grid(b)
    if tuple(sa) != tuple(sb):
        return False
    t = GRID_TOLERANCE
    return (
        [c.upper() for c in wa.wcs.ctype] == [c.upper() for c in wb.wcs.ctype]
        and np.allclose(wa.wcs.crval, wb.wcs.crval, rtol=0, atol=t["crval_deg"])
        and np.allclose(wa.wcs.crpix, wb.wcs.crpix, rtol=0, atol=t["crpix_px"])
        and np.allclose(wa.pixel_scale_matrix, wb.pixel_scale_matrix, rtol=t["scale_rtol"], atol=1e-13)
        and sorted(wa.wcs.get_pv()) == sorted(wb.wcs.get_pv())
    )


def grid_key(item: Any) -> tuple:
    """A hashable key of the pixel grid (shape, projection, CRVAL, CRPIX, pixel matrix rounded to the
    `GRID_TOLERANCE` quanta), to count or group images by grid; `same_grid` is the comparison."""
    wcs, shape = _grid(item)
    t = GRID_TOLERANCE
    digits = (-int(math.log10(t["crval_deg"])), -int(math.log10(t["crpix_px"])))
    scale = np.ravel(wcs.pixel_scale_matrix)
    ref = float(np.max(np.abs(scale))) or 1.0
    return (tuple(shape), tuple(c.upper() for c in wcs.wcs.ctype), tuple(round(float(v), digits[0]) for v in wcs.wcs.crval),
            tuple(round(float(v), digits[1]) for v in wcs.wcs.crpix),
            tuple(round(float(v) / ref, 7) * ref for v in scale))


def regrid_onto(plane: np.ndarray, source: Any, target: Any, *, order: str = "bilinear") -> np.ndarray:
    """`plane` (on the grid of `source`) reprojected onto the grid of `target`; NaN outside its footprint."""
    from reproject import reproject_interp

    (ws, _), (wt, shape) = _grid(source), _grid(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, footprint = reproject_interp((np.asarray(plane, dtype=np.float64), ws), wt, shape_out=tuple(shape),
                                          order=order)
    out[footprint <= 0] = np.nan
    return out
