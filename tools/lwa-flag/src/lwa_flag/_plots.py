"""QA figures (matplotlib, Agg, no pyplot state): amplitude vs uv, cross-pol heatmap, snapshot RMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure

from lwa_common.io import atomic_path

__all__ = ["plot_amp_vs_uv", "plot_heatmap", "plot_snapshot_rms"]

_FLAG_COLOURS = {  # category -> (colour, label) for the heatmap's upper triangle
    1: ("#d62728", "amp vs uv (pass 1)"),
    2: ("#17becf", "cross-pol (pass 2)"),
    3: ("#9467bd", "both passes"),
    4: ("#2ca02c", "antenna > fraction"),
    5: ("#1f3fbf", "dead antenna"),
    6: ("#c7c7c7", "skipped (< min uv)"),
}


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return Path(path)


def plot_amp_vs_uv(result, path: str | Path, *, title: str = "") -> Path:
    """Pass 1: mean (|XX|+|YY|)/2 per baseline vs uv distance, rolling median, threshold, flags."""
    st = result.stats
    uv, amp = st.uv_lambda, result.amp_par
    cons = result.considered
    fig = Figure(figsize=(10, 6))
    ax = fig.add_subplot(1, 1, 1)
    positive = np.isfinite(amp) & (amp > 0)
    skip = ~cons & positive
    ax.scatter(uv[skip], amp[skip], s=3, c="#c7c7c7", label=f"skipped ({int(skip.sum())})", rasterized=True)
    ok = cons & positive & ~result.flag_baseline
    ax.scatter(uv[ok], amp[ok], s=3, c="#4a6fa5", alpha=0.6, label=f"kept ({int(ok.sum())})", rasterized=True)
    order = np.flatnonzero(cons)
    order = order[np.argsort(uv[order], kind="stable")]
    if order.size and np.isfinite(result.rolling_median[order]).any():
        thr = result.rolling_median[order] + result.settings["sigma_uv"] * result.rolling_sigma[order]
        ax.plot(uv[order], result.rolling_median[order], c="k", lw=1.2, label="rolling median")
        ax.plot(uv[order], thr, c="#ff7f0e", lw=1.2, ls="--",
                label=f"median + {result.settings['sigma_uv']:g} sigma")
    for mask, colour, label in (
        (result.flag_uv & positive, "#d62728", "pass 1 (amp vs uv)"),
        (result.flag_cross & ~result.flag_uv & positive, "#17becf", "pass 2 only (cross-pol)"),
    ):
        if mask.any():
            ax.scatter(uv[mask], amp[mask], s=28, marker="x", c=colour, label=f"{label} ({int(mask.sum())})")
    dead = np.zeros(st.n_antennas, bool)
    dead[list(result.dead)] = True
    dmask = (dead[st.ant1] | dead[st.ant2]) & np.isfinite(amp)
    if dmask.any():
        ax.scatter(uv[dmask], np.maximum(amp[dmask], 1e-6), s=6, c="#1f3fbf",
                   label=f"dead-antenna baselines ({int(dmask.sum())})")
    ax.axvline(result.settings["min_uv_lambda"], c="0.5", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("uv distance [wavelengths]")
    ax.set_ylabel(f"mean (|XX|+|YY|)/2 [{st.column}]")
    ax.set_title(title or "amplitude vs uv distance")
    ax.legend(fontsize=8, loc="best", markerscale=2)
    fig.tight_layout()
    return _save(fig, Path(path))


def _board_strip(ax, values: list[int], *, vertical: bool, label: str) -> None:
    """A strip of alternating shades per board, with the board number where it fits."""
    n = len(values)
    shade = np.zeros(n)
    groups: list[tuple[int, int, int]] = []  # (start, end, value)
    start = 0
    for i in range(1, n + 1):
        if i == n or values[i] != values[start]:
            groups.append((start, i, values[start]))
            start = i
    for k, (s, e, _) in enumerate(groups):
        shade[s:e] = k % 2
    img = shade[:, None] if vertical else shade[None, :]
    ax.imshow(img, aspect="auto", cmap=ListedColormap(["#e8e8e8", "#a8a8a8"]), interpolation="nearest",
              origin="upper", vmin=0, vmax=1)
    for s, e, v in groups:
        if (e - s) >= max(2, n / 40):
            pos = (s + e - 1) / 2
            if vertical:
                ax.text(0, pos, str(v), ha="center", va="center", fontsize=6, rotation=90)
            else:
                ax.text(pos, 0, str(v), ha="center", va="center", fontsize=6)
    ax.set_xticks([])
    ax.set_yticks([])
    if vertical:
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_xlabel(label, fontsize=7, rotation=90)
    else:
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")


def plot_heatmap(result, path: str | Path, *, wiring: dict | None = None, title: str = "") -> Path:
    """Pass 2: antenna x antenna cross-pol amplitude (lower-left triangle) and flags (upper-right),
    annotated with correlator input, SNAP2 and ARX board from system_cfg.yml when given."""
    from lwa_flag._ms import normalise_antenna_name

    st = result.stats
    n = st.n_antennas
    names = result.antenna_names
    mat = np.full((n, n), np.nan)
    lo, hi = np.minimum(st.ant1, st.ant2), np.maximum(st.ant1, st.ant2)
    mat[hi, lo] = np.where(np.isfinite(result.amp_cross) & (result.amp_cross > 0), result.amp_cross, np.nan)
    cat = np.zeros((n, n))
    cat[lo, hi] = np.where(~result.considered & (st.n_good > 0), 6, 0)
    cat[lo, hi] = np.where(result.flag_uv, 1, cat[lo, hi])
    cat[lo, hi] = np.where(result.flag_cross, 2, cat[lo, hi])
    cat[lo, hi] = np.where(result.flag_uv & result.flag_cross, 3, cat[lo, hi])
    for a in result.antenna_rule:
        for view in (cat[a, a + 1:], cat[:a, a]):
            view[(view == 0) | (view == 6)] = 4
    for a in result.dead:
        cat[a, a + 1:] = 5
        cat[:a, a] = 5

    info = [wiring.get(normalise_antenna_name(nm) or "") for nm in names] if wiring else []
    have_wiring = any(w is not None for w in info)

    fig = Figure(figsize=(11, 10))
    strips = 2 if have_wiring else 0
    gs = fig.add_gridspec(1 + strips, 1 + strips, width_ratios=[30] + [1.1] * strips,
                          height_ratios=[1.1] * strips + [30], wspace=0.015, hspace=0.015,
                          left=0.1, right=0.84, bottom=0.1, top=0.93)
    ax = fig.add_subplot(gs[strips, 0])
    finite = mat[np.isfinite(mat)]
    if finite.size:
        vmin, vmax = np.percentile(finite, 1), np.percentile(finite, 99.9)
        vmin = max(vmin, vmax * 1e-4, 1e-9)
        im = ax.imshow(mat, origin="upper", cmap="inferno", interpolation="nearest", aspect="auto",
                       norm=LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.01)))
        cax = fig.add_axes([0.9, 0.1, 0.02, 0.55])
        fig.colorbar(im, cax=cax, label=f"mean (|XY|+|YX|)/2 [{st.column}] (lower-left triangle)")
    cmap = ListedColormap([_FLAG_COLOURS[k][0] for k in sorted(_FLAG_COLOURS)])
    ax.imshow(np.where(cat > 0, cat, np.nan), origin="upper", cmap=cmap, vmin=0.5, vmax=6.5,
              interpolation="nearest", aspect="auto")
    handles = [ax.scatter([], [], marker="s", c=c, label=lbl) for c, lbl in _FLAG_COLOURS.values()]
    ax.legend(handles=handles, fontsize=7, loc="upper right", frameon=True, framealpha=0.85,
              title="upper-right triangle: flags", title_fontsize=7)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    step = max(1, int(np.ceil(n / 40)))
    ticks = list(range(0, n, step))
    if have_wiring:
        corr = [w.corr_num if w else -1 for w in info]
        for k, (vals, lbl) in enumerate(((
                [w.snap2_location if w else -1 for w in info], "SNAP2"),
                ([w.arx_address if w else -1 for w in info], "ARX"))):
            _board_strip(fig.add_subplot(gs[k, 0]), vals, vertical=False, label=lbl)
            _board_strip(fig.add_subplot(gs[strips, 1 + k]), vals, vertical=True, label=lbl)
        ax.set_xticks(ticks, [f"{names[i]} c{corr[i]}" for i in ticks], fontsize=5, rotation=90)
        ax.set_yticks(ticks, [f"{names[i]} c{corr[i]}" for i in ticks], fontsize=5)
        ax.set_xlabel("antenna (MS order), c# = correlator input")
    else:
        ax.set_xticks(ticks, [names[i] for i in ticks], fontsize=5, rotation=90)
        ax.set_yticks(ticks, [names[i] for i in ticks], fontsize=5)
        ax.set_xlabel("antenna (MS order)")
    lines = []
    for a in result.flagged_antennas:
        why = ("dead " + "+".join(result.dead[a]["pols"])) if a in result.dead else \
            f"{100 * result.antenna_rule[a]:.0f}% of baselines"
        w = info[a] if have_wiring else None
        where = f" c{w.corr_num} SNAP2 {w.snap2_location} ARX {w.arx_address}" if w else ""
        lines.append(f"{names[a]}{where}: {why}")
    if lines:
        text = "flagged antennas:\n" + "\n".join(lines[:20]) + ("\n..." if len(lines) > 20 else "")
        ax.text(0.98, 0.72, text, transform=ax.transAxes, fontsize=6, va="top", ha="right",
                family="monospace")
    fig.suptitle(title or f"cross-pol heatmap ({st.column}): {int(result.flag_baseline.sum())} baselines "
                 f"and {len(result.flagged_antennas)} antennas flagged", fontsize=10)
    return _save(fig, Path(path))


def plot_snapshot_rms(result, path: str | Path, *, title: str = "") -> Path:
    """Stokes V snapshot RMS vs time, running median, the sigma band and the bad frames."""
    from astropy.time import Time

    frames = result.frames
    t0 = Time(min(f.mjd for f in frames), format="mjd")
    minutes = np.array([(f.mjd - t0.mjd) * 1440.0 for f in frames])
    rms = np.array([f.rms for f in frames])
    run = np.array([f.running_median for f in frames])
    bad = np.array([f.bad for f in frames])
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(minutes, rms, ".", c="#4a6fa5", label="V RMS per snapshot")
    ax.plot(minutes, run, c="k", lw=1, label="running median")
    ax.fill_between(minutes, run - result.sigma * result.scatter, run + result.sigma * result.scatter,
                    color="#ff7f0e", alpha=0.2, label=f"+/- {result.sigma:g} sigma")
    ax.plot(minutes, result.low_ratio * run, c="#ff7f0e", lw=0.8, ls=":",
            label=f"{result.low_ratio:g} x running median")
    if bad.any():
        ax.plot(minutes[bad], rms[bad], "x", c="#d62728", ms=9, label=f"flagged ({int(bad.sum())})")
    ax.set_xlabel(f"minutes since {t0.isot[:19]} UTC")
    ax.set_ylabel("robust RMS [Jy/beam]")
    ax.set_title(title or "pilot Stokes V snapshot RMS")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
