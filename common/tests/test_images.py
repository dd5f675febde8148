"""lwa_common.images: one reading of an image's identity, FITS discovery, pixel grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.images import (
    ImageHints,
    find_images,
    grid_key,
    image_info,
    info_from_header,
    regrid_onto,
    same_grid,
    scan_images,
)
from lwa_common.testing import allsky_header

DATE = "2024-12-20T12:00:00"


def plain_header(*, stokes_code: int | None = 1, four_d: bool = True, freq_hz: float | None = 56.2e6,
                 proj: str = "SIN", **cards) -> fits.Header:
    """What WSClean (4-D, STOKES + FREQ axes) or a CASA 2-D export writes: no lwa-pipe keywords."""
    h = fits.Header()
    h["NAXIS"] = 4 if four_d else 2
    h["NAXIS1"], h["NAXIS2"] = 40, 30
    for i, (ctype, crval, cdelt) in enumerate((("RA---" + proj, 150.0, -0.5), ("DEC--" + proj, 37.0, 0.5)), 1):
        h[f"CTYPE{i}"], h[f"CRVAL{i}"], h[f"CDELT{i}"], h[f"CRPIX{i}"], h[f"CUNIT{i}"] = ctype, crval, cdelt, 20.0, "deg"
    if four_d:
        h["NAXIS3"] = h["NAXIS4"] = 1
        h["CTYPE3"], h["CRVAL3"], h["CDELT3"], h["CRPIX3"] = "FREQ", freq_hz or 0.0, 1e6, 1.0
        h["CTYPE4"], h["CRVAL4"], h["CDELT4"], h["CRPIX4"] = "STOKES", stokes_code or 1, 1.0, 1.0
        if freq_hz is None:
            h["CTYPE3"] = "VRAD"
        if stokes_code is None:
            h["CTYPE4"] = "CHANNEL"
    h["DATE-OBS"] = DATE
    h["BMAJ"], h["BMIN"], h["BPA"] = 0.3, 0.2, 10.0
    h.update(cards)
    return h


def write(path, header):
    shape = tuple(int(header[f"NAXIS{i}"]) for i in range(int(header["NAXIS"]), 0, -1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.writeto(path, np.zeros(shape, np.float32), header, overwrite=True)
    return path


def test_plain_wsclean_image_is_a_deep_image_with_axis_stokes_and_frequency(tmp_path):
    info = image_info(write(tmp_path / "v.fits", plain_header(stokes_code=4)))
    assert (info.stokes, info.category, info.kind, info.interval) == ("V", "deep", "deep", "deep")
    assert info.freq_mhz == pytest.approx(56.2) and info.subband == "55MHz"
    assert info.mjd_mid == pytest.approx(Time(DATE).mjd) and info.mjd_end is None
    assert info.beam_deg == (0.3, 0.2, 10.0) and info.shape == (30, 40)
    assert info.robust is None and math.isnan(info.taper) and not info.pbcor and not info.labelled


def test_our_keywords_win_also_for_the_frequency(tmp_path):
    h = plain_header(stokes_code=4, STOKES="I", IMGCAT="10min", INTERVAL="t0003", FREQMHZ=70.0, ROBUST=0.0,
                     TAPER=30.0, PBCOR=True)
    h["DATE-END"] = "2024-12-20T12:10:00"
    info = info_from_header("x.fits", h, ImageHints(kind="deep", interval="t0001", stokes="V", freq_mhz=80.0))
    assert (info.stokes, info.category, info.interval, info.robust, info.taper) == ("I", "10min", "t0003", 0.0, 30.0)
    assert info.freq_mhz == 70.0  # FREQMHZ before the FREQ axis
    assert info.mjd_mid == pytest.approx(Time(DATE).mjd + 5 / 1440)
    assert info_from_header("x.fits", plain_header()).freq_mhz == pytest.approx(56.2)  # no FREQMHZ: the axis


def test_hints_fill_what_the_header_lacks(tmp_path):
    h = plain_header(four_d=False)
    bare = info_from_header("casa.fits", h)
    assert bare.missing("stokes", "freq", "time", "interval") == ["stokes", "freq"]
    with pytest.raises(LwaError, match=r"casa\.fits: the Stokes parameter is unknown .*--image-stokes"):
        bare.require("stokes")
    with pytest.raises(LwaError, match="--freq-mhz"):
        bare.require("freq")
    info = info_from_header("casa.fits", h, ImageHints(kind="10min", interval="3", stokes="V", freq_mhz=61.0,
                                                       duration_s=600))
    assert (info.stokes, info.category, info.interval, info.freq_mhz) == ("V", "10min", "t0003", 61.0)
    assert info.mjd_mid == pytest.approx(Time(DATE).mjd + 300 / 86400)
    ten = info_from_header("t.fits", h, ImageHints(kind="10min"))
    with pytest.raises(LwaError, match="--interval"):
        ten.require("interval")
    with pytest.raises(LwaError, match="--kind"):
        ImageHints(kind="hour")


def test_find_and_scan_images(tmp_path):
    a = write(tmp_path / "in" / "a.fits", plain_header())
    b = write(tmp_path / "in" / "sub" / "b.FIT", plain_header(stokes_code=4))
    write(tmp_path / "in" / ".hidden" / "c.fits", plain_header())
    write(tmp_path / "in" / "out" / "d.fits", plain_header())
    write(tmp_path / "in" / "screen.fits", plain_header(IMGCAT="screen"))
    write(tmp_path / "in" / "cut.fits", plain_header(CUTOUT="T5"))
    (tmp_path / "in" / "notes.txt").write_text("x")
    (tmp_path / "in" / "broken.fits").write_text("not fits")
    found = find_images([tmp_path / "in", a], exclude=[tmp_path / "in" / "out"])
    assert [p.name for p in found] == ["a.fits", "broken.fits", "cut.fits", "screen.fits", "b.FIT"]
    infos, skipped = scan_images([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    assert [i.path for i in infos] == [a, b]
    assert {p.name for p, _ in skipped} == {"broken.fits", "cut.fits", "screen.fits"}
    with pytest.raises(LwaError, match="input not found"):
        find_images([tmp_path / "nope"])


def test_same_grid_one_tolerance_and_regrid():
    h = allsky_header(size=64, scale_deg=0.5)
    near = h.copy()
    near["CRVAL1"] += 1e-9
    far = h.copy()
    far["CRVAL1"] += 1e-5
    other_proj = h.copy()
    other_proj["CTYPE1"], other_proj["CTYPE2"] = "RA---TAN", "DEC--TAN"
    assert same_grid(h, near) and grid_key(h) == grid_key(near)
    assert not same_grid(h, far) and not same_grid(h, other_proj)
    small = h.copy()
    small["NAXIS1"] = 32
    assert not same_grid(h, small)
    shifted = h.copy()
    shifted["CRPIX1"] += 3  # the same sky 3 pixels to the right
    plane = np.arange(64 * 64, dtype=float).reshape(64, 64)
    out = regrid_onto(plane, h, shifted)
    assert np.allclose(out[20:40, 23:43], plane[20:40, 20:40], atol=1e-6)
    assert np.isnan(out[32, 0:2]).all()


def test_the_real_wsclean_image(shared_data):
    info = image_info(shared_data / "ovro-lwa" / "wsclean_allsky_68MHz.fits")
    assert (info.stokes, info.kind, info.interval, info.labelled) == ("I", "deep", "deep", False)
    assert info.freq_mhz == pytest.approx(68.51, abs=0.01) and info.mjd_mid is not None
    assert info.beam_deg is not None and info.shape == (512, 512)


def test_plain_files_beside_pipeline_images_are_by_products_unless_named(tmp_path):
    """A folder of lwa-pipe images: WSClean's dirty/psf/residual there are not images; named, a plain one is."""
    ours = write(tmp_path / "f" / "55MHz-I-Deep-image.fits", plain_header(IMGCAT="deep", STOKES="I"))
    psf = write(tmp_path / "f" / "wsclean-psf.fits", plain_header())
    infos, skipped = scan_images([tmp_path / "f"])
    assert [i.path for i in infos] == [ours] and [p for p, _ in skipped] == [psf]
    infos, _ = scan_images([tmp_path / "f", psf])
    assert [i.path for i in infos] == [ours, psf]
    alone, _ = scan_images([tmp_path / "f" / "wsclean-psf.fits"])
    assert [i.path for i in alone] == [psf]


def _gaussian_psf(size: int, fwhm_maj_px: float, fwhm_min_px: float, pa_deg: float) -> np.ndarray:
    """A unit-peak elliptical Gaussian centred on the image, PA from +y (north) towards -x (east)."""
    yy, xx = np.mgrid[0:size, 0:size] - size // 2
    pa = np.radians(pa_deg)
    # major-axis unit vector: north (+y) rotated towards east (-x)
    u = -xx * np.sin(pa) + yy * np.cos(pa)
    v = xx * np.cos(pa) + yy * np.sin(pa)
    k = 2 * np.sqrt(2 * np.log(2))
    return np.exp(-0.5 * ((u / (fwhm_maj_px / k)) ** 2 + (v / (fwhm_min_px / k)) ** 2))[None, None]


@pytest.mark.parametrize("with_cards", [False, True])
def test_beam_from_wsclean_psf_when_the_image_has_none(tmp_path, with_cards):
    from lwa_common.images import image_info, psf_path

    header = allsky_header(size=64, scale_deg=0.25)
    for key in ("BMAJ", "BMIN", "BPA"):
        del header[key]
    fits.writeto(tmp_path / "x-image.fits", np.zeros((1, 1, 64, 64), np.float32), header)
    assert image_info(tmp_path / "x-image.fits").beam_deg is None  # no PSF: no beam, no guess
    psf_header = header.copy()
    if with_cards:
        psf_header["BMAJ"], psf_header["BMIN"], psf_header["BPA"] = 1.5, 1.0, 30.0
    fits.writeto(tmp_path / "x-psf.fits", _gaussian_psf(64, 6.0, 4.0, 30.0).astype(np.float32), psf_header)
    assert psf_path(tmp_path / "x-image-pbcorr.fits") == tmp_path / "x-psf.fits"
    info = image_info(tmp_path / "x-image.fits")
    bmaj, bmin, bpa = info.beam_deg
    assert bmaj == pytest.approx(1.5, rel=0.02) and bmin == pytest.approx(1.0, rel=0.02)  # 6 and 4 px of 0.25 deg
    assert bpa == pytest.approx(30.0, abs=1.0)
    assert info.header["BMAJ"] == pytest.approx(bmaj)  # tools reading the header see it too
