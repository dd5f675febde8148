"""The photometry engine shared by `targets` and `solar-system`.

For every image set (one subband, one hour; see `lwa_cutout.images`) and every subject (a target
or a solar-system body) above the elevation limit at the set's mid-time (`MJD-MID` of the deep
image; a subject below it is skipped with a WARNING log line), it measures (`lwa_cutout.measure`):

| row `interval` | Stokes I cells (`I_*`) | Stokes V cells (`V_*`) |
|---|---|---|
| `deep` | deep I, confusing sources masked within 1 FWHM | deep V |
| `t0001` ... `t000N` | that 10 min I minus the deep I (`I_kind` = `10min-deep`) | that 10 min V, direct |

so one set gives 1 + N rows, N = `NINTERVL` of the 10 min images (7 rows with the pipeline's 6
intervals); a missing image leaves its cells empty with `{S}_note` = "no image". Each measured
image also gives a 2 x 2 deg FITS cutout (the 10 min I as the difference image, `IMGCAT = 'diff'`)
and each row a 2-panel PNG (I left, V right; position +, search circle dashed, peak o, confusing
sources x with their 1-FWHM masks dotted).

`{subject}_photometry.csv` columns: the subject's input columns first, as read (a clash with one
of ours renames ours to `lwa_<name>`), then

| column | meaning |
|---|---|
| `target`, `subband`, `freq_mhz`, `interval`, `I_kind` | what and where |
| `date_obs`, `date_end`, `mjd_mid` | time range of the row's image |
| `pos_ra_deg`, `pos_dec_deg`, `elevation_deg`, `azimuth_deg` | position measured (ephemeris for bodies) |
| `search_radius_arcsec`, `beam_major_arcsec`, `beam_minor_arcsec`, `pbcor`, `dewarped` | measurement setup |
| `{S}_image` | the image measured (S = I, V) |
| `{S}_cat_jy` | value at the position, bilinear (Jy/beam) |
| `{S}_peak_jy`, `{S}_peak_ra_deg`, `{S}_peak_dec_deg`, `{S}_peak_offset_arcsec` | peak in the search circle (between pixels: `lwa_cutout.measure`) |
| `{S}_rms_jy`, `{S}_snr`, `{S}_detected` | annulus RMS, peak / RMS, SNR >= 5 (|SNR| for V) |
| `{S}_fit_peak_jy`, `{S}_fit_flux_jy`, `{S}_fit_ra_deg`, `{S}_fit_dec_deg`, `{S}_fit_major_arcsec`, `{S}_fit_minor_arcsec`, `{S}_fit_pa_deg` | Gaussian fit (when detected) |
| `{S}_masked_px`, `{S}_note` | masked pixels in the search circle; remarks |
| body columns | `solar-system` only: `ephem_ra_deg`, `ephem_dec_deg`, `distance_au`, `diameter_arcsec`, `ephem_elevation_deg` |
| `stokes`, `flux_jy`, `snr` | headline: the detected Stokes of `detection_stokes` (I first; `I+V` when both), its fitted flux (I: integrated; V: fitted peak, V images being dirty) and SNR; when not detected the first searched Stokes with its catalogue-position value and value / RMS (forced photometry) |
| `detection_stokes`, `detected` | I / V / both; detected in a searched Stokes (either for both) |

Positions come from `Subject.placement(mjd)`: fixed for targets, the ephemeris at each image's
mid-time for bodies.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from lwa_common.beam import radec_to_azel
from lwa_common.config import Config, Site, section_with
from lwa_common.config import Cutout as CutoutConfig
from lwa_common.errors import LwaError
from lwa_common.fitsio import celestial_wcs, image_plane, read_image
from lwa_common.images import ImageInfo, regrid_onto, same_grid
from lwa_common.io import atomic_path, check_output, make_dirs
from lwa_common.products import PHOTOMETRY
from lwa_cutout.cutouts import Cutout, PanelMarkers, make_cutout, plot_pair, safe_name, write_cutout
from lwa_cutout.images import ImageSet
from lwa_cutout.measure import Measurement, RestoringBeam, measure_position

__all__ = [
    "PhotometrySettings",
    "Placement",
    "Subject",
    "SubjectResult",
    "LoadedImage",
    "load_image",
    "ROW_COLUMNS",
    "output_column",
    "run_photometry",
    "write_rows_csv",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotometrySettings:
    """What a photometry run measures with: the `[cutout]` config section, the site, PNGs or not."""

    cutout: CutoutConfig = field(default_factory=CutoutConfig)
    site: Site = field(default_factory=Site)
    png: bool = True

    @classmethod
    def from_config(cls, cfg: Config, *, png: bool = True, **given: Any) -> PhotometrySettings:
        """`cfg.cutout` with the options given (None: not given; `lwa_common.config.section_with`)."""
        return cls(cutout=section_with(cfg.cutout, **given), site=cfg.site, png=png)

    @property
    def annulus_beams(self) -> tuple[float, float]:
        return (self.cutout.annulus_inner_beams, self.cutout.annulus_outer_beams)


@dataclass(frozen=True)
class Placement:
    """Where a subject is at one time, plus what the CSV row and cutout header say about it."""

    ra_deg: float
    dec_deg: float
    columns: Mapping[str, Any] = field(default_factory=dict)
    keywords: Mapping[str, Any] = field(default_factory=dict)  # FITS key -> (value, comment)


@dataclass(frozen=True)
class Subject:
    """Something to measure: a target at a fixed position, or a body with an ephemeris."""

    name: str
    ra_deg: float
    dec_deg: float
    detection_stokes: str = "I"  # I / V / both
    confusing: tuple[tuple[str, float, float], ...] = ()  # (label, ra, dec) masked in deep I
    row: Mapping[str, str] = field(default_factory=dict)  # input columns, first in the CSV
    ephemeris: Callable[[float], Placement] | None = None  # mjd -> placement (moving bodies)

    def placement(self, mjd: float) -> Placement:
        if self.ephemeris is not None:
            return self.ephemeris(mjd)
        return Placement(self.ra_deg, self.dec_deg)

    def detect_in(self, stokes: str) -> bool:
        return self.detection_stokes == "both" or self.detection_stokes == stokes


@dataclass
class SubjectResult:
    subject: Subject
    folder: Path
    csv: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # set labels skipped (elevation)

    @property
    def detected_rows(self) -> list[str]:
        return [f"{r['subband']}:{r['interval']}" for r in self.rows if r.get("detected") is True]


ROW_COLUMNS: tuple[str, ...] = PHOTOMETRY.columns
"""Columns every photometry row has after the subject's own (body columns come before `stokes`)."""


def output_column(name: str, inputs: Mapping[str, Any]) -> str:
    """Our column `name`, prefixed `lwa_` when the input already has a column of that name."""
    return f"lwa_{name}" if name in inputs else name


@dataclass
class LoadedImage:
    """An image plane in memory with its header, celestial WCS and restoring beam."""

    record: ImageInfo
    plane: np.ndarray
    header: fits.Header
    wcs: WCS
    beam: RestoringBeam


def load_image(record: ImageInfo, *, beam_fallback: RestoringBeam | None = None) -> LoadedImage:
    """Read the 2-D plane of `record`; its header (read once, by `lwa_common.images`), WCS and beam
    (BMAJ/BMIN/BPA, else `beam_fallback`)."""
    data, _ = read_image(record.path)
    header = record.header
    plane = np.asarray(image_plane(data), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = celestial_wcs(header)
    if not wcs.has_celestial:
        raise LwaError(f"{record.path}: no celestial WCS")
    beam = RestoringBeam.from_header(header, fallback=beam_fallback, where=str(record.path))
    return LoadedImage(record, plane, header, wcs, beam)


def _difference(ten: LoadedImage, deep: LoadedImage) -> np.ndarray:
    """10 min minus deep, the deep regridded onto the 10 min grid when the grids differ."""
    a, b = (ten.wcs, ten.plane.shape), (deep.wcs, deep.plane.shape)
    if same_grid(a, b):
        return ten.plane - deep.plane
    log.info("regridding %s onto the grid of %s for the difference", deep.record.path, ten.record.path)
    return ten.plane - regrid_onto(deep.plane, b, a).astype(np.float32)


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if not math.isfinite(float(value)) else f"{float(value):.10g}"
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    return value


def write_rows_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """CSV with `columns` (then any other key, in order of appearance); NaN and None are empty."""
    names = list(columns)
    for row in rows:
        names.extend(k for k in row if k not in names)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k)) for k in names})
    return path


@dataclass
class _Cell:
    """One Stokes cell of one row: the measurement, its image and cutout."""

    record: ImageInfo | None = None
    measurement: Measurement | None = None
    placement: Placement | None = None
    cutout: Cutout | None = None
    beam: RestoringBeam | None = None
    note: str = ""
    azel: tuple[float, float] | None = None


class _Run:
    """State of one photometry run (subjects x image sets)."""

    def __init__(self, subjects: Sequence[Subject], *, output_dir: Path, settings: PhotometrySettings,
                 argv: list[str] | None, kind: str) -> None:
        self.settings = settings
        self.argv = argv
        self.kind = kind
        self.results: list[SubjectResult] = []
        self.n_loaded, self.unreadable = 0, []  # images read, and why the others could not be
        used: set[str] = set()
        for subject in subjects:
            base = safe_name(subject.name)
            name, k = base, 2
            while name.lower() in used:
                name, k = f"{base}_{k}", k + 1
            if name != base:
                log.warning("%s '%s' appears more than once: its products go to %s/", kind, subject.name, name)
            used.add(name.lower())
            folder = output_dir / name
            self.results.append(SubjectResult(subject, folder, PHOTOMETRY.path(folder, name)))

    # ---------------------------------------------------------------- per set
    def run_set(self, image_set: ImageSet) -> None:
        s = self.settings.cutout
        active = []
        placements = [r.subject.placement(image_set.mjd_mid) for r in self.results]
        az, el = self._azel([p.ra_deg for p in placements], [p.dec_deg for p in placements], image_set.mjd_mid)
        when = Time(image_set.mjd_mid, format="mjd", scale="utc").isot[:19]
        for result, e in zip(self.results, el, strict=True):
            if not np.isfinite(e) or e < s.min_elevation_deg:
                log.warning("%s '%s' is at %.1f deg elevation (< %g deg) at %s (MJD-MID of %s): skipped",
                            self.kind, result.subject.name, e, s.min_elevation_deg, when, image_set.label)
                result.skipped.append(image_set.label)
            else:
                active.append(result)
        if not active:
            return
        log.info("%s: measuring %d %s(s) at %s", image_set.label, len(active), self.kind, when)
        cells: dict[int, dict[tuple[str, str], _Cell]] = {id(r): {} for r in active}

        deep_i = self._try_load(image_set.deep_i)
        deep_v = self._try_load(image_set.deep_v, beam_fallback=deep_i.beam if deep_i else None)
        fallback_beam = deep_i.beam if deep_i else (deep_v.beam if deep_v else None)
        if deep_i is not None:
            self._measure_image(active, cells, ("deep", "I"), deep_i, deep_i.plane, mask=True, image_set=image_set)
        if deep_v is not None:
            self._measure_image(active, cells, ("deep", "V"), deep_v, deep_v.plane, image_set=image_set)
        del deep_v
        for tag in image_set.intervals:
            record = image_set.ten_i.get(tag)
            if record is not None and deep_i is None:
                for r in active:
                    cells[id(r)][(tag, "I")] = _Cell(record, note="no deep I to subtract")
            elif record is not None:
                ten = self._try_load(record, beam_fallback=fallback_beam)
                if ten is not None:
                    diff = _difference(ten, deep_i)
                    self._measure_image(active, cells, (tag, "I"), ten, diff, image_set=image_set,
                                        diff_of=deep_i.record)
                del ten
            record = image_set.ten_v.get(tag)
            if record is not None:
                ten = self._try_load(record, beam_fallback=fallback_beam)
                if ten is not None:
                    self._measure_image(active, cells, (tag, "V"), ten, ten.plane, image_set=image_set)
                del ten
        for result in active:
            self._rows(result, cells[id(result)], image_set)

    def _azel(self, ra: Sequence[float], dec: Sequence[float], mjd: float) -> tuple[np.ndarray, np.ndarray]:
        time = Time(mjd, format="mjd", scale="utc")
        return radec_to_azel(np.asarray(ra, float), np.asarray(dec, float), time=time, site=self.settings.site)

    def _try_load(self, record: ImageInfo | None, *, beam_fallback: RestoringBeam | None = None
                  ) -> LoadedImage | None:
        if record is None:
            return None
        try:
            loaded = load_image(record, beam_fallback=beam_fallback)
        except LwaError as err:
            log.warning("image skipped: %s", err)
            self.unreadable.append(str(err))
            return None
        self.n_loaded += 1
        return loaded

    def _measure_image(self, active: list[SubjectResult], cells: dict, key: tuple[str, str], loaded: LoadedImage,
                       plane: np.ndarray, *, image_set: ImageSet, mask: bool = False,
                       diff_of: ImageInfo | None = None) -> None:
        s = self.settings.cutout
        tag, stokes = key
        mask_radius = s.mask_radius_beams * loaded.beam.major_deg
        places = [result.subject.placement(loaded.record.mjd_mid) for result in active]
        az, el = self._azel([p.ra_deg for p in places], [p.dec_deg for p in places], loaded.record.mjd_mid)
        for result, place, a, e in zip(active, places, az, el, strict=True):
            subject = result.subject
            confusers = [(ra, dec) for _, ra, dec in subject.confusing] if mask else []
            m = measure_position(
                plane, loaded.wcs, place.ra_deg, place.dec_deg, beam=loaded.beam, freq_mhz=loaded.record.freq_mhz,
                stokes=stokes, mask=confusers, mask_radius_deg=mask_radius,
                pad_arcsec_at_85mhz=s.ionospheric_pad_arcsec_at_85mhz, annulus_beams=self.settings.annulus_beams,
                detection_sigma=s.detection_sigma,
            )
            cut = make_cutout(plane, loaded.header, loaded.wcs, place.ra_deg, place.dec_deg, size_deg=s.size_deg)
            cell = _Cell(loaded.record, m, place, cut, loaded.beam, azel=(float(a), float(e)))
            if cut is not None:
                suffix = "Idiff" if diff_of is not None else stokes
                path = result.folder / f"{result.folder.name}-{image_set.label}-{tag}-{suffix}.fits"
                cut.header["OBJECT"] = (subject.name, "measured subject")
                cut.header["CUTOUT"] = (subject.name, "lwa-cutout cutout of this subject")
                cut.header["TGT_RA"] = (round(place.ra_deg, 7), "[deg] position measured (ICRS)")
                cut.header["TGT_DEC"] = (round(place.dec_deg, 7), "[deg] position measured (ICRS)")
                for name, value in place.keywords.items():
                    cut.header[name] = value  # (value, comment)
                keywords: dict[str, Any] = {}
                history = [f"cutout of {loaded.record.path}"]
                if diff_of is not None:
                    keywords["IMGCAT"] = "diff"
                    history = [f"cutout of {loaded.record.path} minus {diff_of.path}"]
                write_cutout(path, cut, keywords=keywords, argv=self.argv, extra_history=history)
                result.outputs.append(path)
            cells[id(result)][key] = cell

    # ---------------------------------------------------------------- rows and plots
    def _rows(self, result: SubjectResult, cells: dict[tuple[str, str], _Cell], image_set: ImageSet) -> None:
        subject = result.subject
        tags = ["deep", *image_set.intervals]
        rows = []
        for tag in tags:
            ci, cv = cells.get((tag, "I"), _Cell()), cells.get((tag, "V"), _Cell())
            if ci.record is None and tag == "deep":
                ci = _Cell(None, note="no deep I image")
            anchor = next((c for c in (ci, cv) if c.record is not None), None)
            mjd = anchor.record.mjd_mid if anchor else image_set.mjd_mid
            place = next((c.placement for c in (ci, cv) if c.placement is not None), None) or subject.placement(mjd)
            azel = next((c.azel for c in (ci, cv) if c.azel is not None), None)
            if azel is None:
                az, el = self._azel([place.ra_deg], [place.dec_deg], mjd)
                azel = (float(az[0]), float(el[0]))
            beam = next((c.beam for c in (ci, cv) if c.beam is not None), None)
            m_any = next((c.measurement for c in (ci, cv) if c.measurement is not None), None)
            ours: dict[str, Any] = {
                "target": subject.name,
                "subband": image_set.subband,
                "freq_mhz": anchor.record.freq_mhz if anchor else image_set.freq_mhz,
                "interval": tag,
                "I_kind": "deep" if tag == "deep" else "10min-deep",
                "date_obs": anchor.record.date_obs if anchor else "",
                "date_end": anchor.record.date_end if anchor else "",
                "mjd_mid": mjd,
                "pos_ra_deg": place.ra_deg,
                "pos_dec_deg": place.dec_deg,
                "elevation_deg": azel[1],
                "azimuth_deg": azel[0],
                "search_radius_arcsec": m_any.search_radius_arcsec if m_any else math.nan,
                "beam_major_arcsec": beam.major_deg * 3600 if beam else math.nan,
                "beam_minor_arcsec": beam.minor_deg * 3600 if beam else math.nan,
                "pbcor": all(c.record.pbcor for c in (ci, cv) if c.record is not None) if anchor else "",
                "dewarped": all(c.record.dewarped for c in (ci, cv) if c.record is not None) if anchor else "",
            }
            for stokes, cell in (("I", ci), ("V", cv)):
                if cell.measurement is not None:
                    ours.update(cell.measurement.columns(stokes, str(cell.record.path)))
                else:
                    ours[f"{stokes}_image"] = str(cell.record.path) if cell.record else ""
                    ours[f"{stokes}_note"] = cell.note or "no image"
                    ours[f"{stokes}_detected"] = False
            ours.update(place.columns)
            ours.update(_headline(subject, {"I": ci.measurement, "V": cv.measurement}))
            row: dict[str, Any] = dict(subject.row)
            for key, value in ours.items():
                if key in subject.row and str(subject.row[key]) == str(value):
                    continue  # the input already says it (detection_stokes)
                row[output_column(key, subject.row)] = value
            rows.append(row)
            if self.settings.png and (ci.cutout is not None or cv.cutout is not None):
                result.outputs.append(self._plot(result, image_set, tag, ci, cv))
        result.rows.extend(rows)

    def _markers(self, subject: Subject, cell: _Cell, *, masked: bool) -> PanelMarkers | None:
        m, place = cell.measurement, cell.placement
        if m is None or place is None:
            return None
        extra = []
        if np.isfinite(m.peak_jy):
            extra.append(f"peak {m.peak_jy:.3g} Jy/beam, rms {m.rms_jy:.2g}, SNR {m.snr:.1f}"
                         + (" (detected)" if m.detected else ""))
        if m.fit is not None:
            extra.append(f"fit: peak {m.fit.peak_jy:.3g} Jy/beam, integrated {m.fit.flux_jy:.3g} Jy")
        mask_radius = self.settings.cutout.mask_radius_beams * cell.beam.major_deg if masked and cell.beam else 0.0
        peak = (m.peak_ra_deg, m.peak_dec_deg) if np.isfinite(m.peak_ra_deg) else None
        return PanelMarkers(place.ra_deg, place.dec_deg, m.search_radius_arcsec / 3600.0, subject.confusing,
                            mask_radius, peak, extra=extra)

    def _plot(self, result: SubjectResult, image_set: ImageSet, tag: str, ci: _Cell, cv: _Cell) -> Path:
        subject = result.subject
        path = result.folder / f"{result.folder.name}-{image_set.label}-{tag}.png"
        anchor = ci.record or cv.record
        when = anchor.date_obs[:19] if anchor else ""
        title = f"{subject.name}  {image_set.subband}  {tag}  {when}"
        left_label = "I deep (confusing sources masked)" if tag == "deep" else "I (10 min - deep)"
        right_label = "V deep" if tag == "deep" else "V 10 min"
        return plot_pair(path, ci.cutout, cv.cutout, left_markers=self._markers(subject, ci, masked=tag == "deep"),
                         right_markers=self._markers(subject, cv, masked=False), title=title,
                         left_label=left_label, right_label=right_label)


def _headline(subject: Subject, measurements: Mapping[str, Measurement | None]) -> dict[str, Any]:
    """`stokes`, `flux_jy`, `snr`, `detection_stokes`, `detected` of one row (see the module doc)."""
    searched = [st for st in ("I", "V") if subject.detect_in(st)]
    hits = [st for st in searched if measurements[st] is not None and measurements[st].detected]
    stokes = hits[0] if hits else searched[0]
    m = measurements[stokes]
    if m is None:
        flux, snr = math.nan, math.nan
    elif m.detected and m.fit is not None:
        flux, snr = (m.fit.flux_jy if stokes == "I" else m.fit.peak_jy), m.snr
    elif m.detected:
        flux, snr = m.peak_jy, m.snr
    else:
        flux = m.cat_jy
        snr = m.cat_jy / m.rms_jy if np.isfinite(m.rms_jy) and m.rms_jy > 0 else math.nan
    return {"stokes": "+".join(hits) or stokes, "flux_jy": flux, "snr": snr,
            "detection_stokes": subject.detection_stokes, "detected": bool(hits)}


def run_photometry(
    subjects: Sequence[Subject],
    image_sets: Sequence[ImageSet],
    *,
    output_dir: str | Path,
    settings: PhotometrySettings | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    kind: str = "target",
    extra_columns: Sequence[str] = (),
) -> list[SubjectResult]:
    """Measure every subject in every image set; write cutouts, PNGs and `{name}_photometry.csv`.

    Fails before any work when a photometry CSV exists and `overwrite` is false. Subjects below
    the elevation limit in every set get no CSV (their `skipped` lists the sets).
    """
    settings = settings or PhotometrySettings()
    output_dir = Path(output_dir)
    run = _Run(subjects, output_dir=output_dir, settings=settings, argv=argv, kind=kind)
    for result in run.results:
        check_output(result.csv, overwrite=overwrite)
    make_dirs(output_dir)
    for image_set in image_sets:
        run.run_set(image_set)
    if run.unreadable and not run.n_loaded:
        raise LwaError(f"no image could be read ({len(run.unreadable)} skipped; last: {run.unreadable[-1]})")
    for result in run.results:
        if not result.rows:
            log.info("%s '%s': nothing measured, no CSV written", kind, result.subject.name)
            continue
        ours = [*ROW_COLUMNS[:-5], *extra_columns, *ROW_COLUMNS[-5:]]
        present = {key for row in result.rows for key in row}
        columns = [*result.subject.row.keys(),
                   *(c for c in (output_column(c, result.subject.row) for c in ours) if c in present)]
        write_rows_csv(result.csv, result.rows, columns)
        result.outputs.insert(0, result.csv)
        log.info("%s '%s': %d rows -> %s (detected in %s)", kind, result.subject.name, len(result.rows),
                 result.csv, ", ".join(result.detected_rows) or "no row")
    return run.results
