"""Plots of the weblog: image previews (WCS axes, colour bar with units, restoring beam), the
thermal-noise profile, per-interval flagging and target lightcurves. Agg backend, PNG out, atomic."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lwa_common.fitsio import celestial_wcs, image_plane, read_image
from lwa_common.io import atomic_path

__all__ = ["image_preview", "noise_plot", "noise_figure", "interval_flag_plot", "lightcurve_plot"]

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    _plt().close(fig)
    return out


def _plain_axis(ax) -> None:
    """No offset notation (`1e-5+5.7027e1`) on either axis."""
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        if isinstance(axis.get_major_formatter(), ScalarFormatter):
            axis.get_major_formatter().set_useOffset(False)


def image_preview(fits_path: Path, out: Path, *, max_px: int = 1024) -> Path:
    """PNG of a FITS image: WCS axes, colour bar in the image's BUNIT, restoring beam (lower left)."""
    from matplotlib.patches import Ellipse

    plt = _plt()
    data, header = read_image(fits_path)
    plane = np.asarray(image_plane(data), dtype=float)
    wcs = celestial_wcs(header)
    step = max(1, int(math.ceil(max(plane.shape) / max_px)))
    if step > 1:
        plane = plane[::step, ::step]
        wcs = wcs.slice((slice(None, None, step), slice(None, None, step)))
    finite = plane[np.isfinite(plane)]
    stokes = str(header.get("STOKES", ""))
    if finite.size:
        if stokes == "V" or str(header.get("IMGCAT", "")) == "diff":
            hi = float(np.percentile(np.abs(finite), 99.7)) or 1.0
            lo, cmap = -hi, "RdBu_r"
        else:
            lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.7]))
            cmap = "inferno"
    else:
        lo, hi, cmap = 0.0, 1.0, "inferno"
    fig = plt.figure(figsize=(6.4, 5.4), dpi=100)
    ax = fig.add_subplot(projection=wcs)
    im = ax.imshow(plane, origin="lower", cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1)
    for coord, label in zip(ax.coords, ("RA (ICRS)", "Dec (ICRS)"), strict=False):
        coord.set_axislabel(label)
        coord.set_axislabel_visibility_rule("always")  # all-sky images: the frame may lie beyond the horizon
    ax.coords.grid(color="white", alpha=0.25, ls=":")
    _label_grid_inside(ax, wcs, plane.shape)
    unit = str(header.get("BUNIT", "")).strip() or "arbitrary"
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"Stokes {stokes} [{unit}]" if stokes else unit)
    bmaj, bmin = header.get("BMAJ"), header.get("BMIN")
    cdelt = abs(float(header.get("CDELT2", header.get("CDELT1", 0)) or 0)) * step
    if bmaj and bmin and cdelt > 0:
        w, h = float(bmin) / cdelt, float(bmaj) / cdelt
        ny, nx = plane.shape
        pad = max(w, h) / 2 + 0.03 * min(nx, ny)
        ax.add_patch(Ellipse((pad, pad), w, h, angle=float(header.get("BPA", 0) or 0), fc="none", ec="k" if cmap == "RdBu_r" else "cyan", lw=1.5))
        ax.set_title(f"{Path(fits_path).name}\nbeam {60 * float(bmaj):.1f}' x {60 * float(bmin):.1f}' "
                     f"(drawn lower left)", fontsize=8)
    else:
        ax.set_title(Path(fits_path).name, fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def _crossings(values: np.ndarray, target: float, *, wrap: bool) -> np.ndarray:
    """Indices where `values` (degrees; NaN off-sky) pass through `target`."""
    d = values - target
    if wrap:
        d = (d + 180.0) % 360.0 - 180.0
    ok = np.isfinite(d[:-1]) & np.isfinite(d[1:]) & (np.abs(d[1:] - d[:-1]) < 90.0)
    return np.flatnonzero(ok & (np.sign(d[:-1]) != np.sign(d[1:])))


def _label_grid_inside(ax, wcs, shape: tuple[int, int]) -> None:
    """All-sky images: the frame's corners lie beyond the horizon, so WCSAxes has no tick labels;
    label the coordinate grid where it crosses the image's central row (RA) and column (Dec)."""
    ny, nx = shape
    with np.errstate(invalid="ignore"):
        corner = wcs.pixel_to_world_values(0.0, 0.0)
        if np.all(np.isfinite(corner)):
            return
        ys, xs = np.arange(ny, dtype=float), np.arange(nx, dtype=float)
        _, dec_col = wcs.pixel_to_world_values(np.full(ny, nx / 2.0), ys)
        ra_row, _ = wcs.pixel_to_world_values(xs, np.full(nx, ny / 2.0))
    style = {"color": "white", "fontsize": 6, "ha": "center", "va": "center", "alpha": 0.8}
    for dec in range(-80, 90, 20):
        for i in _crossings(np.asarray(dec_col, float), dec, wrap=False):
            ax.text(nx / 2.0, i, f"{dec:+d}°", **style)
    for hour in range(0, 24, 2):
        for i in _crossings(np.asarray(ra_row, float), 15.0 * hour, wrap=True):
            ax.text(i, ny / 2.0, f"{hour}h", **style)


def noise_plot(noise: pd.DataFrame, out: Path) -> Path | None:
    """Thermal noise against frequency per image class (and the wideband stacks)."""
    fig = noise_figure(noise)
    return None if fig is None else _save(fig, out)


def noise_figure(noise: pd.DataFrame):
    """The figure of `noise_plot` (None without a measurable row)."""
    df = noise[np.isfinite(noise["rms_jy"]) & (noise["rms_jy"] > 0) & np.isfinite(noise["freq_mhz"])]
    if df.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    per = df[df["imgcat"] != "stack"]
    for (stokes, cat, robust, taper), grp in per.groupby(["stokes", "imgcat", "robust", "taper"], dropna=False):
        grp = grp.sort_values("freq_mhz")
        label = f"{stokes} {cat} R{robust:g} {'taper' if taper > 0 else 'no taper'}"
        ax.plot(grp["freq_mhz"], grp["rms_jy"] * 1e3, "o-", ms=4, lw=1, label=label)
    st = df[df["imgcat"] == "stack"]
    if not st.empty:
        ax.plot(st["freq_mhz"], st["rms_jy"] * 1e3, "k*", ms=10, label="wideband stacks")
    ax.set_yscale("log")
    ax.set_xlabel("frequency [MHz]")
    ax.set_ylabel("thermal noise [mJy/beam]")
    freqs = df["freq_mhz"].to_numpy(float)
    if np.ptp(freqs) < 1.0:  # one subband: a readable window around it, not a 1e-5 MHz span
        ax.set_xlim(freqs.min() - 2.0, freqs.max() + 2.0)
    _plain_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def interval_flag_plot(table: pd.DataFrame, out: Path, *, limit_percent: float) -> Path:
    """Flagged percentage per imaging interval (total, and AOFlagger's part)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["flagged_percent"], 0.4, label="flagged (final MS)")
    if table["aoflagger_percent"].notna().any():
        ax.bar(x + 0.2, table["aoflagger_percent"].astype(float), 0.4, label="AOFlagger")
    ax.axhline(limit_percent, color="r", ls="--", lw=1, label="mostly flagged")
    ax.set_xticks(x, table["interval"])
    ax.set_ylim(0, 100)
    ax.set_ylabel("flagged [%]")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def lightcurve_plot(rows: pd.DataFrame, out: Path, *, title: str, sigma: float = 5.0) -> Path | None:
    """Peak flux per 10 min interval and subband, Stokes I and V, with 1-sigma errors; intervals where
    the Stokes is not detected are drawn as `sigma` x RMS upper limits (open triangles)."""
    if "interval" not in rows.columns:
        return None
    df = rows[rows["interval"].astype(str).str.startswith("t")].copy()
    if df.empty:
        return None
    df["n"] = df["interval"].astype(str).str[1:].astype(int)
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), dpi=100, sharex=True)
    for ax, stokes in zip(axes, ("I", "V"), strict=True):
        peak, rms, det = f"{stokes}_peak_jy", f"{stokes}_rms_jy", f"{stokes}_detected"
        if peak not in df.columns:
            ax.text(0.5, 0.5, f"no Stokes {stokes} measurement", ha="center", transform=ax.transAxes)
            continue
        for k, (sb, grp) in enumerate(df.groupby("subband")):
            grp = grp.sort_values("n")
            y = pd.to_numeric(grp[peak], errors="coerce").to_numpy(float)
            e = (pd.to_numeric(grp[rms], errors="coerce").to_numpy(float) if rms in grp
                 else np.full(len(y), np.nan))
            d = grp[det].astype(str).str.lower().isin(["true", "1"]).to_numpy() if det in grp else np.ones(len(y), bool)
            colour = f"C{k % 10}"
            if d.any():
                ax.errorbar(grp["n"][d], y[d], yerr=e[d], fmt="o-", ms=4, capsize=2, color=colour, label=f"{sb}")
            if (~d).any():
                ax.plot(grp["n"][~d], sigma * np.abs(e[~d]), "v", mfc="none", color=colour,
                        label=f"{sb} {sigma:g}σ limit")
        ax.set_ylabel(f"Stokes {stokes} peak [Jy/beam]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        _plain_axis(ax)
    axes[-1].set_xlabel("10 min interval")
    axes[-1].set_xticks(sorted(df["n"].unique()))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out)
