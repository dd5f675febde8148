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
"""

from __future__ import annotations

import functools
import logging
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_common.catalogs import CatalogSource, RfiSource, read_reference_catalog, read_ttcal_sources
from lwa_common.config import Config, load_config
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path
from lwa_common.ms import MsInfo, check_ms, check_ms_output, ms_output, open_table
from lwa_common.ms import ms_info as read_ms_info
from lwa_common.provenance import stamp_ms, tool_version
from lwa_peel.dp3 import Dp3Run, dp3_env, find_dp3, run_dp3, thread_count, write_parset
from lwa_peel.model import Direction, Skipped, field_direction, rfi_directions, sky_directions, write_skymodel
from lwa_peel.refine import refine_field
from lwa_peel.selfcal import refine_directions

__all__ = ["PeelResult", "MsInfo", "ms_info", "peel_ms", "product_paths", "resolve_settings"]

log = logging.getLogger(__name__)

KINDS = ("sky", "rfi")
MODES = ("diagonal", "scalar", "fulljones")
MARKER = "LWA_PEEL"
SCRATCH = "LWA_PEEL_PASS1"  # a first pass's output column (removed after the field fit / model refinement)
_MODEL_REFINE = ("model_refine_rounds", "model_refine_radius_arcmin", "model_refine_clean_iterations",
                 "model_refine_channels")

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


def ms_info(path: str | Path) -> MsInfo:
    """`lwa_common.ms.ms_info` of an MS lwa-peel can use: one spectral window, ITRF antennas."""
    info = read_ms_info(path)
    if info.n_spw != 1:
        raise LwaError(f"{path}: {info.n_spw} spectral windows; lwa-peel handles one per MS")
    info.array_centre  # noqa: B018 -- fails early on positions that are not geocentric ITRF
    return info


def _load_sources(sources, kind: str) -> tuple[list, str]:
    if isinstance(sources, (str, Path)):
        label = str(sources)
        items = read_ttcal_sources(sources)
    else:
        label = "the given sources"
        items = list(sources)
    want = CatalogSource if kind == "sky" else RfiSource
    other = RfiSource if kind == "sky" else CatalogSource
    bad = [s for s in items if not isinstance(s, (CatalogSource, RfiSource))]
    if bad:
        raise LwaError(f"{label}: expected CatalogSource / RfiSource records, got {type(bad[0]).__name__}")
    chosen = [s for s in items if isinstance(s, want)]
    ignored = [s.name for s in items if isinstance(s, other)]
    if not chosen:
        what = "sky" if kind == "sky" else "RFI (lat/long/el)"
        raise LwaError(f"{label}: no {what} sources in it")
    if ignored:
        hint = "lwa-peel rfi" if kind == "sky" else "lwa-peel sky"
        log.warning("%s: ignoring %d %s source(s) (%s); peel them with %s",
                    label, len(ignored), "RFI" if kind == "sky" else "sky", ", ".join(ignored), hint)
    return chosen, label


def resolve_settings(cfg: Config | None = None, *, kind: str = "sky", **given) -> dict:
    """Peel settings: the given values, else the config (`[peel]`)."""
    cfg = cfg or load_config(None)
    names = ("min_elevation_deg", "uv_min_lambda", "max_iterations", "tolerance", "step_size",
             "channels_per_solution", "mode", "beam", "smoothness_mhz", "field_min_jy", "field_exclude_deg",
             "field_refine", "field_refine_max_arcmin", "field_refine_min_jy", *_MODEL_REFINE)
    out = {name: given.get(name) if given.get(name) is not None else getattr(cfg.peel, name) for name in names}
    if kind == "rfi":
        out.pop("min_elevation_deg")
        out.pop("smoothness_mhz")
        for name in _MODEL_REFINE:
            out.pop(name)
        if given.get("channels_per_solution") is None:
            out["channels_per_solution"] = cfg.peel.rfi_channels_per_solution
        # an explicit channels_per_solution is taken as it is; the config's grows to the absorption budget
        out["rfi_max_absorption"] = 0.0 if given.get("channels_per_solution") is not None else cfg.peel.rfi_max_absorption
    out["beam_file"] = given.get("beam_file") if given.get("beam_file") is not None else cfg.primary_beam.beam_file
    if out["mode"] not in MODES:
        raise LwaError(f"mode '{out['mode']}' is not one of {', '.join(MODES)}")
    if int(out["max_iterations"]) < 1:
        raise LwaError(f"max_iterations must be at least 1, got {out['max_iterations']}")
    if not 0 < float(out["step_size"]) <= 1:
        raise LwaError(f"step_size must be in (0, 1], got {out['step_size']}")
    if float(out["tolerance"]) <= 0:
        raise LwaError(f"tolerance must be positive, got {out['tolerance']}")
    if int(out["channels_per_solution"]) < 0:
        raise LwaError(f"channels_per_solution must be >= 0, got {out['channels_per_solution']}")
    if kind == "sky" and not float(out["smoothness_mhz"]) >= 0:
        raise LwaError(f"smoothness_mhz must be >= 0, got {out['smoothness_mhz']}")
    if (float(out["field_min_jy"]) < 0 or float(out["field_exclude_deg"]) < 0):
        raise LwaError("field_min_jy and field_exclude_deg must be >= 0")
    if not (float(out["field_refine_max_arcmin"]) > 0 and float(out["field_refine_min_jy"]) >= 0):
        raise LwaError("field_refine_max_arcmin must be > 0 and field_refine_min_jy >= 0")
    if kind == "sky" and not (int(out["model_refine_rounds"]) >= 0 and float(out["model_refine_radius_arcmin"]) > 0
                              and int(out["model_refine_clean_iterations"]) >= 1
                              and int(out["model_refine_channels"]) >= 1):
        raise LwaError("model_refine_rounds must be >= 0, model_refine_radius_arcmin > 0, "
                       "model_refine_clean_iterations and model_refine_channels >= 1")
    if float(out["uv_min_lambda"]) < 0:
        raise LwaError(f"uv_min_lambda must be >= 0, got {out['uv_min_lambda']}")
    return out


def product_paths(ms: str | Path, kind: str) -> dict[str, Path]:
    """Side products of peeling `ms`: NAME.peel-KIND.{h5,skymodel,parset} beside it."""
    ms = Path(ms)
    stem = ms.name[: -len(ms.suffix)] if ms.suffix else ms.name
    base = ms.parent / f"{stem}.peel-{kind}"
    return {"solutions": base.with_name(base.name + ".h5"), "skymodel": base.with_name(base.name + ".skymodel"),
            "parset": base.with_name(base.name + ".parset")}


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
    return functools.partial(_first_pass, kind=kind, parset=paths["parset"], fixed=fixed, directions=directions,
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
    min_elevation_deg: float | None = None,
    uv_min_lambda: float | None = None,
    max_iterations: int | None = None,
    tolerance: float | None = None,
    step_size: float | None = None,
    channels_per_solution: int | None = None,
    mode: str | None = None,
    beam: bool | None = None,
    beam_file: str | Path | None = None,
    smoothness_mhz: float | None = None,
    field: str | Path | Sequence[CatalogSource] | None = None,
    field_min_jy: float | None = None,
    field_exclude_deg: float | None = None,
    config: Config | None = None,
    argv: list[str] | None = None,
) -> PeelResult:
    """Peel the `kind` ("sky" or "rfi") sources of `sources` (a TTCal sources.json or records).

    Writes a copy `output` (default) or, with `in_place`, the MS `ms` itself. Settings left None
    come from `config.peel`. `field` (sky and rfi): a reference catalogue (any format
    `lwa_common.catalogs.read_reference_catalog` reads) or records, kept fixed in the solve.
    Returns what was done; raises `LwaError`
    (one line) on bad input, before any output is written.
    """
    _check_request(kind, output, in_place, column)
    ms = Path(ms)
    settings = resolve_settings(
        config, kind=kind, min_elevation_deg=min_elevation_deg, uv_min_lambda=uv_min_lambda,
        max_iterations=max_iterations, tolerance=tolerance, step_size=step_size,
        channels_per_solution=channels_per_solution, mode=mode, beam=beam, beam_file=beam_file,
        smoothness_mhz=smoothness_mhz, field_min_jy=field_min_jy, field_exclude_deg=field_exclude_deg,
    )
    output = _check_output(ms, output, overwrite)
    field_sources = _load_field(field, config)
    chosen, label = _load_sources(sources, kind)
    info = ms_info(ms)
    in_col = _input_column(ms, info, input_column)
    target = (output if output is not None else ms).absolute()
    paths = product_paths(target, kind)
    log.info("peel %s: %s (%s -> %s of %s), %d %s source(s) from %s; settings %s", kind, ms, in_col, column,
             "a copy " + str(output) if output else "the MS in place", len(chosen), kind, label, settings)

    already = kind in _markers(ms, in_col)
    directions, skipped = _directions(chosen, kind, info, settings, ms=ms, in_col=in_col, already=already)
    fixed = _field(field_sources, directions, info, settings)
    markers = _markers(ms, in_col) | ({kind} if directions or already else set())
    same_column = in_col == column
    need_dp3 = _write_dp3_inputs(kind, target, in_col, column, directions, fixed, paths, settings, info)
    note = _nothing_to_peel(ms, kind, directions, already=already, copy=not same_column or output is not None)
    refined: dict[str, object] = {}  # what the passes before the final one changed
    first_pass = _first_pass_for(kind, directions, fixed, settings, paths, refined,
                                 comment=f"lwa-peel {kind} model for {target} at {info.time_mid.isot}")
    process = functools.partial(
        _process, parset=paths["parset"] if need_dp3 else None, first_pass=first_pass, column=column,
        markers=markers, argv=argv,
        what=f"DP3 peel {kind}" if directions else "DP3 copy",
        message=f"lwa-peel {kind}: {', '.join(d.name for d in directions) or note} ({in_col} -> {column})")
    dp3 = _execute(process, ms, output, paths["solutions"], peel=bool(directions), copy_only=not same_column)
    _log_outcome(dp3, directions, skipped, kind=kind, target=target, solutions=paths["solutions"],
                 max_iterations=int(settings["max_iterations"]))
    return PeelResult(
        kind=kind, ms=target, input_column=in_col, column=column, peeled=tuple(refined.get("directions", directions)),
        skipped=tuple(skipped), solutions=paths["solutions"] if directions else None,
        skymodel=paths["skymodel"] if directions else None, parset=paths["parset"] if need_dp3 else None,
        dp3=dp3, note=note, settings=settings, field=refined.get("field", fixed),
    )


def rfi_solution_channels(n_channels: int, n_antennas: int, configured: int, max_absorption: float) -> int:
    """Channels per RFI-peel solution: at least `configured` (0: the whole band), and enough that a
    diagonal solve's gains absorb at most `max_absorption` of the unmodelled sky, ~2 / ((N - 1) x
    channels); the band is cut into equal blocks (no short last block absorbing more)."""
    if configured == 0 or n_channels <= 1 or max_absorption <= 0:
        return configured
    need = max(configured, math.ceil(2.0 / (max(n_antennas - 1, 1) * max_absorption)))
    blocks = max(1, n_channels // need)
    return 0 if blocks == 1 else math.ceil(n_channels / blocks)


def _write_dp3_inputs(kind: str, target: Path, in_col: str, column: str, directions: list[Direction],
                      fixed: Direction | None, paths: dict[str, Path], settings: dict, info: MsInfo) -> bool:
    """Write the sky model and the parset DP3 runs; returns whether DP3 runs at all (a peel, or a
    copy of the data into another column)."""
    same_column = in_col == column
    if kind == "rfi":
        settings = {**settings, "channels_per_solution": rfi_solution_channels(
            len(info.freqs_hz), info.n_antennas, int(settings["channels_per_solution"]),
            float(settings["rfi_max_absorption"]))}
    params = _parset(target, in_col, column, directions, paths, settings, len(info.freqs_hz), fixed)
    if directions:
        write_skymodel(paths["skymodel"], [*directions, *([fixed] if fixed else [])],
                       comment=f"lwa-peel {kind} model for {target} at {info.time_mid.isot}")
    need_dp3 = bool(directions) or not same_column
    if need_dp3:
        write_parset(paths["parset"], params, comment=_rerun_comment(kind, target, directions, paths, same_column))
    return need_dp3


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


def _input_column(ms: Path, info: MsInfo, input_column: str | None) -> str:
    in_col = input_column or ("CORRECTED_DATA" if "CORRECTED_DATA" in info.columns else "DATA")
    if in_col not in info.columns:
        raise LwaError(f"{ms}: no column {in_col} (has {', '.join(c for c in info.columns if 'DATA' in c)})")
    return in_col


def _directions(chosen: list, kind: str, info: MsInfo, settings: dict, *, ms: Path, in_col: str, already: bool
                ) -> tuple[list[Direction], list[Skipped]]:
    """The directions to peel (none when the column was peeled already) and the sources skipped."""
    if already:
        log.warning("%s column %s was already peeled (%s) by lwa-peel; not peeling it again", ms, in_col, kind)
        return [], []
    if kind == "sky":
        directions, skipped = sky_directions(
            chosen, time=info.time_mid, location=info.array_centre, freqs_hz=info.freqs_hz,
            min_elevation_deg=float(settings["min_elevation_deg"]), beam=_beam_model(settings),
        )
    else:
        directions, skipped = rfi_directions(chosen, time=info.time_mid, location=info.array_centre,
                                             freqs_hz=info.freqs_hz)
    for d in directions:
        log.info(
            "peeling %s as %s: %d component(s), az %.2f el %.2f deg, %.1f Jy (model) at %.3f MHz",
            d.name, d.patch, len(d.components), d.az_deg, d.el_deg,
            d.flux_at(float(np.mean(info.freqs_hz))), float(np.mean(info.freqs_hz)) / 1e6,
        )
    return directions, skipped


def _load_field(field, config: Config | None) -> list[CatalogSource] | None:
    """The field catalogue's sky sources (None when no catalogue was given)."""
    if field is None:
        return None
    if isinstance(field, (str, Path)):
        peel_cfg = (config or load_config(None)).peel
        return [s for s in read_reference_catalog(field, ref_freq_hz=peel_cfg.field_reference_freq_mhz * 1e6,
                                                  spectral_index=peel_cfg.field_spectral_index)
                if isinstance(s, CatalogSource)]
    return [s for s in field if isinstance(s, CatalogSource)]


def _field(sources: list[CatalogSource] | None, directions: Sequence[Direction], info: MsInfo, settings: dict
           ) -> Direction | None:
    """The fixed field patch for this MS (None without a catalogue or without directions to peel)."""
    if not sources or not directions:
        return None
    return field_direction(
        sources, time=info.time_mid, location=info.array_centre, freqs_hz=info.freqs_hz, peeled=directions,
        min_flux_jy=float(settings["field_min_jy"]), exclude_deg=float(settings["field_exclude_deg"]),
        beam=_beam_model(settings))


@functools.lru_cache(maxsize=4)
def _load_beam(beam_file: str):
    from lwa_common.beam import load_beam

    return load_beam(beam_file or None)


def _beam_model(settings: dict):
    """The primary beam the sky model is multiplied by (None with `beam` off)."""
    return _load_beam(str(settings["beam_file"] or "")) if settings["beam"] else None


def _rerun_comment(kind: str, target: Path, directions: Sequence[Direction], paths: dict[str, Path],
                   same_column: bool) -> str:
    return (
        f"lwa-peel {tool_version('lwa-peel')} {kind}: "
        + (", ".join(d.name for d in directions) or "nothing to peel")
        + f"\nrerun by hand on {target}:\n  "
        + " ".join(f"{k}={v}" for k, v in dp3_env().items())
        + f" {find_dp3()} {paths['parset']}"
        + ("\n(reads and writes the same column: a rerun subtracts the sources again)" if same_column else "")
    )


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


def _first_pass(ms_path: Path, *, kind: str, parset: Path, fixed: Direction | None, directions: Sequence[Direction],
                skymodel: Path, settings: dict, refined: dict, comment: str) -> None:
    """The passes before the final one, each into a scratch column: on its output the field's
    positions are fitted (`lwa_peel.refine`, with a field catalogue and `field_refine`) and the
    peeled sources' models get the clean components of their residuals (`lwa_peel.selfcal`,
    `model_refine_rounds` of them); the sky model is rewritten each time."""
    fit_field = fixed is not None and bool(settings["field_refine"])
    rounds = int(settings.get("model_refine_rounds", 0))
    current, moved = list(directions), fixed
    for k in range(max(rounds, int(fit_field))):
        with tempfile.TemporaryDirectory(prefix=".peel-pass1-", dir=ms_path.parent) as tmp:
            h5 = Path(tmp) / "pass.h5"
            run = run_dp3(parset, [f"msin={ms_path.absolute()}", f"msout.datacolumn={SCRATCH}", f"ddecal.h5parm={h5}"],
                          what=f"DP3 peel {kind}, pass {k + 1} (before the final one)")
            if run.iterations:
                log.info("pass %d: DDECal took %s iterations", k + 1, list(run.iterations))
            try:
                if fit_field:
                    moved, _ = refine_field(ms_path, SCRATCH, fixed, min_flux_jy=float(settings["field_refine_min_jy"]),
                                            max_offset_arcmin=float(settings["field_refine_max_arcmin"]),
                                            uv_min_lambda=float(settings["uv_min_lambda"]))
                    write_skymodel(skymodel, [*current, moved], comment=comment)
                if k < rounds:
                    current = refine_directions(
                        ms_path, SCRATCH, current, h5parm=h5, skymodel=skymodel,
                        field_patch=moved.patch if moved is not None else None, workdir=Path(tmp),
                        radius_arcmin=float(settings["model_refine_radius_arcmin"]),
                        channels=int(settings["model_refine_channels"]),
                        clean_iterations=int(settings["model_refine_clean_iterations"]), round_no=k + 1)
                    write_skymodel(skymodel, [*current, *([moved] if moved is not None else [])], comment=comment)
            finally:
                with open_table(ms_path, readonly=False) as t:
                    if SCRATCH in t.colnames():
                        t.removecols([SCRATCH])
    if moved is not None:
        refined["field"] = moved
    refined["directions"] = current


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


def _parset(target: Path, in_col: str, column: str, directions: Sequence[Direction], paths: dict[str, Path],
            settings: dict, n_channels: int, fixed: Direction | None = None) -> dict[str, object]:
    params: dict[str, object] = {
        "msin": str(target),
        "msin.datacolumn": in_col,
        "msout": ".",
        "msout.datacolumn": column,
        "numthreads": thread_count(),
    }
    if not directions:
        params["steps"] = []
        return params
    nchan = int(settings["channels_per_solution"])
    params.update({
        "steps": ["ddecal"],
        "ddecal.type": "ddecal",
        "ddecal.sourcedb": str(paths["skymodel"]),
        "ddecal.directions": [[d.patch] for d in directions],
        "ddecal.h5parm": str(paths["solutions"]),
        "ddecal.mode": settings["mode"],
        "ddecal.solint": 0,
        "ddecal.nchan": 0 if nchan >= n_channels else nchan,
        "ddecal.maxiter": int(settings["max_iterations"]),
        "ddecal.tolerance": float(settings["tolerance"]),
        "ddecal.stepsize": float(settings["step_size"]),
        "ddecal.uvlambdamin": float(settings["uv_min_lambda"]),
        "ddecal.subtract": True,
    })
    if float(settings.get("smoothness_mhz") or 0) > 0:
        params["ddecal.smoothnessconstraint"] = float(settings["smoothness_mhz"]) * 1e6  # Hz
    if fixed is not None:  # the field out for the solve, back in after it (never solved)
        params["steps"] = ["fieldsub", "ddecal", "fieldadd"]
        for step, operation in (("fieldsub", "subtract"), ("fieldadd", "add")):
            params.update({f"{step}.type": "predict", f"{step}.sourcedb": str(paths["skymodel"]),
                           f"{step}.sources": [fixed.patch], f"{step}.operation": operation})
    return params


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
