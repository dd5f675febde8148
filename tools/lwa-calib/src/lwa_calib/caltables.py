"""CASA calibration tables: read them into arrays, write them from arrays.

Conventions (checked against casatasks in the tests):

* a bandpass (``B Jones``) table holds one row per antenna with ``CPARAM[chan, pol]`` (pol X, Y);
  applycal divides: ``V_corr_ij = V_ij / (g_i g_j^*)``, the convention of lwa-sim's gains
  (``visibility_ij = g_i g_j^* model_ij``);
* an XY-phase (``Xf Jones``, polcal ``poltype='Xf'``) table holds ``CPARAM[chan, 0] = exp(i x)``, the
  same for every antenna; it acts on Y only, as a gain ``exp(-i x)``: the Y gain of antenna i is
  ``B_iY * conj(Xf)``. So for true gains ``g[ant, pol, chan]`` whose X/Y phase difference at the
  reference antenna is ``d``, a B table relative to the reference antenna plus ``Xf = exp(-i d)``
  reproduce the gains up to one phase per channel common to all antennas and both pols;
* a delay (``K Jones``) table holds ``FPARAM[0, pol]`` in nanoseconds.

`write_caltable` makes the empty table with casatools ``calibrater.createcaltable`` (so CASA's own
layout, keywords and subtables, copied from a template MS) and fills the rows with python-casacore.
`gains_to_tables` turns a gains cube (e.g. lwa-sim's ``true_gains_XXMHz.h5``) into a B and an Xf table.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwa_common.errors import LwaError
from lwa_common.ms import open_table

__all__ = [
    "CalTable",
    "CalWindow",
    "table_windows",
    "merge_caltables",
    "read_caltable",
    "write_caltable",
    "update_caltable",
    "gains_to_tables",
    "read_true_gains",
    "antenna_key",
]

log = logging.getLogger(__name__)

_KINDS = {"B": ("Complex", "B Jones"), "Xf": ("Complex", "Xf Jones"), "K": ("Float", "K Jones"),
          "G": ("Complex", "G Jones")}


def antenna_key(name: str) -> str:
    """Antenna name normalised for matching ('LWA-266' and 'LWA266' are the same antenna)."""
    return "".join(ch for ch in str(name).upper() if ch.isalnum())


@dataclass
class CalTable:
    """A calibration table as arrays: `values[ant, chan, pol]` (complex or float), `flags` alike.

    `antennas` are the ANTENNA1 ids of the rows (one row per antenna and spw is assumed; several
    solution times are reduced to the first), `names` the antenna names of those ids.
    """

    path: Path
    viscal: str
    values: np.ndarray
    flags: np.ndarray
    freqs_hz: np.ndarray
    antennas: np.ndarray
    names: list[str]
    snr: np.ndarray | None = None


@dataclass(frozen=True)
class CalWindow:
    """One spectral window of a calibration table: its id, channel centres and widths (Hz)."""

    spw: int
    freqs_hz: np.ndarray
    widths_hz: np.ndarray

    @property
    def edges_hz(self) -> tuple[float, float]:
        return float(np.min(self.freqs_hz - np.abs(self.widths_hz) / 2)), float(
            np.max(self.freqs_hz + np.abs(self.widths_hz) / 2))

    def describe(self) -> str:
        lo, hi = self.edges_hz
        return f"spw {self.spw}: {lo / 1e6:.3f}-{hi / 1e6:.3f} MHz, {self.freqs_hz.size} channels"


def table_windows(path: str | Path) -> list[CalWindow]:
    """The spectral windows a table has solutions for (a table may hold several subbands)."""
    path = Path(path)
    with open_table(path) as t:
        used = sorted({int(s) for s in t.getcol("SPECTRAL_WINDOW_ID")}) if t.nrows() else []
    with open_table(path / "SPECTRAL_WINDOW") as sw:
        out = []
        for s in used:
            freqs = np.asarray(sw.getcell("CHAN_FREQ", s), dtype=float)
            widths = np.asarray(sw.getcell("CHAN_WIDTH", s), dtype=float) if "CHAN_WIDTH" in sw.colnames() else (
                np.full(freqs.size, np.min(np.abs(np.diff(freqs))) if freqs.size > 1 else 0.0))
            out.append(CalWindow(spw=s, freqs_hz=freqs, widths_hz=widths))
    return out


def read_caltable(path: str | Path, *, expect: str | None = None, spw: int | None = None) -> CalTable:
    """Read a B / Xf / K / G table (one solution interval; spws joined in frequency order).

    `expect` ("B", "Xf", "K") checks the table's VisCal; a mismatch or an unreadable table raises
    an `LwaError` naming `path`. `spw` reads that spectral window only.
    """
    path = Path(path)
    if not path.exists():
        raise LwaError(f"calibration table not found: {path}")
    if not (path / "table.dat").exists():
        raise LwaError(f"{path} is not a casacore table (no table.dat)")
    t = open_table(path)
    try:
        kw = t.getkeywords()
        viscal = str(kw.get("VisCal", ""))
        if expect and not viscal.startswith(_KINDS[expect][1].split()[0] + " "):
            raise LwaError(f"{path} is a '{viscal or 'unknown'}' table, expected {_KINDS[expect][1]}")
        if t.nrows() == 0:
            raise LwaError(f"{path}: calibration table has no solutions")
        col = "CPARAM" if "CPARAM" in t.colnames() else "FPARAM"
        try:
            ant = t.getcol("ANTENNA1")
            spw_ids = t.getcol("SPECTRAL_WINDOW_ID")
            times = t.getcol("TIME")
            vals = [np.asarray(t.getcell(col, r)) for r in range(t.nrows())]
            flg = [np.asarray(t.getcell("FLAG", r)) for r in range(t.nrows())]
            snr = [np.asarray(t.getcell("SNR", r)) for r in range(t.nrows())] if "SNR" in t.colnames() else None
        except RuntimeError as err:
            raise LwaError(f"{path}: unreadable calibration table ({str(err).splitlines()[0]})") from None
    finally:
        t.close()
    with open_table(path / "SPECTRAL_WINDOW") as sw:
        chan_freqs = [np.asarray(sw.getcell("CHAN_FREQ", r), dtype=float) for r in range(sw.nrows())]
    with open_table(path / "ANTENNA") as at:
        all_names = list(at.getcol("NAME"))
    first = {}  # (antenna, spw) -> row of the earliest solution
    for r, (a, s, tt) in enumerate(zip(ant, spw_ids, times)):
        key = (int(a), int(s))
        if key not in first or tt < times[first[key]]:
            first[key] = r
    spws = sorted({s for _, s in first})
    if spw is not None:
        if spw not in spws:
            raise LwaError(f"{path}: no solutions for spw {spw} (it has {', '.join(map(str, spws))})")
        spws = [spw]
        first = {k: r for k, r in first.items() if k[1] == spw}
    antennas = np.array(sorted({a for a, _ in first}))
    n_per_spw = {s: next(vals[r].shape[0] for (a, q), r in first.items() if q == s) for s in spws}
    npol = vals[0].shape[-1]
    nchan = sum(n_per_spw.values())
    values = np.zeros((antennas.size, nchan, npol), dtype=vals[0].dtype)
    flags = np.ones((antennas.size, nchan, npol), dtype=bool)
    snrs = np.zeros((antennas.size, nchan, npol)) if snr is not None else None
    freqs = []
    offset = 0
    for s in spws:
        n = n_per_spw[s]
        freqs.append(chan_freqs[s] if n == chan_freqs[s].size else np.full(n, chan_freqs[s].mean()))
        for i, a in enumerate(antennas):
            r = first.get((int(a), s))
            if r is None or vals[r].shape != (n, npol):
                continue
            values[i, offset:offset + n] = vals[r]
            flags[i, offset:offset + n] = flg[r]
            if snrs is not None:
                snrs[i, offset:offset + n] = snr[r]
        offset += n
    names = [all_names[a] if a < len(all_names) else str(a) for a in antennas]
    return CalTable(path=path, viscal=viscal, values=values, flags=flags, freqs_hz=np.concatenate(freqs),
                    antennas=antennas, names=names, snr=snrs)


def write_caltable(
    path: str | Path, *, template_ms: str | Path, kind: str, values: np.ndarray, flags: np.ndarray | None = None,
    overwrite: bool = False, snr: float = 1000.0,
) -> Path:
    """Write a CASA `kind` table ("B", "Xf", "K", "G") holding `values[ant, chan, pol]` for `template_ms`.

    B: complex [ant, nchan, 2]; Xf: complex [ant, nchan, 1]; K: delays in ns [ant, 1, 2]; G:
    complex [ant, 1, 2]. The MS provides the ANTENNA, FIELD, SPECTRAL_WINDOW and OBSERVATION
    subtables (its first spw); solutions are stamped at the MS mid-time, valid for all of it.
    """
    from lwa_calib.casa_env import cache_dir, captured_output, casatasks, casatools

    if kind not in _KINDS:
        raise LwaError(f"unknown calibration table kind {kind!r} (expected one of {sorted(_KINDS)})")
    path = Path(path)
    template_ms = Path(template_ms)
    if path.exists():
        if not overwrite:
            raise LwaError(f"output exists: {path} (use --overwrite to replace it)")
        shutil.rmtree(path)
    partype, viscal = _KINDS[kind]
    with open_table(template_ms) as t:
        times = t.getcol("TIME")
        interval = float(np.max(t.getcol("INTERVAL"))) if t.nrows() else 0.0
        field = int(t.getcell("FIELD_ID", 0)) if t.nrows() else 0
        obs = int(t.getcell("OBSERVATION_ID", 0)) if t.nrows() else 0
        scan = int(t.getcell("SCAN_NUMBER", 0)) if t.nrows() else 1
    with open_table(template_ms / "ANTENNA") as at:
        n_ant = at.nrows()
    with open_table(template_ms / "SPECTRAL_WINDOW") as sw:
        nchan = len(sw.getcell("CHAN_FREQ", 0))
    values = np.asarray(values)
    want_chan = nchan if kind in ("B", "Xf") else 1
    want_pol = 1 if kind == "Xf" else 2
    if values.shape != (n_ant, want_chan, want_pol):
        raise LwaError(f"{kind} table for {template_ms}: values shaped {values.shape}, "
                       f"expected {(n_ant, want_chan, want_pol)} (antennas, channels, pols)")
    flags = np.zeros(values.shape, dtype=bool) if flags is None else np.asarray(flags, dtype=bool)
    cb = casatools().calibrater()
    with captured_output(casatasks().casalog.logfile() or str(cache_dir() / "casa-startup.log")):
        try:
            cb.open(str(template_ms), addcorr=False, addmodel=False)
            created = cb.createcaltable(str(path), partype, viscal, False)
        finally:
            cb.close()
    if not created:
        raise LwaError(f"CASA could not create {viscal} table {path}")
    col = "CPARAM" if partype == "Complex" else "FPARAM"
    dtype = np.complex64 if partype == "Complex" else np.float32
    tmid = 0.5 * (times.min() + times.max()) if times.size else 0.0
    with open_table(path, readonly=False) as t:
        t.addrows(n_ant)
        t.putcol("TIME", np.full(n_ant, tmid))
        t.putcol("INTERVAL", np.full(n_ant, max(interval, times.max() - times.min() + interval) if times.size else 0.0))
        t.putcol("FIELD_ID", np.full(n_ant, field, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.zeros(n_ant, dtype=np.int32))
        t.putcol("ANTENNA1", np.arange(n_ant, dtype=np.int32))
        t.putcol("ANTENNA2", np.full(n_ant, -1, dtype=np.int32))
        t.putcol("SCAN_NUMBER", np.full(n_ant, scan, dtype=np.int32))
        t.putcol("OBSERVATION_ID", np.full(n_ant, obs, dtype=np.int32))
        t.putcol(col, values.astype(dtype))
        t.putcol("PARAMERR", np.zeros(values.shape, dtype=np.float32))
        t.putcol("FLAG", flags)
        t.putcol("SNR", np.full(values.shape, snr, dtype=np.float32))
        t.putcol("WEIGHT", np.ones(values.shape, dtype=np.float32))
    log.info("wrote %s table %s (%d antennas, %d channels)", viscal, path, n_ant, want_chan)
    return path


def update_caltable(path: str | Path, *, values: np.ndarray, flags: np.ndarray) -> None:
    """Overwrite the solutions and flags of a one-spw, one-interval table read by `read_caltable`."""
    path = Path(path)
    with open_table(path, readonly=False) as t:
        col = "CPARAM" if "CPARAM" in t.colnames() else "FPARAM"
        ant = t.getcol("ANTENNA1")
        order = {int(a): i for i, a in enumerate(sorted(set(ant.tolist())))}
        if len(order) != len(ant) or len(order) != values.shape[0]:
            raise LwaError(f"{path}: expected one row per antenna ({values.shape[0]}), found {len(ant)} rows")
        for r, a in enumerate(ant):
            cell = t.getcell(col, r)
            t.putcell(col, r, values[order[int(a)]].astype(cell.dtype))
            t.putcell("FLAG", r, flags[order[int(a)]])


def gains_to_tables(
    *, gains: np.ndarray, template_ms: str | Path, bp_table: str | Path, xy_table: str | Path,
    xy_phase_deg: float | np.ndarray = 0.0, overwrite: bool = False,
) -> tuple[Path, Path]:
    """B and Xf tables that together apply `gains[ant, pol(X, Y), chan]`.

    The XY phase `xy_phase_deg` (scalar or per channel) goes into the Xf table and is taken out of
    the Y gains of the B table, so applying both removes exactly `gains`.
    """
    gains = np.asarray(gains, dtype=np.complex128)
    if gains.ndim != 3 or gains.shape[1] != 2:
        raise LwaError(f"gains must be shaped [antenna, 2, channel], got {gains.shape}")
    xy = np.broadcast_to(np.radians(np.asarray(xy_phase_deg, dtype=float)), (gains.shape[2],))
    bp = np.transpose(gains, (0, 2, 1)).copy()  # ant, chan, pol
    bp[:, :, 1] *= np.exp(-1j * xy)[None, :]
    xf = np.broadcast_to(np.exp(-1j * xy)[None, :, None], (gains.shape[0], gains.shape[2], 1)).copy()
    write_caltable(bp_table, template_ms=template_ms, kind="B", values=bp, overwrite=overwrite)
    write_caltable(xy_table, template_ms=template_ms, kind="Xf", values=xf, overwrite=overwrite)
    return Path(bp_table), Path(xy_table)


def read_true_gains(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """lwa-sim's ``true_gains_XXMHz.h5``: (gains[ant, pol, chan], freq_hz, antenna names)."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise LwaError(f"gains file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            gains = f["gains"][()]
            freqs = f["freq_hz"][()]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["antenna_names"][()]]
    except (OSError, KeyError) as err:
        raise LwaError(f"{path}: not a gains file ({err})") from None
    return gains, freqs, names


def merge_caltables(path: str | Path, tables: list[str | Path], *, overwrite: bool = False) -> Path:
    """One table with one spectral window per input table (each a one-window table of one subband).

    The kind of table the observatory makes (one B or Xf table for all subbands); the inputs must be
    of one kind and share the antennas.
    """
    path = Path(path)
    if not tables:
        raise LwaError("no tables to merge")
    if path.exists():
        if not overwrite:
            raise LwaError(f"output exists: {path} (use --overwrite to replace it)")
        shutil.rmtree(path)
    viscal = {str(read_caltable(t).viscal) for t in tables}
    if len(viscal) != 1:
        raise LwaError(f"tables of different kinds cannot be merged: {sorted(viscal)}")
    shutil.copytree(tables[0], path)
    with open_table(path, readonly=False) as out, open_table(path / "SPECTRAL_WINDOW", readonly=False) as sw:
        for i, extra in enumerate(tables[1:], start=1):
            with open_table(extra) as t, open_table(Path(extra) / "SPECTRAL_WINDOW") as esw:
                if esw.nrows() != 1:
                    raise LwaError(f"{extra}: merge takes one-window tables, it has {esw.nrows()}")
                esw.copyrows(sw)
                start = out.nrows()
                t.copyrows(out)
                out.putcol("SPECTRAL_WINDOW_ID", np.full(t.nrows(), sw.nrows() - 1, dtype=np.int32), startrow=start,
                           nrow=t.nrows())
            log.debug("merged %s as spw %d", extra, i)
    log.info("merged %d tables into %s (%d spectral windows)", len(tables), path, len(tables))
    return path
