"""Delay check: solve antenna delays on the first integration and compare with a reference table.

The first integration (the rows at the earliest TIME) is copied out with python-casacore into a
scratch folder (the input MS is only read); when a sky model is given it is predicted into
MODEL_DATA (`lwa_calib.skymodel`), otherwise CASA uses its default (1 Jy at the phase centre, fine
only when one source dominates there). ``gaincal`` gaintype 'K' solves one delay per antenna and
pol. Delays of a K table are relative to its reference antenna, and a reference table may have
another one, so the offsets ``solved - reference`` are compared after removing their median per
pol; antennas whose offset exceeds the threshold are reported (log + CSV). Antennas are matched by
name ('LWA-266' = 'LWA266'); those missing from the reference, or flagged in either table, are
listed with that status.
"""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_calib.caltables import antenna_key, read_caltable
from lwa_calib.casa_env import casa_log, run_task
from lwa_calib.skymodel import load_components, write_model_data
from lwa_common.config import Calibration, Site
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output, make_dirs
from lwa_common.ms import check_ms, open_table

__all__ = ["DelayReport", "first_integration", "solve_delays", "compare_delays", "delay_check"]

log = logging.getLogger(__name__)

CSV_NAME = "delay_check.csv"
TABLE_NAME = "first_integration.K"


@dataclass
class DelayReport:
    rows: list[dict] = field(default_factory=list)
    median_offset_ns: list[float] = field(default_factory=list)
    threshold_ns: float = 0.0
    csv: Path | None = None
    table: Path | None = None

    @property
    def off(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "off"]

    @property
    def off_antennas(self) -> list[str]:
        return sorted({r["name"] for r in self.off})

    def as_dict(self) -> dict:
        return {"csv": str(self.csv) if self.csv else None, "table": str(self.table) if self.table else None,
                "threshold_ns": self.threshold_ns, "median_offset_ns": self.median_offset_ns,
                "n_compared": sum(r["status"] in ("ok", "off") for r in self.rows),
                "off_antennas": self.off_antennas}


def first_integration(ms: str | Path, dest: str | Path) -> Path:
    """Copy the rows of the earliest integration of `ms` (with all subtables) to `dest`."""
    ms, dest = Path(ms), Path(dest)
    t = open_table(ms)
    try:
        times = t.getcol("TIME")
        first = float(times.min())
        interval = float(np.min(t.getcol("INTERVAL"))) if t.nrows() else 0.0
        sel = t.query(f"TIME < {first + max(interval, 1e-3) / 2!r}")
        try:
            sel.copy(str(dest), deep=True)
        finally:
            sel.close()
    finally:
        t.close()
    log.info("first integration of %s -> %s", ms, dest)
    return dest


def solve_delays(ms: str | Path, caltable: str | Path, *, refant: str = "",
                 min_snr: float = Calibration.delay_min_snr) -> Path:
    """casatasks.gaincal gaintype 'K' (solint inf) on `ms` into `caltable`.

    `refant` empty: the antenna with the most unflagged data (`lwa_calib.solve.choose_refant`).
    """
    from lwa_calib.solve import choose_refant

    refant = choose_refant(Path(ms), refant)
    kwargs = dict(vis=str(ms), caltable=str(caltable), gaintype="K", solint="inf", refant=refant,
                  minsnr=min_snr, combine="")
    run_task("gaincal", **kwargs)
    if not Path(caltable).exists():
        raise LwaError(f"gaincal (K) on {ms} wrote no table (no usable data? see the CASA log)")
    return Path(caltable)


def compare_delays(solved: str | Path, reference: str | Path, *, threshold_ns: float) -> DelayReport:
    """Per antenna and pol: solved, reference and median-removed offset (ns); status ok/off/flagged/missing."""
    sol = read_caltable(solved, expect="K")
    ref = read_caltable(reference, expect="K")
    ref_index = {antenna_key(n): i for i, n in enumerate(ref.names)}
    npol = min(sol.values.shape[2], ref.values.shape[2])
    pairs = []
    for i, name in enumerate(sol.names):
        j = ref_index.get(antenna_key(name))
        for p in range(npol):
            s_val, s_flag = float(sol.values[i, 0, p]), bool(sol.flags[i, 0, p])
            if j is None:
                pairs.append((i, name, p, s_val, np.nan, True, "missing"))
                continue
            r_val, r_flag = float(ref.values[j, 0, p]), bool(ref.flags[j, 0, p])
            pairs.append((i, name, p, s_val, r_val, s_flag or r_flag, "flagged" if s_flag or r_flag else ""))
    if not any(status == "" for *_, status in pairs):
        raise LwaError(f"no antenna of {solved} has an unflagged delay in {reference} (names differ?)")
    medians = []
    for p in range(npol):
        diffs = [s - r for _, _, q, s, r, bad, st in pairs if q == p and st == ""]
        medians.append(float(np.median(diffs)) if diffs else 0.0)
    rows = []
    for i, name, p, s_val, r_val, _bad, status in pairs:
        offset = s_val - r_val - medians[p] if status == "" else np.nan
        if status == "":
            status = "off" if abs(offset) > threshold_ns else "ok"
        rows.append({"antenna": int(sol.antennas[i]), "name": name, "pol": "XY"[p], "delay_ns": round(s_val, 3),
                     "reference_ns": round(r_val, 3) if np.isfinite(r_val) else "",
                     "offset_ns": round(float(offset), 3) if np.isfinite(offset) else "", "status": status})
    return DelayReport(rows=rows, median_offset_ns=medians, threshold_ns=threshold_ns)


def delay_check(
    ms: str | Path, *, reference: str | Path, outdir: str | Path, settings: Calibration = Calibration(),
    sources: str | Path | None = None, overwrite: bool = False, site: Site | None = None,
) -> DelayReport:
    """Solve delays on the first integration of `ms`, compare with `reference`; CSV + K table in `outdir`.

    From `settings` (the `[calib]` config section): `refant`, `delay_min_snr`, `delay_threshold_ns`.
    """
    threshold_ns = settings.delay_threshold_ns
    ms, outdir = Path(ms), Path(outdir)
    check_ms(ms)
    read_caltable(reference, expect="K")  # fail before work on a bad reference
    components = load_components(sources) if sources else None
    csv_path = check_output(outdir / CSV_NAME, overwrite=overwrite)
    table_path = check_output(outdir / TABLE_NAME, overwrite=overwrite)
    make_dirs(outdir)
    with tempfile.TemporaryDirectory(prefix="lwa-calib-delay-", dir=outdir) as scratch:
        scratch = Path(scratch)
        with casa_log(outdir / "casa.log"):
            one = first_integration(ms, scratch / "first.ms")
            if components is not None:
                write_model_data(one, components=components, site=site)
            else:
                log.warning("no --sources: CASA models the sky as 1 Jy at the phase centre")
            with atomic_path(table_path, directory=True) as tmp:
                solve_delays(one, tmp, refant=settings.refant, min_snr=settings.delay_min_snr)
        shutil.rmtree(scratch / "first.ms", ignore_errors=True)
    report = compare_delays(table_path, reference, threshold_ns=threshold_ns)
    report.csv, report.table = csv_path, table_path
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(report.rows[0]))
        writer.writeheader()
        writer.writerows(report.rows)
    for r in report.off:
        log.info("delay off: antenna %s (%d) pol %s: %+.2f ns from the reference (threshold %.2f ns)",
                 r["name"], r["antenna"], r["pol"], r["offset_ns"], threshold_ns)
    if report.off:
        log.warning("delays of %d antennas differ from %s by more than %.2f ns: %s", len(report.off_antennas),
                    reference, threshold_ns, " ".join(report.off_antennas))
    n_cmp = sum(r["status"] in ("ok", "off") for r in report.rows)
    log.info("delay check: %d of %d antenna-pols off by more than %.2f ns (median offsets %s ns)",
             len(report.off), n_cmp, threshold_ns, ", ".join(f"{m:+.2f}" for m in report.median_offset_ns))
    return report
