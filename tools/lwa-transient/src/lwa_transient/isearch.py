"""The Stokes I difference search of one subband: each 10 min R0 image minus the deep R0 image,
positive peaks at `i_sigma` × the local RMS of the difference, outside the I masks (`IMasks`:
disks around deep-I sources at `i_*_mask_sigma`, larger A-team caps); then the trend rule.

A deep-I source at least `steady_ratio` times brighter in the 10 min image is the transient
itself, diluted in the deep image: it is not masked in that interval (`IMasks.for_interval`).
Why apart: I has its own masks and no sidelobe, echo or fainter rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from astropy.wcs import WCS

from lwa_transient.candidates import Candidate
from lwa_transient.detect import Island
from lwa_transient.masks import BrightSource, source_mask
from lwa_transient.planes import SearchImage, candidates_from, search_one
from lwa_transient.select import SubbandImages
from lwa_transient.settings import bilobe_rule

if TYPE_CHECKING:
    from lwa_transient.search import SubbandSearch

__all__ = ["IMasks", "search_i"]

log = logging.getLogger(__name__)


@dataclass
class IMasks:
    """The I-difference masks of a subband: deep-I sources (per-interval steadiness test) + A-team."""

    sources: list[BrightSource]
    islands: list[Island]
    zone: np.ndarray
    deep: np.ndarray  # deep I − background

    def for_interval(self, diff: np.ndarray, steady_ratio: float, *, label: str, wcs: WCS) -> np.ndarray:
        """Mask the steady sources only: a deep-I source whose 10 min flux (deep + diff) reaches
        `steady_ratio` × its deep flux varied — it is the transient itself, diluted in the deep
        image, and stays searchable (0 disables the test)."""
        keep = []
        for s in self.sources:
            deep = float(self.deep[s.y, s.x])
            if steady_ratio > 0 and deep > 0 and deep + float(diff[s.y, s.x]) >= steady_ratio * deep:
                ra, dec = wcs.all_pix2world([[s.x, s.y]], 0)[0]
                log.info("%s: deep-I source at RA %.3f Dec %+.3f is %.1f× brighter in this interval: not masked",
                         label, ra, dec, (deep + float(diff[s.y, s.x])) / deep)
                continue
            keep.append(s)
        return source_mask(diff.shape, keep, self.islands) | self.zone


def search_i(run: SubbandSearch, group: SubbandImages, deep_i: SearchImage | None, masks: IMasks | None,
             label: str) -> list[Candidate]:
    """Each 10 min I image minus the deep I, positive peaks; the trend rule on what is found."""
    t = run.settings
    out: list[Candidate] = []
    residuals: dict[str, np.ndarray] = {}  # by interval, for the trend rule
    if deep_i is None or masks is None:
        if group.ten_i:
            log.warning("%s: 10 min I images but no usable deep I: no difference search", label)
        return out
    for interval in sorted(group.ten_i):
        img = run.load(group.ten_i[interval])
        if img is None:
            continue
        diff = img.data - deep_i.data
        mask = masks.for_interval(diff, t.steady_ratio, label=f"{label} I {interval}", wcs=img.wcs)
        beam = run.beam(img, deep_i)
        outcome = search_one(diff, box=t.rms_box_px, smooth=t.rms_smooth_boxes, rule=bilobe_rule(t, run.options),
                             mask=mask, threshold=t.i_sigma, signs=(1,), beam_px=beam)
        residuals[interval] = outcome.residual
        found = candidates_from(outcome, img, stokes="I", interval=interval, beam_px=beam,
                                reference=str(deep_i.info.path))
        log.info("%s I %s − deep: %d candidate(s) at S/N >= %g (%.1f%% masked)", label, interval, len(found),
                 t.i_sigma, 100 * np.count_nonzero(mask) / mask.size)
        out += found
    run.trends(out, residuals, f"{label} I")
    return out
