"""Per-candidate products: a 2°×2° FITS cutout (astropy `Cutout2D`) and a diagnostic PNG.

The cutout keeps the searched image's keywords (STOKES, INTERVAL, SUBBAND, BMAJ, ...), with
IMGCAT `diff` for a Stokes I difference image, and adds CANDNAME / CANDRA / CANDDEC / CANDPEAK /
CANDSNR. The PNG has two panels (reference + difference for I, I + V for V), a reticle on the
candidate, and its J-name, interval, peak flux and S/N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.nddata.utils import NoOverlapError
from astropy.wcs import WCS

from lwa_common.errors import LwaError
from lwa_common.fitsio import IMAGE_KEYWORDS, write_image
from lwa_common.io import atomic_path

__all__ = ["cutout", "write_cutout", "write_png"]

TOOL = "lwa-transient"
_COPY_KEYS = (*IMAGE_KEYWORDS, "BMAJ", "BMIN", "BPA", "BUNIT", "CONFIG", "TELESCOP", "OBSERVER", "RADESYS",
              "EQUINOX", "MJD-OBS")


def cutout(data: np.ndarray, wcs: WCS, coord: SkyCoord, size_deg: float) -> Cutout2D | None:
    """A `size_deg` square around `coord` (NaN-padded at the image edge); None when off the image."""
    try:
        return Cutout2D(data, coord, size=(size_deg * u.deg, size_deg * u.deg), wcs=wcs, mode="partial",
                        fill_value=np.nan, copy=True)
    except (NoOverlapError, ValueError):
        return None


def write_cutout(path: Path, cut: Cutout2D, source_header: fits.Header, *, keywords: dict[str, Any],
                 argv: list[str] | None = None, extra_history: list[str] | None = None) -> Path:
    header = cut.wcs.to_header()
    for key in _COPY_KEYS:
        if key in source_header and key not in header:
            header[key] = (source_header[key], source_header.comments[key])
    for card in source_header.get("HISTORY", []):
        header.add_history(str(card))
    return write_image(path, cut.data, header, tool=TOOL, keywords=keywords, argv=argv,
                       extra_history=extra_history, overwrite=True)


def _panel(ax, cut: Cutout2D | None, *, centre: SkyCoord, title: str, signed: bool, rms: float,
           half_deg: float) -> None:
    ax.set_title(title, fontsize=9)
    data = cut.data if cut is not None else None
    if data is None or not np.isfinite(data).any():
        ax.text(0.5, 0.5, "no image", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    # axes in degrees from the candidate (east to the left), so the reticle sits on it exactly
    xc, yc = (float(v) for v in cut.wcs.world_to_pixel(centre))
    pix = float(np.sqrt(abs(np.linalg.det(cut.wcs.pixel_scale_matrix))))
    ny, nx = data.shape
    extent = ((xc + 0.5) * pix, -(nx - 0.5 - xc) * pix, -(yc + 0.5) * pix, (ny - 0.5 - yc) * pix)
    finite = data[np.isfinite(data)]
    if signed:
        lim = max(float(np.nanmax(np.abs(finite))), 5 * rms if np.isfinite(rms) else 0.0, 1e-12)
        im = ax.imshow(data, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, extent=extent)
    else:
        lo, hi = np.percentile(finite, [1.0, 99.8])
        im = ax.imshow(data, origin="lower", cmap="inferno", vmin=lo, vmax=max(hi, lo + 1e-12), extent=extent)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Jy/beam")
    # reticle: four ticks around the centre, leaving the source visible
    inner, outer = 0.12 * half_deg, 0.35 * half_deg
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ax.plot([dx * inner, dx * outer], [dy * inner, dy * outer], color="lime", lw=1.2)
    ax.set_xlim(half_deg, -half_deg)
    ax.set_ylim(-half_deg, half_deg)
    ax.set_xlabel("ΔRA·cosδ (deg)", fontsize=8)
    ax.set_ylabel("ΔDec (deg)", fontsize=8)
    ax.tick_params(labelsize=7)


def write_png(path: Path, *, left: Cutout2D | None, right: Cutout2D | None, centre: SkyCoord, left_title: str,
              right_title: str, title: str, note: str, rms: float, size_deg: float,
              left_signed: bool = False) -> Path:
    """Two panels side by side with a reticle; `right` is the searched (signed) image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    half = size_deg / 2
    _panel(axes[0], left, centre=centre, title=left_title, signed=left_signed, rms=rms, half_deg=half)
    _panel(axes[1], right, centre=centre, title=right_title, signed=True, rms=rms, half_deg=half)
    fig.suptitle(f"{title}\n{note}", fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    except OSError as err:
        raise LwaError(f"cannot write {path}: {err}") from None
    return path
