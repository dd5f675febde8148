"""Concatenate per-integration MS into one MS with one field, phased to one centre.

OVRO-LWA writes one MS per 10 s integration, each phased to its own zenith. wsclean's
``-intervals-out`` counts time steps inside one MS, so the science images need one MS; and
wsclean images one field, so every input is rotated to a common phase centre (by default the
meridian at the middle of the data, OVRO latitude) while its rows are copied (`lwa_common.phasing`).

The one MS concatenation: `lwa-image concat`, lwa-calib's calibrator MS and lwa-flag's test MS.

casacore's own ``table.concat`` would keep one FIELD/SPECTRAL_WINDOW per input and cannot mend
inputs that differ, so rows are copied here, healing what can be healed:

- unreadable inputs (missing, not a table, no rows, no DATA/CORRECTED_DATA, missing core
  columns) are skipped, logged and listed in ``<output>.skipped.txt``;
- inputs whose channel frequencies differ from the majority are skipped (reported); the same
  channels in reverse order are flipped; other SPECTRAL_WINDOW differences (names, reference
  frequency, several DATA_DESCRIPTION rows pointing at the same channels) are ignored: every row
  gets DATA_DESC_ID 0;
- CORRECTED_DATA present in only some inputs: the output has it and the others contribute their
  DATA (with a warning); an input without DATA contributes CORRECTED_DATA to DATA; columns not
  in every input (WEIGHT_SPECTRUM, SIGMA_SPECTRUM, ...) and MODEL_DATA are dropped.

Inputs are deleted only with ``delete_inputs`` and only after the output has been verified.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.time import Time

from lwa_common.config import Site
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output
from lwa_common.ms import open_table
from lwa_common.phasing import (
    CHUNK_BYTES,
    field_directions,
    format_centre,
    rephase_chunk,
    resolve_centre,
    set_one_field,
)
from lwa_common.progress import progress
from lwa_common.provenance import stamp_ms

__all__ = ["ConcatResult", "concat_ms", "skipped_list_path"]

log = logging.getLogger(__name__)

REQUIRED = ("TIME", "ANTENNA1", "ANTENNA2", "UVW", "DATA_DESC_ID", "FIELD_ID", "INTERVAL")
NOT_READ = ("UVW", "FIELD_ID", "DATA_DESC_ID", "FLAG_CATEGORY")  # set here / left undefined (wsclean needs
# the FLAG_CATEGORY column to exist, not its values)
FREQ_TOLERANCE_HZ = 1.0


@dataclass
class _Input:
    path: Path
    nrows: int
    t_first: float
    t_last: float
    n_times: int
    freqs: np.ndarray
    corr: tuple[int, ...]
    antennas: tuple[str, ...]
    columns: frozenset[str]
    dirs: np.ndarray
    flip: bool = False


@dataclass
class ConcatResult:
    output: Path
    used: list[Path]
    skipped: list[tuple[Path, str]]
    centre: SkyCoord
    nrows: int = 0
    n_times: int = 0
    deleted: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "output": str(self.output), "used": [str(p) for p in self.used],
            "skipped": [{"path": str(p), "reason": r} for p, r in self.skipped],
            "centre": format_centre(self.centre), "rows": self.nrows, "time_steps": self.n_times,
            "deleted": [str(p) for p in self.deleted],
        }


def skipped_list_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".skipped.txt")


def _inspect(path: Path) -> _Input:
    """Everything needed to decide whether and how `path` joins; LwaError when unreadable."""
    if not path.exists():
        raise LwaError("not found")
    try:
        with open_table(path) as t:
            nrows = t.nrows()
            cols = frozenset(t.colnames())
            if nrows == 0:
                raise LwaError("no rows")
            missing = [c for c in REQUIRED if c not in cols]
            if missing:
                raise LwaError(f"lacks column(s) {', '.join(missing)}")
            if not {"DATA", "CORRECTED_DATA"} & cols:
                raise LwaError("has neither DATA nor CORRECTED_DATA")
            times = t.getcol("TIME")
            ddids = np.unique(t.getcol("DATA_DESC_ID"))
            column = "DATA" if "DATA" in cols else "CORRECTED_DATA"
            t.getcell(column, nrows - 1)  # the data are really there (storage files intact)
        with open_table(path / "DATA_DESCRIPTION") as dd:
            spw_of = dd.getcol("SPECTRAL_WINDOW_ID")
            pol_of = dd.getcol("POLARIZATION_ID")
        spws = {int(spw_of[d]) for d in ddids}
        if len(spws) != 1:
            raise LwaError(f"rows use {len(spws)} spectral windows; one expected")
        with open_table(path / "SPECTRAL_WINDOW") as sw:
            freqs = np.asarray(sw.getcell("CHAN_FREQ", spws.pop()), dtype=float)
        with open_table(path / "POLARIZATION") as pt:
            corr = tuple(int(c) for c in pt.getcell("CORR_TYPE", int(pol_of[ddids[0]])))
        with open_table(path / "ANTENNA") as at:
            names = tuple(at.getcol("NAME"))
        dirs = field_directions(path)
    except LwaError:
        raise
    except (RuntimeError, OSError, KeyError, IndexError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LwaError(f"unreadable: {first}") from None
    return _Input(path, nrows, float(times.min()), float(times.max()), int(np.unique(times).size), freqs, corr,
                  names, cols, dirs)


def _same_freqs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= FREQ_TOLERANCE_HZ))


def _select(inputs: list[_Input], skipped: list[tuple[Path, str]]) -> list[_Input]:
    """Keep the inputs that match the majority's channels, polarisations and antennas."""
    def key(x: _Input) -> tuple:
        return tuple(np.round(np.sort(x.freqs)).astype(np.int64)), x.corr, x.antennas

    ref_key, _ = Counter(key(x) for x in inputs).most_common(1)[0]
    ref = next(x for x in inputs if key(x) == ref_key)
    keep = []
    for x in inputs:
        if _same_freqs(x.freqs, ref.freqs):
            pass
        elif _same_freqs(x.freqs[::-1], ref.freqs):
            x.flip = True
            log.warning("%s: channels in reverse frequency order; flipping them", x.path)
        else:
            skipped.append((x.path, f"frequencies {x.freqs.min() / 1e6:.4f}-{x.freqs.max() / 1e6:.4f} MHz "
                                    f"({x.freqs.size} ch) differ from {ref.freqs.min() / 1e6:.4f}-"
                                    f"{ref.freqs.max() / 1e6:.4f} MHz ({ref.freqs.size} ch)"))
            continue
        if x.corr != ref.corr:
            skipped.append((x.path, f"polarisations {list(x.corr)} differ from {list(ref.corr)}"))
            continue
        if x.antennas != ref.antennas:
            skipped.append((x.path, f"antenna table ({len(x.antennas)} antennas) differs from the others "
                                    f"({len(ref.antennas)})"))
            continue
        keep.append(x)
    keep.sort(key=lambda x: x.t_first)
    out: list[_Input] = []
    for x in keep:
        if out and x.t_first <= out[-1].t_last:
            same = x.t_first == out[-1].t_first and x.t_last == out[-1].t_last
            reason = f"duplicate of {out[-1].path.name}" if same else f"overlaps {out[-1].path.name} in time"
            skipped.append((x.path, reason))
            continue
        out.append(x)
    # the template (first input) must carry the reference channel order
    if out and out[0].flip:
        for x in out:
            x.flip = not x.flip
    return out


def _output_columns(inputs: list[_Input]) -> tuple[list[str], bool]:
    """Columns of the output (template order) and whether CORRECTED_DATA is added."""
    template = inputs[0]
    common = frozenset.intersection(*(x.columns for x in inputs))
    any_corrected = any("CORRECTED_DATA" in x.columns for x in inputs)
    cols = []
    for c in sorted(template.columns):
        if c in ("MODEL_DATA", "DATA", "CORRECTED_DATA"):
            continue
        if c not in common:
            log.warning("column %s is not in every input; dropped from the output", c)
            continue
        cols.append(c)
    add_corrected = any_corrected and "CORRECTED_DATA" not in template.columns
    for x in inputs:
        if any_corrected and "CORRECTED_DATA" not in x.columns:
            log.warning("%s has no CORRECTED_DATA; its DATA fills CORRECTED_DATA in the output", x.path)
        if "DATA" not in x.columns:
            log.warning("%s has no DATA; its CORRECTED_DATA fills DATA in the output", x.path)
    return cols, add_corrected


def _prepare_template(first: _Input, tmp: Path, drop: list[str], add_corrected: bool,
                      add_data: bool) -> None:
    with open_table(first.path) as src:
        src.copy(str(tmp), deep=True, valuecopy=True, copynorows=True).close()
        subtables = [k for k, v in src.getkeywords().items() if isinstance(v, str) and v.startswith("Table: ")]
    for name in subtables:  # copynorows empties the subtables too: take them whole from the template
        if (first.path / name).is_dir():
            shutil.rmtree(tmp / name, ignore_errors=True)
            shutil.copytree(first.path / name, tmp / name, symlinks=True)
    with open_table(tmp, readonly=False) as t:
        present = [c for c in drop if c in t.colnames()]
        if present:
            t.removecols(present)
        for name, like in (("CORRECTED_DATA", "DATA"), ("DATA", "CORRECTED_DATA")):
            if (name == "CORRECTED_DATA" and add_corrected) or (name == "DATA" and add_data):
                from casacore.tables import makecoldesc

                desc = t.getcoldesc(like)
                desc.pop("dataManagerGroup", None)
                desc["dataManagerType"] = "TiledShapeStMan"
                dminfo = {"TYPE": "TiledShapeStMan", "NAME": f"Tiled{name.title().replace('_', '')}", "SPEC": {}}
                t.addcols(makecoldesc(name, desc), dminfo)


def _copy_rows(x: _Input, out, cols: list[str], vis_cols: list[str], centre: tuple[float, float],
               freqs: np.ndarray) -> int:
    """Append the rows of input `x` to the open output table `out`, rotated to `centre`."""
    with open_table(x.path) as t:
        nchan = x.freqs.size
        step = max(512, CHUNK_BYTES // max(1, nchan * len(x.corr) * 8 * (len(vis_cols) + 1)))
        for start in range(0, x.nrows, step):
            n = min(step, x.nrows - start)
            vis = {}
            for c in vis_cols:
                src = c if c in x.columns else ("DATA" if c == "CORRECTED_DATA" else "CORRECTED_DATA")
                vis[c] = t.getcol(src, start, n)
            other = {c: t.getcol(c, start, n) for c in cols if c not in NOT_READ}
            if x.flip:
                for c in list(vis):
                    vis[c] = np.ascontiguousarray(vis[c][:, ::-1])
                for c in ("FLAG", "WEIGHT_SPECTRUM", "SIGMA_SPECTRUM"):
                    if c in other and other[c].ndim == 3:
                        other[c] = np.ascontiguousarray(other[c][:, ::-1])
            field_ids = t.getcol("FIELD_ID", start, n)
            uvw, _ = rephase_chunk(t.getcol("UVW", start, n), list(vis.values()), field_ids, freqs, x.dirs, centre)
            row0 = out.nrows()
            out.addrows(n)
            out.putcol("UVW", uvw, row0, n)
            out.putcol("FIELD_ID", np.zeros(n, dtype=np.int32), row0, n)
            out.putcol("DATA_DESC_ID", np.zeros(n, dtype=np.int32), row0, n)
            for c, arr in other.items():
                out.putcol(c, arr, row0, n)
            for c, arr in vis.items():
                out.putcol(c, arr, row0, n)
    return x.nrows


def _finish_subtables(tmp: Path, inputs: list[_Input], centre: SkyCoord) -> None:
    set_one_field(tmp, centre)
    obs = tmp / "OBSERVATION"
    if obs.exists():
        with open_table(tmp) as t:
            times, exposure = t.getcol("TIME"), t.getcol("INTERVAL")
        with open_table(obs, readonly=False) as ot:
            if ot.nrows() and "TIME_RANGE" in ot.colnames():
                ot.putcell("TIME_RANGE", 0, np.array([(times - exposure / 2).min(), (times + exposure / 2).max()]))
    dd = tmp / "DATA_DESCRIPTION"
    with open_table(dd, readonly=False) as ddt:
        if ddt.nrows() > 1:
            ddt.removerows(list(range(1, ddt.nrows())))
        ddt.putcell("SPECTRAL_WINDOW_ID", 0, 0)
    with open_table(tmp / "SPECTRAL_WINDOW", readonly=False) as sw:
        if sw.nrows() > 1:
            sw.removerows(list(range(1, sw.nrows())))
        sw.putcell("CHAN_FREQ", 0, inputs[0].freqs)


def _verify(path: Path, expected_rows: int, expected_times: int, centre: SkyCoord, vis_cols: list[str]) -> None:
    with open_table(path) as t:
        if t.nrows() != expected_rows:
            raise LwaError(f"concat verification failed: {path} has {t.nrows()} rows, expected {expected_rows}")
        n_times = np.unique(t.getcol("TIME")).size
        if n_times != expected_times:
            raise LwaError(f"concat verification failed: {path} has {n_times} time steps, expected {expected_times}")
        for c in vis_cols:
            t.getcell(c, t.nrows() - 1)
        if np.any(t.getcol("FIELD_ID") != 0):
            raise LwaError(f"concat verification failed: {path} has rows outside field 0")
    dirs = field_directions(path)
    if dirs.shape[0] != 1 or not np.allclose(dirs[0], [centre.ra.rad, centre.dec.rad], atol=1e-9):
        raise LwaError(f"concat verification failed: {path} is not phased to {format_centre(centre)}")


def concat_ms(inputs: Sequence[str | Path], output: str | Path, *, centre: str | SkyCoord | None = None,
              lst_hour: float | None = None, site: Site | None = None, overwrite: bool = False,
              delete_inputs: bool = False, tool: str = "lwa-image") -> ConcatResult:
    """Concatenate `inputs` into `output` (one field at `centre`); see the module docstring.

    `centre` (``'10h30m00s +37d12m57s'`` or a SkyCoord) or `lst_hour` (the meridian at the middle
    of that LST hour) choose the phase centre; by default the meridian at the middle of the data.
    `tool` names the tool in the output's HISTORY.
    """
    t0 = time.perf_counter()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise LwaError("no input MS given")
    output = check_output(Path(output), overwrite=overwrite)
    if any(p.resolve() == output.resolve() for p in paths):
        raise LwaError(f"output {output} is also an input")
    skipped: list[tuple[Path, str]] = []
    readable: list[_Input] = []
    for p in paths:
        try:
            readable.append(_inspect(p))
        except LwaError as err:
            skipped.append((p, str(err)))
    if not readable:
        raise LwaError(f"none of the {len(paths)} input MS is readable (first: {paths[0]}: {skipped[0][1]})")
    used = _select(readable, skipped)
    for p, reason in skipped:
        log.warning("skipping %s: %s", p, reason)
    centre_c = resolve_centre(centre=centre, lst_hour=lst_hour, ms_paths=[x.path for x in used], site=site)
    new = (float(centre_c.ra.rad), float(centre_c.dec.rad))
    cols, add_corrected = _output_columns(used)
    template = used[0]
    vis_cols = ["DATA"] + (["CORRECTED_DATA"] if add_corrected or "CORRECTED_DATA" in template.columns else [])
    drop = [c for c in template.columns if c not in cols and c not in vis_cols]
    log.info("concatenating %d MS (%d skipped) into %s, phase centre %s", len(used), len(skipped), output,
             format_centre(centre_c))
    rows = 0
    with atomic_path(output, directory=True) as tmp:
        _prepare_template(template, tmp, drop, add_corrected, add_data="DATA" not in template.columns)
        with open_table(tmp, readonly=False) as out:
            for x in progress(used, what="concat", logger=log):
                rows += _copy_rows(x, out, cols, vis_cols, new, template.freqs)
        _finish_subtables(tmp, used, centre_c)
        n_times = sum(x.n_times for x in used)
        _verify(tmp, rows, n_times, centre_c, vis_cols)
        stamp_ms(tmp, tool=tool, message=f"{tool} concat of {len(used)} MS, phase centre {format_centre(centre_c)}")
    result = ConcatResult(output=output, used=[x.path for x in used], skipped=skipped, centre=centre_c,
                          nrows=rows, n_times=n_times)
    _write_skipped(output, skipped)
    if delete_inputs:
        _verify(output, rows, n_times, centre_c, vis_cols)
        for x in used:
            shutil.rmtree(x.path)
            result.deleted.append(x.path)
        log.info("deleted %d input MS after verifying %s", len(result.deleted), output)
    start = Time(used[0].t_first / 86400, format="mjd").isot
    log.info("concat: %s has %d rows, %d time steps from %s, in %.1f s", output, rows, n_times, start,
             time.perf_counter() - t0)
    return result


def _write_skipped(output: Path, skipped: list[tuple[Path, str]]) -> None:
    path = skipped_list_path(output)
    if not skipped:
        if path.exists():
            path.unlink()
        return
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{p}\t{reason}\n" for p, reason in skipped))
    log.warning("%d input(s) skipped; listed in %s", len(skipped), path)
