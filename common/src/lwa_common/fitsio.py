"""FITS images that describe themselves.

Tools choose images by header, never by parsing file names. The keywords (DESIGN.md):

| key | meaning |
|---|---|
| STOKES | I / V / ... |
| IMGCAT | deep / 10min / snapshot / diff / stack |
| INTERVAL, NINTERVL | interval tag (t0001...) and how many intervals the hour has |
| ROBUST, TAPER | Briggs robust; inner Tukey taper in lambda (0 = none) |
| PBCOR, DEWARPED | primary-beam corrected? ionospherically dewarped? |
| SUBBAND, FREQMHZ | subband label (55MHz) and centre frequency |
| DATE-OBS, DATE-END, MJD-MID | time range of the data in the image |
| BMAJ, BMIN, BPA | restoring beam (deg) |
| LWAVER | lwa-pipe version that wrote the file |
| BEAMREF | restoring beam: `fitted`, or the deep image whose beam restored this one |

plus provenance HISTORY cards (`lwa_common.provenance`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.provenance import stamp_header, tool_version

if TYPE_CHECKING:  # astropy.wcs (with astropy.coordinates and table, ~80 ms) loads where a WCS is made
    from astropy.wcs import WCS

__all__ = [
    "IMAGE_KEYWORDS",
    "read_image",
    "write_image",
    "update_keywords",
    "image_plane",
    "celestial_wcs",
    "sky_mask",
]

IMAGE_KEYWORDS: dict[str, str] = {
    "STOKES": "Stokes parameter of the image",
    "IMGCAT": "image category: deep/10min/snapshot/diff/stack",
    "INTERVAL": "interval tag (t0001...) or 'deep'",
    "NINTERVL": "number of intervals in the span",
    "ROBUST": "Briggs robust weighting",
    "TAPER": "inner Tukey taper [lambda], 0 = none",
    "PBCOR": "primary-beam corrected",
    "DEWARPED": "ionospherically dewarped",
    "SUBBAND": "OVRO-LWA subband label",
    "FREQMHZ": "image centre frequency [MHz]",
    "DATE-OBS": "start of the data (UTC)",
    "DATE-END": "end of the data (UTC)",
    "MJD-MID": "middle of the data (MJD, UTC)",
    "LWAVER": "lwa-pipe version that wrote this file",
    "BEAMREF": "restoring beam: 'fitted' or the deep image's",
}


def read_image(path: str | Path, *, require_finite: bool = True,
               native: bool = True) -> tuple[np.ndarray, fits.Header]:
    """Primary HDU data (as float) and header; one-line error when unreadable or truncated, and
    (unless `require_finite` is false) when no pixel is finite: an all-NaN image is never science.

    `native` false: float pixels stay in the file's (big-endian) byte order, for an image that is
    only passed on to `write_image` (which then writes them as they are instead of swapping their
    bytes to native here and back and forth again in astropy's write: three passes over the image).
    """
    path = Path(path)
    if not path.exists():
        raise LwaError(f"image not found: {path}")
    if path.is_dir():
        raise LwaError(f"{path} is a folder, not a FITS image")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstropyUserWarning)
            with fits.open(path, memmap=False) as hdul:
                data = hdul[0].data
                header = hdul[0].header  # the file is closed below: nothing else holds this header
    except (OSError, ValueError, TypeError) as err:
        raise LwaError(f"cannot read FITS image {path}: {err}") from None
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message)]
    if truncated:
        raise LwaError(f"cannot read FITS image {path}: {truncated[0]}")
    for w in caught:  # the others, as they would have been shown
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if data is None:
        raise LwaError(f"FITS file {path} has no image data in its primary HDU")
    if require_finite and data.size and not _any_finite(data):
        raise LwaError(f"FITS image {path} has no finite pixel (all NaN/inf): nothing to measure")
    if not native and data.dtype.kind == "f":
        return data, header
    if data.dtype.kind == "f" and not data.dtype.isnative and data.flags.writeable:
        data = data.byteswap(inplace=True).view(data.dtype.newbyteorder("="))  # FITS is big-endian: no copy
    return np.asarray(data, dtype=np.float32 if data.dtype.itemsize <= 4 else np.float64), header


def _any_finite(data: np.ndarray) -> bool:
    """Whether any pixel is finite; looks at the middle rows first (all-sky images are NaN at the
    corners), so that a real image costs a few rows rather than a pass over every pixel."""
    flat = data.reshape(-1)
    mid, half = flat.size // 2, 1 << 15
    return bool(np.isfinite(flat[max(mid - half, 0): mid + half]).any() or np.isfinite(flat).any())


_FITS_FLOAT32 = np.dtype(">f4")
"""FITS's own 32-bit float (BITPIX -32): astropy writes an array of it without converting it."""


def update_keywords(header: fits.Header, keywords: dict[str, Any]) -> fits.Header:
    for key, value in keywords.items():
        if value is None:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        header[key] = (value, IMAGE_KEYWORDS.get(key, ""))
    return header


def write_image(
    path: str | Path,
    data: np.ndarray,
    header: fits.Header,
    *,
    tool: str,
    keywords: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    extra_history: list[str] | None = None,
    overwrite: bool = True,
    scratch: Path | None = None,
) -> Path:
    """Write `data` with `header` + `keywords` + provenance, atomically (through `scratch`, a
    temporary folder the caller holds, when given: `lwa_common.io.atomic_path`)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LwaError(f"output exists: {path} (use --overwrite to replace it)")
    if np.asarray(data).dtype != _FITS_FLOAT32:  # big-endian float32 (read_image(native=False)) as it is
        data = np.asarray(data, dtype=np.float32)
    hdu = fits.PrimaryHDU(data=data, header=header)  # a copy of `header`
    update_keywords(hdu.header, keywords or {})
    hdu.header["LWAVER"] = (tool_version("lwa-common"), IMAGE_KEYWORDS["LWAVER"])
    stamp_header(hdu.header, tool=tool, argv=argv, extra=extra_history)
    with atomic_path(path, scratch=scratch) as tmp:
        hdu.writeto(tmp, output_verify="silentfix")
    return path


def image_plane(data: np.ndarray) -> np.ndarray:
    """The 2-D sky plane of a (1, 1, ny, nx) wsclean-style cube."""
    data = np.asarray(data)
    while data.ndim > 2:
        if data.shape[0] != 1:
            raise LwaError(f"image has a non-degenerate axis of length {data.shape[0]}; expected one plane")
        data = data[0]
    return data


def celestial_wcs(header: fits.Header) -> WCS:
    """The RA/Dec part of an image's WCS (astropy's 'datfix' notes about MJD cards silenced)."""
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header).celestial


def sky_mask(header: fits.Header) -> np.ndarray:
    """(ny, nx) boolean: True where the pixel lies on the sky (inside the projection's horizon).

    An all-sky SIN image has pixels beyond the horizon circle that wsclean still fills with
    numbers; nothing found there is real. For SIN (wsclean's projection) this is exact and fast;
    other projections fall back to astropy's pixel -> world conversion (NaN off the sky).
    """
    ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])
    ctype1 = str(header.get("CTYPE1", ""))
    if ctype1.endswith("-SIN") and not any(k.startswith("PV") for k in header):
        dx = np.radians(float(header["CDELT1"])) * (np.arange(nx) + 1 - float(header["CRPIX1"]))
        dy = np.radians(float(header["CDELT2"])) * (np.arange(ny) + 1 - float(header["CRPIX2"]))
        return dy[:, None] ** 2 + dx[None, :] ** 2 <= 1.0
    yy, xx = np.mgrid[0:ny, 0:nx]
    lon, lat = celestial_wcs(header).wcs_pix2world(xx, yy, 0)
    return np.isfinite(lon) & np.isfinite(lat)


def __getattr__(name: str) -> Any:
    """`ImageInfo` and `image_info` live in `lwa_common.images` (kept importable from here)."""
    if name in ("ImageInfo", "image_info"):
        from lwa_common import images

        return getattr(images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
