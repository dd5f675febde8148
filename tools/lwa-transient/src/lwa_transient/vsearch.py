"""The Stokes V search of one subband: the deep V image directly, then each 10 min V image minus its
reference (`lwa_transient.vreference`), both signs; the artefact rules applied in order —
bi-lobe (`planes.search_one`), sidelobe (`lwa_transient.sidelobes`), fainter and trend
(`lwa_transient.rules`), echo (`vreference.mark_echoes`).

Why apart from the run (`lwa_transient.search`): V has its own reference, sources and rules; the
run object gives it the images (on the subband grid), beams, dewarp screens and the trend rule.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from lwa_transient.candidates import Candidate
from lwa_transient.detect import Peak
from lwa_transient.masks import ateam_mask, ateam_sources
from lwa_transient.planes import SearchImage, SearchOutcome, candidates_from, search_one
from lwa_transient.rules import mark_fainter, steady_v_mask
from lwa_transient.select import SubbandImages
from lwa_transient.settings import bilobe_rule, mirror
from lwa_transient.sidelobes import mark_sidelobes, v_sources
from lwa_transient.vreference import VReference, mark_echoes

if TYPE_CHECKING:
    from lwa_transient.search import SubbandSearch

__all__ = ["search_v"]

log = logging.getLogger(__name__)


def _ateam_only_mask(run: SubbandSearch, group: SubbandImages, deep: SearchImage | None) -> np.ndarray | None:
    """Without a deep I: the A-team caps alone, on the first usable V image (None: no V image)."""
    t, o = run.settings, run.options
    ref = deep or next((im for im in map(run.load, group.ten_v.values()) if im is not None), None)
    if ref is None:
        return None
    sources = ateam_sources(o.ateam, o.ateam_file, ref.info.freq_mhz, major_jy=t.ateam_major_jy)
    return ateam_mask(ref.wcs, ref.data.shape, sources, t.v_ateam_radius_deg)[0]


def _search_image(run: SubbandSearch, data: np.ndarray, mask: np.ndarray, beam: float) -> SearchOutcome:
    """One V (difference) image searched at |S/N| >= `v_sigma`, both signs."""
    t = run.settings
    return search_one(data, box=t.rms_box_px, smooth=t.rms_smooth_boxes, rule=bilobe_rule(t, run.options),
                      mask=mask, threshold=t.v_sigma, signs=(1, -1), beam_px=beam)


def _own_sidelobes(run: SubbandSearch, found: list[Candidate], outcome: SearchOutcome, img: SearchImage,
                   beam: float) -> tuple[list[Peak], int]:
    """The sidelobe rule against the bright V sources of the searched image itself (a bright burst
    included, in a difference); returns those sources and the number of candidates marked."""
    t = run.settings
    screen = run.screen(img)
    sources = v_sources(outcome, t.v_source_sigma, beam, fraction=t.v_sidelobe_fraction[0],
                        margin=t.v_sidelobe_margin, mirror=mirror(t), screen=screen)
    n_side = mark_sidelobes(found, sources, t.v_sidelobe_fraction[0], beam, residual=outcome.residual,
                            margin=t.v_sidelobe_margin, near_beams=t.bilobe_radius_beams, mirror=mirror(t),
                            screen=screen)
    return sources, n_side


def _search_deep_v(run: SubbandSearch, group: SubbandImages, deep: SearchImage, mask: np.ndarray,
                   label: str) -> tuple[list[Candidate], list[Peak]]:
    """The deep V searched directly; its candidates and its V sources (the sidelobe rule's)."""
    beam = run.beam(deep)
    outcome = _search_image(run, deep.data, mask, beam)
    ref = group.deep_i
    found = candidates_from(outcome, deep, stokes="V", interval="deep", beam_px=beam,
                            reference=str(ref.path) if ref else "")
    sources, n_side = _own_sidelobes(run, found, outcome, deep, beam)
    log.info("%s V deep: %d candidate(s) at |S/N| >= %g (%d sidelobe(s) of %d V source(s))", label,
             len(found), run.settings.v_sigma, n_side, len(sources))
    return found, sources


def _search_ten_v(run: SubbandSearch, group: SubbandImages, interval: str, img: SearchImage, *,
                  deep: SearchImage | None,
                  reference: VReference | None, deep_sources: list[Peak], mask: np.ndarray,
                  label: str) -> tuple[list[Candidate], np.ndarray]:
    """One 10 min V image, minus its reference when there is one (`v_difference`): its candidates
    and its background-subtracted image (which the trend rule samples)."""
    t = run.settings
    difference = reference is not None
    beam = run.beam(img, deep)
    data = img.data - reference(interval) if difference else img.data
    if difference and deep_sources:
        mask = mask | steady_v_mask(deep_sources, data, t.v_source_mask_beams * beam, t.steady_ratio)
    outcome = _search_image(run, data, mask, beam)
    ref = group.ten_i.get(interval) or group.deep_i
    found = candidates_from(outcome, img, stokes="V", interval=interval, beam_px=beam,
                            reference=str(ref.path) if ref else "")
    if difference:
        for c in found:
            c.subtracted = reference.paths(interval)
    # the full dirty sidelobes of what is bright in this (difference) image, a bright burst
    # included; and the residual sidelobes of the steady deep-V sources
    _, n_side = _own_sidelobes(run, found, outcome, img, beam)
    if difference:
        n_side += mark_sidelobes(found, deep_sources, t.v_sidelobe_fraction[1], beam)
    n_faint = mark_fainter(found, deep_sources, beam) if difference else 0
    log.info("%s V %s%s: %d candidate(s) at |S/N| >= %g (%d sidelobe(s), %d deep-V source(s) fainter)",
             label, interval, " − reference" if difference else "", len(found), t.v_sigma, n_side, n_faint)
    return found, outcome.residual


def search_v(run: SubbandSearch, group: SubbandImages, mask: np.ndarray | None, label: str) -> list[Candidate]:
    """Deep V directly; each 10 min V minus its reference (`v_difference`); the artefact rules."""
    t = run.settings
    deep = run.load(group.deep_v) if group.deep_v else None
    if mask is None:
        mask = _ateam_only_mask(run, group, deep)
        if mask is None:
            return []
    out: list[Candidate] = []
    deep_sources: list[Peak] = []
    if deep is not None:
        out, deep_sources = _search_deep_v(run, group, deep, mask, label)
    difference = t.v_difference and deep is not None
    tens = {k: img for k in sorted(group.ten_v) if (img := run.load(group.ten_v[k])) is not None}
    reference = run.v_reference = VReference(tens, deep, t) if difference else None
    if reference is not None:
        log.info("%s V: each 10 min V image is searched minus %s", label, reference.describe())
    per_interval: list[Candidate] = []
    residuals: dict[str, np.ndarray] = {}  # by interval, for the trend rule
    for interval, img in tens.items():
        found, residuals[interval] = _search_ten_v(run, group, interval, img, deep=deep, reference=reference,
                                                   deep_sources=deep_sources, mask=mask, label=label)
        per_interval += found
    if difference:
        n_echo = mark_echoes(per_interval, reference)
        if n_echo:
            log.info("%s V: %d echo(es) of bursts of other intervals (in the reference)", label, n_echo)
        run.trends(per_interval, residuals, f"{label} V")
    return out + per_interval

