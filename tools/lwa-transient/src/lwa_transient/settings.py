"""What a search runs with: the `[transient]` config section itself (`lwa_common.config.Transient`,
every tunable and its default, once), the cutout size of `[cutout]`, and `SearchOptions`, the
choices of one run that are not tunables (which Stokes, products, the bi-lobe test, the A-team
list). `check_settings` refuses impossible values before any work; `bilobe_rule` and `mirror`
read the section the way the detection and sidelobe modules take it.

Why not a copy of the section: the CLI builds the section with `lwa_common.config.section_with`
(options over `--config` over defaults), as every tool does, so a default lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lwa_common.config import Cutout, Transient
from lwa_common.errors import LwaError
from lwa_transient.detect import BilobeRule
from lwa_transient.masks import ATEAM_J2000, AteamSource

__all__ = ["SearchOptions", "check_settings", "bilobe_rule", "mirror"]

_PAIRS = ("mask_beams", "v_ateam_radius_deg", "i_ateam_radius_deg", "bilobe_ratio", "bilobe_sigma",
          "v_sidelobe_fraction")


@dataclass(frozen=True)
class SearchOptions:
    """The run's choices outside `[transient]`: `stokes` (the searches to run), `products` (write
    cutouts and PNGs), `bilobe` (run the bi-lobe test), `drop_bilobe` (leave its artefacts out of
    the CSV), `ateam` (built-in J2000 A-team; () for no caps) or `ateam_file` (a TTCal
    sources.json whose sources at least `ateam_major_jy` bright at the image frequency get the
    larger radius)."""

    stokes: tuple[str, ...] = ("V", "I")
    products: bool = True
    bilobe: bool = True
    drop_bilobe: bool = False
    ateam: tuple[AteamSource, ...] = ATEAM_J2000
    ateam_file: Path | None = None


def _check_pairs_and_masks(t: Transient) -> None:
    """The two-number values, the mask thresholds and radii."""
    for name in _PAIRS:
        if len(getattr(t, name)) != 2:
            raise LwaError(f"{name} takes two numbers, got {getattr(t, name)}")
    if not min(t.mask_beams) > 0:
        raise LwaError(f"--mask-beams must be positive, got {t.mask_beams}")
    for name, high, low in (("v_mask_sigma", t.v_mask_high_sigma, t.v_mask_low_sigma),
                            ("i_mask_sigma", t.i_mask_high_sigma, t.i_mask_low_sigma)):
        if high < low:
            raise LwaError(f"--{name.replace('_', '-')} takes the 2-beam threshold first (>= the 1-beam one)")
    lo, hi = t.bilobe_ratio
    if not 0 < lo <= hi:
        raise LwaError(f"--bilobe-ratio needs 0 < min <= max, got {lo:g} {hi:g}")


def _check_v_rules(t: Transient) -> None:
    """The V reference, sidelobe and trend rules."""
    if not 0 <= t.trend_fraction:
        raise LwaError(f"--trend-fraction must be >= 0 (0: off), got {t.trend_fraction:g}")
    if not t.v_deep_noise_ratio > 0:
        raise LwaError(f"transient.v_deep_noise_ratio must be positive, got {t.v_deep_noise_ratio:g}")
    if t.v_sidelobe_margin < 0:
        raise LwaError(f"--v-sidelobe-margin must be >= 0, got {t.v_sidelobe_margin:g}")
    if t.v_sidelobe_mirror_beams < 0 or t.v_sidelobe_mirror_reach_beams < 0:
        raise LwaError("transient.v_sidelobe_mirror_beams and v_sidelobe_mirror_reach_beams must be >= 0")
    if not all(0 <= f < 1 for f in t.v_sidelobe_fraction):
        raise LwaError(f"--v-sidelobe-fraction takes fractions in [0, 1), got {t.v_sidelobe_fraction}")


def check_settings(t: Transient, cutout: Cutout, options: SearchOptions) -> None:
    """Fail before work on impossible values (the messages name the CLI option, else the config key)."""
    if t.v_sigma <= 0 or t.i_sigma <= 0:
        raise LwaError("--v-detection-sigma and --i-detection-sigma must be positive")
    if t.rms_box_px < 4:
        raise LwaError(f"--rms-box-px must be at least 4, got {t.rms_box_px}")
    if t.rms_smooth_boxes < 1:
        raise LwaError(f"--rms-smooth-boxes must be at least 1, got {t.rms_smooth_boxes}")
    _check_pairs_and_masks(t)
    if t.steady_ratio < 0:
        raise LwaError(f"--steady-ratio must be >= 0 (0: off), got {t.steady_ratio:g}")
    _check_v_rules(t)
    if t.bilobe_radius_beams <= 0 or t.catalog_match_beams < 0:
        raise LwaError("--bilobe-radius-beams must be positive and --match-radius-beams >= 0")
    if cutout.size_deg <= 0:
        raise LwaError("--cutout-size-deg must be positive")
    if t.max_cutouts < 0:
        raise LwaError("--max-cutouts must be >= 0")
    if not set(options.stokes) <= {"I", "V"} or not options.stokes:
        raise LwaError(f"--stokes must be I, V or both, got {options.stokes}")


def mirror(t: Transient) -> tuple[float, float] | None:
    """(radius, reach) in beams of the sidelobe rule's mirror test, None when it is off."""
    return (t.v_sidelobe_mirror_beams, t.v_sidelobe_mirror_reach_beams) if t.v_sidelobe_mirror else None


def bilobe_rule(t: Transient, options: SearchOptions) -> BilobeRule | None:
    """The bi-lobe test of `[transient]` (`bilobe_*`), None when the run turns it off."""
    if not options.bilobe:
        return None
    return BilobeRule(radius_beams=t.bilobe_radius_beams, ratio_min=t.bilobe_ratio[0], ratio_max=t.bilobe_ratio[1],
                      partner_sigma=t.bilobe_sigma[0], candidate_sigma=t.bilobe_sigma[1])
