"""The steps of a peel that `peel_ms` (one MS) and `refine_model` (the sky model refined once per
subband-hour) share: the MS and its input column, the sources, the settings as applied, the
directions and the fixed field patch, the primary beam, DP3's sky model and parset, and the
passes before the final one (the field's positions fitted, the peeled sources' models refined).

What `peel` adds is the run of one MS (copy or in place, the LWA_PEEL column marker, HISTORY,
the result); what `hourmodel` adds is the bookkeeping of a refined model. Both import these
public names, so neither reaches into the other's private helpers.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lwa_common.catalogs import CatalogSource, RfiSource, read_reference_catalog, read_ttcal_sources
from lwa_common.config import Peel
from lwa_common.errors import LwaError
from lwa_common.ms import MsInfo, open_table
from lwa_common.ms import ms_info as read_ms_info
from lwa_common.parallel import job_cpus
from lwa_common.provenance import tool_version
from lwa_peel.dp3 import dp3_env, find_dp3, run_dp3, write_parset
from lwa_peel.model import Direction, Skipped, field_direction, rfi_directions, sky_directions, write_skymodel
from lwa_peel.refine import refine_field
from lwa_peel.selfcal import refine_directions

__all__ = [
    "KINDS", "MODES", "SCRATCH", "applied_settings", "beam_model", "field_patch", "first_pass", "input_column",
    "load_field", "load_sources", "ms_info", "peel_directions", "product_paths", "rfi_solution_channels",
    "write_dp3_inputs",
]

log = logging.getLogger(__name__)

KINDS = ("sky", "rfi")
MODES = ("diagonal", "scalar", "fulljones")
SCRATCH = "LWA_PEEL_PASS1"  # a first pass's output column (removed after the field fit / model refinement)
_MODEL_REFINE = ("model_refine_rounds", "model_refine_radius_arcmin", "model_refine_clean_iterations",
                 "model_refine_channels")


def ms_info(path: str | Path) -> MsInfo:
    """`lwa_common.ms.ms_info` of an MS lwa-peel can use: one spectral window, ITRF antennas."""
    info = read_ms_info(path)
    if info.n_spw != 1:
        raise LwaError(f"{path}: {info.n_spw} spectral windows; lwa-peel handles one per MS")
    info.array_centre  # noqa: B018 -- fails early on positions that are not geocentric ITRF
    return info


def load_sources(sources, kind: str) -> tuple[list, str]:
    """The `kind` records of `sources` (a TTCal sources.json or records) and a label for logs;
    the other kind's are ignored with a warning, none of this kind is an error."""
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


def applied_settings(settings: Peel, *, kind: str, beam_file: str = "") -> dict:
    """The values a peel of `kind` uses, read from its `[peel]` section (and `beam_file` of
    `[primary_beam]`) and validated: the record the steps read and `PeelResult.settings` keeps.

    rfi solves per `rfi_channels_per_solution` channels: None is the rule (`rfi_solution_channels`:
    from one channel, grown until the gains absorb at most `rfi_max_absorption` of the sky), an
    int is taken as it is (the rule off: `rfi_max_absorption` 0 in the record).
    """
    names = ("min_elevation_deg", "uv_min_lambda", "max_iterations", "tolerance", "step_size",
             "channels_per_solution", "mode", "beam", "smoothness_mhz", "field_min_jy", "field_exclude_deg",
             "field_refine", "field_refine_max_arcmin", "field_refine_min_jy", *_MODEL_REFINE)
    out = {name: getattr(settings, name) for name in names}
    if kind == "rfi":
        for name in ("min_elevation_deg", "smoothness_mhz", *_MODEL_REFINE):
            out.pop(name)
        explicit = settings.rfi_channels_per_solution
        if explicit is not None and (isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 0):
            raise LwaError(f"rfi_channels_per_solution must be an integer >= 0 (or unset: the rule), got {explicit!r}")
        out["channels_per_solution"] = 1 if explicit is None else explicit  # the rule starts from one channel
        out["rfi_max_absorption"] = settings.rfi_max_absorption if explicit is None else 0.0
    out["beam_file"] = beam_file
    _check_settings(out, kind)
    return out


def _check_settings(out: dict, kind: str) -> None:
    """A one-line `LwaError` for the first value of the applied settings out of its range."""
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


def product_paths(ms: str | Path, kind: str) -> dict[str, Path]:
    """Side products of peeling `ms`: NAME.peel-KIND.{h5,skymodel,parset} beside it."""
    ms = Path(ms)
    stem = ms.name[: -len(ms.suffix)] if ms.suffix else ms.name
    base = ms.parent / f"{stem}.peel-{kind}"
    return {"solutions": base.with_name(base.name + ".h5"), "skymodel": base.with_name(base.name + ".skymodel"),
            "parset": base.with_name(base.name + ".parset")}


def rfi_solution_channels(n_channels: int, n_antennas: int, configured: int, max_absorption: float) -> int:
    """Channels per RFI-peel solution: at least `configured` (0: the whole band), and enough that a
    diagonal solve's gains absorb at most `max_absorption` of the unmodelled sky, ~2 / ((N - 1) x
    channels); the band is cut into equal blocks (no short last block absorbing more)."""
    if configured == 0 or n_channels <= 1 or max_absorption <= 0:
        return configured
    need = max(configured, math.ceil(2.0 / (max(n_antennas - 1, 1) * max_absorption)))
    blocks = max(1, n_channels // need)
    return 0 if blocks == 1 else math.ceil(n_channels / blocks)


def write_dp3_inputs(kind: str, target: Path, in_col: str, column: str, directions: list[Direction],
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


def input_column(ms: Path, info: MsInfo, input_column: str | None) -> str:
    in_col = input_column or ("CORRECTED_DATA" if "CORRECTED_DATA" in info.columns else "DATA")
    if in_col not in info.columns:
        raise LwaError(f"{ms}: no column {in_col} (has {', '.join(c for c in info.columns if 'DATA' in c)})")
    return in_col


def peel_directions(chosen: list, kind: str, info: MsInfo, settings: dict) -> tuple[list[Direction], list[Skipped]]:
    """The directions of the `kind` sources `chosen` to peel from the MS `info` describes (each
    logged) and the sources skipped (below `min_elevation_deg`, no flux in the band)."""
    if kind == "sky":
        directions, skipped = sky_directions(
            chosen, time=info.time_mid, location=info.array_centre, freqs_hz=info.freqs_hz,
            min_elevation_deg=float(settings["min_elevation_deg"]), beam=beam_model(settings),
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


def load_field(field, settings: Peel) -> list[CatalogSource] | None:
    """The field catalogue's sky sources (None when no catalogue was given); a catalogue without
    its own frequency or spectral index gets `settings.field_reference_freq_mhz` / `field_spectral_index`."""
    if field is None:
        return None
    if isinstance(field, (str, Path)):
        return [s for s in read_reference_catalog(field, ref_freq_hz=settings.field_reference_freq_mhz * 1e6,
                                                  spectral_index=settings.field_spectral_index)
                if isinstance(s, CatalogSource)]
    return [s for s in field if isinstance(s, CatalogSource)]


def field_patch(sources: list[CatalogSource] | None, directions: Sequence[Direction], info: MsInfo, settings: dict
                ) -> Direction | None:
    """The fixed field patch for this MS (None without a catalogue or without directions to peel)."""
    if not sources or not directions:
        return None
    return field_direction(
        sources, time=info.time_mid, location=info.array_centre, freqs_hz=info.freqs_hz, peeled=directions,
        min_flux_jy=float(settings["field_min_jy"]), exclude_deg=float(settings["field_exclude_deg"]),
        beam=beam_model(settings))


@functools.lru_cache(maxsize=4)
def _load_beam(beam_file: str):
    from lwa_common.beam import load_beam

    return load_beam(beam_file or None)


def beam_model(settings: dict):
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


def first_pass(ms_path: Path, *, kind: str, parset: Path, fixed: Direction | None, directions: Sequence[Direction],
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


def _parset(target: Path, in_col: str, column: str, directions: Sequence[Direction], paths: dict[str, Path],
            settings: dict, n_channels: int, fixed: Direction | None = None) -> dict[str, object]:
    params: dict[str, object] = {
        "msin": str(target),
        "msin.datacolumn": in_col,
        "msout": ".",
        "msout.datacolumn": column,
        "numthreads": job_cpus(),
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


