"""Science images and primary-beam correction on lwa-sim truth, with the real wsclean."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import mad_std
from astropy.time import Time

from lwa_common.fitsio import image_info
from lwa_common.provenance import read_stamp
from lwa_common.testing import fit_point_source, run_cli

SB = "55MHz"


def _source(truth, name):
    return next(s for s in truth["sources"] if s["name"] == name)


@pytest.mark.slow
def test_science_products_names_and_headers(science_run, main_sim, hour_ms):
    paths, _ = science_run
    _, truth = main_sim
    from casacore.tables import table

    with table(str(hour_ms), ack=False) as t:  # wsclean did not touch the input MS
        assert "MODEL_DATA" not in t.colnames()
    names = sorted(p.name for p in paths)
    assert len(paths) == 17
    assert f"{SB}-I-Deep-Taper-Robust-0.75-image.fits" in names
    assert f"{SB}-I-Taper-10min-t0006-image.fits" in names and f"{SB}-V-Taper-10min-t0001-image.fits" in names
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]  # scratch folders gone
    obs = truth["observation"]
    for p in paths:
        h = fits.getheader(p)
        info = image_info(p)
        assert h["CONFIG"] in p.name and h["SUBBAND"] == SB and h["PBCOR"] is False and h["DEWARPED"] is False
        assert h["FREQMHZ"] == pytest.approx(np.mean(obs["subbands"][0]["freqs_hz"]) / 1e6, abs=1e-3)
        assert h["TAPER"] == (30.0 if "-Taper-" in h["CONFIG"] else 0.0)
        assert h["ROBUST"] == (-0.75 if h["CONFIG"].endswith("-0.75") else 0.0)
        assert h["BMAJ"] > 0.1 and h["BMIN"] > 0.05  # wsclean's fitted restoring beam kept
        stamp = "".join(read_stamp(h, "lwa-image"))  # cards are cut at 72 characters
        assert "wsclean: wsclean -size" in stamp and "-name" in stamp and "hour.ms" in stamp
        assert info.stokes == h["CONFIG"][0]
        if "10min" in h["CONFIG"]:
            assert info.category == "10min" and h["NINTERVL"] == 6
            j = int(h["INTERVAL"][1:]) - 1
            assert abs((Time(h["DATE-OBS"]) - Time(obs["intervals"][j]["start"])).sec) < 0.01
            assert abs((Time(h["DATE-END"]) - Time(obs["intervals"][j]["end"])).sec) < 0.01
        else:
            assert info.category == "deep" and h["INTERVAL"] == "deep" and h["NINTERVL"] == 1
            assert abs((Time(h["DATE-OBS"]) - Time(obs["start"])).sec) < 0.01
            assert abs((Time(h["DATE-END"]) - Time(obs["end"])).sec) < 0.01
        mid = Time(h["DATE-OBS"]) + (Time(h["DATE-END"]) - Time(h["DATE-OBS"])) / 2
        assert h["MJD-MID"] == pytest.approx(mid.mjd, abs=1e-7)


@pytest.mark.slow
def test_science_sources_at_true_positions_and_fluxes(science_run, main_sim, measure):
    load, beam_fit = measure
    paths, _ = science_run
    _, truth = main_sim
    i_images = [p for p in paths if fits.getheader(p)["STOKES"] == "I"]
    assert len(i_images) == 10
    worst_pos, worst_flux = 0.0, 0.0
    for p in i_images:
        img, header, wcs = load(p)
        for name in ("A", "B", "C"):
            src = _source(truth, name)
            x, y = wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0]
            fit = fit_point_source(img, x, y)
            worst_pos = max(worst_pos, abs(fit["x"] - x), abs(fit["y"] - y))
            flux = beam_fit(img, header, x, y)["peak"]
            expected = src["flux_by_subband"][SB]["apparent_jy"]
            worst_flux = max(worst_flux, abs(flux / expected - 1))
    assert worst_pos <= 0.2, worst_pos
    assert worst_flux <= 0.05, worst_flux


@pytest.mark.slow
def test_v_images_show_injected_circular_polarisation_with_sign(science_run, main_sim, measure):
    load, beam_fit = measure
    paths, _ = science_run
    _, truth = main_sim
    v_images = [p for p in paths if fits.getheader(p)["STOKES"] == "V"]
    assert len(v_images) == 7
    for p in v_images:
        img, header, wcs = load(p)
        for name, sign in (("B", 1.0), ("C", -1.0)):
            src = _source(truth, name)
            x, y = wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0]
            fit = beam_fit(img, header, x, y, sign=sign)
            expected = src["v_frac"] * src["flux_by_subband"][SB]["apparent_jy"]
            assert np.sign(fit["peak"]) == np.sign(src["v_frac"]), (p.name, name)
            assert fit["peak"] == pytest.approx(expected, rel=0.1), (p.name, name, fit)
            assert abs(fit["x"] - x) < 0.3 and abs(fit["y"] - y) < 0.3
        a = _source(truth, "A")  # unpolarised: nothing in V
        x, y = wcs.all_world2pix([[a["apparent_ra_deg"], a["apparent_dec_deg"]]], 0)[0]
        assert abs(img[int(round(y)), int(round(x))]) < 0.02 * a["flux_by_subband"][SB]["apparent_jy"]


@pytest.mark.slow
def test_science_refuses_existing_outputs_then_overwrites(science_run, hour_ms, tmp_path):
    paths, _ = science_run
    out = paths[0].parent
    deep = out / f"{SB}-V-Taper-Deep-image.fits"
    before = deep.stat().st_mtime_ns
    res = run_cli(["lwa-image", "science", str(hour_ms), "-o", str(out), "--only", "V-Taper-Deep", "--size", "128",
                   "--scale-deg", "0.1"])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "output exists" in res.stderr and "--overwrite" in res.stderr
    assert deep.stat().st_mtime_ns == before
    assert not [p for p in out.iterdir() if p.name.startswith(".wsclean")]
    # a rerun with --overwrite into a copy of the folder: same product, one stamp, no duplicate history
    target = tmp_path / "rerun"
    target.mkdir()
    copy = target / deep.name
    copy.write_bytes(deep.read_bytes())
    time.sleep(0.01)
    args = ["lwa-image", "science", str(hour_ms), "-o", str(target), "--only", "V-Taper-Deep", "--size", "256",
            "--scale-deg", "0.07", "--overwrite"]
    res = run_cli(args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(copy)]
    h = fits.getheader(copy)
    stamp = read_stamp(h, "lwa-image")
    assert sum(line.startswith("cmd: ") for line in stamp) == 1
    assert sum(line.startswith("wsclean: ") for line in stamp) == 1
    assert "--overwrite" in "".join(stamp)
    assert np.allclose(fits.getdata(copy), fits.getdata(deep), atol=1e-3)
    assert sorted(p.name for p in target.iterdir()) == [deep.name]
    # the stamped wsclean command reruns as it stands (-name = output prefix, no scratch -temp-dir) and
    # writes the file the HISTORY names (wsclean's own, without our keywords: it replaces the product)
    text = "\n".join(stamp).replace("\n+", "")  # undo the card cuts
    command = next(line for line in text.splitlines() if line.startswith("wsclean: "))[len("wsclean: "):]
    assert f"wsclean product: {deep.name}" in text.splitlines()
    args = shlex.split(command)
    assert "-temp-dir" not in args and ".wsclean-" not in command
    assert args[args.index("-name") + 1] == str(target.resolve() / f"{SB}-V-Taper-Deep")
    ours = fits.getdata(copy)
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    assert "CONFIG" not in fits.getheader(copy)
    assert np.allclose(fits.getdata(copy), ours, atol=1e-4)


@pytest.mark.slow
def test_science_cli_bad_inputs_exit_1_one_line(hour_ms, tmp_path):
    res = run_cli(["lwa-image", "science", str(hour_ms), "-o", str(tmp_path / "o"), "--only", "I-Taper-10mn"])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "unknown configuration 'I-Taper-10mn'" in lines[0] and "I-Deep-Taper-Robust-0.75" in lines[0]
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.ms"
    bad.mkdir()
    (bad / "table.dat").write_bytes(b"not a table")
    res = run_cli(["lwa-image", "science", str(bad), "-o", str(tmp_path / "o2")])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "bad.ms" in res.stderr
    res = run_cli(["lwa-image", "science", str(hour_ms), "-o", str(tmp_path / "o3"), "--intervals-out", "13",
                   "--only", "V-Taper-10min"])
    assert res.returncode == 1 and "fewer than the 13 intervals" in res.stderr


@pytest.mark.slow
def test_pbcor_recovers_intrinsic_flux_low_in_the_beam(pb_sim, tmp_path, measure):
    """A source at ~40 deg elevation (beam ~0.48): concat phased on it, image, pbcor -> intrinsic flux."""
    load, beam_fit = measure
    out, truth = pb_sim
    src = truth["sources"][0]
    flux = src["flux_by_subband"][SB]
    assert 0.35 < flux["beam_mid"] < 0.6
    ms = tmp_path / "p.ms"
    centre = f"{src['ra_deg']} {src['dec_deg']}"
    assert run_cli(["lwa-image", "concat", *map(str, sorted(out.glob("*.ms"))), "-o", str(ms), "--centre",
                    centre]).returncode == 0
    res = run_cli(["lwa-image", "science", str(ms), "-o", str(tmp_path / "img"), "--only", "I-Deep-Taper-Robust-0",
                   "--size", "256", "--scale-deg", "0.07", "--niter-scale", "0.01"])
    assert res.returncode == 0, res.stderr
    image = tmp_path / "img" / f"{SB}-I-Deep-Taper-Robust-0-image.fits"
    res = run_cli(["lwa-image", "pbcor", str(image), "-o", str(tmp_path / "pb")])
    assert res.returncode == 0, res.stderr
    corrected = tmp_path / "pb" / f"{SB}-I-Deep-Taper-Robust-0-image-pbcorr.fits"
    assert res.stdout.split() == [str(corrected)]
    raw, header, wcs = load(image)
    pbc, pheader, _ = load(corrected)
    assert pheader["PBCOR"] is True and pheader["CONFIG"] == "I-Deep-Taper-Robust-0"
    history = "".join(str(c) for c in pheader["HISTORY"])
    assert "pbcor: beam" in history and "wsclean: wsclean" in history  # the imaging stamp is kept
    x, y = wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0]
    assert abs(beam_fit(raw, header, x, y)["peak"] / flux["apparent_jy"] - 1) < 0.05
    recovered = beam_fit(pbc, pheader, x, y)["peak"]
    assert recovered == pytest.approx(flux["intrinsic_jy"], rel=0.05)
    # the input image is untouched; a second run needs --overwrite
    assert fits.getheader(image)["PBCOR"] is False
    res = run_cli(["lwa-image", "pbcor", str(image), "-o", str(tmp_path / "pb")])
    assert res.returncode == 1 and "--overwrite" in res.stderr
    res = run_cli(["lwa-image", "pbcor", str(corrected)])
    assert res.returncode == 1 and "already primary-beam corrected" in res.stderr


@pytest.mark.slow
def test_python_overhead_is_small(science_run):
    """Not a speed goal (that is bench/bench_image.py), only a sanity check of the bookkeeping."""
    _, timings = science_run
    assert len(timings.commands) == 7
    assert 0 < timings.external_s <= timings.total_s
    assert os.path.basename(timings.commands[0].split()[0]) == "wsclean"
    assert json.dumps(timings.commands)


def _stamp_text(header) -> str:
    """lwa-image's stamp with the card cuts undone (continuation pieces start with '+')."""
    return "\n".join(read_stamp(header, "lwa-image")).replace("\n+", "")


@pytest.mark.slow
def test_10min_i_restored_with_the_deep_beam_so_steady_sources_cancel(science_run, main_sim, measure):
    """10-min I images carry the deep robust-0 I beam exactly; mean(10 min) - deep < 1 % at A, B, C.

    With each image's own fitted beam (before BEAMREF) this difference was 4.2-4.9 % of the flux.
    """
    load, _ = measure
    paths, _ = science_run
    _, truth = main_sim
    deep = next(p for p in paths if p.name == f"{SB}-I-Deep-Taper-Robust-0-image.fits")
    tens = [p for p in paths if fits.getheader(p)["CONFIG"] == "I-Taper-10min"]
    assert len(tens) == 6
    d, dh, wcs = load(deep)
    assert dh["BEAMREF"] == "fitted" and dh["BMAJ"] > 0.1
    for p in tens:
        h = fits.getheader(p)
        assert (h["BMAJ"], h["BMIN"], h["BPA"]) == (dh["BMAJ"], dh["BMIN"], dh["BPA"]), p.name
        assert h["BEAMREF"] == deep.name
        assert "-beam-shape" in _stamp_text(h)
    for p in paths:  # deep and V images keep wsclean's fit of their own PSF
        if fits.getheader(p)["CONFIG"] != "I-Taper-10min":
            assert fits.getheader(p)["BEAMREF"] == "fitted", p.name
    diff = np.mean([load(p)[0] for p in tens], axis=0) - d
    for name in ("A", "B", "C"):
        src = _source(truth, name)
        x, y = (int(round(v)) for v in wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0])
        worst = np.abs(diff[y - 3: y + 4, x - 3: x + 4]).max()
        assert worst < 0.01 * src["flux_by_subband"][SB]["apparent_jy"], (name, worst)


@pytest.mark.slow
def test_10min_i_reads_the_beam_of_an_existing_deep_image(science_run, hour_ms, tmp_path, caplog, grid):
    """--only I-Taper-10min: the deep robust-0 image already in the output folder gives the beam."""
    from lwa_image import run_science

    paths, _ = science_run
    deep = next(p for p in paths if p.name == f"{SB}-I-Deep-Taper-Robust-0-image.fits")
    (tmp_path / deep.name).write_bytes(deep.read_bytes())
    dh = fits.getheader(deep)
    with caplog.at_level("INFO"):
        made = run_science(hour_ms, tmp_path, imaging=grid(128, 0.07).imaging, only=["I-Taper-10min"], niter_scale=0.001)
    assert len(made) == 6 and not [r for r in caplog.records if r.levelname == "WARNING" and "beam" in r.message]
    for p in made:
        h = fits.getheader(p)
        assert (h["BMAJ"], h["BMIN"], h["BPA"], h["BEAMREF"]) == (dh["BMAJ"], dh["BMIN"], dh["BPA"], deep.name)
    assert (tmp_path / deep.name).read_bytes() == deep.read_bytes()  # the deep image was only read



def test_configurations_side_by_side_make_the_same_images(science_run, hour_ms, tmp_path, caplog, grid):
    """imaging.parallel_configurations > 1 runs several wsclean at once: the same images as one at a time.

    Side by side, the intervals of a 10-min configuration are separate wsclean runs (`-interval`)
    instead of one `-intervals-out` run: the same time steps, weights and CLEAN per interval.

    Each wsclean then has fewer threads, and w-stacking's CLEAN is not bit-identical across thread
    counts: the images must agree to a small part of their noise and in their peaks.
    """
    from lwa_image import run_science

    paths, _ = science_run
    header = fits.getheader(paths[0])  # the fixture's grid
    cfg = grid(header["NAXIS1"], abs(header["CDELT2"]), parallel_configurations=3)
    with caplog.at_level("INFO", logger="lwa_image.science"):
        again = run_science(hour_ms, tmp_path, imaging=cfg.imaging, niter_scale=0.01)
    assert "3 wsclean run(s) at a time" in caplog.text
    assert "17 run(s)" in caplog.text  # side by side, each 10-min interval is its own wsclean run (-interval)
    assert [p.name for p in again] == [p.name for p in paths]  # same products, same order
    for one, other in zip(paths, again):
        a, b = (fits.getdata(p).astype(float) for p in (one, other))
        good = np.isfinite(a) & np.isfinite(b)
        assert np.std(a[good] - b[good]) < 0.5 * mad_std(a[good]), one.name
        assert abs(np.max(a[good]) - np.max(b[good])) < 0.01 * np.max(np.abs(a[good])), one.name
        assert fits.getheader(one)["BEAMREF"] == fits.getheader(other)["BEAMREF"]


def test_pixels_below_the_horizon_mask_are_nan(hour_ms, tmp_path, grid):
    """imaging.blank_below_horizon: below the horizon mask (10 deg elevation from the phase centre)
    every science pixel is NaN and HORIZON says so; above it every pixel is data (an all-sky grid:
    128 px of 1 deg), also in a cleaned image whose CLEAN is kept higher (clean_horizon_deg 20)."""
    from lwa_image import run_science

    cfg = grid(128, 1.0, blank_below_horizon=True, clean_horizon_deg=20.0)
    horizon = cfg.imaging.horizon_mask_deg
    paths = run_science(hour_ms, tmp_path, imaging=cfg.imaging, only=["V-Taper-Deep", "I-Deep-Taper-Robust-0"],
                        niter_scale=0.001)
    assert len(paths) == 2
    for path in paths:
        header = fits.getheader(path)
        data = fits.getdata(path)[0, 0]
        assert header["HORIZON"] == horizon
        ny, nx = data.shape
        y, x = np.mgrid[:ny, :nx]
        step = np.radians(abs(header["CDELT2"]))  # SIN: pixel offsets are direction cosines
        r = np.hypot((x + 1 - header["CRPIX1"]) * step, (y + 1 - header["CRPIX2"]) * step)
        edge = np.cos(np.radians(horizon))
        below, above = r > edge + 2 * step, r < edge - 2 * step
        assert below.sum() > 1000 and above.sum() > 1000
        assert np.isnan(data[below]).all(), path.name
        assert np.isfinite(data[above]).all(), path.name
