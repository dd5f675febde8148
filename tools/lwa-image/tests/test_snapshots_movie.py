"""Pilot snapshots (dirty I and V per integration) and their movies, with wsclean and ffmpeg."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from lwa_common.errors import LwaError
from lwa_common.naming import parse_ms_name
from lwa_common.testing import run_cli
from lwa_image import make_movies, run_snapshots

SB = "55MHz"


@pytest.mark.slow
def test_snapshots_one_i_and_v_per_integration_with_its_time(snapshot_run, main_ms_list, main_sim, measure):
    load, _ = measure
    _, truth = main_sim
    assert len(snapshot_run) == 24
    by_key = {(fits.getheader(p)["STOKES"], fits.getheader(p)["INTERVAL"]): p for p in snapshot_run}
    assert set(by_key) == {(s, f"t{i:04d}") for s in "IV" for i in range(1, 13)}
    dt = truth["observation"]["integration_s"]
    for i, ms in enumerate(main_ms_list, start=1):
        start = Time(truth["observation"]["start"]) + (i - 1) * dt * u.s
        assert abs((start - parse_ms_name(ms.name).time).sec) < 1.0
        for stokes in "IV":
            p = by_key[(stokes, f"t{i:04d}")]
            h = fits.getheader(p)
            assert p.name == f"{SB}-{stokes}-Snapshot-t{i:04d}-image.fits"
            assert h["IMGCAT"] == "snapshot" and h["NINTERVL"] == 12 and h["CONFIG"] == f"{stokes}-Snapshot"
            assert abs((Time(h["DATE-OBS"]) - start).sec) < 0.01
            assert abs((Time(h["DATE-END"]) - start).sec - dt) < 0.01
            assert "wsclean" in "".join(str(c) for c in h["HISTORY"])
    # every V snapshot shows B positive and C negative at about v_frac x apparent flux (dirty, one 10 s)
    for i in (1, 7, 12):
        img_v, _, wcs = load(by_key[("V", f"t{i:04d}")])
        img_i, _, _ = load(by_key[("I", f"t{i:04d}")])
        for name in ("B", "C"):
            src = next(s for s in truth["sources"] if s["name"] == name)
            x, y = wcs.all_world2pix([[src["apparent_ra_deg"], src["apparent_dec_deg"]]], 0)[0]
            xi, yi = int(round(x)), int(round(y))
            ratio = img_v[yi, xi] / img_i[yi, xi]
            assert ratio == pytest.approx(src["v_frac"], abs=0.05), (i, name, ratio)


@pytest.mark.slow
def test_snapshots_refuse_existing_outputs(snapshot_run, hour_ms, grid):
    out = snapshot_run[0].parent
    with pytest.raises(LwaError, match="output exists"):
        run_snapshots(hour_ms, out, settings=grid(64, 10 / 60).snapshot_qa, imaging=grid(64, 10 / 60).imaging)


@pytest.mark.slow
def test_movies_have_one_frame_per_snapshot_at_10_fps(snapshot_run, tmp_path):
    import ffmpeg

    res = run_cli(["lwa-image", "movie", str(snapshot_run[0].parent), "-o", str(tmp_path / "qa"), "-v"])
    assert res.returncode == 0, res.stderr
    movies = [tmp_path / "qa" / f"{SB}-snapshots-{k}.mp4" for k in ("I-raw", "I-medsub", "V-raw")]
    assert res.stdout.split() == [str(m) for m in movies]
    assert "running: ffmpeg -f rawvideo" in res.stderr  # the exact command, logged at INFO
    for m in movies:
        stream = ffmpeg.probe(str(m), count_frames=None)["streams"][0]
        assert int(stream["nb_frames"]) == 12, m.name
        assert stream["codec_name"] == "h264"
        assert eval(stream["avg_frame_rate"]) == pytest.approx(10.0)  # noqa: S307 ("10/1")
        assert int(stream["width"]) == 256 and int(stream["height"]) == 256
    # subsampled: at most --max-frames frames, evenly spread
    paths = make_movies(snapshot_run, tmp_path / "sub", max_frames=5, max_size_px=100)
    for m in paths:
        stream = ffmpeg.probe(str(m))["streams"][0]
        assert int(stream["nb_frames"]) == 5 and int(stream["width"]) == 86  # 256 / 3 -> 85, padded even
    with pytest.raises(LwaError, match="output exists"):
        make_movies(snapshot_run, tmp_path / "sub")


@pytest.mark.slow
def test_movie_frames_show_the_sky(snapshot_run, tmp_path):
    """The decoded raw-V frame is bright at B, dark at C: the stretch keeps the sign."""
    import ffmpeg

    from lwa_common.fitsio import celestial_wcs

    paths = make_movies([p for p in snapshot_run if "V-Snapshot-t0001" in p.name], tmp_path)
    assert [p.name for p in paths] == [f"{SB}-snapshots-V-raw.mp4"]
    out, _ = (ffmpeg.input(str(paths[0])).output("pipe:", format="rawvideo", pix_fmt="gray", vframes=1)
              .run(capture_stdout=True, quiet=True))
    frame = np.frombuffer(out, np.uint8).reshape(256, 256)[::-1]  # back to FITS row order
    header = fits.getheader([p for p in snapshot_run if "V-Snapshot-t0001" in p.name][0])
    w = celestial_wcs(header)
    # B (10h20m +34d, V > 0) is bright, C (9h48m +33d, V < 0) dark, the median sky mid-grey
    xb, yb = (int(round(v)) for v in w.all_world2pix([[155.0, 34.0]], 0)[0])
    xc, yc = (int(round(v)) for v in w.all_world2pix([[147.0, 33.0]], 0)[0])
    assert frame[yb, xb] > 200 and frame[yc, xc] < 60
    assert 100 < np.median(frame) < 155


def test_movie_without_snapshots_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli(["lwa-image", "movie", str(tmp_path / "empty"), "-o", str(tmp_path / "qa")])
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "no snapshot images" in lines[0]
