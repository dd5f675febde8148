"""`apply`: resample images with the inverse of the ionospheric warp.

The dewarped value at pixel p is the observed value at p + d(p), where d is the screen (observed
minus true position, a function of the true position): a pull resampling with
`scipy.ndimage.map_coordinates`, cubic B-spline by default (bilinear on request). Cubic keeps the
peak of a beam-sized source to a fraction of a per cent at any sub-pixel shift, where bilinear
interpolation smooths it by up to ~10 % for a 3-pixel beam. A screen whose offsets vary over the
image stretches what it resamples by its Jacobian (lwa-sim's fields by up to ~8 %), which would
change the fitted area and so the integrated flux of a compact source by as much: compact sources
are therefore moved rigidly by their own offset (`lwa_dewarp.rigid`, DWRIGID patches), and only
the emission between them follows the smooth screen.

`map_coordinates` has no notion of missing data, so the NaN handling is ours: NaN pixels (outside
the horizon, below the primary-beam cut) are filled before interpolation -- a band of a few
pixels by iterated neighbour means so the cubic spline sees no step at the edge, zeros beyond --
and every output pixel whose bilinear cell holds a missing input pixel becomes NaN again. NaN
regions therefore keep NaN (moved with the warp) and do not bleed into valid pixels; pixels that
draw from outside the image are NaN too.

The image is spline-prefiltered once and then sampled block by block of rows, the coordinates of
a block (screen upsampling included) serving every plane: 1.3x the CPU time of one bare
`map_coordinates` call on the same grid (bench/bench_dewarp.py, 2048^2, `rigid_snr = 0`), at a
fraction of its memory; finding and blending the rigid patches (a `Background2D` RMS with
`extract`'s sort-based box statistics) adds about 0.7x (2.1x in all).

Images on the screen's own grid (every product of one hour and subband) use the screen directly;
any other grid goes through the sky: target pixel -> sky -> reference pixel -> offset -> sky ->
target pixel. Offsets scale as frequency^-2 (ionospheric refraction) when the image frequency
differs from the screen's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import map_coordinates, spline_filter

from lwa_common.config import Dewarp
from lwa_common.errors import LwaError
from lwa_common.fitsio import read_image, write_image
from lwa_common.images import ImageHints, image_info, same_grid
from lwa_common.io import check_output
from lwa_dewarp.extract import beam_from_header, celestial_wcs
from lwa_dewarp.fit import image_freq_mhz
from lwa_dewarp.rigid import Patches, find_patches
from lwa_dewarp.screen import Screen, read_screen

__all__ = ["apply_screen", "dewarp_images", "dewarped_path", "sample_coordinates", "resample_nan_aware",
           "offset_scale", "DewarpedImage"]

log = logging.getLogger(__name__)

TOOL = "lwa-dewarp"
FILL_BAND_PX = 3
BLOCK_PIXELS = 1 << 20  # output pixels per block of rows
SPLINE_ROW_PAD = 8  # float64 values added to each row of the spline coefficients' buffer (cache sets)
MAX_HOURS_APART = 1.0


def offset_scale(screen: Screen, header: fits.Header, *, freq_scaling: bool = Dewarp.freq_scaling,
                 hints: ImageHints | None = None) -> float:
    """(f_screen / f_image)^2 when both frequencies are known and differ, else 1."""
    if not freq_scaling:
        return 1.0
    f_img = image_freq_mhz(header, hints)
    f_scr = screen.freq_mhz
    if not (math.isfinite(f_img) and math.isfinite(f_scr) and f_img > 0 and f_scr > 0):
        return 1.0
    ratio = f_scr / f_img
    return 1.0 if abs(ratio - 1.0) < 1e-4 else ratio**2


class _Sampler:
    """Where output pixels sample the input, computed block by block of rows."""

    def __init__(self, screen: Screen, header: fits.Header, shape: tuple[int, int], *, freq_scaling: bool,
                 hints: ImageHints | None = None) -> None:
        self.screen, self.shape = screen, tuple(shape)
        self.wcs = celestial_wcs(header)
        self.scale = offset_scale(screen, header, freq_scaling=freq_scaling, hints=hints)
        self.same_grid = same_grid((screen.ref_wcs, screen.ref_shape), (self.wcs, self.shape))
        if not self.same_grid:
            log.info("image grid differs from the screen grid: mapping through the sky")
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def block(self, y0: int, y1: int, *, reuse: bool = False) -> np.ndarray:
        """(2, y1 - y0, nx) input (y, x) pixel coordinates of output rows y0..y1-1; pixels with
        no sky position get coordinates far outside the image (so their output is NaN). With
        `reuse` the array is a buffer that the next call overwrites."""
        nx = self.shape[1]
        if reuse:
            if self._buffers is None or self._buffers[0].shape[1] < y1 - y0:
                self._buffers = (np.empty((2, y1 - y0, nx)), np.empty((y1 - y0, nx)))
            coords, work = self._buffers[0][:, : y1 - y0], self._buffers[1][: y1 - y0]
        else:
            coords, work = np.empty((2, y1 - y0, nx)), None
        if self.same_grid:
            self.screen.rows(y0, y1, out=coords, scale=self.scale, work=work)  # (dy, dx) * scale
            coords[0] += np.arange(y0, y1, dtype=float)[:, None]
            coords[1] += np.arange(nx, dtype=float)[None, :]
            return coords
        yy, xx = np.mgrid[y0:y1, 0:nx].astype(float)
        xs, ys = self.at(xx, yy)
        ok = np.isfinite(xs) & np.isfinite(ys)
        coords[0] = np.where(ok, ys, -1e6)
        coords[1] = np.where(ok, xs, -1e6)
        return coords

    def at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input (x, y) pixels sampled by output pixels (x, y) (arrays); NaN without a sky position."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if self.same_grid:
            dx, dy = self.screen.offsets_at(x, y)
            return x + self.scale * dx, y + self.scale * dy
        ref = self.screen.ref_wcs
        with np.errstate(invalid="ignore"):
            ra, dec = self.wcs.pixel_to_world_values(x, y)
            xr, yr = ref.world_to_pixel_values(ra, dec)
            ok = np.isfinite(xr) & np.isfinite(yr)
            dx, dy = self.screen.offsets_at(np.where(ok, xr, 0.0), np.where(ok, yr, 0.0))
            ra_o, dec_o = ref.pixel_to_world_values(xr + self.scale * dx, yr + self.scale * dy)
            xs, ys = self.wcs.world_to_pixel_values(ra_o, dec_o)
        ok &= np.isfinite(xs) & np.isfinite(ys)
        return np.where(ok, xs, np.nan), np.where(ok, ys, np.nan)


def sample_coordinates(screen: Screen, header: fits.Header, shape: tuple[int, int], *,
                       freq_scaling: bool = Dewarp.freq_scaling
                       ) -> tuple[np.ndarray, bool, float]:
    """Where each output pixel samples the input: array (2, ny, nx) of (y, x) input pixels.

    Returns (coords, same_grid, scale); coordinates that have no sky position are set far outside
    the image so that the output is NaN there.
    """
    sampler = _Sampler(screen, header, shape, freq_scaling=freq_scaling)
    return sampler.block(0, shape[0]), sampler.same_grid, sampler.scale


def _dilate3(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation by shifted ORs (several times faster than ndimage on big images)."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def _fill_band(plane: np.ndarray, valid: np.ndarray, width: int) -> np.ndarray:
    """NaNs replaced: `width` rings of pixels next to valid data by the mean of their already
    known 8-neighbours, zeros beyond (so the cubic spline prefilter sees no step at the edge of
    the data). Only the first ring takes a pass over the image; each further ring is the unknown
    neighbours of the last one, so the cost beyond that pass is set by the NaN boundary length."""
    ny, nx = plane.shape
    values = np.zeros((ny + 2, nx + 2))
    known = np.zeros((ny + 2, nx + 2), dtype=bool)
    values[1:-1, 1:-1] = np.where(valid, plane, 0.0)
    known[1:-1, 1:-1] = valid
    ring = ~known & _dilate3(known)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = False
    ring = np.flatnonzero(ring)  # flat indices into the padded frame, row-major
    flat_values, flat_known = values.reshape(-1), known.reshape(-1)
    stride = nx + 2
    offsets = np.array([dy * stride + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    for step in range(width):
        if not len(ring):
            break
        total = np.zeros(len(ring))
        count = np.zeros(len(ring))
        for offset in offsets:
            k = flat_known[ring + offset]
            total += np.where(k, flat_values[ring + offset], 0.0)
            count += k
        flat_values[ring] = total / count
        flat_known[ring] = True
        if step + 1 < width:
            ring = _next_ring(ring, offsets, flat_known, ny, nx)
    return values[1:-1, 1:-1]


def _next_ring(ring: np.ndarray, offsets: np.ndarray, flat_known: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """The unknown pixels next to `ring` (flat indices into the (ny + 2, nx + 2) padded frame,
    sorted), inside the image: those that `~known & dilate(known)` would give once `ring` is known."""
    around = np.unique((ring[:, None] + offsets[None, :]).ravel())
    row, col = np.divmod(around, nx + 2)
    inside = (row >= 1) & (row <= ny) & (col >= 1) & (col <= nx)
    return around[inside & ~flat_known[around]]


def _touches_invalid(bad: np.ndarray, near_bad: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """True where an invalid pixel has a non-zero bilinear weight at the sample point (exactly the
    pixels whose bilinear interpolation would see a NaN). `near_bad` is `bad` dilated by 3x3.

    The bilinear cell lies in the 3x3 neighbourhood of the nearest pixel, and the nearest pixel
    always has a weight >= 1/4: so a point is valid when that neighbourhood is all valid, invalid
    when the nearest pixel is, and only the thin set of points in between needs the exact test.
    """
    ny, nx = bad.shape
    ry = np.clip(np.rint(coords[0]), 0, ny - 1).astype(np.intp)
    rx = np.clip(np.rint(coords[1]), 0, nx - 1).astype(np.intp)
    flat = ry * nx + rx
    out = bad.ravel()[flat]
    edge = ~out & near_bad.ravel()[flat]
    if edge.any():
        cy, cx = coords[0][edge], coords[1][edge]
        y0 = np.clip(np.floor(cy), 0, ny - 1)
        x0 = np.clip(np.floor(cx), 0, nx - 1)
        fy, fx = cy - y0 > 1e-9, cx - x0 > 1e-9
        y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
        y1, x1 = np.minimum(y0 + 1, ny - 1), np.minimum(x0 + 1, nx - 1)
        out[edge] = (bad[y0, x0] | (fy & bad[y1, x0]) | (fx & bad[y0, x1]) | (fy & fx & bad[y1, x1]))
    return out


def _spline_coefficients(filled: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients of `filled` (`spline_filter`, mode 'nearest') in a buffer whose rows
    are `SPLINE_ROW_PAD` values longer than the image's. The filter also runs down the columns, and
    a row stride of a power of two bytes (2048 or 4096 float64) puts a column's pixels in the same
    few cache sets: the same numbers bitwise, in 282 instead of 468 ms at 4096^2 (71 vs 91 ms at
    2048^2; `_fill_band`'s output, read in place, has a padded stride too)."""
    ny, nx = filled.shape
    out = np.empty((ny, nx + SPLINE_ROW_PAD))[:, :nx]
    return spline_filter(filled, order=3, output=out, mode="nearest")


class _Prepared:
    """One image plane ready for resampling: NaN-filled and (cubic) spline-prefiltered once."""

    def __init__(self, plane: np.ndarray, order: int) -> None:
        if order not in (1, 3):
            raise LwaError(f"interpolation order must be 1 (bilinear) or 3 (cubic), got {order}")
        self.order = order
        self.shape = plane.shape
        valid = np.isfinite(plane)
        self.bad = None if valid.all() else ~valid
        if self.bad is None:
            filled = np.asarray(plane, dtype=float)
        elif order == 1:  # bilinear never uses a pixel that the validity test does not see
            filled = np.where(valid, plane, 0.0)
        else:
            filled = _fill_band(plane, valid, FILL_BAND_PX)
        self.near_bad = None if self.bad is None else _dilate3(self.bad)
        self.coeffs = _spline_coefficients(filled) if order == 3 else filled

    def sample(self, coords: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        ny, nx = self.shape
        if out is None:
            out = np.empty(coords.shape[1:])
        map_coordinates(self.coeffs, coords, order=self.order, mode="nearest", prefilter=False, output=out)
        outside = coords[0] < 0
        outside |= coords[0] > ny - 1
        outside |= coords[1] < 0
        outside |= coords[1] > nx - 1
        if self.bad is not None:
            outside |= _touches_invalid(self.bad, self.near_bad, coords)
        out[outside] = np.nan
        return out


def resample_nan_aware(plane: np.ndarray, coords: np.ndarray, *, order: int = Dewarp.interp_order) -> np.ndarray:
    """`map_coordinates` of `plane` at `coords` that keeps NaN regions NaN and makes edges NaN."""
    return _Prepared(np.asarray(plane), order).sample(coords)


def _dewarp_planes(planes: np.ndarray, sampler: _Sampler, order: int, patches: Patches | None = None) -> np.ndarray:
    """Resample planes (k, ny, nx) block by block of rows: the coordinates of a block serve every
    plane, and memory stays at a few blocks instead of full-size coordinate arrays. Near the
    `patches` (compact sources) the coordinates are their rigid shifts (`lwa_dewarp.rigid`)."""
    prepared = [_Prepared(p, order) for p in planes]
    k, ny, nx = planes.shape
    out = np.empty((k, ny, nx), dtype=np.float32)
    step = max(1, BLOCK_PIXELS // max(nx, 1))
    buffer = np.empty((min(step, ny), nx))
    for y0 in range(0, ny, step):
        y1 = min(y0 + step, ny)
        coords = sampler.block(y0, y1, reuse=True)
        if patches is not None:
            patches.blend(coords, y0)
        for i, prep in enumerate(prepared):
            out[i, y0:y1] = prep.sample(coords, out=buffer[: y1 - y0])
    return out


def _patches(planes: np.ndarray, header: fits.Header, sampler: _Sampler, d: Dewarp, *, where: str) -> Patches | None:
    """The rigid patches of an image (None when `rigid_snr` is 0 or the header has no beam)."""
    if d.rigid_snr <= 0:
        return None
    try:
        beam = beam_from_header(header, where=where)
    except LwaError as err:
        log.warning("%s: compact sources are resampled with the smooth screen (no rigid patches)", err)
        return None
    return find_patches(planes, sampler.at, beam_px=beam.bmaj_px, snr=d.rigid_snr, radius_beams=d.rigid_radius_beams,
                        taper_beams=d.rigid_taper_beams)


def apply_screen(
    data: np.ndarray,
    header: fits.Header,
    screen: Screen | str | Path,
    *,
    settings: Dewarp | None = None,
) -> np.ndarray:
    """The dewarped image (float32): `data` (any leading axes, last two y, x) resampled with the
    inverse warp of `screen` (a `Screen` or a screen FITS path), compact sources moved rigidly
    (`lwa_dewarp.rigid`). `settings`: the `[dewarp]` section (None: the defaults) gives the
    interpolation (`interp_order`), `freq_scaling` and `rigid_*`."""
    d = settings if settings is not None else Dewarp()
    order, freq_scaling = d.interp_order, d.freq_scaling
    _check_order(order)
    if not isinstance(screen, Screen):
        screen = read_screen(screen)
    data = np.asarray(data)
    if data.ndim < 2:
        raise LwaError(f"image data must be at least 2-D, got shape {data.shape}")
    shape = data.shape[-2:]
    sampler = _Sampler(screen, header, shape, freq_scaling=freq_scaling)
    planes = data.reshape(-1, *shape)
    patches = _patches(planes, header, sampler, d, where="image")
    return _dewarp_planes(planes, sampler, order, patches).reshape(data.shape)


@dataclass(frozen=True)
class DewarpedImage:
    """One output of `dewarp_images` (the --json record)."""

    input: str
    output: str
    same_grid: bool
    offset_scale: float
    nan_fraction_in: float
    nan_fraction_out: float


def dewarped_path(path: Path, output_dir: Path | None) -> Path:
    """`X.fits` -> `X_dewarped.fits`, next to the input or in `output_dir`."""
    name = path.name
    stem = name[: -len(".fits")] if name.lower().endswith(".fits") else path.stem
    return (output_dir if output_dir is not None else path.parent) / f"{stem}_dewarped.fits"


def _check_input(path: Path, hints: ImageHints | None = None) -> fits.Header:
    info = image_info(path, hints)
    header = info.header
    if info.category == "screen":
        raise LwaError(f"{path} is a dewarp screen, not an image")
    if info.dewarped:
        raise LwaError(f"{path} is already dewarped (DEWARPED = T)")
    if 0 in info.shape:
        raise LwaError(f"{path} has no 2-D image in its primary HDU")
    if not celestial_wcs(header).has_celestial:
        raise LwaError(f"{path} has no celestial WCS")
    return header


def _check_order(order: int) -> None:
    if order not in (1, 3):
        raise LwaError(f"interpolation order (--order, dewarp.interp_order) must be 1 (bilinear) or 3 (cubic), "
                       f"got {order}")


def _time_check(path: Path, header: fits.Header, screen: Screen) -> None:
    a, b = header.get("MJD-MID"), screen.header.get("MJD-MID")
    if a is not None and b is not None and abs(float(a) - float(b)) * 24 > MAX_HOURS_APART:
        log.warning("%s is %.1f h from the screen's image: the ionosphere will have changed", path,
                    abs(float(a) - float(b)) * 24)


def dewarp_images(
    paths: Sequence[str | Path],
    *,
    screen: str | Path,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    settings: Dewarp | None = None,
    hints: ImageHints | None = None,
) -> list[DewarpedImage]:
    """Dewarp every image in `paths` with the screen FITS `screen`; writes `*_dewarped.fits`
    (DEWARPED = T, DWSCREEN = screen file name, provenance). Every input and output is checked
    before the first image is resampled. `settings`: the `[dewarp]` section (None: the defaults;
    `interp_order`, `freq_scaling`, `rigid_*`)."""
    d = settings if settings is not None else Dewarp()
    order, freq_scaling = d.interp_order, d.freq_scaling
    _check_order(order)
    screen_path = Path(screen)
    scr = read_screen(screen_path)
    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise LwaError(f"output {out_dir} exists and is not a folder")
    plan: list[tuple[Path, Path, fits.Header]] = []
    seen: dict[Path, Path] = {}
    for p in map(Path, paths):
        header = _check_input(p, hints)
        out = dewarped_path(p, out_dir)
        if out.resolve() in seen:
            raise LwaError(f"{p} and {seen[out.resolve()]} would both be written to {out}")
        seen[out.resolve()] = p
        check_output(out, overwrite=overwrite)
        _time_check(p, header, scr)
        plan.append((p, out, header))
    if scr.is_identity:
        log.warning("screen %s is the identity (the fitted screen did not beat it on held-out anchors): "
                    "the images are copied unchanged, with DWSTATUS = 'IDENTITY'", screen_path)
    log.info("apply: %d images, screen %s (%d anchors, %.2f MHz), order %d, frequency scaling %s", len(plan),
             screen_path, int(scr.header.get("NANCHOR", 0)), scr.freq_mhz, order, "on" if freq_scaling else "off")
    results = []
    for p, out, _ in plan:
        data, header = read_image(p)
        sampler = _Sampler(scr, header, data.shape[-2:], freq_scaling=freq_scaling, hints=hints)
        same, scale = sampler.same_grid, sampler.scale
        n_rigid = 0
        if scr.is_identity:  # the fit found no gain over the identity: the pixels stay as they are
            dewarped = data
        else:
            planes = data.reshape(-1, *data.shape[-2:])
            patches = _patches(planes, header, sampler, d, where=str(p))
            n_rigid = len(patches) if patches is not None else 0
            dewarped = _dewarp_planes(planes, sampler, order, patches).reshape(data.shape)
        header["DWSTATUS"] = ("IDENTITY" if scr.is_identity else "SCREEN",
                              "IDENTITY: no gain, pixels copied unchanged")
        header["DWSCREEN"] = (screen_path.name[:68], "lwa-dewarp screen applied")
        header["DWORDER"] = (order, "dewarp interpolation order (1 linear, 3 cubic)")
        header["DWSCALE"] = (round(scale, 6), "screen offsets scaled by (f_screen/f_image)^2")
        header["DWRIGID"] = (n_rigid, "compact sources shifted rigidly, not stretched")
        write_image(out, dewarped, header, tool=TOOL, keywords={"DEWARPED": True}, argv=argv, overwrite=overwrite,
                    extra_history=[f"input: {p}", f"screen: {screen_path}"])
        rec = DewarpedImage(str(p), str(out), same, scale, float(np.mean(~np.isfinite(data))),
                            float(np.mean(~np.isfinite(dewarped))))
        log.info("dewarped %s -> %s (%s grid, offset scale %.3f, NaN %.1f%% -> %.1f%%)", p, out,
                 "screen" if same else "other", scale, 100 * rec.nan_fraction_in, 100 * rec.nan_fraction_out)
        results.append(rec)
    return results
