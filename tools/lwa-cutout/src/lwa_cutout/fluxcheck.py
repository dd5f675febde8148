"""`lwa-cutout flux-check`: measured calibrator fluxes against their models.

Models:

- Scaife & Heald 2012 (MNRAS 423, L30), log-polynomials referenced to 150 MHz,
  ``S = S150 x 10^(sum_n a_n log10(nu / 150 MHz)^n)``, for 3C48, 3C147, 3C196, 3C286, 3C295 and
  3C380, read from the makesourcedb sky model (`sky/scaife_heald_2012_calibrators.skymodel`)
  with `lwa_common.catalogs.read_makesourcedb` (patches grouped: a calibrator is its patch);
- Perley & Butler 2017 (ApJS 230, 7, Table 6) for 3C123, which the sky model lacks:
  ``log10 S = a0 + a1 x + a2 x^2 + a3 x^3 + a4 x^4`` with x = log10(nu / GHz) and
  a = (1.8017, -0.7884, -0.1035, -0.0248, 0.0090), fitted from 50 MHz to 50 GHz (below 50 MHz
  it is an extrapolation: a warning says so).

Each calibrator above `min_elevation_deg` (20 deg) at the image mid-time is measured with
`measure_position` (Gaussian fit; its integrated flux, or the peak when the fit fails) and
compared with the model at the image frequency (`lwa_common.images`: FREQMHZ, else the FREQ
axis). Images should be primary-beam corrected (`PBCOR = T`); others are measured with a warning (their fluxes are apparent).
Outputs: `flux_check.csv` (one row per image and calibrator) and `flux_check.png` (measured /
model ratio against frequency; measured against model flux).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from lwa_common.beam import radec_to_azel
from lwa_common.catalogs import read_makesourcedb
from lwa_common.config import Cutout, FluxScale, Site
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints, ImageInfo, image_info
from lwa_common.io import atomic_path, check_output, make_dirs
from lwa_common.products import FLUX_CHECK
from lwa_cutout.images import NEEDED, find_sets
from lwa_cutout.measure import Measurement, measure_position
from lwa_cutout.photometry import load_image, write_rows_csv

__all__ = [
    "PERLEY_BUTLER_2017",
    "Calibrator",
    "perley_butler_flux",
    "load_calibrators",
    "FluxCheckResult",
    "FLUX_CHECK_COLUMNS",
    "flux_check",
    "plot_flux_check",
]

log = logging.getLogger(__name__)

PERLEY_BUTLER_2017: dict[str, dict[str, Any]] = {
    "3C123": {
        "ra_deg": 69.26823,  # 04h37m04.375s
        "dec_deg": 29.67051,  # +29d40m13.82s
        "coeffs": (1.8017, -0.7884, -0.1035, -0.0248, 0.0090),
        "valid_mhz": (50.0, 50000.0),
    },
}
"""Perley & Butler 2017, Table 6: log10 S[Jy] = sum_n a_n log10(nu / GHz)^n."""

FLUX_CHECK_COLUMNS: tuple[str, ...] = FLUX_CHECK.columns


def perley_butler_flux(coeffs: Sequence[float], freq_hz: float | np.ndarray) -> float | np.ndarray:
    """Perley & Butler (2013, 2017) polynomial: 10 ** sum_n a_n log10(nu / 1 GHz) ** n, in Jy."""
    x = np.log10(np.asarray(freq_hz, dtype=float) / 1e9)
    exponent = sum(a * x**n for n, a in enumerate(coeffs))
    value = 10.0**exponent
    return float(value) if np.ndim(value) == 0 else value


@dataclass(frozen=True)
class Calibrator:
    """A flux-scale calibrator: position and model spectrum (Jy at a frequency in Hz)."""

    name: str
    ra_deg: float
    dec_deg: float
    model: Callable[[float], float]
    reference: str
    valid_mhz: tuple[float, float] = (0.0, math.inf)

    def flux_at(self, freq_hz: float) -> float:
        return float(self.model(freq_hz))


def _norm(name: str) -> str:
    return name.replace(" ", "").upper()


def load_calibrators(skymodel: str | Path | None, names: Sequence[str]) -> list[Calibrator]:
    """The calibrators `names`: from the Scaife & Heald sky model, else Perley & Butler 2017."""
    by_name = {}
    if skymodel is not None:
        for source in read_makesourcedb(skymodel, group_patches=True):
            by_name[_norm(source.name)] = source
    calibrators = []
    for name in names:
        key = _norm(name)
        if key in by_name:
            src = by_name[key]
            calibrators.append(Calibrator(name, src.ra_deg, src.dec_deg, src.flux_at,
                                          f"Scaife & Heald 2012 ({Path(skymodel).name})"))
        elif key in PERLEY_BUTLER_2017:
            pb = PERLEY_BUTLER_2017[key]
            coeffs = pb["coeffs"]
            calibrators.append(Calibrator(name, pb["ra_deg"], pb["dec_deg"],
                                          lambda f, c=coeffs: perley_butler_flux(c, f), "Perley & Butler 2017",
                                          pb["valid_mhz"]))
        else:
            where = f" in {skymodel}" if skymodel else ""
            raise LwaError(f"calibrator '{name}' not found{where} nor in the Perley & Butler 2017 table")
    return calibrators


@dataclass
class FluxCheckResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    csv: Path | None = None
    png: Path | None = None

    def ratios(self) -> np.ndarray:
        return np.array([r["ratio"] for r in self.rows if np.isfinite(r.get("ratio", math.nan))], dtype=float)

    def summary(self) -> dict[str, Any]:
        ratios = self.ratios()
        return {
            "measured": len(ratios),
            "median_ratio": float(np.median(ratios)) if ratios.size else None,
            "ratios": {f"{r['calibrator']}@{r['subband']}": r["ratio"] for r in self.rows},
            "outputs": [str(p) for p in (self.csv, self.png) if p is not None],
        }


def _images(images: Sequence[str | Path], image_dirs: Sequence[str | Path], exclude: Sequence[Path],
            hints: ImageHints | None) -> list[ImageInfo]:
    records = []
    for path in images:
        record = image_info(path, hints).require(*NEEDED)
        if record.stokes != "I":
            log.warning("%s is Stokes %s: skipped (the flux check needs Stokes I)", path, record.stokes)
            continue
        records.append(record)
    if image_dirs:
        for image_set in find_sets(image_dirs, exclude=exclude, hints=hints):
            if image_set.deep_i is not None:
                records.append(image_set.deep_i)
    if not records:
        raise LwaError("no Stokes I image to check (give deep I images or a folder holding them)")
    return records


def flux_check(
    *,
    images: Sequence[str | Path] = (),
    image_dirs: Sequence[str | Path] = (),
    skymodel: str | Path | None,
    output_dir: str | Path,
    settings: FluxScale = FluxScale(),
    photometry: Cutout = Cutout(),
    measure: str = "fit",
    site: Site | None = None,
    overwrite: bool = False,
    png: bool = True,
    hints: ImageHints | None = None,
) -> FluxCheckResult:
    """Measure the calibrators in deep I images and compare with their models (module doc).

    `settings` (the `[flux_scale]` config section) gives the calibrators, their elevation limit and
    the ratio range; `photometry` (`[cutout]`) how each is measured. A measured/model ratio outside
    `settings.ratio_range` is logged as a WARNING: the flux scale, or that measurement, is broken."""
    min_elevation_deg = settings.min_elevation_deg
    if measure not in ("fit", "peak"):
        raise LwaError(f"measure must be 'fit' or 'peak', got '{measure}'")
    output_dir = Path(output_dir)
    csv_path = FLUX_CHECK.path(output_dir)
    png_path = csv_path.with_suffix(".png")
    check_output(csv_path, overwrite=overwrite)
    if png:
        check_output(png_path, overwrite=overwrite)
    cals = load_calibrators(skymodel, list(settings.calibrators))
    records = _images(images, image_dirs, exclude=[output_dir], hints=hints)
    result = FluxCheckResult()
    for record in records:
        result.rows.extend(_check_image(
            record, cals, min_elevation_deg=min_elevation_deg,
            pad_arcsec_at_85mhz=photometry.ionospheric_pad_arcsec_at_85mhz,
            annulus_beams=(photometry.annulus_inner_beams, photometry.annulus_outer_beams),
            detection_sigma=photometry.detection_sigma, measure=measure, site=site))
    make_dirs(output_dir)
    result.csv = write_rows_csv(csv_path, result.rows, FLUX_CHECK_COLUMNS)
    if png:
        result.png = plot_flux_check(png_path, result.rows)
    ratios = result.ratios()
    if ratios.size:
        log.info("flux check: %d calibrator measurements, median measured/model ratio %.3f", ratios.size,
                 float(np.median(ratios)))
        lo, hi = settings.ratio_range
        for r in result.rows:
            if np.isfinite(r.get("ratio", math.nan)) and not lo <= r["ratio"] <= hi:
                log.warning("flux check: %s at %s measured/model = %.3g, outside [%g, %g]: the flux scale (or "
                            "this measurement) is broken", r["calibrator"], r["subband"], r["ratio"], lo, hi)
    else:
        log.warning("flux check: no calibrator could be measured (all below %g deg or off the images)",
                    min_elevation_deg)
    return result


def _check_image(record: ImageInfo, cals: Sequence[Calibrator], *, min_elevation_deg: float,
                 pad_arcsec_at_85mhz: float, annulus_beams: tuple[float, float], detection_sigma: float,
                 measure: str, site: Site | None) -> list[dict[str, Any]]:
    if not record.pbcor:
        log.warning("%s is not primary-beam corrected (PBCOR != T): its fluxes are apparent, the ratios are "
                    "not a flux-scale check", record.path)
    time = Time(record.mjd_mid, format="mjd", scale="utc")
    az, el = radec_to_azel(np.array([c.ra_deg for c in cals]), np.array([c.dec_deg for c in cals]), time=time,
                           site=site)
    loaded = None
    rows = []
    for cal, elevation in zip(cals, el, strict=True):
        if elevation < min_elevation_deg:
            log.info("%s: %s at %.1f deg elevation (< %g deg): not checked", record.path.name, cal.name, elevation,
                     min_elevation_deg)
            continue
        if loaded is None:
            loaded = load_image(record)
        lo, hi = cal.valid_mhz
        note = [] if lo <= record.freq_mhz <= hi else [f"model extrapolated outside {lo:g}-{hi:g} MHz"]
        if note:
            log.warning("%s: %s model (%s) %s", record.path.name, cal.name, cal.reference, note[0])
        m: Measurement = measure_position(
            loaded.plane, loaded.wcs, cal.ra_deg, cal.dec_deg, beam=loaded.beam, freq_mhz=record.freq_mhz,
            stokes="I", pad_arcsec_at_85mhz=pad_arcsec_at_85mhz, annulus_beams=annulus_beams,
            detection_sigma=detection_sigma,
        )
        model = cal.flux_at(record.freq_mhz * 1e6)
        if measure == "fit" and m.fit is not None:
            measured, how = m.fit.flux_jy, "fit"
        else:
            measured, how = m.peak_jy, "peak"
            if measure == "fit":
                note.append("no Gaussian fit: peak used")
        if m.note:
            note.append(m.note)
        ratio = measured / model if model > 0 else math.nan
        rows.append({
            "calibrator": cal.name, "reference": cal.reference, "subband": record.subband,
            "freq_mhz": record.freq_mhz, "date_obs": record.date_obs, "mjd_mid": record.mjd_mid,
            "ra_deg": cal.ra_deg, "dec_deg": cal.dec_deg, "elevation_deg": float(elevation), "model_jy": model,
            "measured_jy": measured, "measure": how, "ratio": ratio,
            "ratio_err": m.rms_jy / model if model > 0 else math.nan, "peak_jy": m.peak_jy,
            "fit_flux_jy": m.fit.flux_jy if m.fit else math.nan, "rms_jy": m.rms_jy, "snr": m.snr,
            "peak_offset_arcsec": m.peak_offset_arcsec, "pbcor": record.pbcor, "dewarped": record.dewarped,
            "image": str(record.path), "note": "; ".join(note),
        })
        log.info("%s %s: model %.2f Jy, measured %.2f Jy (%s), ratio %.3f", record.subband, cal.name, model,
                 measured, how, ratio)
    return rows


def plot_flux_check(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Left: measured / model against frequency per calibrator; right: measured against model."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    fig = Figure(figsize=(11, 4.8), dpi=90)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = sorted({r["calibrator"] for r in rows})
    all_model, all_meas = [], []
    for i, name in enumerate(names):
        sel = [r for r in rows if r["calibrator"] == name and np.isfinite(r["ratio"])]
        if not sel:
            continue
        color = f"C{i % 10}"
        freq = [r["freq_mhz"] for r in sel]
        ax1.errorbar(freq, [r["ratio"] for r in sel], yerr=[r["ratio_err"] for r in sel], fmt="o", color=color,
                     label=name, capsize=2)
        model, meas = [r["model_jy"] for r in sel], [r["measured_jy"] for r in sel]
        ax2.plot(model, meas, "o", color=color, label=name)
        all_model += model
        all_meas += meas
    ax1.axhline(1.0, color="k", lw=0.8)
    ratios = [r["ratio"] for r in rows if np.isfinite(r["ratio"])]
    if ratios:
        ax1.axhline(float(np.median(ratios)), color="gray", lw=0.8, ls="--", label=f"median {np.median(ratios):.3f}")
    ax1.set_xlabel("frequency [MHz]")
    ax1.set_ylabel("measured / model")
    ax1.set_title("flux-scale ratio")
    positive = [v for v in all_model + all_meas if np.isfinite(v) and v > 0]
    if positive:
        lo, hi = min(positive) / 1.5, max(positive) * 1.5
        ax2.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        for axis in (ax2.xaxis, ax2.yaxis):
            axis.set_minor_formatter(NullFormatter())
        ax2.set_xlim(lo, hi)
        ax2.set_ylim(lo, hi)
    ax2.set_xlabel("model flux [Jy]")
    ax2.set_ylabel("measured flux [Jy]")
    ax2.set_title("measured vs model")
    if names and ratios:
        ax1.legend(fontsize=7)
        ax2.legend(fontsize=7)
    else:
        ax1.text(0.5, 0.5, "no calibrator measured", ha="center", va="center", transform=ax1.transAxes)
    fig.subplots_adjust(left=0.08, right=0.97, wspace=0.3, bottom=0.12)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
