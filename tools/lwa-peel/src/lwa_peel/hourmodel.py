"""The peeled sources' models refined once per subband-hour (`lwa-peel refine-model`).

Refining the A-team model inside every MS's peel (`peel.model_refine_rounds`, `lwa_peel.selfcal`)
costs a DDECal pass, a field fit and an imaging round per round per MS: 349 CPU s per 192-channel
MS with two rounds at real size against ~186 with none. The structure the shipped model lacks is
the sky's, the same all hour; so here it is refined once, from one MS or a few spread over the
hour, and stored as a TTCal sources.json that every per-MS peel reads with no refinement round.

What changes over the hour is the primary beam at each source (the A-team moves through it). The
peel's model is apparent: `lwa_peel.model.sky_directions` multiplies each component's intrinsic
spectrum by the Stokes I beam at the source's az/el at that MS's time (one factor per source; DP3
applies no beam of its own). The clean components `lwa_peel.selfcal` adds are apparent at the
refinement MS's time, in the frame of the model (its gains applied inverted). So each is divided
by that same beam factor at that time, channel by channel over the MS's band, and written as an
intrinsic component with an ordinary-polynomial spectrum (fluxes may be negative; TTCal's format
has only log-polynomials, so our key "spectral-law": "linear" marks them, read by
`lwa_common.catalogs.read_ttcal_sources`). A later MS multiplies it by the beam at its own time,
as it does the shipped components. With several MS the components of each are kept, each scaled by
1 / (the number of MS that refined that source): the mean of their models.

Own code only for that bookkeeping: the passes, the field fit and the imaging are the peel's
(`lwa_peel.steps.first_pass`, DP3, wsclean); the fit is numpy's polynomial least squares.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwa_common.config import Peel, PrimaryBeam
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, check_output
from lwa_common.ms import check_ms
from lwa_peel import steps
from lwa_peel.model import Component, Direction, fit_linear_spectrum
from lwa_peel.selfcal import sexagesimal

__all__ = ["RefinedModel", "refine_model", "spread"]

log = logging.getLogger(__name__)

REFINED_KEY = "lwa-refined"  # what refined an entry: the MS, rounds, components added


@dataclass(frozen=True)
class RefinedModel:
    """What `refine_model` wrote: the model, the MS it was refined from, components per source."""

    output: Path
    ms: tuple[Path, ...]
    rounds: int
    added: dict[str, int] = field(default_factory=dict)  # source name -> clean components added

    def as_dict(self) -> dict:
        return {"output": str(self.output), "ms": [str(m) for m in self.ms], "rounds": self.rounds,
                "added": self.added}


def spread(items: Sequence, n: int) -> list:
    """`n` of `items` spread evenly over them, centred (one: the middle one); all when fewer."""
    if n >= len(items):
        return list(items)
    return [items[int((k + 0.5) * len(items) / n)] for k in range(n)]


def _entry(component: Component, freqs_hz: np.ndarray, gain: np.ndarray) -> dict:
    """A TTCal component (intrinsic, linear spectrum) of one apparent clean component."""
    ref = float(np.mean(freqs_hz))
    s0, terms = fit_linear_spectrum(freqs_hz, np.asarray(component.flux_at(freqs_hz)) / gain, ref)
    out = {"name": component.name, "ra": sexagesimal(component.ra_deg, hours=True),
           "dec": sexagesimal(component.dec_deg, hours=False), "I": s0, "freq": ref,
           "index": list(terms), "spectral-law": "linear"}
    if component.is_gaussian:
        out.update({"major-fwhm": component.major_arcsec, "minor-fwhm": component.minor_arcsec,
                    "position-angle": component.pa_deg})
    return out


def _refine_one(ms: Path, chosen: list, field_sources, settings: dict, workdir: Path
                ) -> tuple[list[Direction], list[Direction], np.ndarray]:
    """The directions of `ms` as given and as refined (`model_refine_rounds` passes on a scratch copy
    of it, so the input is never touched), and its channel frequencies."""
    info = steps.ms_info(ms)
    copy = workdir / ms.name
    shutil.copytree(ms, copy, symlinks=True)
    in_col = steps.input_column(copy, info, None)
    directions, _ = steps.peel_directions(chosen, "sky", info, settings)
    directions = [d for d in directions if np.isfinite(d.ra_deg) and d.name not in ("Sun", "Moon", "Jupiter")]
    if not directions:
        return [], [], info.freqs_hz
    fixed = steps.field_patch(field_sources, directions, info, settings)
    paths = steps.product_paths(copy, "sky")
    steps.write_dp3_inputs("sky", copy, in_col, in_col, directions, fixed, paths, settings, info)
    refined: dict[str, object] = {}
    steps.first_pass(copy, kind="sky", parset=paths["parset"], fixed=fixed, directions=directions,
                     skymodel=paths["skymodel"], settings=settings, refined=refined,
                     comment=f"lwa-peel refine-model for {ms} at {info.time_mid.isot}")
    shutil.rmtree(copy, ignore_errors=True)
    return directions, list(refined["directions"]), np.asarray(info.freqs_hz, dtype=float)


def _intrinsic_additions(ms_list: Sequence[Path], chosen: list, field_sources, settings: dict, workdir: Path
                         ) -> dict[str, list[list[dict]]]:
    """source name -> per MS that refined it, the clean components it added, made intrinsic."""
    beam = steps.beam_model(settings)
    added: dict[str, list[list[dict]]] = {}
    for ms in ms_list:
        before, after, freqs = _refine_one(ms, chosen, field_sources, settings, workdir)
        for given, refined in zip(before, after, strict=True):
            gain = (np.asarray(beam.stokes_i(freqs, given.az_deg, given.el_deg), dtype=float)
                    if beam is not None else np.ones_like(freqs))
            extra = refined.components[len(given.components):]
            added.setdefault(given.name, []).append([_entry(c, freqs, gain) for c in extra])
        log.info("refine-model: %s refined %s", ms, ", ".join(d.name for d in before) or "nothing (no source up)")
    return added


def _weighted(per_ms: list[list[dict]]) -> list[dict]:
    """The components of every MS, each scaled by 1 / the number of MS (their mean model)."""
    weight = 1.0 / len(per_ms)
    out = []
    for k, entries in enumerate(per_ms):
        for e in entries:
            out.append({**e, "name": f"{e['name']}_m{k + 1}" if len(per_ms) > 1 else e["name"],
                        "I": e["I"] * weight, "index": [t * weight for t in e["index"]]})
    return out


def _with_components(entry: dict, extra: list[dict], note: dict) -> dict:
    """A TTCal entry with `extra` components appended (a single-component entry becomes composite)."""
    if "components" in entry:
        parts = list(entry["components"])
    else:
        parts = [{k: v for k, v in entry.items() if k not in ("ref", REFINED_KEY)}]
    head = {k: v for k, v in entry.items() if k in ("name", "ref")}
    return {**head, REFINED_KEY: note, "components": [*parts, *extra]}


def refine_model(ms_list: Sequence[str | Path], sources: str | Path, *, output: str | Path,
                 field: str | Path | None = None, overwrite: bool = False, settings: Peel | None = None,
                 primary_beam: PrimaryBeam | None = None) -> RefinedModel:
    """Refine the sky sources of `sources` (TTCal sources.json) from `settings.model_refine_ms` of
    `ms_list` (spread over the list sorted by name, i.e. time) with `settings.model_refine_rounds`
    passes each, and write the intrinsic model to `output` (same format; module docstring).
    `settings`: the `[peel]` section, `primary_beam` the `[primary_beam]` one (None: the defaults).
    Inputs are never modified; raises `LwaError` (one line) on bad input."""
    peel = settings if settings is not None else Peel()
    applied = steps.applied_settings(peel, kind="sky", beam_file=(primary_beam or PrimaryBeam()).beam_file)
    n_ms = int(peel.model_refine_ms)
    if n_ms < 1 or int(applied["model_refine_rounds"]) < 1:
        raise LwaError("refine-model needs at least one MS and one refinement round")
    output = check_output(output, overwrite=overwrite)
    sources = Path(sources)
    paths = sorted({Path(m) for m in ms_list}, key=lambda p: p.name)
    if not paths:
        raise LwaError("no MS given")
    for m in paths:
        check_ms(m)
    chosen, _ = steps.load_sources(sources, "sky")  # read and checked (lwa_common.catalogs.read_ttcal_sources)
    raw = json.loads(sources.read_text())  # the same entries as written: the refined ones are rewritten
    field_sources = steps.load_field(field, peel)
    picked = spread(paths, n_ms)
    log.info("refine-model: %d of %d MS (%s), %d round(s) each", len(picked), len(paths),
             ", ".join(p.name for p in picked), int(applied["model_refine_rounds"]))
    with tempfile.TemporaryDirectory(prefix=".refine-model-", dir=output.absolute().parent) as tmp:
        added = _intrinsic_additions(picked, chosen, field_sources, applied, Path(tmp))
    note = {"ms": [p.name for p in picked], "rounds": int(applied["model_refine_rounds"])}
    entries = [_with_components(e, _weighted(added[e.get("name")]), {**note, "from_ms": len(added[e.get("name")])})
               if isinstance(e, dict) and e.get("name") in added else e for e in raw]
    with atomic_path(output) as tmp_out:
        tmp_out.write_text(json.dumps(entries, indent=1) + "\n")
    counts = {name: sum(len(x) for x in per_ms) for name, per_ms in added.items()}
    for name, n in counts.items():
        log.info("refine-model: %s gets %d intrinsic component(s) from %d MS", name, n, len(added[name]))
    return RefinedModel(output=output, ms=tuple(picked), rounds=int(applied["model_refine_rounds"]), added=counts)
