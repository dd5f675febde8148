"""Synthetic run folders with a known truth, for the tests, the benchmark and the README example.

`write_night()` writes one LST hour of one night the way bin/run_hour.sh leaves it: per subband
`images/` (deep I and V, 10 min I and V; self-describing headers written with
`lwa_common.fitsio.write_image`, Gaussian noise of a known RMS), `photometry/<target>/<target>_photometry.csv`
(lwa-cutout's columns: forced photometry at each target, deep and 10 min rows) and
`transients/candidates.csv` (lwa-transient's columns). `THREE_NIGHTS` is the truth of the tests:
steady sources, a variable star (Stokes I changing night to night) and a Stokes V burst on night 2
only, plus a bi-lobe artefact.

    python -m lwa_db.testing DIR      # writes DIR/night1/10h ... DIR/night3/10h
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.time import Time, TimeDelta

from lwa_common.fitsio import write_image
from lwa_common.testing import allsky_header

__all__ = ["Target", "Burst", "Night", "THREE_NIGHTS", "write_night", "write_nights", "PHOTOMETRY_COLUMNS",
           "CANDIDATE_COLUMNS"]

PHOTOMETRY_COLUMNS = (
    "name", "ra", "dec", "target", "subband", "freq_mhz", "interval", "I_kind", "date_obs", "date_end", "mjd_mid",
    "pos_ra_deg", "pos_dec_deg", "beam_major_arcsec", "pbcor", "dewarped",
    "I_image", "I_cat_jy", "I_peak_jy", "I_rms_jy", "I_snr", "I_detected", "I_fit_flux_jy",
    "V_image", "V_cat_jy", "V_peak_jy", "V_rms_jy", "V_snr", "V_detected", "V_fit_peak_jy",
    "stokes", "flux_jy", "snr", "detection_stokes", "detected",
)
"""The subset of lwa-cutout's `{target}_photometry.csv` columns that lwa-db reads (input columns first)."""
CANDIDATE_COLUMNS = ("stokes", "interval", "ra", "dec", "jname", "peak_jy", "rms_jy", "snr", "sign", "bilobe",
                     "class", "catalog_match", "image", "subband", "freq_mhz", "x", "y")
"""The subset of lwa-transient's `candidates.csv` columns that lwa-db reads."""

BEAM_DEG = 0.5
CENTRE = (151.0, 37.24)
FREQ_MHZ = {"55MHz": 55.4, "73MHz": 73.9}


@dataclass(frozen=True)
class Target:
    name: str
    ra_deg: float
    dec_deg: float
    flux_i: Sequence[float]  # per night (Jy)
    flux_v: float = 0.0


@dataclass(frozen=True)
class Burst:
    ra_deg: float
    dec_deg: float
    night: int  # 0-based
    interval: str
    peak_jy: float


@dataclass
class Night:
    date: str  # UTC start of the hour
    index: int
    subbands: tuple[str, ...] = ("55MHz",)
    n_intervals: int = 3
    rms_i: float = 0.5
    rms_v: float = 0.3
    targets: Sequence[Target] = field(default_factory=tuple)
    bursts: Sequence[Burst] = field(default_factory=tuple)
    artefacts: Sequence[tuple[float, float]] = field(default_factory=tuple)
    n_extra_candidates: int = 0  # random candidates (benchmark)


THREE_NIGHTS_TARGETS = (
    Target("Steady A", 150.0, 36.0, (10.0, 10.0, 10.0)),
    Target("Steady B", 153.0, 39.0, (6.0, 6.0, 6.0)),
    Target("Steady C", 148.5, 35.0, (20.0, 20.0, 20.0), flux_v=-0.1),
    Target("Var Star", 152.0, 38.0, (8.0, 30.0, 3.0), flux_v=0.5),
)
THREE_NIGHTS_BURST = Burst(154.5, 36.5, night=1, interval="t0002", peak_jy=4.0)
THREE_NIGHTS = tuple(
    Night(date=f"2024-12-2{i}T11:55:00", index=i, targets=THREE_NIGHTS_TARGETS, bursts=(THREE_NIGHTS_BURST,),
          artefacts=((149.0, 40.0),) if i == 0 else ())
    for i in range(3)
)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return str(value)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in columns})


def _image(folder: Path, subband: str, stokes: str, interval: str, n_int: int, t0: Time, rms: float,
           rng: np.random.Generator, size: int) -> Path:
    deep = interval == "deep"
    k = 0 if deep else int(interval[1:]) - 1
    start = t0 if deep else t0 + TimeDelta(600 * k, format="sec")
    end = t0 + TimeDelta(600 * n_int, format="sec") if deep else start + TimeDelta(600, format="sec")
    header = allsky_header(size=size, scale_deg=1.5, ra_deg=CENTRE[0], dec_deg=CENTRE[1],
                           freq_mhz=FREQ_MHZ.get(subband, 55.4), bmaj_deg=BEAM_DEG, date_obs=start.isot)
    noise = rms * (1.0 if deep else np.sqrt(n_int))
    data = rng.normal(0.0, noise, (1, 1, size, size)).astype(np.float32)
    config = f"{stokes}-Deep-Taper-Robust-0" if deep else f"{stokes}-10min-Taper-Robust-0"
    name = f"{subband}-{config}{'' if deep else '-' + interval}-image.fits"
    keys = {"STOKES": stokes, "IMGCAT": "deep" if deep else "10min", "INTERVAL": interval,
            "NINTERVL": 1 if deep else n_int, "CONFIG": config, "ROBUST": 0.0, "TAPER": 30.0, "PBCOR": False,
            "DEWARPED": False, "SUBBAND": subband, "FREQMHZ": FREQ_MHZ.get(subband, 55.4),
            "DATE-OBS": start.isot, "DATE-END": end.isot, "MJD-MID": float((start.mjd + end.mjd) / 2)}
    return write_image(folder / name, data, header, tool="lwa-db-testing", keywords=keys, argv=["lwa_db.testing"])


def write_night(root: str | Path, night: Night, *, seed: int = 0, image_size: int = 64) -> Path:
    """One run folder `root/night{index+1}/10h`; returns its path."""
    rng = np.random.default_rng([seed, night.index])
    run = Path(root) / f"night{night.index + 1}" / "10h"
    t0 = Time(night.date, scale="utc")
    intervals = [f"t{k:04d}" for k in range(1, night.n_intervals + 1)]
    for sb in night.subbands:
        sbdir = run / sb
        imgs = {}
        for stokes, rms in (("I", night.rms_i), ("V", night.rms_v)):
            for iv in ["deep", *intervals]:
                imgs[(stokes, iv)] = _image(sbdir / "images", sb, stokes, iv, night.n_intervals, t0, rms, rng,
                                            image_size)
        mjd = {iv: _mjd_mid(p) for (s, iv), p in imgs.items() if s == "I"}
        for tgt in night.targets:
            rows = []
            for iv in ["deep", *intervals]:
                scale = 1.0 if iv == "deep" else np.sqrt(night.n_intervals)
                ri, rv = night.rms_i * scale, night.rms_v * scale
                fi = (tgt.flux_i[night.index] if iv == "deep" else 0.0) + rng.normal(0.0, ri)
                fv = tgt.flux_v + rng.normal(0.0, rv)
                di, dv = abs(fi / ri) >= 5, abs(fv / rv) >= 5
                rows.append({
                    "name": tgt.name, "ra": tgt.ra_deg, "dec": tgt.dec_deg, "target": tgt.name, "subband": sb,
                    "freq_mhz": FREQ_MHZ.get(sb, 55.4), "interval": iv, "I_kind": "deep" if iv == "deep" else "10min-deep",
                    "mjd_mid": mjd[iv], "pos_ra_deg": tgt.ra_deg, "pos_dec_deg": tgt.dec_deg,
                    "beam_major_arcsec": BEAM_DEG * 3600, "pbcor": True, "dewarped": False,
                    "I_image": str(imgs[("I", iv)].relative_to(run)), "I_cat_jy": fi, "I_peak_jy": fi, "I_rms_jy": ri,
                    "I_snr": fi / ri, "I_detected": di, "I_fit_flux_jy": fi if di else float("nan"),
                    "V_image": str(imgs[("V", iv)].relative_to(run)), "V_cat_jy": fv, "V_peak_jy": fv, "V_rms_jy": rv,
                    "V_snr": fv / rv, "V_detected": dv, "V_fit_peak_jy": fv if dv else float("nan"),
                    "stokes": "I", "flux_jy": fi, "snr": fi / ri, "detection_stokes": "I", "detected": di or dv,
                })
            safe = tgt.name.replace(" ", "_")
            _write_csv(sbdir / "photometry" / safe / f"{safe}_photometry.csv", PHOTOMETRY_COLUMNS, rows)
        cands = []
        for b in night.bursts:
            if b.night == night.index and b.interval in intervals:
                cands.append(_candidate(b.ra_deg, b.dec_deg, b.peak_jy, night.rms_v * np.sqrt(night.n_intervals),
                                        b.interval, imgs[("V", b.interval)], sbdir, sb, "candidate", rng))
        for ra, dec in night.artefacts:
            cands.append(_candidate(ra, dec, 3.0, night.rms_v * np.sqrt(night.n_intervals), intervals[0],
                                    imgs[("V", intervals[0])], sbdir, sb, "artefact", rng))
        if night.n_extra_candidates:
            ra = rng.uniform(100.0, 200.0, night.n_extra_candidates)
            dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-10.0)), np.sin(np.radians(80.0)),
                                                   night.n_extra_candidates)))
            for k in range(night.n_extra_candidates):
                iv = intervals[k % len(intervals)]
                cands.append(_candidate(float(ra[k]), float(dec[k]), 2.0, night.rms_v, iv, imgs[("V", iv)], sbdir,
                                        sb, "candidate", rng))
        _write_csv(sbdir / "transients" / "candidates.csv", CANDIDATE_COLUMNS, cands)
    return run


def _candidate(ra, dec, peak, rms, interval, image: Path, sbdir: Path, sb: str, klass: str, rng) -> dict:
    return {"stokes": "V", "interval": interval, "ra": ra, "dec": dec, "jname": "", "peak_jy": peak,
            "rms_jy": rms, "snr": peak / rms, "sign": 1, "bilobe": klass == "artefact", "class": klass,
            "catalog_match": "", "image": str(Path("..") / image.relative_to(sbdir)), "subband": sb,
            "freq_mhz": FREQ_MHZ.get(sb, 55.4), "x": float(rng.uniform(0, 64)), "y": float(rng.uniform(0, 64))}


def _mjd_mid(path: Path) -> float:
    from astropy.io import fits

    return float(fits.getheader(path)["MJD-MID"])


def write_nights(root: str | Path, nights: Sequence[Night] = THREE_NIGHTS, *, seed: int = 0) -> list[Path]:
    return [write_night(root, n, seed=seed) for n in nights]


if __name__ == "__main__":  # pragma: no cover - the README example
    for path in write_nights(sys.argv[1] if len(sys.argv) > 1 else "nights"):
        sys.stdout.write(f"{path}\n")
