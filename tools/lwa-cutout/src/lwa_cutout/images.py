"""Find and choose images by their headers (the self-describing FITS contract).

Every FITS file under the given folders (recursively) is read once by `lwa_common.images`
(`ImageInfo`): a Stokes I or V image with a frequency and a time, deep or 10 min (a plain WSClean
image is a deep image unless `--kind` / `--interval` say otherwise; a wideband stack is deep or
10 min by its INTERVAL) is a candidate; cutouts (keyword `CUTOUT`), screens, snapshots and
difference images are ignored. Images are grouped into **sets**: one subband (`SUBBAND`, else the
subband of the image frequency) and one observation span (the deep images' `DATE-OBS`..`DATE-END`;
10 min images join the set whose span holds their mid-time).
Each set has one deep I, one deep V and, per interval tag `t0001`..., one 10 min I and one 10 min V.

Preference for each role (best first):

1. PB-corrected (`PBCOR = T`) images from `--images`, dewarped (`DEWARPED = T`) before not;
2. images from `--fallback-dir`, PB-corrected before not, dewarped before not;
3. images from `--images` that are not PB-corrected (a warning says fluxes are apparent).

The deep I also prefers the `ROBUST` / `TAPER` of the set's 10 min I images (so that 10 min - deep
subtracts like from like; robust 0 with taper, the I-Taper-10min settings, when there are none).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astropy.time import Time

from lwa_common.config import Imaging
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints, ImageInfo, image_info
from lwa_common.images import scan_images as scan_fits

__all__ = ["ImageSet", "read_record", "scan_images", "select_sets", "find_sets"]

log = logging.getLogger(__name__)

DEEP_CLUSTER_DAYS = 10.0 / 1440.0  # deep images closer than 10 min in mid-time are one set
ASSIGN_PAD_DAYS = 1.0 / 1440.0
NEAREST_DEEP_DAYS = 1.0 / 24.0  # a 10 min image outside every span joins a deep image within 1 h
NEEDED = ("stokes", "freq", "time")


def _why_not(info: ImageInfo) -> str:
    """Why photometry cannot use `info` ("" when it can)."""
    if info.stokes not in ("I", "V"):
        return (f"Stokes {info.stokes} (photometry uses I and V)" if info.stokes else
                "the Stokes parameter is unknown (no STOKES keyword or axis): give --image-stokes")
    if info.kind not in ("deep", "10min"):
        return f"IMGCAT {info.category} (photometry uses deep and 10 min images)"
    gaps = info.missing(*NEEDED, "interval")
    if gaps:
        try:
            info.require(*gaps)
        except LwaError as err:
            return str(err).removeprefix(f"{info.path}: ")
    return ""


def _usable(info: ImageInfo, reasons: list[str] | None = None) -> ImageInfo | None:
    """`info` with a stack's category as deep/10min, or None (logged, reason kept) when not usable."""
    why = _why_not(info)
    if why:
        (log.warning if info.kind in ("deep", "10min") else log.debug)("skipping %s: %s", info.path, why)
        if reasons is not None:
            reasons.append(f"{info.path.name}: {why}")
        return None
    return dataclasses.replace(info, category=info.kind)


def read_record(path: str | Path, hints: ImageHints | None = None) -> ImageInfo | None:
    """The `ImageInfo` of one FITS file when photometry can use it, else None (with a log line)."""
    try:
        info = image_info(path, hints)
    except LwaError as err:
        log.warning("skipping %s", err)
        return None
    if "CUTOUT" in info.header:
        return None
    return _usable(info)


def scan_images(sources: Iterable[str | Path], hints: ImageHints | None = None, *,
                exclude: Sequence[Path] = (), reasons: list[str] | None = None) -> list[ImageInfo]:
    """Every usable image in `sources` (files or folders, searched recursively); why the others
    are not is appended to `reasons`."""
    for source in map(Path, sources):
        if not source.exists():
            raise LwaError(f"image folder not found: {source}")
    infos, _ = scan_fits(sources, hints, exclude=exclude)
    return [u for u in (_usable(i, reasons) for i in infos) if u is not None]


def _group(record: ImageInfo, fallback: frozenset[Path]) -> int:
    """0: PB-corrected from --images; 1: from the fallback folder; 2: not PB-corrected."""
    if record.path in fallback:
        return 1
    return 0 if record.pbcor else 2


@dataclass
class ImageSet:
    """The images of one subband and one observation span."""

    subband: str
    freq_mhz: float
    deep_i: ImageInfo | None = None
    deep_v: ImageInfo | None = None
    ten_i: dict[str, ImageInfo] = field(default_factory=dict)
    ten_v: dict[str, ImageInfo] = field(default_factory=dict)
    n_intervals: int = 0
    mjd_mid: float = math.nan
    mjd_start: float | None = None
    mjd_end: float | None = None

    @property
    def intervals(self) -> list[str]:
        """Interval tags of the rows: t0001 ... t{n_intervals} (plus any higher tag present)."""
        present = set(self.ten_i) | set(self.ten_v)
        n = max([self.n_intervals] + [int(t[1:]) for t in present])
        return [f"t{k:04d}" for k in range(1, n + 1)]

    @property
    def time_tag(self) -> str:
        mjd = self.mjd_start if self.mjd_start is not None else self.mjd_mid
        return Time(mjd, format="mjd", scale="utc").datetime.strftime("%Y%m%dT%H%M%S")

    @property
    def label(self) -> str:
        return f"{self.subband}-{self.time_tag}"

    def records(self) -> list[ImageInfo]:
        out = [r for r in (self.deep_i, self.deep_v) if r is not None]
        return out + list(self.ten_i.values()) + list(self.ten_v.values())


def _best(candidates: list[ImageInfo], key) -> ImageInfo | None:
    return min(candidates, key=key) if candidates else None


def _cluster(records: list[ImageInfo]) -> list[list[ImageInfo]]:
    clusters: list[list[ImageInfo]] = []
    for record in sorted(records, key=lambda r: r.mjd_mid):
        if clusters and abs(record.mjd_mid - clusters[-1][0].mjd_mid) < DEEP_CLUSTER_DAYS:
            clusters[-1].append(record)
        else:
            clusters.append([record])
    return clusters


def _span(records: list[ImageInfo]) -> tuple[float, float]:
    starts = [r.mjd_start if r.mjd_start is not None else r.mjd_mid for r in records]
    ends = [r.mjd_end if r.mjd_end is not None else r.mjd_mid for r in records]
    return min(starts), max(ends)


def select_sets(records: Sequence[ImageInfo], *, fallback: Iterable[Path] = (), default_intervals: int = Imaging.intervals_out
                ) -> list[ImageSet]:
    """Group records into sets and pick the best image for every role (see the module doc).

    `fallback`: paths of the records that come from a --fallback-dir.
    """
    fallback = frozenset(fallback)
    sets: list[ImageSet] = []
    by_subband: dict[str, list[ImageInfo]] = {}
    for record in records:
        by_subband.setdefault(record.subband, []).append(record)
    for subband in sorted(by_subband, key=lambda s: (len(s), s)):
        group = by_subband[subband]
        deep = [r for r in group if r.category == "deep"]
        ten = [r for r in group if r.category == "10min"]
        spans: list[tuple[list[ImageInfo], list[ImageInfo]]] = [(c, []) for c in _cluster(deep)]
        for record in sorted(ten, key=lambda r: r.mjd_mid):
            home = None
            for members, tens in spans:
                if not members:
                    continue
                start, end = _span(members)
                if start - ASSIGN_PAD_DAYS <= record.mjd_mid <= end + ASSIGN_PAD_DAYS:
                    home = tens
                    break
            with_deep = [s for s in spans if s[0]]
            if home is None and with_deep:
                nearest = min(with_deep, key=lambda s: abs(s[0][0].mjd_mid - record.mjd_mid))
                if abs(nearest[0][0].mjd_mid - record.mjd_mid) < NEAREST_DEEP_DAYS:
                    home = nearest[1]
            if home is None:  # no deep image: 10 min images within an hour make one set
                for members, tens in spans:
                    if not members and record.mjd_mid - tens[0].mjd_mid < NEAREST_DEEP_DAYS:
                        home = tens
                        break
            if home is None:
                spans.append(([], [record]))
            else:
                home.append(record)
        for members, tens in spans:
            sets.append(_make_set(subband, members, tens, default_intervals, fallback))
    return sets


def _make_set(subband: str, deep: list[ImageInfo], ten: list[ImageInfo], default_intervals: int,
              fallback: frozenset[Path]) -> ImageSet:
    def rank(r: ImageInfo) -> tuple:
        return (_group(r, fallback), not r.pbcor, not r.dewarped, str(r.path))

    freq = (deep or ten)[0].freq_mhz
    image_set = ImageSet(subband=subband, freq_mhz=freq)
    for stokes, target in (("I", image_set.ten_i), ("V", image_set.ten_v)):
        tags = sorted({r.interval for r in ten if r.stokes == stokes})
        for tag in tags:
            target[tag] = _best([r for r in ten if r.stokes == stokes and r.interval == tag], rank)
    want = Counter((r.robust, r.taper > 0) for r in image_set.ten_i.values()).most_common(1)
    want_robust, want_taper = want[0][0] if want else (0.0, True)

    def deep_i_key(r: ImageInfo) -> tuple:
        mismatch = not (r.robust is not None and want_robust is not None and abs(r.robust - want_robust) < 1e-6
                        and (r.taper > 0) == want_taper)
        return (_group(r, fallback), mismatch, not r.pbcor, not r.dewarped, str(r.path))

    image_set.deep_i = _best([r for r in deep if r.stokes == "I"], key=deep_i_key)
    image_set.deep_v = _best([r for r in deep if r.stokes == "V"], rank)
    n_ten = [r.n_intervals for r in ten]
    image_set.n_intervals = max(n_ten) if n_ten else default_intervals
    anchor = image_set.deep_i or image_set.deep_v
    if anchor is not None:
        image_set.mjd_mid = anchor.mjd_mid
        image_set.mjd_start, image_set.mjd_end = anchor.mjd_start, anchor.mjd_end
    else:
        mids = sorted(r.mjd_mid for r in ten)
        image_set.mjd_mid = mids[len(mids) // 2]
        image_set.mjd_start, image_set.mjd_end = _span(ten)
    for record in image_set.records():
        if _group(record, fallback) == 2:
            log.warning("%s: using %s, which is not primary-beam corrected (fluxes are apparent)",
                        image_set.label, record.path)
        log.info("%s: %s %s -> %s", image_set.label, record.stokes, record.interval, record.describe())
    if image_set.deep_i is None:
        log.warning("%s: no deep I image: deep I and the 10 min I (10 min - deep) are not measured", image_set.label)
    return image_set


def find_sets(images: Sequence[str | Path], *, fallback_dirs: Sequence[str | Path] = (),
              exclude: Sequence[Path] = (), default_intervals: int = Imaging.intervals_out, hints: ImageHints | None = None
              ) -> list[ImageSet]:
    """Scan `images` (folders or files) and `fallback_dirs`, then `select_sets`; error when empty."""
    reasons: list[str] = []
    records = scan_images(images, hints, exclude=exclude, reasons=reasons)
    backups = scan_images(fallback_dirs, hints, exclude=exclude, reasons=reasons)
    if not records and not backups:
        where = ", ".join(str(p) for p in [*images, *fallback_dirs]) or "(nothing given)"
        why = "; ".join(reasons[:3]) + (f"; ... ({len(reasons)} skipped)" if len(reasons) > 3 else "")
        raise LwaError(f"no usable images (Stokes I/V images with a frequency and a time; deep or 10 min) in {where}"
                       + (f": {why}" if why else ""))
    return select_sets(records + backups, fallback=[r.path for r in backups], default_intervals=default_intervals)
