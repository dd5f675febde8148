"""Diagnostic PNGs of a screen fit: offset vectors, the screen, residuals before and after.

Figures are built with matplotlib's object API (`Figure` + Agg canvas), so nothing depends on a
display or on pyplot's global state.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lwa_common.io import atomic_path

if TYPE_CHECKING:
    from lwa_dewarp.fit import FitResult

__all__ = ["write_plots"]

log = logging.getLogger(__name__)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def _show_image(ax, plane: np.ndarray) -> None:
    finite = plane[np.isfinite(plane)]
    lo, hi = (np.percentile(finite, [1.0, 99.5]) if finite.size else (0.0, 1.0))
    ax.imshow(plane, origin="lower", cmap="gray_r", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
    ax.set_xlabel("x [px]")
    ax.set_ylabel("y [px]")


def _arrow_scale(lengths: np.ndarray, size: int) -> float:
    """Multiplier that draws the median offset as 4 % of the image side."""
    med = float(np.median(lengths)) if len(lengths) else 0.0
    return max(1.0, round(0.04 * size / med)) if med > 0 else 1.0


def _offsets_png(result: FitResult, path: Path) -> Path:
    a = result.anchors
    plane = result.plane
    fig = Figure(figsize=(7.5, 7))
    ax = fig.add_subplot(1, 1, 1)
    _show_image(ax, plane)
    scale = _arrow_scale(np.hypot(a["dx_px"], a["dy_px"]).to_numpy(), max(plane.shape))
    for used, colour, label in ((True, "tab:blue", "anchor"), (False, "tab:red", "rejected")):
        sel = a[a["used"] == used]
        if len(sel):
            ax.quiver(sel["x_cat"], sel["y_cat"], sel["dx_px"] * scale, sel["dy_px"] * scale, color=colour,
                      angles="xy", scale_units="xy", scale=1, width=0.003, label=f"{label} ({len(sel)})")
    ax.set_title(f"ionospheric offsets (catalogue -> observed) x{scale:g}\n"
                 f"median {result.summary.get('median_offset_before_arcmin')}' ; beam "
                 f"{result.beam.fwhm_arcmin:.2f}'")
    if len(a):
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(-0.5, plane.shape[1] - 0.5)
    ax.set_ylim(-0.5, plane.shape[0] - 0.5)
    return _save(fig, path)


def _screen_png(result: FitResult, path: Path) -> Path:
    screen = result.screen
    a = result.anchors[result.anchors["used"]]
    pix_arcmin = result.beam.pixel_deg * 60.0
    f = screen.factor
    extent = (-0.5, screen.dx.shape[1] * f - 0.5, -0.5, screen.dx.shape[0] * f - 0.5)
    planes = (("dx [px]", screen.dx, "RdBu_r"), ("dy [px]", screen.dy, "RdBu_r"),
              ("|d| [arcmin at the centre scale]", np.hypot(screen.dx, screen.dy) * pix_arcmin, "viridis"))
    fig = Figure(figsize=(16, 5))
    for i, (title, data, cmap) in enumerate(planes):
        ax = fig.add_subplot(1, 3, i + 1)
        if cmap == "RdBu_r":
            lim = float(np.nanmax(np.abs(data))) or 1.0
            im = ax.imshow(data, origin="lower", cmap=cmap, vmin=-lim, vmax=lim, extent=extent)
        else:
            im = ax.imshow(data, origin="lower", cmap=cmap, extent=extent)
        ax.plot(a["x_cat"], a["y_cat"], "k.", ms=3)
        ax.set_title(title)
        ax.set_xlabel("x [px]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"offset screen from {len(a)} anchors (dots)")
    return _save(fig, path)


def _residuals_png(result: FitResult, path: Path) -> Path:
    a = result.anchors
    used = a[a["used"]]
    beam = result.beam.fwhm_arcmin
    fig = Figure(figsize=(12, 4.8))
    ax = fig.add_subplot(1, 2, 1)
    series = [("before", used["sep_arcmin"]), ("after (fit)", used["after_arcmin"]),
              ("after (cross-validated)", used["after_cv_arcmin"])]
    finite = np.concatenate([np.asarray(v, dtype=float) for _, v in series])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 1.0
    bins = np.linspace(0.0, max(top, 1e-3) * 1.05, 25)
    for label, values in series:
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=bins, histtype="step", lw=1.5, label=f"{label}: median {np.median(values):.2f}'")
    ax.axvline(beam, color="k", ls=":", label=f"beam {beam:.2f}'")
    ax.set_xlabel("offset from the catalogue position [arcmin]")
    ax.set_ylabel("anchors")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    cy, cx = (np.asarray(result.plane.shape) - 1) / 2.0
    r = np.hypot(a["x_cat"] - cx, a["y_cat"] - cy) * result.beam.pixel_deg
    ax.plot(r[a["used"]], a.loc[a["used"], "sep_arcmin"], "o", mfc="none", label="before")
    ax.plot(r[a["used"]], a.loc[a["used"], "after_cv_arcmin"], "o", ms=4, label="after (cross-validated)")
    if (~a["used"]).any():
        ax.plot(r[~a["used"]], a.loc[~a["used"], "sep_arcmin"], "rx", label="rejected")
    ax.set_xlabel("distance from the image centre [deg, centre pixel scale]")
    ax.set_ylabel("offset [arcmin]")
    ax.legend(fontsize=8)
    fig.suptitle("astrometric residuals of the anchors")
    return _save(fig, path)


def write_plots(result: FitResult, qa_dir: Path) -> list[Path]:
    """offsets.png (when there are matches), screen.png and residuals.png (when there is a screen)."""
    out = []
    if len(result.anchors):
        out.append(_offsets_png(result, qa_dir / "offsets.png"))
    if result.screen is not None and not math.isnan(result.beam.fwhm_arcmin):
        out.append(_screen_png(result, qa_dir / "screen.png"))
        out.append(_residuals_png(result, qa_dir / "residuals.png"))
    log.info("wrote %d diagnostic plots to %s", len(out), qa_dir)
    return out
