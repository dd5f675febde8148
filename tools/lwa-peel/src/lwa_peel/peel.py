"""Peel one MS: solve a direction-dependent gain per source with DP3 DDECal and subtract it.

One DP3 call per MS: DDECal predicts every direction from the sky model (one patch per source),
solves a diagonal (per-polarisation complex) gain per antenna per direction over the whole MS
(`solint=0`; one integration per MS in OVRO-LWA data) and `channels_per_solution` channels (0: the
whole band), ignoring baselines shorter than `uv_min_lambda` in the solve, and subtracts the
gain-corrupted model of every direction from all baselines (`subtract=true`). The solutions
(one h5parm direction per source), the sky model and the parset are kept next to the output.

With a field catalogue (`field`), its sources (apparent flux >= `field_min_jy`, farther than
`field_exclude_deg` from the peeled sources) form one more patch, "field", that is never solved:
a DP3 Predict step subtracts it before DDECal and another adds it back after, so the A-team gains
are solved on data without the field and cannot absorb it (they absorb only what the catalogue
gets wrong). The catalogue's positions are off by the ionosphere (arcminutes), which the solve
would fit as A-team error; so with `field_refine` the peel runs twice: the first pass's output
gives each field source's position (`lwa_peel.refine`), and the second pass peels the original
data with the field moved there. With `model_refine_rounds` (sky), each peeled source's model
also gets the clean components of its residual after such a pass (`lwa_peel.selfcal`): the
structure the shipped few-Gaussian A-team model lacks.

Output: a copy of the MS (`output`, written atomically) or the MS itself (`in_place`); the
peeled visibilities go to `column` (CORRECTED_DATA by default) from `input_column`
(CORRECTED_DATA, or DATA when there is none). The output column gets a keyword `LWA_PEEL`
listing what was peeled ("sky", "rfi"): peeling an already peeled column again is skipped with
a warning, so reruns are safe.

The steps this shares with `refine-model` (`lwa_peel.hourmodel`) are in `lwa_peel.steps`; here is
the run of one MS around them (copy or in place, the column marker, HISTORY, the result).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_common.catalogs import CatalogSource, RfiSource
from lwa_common.config import Peel, PrimaryBeam
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import MsInfo, check_ms, check_ms_output, ms_output, open_table
from lwa_common.provenance import stamp_ms
from lwa_peel import steps
from lwa_peel.dp3 import Dp3Run, run_dp3
from lwa_peel.model import Direction, Skipped
from lwa_peel.steps import KINDS, ms_info, product_paths

__all__ = ["PeelResult", "MsInfo", "ms_info", "peel_ms", "product_paths"]

log = logging.getLogger(__name__)

MARKER = "LWA_PEEL"

@dataclass(frozen=True)
class PeelResult:
    """What `peel_ms` did: the MS written, the side products, the directions peeled and skipped."""

    kind: str
    ms: Path
    input_column: str
    column: str
    peeled: tuple[Direction, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    solutions: Path | None = None
    skymodel: Path | None = None
    parset: Path | None = None
    dp3: Dp3Run | None = None
    note: str = ""
    settings: dict = field(default_factory=dict)
    field: Direction | None = None  # the fixed field patch (never solved), when a catalogue was given

    @property
    def converged(self) -> bool | None:
        """Whether DDECal converged in every solution interval (None: nothing was solved)."""
        if self.dp3 is None or not self.dp3.iterations or not self.peeled:
            return None
        return max(self.dp3.iterations) <= int(self.settings["max_iterations"])

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "ms": str(self.ms),
            "input_column": self.input_column,
            "column": self.column,
            "solutions": str(self.solutions) if self.solutions else None,
            "skymodel": str(self.skymodel) if self.skymodel else None,
            "parset": str(self.parset) if self.parset else None,
            "peeled": [
                {"name": d.name, "patch": d.patch, "az_deg": round(d.az_deg, 4), "el_deg": round(d.el_deg, 4),
                 "ra_deg": round(d.ra_deg, 6), "dec_deg": round(d.dec_deg, 6), "components": len(d.components),
                 "flux_jy": round(d.flux_at(d.components[0].ref_freq_hz), 4)}
                for d in self.peeled
            ],
            "skipped": [
                {"name": s.name, "reason": s.reason, "az_deg": s.az_deg, "el_deg": s.el_deg}
                for s in self.skipped
            ],
            "dp3_command": self.dp3.command_line if self.dp3 else None,
            "dp3_seconds": round(self.dp3.seconds, 3) if self.dp3 else None,
            "iterations": list(self.dp3.iterations) if self.dp3 else [],
            "converged": self.converged,
            "field_sources": len(self.field.components) if self.field else 0,
            "note": self.note,
            "settings": self.settings,
        }


# --------------------------------------------------------------------------- inputs


def _markers(ms: Path, column: str) -> set[str]:
    with open_table(ms) as t:
        if column not in t.colnames():
            return set()
        value = t.getcolkeywords(column).get(MARKER, "")
    return {k for k in str(value).split(",") if k}


def _set_marker(ms: Path, column: str, kinds: set[str]) -> None:
    with open_table(ms, readonly=False) as t:
        t.putcolkeyword(column, MARKER, ",".join(k for k in KINDS if k in kinds))


def _nothing_to_peel(ms: Path, kind: str, directions: Sequence[object], *, already: bool, copy: bool) -> str:
    """Why nothing is peeled ("already peeled", "no sky source to peel"), logged; "" when something is."""
    if directions:
        return ""
    note = "already peeled" if already else f"no {kind} source to peel"
    log.info("%s: %s; %s", ms, note, "copying the data" if copy else "nothing to do")
    return note


def _first_pass_for(kind: str, directions: Sequence[object], fixed: object, settings: dict, paths: dict[str, Path],
                    refined: dict[str, object], *, comment: str) -> Callable | None:
    """The passes before the final one (the field's fluxes refined, the A-team model refined from
    the data), bound to this MS's products; None when neither is asked for or nothing is peeled.
    What they change goes into `refined`."""
    if not directions or not ((fixed is not None and settings["field_refine"])
                              or (kind == "sky" and int(settings["model_refine_rounds"]) > 0)):
        return None
    return functools.partial(steps.first_pass, kind=kind, parset=paths["parset"], fixed=fixed, directions=directions,
                             skymodel=paths["skymodel"], settings=settings, refined=refined, comment=comment)


# --------------------------------------------------------------------------- main entry


def peel_ms(
    ms: str | Path,
    sources: str | Path | Sequence[CatalogSource | RfiSource],
    *,
    kind: str = "sky",
    output: str | Path | None = None,
    in_place: bool = False,
    column: str = "CORRECTED_DATA",
    input_column: str | None = None,
    overwrite: bool = False,
    field: str | Path | Sequence[CatalogSource] | None = None,
    settings: Peel | None = None,
    primary_beam: PrimaryBeam | None = None,
    argv: list[str] | None = None,
) -> PeelResult:
    """Peel the `kind` ("sky" or "rfi") sources of `sources` (a TTCal sources.json or records).

    Writes a copy `output` (default) or, with `in_place`, the MS `ms` itself. `settings` is the
    `[peel]` section and `primary_beam` the `[primary_beam]` one (its `beam_file`); None: the
    defaults (a caller changes values with `lwa_common.config.section_with`). `field` (sky and
    rfi): a reference catalogue (any format `lwa_common.catalogs.read_reference_catalog` reads)
    or records, kept fixed in the solve. Returns what was done; raises `LwaError` (one line) on
    bad input, before any output is written.
    """
    _check_request(kind, output, in_place, column)
    ms, peel = Path(ms), settings if settings is not None else Peel()
    applied = steps.applied_settings(peel, kind=kind, beam_file=(primary_beam or PrimaryBeam()).beam_file)
    output = _check_output(ms, output, overwrite)
    field_sources = steps.load_field(field, peel)
    chosen, label = steps.load_sources(sources, kind)
    info = ms_info(ms)
    in_col = steps.input_column(ms, info, input_column)
    target = (output if output is not None else ms).absolute()
    paths = product_paths(target, kind)
    log.info("peel %s: %s (%s -> %s of %s), %d %s source(s) from %s; settings %s", kind, ms, in_col, column,
             "a copy " + str(output) if output else "the MS in place", len(chosen), kind, label, applied)

    already = kind in _markers(ms, in_col)
    directions, skipped = _unpeeled_directions(chosen, kind, info, applied, ms=ms, in_col=in_col, already=already)
    fixed = steps.field_patch(field_sources, directions, info, applied)
    markers = _markers(ms, in_col) | ({kind} if directions or already else set())
    same_column = in_col == column
    need_dp3 = steps.write_dp3_inputs(kind, target, in_col, column, directions, fixed, paths, applied, info)
    note = _nothing_to_peel(ms, kind, directions, already=already, copy=not same_column or output is not None)
    refined: dict[str, object] = {}  # what the passes before the final one changed
    passes = _first_pass_for(kind, directions, fixed, applied, paths, refined,
                             comment=f"lwa-peel {kind} model for {target} at {info.time_mid.isot}")
    process = functools.partial(
        _process, parset=paths["parset"] if need_dp3 else None, first_pass=passes, column=column,
        markers=markers, argv=argv,
        what=f"DP3 peel {kind}" if directions else "DP3 copy",
        message=f"lwa-peel {kind}: {', '.join(d.name for d in directions) or note} ({in_col} -> {column})")
    dp3 = _execute(process, ms, output, paths["solutions"], peel=bool(directions), copy_only=not same_column)
    _log_outcome(dp3, directions, skipped, kind=kind, target=target, solutions=paths["solutions"],
                 max_iterations=int(applied["max_iterations"]))
    return PeelResult(
        kind=kind, ms=target, input_column=in_col, column=column, peeled=tuple(refined.get("directions", directions)),
        skipped=tuple(skipped), solutions=paths["solutions"] if directions else None,
        skymodel=paths["skymodel"] if directions else None, parset=paths["parset"] if need_dp3 else None,
        dp3=dp3, note=note, settings=applied, field=refined.get("field", fixed),
    )


def _unpeeled_directions(chosen: list, kind: str, info: MsInfo, applied: dict, *, ms: Path, in_col: str,
                         already: bool) -> tuple[list[Direction], list[Skipped]]:
    """The directions to peel (none when the column was peeled already) and the sources skipped."""
    if already:
        log.warning("%s column %s was already peeled (%s) by lwa-peel; not peeling it again", ms, in_col, kind)
        return [], []
    return steps.peel_directions(chosen, kind, info, applied)


def _log_outcome(dp3: Dp3Run | None, directions: list[Direction], skipped: list[Skipped], *, kind: str,
                 target: Path, solutions: Path, max_iterations: int) -> None:
    if dp3 is not None and directions:
        _log_convergence(dp3, max_iterations)
        _log_solutions(solutions)
    log.info("peel %s: %d peeled, %d skipped -> %s", kind, len(directions), len(skipped), target)


def _check_request(kind: str, output: str | Path | None, in_place: bool, column: str) -> None:
    if kind not in KINDS:
        raise LwaError(f"kind '{kind}' is not one of {', '.join(KINDS)}")
    if (output is None) == (not in_place):
        raise LwaError("give exactly one of an output MS (-o) or in_place")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column):
        raise LwaError(f"column name '{column}' is not a valid casacore column name")


def _check_output(ms: Path, output: str | Path | None, overwrite: bool) -> Path | None:
    check_ms(ms)
    if output is None:
        return None
    return check_ms_output(ms, output, overwrite=overwrite)


def _process(ms_path: Path, h5_tmp: Path | None, *, parset: Path | None, first_pass, column: str,
             markers: set[str], argv: list[str] | None, what: str, message: str) -> Dp3Run | None:
    """Run the parset (if any) on `ms_path`, solutions to `h5_tmp` (after `first_pass`, when given);
    mark the column, stamp HISTORY."""
    run = None
    if parset is not None:
        if first_pass is not None:
            first_pass(ms_path)
        overrides = [f"msin={ms_path.absolute()}"]
        if h5_tmp is not None:
            overrides.append(f"ddecal.h5parm={h5_tmp.absolute()}")
        run = run_dp3(parset, overrides, what=what)
    _set_marker(ms_path, column, markers)
    stamp_ms(ms_path, tool="lwa-peel", argv=argv, message=message)
    return run


def _execute(process, ms: Path, output: Path | None, solutions: Path, *, peel: bool, copy_only: bool
             ) -> Dp3Run | None:
    """Run `process` on a copy written atomically to `output`, or on `ms` in place; the solutions
    go to `solutions` atomically when there is something to peel."""
    if output is None and not peel and not copy_only:
        return None
    with ms_output(ms, output, in_place=output is None, overwrite=True) as target:  # output checked before
        if peel:
            with atomic_path(solutions) as h5_tmp:
                return process(target, h5_tmp)
        return process(target, None)


def _log_convergence(run: Dp3Run, max_iterations: int) -> None:
    if not run.iterations:
        return
    worst = max(run.iterations)
    if worst > max_iterations:
        log.warning(
            "DDECal did not converge within %d iterations (took %s); raise --max-iterations for a deeper peel",
            max_iterations, list(run.iterations),
        )
    else:
        log.info("DDECal converged in %s iterations", list(run.iterations))


def _log_solutions(path: Path) -> None:
    """Median gain amplitude per direction (a beam-like factor near 1 means the model fits)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            amp = f["sol000/amplitude000/val"][()]
            axes = f["sol000/amplitude000/val"].attrs["AXES"]
            axes = (axes.decode() if isinstance(axes, bytes) else str(axes)).split(",")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["sol000/amplitude000/dir"][()]]
    except (OSError, KeyError) as err:
        log.warning("cannot read solutions %s: %s", path, err)
        return
    if "dir" not in axes:
        return
    moved = np.moveaxis(amp, axes.index("dir"), 0).reshape(len(names), -1)
    for name, values in zip(names, moved, strict=True):
        good = values[np.isfinite(values) & (values > 0)]
        if good.size:
            log.info("solutions %s: median |g| %.3f (%.3f-%.3f)", name, np.median(good), good.min(), good.max())
