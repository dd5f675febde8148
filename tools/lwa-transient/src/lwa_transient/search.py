"""The blind transient search (DESIGN.md, "Transients"), callable without click.

Per subband, on tapered, non-primary-beam-corrected (dewarped when available) images chosen by
header (`lwa_transient.select`; lwa-stack's wideband stacks are searched per band the same way):

* **Stokes V** — the deep V image directly, and each 10 min V image minus the deep V image
  (`v_difference`: steady V sources and their dirty-beam sidelobes cancel; minus the noise-weighted
  mean of the other 10 min V images when bright bursts fill the deep V, `lwa_transient.vreference`): pixels with
  |V − background| ≥ `v_sigma` × local RMS, both signs. Masked: disks around deep-I sources above
  `v_mask_sigma[0]` σ (2 beams) and `v_mask_sigma[1]` σ (1 beam), A-team caps, and in a difference
  `v_source_mask_beams` around the deep-V sources. Artefact rules (README, "Algorithm"):
  `sidelobe` (explained by a brighter V source's dirty beam: its twin through the source holds
  1/`v_sidelobe_margin` of it — `mirror_value`, `twin_centre` — or, where the twin cannot judge, no
  brighter than the sidelobe envelope measured in the same image × `v_sidelobe_margin`; capped at
  `v_sidelobe_fraction`), `fainter` (a deep-V
  source fading), `echo` (a burst of another interval diluted into the deep V), `trend` (what
  the other intervals' differences predict at its place: an imaging difference; also for I).
* **Stokes I** — each 10 min R0 image minus the deep R0 image, positive only, ≥ `i_sigma` × local
  RMS of the difference; masks at `i_mask_sigma` (100σ → 2 beams, 30σ → 1 beam) and larger
  A-team caps. A deep-I source that is `steady_ratio` (2) times brighter in the 10 min image is the
  transient itself (diluted in the deep image) and is not masked in that interval.

Images of a subband must have one shape (else `LwaError`); one on another pixel grid (another
phase centre) is reprojected onto the deep I grid with `reproject_interp`, with a warning.

Every radius is in restoring beams (BMAJ) of the searched image's own header. Every candidate gets
the bi-lobe partner test (`lwa_transient.detect`), a catalogue match,
a J-name, and the brightest `max_cutouts` per subband per Stokes get a FITS cutout and a PNG in a
`J0553+31`-style folder. `candidates.csv` is always written (header only when nothing is found).

This module is the run: inputs checked, images selected, each subband's images loaded onto one grid
and masked, the V and I searches called, the CSV written. The parts live beside it:
`settings` (the `[transient]` section + `SearchOptions`), `planes` (images, one image searched),
`vsearch` / `isearch` (the two searches), `sidelobes` (the V sidelobe rule), `vreference` (the 10 min V
reference and its echoes), `rules` (fainter, trend, steady-source masks), `candidates` (rows, CSV,
catalogue match), `candidate_products` (cutouts and PNGs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from astropy.io import fits

from lwa_common.config import Cutout, Transient
from lwa_common.errors import LwaError
from lwa_common.images import ImageHints, ImageInfo, scan_images
from lwa_common.io import check_output, make_dirs
from lwa_common.products import CANDIDATES
from lwa_transient.candidate_products import write_candidate_products
from lwa_transient.candidates import Candidate, Catalog, SearchResult, write_csv
from lwa_transient.isearch import IMasks, search_i
from lwa_transient.masks import ateam_mask, ateam_sources, bright_source_mask, bright_sources, present_ateam
from lwa_transient.planes import SearchImage, align, is_empty, load_image, restoring_beam_px
from lwa_transient.rms import local_residual_noise
from lwa_transient.rules import mark_trends
from lwa_transient.select import SubbandImages, select_images
from lwa_transient.settings import SearchOptions, check_settings, mirror
from lwa_transient.vreference import VReference
from lwa_transient.vsearch import search_v

__all__ = ["SubbandSearch", "search_images"]

log = logging.getLogger(__name__)


class SubbandSearch:
    """One run: state shared by the subbands (settings, output folder, catalogue, written products)
    and the images of the subband being searched (its grid, a small cache, its V reference)."""

    def __init__(self, settings: Transient, cutout: Cutout, options: SearchOptions, output: Path,
                 argv: list[str] | None, catalog: Catalog | None):
        self.settings, self.cutout, self.options = settings, cutout, options
        self.output = output
        self.argv = argv
        self.catalog = catalog
        self.products: list[Path] = []
        self.skipped: list[str] = []
        self.grid: SearchImage | None = None  # the subband's reference grid (deep I when there is one)
        self._cache: dict[str, SearchImage] = {}
        self._seen: set[str] = set()
        self.infos: dict[str, ImageInfo] = {}  # path -> the selection's reading of the image
        self.v_reference: VReference | None = None  # the subband's 10 min V reference
        self._screens: dict[str, np.ndarray | None] = {}  # dewarp screens read for the mirror test

    # ------------------------------------------------------------------ loading

    def load(self, info: ImageInfo | None) -> SearchImage | None:
        """The image on the subband grid, or None (with a warning) when it holds no usable pixel."""
        if info is None:
            return None
        key = str(info.path)
        if key in self._cache:
            return self._cache[key]
        if 0 in info.shape:
            log.warning("%s holds no image data: skipped", info.path)
            self.skipped.append(key)
            return None
        img = load_image(info)
        if is_empty(img.data):
            log.warning("%s has no finite non-zero pixel: skipped", info.path)
            self.skipped.append(key)
            return None
        if self.grid is None:
            self.grid = img
        img = align(img, self.grid, warn=key not in self._seen)
        self._seen.add(key)
        if len(self._cache) >= 3:
            self._cache.clear()
        self._cache[key] = img
        return img

    def _check_shapes(self, group: SubbandImages) -> None:
        """Fail before work: every image of the subband has the same shape."""
        shapes = {info.path: info.shape for info in group.all()}
        sized = [path for path, shape in shapes.items() if 0 not in shape]
        if not sized:
            return
        ref = group.deep_i.path if group.deep_i is not None and group.deep_i.path in sized else sized[0]
        for path in sized:
            a, b = shapes[path], shapes[ref]
            if a != b:
                raise LwaError(f"image shapes differ: {path} is {a[1]}x{a[0]}, {ref} is {b[1]}x{b[0]} "
                               "(image them on the same grid)")

    # ------------------------------------------------------------------ search

    def subband(self, group: SubbandImages) -> list[Candidate]:
        """The candidates of one subband: masks from the deep I, the V and I searches, the
        catalogue match, the products."""
        t, o = self.settings, self.options
        t0 = time.perf_counter()
        label = group.subband or "subband ?"
        self.grid = None
        self.v_reference = None
        self._cache.clear()
        self._check_shapes(group)
        deep_i = self.load(group.deep_i)
        v_mask = i_mask = None
        if deep_i is not None:
            v_mask, i_mask = self._masks(deep_i, label)
        elif group.deep_i is None:
            log.warning("%s: no deep I image: V search without bright-source masks, no I difference search", label)
        cands: list[Candidate] = []
        if "V" in o.stokes:
            cands += search_v(self, group, v_mask, label)
        if "I" in o.stokes:
            cands += search_i(self, group, deep_i, i_mask, label)
        if self.catalog is not None:
            self.catalog.match(cands, t.catalog_match_beams)
        if o.drop_bilobe:
            dropped = sum(c.bilobe for c in cands)
            cands = [c for c in cands if not c.bilobe]
            if dropped:
                log.info("%s: dropped %d bi-lobe candidate(s)", label, dropped)
        write_candidate_products(self, cands, label)
        log.info("%s: %d candidate(s) in %.1f s", label, len(cands), time.perf_counter() - t0)
        self._cache.clear()
        return cands

    def _masks(self, deep_i: SearchImage, label: str) -> tuple[np.ndarray, IMasks]:
        """The V mask and the I masks of the subband, from its deep I image."""
        p, o = self.settings, self.options
        beam = restoring_beam_px([deep_i])
        # σ from the block RMS grid: the deep I's RMS is wanted as one number, not as a map
        residual, sigma = local_residual_noise(deep_i.data, box=p.rms_box_px, smooth=p.rms_smooth_boxes)
        snr = residual / sigma
        b2, b1 = p.mask_beams
        v_bright, v_src = bright_source_mask(snr, beam_px=beam, levels=((p.v_mask_high_sigma, b2), (p.v_mask_low_sigma, b1)))
        i_src, i_islands = bright_sources(snr, beam_px=beam, levels=((p.i_mask_high_sigma, b2), (p.i_mask_low_sigma, b1)))
        sources = ateam_sources(o.ateam, o.ateam_file, deep_i.info.freq_mhz, major_jy=p.ateam_major_jy)
        ateam = present_ateam(sources, snr, deep_i.wcs, radius_px=p.ateam_present_beams * beam,
                              sigma=p.i_mask_high_sigma, label=label)
        v_zone, v_names = ateam_mask(deep_i.wcs, deep_i.data.shape, ateam, p.v_ateam_radius_deg)
        i_zone, i_names = ateam_mask(deep_i.wcs, deep_i.data.shape, ateam, p.i_ateam_radius_deg)
        v_mask = v_bright | v_zone
        i_masks = IMasks(i_src, i_islands, i_zone, residual)
        log.info("%s: deep I σ = %.4g Jy/beam, beam %.2f px; V masks: %d bright source(s), A-team %s (%.1f%% "
                 "masked); I masks: %d bright source(s), A-team %s", label, sigma, beam, len(v_src),
                 ", ".join(v_names) or "none", 100 * np.count_nonzero(v_mask) / v_mask.size, len(i_src), ", ".join(i_names) or "none")
        return v_mask, i_masks

    def screen(self, img: SearchImage) -> np.ndarray | None:
        """The lwa-dewarp screen (2, ny, nx: dx, dy in pixels) of a dewarped image for the sidelobe
        rule's mirror test: the file its DWSCREEN names, beside the image or in ../dewarp/ (the
        layout run_hour.sh writes); None when the test is off, the image is not dewarped, or the
        screen is not found or not on the image's grid (a warning: twins are then looked for
        without it)."""
        name = img.header.get("DWSCREEN")
        if mirror(self.settings) is None or not img.header.get("DEWARPED") or not name:
            return None
        folder = img.info.path.parent
        path = next((f for f in (folder / name, folder.parent / "dewarp" / name) if f.is_file()), None)
        key = str(path)
        if key not in self._screens:
            screen = None
            if path is not None:
                data = np.asarray(fits.getdata(path), dtype=np.float32)
                screen = data if data.shape == (2, *img.data.shape) else None
            if screen is None:
                log.warning("%s: dewarp screen %s not found beside it or in ../dewarp, or not on its grid: sidelobe "
                            "twins are looked for without it", img.info.path.name, name)
            self._screens[key] = screen
        return self._screens[key]

    def beam(self, *images: SearchImage | None) -> float:
        """BMAJ in pixels of the first of `images` (then of the subband's reference grid, the deep I)
        whose header has one: dirty images made without a fitted PSF have none."""
        return restoring_beam_px([im for im in (*images, self.grid) if im is not None])

    def trends(self, cands: list[Candidate], residuals: dict[str, np.ndarray], label: str) -> None:
        """The trend rule (`mark_trends`) on the candidates of the 10 min − reference differences
        whose background-subtracted images (`SearchOutcome.residual`, by interval) the search kept:
        each is sampled at the candidates' pixels (no difference or background made a second time)."""
        p = self.settings
        if p.trend_fraction <= 0 or all(c.klass == "artefact" for c in cands):
            return
        ny, nx = self.grid.data.shape
        ys = np.clip(np.rint([c.y for c in cands]).astype(int), 0, ny - 1)
        xs = np.clip(np.rint([c.x for c in cands]).astype(int), 0, nx - 1)
        samples = {interval: residuals[interval][ys, xs] for interval in sorted(residuals)}
        n = mark_trends(cands, sorted(samples), samples, p.trend_fraction)
        if n:
            log.info("%s: %d candidate(s) predicted by the other intervals' differences (trend)", label, n)


def _check_inputs(output: Path, catalog: Path | None, options: SearchOptions, overwrite: bool) -> Path:
    """Fail before work on an unusable output, catalogue or A-team file; the CSV path."""
    if output.exists() and not output.is_dir():
        raise LwaError(f"output {output} exists and is not a folder")
    csv_path = check_output(CANDIDATES.path(output), overwrite=overwrite)
    if catalog is not None and not catalog.exists():
        raise LwaError(f"catalogue not found: {catalog}")
    if options.ateam_file is not None and not Path(options.ateam_file).exists():
        raise LwaError(f"A-team file not found: {options.ateam_file}")
    return csv_path


def search_images(
    inputs: Sequence[str | Path],
    *,
    output: str | Path,
    settings: Transient | None = None,
    cutout: Cutout | None = None,
    options: SearchOptions | None = None,
    catalog: str | Path | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    hints: ImageHints | None = None,
) -> SearchResult:
    """Run the search on `inputs` (FITS files and/or folders) and write `output`/candidates.csv.

    `settings`: the `[transient]` config section (default: its defaults), `cutout`: the `[cutout]`
    section (its `size_deg`), `options`: the run's choices (`SearchOptions`). `hints` say what the
    headers of plain (non-pipeline) images cannot (`lwa_common.images`).

    Returns the candidates (sorted by subband, Stokes, interval, decreasing |S/N|), the CSV path and
    the products written. Raises `LwaError` on unusable input (nothing selectable, shape mismatch).
    """
    settings, cutout, options = settings or Transient(), cutout or Cutout(), options or SearchOptions()
    check_settings(settings, cutout, options)
    output = Path(output)
    catalog = Path(catalog) if catalog is not None else None
    csv_path = _check_inputs(output, catalog, options, overwrite)
    infos, _ = scan_images(inputs, hints, exclude=[output])  # lwa_common.images: discovery + headers, once
    groups = select_images(infos, robust=settings.robust, hints=hints)
    cat = Catalog(catalog) if catalog is not None else None
    log.info("search settings: %s; %s", asdict(settings),
             {k: v for k, v in asdict(options).items() if k != "ateam"})
    make_dirs(output)
    run = SubbandSearch(settings, cutout, options, output, argv, cat)
    run.infos = {str(i.path): i for g in groups.values() for i in g.all()}
    cands: list[Candidate] = []
    n_images = 0
    for subband in sorted(groups):
        n_images += len(groups[subband].all())
        cands += run.subband(groups[subband])
    if n_images and len(set(run.skipped)) >= n_images:
        raise LwaError(f"none of the {n_images} image(s) has a finite non-zero pixel: nothing to search")
    order = {"V": 0, "I": 1}
    cands.sort(key=lambda c: (c.subband, order.get(c.stokes, 2), c.interval != "deep", c.interval, -abs(c.snr)))
    write_csv(csv_path, cands)
    counts: dict[str, int] = {}
    for c in cands:
        counts[c.klass] = counts.get(c.klass, 0) + 1
    log.info("%d candidate(s) from %d image(s) (%s); wrote %s and %d product file(s)", len(cands), n_images,
             ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none", csv_path, len(run.products))
    if run.skipped:
        log.warning("%d image(s) had no finite non-zero pixel and were skipped", len(run.skipped))
    return SearchResult(cands, csv_path, run.products, n_images, run.skipped)
