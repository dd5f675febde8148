"""QA of a solve: bandpass amplitude / phase vs frequency per antenna, flagged fractions, XY phase,
and a self-contained summary HTML page linking them (matplotlib ``Figure``, no pyplot state)."""

from __future__ import annotations

import html
import logging
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lwa_calib.caltables import CalTable
from lwa_calib.flagging import FlagResult
from lwa_common.io import make_dirs

__all__ = ["plot_bandpass_pages", "plot_flag_summary", "plot_xy_phase", "solve_plots", "write_summary_html"]

log = logging.getLogger(__name__)

ANTENNAS_PER_PAGE = 64
_POL_COLOURS = {0: "tab:blue", 1: "tab:orange"}


def plot_bandpass_pages(
    outdir: Path, *, values: np.ndarray, raw_flags: np.ndarray, final: FlagResult, freqs_hz: np.ndarray,
    names: list[str], quantity: str,
) -> list[Path]:
    """Per-antenna panels (64 a page) of |B| or arg B vs MHz; flagged solutions grey, interpolated open."""
    make_dirs(outdir)
    mhz = np.asarray(freqs_hz) / 1e6
    n_ant = values.shape[0]
    pages = []
    for page, first in enumerate(range(0, n_ant, ANTENNAS_PER_PAGE), start=1):
        ants = list(range(first, min(first + ANTENNAS_PER_PAGE, n_ant)))
        ncol = 8
        nrow = math.ceil(len(ants) / ncol)
        fig = Figure(figsize=(2.2 * ncol, 1.7 * nrow + 0.6))
        axes = fig.subplots(nrow, ncol, sharex=True, squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k >= len(ants):
                ax.set_axis_off()
                continue
            a = ants[k]
            for p in range(values.shape[2]):
                raw = values[a, :, p]
                y = np.abs(raw) if quantity == "amp" else np.degrees(np.angle(raw))
                yf = np.abs(final.values[a, :, p]) if quantity == "amp" else np.degrees(np.angle(final.values[a, :, p]))
                bad = final.outlier_flags[a, :, p] | raw_flags[a, :, p]
                good = ~bad
                ax.plot(mhz[good], y[good], ".-", ms=2, lw=0.6, color=_POL_COLOURS[p])
                if bad.any():
                    ax.plot(mhz[bad], y[bad], "x", ms=3, color="0.6")
                interp = final.interpolated[a, :, p]
                if interp.any():
                    ax.plot(mhz[interp], yf[interp], "o", ms=3, mfc="none", color=_POL_COLOURS[p])
            flagged = final.antenna_flags[a].any()
            ax.set_title(f"{a}: {names[a]}" + (" (flagged)" if flagged else ""), fontsize=7,
                         color="red" if flagged else "black")
            ax.tick_params(labelsize=6, length=2, pad=1)
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.yaxis.set_major_locator(MaxNLocator(3))
            if quantity == "phase":
                ax.set_ylim(-180, 180)
        fig.suptitle(f"bandpass {'amplitude' if quantity == 'amp' else 'phase (deg)'} vs frequency (MHz): "
                     "X blue, Y orange; x flagged, o interpolated", fontsize=9)
        # fixed margins: tight_layout costs seconds per page of 48 panels
        fig.subplots_adjust(left=0.04, right=0.99, bottom=0.04, top=1 - 0.6 / (1.7 * nrow + 0.6),
                            wspace=0.3, hspace=0.45)
        path = outdir / f"bandpass_{quantity}_p{page:02d}.png"
        fig.savefig(path, dpi=80)
        pages.append(path)
    return pages


def plot_flag_summary(path: Path, *, final: FlagResult, freqs_hz: np.ndarray, names: list[str]) -> Path:
    """Flagged fraction per antenna and per channel, and the antenna x channel flag map."""
    make_dirs(path.parent)
    mhz = np.asarray(freqs_hz) / 1e6
    flags = final.outlier_flags
    fig = Figure(figsize=(11, 7))
    ax1, ax2, ax3 = fig.subplots(3, 1)
    ax1.bar(np.arange(flags.shape[0]), flags.mean(axis=(1, 2)), color="tab:red")
    ax1.set_ylabel("flagged fraction")
    ax1.set_xlabel("antenna index")
    ax1.set_ylim(0, 1)
    ax2.plot(mhz, flags.mean(axis=(0, 2)), ".-", color="tab:red")
    ax2.set_ylabel("flagged fraction")
    ax2.set_xlabel("frequency (MHz)")
    ax2.set_ylim(0, 1)
    ax3.imshow(flags.any(axis=2).T, aspect="auto", origin="lower", cmap="binary", interpolation="none",
               extent=(-0.5, flags.shape[0] - 0.5, mhz[0], mhz[-1] if mhz.size > 1 else mhz[0] + 1))
    ax3.set_xlabel("antenna index")
    ax3.set_ylabel("MHz")
    fig.suptitle(f"bandpass flags: {100 * final.flagged_fraction:.1f} % of solutions", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def plot_xy_phase(path: Path, *, phase_deg: np.ndarray, freqs_hz: np.ndarray) -> Path:
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    ax.plot(np.asarray(freqs_hz) / 1e6, phase_deg, ".-")
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("XY phase (deg)")
    ax.set_ylim(-180, 180)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def solve_plots(outdir: Path, *, bp_raw: CalTable, flagged: FlagResult, xy_phase_deg: np.ndarray,
                freqs_hz: np.ndarray) -> list[Path]:
    make_dirs(outdir)
    plots = plot_bandpass_pages(outdir, values=bp_raw.values, raw_flags=bp_raw.flags, final=flagged,
                                freqs_hz=freqs_hz, names=bp_raw.names, quantity="amp")
    plots += plot_bandpass_pages(outdir, values=bp_raw.values, raw_flags=bp_raw.flags, final=flagged,
                                 freqs_hz=freqs_hz, names=bp_raw.names, quantity="phase")
    plots.append(plot_flag_summary(outdir / "flagged_fraction.png", final=flagged, freqs_hz=freqs_hz,
                                   names=bp_raw.names))
    if xy_phase_deg.size == np.asarray(freqs_hz).size:
        plots.append(plot_xy_phase(outdir / "xy_phase.png", phase_deg=xy_phase_deg, freqs_hz=freqs_hz))
    log.info("wrote %d QA plots to %s", len(plots), outdir)
    return plots


def write_summary_html(path: Path, *, summary: dict, plots: list[Path], root: Path) -> Path:
    """One page: the run's numbers as a table, then every plot (relative links)."""
    def row(key: str, value) -> str:
        return f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"

    xy = summary.get("xy_phase", {})
    xy_text = "solved" if xy.get("solved") else f"not solved: {xy.get('reason', '')}"
    rows = [
        row("inputs", f"{len(summary['inputs'])} MS, {summary['n_integrations']} integrations"),
        row("time", f"{summary['time_start']} - {summary['time_end']} UTC"),
        row("frequency", "{:.3f} - {:.3f} MHz".format(*summary["freq_mhz"])),
        row("sky model", summary["sources_file"]),
        row("apparent flux (Jy, mid channel)",
            ", ".join(f"{k}: {v:.0f}" for k, v in summary["apparent_flux_jy"].items())),
        row("reference antenna", summary["refant"]),
        row("flagged solutions", f"{100 * summary['flagged_fraction']:.2f} %"),
        row("flagged antennas", ", ".join(summary["flagged_antennas"]) or "none"),
        row("flagged channels (all antennas)", summary["flagged_channels"] or "none"),
        row("interpolated solutions", summary["interpolated_solutions"]),
        row("XY phase", xy_text),
        row("tables", ", ".join(v for v in summary["tables"].values() if v)),
    ]
    images = "\n".join(
        f'<figure><img src="{html.escape(str(p.relative_to(root)))}" style="max-width:100%">'
        f"<figcaption>{html.escape(p.name)}</figcaption></figure>" for p in plots
    )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>lwa-calib solve</title>"
        "<style>body{font-family:sans-serif;margin:1em}th{text-align:left;padding-right:1em}"
        "td,th{border-bottom:1px solid #ddd}</style></head><body>\n"
        "<h1>lwa-calib solve: bandpass summary</h1>\n<table>\n" + "\n".join(rows) + "\n</table>\n"
        + images + "\n</body></html>\n"
    )
    path.write_text(page)
    return path
