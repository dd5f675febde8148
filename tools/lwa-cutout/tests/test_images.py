"""Image selection by header: preference order, fallback folder, sets per subband and hour."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.errors import LwaError
from lwa_cutout.images import find_sets, read_record, scan_images


def _img(allsky, name, **kw):
    return allsky(name, [], size=32, noise=0.01, **kw)


def test_preference_dewarped_pbcor_then_pbcor_then_fallback(allsky, tmp_path, caplog):
    images = tmp_path / "images"
    fallback = tmp_path / "fallback"
    _img(allsky, "images/a_pbcor.fits", keywords={"PBCOR": True, "DEWARPED": False})
    best = _img(allsky, "images/b_dewarped_pbcor.fits", keywords={"PBCOR": True, "DEWARPED": True})
    _img(allsky, "images/c_raw.fits", keywords={"PBCOR": False, "DEWARPED": True})
    _img(allsky, "fallback/d.fits", keywords={"PBCOR": True, "DEWARPED": True})
    # deep V only in the fallback folder and as a raw image in --images: the fallback wins
    fb_v = _img(allsky, "fallback/v.fits", stokes="V", keywords={"PBCOR": False})
    _img(allsky, "images/v_raw.fits", stokes="V", keywords={"PBCOR": False})
    # a 10 min V only as a raw image in --images: used, with a warning
    raw_t = _img(allsky, "images/t3_v_raw.fits", stokes="V", category="10min", interval="t0003", minutes=10,
                 date_obs="2024-12-20T12:20:00", keywords={"PBCOR": False})
    with caplog.at_level(logging.WARNING, logger="lwa_cutout.images"):
        (image_set,) = find_sets([images], fallback_dirs=[fallback])
    assert image_set.deep_i.path == best
    assert image_set.deep_v.path == fb_v
    assert image_set.ten_v["t0003"].path == raw_t
    assert any("not primary-beam corrected" in r.message and "t3_v_raw" in r.message for r in caplog.records)
    assert image_set.subband == "55MHz" and image_set.intervals == [f"t{k:04d}" for k in range(1, 7)]
    assert image_set.label == "55MHz-20241220T120000"


def test_deep_i_matches_the_10min_weighting(allsky, tmp_path):
    _img(allsky, "i/deep_r075_taper.fits", keywords={"ROBUST": -0.75, "TAPER": 30.0, "DEWARPED": True})
    match = _img(allsky, "i/deep_r0_notaper.fits", keywords={"ROBUST": 0.0, "TAPER": 0.0})
    _img(allsky, "i/deep_r0_taper.fits", keywords={"ROBUST": 0.0, "TAPER": 30.0, "DEWARPED": True})
    for k in (1, 2):
        _img(allsky, f"i/ten{k}.fits", category="10min", interval=f"t000{k}", minutes=10,
             date_obs=f"2024-12-20T12:{10 * (k - 1):02d}:00", keywords={"ROBUST": 0.0, "TAPER": 0.0})
    (image_set,) = find_sets([tmp_path / "i"])
    assert image_set.deep_i.path == match
    assert sorted(image_set.ten_i) == ["t0001", "t0002"]


def test_sets_per_subband_and_hour(allsky, tmp_path):
    for hour in ("12", "13"):
        for mhz in (56.0, 74.0):
            _img(allsky, f"s/{hour}_{mhz:.0f}_deep.fits", date_obs=f"2024-12-20T{hour}:00:00", freq_mhz=mhz)
            _img(allsky, f"s/{hour}_{mhz:.0f}_t2.fits", category="10min", interval="t0002", minutes=10,
                 date_obs=f"2024-12-20T{hour}:10:00", freq_mhz=mhz)
    sets = find_sets([tmp_path / "s"])
    assert [(s.subband, s.time_tag) for s in sets] == [
        ("55MHz", "20241220T120000"), ("55MHz", "20241220T130000"),
        ("73MHz", "20241220T120000"), ("73MHz", "20241220T130000"),
    ]
    for s in sets:
        assert s.ten_i["t0002"].path.name.startswith(s.time_tag[9:11])
        assert s.deep_i.path.name.startswith(s.time_tag[9:11])


def test_ignores_cutouts_other_categories_and_foreign_fits(allsky, tmp_path):
    _img(allsky, "m/deep.fits")
    _img(allsky, "m/cutout.fits", keywords={"CUTOUT": "T5"})
    _img(allsky, "m/snap.fits", category="snapshot")
    _img(allsky, "m/diff.fits", category="diff")
    fits.writeto(tmp_path / "m" / "plain.fits", np.ones((2, 2)))
    (tmp_path / "m" / "broken.fits").write_text("not fits")
    records = scan_images([tmp_path / "m"])
    assert [r.path.name for r in records] == ["deep.fits"]


def test_10min_without_interval_is_skipped(allsky, tmp_path, caplog):
    path = _img(allsky, "x/t.fits", category="10min", interval="")
    with caplog.at_level(logging.WARNING):
        assert read_record(path) is None
    assert "INTERVAL" in caplog.text


def test_no_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LwaError, match="no usable images"):
        find_sets([tmp_path / "empty"])


def test_only_10min_images_make_a_set_without_deep(allsky, tmp_path):
    for k in (1, 2, 3):
        _img(allsky, f"o/t{k}.fits", category="10min", interval=f"t000{k}", minutes=10,
             date_obs=f"2024-12-20T12:{10 * (k - 1):02d}:00")
    (image_set,) = find_sets([tmp_path / "o"])
    assert image_set.deep_i is None and sorted(image_set.ten_i) == ["t0001", "t0002", "t0003"]


def test_wideband_stacks_are_measured_like_deep_and_10min_images(allsky, tmp_path):
    """lwa-stack's stacks (IMGCAT stack, SUBBAND = band) are deep or 10-min by their INTERVAL."""
    _img(allsky, "w/deep.fits", category="stack", keywords={"SUBBAND": "Green"})
    _img(allsky, "w/t2.fits", category="stack", interval="t0002", keywords={"SUBBAND": "Green"})
    records = {r.path.name: r for r in scan_images([tmp_path / "w"])}
    assert (records["deep.fits"].category, records["deep.fits"].interval) == ("deep", "deep")
    assert (records["t2.fits"].category, records["t2.fits"].interval) == ("10min", "t0002")
    assert {r.subband for r in records.values()} == {"Green"}


def test_cutout_header_is_the_parents_with_crpix_moved(allsky):
    """make_cutout builds the parent's cutout header once per image and moves CRPIX per target: the
    same cards as rebuilding it from the cutout's own WCS (also for a cutout over the image edge)."""
    from astropy.wcs import WCS

    from lwa_common.fitsio import celestial_wcs
    from lwa_cutout.cutouts import cutout_header, make_cutout

    path = allsky("deep.fits", [], size=256, noise=0.01, keywords={"PBCOR": True})
    header = fits.getheader(path)
    header.add_history("an earlier step")
    wcs = celestial_wcs(header)
    plane = fits.getdata(path)[0, 0]
    centre = wcs.pixel_to_world_values(128, 128)
    edge = wcs.pixel_to_world_values(20, 128)  # the 20 deg cutout reaches over the image edge
    for ra, dec in (centre, edge, (centre[0] + 5.0, centre[1] - 3.0)):
        cut = make_cutout(plane, header, wcs, float(ra), float(dec), size_deg=20.0)
        full = cutout_header(header, cut.wcs)
        assert list(cut.header.keys()) == list(full.keys())
        for key in ("CRPIX1", "CRPIX2"):
            assert cut.header[key] == pytest.approx(full[key], abs=1e-9)
        assert [str(c) for c in cut.header.cards if not c.keyword.startswith("CRPIX")] == \
               [str(c) for c in full.cards if not c.keyword.startswith("CRPIX")]
        w = WCS(cut.header)
        np.testing.assert_allclose(w.pixel_to_world_values(0, 0), cut.wcs.pixel_to_world_values(0, 0), atol=1e-9)
