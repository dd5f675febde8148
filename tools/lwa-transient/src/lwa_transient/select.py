"""Choose the images of the search by their headers (ARCHITECTURE.md), never by file name.

Each header is read once by `lwa_common.images` (`ImageInfo`). An image takes part when its Stokes
is I or V, its kind `deep` or `10min` (or IMGCAT `stack`, below; a plain WSClean image without our
keywords is deep unless `--kind` / `--interval` say otherwise), it is not PB-corrected, and, when
the header says, TAPER > 0 and ROBUST equals the wanted robust (0: the R0 configurations). Images are
grouped by SUBBAND and, inside a subband, into deep I, deep V, and 10 min I / V per INTERVAL. A slot
filled by both a dewarped and an undewarped image keeps the dewarped one; an undewarped image is
used only when no dewarped one exists for its slot (logged as a warning).

Wideband stacks written by lwa-stack (IMGCAT = `stack`, SUBBAND = the band name Red/Green/Blue) are
searched like the images they stack: a stack is deep when its INTERVAL is `deep` and 10 min
otherwise (INTERVAL `t000N`), and it forms its own group under its band name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lwa_common.errors import LwaError
from lwa_common.images import ImageHints, ImageInfo, find_images, image_info

__all__ = ["SubbandImages", "collect_paths", "search_category", "select_images"]

log = logging.getLogger(__name__)


@dataclass
class SubbandImages:
    """The images of one subband that the search uses."""

    subband: str
    deep_i: ImageInfo | None = None
    deep_v: ImageInfo | None = None
    ten_i: dict[str, ImageInfo] = field(default_factory=dict)  # interval -> image
    ten_v: dict[str, ImageInfo] = field(default_factory=dict)

    def all(self) -> list[ImageInfo]:
        out = [im for im in (self.deep_i, self.deep_v) if im is not None]
        return out + [self.ten_i[k] for k in sorted(self.ten_i)] + [self.ten_v[k] for k in sorted(self.ten_v)]


def collect_paths(inputs: Iterable[str | Path], *, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """FITS files given directly, plus those found (recursively) under given folders (`lwa_common.images`)."""
    return find_images(inputs, exclude=exclude)


def search_category(info: ImageInfo) -> str:
    """`deep` or `10min` for a searchable category (a wideband stack: by its INTERVAL), else IMGCAT."""
    return info.kind


def _reject(info: ImageInfo, robust: float) -> str | None:
    if not info.stokes:
        return "Stokes unknown (no STOKES keyword or axis: give --image-stokes)"
    if info.stokes.upper() not in ("I", "V"):
        return f"STOKES={info.stokes}"
    category = search_category(info)
    if category not in ("deep", "10min"):
        return f"IMGCAT={info.category or '?'}"
    if info.pbcor:
        return "primary-beam corrected"
    if info.taper == 0:
        return "not tapered (TAPER=0)"
    if info.robust is not None and abs(float(info.robust) - robust) > 1e-6:
        return f"ROBUST={info.robust} (want {robust:g})"
    if category == "10min" and not info.interval:
        return f"{info.category} image without INTERVAL (give --interval)"
    return None


def select_images(paths: Sequence[Path | ImageInfo], *, robust: float = 0.0, hints: ImageHints | None = None
                  ) -> dict[str, SubbandImages]:
    """Group the usable images (paths, or their `ImageInfo`) by subband (see the module docstring).
    Raises when none is usable."""
    slots: dict[tuple[str, str, str], list[ImageInfo]] = {}
    rejected: dict[str, int] = {}
    for path in paths:
        info = path if isinstance(path, ImageInfo) else image_info(path, hints)
        why = _reject(info, robust)
        if why:
            log.debug("skip %s: %s", path, why)
            rejected[why] = rejected.get(why, 0) + 1
            continue
        interval = "deep" if search_category(info) == "deep" else info.interval
        slots.setdefault((info.subband, info.stokes.upper(), interval), []).append(info)
    if not slots:
        reasons = "; ".join(f"{n} {why}" for why, n in sorted(rejected.items())) or "no FITS files"
        raise LwaError(
            f"no usable image among {len(paths)} input(s) (need Stokes I/V, deep/10min/stack, not PB-corrected, "
            f"TAPER>0 and ROBUST={robust:g} when the header says): {reasons}"
        )
    groups: dict[str, SubbandImages] = {}
    undewarped: dict[str, list[str]] = {}
    for (subband, stokes, interval), infos in sorted(slots.items()):
        dewarped = [i for i in infos if i.dewarped]
        chosen = dewarped or infos
        if len(chosen) > 1:
            names = ", ".join(str(i.path) for i in chosen)
            raise LwaError(f"several images for subband {subband or '?'} Stokes {stokes} {interval}: {names}")
        if not dewarped:
            undewarped.setdefault(subband, []).append(f"{stokes} {interval}")
        group = groups.setdefault(subband, SubbandImages(subband))
        info = chosen[0]
        if interval == "deep":
            setattr(group, "deep_i" if stokes == "I" else "deep_v", info)
        else:
            (group.ten_i if stokes == "I" else group.ten_v)[interval] = info
    for subband, which in undewarped.items():
        n_total = len(groups[subband].all())
        log.warning("%s: no dewarped image for %s: using undewarped image(s)%s", subband or "subband ?",
                    ", ".join(which),
                    "" if len(which) == n_total else " next to dewarped ones (positions may not agree)")
    for subband, group in groups.items():
        log.info("%s: deep I %s, deep V %s, 10 min I %s, 10 min V %s", subband or "subband ?",
                 group.deep_i.path.name if group.deep_i else "-", group.deep_v.path.name if group.deep_v else "-",
                 ",".join(sorted(group.ten_i)) or "-", ",".join(sorted(group.ten_v)) or "-")
    return groups
