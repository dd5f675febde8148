"""Primary-beam correction of lwa-pipe images with an OVRO-LWA h5 beam (`lwa_common.beam`).

The Stokes I beam (zenith = 1) is evaluated on the image grid at the image frequency and the
middle of its data, both read by `lwa_common.images` (FREQMHZ, else the FREQ axis; MJD-MID, else the
middle of DATE-OBS..DATE-END, else DATE-OBS plus half of `--duration-s`); pixels below `min_elevation_deg` or with a
response below `min_response` become NaN. Stokes V images are divided by the same Stokes I beam
(the first-order correction; the dipoles' leakage is not modelled). The product is
``<name>-pbcorr.fits`` with PBCOR = T.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from lwa_common.beam import BeamModel, beam_for_image, load_beam
from lwa_common.config import PrimaryBeam
from lwa_common.errors import LwaError
from lwa_common.fitsio import image_plane, read_image, write_image
from lwa_common.images import ImageHints, image_info, info_from_header
from lwa_common.io import make_dirs
from lwa_common.provenance import PROV_PREFIX

__all__ = ["pbcor_name", "pbcor_image", "pbcor_images"]

log = logging.getLogger(__name__)


def pbcor_name(path: str | Path, outdir: str | Path | None = None) -> Path:
    """`X-image.fits` -> `X-image-pbcorr.fits` (in `outdir` when given)."""
    path = Path(path)
    name = path.name.removesuffix(".fits").removesuffix(".fit") + "-pbcorr.fits"
    return (Path(outdir) if outdir is not None else path.parent) / name


def pbcor_image(image: str | Path, output: str | Path | None = None, *, beam: BeamModel | None = None,
                settings: PrimaryBeam | None = None, overwrite: bool = False,
                beam_label: str = "", hints: ImageHints | None = None) -> Path:
    """Divide `image` by the primary beam; writes `output` (default `<image>-pbcorr.fits`).

    `settings`: the `[primary_beam]` section (None: the defaults): NaN below `min_elevation_deg`
    or where the response is below `min_response`; `beam` (already loaded, as `pbcor_images`
    shares one) else the model of its `beam_file` (empty: the analytic dipole)."""
    pb = settings if settings is not None else PrimaryBeam()
    min_elevation_deg, min_response = pb.min_elevation_deg, pb.min_response
    image = Path(image)
    output = Path(output) if output is not None else pbcor_name(image)
    if output.exists() and not overwrite:
        raise LwaError(f"output exists: {output} (use --overwrite to replace it)")
    data, header = read_image(image)
    info = info_from_header(image, header, hints).require("freq", "time")
    if info.pbcor:
        raise LwaError(f"{image} is already primary-beam corrected (PBCOR = T)")
    _keep_imaging_stamp(header)
    plane = image_plane(data)
    beam = beam if beam is not None else load_beam(pb.beam_file or None)
    response = beam_for_image(header, beam=beam, min_elevation_deg=min_elevation_deg, min_response=min_response,
                              shape=plane.shape, freq_hz=info.freq_mhz * 1e6,
                              time=Time(info.mjd_mid, format="mjd", scale="utc"))
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(plane, response, out=plane)  # `data` is our own copy: divided in place
    label = beam_label or getattr(beam, "source", "") or "default analytic dipole beam"
    history = [f"pbcor: beam {label}; NaN below {min_elevation_deg:g} deg elevation or response < {min_response:g}"]
    write_image(output, data, header, tool="lwa-image", keywords={"PBCOR": True}, extra_history=history,
                overwrite=True)
    log.info("wrote %s", output)
    return output


IMAGING_TAG = f"{PROV_PREFIX}[image-sci] "  # same length as the lwa-image tag: no re-wrapping


def _keep_imaging_stamp(header: fits.Header) -> None:
    """Retag the imaging step's stamp (wsclean command, MS) so that pbcor's own stamp keeps it."""
    own = f"{PROV_PREFIX}[lwa-image] "
    cards = [str(c) for c in header.get("HISTORY", [])]
    if not any(c.startswith(own) for c in cards):
        return
    while "HISTORY" in header:
        del header["HISTORY"]
    for text in cards:
        header.add_history(IMAGING_TAG + text[len(own):] if text.startswith(own) else text)


def pbcor_images(images: Sequence[str | Path], *, outdir: str | Path | None = None,
                 settings: PrimaryBeam | None = None, overwrite: bool = False,
                 hints: ImageHints | None = None) -> list[Path]:
    """Primary-beam correct several images with one beam model; returns the outputs.

    `settings`: the `[primary_beam]` section (None: the defaults): `beam_file` (empty: the analytic
    dipole), `min_elevation_deg` and `min_response` (NaN below either)."""
    pb = settings if settings is not None else PrimaryBeam()
    beam_file = pb.beam_file or None
    outputs = [pbcor_name(p, outdir) for p in images]
    existing = [o for o in outputs if o.exists()]
    if existing and not overwrite:
        raise LwaError(f"output exists: {existing[0]} (use --overwrite to replace it)")
    if len(set(outputs)) != len(outputs):
        raise LwaError("two inputs would write the same -pbcorr.fits; give them distinct names")
    for img in images:  # fail before work
        if image_info(img, hints).require("freq", "time").pbcor:
            raise LwaError(f"{img} is already primary-beam corrected (PBCOR = T)")
    beam = load_beam(beam_file)
    log.info("primary beam %s: %d freqs %.1f-%.1f MHz", beam.source, beam.freqs_hz.size,
             beam.freqs_hz[0] / 1e6, beam.freqs_hz[-1] / 1e6)
    if outdir is not None:
        make_dirs(Path(outdir))
    return [pbcor_image(img, out, beam=beam, settings=pb, overwrite=True,
                        beam_label=str(beam_file or beam.source), hints=hints)
            for img, out in zip(images, outputs)]
