"""What each 10 min V image is searched minus (`VReference`), and the echoes that reference makes.

The deep V is the reference while it is clean; when bright bursts of the hour fill it, the quiet
intervals are searched minus the noise-weighted mean of the other 10 min V images (the class
docstring has the measurements behind this choice). Either way a burst of one interval is part of
the others' references, where it shows as an opposite-sign "echo": `mark_echoes` classes those.
Own code: the weighting and the echo bookkeeping are specific to this search (numpy only).
"""

from __future__ import annotations

import math

import numpy as np

from lwa_common.config import Transient
from lwa_transient.candidates import Candidate, candidate_pixel, sep_deg
from lwa_transient.planes import SearchImage
from lwa_transient.rms import local_residual_rms

__all__ = ["V_REFERENCE_MIN_OTHERS", "VReference", "mark_echoes"]

V_REFERENCE_MIN_OTHERS = 2  # other 10 min V images needed for their weighted mean to be a reference


class VReference:
    """What each 10 min V image is searched minus: the deep V image while it is a clean reference,
    else, for the intervals quieter than the deep V (median local RMS below its), the
    inverse-variance weighted mean of the subband's other 10 min V images (weights 1 / local RMS²
    of each image, per pixel; needs `V_REFERENCE_MIN_OTHERS` of them). An interval noisier than
    the deep V holds a bright burst of its own, whose sidelobes dominate it: it keeps the deep V
    (with the weighted mean, the sidelobes of a 500 Jy burst in its own 2-integration image gave
    a false candidate at 5.6σ in `test_science.py`, that the deep V's noise kept below 5σ).

    Clean: the deep V's noise (median local RMS) is at most `v_deep_noise_ratio` (3) times what the
    10 min V images reach combined, 1/√(Σ 1/RMS²) of their median local RMSs. Measured 1.86–1.93
    on `pol_vbursts`, `iono_rfi_hot` and `hot_strengths` (the deep V is imaged on its own, not
    the mean of the 10 min images) and 6.2 on `loud_bursts`, where the deep V holds the bursts of
    the hour diluted
    with their dirty sidelobes: a 500 Jy burst of one 20 s integration made its RMS 0.26 Jy/beam
    against 0.065 in a quiet 10 min V image, and a 12 Jy burst of another interval came out of
    10 min − deep V at 5.8σ (25σ in its own image). Weighted by their noise, the intervals whose
    images a bright burst's sidelobes fill hardly enter the reference of the quiet ones; the
    searched interval is left out, so the difference's noise is independent of the reference's.
    Measured alternatives, used for every sky:
      - a median over all the intervals, the searched one included: 6 false candidates at 5–7.6σ
        in 12 images of `hot_strengths`, its MAD blind to the difference's tails;
      - a median of the others: it follows the bright bursts' sidelobes, which 4 of the 6
        intervals of `loud_bursts` hold (2 of 11 bursts lost);
      - the noise-weighted mean of the others on every sky: 11/11 on `loud_bursts`, but 3 false
        candidates at 5.0–5.5σ on `iono_rfi_hot` and 1 on `hot_strengths` (sidelobes of a bright
        V source changing over the hour), which the deep V — its own small differences from the
        10 min images add to each difference's noise — keeps below 5σ;
      - it for every interval when the deep V is not clean: 11/11 on `loud_bursts`, but the
        false candidate above. Kept for the quiet intervals only, `loud_bursts` finds the 40 Jy
        burst of t0003, which holds a 60 Jy one, only with the sidelobe rule's mirror test (the
        envelope alone took the fainter for a sidelobe of the brighter: 10/11).
    A burst S of interval j puts `share(k, j)` × S into the reference of interval k: its echo,
    which `mark_echoes` judges. `images`: interval → `SearchImage`."""

    def __init__(self, images: dict[str, SearchImage], deep: SearchImage, settings: Transient):
        self.images, self.deep = images, deep
        self.weights: dict[str, np.ndarray] = {}
        self.own: dict[str, np.ndarray] = {}  # each 10 min V image minus its background
        self.noise: dict[str, float] = {}  # median local RMS of each 10 min V image
        self.mean: set[str] = set()  # the intervals searched minus the weighted mean of the others
        if len(images) - 1 < V_REFERENCE_MIN_OTHERS:
            return
        box = {"box": settings.rms_box_px, "smooth": settings.rms_smooth_boxes}
        for k, img in images.items():
            own, rms = local_residual_rms(img.data, **box)
            with np.errstate(divide="ignore", invalid="ignore"):
                w = 1.0 / rms.astype(np.float64) ** 2
            w[~np.isfinite(w) | ~np.isfinite(img.data)] = 0.0
            self.weights[k] = w
            self.own[k] = own
            self.noise[k] = _median_finite(rms)
        self.deep_noise = _median_finite(local_residual_rms(deep.data, **box)[1])  # the same RMS map, no background copy
        self.combined = 1.0 / math.sqrt(sum(1.0 / n**2 for n in self.noise.values() if n > 0) or math.inf)
        if self.deep_noise > settings.v_deep_noise_ratio * self.combined:
            self.mean = {k for k, noise in self.noise.items() if noise < self.deep_noise}

    def describe(self) -> str:
        if not self.noise:
            return "the deep V"
        noise = f"deep V RMS {self.deep_noise:.3g} Jy/beam, the 10 min V images combined {self.combined:.3g}"
        if self.mean:
            rest = sorted(set(self.images) - self.mean)
            return (f"the noise-weighted mean of the other 10 min V images ({noise}: the deep V is not clean)"
                    + (f"; the deep V for {', '.join(rest)}, noisier than it" if rest else ""))
        return f"the deep V ({noise})"

    def paths(self, interval: str) -> tuple[str, ...]:
        if interval not in self.mean:
            return (str(self.deep.info.path),)
        return tuple(str(img.info.path) for k, img in self.images.items() if k != interval)

    def __call__(self, interval: str) -> np.ndarray:
        if interval not in self.mean:
            return self.deep.data
        num = np.zeros(self.deep.data.shape)
        den = np.zeros(self.deep.data.shape)
        for k, img in self.images.items():
            if k != interval:
                w = self.weights[k]
                num += w * np.where(w > 0, img.data, 0.0)
                den += w
        with np.errstate(divide="ignore", invalid="ignore"):
            return (num / den).astype(np.float32)  # NaN where no other interval has a pixel

    def share(self, interval: str, other: str, y: int, x: int) -> float:
        """The fraction of `other`'s image in the reference of `interval` at pixel (y, x) (with the
        deep V: S/N there against (N − 1)/N × S in the event's own difference)."""
        if interval not in self.mean:
            return 1.0 / (len(self.images) - 1)
        den = sum(float(w[y, x]) for k, w in self.weights.items() if k != interval)
        return float(self.weights[other][y, x]) / den if den > 0 else 0.0

    def holds(self, c: Candidate) -> bool:
        """Whether the candidate's own 10 min V image holds at least half of it (same sign); False
        with fewer than 1 + `V_REFERENCE_MIN_OTHERS` intervals (the share alone decides there)."""
        own = self.own.get(c.interval)
        if own is None:
            return False
        y, x = candidate_pixel(c, own.shape)
        return c.sign * float(own[y, x]) >= 0.5 * abs(c.peak_jy)


def _median_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


def mark_echoes(cands: list[Candidate], reference: VReference) -> int:
    """In 10 min − reference V images, a burst S of interval j is `share` × S in the reference of
    interval k (its weight in the weighted mean of the others; with the deep V, S/N against
    (N − 1)/N × S in its own difference), so interval k shows −share × S at its place, summed over
    the intervals holding the event. A candidate whose opposite-sign counterparts within 1 beam in
    the other intervals predict at least half of it that way (the factor 2 leaves room for noise)
    and that its own 10 min image does not hold (`VReference.holds`: less than half of it, same
    sign; a real burst is in its own image, an echo only in the reference) is such an echo: class
    `artefact`, reason `echo`. Two quiet intervals that are most of each other's reference show a
    burst of one as a mirror burst of the other, and an event of half of the intervals shows S/2
    in them and −S/2 in the others in 10 min − deep V: the own-image test tells which is real."""
    if len(reference.images) < 2:
        return 0
    n = 0
    shape = reference.deep.data.shape
    for c in cands:
        if c.klass == "artefact" or reference.holds(c):
            continue
        radius = c.beam_arcmin / 60.0
        y, x = candidate_pixel(c, shape)
        strongest: dict[str, float] = {}  # per other interval, its strongest opposite-sign counterpart
        for b in cands:
            if b.interval != c.interval and b.sign != c.sign and sep_deg(b, c) <= radius:
                strongest[b.interval] = max(strongest.get(b.interval, 0.0), abs(b.peak_jy))
        echo = sum(reference.share(c.interval, k, y, x) * v for k, v in strongest.items())
        if strongest and abs(c.peak_jy) <= 2.0 * echo:
            c.klass, c.reason = "artefact", "echo"
            n += 1
    return n
