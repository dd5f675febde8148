"""Which candidates of a subband get a cutout and a PNG, and what those show: the brightest
`max_cutouts` per Stokes (real-looking ones first), the searched image as it was searched (the
I or V difference, or the deep V), with the I image of the same interval (or the deep I) beside
it, in a `J0553+31` folder. The writing itself is `lwa_transient.products`.

Why apart from the search: the products re-read the images the search used (through the run's
cache and grid) but decide nothing about the candidates.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord

from lwa_common.images import image_info
from lwa_common.io import make_dirs
from lwa_transient.candidates import Candidate
from lwa_transient.planes import SearchImage
from lwa_transient.products import cutout, write_cutout, write_png

if TYPE_CHECKING:
    from lwa_transient.search import SubbandSearch

__all__ = ["write_candidate_products"]

log = logging.getLogger(__name__)


def write_candidate_products(run: SubbandSearch, cands: list[Candidate], label: str) -> None:
    """Warn on too many candidates per Stokes; write the products of the first `max_cutouts`."""
    t = run.settings
    for stokes in ("V", "I"):
        members = [c for c in cands if c.stokes == stokes]
        if len(members) > t.warn_candidates:
            log.warning("%s Stokes %s: %d candidates (more than %d): check the images for artefacts",
                        label, stokes, len(members), t.warn_candidates)
        if not run.options.products or t.max_cutouts == 0:
            continue
        # real-looking candidates first, then the brightest
        ranked = sorted(members, key=lambda c: (c.klass == "artefact", -abs(c.snr)))
        for c in ranked[: t.max_cutouts]:
            _write_products(run, c)


def _image(run: SubbandSearch, path: str) -> SearchImage | None:
    """An image of the run by path, read through the run's cache and grid."""
    return run.load(run.infos.get(path) or image_info(path))


def _reference_of(run: SubbandSearch, c: Candidate) -> np.ndarray:
    """The reference subtracted from a V candidate's 10 min image (the subband's `VReference`)."""
    ref = run.v_reference
    if ref is not None and c.interval in ref.images and ref.paths(c.interval) == c.subtracted:
        return ref(c.interval)
    return _image(run, c.subtracted[0]).data


def _panels(run: SubbandSearch, c: Candidate, img: SearchImage,
            ref: SearchImage | None) -> tuple[np.ndarray, str, str, dict[str, Any]]:
    """The searched image of `c`, the titles of the left and right panels, and the cutout's IMGCAT."""
    interval = f"I {ref.info.interval if ref else ''}".strip()
    if c.stokes == "I":
        return img.data - ref.data, "deep I (reference)", f"I {c.interval} − deep", {"IMGCAT": "diff"}
    if c.subtracted:
        return img.data - _reference_of(run, c), interval, f"V {c.interval} − deep", {"IMGCAT": "diff"}
    return img.data, interval, f"V {c.interval}", {}


def _history(c: Candidate) -> list[str]:
    """The cutout's HISTORY line: what was subtracted from which image."""
    subtracted = (c.reference,) if c.stokes == "I" else c.subtracted
    minus = (f" minus {Path(subtracted[0]).name}" if len(subtracted) == 1
             else f" minus the noise-weighted mean of {', '.join(Path(s).name for s in subtracted)}"
             if subtracted else "")
    return [f"cutout of {Path(c.image).name}{minus}"]


def _write_products(run: SubbandSearch, c: Candidate) -> None:
    """The FITS cutout and the PNG of one candidate; their paths go into the row."""
    size = run.cutout.size_deg
    img = _image(run, c.image)
    ref = _image(run, c.reference) if c.reference else None
    coord = SkyCoord(c.ra * u.deg, c.dec * u.deg)
    searched, left_title, right_title, keywords = _panels(run, c, img, ref)
    cut = cutout(searched, img.wcs, coord, size)
    if cut is None:
        log.warning("candidate %s is off its image: no cutout", c.jname)
        return
    folder = run.output / c.folder
    make_dirs(folder)
    stem = f"{c.jname}_{c.subband or 'sb'}_{c.stokes}_{c.interval}"
    keywords.update({"CANDNAME": c.jname, "CANDRA": round(c.ra, 6), "CANDDEC": round(c.dec, 6),
                     "CANDPEAK": float(f"{c.peak_jy:.6g}"), "CANDSNR": round(c.snr, 2)})
    fits_path = write_cutout(folder / f"{stem}.fits", cut, img.header, keywords=keywords, argv=run.argv,
                             extra_history=_history(c))
    left_cut = cutout(ref.data, ref.wcs, coord, size) if ref is not None else None
    png = write_png(
        folder / f"{stem}.png", left=left_cut, right=cut, centre=coord, left_title=left_title or "I",
        right_title=right_title, title=f"{c.jname}  {c.subband}  Stokes {c.stokes} {c.interval}  [{c.klass}]",
        note=f"peak {c.peak_jy:+.3g} Jy/beam, S/N {c.snr:+.1f}, rms {c.rms_jy:.3g} Jy/beam"
             + (f", match {c.catalog_match}" if c.catalog_match else ""),
        rms=c.rms_jy, size_deg=size,
    )
    c.cutout, c.png = str(fits_path), str(png)
    run.products += [fits_path, png]
