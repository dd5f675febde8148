"""2 deg x 2 deg FITS cutouts that keep the parent's keywords, and the 2-panel (I | V) PNGs."""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.wcs import WCS

from lwa_common.fitsio import write_image
from lwa_common.io import atomic_path

__all__ = ["Cutout", "PanelMarkers", "make_cutout", "cutout_header", "write_cutout", "plot_pair", "safe_name"]

log = logging.getLogger(__name__)

TOOL = "lwa-cutout"
_WCS_KEY = re.compile(
    r"^(SIMPLE|BITPIX|EXTEND|BSCALE|BZERO|NAXIS\d*|WCSAXES|CTYPE\d|CRPIX\d|CRVAL\d|CDELT\d|CUNIT\d|CROTA\d|"
    r"PC\d_\d|CD\d_\d|PV\d_\d+|PS\d_\d+|LONPOLE|LATPOLE|RADESYS|EQUINOX|MJDREF\w*|DATEREF|MJD-OBS|COMMENT|DATAMIN|"
    r"DATAMAX)$"
)


def safe_name(name: str) -> str:
    """A file-system friendly version of a target name ('3C 144' -> '3C_144')."""
    text = re.sub(r"[^A-Za-z0-9+\-_.]+", "_", name.strip()).strip("_.")
    return text or "target"


@dataclass
class Cutout:
    """A cutout plane with its WCS and the keywords it is written with."""

    data: np.ndarray
    wcs: WCS
    header: fits.Header


def cutout_header(parent: fits.Header, wcs: WCS) -> fits.Header:
    """The cutout WCS plus every non-WCS card of the parent (keywords, HISTORY) in order."""
    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header.update(wcs.to_header())
    for key in ("MJD-OBS", "DATEREF", "MJDREFI", "MJDREFF", "MJDREF"):
        header.remove(key, ignore_missing=True, remove_all=True)
    for card in parent.cards:
        key = card.keyword
        if not key or _WCS_KEY.match(key):
            continue
        if key == "HISTORY":
            header.add_history(str(card.value))
        elif key in header:
            header[key] = (card.value, card.comment)
        else:
            header.append(card)
    return header


def make_cutout(plane: np.ndarray, header: fits.Header, wcs: WCS, ra_deg: float, dec_deg: float, *,
                size_deg: float) -> Cutout | None:
    """A size_deg x size_deg cutout around (ra, dec), NaN-padded at the edge; None if off the image."""
    position = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cut = Cutout2D(plane, position, (size_deg * u.deg, size_deg * u.deg), wcs=wcs, mode="partial",
                           fill_value=np.nan, copy=True)
    except (NoOverlapError, ValueError) as err:
        log.debug("no cutout at (%.4f, %.4f): %s", ra_deg, dec_deg, err)
        return None
    return Cutout(np.asarray(cut.data, dtype=np.float32), cut.wcs, _shifted_header(header, wcs, cut.wcs))


_TEMPLATES: list[tuple[fits.Header, WCS, fits.Header]] = []  # (parent header, parent WCS, cutout_header of both)


def _shifted_header(parent: fits.Header, wcs: WCS, cut_wcs: WCS) -> fits.Header:
    """`cutout_header(parent, cut_wcs)` without rebuilding it per target: a cutout's WCS is the
    parent's with CRPIX moved, so the parent's is built once per image and only CRPIX is set."""
    if wcs.sip is not None or cut_wcs.wcs.naxis != 2:
        return cutout_header(parent, cut_wcs)
    template = next((t for h, w, t in _TEMPLATES if h is parent and w is wcs), None)
    if template is None:
        template = cutout_header(parent, wcs)
        _TEMPLATES.insert(0, (parent, wcs, template))
        del _TEMPLATES[4:]
    header = template.copy()
    header["CRPIX1"], header["CRPIX2"] = (float(v) for v in cut_wcs.wcs.crpix)
    return header


def write_cutout(path: Path, cutout: Cutout, *, keywords: dict, argv: list[str] | None,
                 extra_history: list[str] | None = None, overwrite: bool = True) -> Path:
    """Write a cutout with `write_image` (keywords of ARCHITECTURE.md + provenance)."""
    return write_image(path, cutout.data, cutout.header, tool=TOOL, keywords=keywords, argv=argv,
                       extra_history=extra_history, overwrite=overwrite)


@dataclass
class PanelMarkers:
    """What to draw on a panel: the position, the search circle, confusing sources and their masks."""

    ra_deg: float
    dec_deg: float
    search_radius_deg: float
    confusing: Sequence[tuple[str, float, float]] = ()
    mask_radius_deg: float = 0.0
    peak: tuple[float, float] | None = None
    title: str = ""
    extra: list[str] = field(default_factory=list)


def _circle(ax, wcs: WCS, ra: float, dec: float, radius_deg: float, **style) -> None:
    """Draw a sky circle as a polygon of sky points (correct in any projection)."""
    angles = np.linspace(0, 2 * np.pi, 73)
    dec_pts = dec + radius_deg * np.cos(angles)
    ra_pts = ra + radius_deg * np.sin(angles) / max(math.cos(math.radians(dec)), 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = wcs.world_to_pixel_values(ra_pts, dec_pts)
    ax.plot(x, y, **style)


def _panel(fig, index: int, cutout: Cutout | None, markers: PanelMarkers | None, label: str) -> None:
    if cutout is None:
        ax = fig.add_subplot(1, 2, index)
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"{label}: no image", ha="center", va="center", transform=ax.transAxes)
        return
    ax = fig.add_subplot(1, 2, index, projection=cutout.wcs)
    data = cutout.data
    finite = data[np.isfinite(data)]
    if finite.size:
        lo, hi = np.percentile(finite, [1.0, 99.8])
        if label.startswith("V"):
            hi = max(abs(lo), abs(hi)) or 1.0
            lo = -hi
        elif hi <= lo:
            hi = lo + 1.0
    else:
        lo, hi = -1.0, 1.0
    im = ax.imshow(data, origin="lower", cmap="RdBu_r" if label.startswith("V") else "inferno", vmin=lo, vmax=hi)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Jy/beam")
    ax.set_xlabel("RA")
    ax.set_ylabel("Dec")
    if markers is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, y = cutout.wcs.world_to_pixel_values(markers.ra_deg, markers.dec_deg)
        ax.plot([x], [y], marker="+", color="cyan", markersize=14, mew=1.5, linestyle="none")
        _circle(ax, cutout.wcs, markers.ra_deg, markers.dec_deg, markers.search_radius_deg, color="cyan", lw=1,
                linestyle="--")
        for name, cra, cdec in markers.confusing:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cx, cy = cutout.wcs.world_to_pixel_values(cra, cdec)
            ax.plot([cx], [cy], marker="x", color="lime", markersize=10, mew=1.5, linestyle="none")
            if markers.mask_radius_deg > 0:
                _circle(ax, cutout.wcs, cra, cdec, markers.mask_radius_deg, color="lime", lw=1, linestyle=":")
            ax.annotate(name, (cx, cy), color="lime", fontsize=7, xytext=(4, 4), textcoords="offset points")
        if markers.peak is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                px, py = cutout.wcs.world_to_pixel_values(*markers.peak)
            ax.plot([px], [py], marker="o", mfc="none", color="white", markersize=9, linestyle="none")
        ax.set_xlim(-0.5, data.shape[1] - 0.5)
        ax.set_ylim(-0.5, data.shape[0] - 0.5)
    ax.set_title("\n".join([label, *(markers.extra if markers else [])]), fontsize=8)


def plot_pair(path: Path, left: Cutout | None, right: Cutout | None, *, left_markers: PanelMarkers | None,
              right_markers: PanelMarkers | None, title: str, left_label: str = "I",
              right_label: str = "V") -> Path:
    """Two panels, Stokes I left and V right, with the markers; written atomically."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.2), dpi=90)
    _panel(fig, 1, left, left_markers, left_label)
    _panel(fig, 2, right, right_markers, right_label)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.93, wspace=0.5, top=0.82, bottom=0.1)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
