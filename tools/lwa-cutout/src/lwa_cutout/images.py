"""Find and choose images by their headers (the self-describing FITS contract).

Every FITS file under the given folders (recursively) whose header has `STOKES` and `IMGCAT`
is a candidate; cutouts written by this tool (keyword `CUTOUT`) are ignored. Images are grouped
into **sets**: one subband (`SUBBAND`, else derived from `FREQMHZ`) and one observation span (the
deep images' `DATE-OBS`..`DATE-END`; 10 min images join the set whose span holds their `MJD-MID`).
Each set has one deep I, one deep V and, per interval tag `t0001`..., one 10 min I and one 10 min V.

Preference for each role (best first):

1. PB-corrected (`PBCOR = T`) images from `--images`, dewarped (`DEWARPED = T`) before not;
2. images from `--fallback-dir`, PB-corrected before not, dewarped before not;
3. images from `--images` that are not PB-corrected (a warning says fluxes are apparent).

The deep I also prefers the `ROBUST` / `TAPER` of the set's 10 min I images (so that 10 min - deep
subtracts like from like; robust 0 with taper, the I-Taper-10min settings, when there are none).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.subbands import subband_of_freq

__all__ = ["ImageRecord", "ImageSet", "read_record", "scan_images", "select_sets", "find_sets"]

log = logging.getLogger(__name__)

DEEP_CLUSTER_DAYS = 10.0 / 1440.0  # deep images closer than 10 min in mid-time are one set
ASSIGN_PAD_DAYS = 1.0 / 1440.0
NEAREST_DEEP_DAYS = 1.0 / 24.0  # a 10 min image outside every span joins a deep image within 1 h
SKIP_CATEGORIES = ("snapshot", "diff", "screen")
_INTERVAL_RE = re.compile(r"^t?(\d+)$", re.IGNORECASE)


def _time(value: object) -> Time | None:
    if value in (None, ""):
        return None
    try:
        return Time(str(value), scale="utc")
    except ValueError:
        return None


def _interval_tag(text: str) -> str | None:
    match = _INTERVAL_RE.match(text.strip())
    return f"t{int(match.group(1)):04d}" if match else None


@dataclass(frozen=True)
class ImageRecord:
    """What selection needs from one image header."""

    path: Path
    stokes: str
    category: str  # deep / 10min
    interval: str  # deep or t0001...
    n_intervals: int
    robust: float | None
    taper: float
    pbcor: bool
    dewarped: bool
    subband: str
    freq_mhz: float
    mjd_mid: float
    mjd_start: float | None
    mjd_end: float | None
    config: str
    fallback: bool = False

    @property
    def group(self) -> int:
        """0: PB-corrected from --images; 1: from the fallback folder; 2: not PB-corrected."""
        if self.fallback:
            return 1
        return 0 if self.pbcor else 2

    @property
    def rank(self) -> tuple:
        return (self.group, not self.pbcor, not self.dewarped, str(self.path))

    @property
    def date_obs(self) -> str:
        return Time(self.mjd_start, format="mjd", scale="utc").isot if self.mjd_start is not None else ""

    @property
    def date_end(self) -> str:
        return Time(self.mjd_end, format="mjd", scale="utc").isot if self.mjd_end is not None else ""

    def describe(self) -> str:
        flags = f"PBCOR={'T' if self.pbcor else 'F'} DEWARPED={'T' if self.dewarped else 'F'}"
        return f"{self.path} ({self.config or self.category} {self.stokes} {self.interval}, {flags})"


def read_record(path: str | Path, *, fallback: bool = False) -> ImageRecord | None:
    """The selection record of one FITS file; None (with a debug/warning log) when not usable."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.getheader(path)
    except (OSError, ValueError) as err:
        log.warning("skipping %s: not a readable FITS file (%s)", path, err)
        return None
    if "CUTOUT" in header:
        return None
    stokes = str(header.get("STOKES", "")).strip().upper()
    category = str(header.get("IMGCAT", "")).strip().lower()
    if stokes not in ("I", "V") or not category:
        log.debug("skipping %s: no STOKES I/V or IMGCAT keyword", path)
        return None
    if category in SKIP_CATEGORIES:
        return None
    if category == "stack":  # a wideband stack (lwa-stack): deep or one 10-min interval, by INTERVAL
        category = "deep" if str(header.get("INTERVAL", "deep")).strip().lower() == "deep" else "10min"
    if category not in ("deep", "10min"):
        log.debug("skipping %s: IMGCAT %s", path, category)
        return None
    if category == "deep":
        interval = "deep"
    else:
        interval = _interval_tag(str(header.get("INTERVAL", ""))) or ""
        if not interval:
            log.warning("skipping %s: 10min image without a usable INTERVAL keyword", path)
            return None
    freq = header.get("FREQMHZ")
    if freq is None:
        for i in range(1, int(header.get("NAXIS", 0)) + 1):
            if str(header.get(f"CTYPE{i}", "")).upper().startswith("FREQ"):
                freq = float(header[f"CRVAL{i}"]) / 1e6
    if freq is None or not math.isfinite(float(freq)):
        log.warning("skipping %s: no FREQMHZ keyword or FREQ axis", path)
        return None
    subband = str(header.get("SUBBAND", "")).strip()
    if not subband:
        try:
            subband = f"{subband_of_freq(float(freq) * 1e6)}MHz"
        except LwaError:
            subband = f"{float(freq):.0f}MHz"
    start, end = _time(header.get("DATE-OBS")), _time(header.get("DATE-END"))
    mid = header.get("MJD-MID")
    if mid is None:
        if start is None:
            log.warning("skipping %s: no MJD-MID or DATE-OBS, the image time is unknown", path)
            return None
        mid = (start.mjd + end.mjd) / 2 if end is not None else start.mjd
    robust = header.get("ROBUST")
    return ImageRecord(
        path=path,
        stokes=stokes,
        category=category,
        interval=interval,
        n_intervals=int(header.get("NINTERVL", 1) or 1),
        robust=float(robust) if robust is not None else None,
        taper=float(header.get("TAPER", 0.0) or 0.0),
        pbcor=bool(header.get("PBCOR", False)),
        dewarped=bool(header.get("DEWARPED", False)),
        subband=subband,
        freq_mhz=float(freq),
        mjd_mid=float(mid),
        mjd_start=start.mjd if start is not None else None,
        mjd_end=end.mjd if end is not None else None,
        config=str(header.get("CONFIG", "")),
        fallback=fallback,
    )


def _fits_files(source: Path, exclude: Sequence[Path]) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise LwaError(f"image folder not found: {source}")
    root = source.resolve()
    # an output folder inside the image folder is skipped (never the image folder itself)
    excluded = [e.resolve() for e in exclude if e.resolve() != root and not root.is_relative_to(e.resolve())]
    files = []
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() not in (".fits", ".fit", ".fts") or not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in excluded):
            continue
        files.append(path)
    return files


def scan_images(sources: Iterable[str | Path], *, fallback: bool = False,
                exclude: Sequence[Path] = ()) -> list[ImageRecord]:
    """Records of every usable image in `sources` (files or folders, searched recursively)."""
    records = []
    for source in sources:
        for path in _fits_files(Path(source), exclude):
            record = read_record(path, fallback=fallback)
            if record is not None:
                records.append(record)
    return records


@dataclass
class ImageSet:
    """The images of one subband and one observation span."""

    subband: str
    freq_mhz: float
    deep_i: ImageRecord | None = None
    deep_v: ImageRecord | None = None
    ten_i: dict[str, ImageRecord] = field(default_factory=dict)
    ten_v: dict[str, ImageRecord] = field(default_factory=dict)
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

    def records(self) -> list[ImageRecord]:
        out = [r for r in (self.deep_i, self.deep_v) if r is not None]
        return out + list(self.ten_i.values()) + list(self.ten_v.values())


def _best(candidates: list[ImageRecord], key=None) -> ImageRecord | None:
    if not candidates:
        return None
    return min(candidates, key=key or (lambda r: r.rank))


def _cluster(records: list[ImageRecord]) -> list[list[ImageRecord]]:
    clusters: list[list[ImageRecord]] = []
    for record in sorted(records, key=lambda r: r.mjd_mid):
        if clusters and abs(record.mjd_mid - clusters[-1][0].mjd_mid) < DEEP_CLUSTER_DAYS:
            clusters[-1].append(record)
        else:
            clusters.append([record])
    return clusters


def _span(records: list[ImageRecord]) -> tuple[float, float]:
    starts = [r.mjd_start if r.mjd_start is not None else r.mjd_mid for r in records]
    ends = [r.mjd_end if r.mjd_end is not None else r.mjd_mid for r in records]
    return min(starts), max(ends)


def select_sets(records: Sequence[ImageRecord], *, default_intervals: int = 6) -> list[ImageSet]:
    """Group records into sets and pick the best image for every role (see the module doc)."""
    sets: list[ImageSet] = []
    by_subband: dict[str, list[ImageRecord]] = {}
    for record in records:
        by_subband.setdefault(record.subband, []).append(record)
    for subband in sorted(by_subband, key=lambda s: (len(s), s)):
        group = by_subband[subband]
        deep = [r for r in group if r.category == "deep"]
        ten = [r for r in group if r.category == "10min"]
        spans: list[tuple[list[ImageRecord], list[ImageRecord]]] = [(c, []) for c in _cluster(deep)]
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
            sets.append(_make_set(subband, members, tens, default_intervals))
    return sets


def _make_set(subband: str, deep: list[ImageRecord], ten: list[ImageRecord], default_intervals: int) -> ImageSet:
    freq = (deep or ten)[0].freq_mhz
    image_set = ImageSet(subband=subband, freq_mhz=freq)
    for stokes, target in (("I", image_set.ten_i), ("V", image_set.ten_v)):
        tags = sorted({r.interval for r in ten if r.stokes == stokes})
        for tag in tags:
            target[tag] = _best([r for r in ten if r.stokes == stokes and r.interval == tag])
    want = Counter((r.robust, r.taper > 0) for r in image_set.ten_i.values()).most_common(1)
    want_robust, want_taper = want[0][0] if want else (0.0, True)

    def deep_i_key(r: ImageRecord) -> tuple:
        mismatch = not (r.robust is not None and want_robust is not None and abs(r.robust - want_robust) < 1e-6
                        and (r.taper > 0) == want_taper)
        return (r.group, mismatch, not r.pbcor, not r.dewarped, str(r.path))

    image_set.deep_i = _best([r for r in deep if r.stokes == "I"], key=deep_i_key)
    image_set.deep_v = _best([r for r in deep if r.stokes == "V"])
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
        if record.group == 2:
            log.warning("%s: using %s, which is not primary-beam corrected (fluxes are apparent)",
                        image_set.label, record.path)
        log.info("%s: %s %s -> %s", image_set.label, record.stokes, record.interval, record.describe())
    if image_set.deep_i is None:
        log.warning("%s: no deep I image: deep I and the 10 min I (10 min - deep) are not measured", image_set.label)
    return image_set


def find_sets(images: Sequence[str | Path], *, fallback_dirs: Sequence[str | Path] = (),
              exclude: Sequence[Path] = (), default_intervals: int = 6) -> list[ImageSet]:
    """Scan `images` (folders or files) and `fallback_dirs`, then `select_sets`; error when empty."""
    records = scan_images(images, exclude=exclude)
    records += scan_images(fallback_dirs, fallback=True, exclude=exclude)
    if not records:
        where = ", ".join(str(p) for p in [*images, *fallback_dirs]) or "(nothing given)"
        raise LwaError(f"no usable images (FITS with STOKES I/V and IMGCAT deep/10min) in {where}")
    return select_sets(records, default_intervals=default_intervals)
