"""Fast tests on arrays and synthetic images: no wsclean."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from lwa_common.beam import load_beam, radec_to_azel
from lwa_common.config import Config
from lwa_common.errors import LwaError
from lwa_common.ms import MsInfo, interval_bounds
from lwa_common.phasing import C_M_S, lst_hour_centre, parse_centre, rephase_visibilities, uvw_frame
from lwa_common.testing import allsky_header, run_cli, synthetic_image
from lwa_image.movie import choose_frames
from lwa_image.pbcor import pbcor_image, pbcor_name
from lwa_image.science import (
    RestoringBeam,
    beam_reference,
    read_restoring_beam,
    select_configurations,
    wsclean_science_args,
)


def test_interval_bounds_follow_wsclean_split():
    assert interval_bounds(12, 6) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12)]
    # wsclean: interval i holds steps N*i//K .. N*(i+1)//K - 1
    assert interval_bounds(10, 6) == [(0, 1), (1, 3), (3, 5), (5, 6), (6, 8), (8, 10)]
    assert interval_bounds(360, 6)[-1] == (300, 360)
    with pytest.raises(LwaError, match="fewer than the 6 intervals"):
        interval_bounds(5, 6)


def test_interval_keywords_equal_each_ranges_keywords():
    """MsInfo.interval_keywords (arrays in one go) gives exactly TimeRange.keywords of each interval."""
    times = 5.2e9 + 0.3 + np.arange(37) * 10.031  # an awkward start and step (MJD seconds)
    info = MsInfo(path=Path("x.ms"), times_s=times, exposure_s=np.full(37, 10.031), freqs_hz=np.array([5.5e7]),
                  columns=())
    for count in (37, 6, 1):
        assert info.interval_keywords(count) == [r.keywords() for r in info.intervals(count)]
    assert isinstance(info.interval_keywords(2)[0]["DATE-OBS"], str)


def _vis(uvw: np.ndarray, centre: tuple[float, float], src: tuple[float, float], freqs: np.ndarray) -> np.ndarray:
    """MS-on-disk convention (what wsclean images): V = S exp(+2 pi i (ul + vm + w (n - 1)))."""
    s = np.array([np.cos(src[1]) * np.cos(src[0]), np.cos(src[1]) * np.sin(src[0]), np.sin(src[1])])
    lmn = uvw_frame(*centre) @ s
    phase = uvw @ lmn - uvw[:, 2]
    return np.exp(2j * np.pi * phase[:, None] * freqs[None, :] / C_M_S)


def test_rephase_matches_direct_model_and_round_trips():
    rng = np.random.default_rng(3)
    b = rng.normal(scale=800.0, size=(500, 3))  # baselines (m), equatorial frame
    freqs = np.array([50e6, 60e6, 70e6])
    p0 = (np.radians(151.0), np.radians(37.4))
    p1 = (np.radians(157.5), np.radians(37.24))
    src = (np.radians(148.0), np.radians(40.0))
    uvw0 = b @ uvw_frame(*p0).T
    data = np.repeat(_vis(uvw0, p0, src, freqs)[:, :, None], 4, axis=2).astype(np.complex64)
    original = data.copy()
    uvw1 = rephase_visibilities(uvw0, [data], freqs, p0, p1)
    assert uvw1 == pytest.approx(b @ uvw_frame(*p1).T, abs=1e-6)
    expected = _vis(uvw1, p1, src, freqs)
    assert np.abs(data[:, :, 0] - expected).max() < 1e-4
    assert np.abs(data[:, :, 3] - expected).max() < 1e-4
    back = rephase_visibilities(uvw1, [data], freqs, p1, p0)
    assert back == pytest.approx(uvw0, abs=1e-6)
    assert np.abs(data - original).max() < 1e-4


def test_parse_centre_and_lst_hour():
    c = parse_centre("10h30m00s +37d12m57s")
    assert c.ra.deg == pytest.approx(157.5) and c.dec.deg == pytest.approx(37.2158333, abs=1e-6)
    assert parse_centre("10:30:00 37:12:57").ra.deg == pytest.approx(157.5)
    assert parse_centre("157.5 -20.5").dec.deg == pytest.approx(-20.5)
    for bad in ("nonsense", "10h30m", "157.5 95"):
        with pytest.raises(LwaError):
            parse_centre(bad)
    c = lst_hour_centre(10.0)
    assert c.ra.deg == pytest.approx(157.5) and c.dec.deg == pytest.approx(Config().site.lat_deg)


def test_configurations_and_wsclean_arguments():
    imaging = Config().imaging
    confs = select_configurations(imaging, None)
    assert len(confs) == 7
    n_images = sum(imaging.intervals_out if c.span == "10min" else 1 for c in confs)
    assert n_images == 17  # 5 deep + 2 x 6 intervals (the issue says 19; the table gives 17)
    with pytest.raises(LwaError, match=r"typo\? did you mean 'I-Taper-10min'.*valid: I-Deep-Taper-Robust-0.75"):
        select_configurations(imaging, ["I-Taper-10mn"])
    by_name = {c.name: c for c in confs}
    args = wsclean_science_args(by_name["I-Taper-10min"], imaging, size=4096, scale_deg=0.03125, niter=50000,
                                intervals_out=6, data_column="CORRECTED_DATA")
    text = " ".join(args)
    clean_mask = f"-horizon-mask {max(imaging.clean_horizon_deg, imaging.horizon_mask_deg):g}deg"
    for part in ("-size 4096 4096", "-scale 0.03125deg", "-weight briggs 0", "-pol I", clean_mask,
                 "-taper-inner-tukey 30", "-intervals-out 6", "-niter 50000", "-multiscale-scale-bias 0.8",
                 "-auto-threshold 0.5", "-auto-mask 3", "-data-column CORRECTED_DATA"):
        assert part in text, part
    # -local-rms only when asked for (imaging.local_rms), and then with wsclean 3.1's slow multiscale loop
    assert ("-local-rms" in text) == imaging.local_rms
    assert ("-no-multiscale-fast-subminor" in text) == imaging.local_rms
    text = " ".join(wsclean_science_args(by_name["I-Taper-10min"], replace(imaging, local_rms=not imaging.local_rms),
                                         size=512, scale_deg=0.25, niter=50, intervals_out=6, data_column="DATA"))
    assert ("-local-rms" in text) == (not imaging.local_rms)
    assert ("-no-multiscale-fast-subminor" in text) == (not imaging.local_rms)
    text = " ".join(wsclean_science_args(by_name["V-Taper-Deep"], imaging, size=4096, scale_deg=0.03125, niter=0,
                                         intervals_out=6, data_column="DATA"))
    assert "-pol V" in text and "-niter 0" in text and "-multiscale" not in text and "-intervals-out" not in text
    assert f"-horizon-mask {imaging.horizon_mask_deg:g}deg" in text  # dirty: the horizon mask itself
    text = " ".join(wsclean_science_args(by_name["I-Deep-NoTaper-Robust-0.75"], imaging, size=512,
                                         scale_deg=0.25, niter=150000, intervals_out=6, data_column="DATA"))
    assert "-taper-inner-tukey" not in text and "-weight briggs -0.75" in text


def test_clean_is_kept_above_clean_horizon_deg():
    """imaging.clean_horizon_deg is the -horizon-mask of a cleaned configuration only, never below
    horizon_mask_deg (0: that one); a dirty configuration keeps horizon_mask_deg."""
    from lwa_image.science import clean_horizon_deg

    imaging = Config().imaging
    by_name = {c.name: c for c in imaging.configurations}
    for clean, expected in ((0.0, 10.0), (5.0, 10.0), (15.0, 15.0)):
        im = replace(imaging, horizon_mask_deg=10.0, clean_horizon_deg=clean)
        assert clean_horizon_deg(im) == expected
        cleaned = " ".join(wsclean_science_args(by_name["I-Deep-Taper-Robust-0"], im, size=512, scale_deg=0.25,
                                                niter=100, intervals_out=6, data_column="DATA"))
        dirty = " ".join(wsclean_science_args(by_name["V-Taper-Deep"], im, size=512, scale_deg=0.25, niter=0,
                                              intervals_out=6, data_column="DATA"))
        assert f"-horizon-mask {expected:g}deg" in cleaned and "-horizon-mask 10deg" in dirty


def test_pbcor_divides_by_the_beam_and_blanks_the_horizon(tmp_path):
    header = allsky_header(size=128, scale_deg=1.0, ra_deg=151.0, dec_deg=37.24, freq_mhz=57.0,
                           keywords={"MJD-MID": 60664.5007, "STOKES": "I", "PBCOR": False})
    data = synthetic_image(header, [(151.0, 37.24, 100.0), (120.0, 20.0, 50.0)], noise=1.0) + 5.0
    src = tmp_path / "x-image.fits"
    fits.PrimaryHDU(data=data, header=header).writeto(src)
    out = pbcor_image(src)
    assert out == pbcor_name(src) == tmp_path / "x-image-pbcorr.fits"
    with fits.open(out) as h:
        corrected, hdr = h[0].data[0, 0], h[0].header
    assert hdr["PBCOR"] is True and any("pbcor" in str(c) for c in hdr["HISTORY"])
    w = WCS(header).celestial
    yy, xx = np.mgrid[0:128, 0:128]
    ra, dec = w.all_pix2world(xx, yy, 0)
    on_sky = np.isfinite(ra)
    az, el = radec_to_azel(np.where(on_sky, ra, 0.0), np.where(on_sky, dec, 0.0),
                           time=Time(60664.5007, format="mjd", scale="utc"))
    beam = load_beam().stokes_i(57e6, az, el)
    good = on_sky & (el > 10.5) & (beam > 0.06)
    low = on_sky & (el < 9.5)
    assert good.sum() > 3000 and low.sum() > 200
    assert np.all(np.isnan(corrected[low]))
    assert np.all(np.isfinite(corrected[good]))
    ratio = corrected[good] / data[0, 0][good]
    assert np.median(np.abs(ratio * beam[good] - 1)) < 0.01
    with pytest.raises(LwaError, match="already primary-beam corrected"):
        pbcor_image(out, tmp_path / "again.fits")
    with pytest.raises(LwaError, match="output exists"):
        pbcor_image(src)


def test_pbcor_agrees_with_the_beam_evaluated_at_every_pixel(tmp_path):
    """The interpolated beam (lwa_common.beam) changes pbcor's output by < 1e-3 (relative) from the
    previous per-pixel evaluation, with the same blanked pixels; 1024^2 over the 128 deg field."""
    from lwa_common import beam as beam_mod

    header = allsky_header(size=1024, scale_deg=0.125, ra_deg=151.0, dec_deg=37.24, freq_mhz=57.0,
                           keywords={"MJD-MID": 60664.5007, "STOKES": "V", "PBCOR": False})
    data = np.random.default_rng(4).normal(2.0, 1.0, (1, 1, 1024, 1024)).astype(np.float32)
    src = tmp_path / "x-image.fits"
    fits.PrimaryHDU(data=data, header=header).writeto(src)
    with fits.open(pbcor_image(src)) as h:
        corrected = h[0].data[0, 0]
    _, full = beam_mod._image_wcs(header)
    time = Time(60664.5007, format="mjd", scale="utc")
    exact = beam_mod._PixelBeam(full.celestial, beam_mod._icrs_to_enu(time, None), load_beam(), 57e6)
    previous = data[0, 0] / beam_mod._exact_beam(exact, (1024, 1024), beam_mod._Cuts(10.0, 0.05))
    np.testing.assert_array_equal(np.isnan(corrected), np.isnan(previous))
    assert 0.4 < np.isfinite(corrected).mean() < 0.7
    assert np.nanmax(np.abs(corrected / previous - 1.0)) < 1e-3


def test_choose_frames_subsamples_evenly():
    assert list(choose_frames(12, 150)) == list(range(12))
    idx = choose_frames(360, 150)
    assert len(idx) == 150 and idx[0] == 0 and idx[-1] == 359
    assert np.ptp(np.diff(idx)) <= 1
    with pytest.raises(LwaError):
        choose_frames(5, 0)


@pytest.mark.parametrize("command", ["concat", "rephase", "snapshots", "science", "pbcor", "movie"])
def test_every_command_has_an_example(command):
    res = run_cli(["lwa-image", command, "--help"])
    assert res.returncode == 0, res.stderr
    assert "Example:" in res.stdout and f"lwa-image {command}" in res.stdout


def test_usage_errors_exit_2(tmp_path):
    res = run_cli(["lwa-image", "concat", "-o", str(tmp_path / "x.ms")])  # empty MS list
    assert res.returncode == 2 and "Missing argument" in res.stderr
    res = run_cli(["lwa-image", "science", str(tmp_path / "missing.ms"), "-o", str(tmp_path / "o")])
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_cli(["lwa-image", "pbcor"])
    assert res.returncode == 2


def test_beam_reference_order_and_fallbacks(tmp_path, caplog):
    """I-Taper-10min is restored with the I-Deep-Taper-Robust-0 beam; that deep image runs first."""
    from lwa_common.ms import MsInfo
    from lwa_image.science import _order_references_first, _restoring_beam

    imaging = Config().imaging
    by = {c.name: c for c in imaging.configurations}
    assert beam_reference(by["I-Taper-10min"], imaging) is by["I-Deep-Taper-Robust-0"]
    assert beam_reference(by["V-Taper-10min"], imaging) is None  # dirty: keeps its own fit
    assert beam_reference(by["I-Deep-Taper-Robust-0"], imaging) is None
    confs = select_configurations(imaging, ["V-Taper-10min", "I-Taper-10min", "I-Deep-Taper-Robust-0"])
    assert [c.name for c in _order_references_first(confs, imaging)] == [
        "I-Deep-Taper-Robust-0", "V-Taper-10min", "I-Taper-10min"]
    beam = RestoringBeam(922.0 / 3600, 0.2, 70.25, "x.fits")
    assert beam.wsclean_args() == ["-beam-shape", "922.0asec", "720.0asec", "70.25deg"]
    # the beam read back from an image; unusable images are refused (warning)
    path = tmp_path / "55MHz-I-Deep-Taper-Robust-0-image.fits"
    header = fits.Header({"CONFIG": "I-Deep-Taper-Robust-0", "BMAJ": 0.256, "BMIN": 0.25, "BPA": -12.5})
    fits.writeto(path, np.zeros((4, 4), np.float32), header)
    assert read_restoring_beam(path, config="I-Deep-Taper-Robust-0") == RestoringBeam(0.256, 0.25, -12.5, path.name)
    assert read_restoring_beam(path, config="I-Deep-NoTaper-Robust-0") is None
    fits.writeto(tmp_path / "zero.fits", np.zeros((4, 4), np.float32), fits.Header({"BMAJ": 0.0, "BMIN": 0.0,
                                                                                    "BPA": 0.0}))
    assert read_restoring_beam(tmp_path / "zero.fits") is None
    # neither run now nor in the output folder: wsclean's fitted beam (None) and a warning
    info = MsInfo(path=tmp_path / "x.ms", times_s=np.array([0.0]), exposure_s=np.array([10.0]),
                   freqs_hz=np.array([55e6]), subband="55MHz", columns=("DATA",))
    caplog.clear()
    assert _restoring_beam(by["I-Taper-10min"], imaging, {}, tmp_path / "empty", info) is None
    assert any(r.levelname == "WARNING" and "fitted restoring beam" in r.message for r in caplog.records)
    assert _restoring_beam(by["V-Taper-10min"], imaging, {}, tmp_path / "empty", info) is None


def test_gridder_threads_and_memory_follow_the_config_and_the_slurm_job():
    from lwa_image._wsclean import gridder_args

    imaging = Config().imaging
    assert gridder_args(imaging, {}) == ["-use-wgridder"]  # the default
    assert gridder_args(replace(imaging, gridder="wstack"), {}) == []  # wsclean's own w-stacking
    assert gridder_args(replace(imaging, threads=3), {}) == ["-use-wgridder", "-j", "3"]
    # in a Slurm job wsclean sees the whole node: threads and memory come from the job's request
    args = gridder_args(imaging, {"SLURM_CPUS_PER_TASK": "8", "SLURM_MEM_PER_NODE": "20480"})
    assert args == ["-use-wgridder", "-j", "8", "-abs-mem", f"{20 * imaging.slurm_mem_fraction:.1f}"]
    shared = gridder_args(imaging, {"SLURM_MEM_PER_NODE": "20480"}, share=4)  # four configurations at once
    assert shared[-1] == f"{20 * imaging.slurm_mem_fraction / 4:.1f}"
    with pytest.raises(LwaError, match="imaging.gridder must be one of wgridder, wstack"):
        gridder_args(replace(imaging, gridder="idg"), {})
