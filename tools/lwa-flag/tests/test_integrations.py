"""Bad integrations from synthetic pilot Stokes V snapshots, flagged in simulated MS."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from casacore.tables import table

from lwa_common.config import SnapshotQA
from lwa_common.testing import allsky_header, run_cli, synthetic_image
from lwa_flag import concat_ms, find_bad_integrations
from lwa_flag.integrations import Frame

BAD = {2: 3.0, 6: 0.3}  # frame index -> noise factor (one noisy integration, one nearly empty)


def _ms_times(files) -> list[float]:
    out = []
    for ms in files:
        with table(str(ms), ack=False) as t:
            out.append(float(t.getcol("TIME")[0]))
    return out


def _snapshots(folder, times_s, *, ours: bool) -> list:
    """One Stokes V snapshot per integration; noise drifts slowly, BAD frames are off."""
    rng = np.random.default_rng(7)
    paths = []
    for k, t in enumerate(times_s):
        mid = Time(t / 86400.0, format="mjd", scale="utc")
        if ours:  # written by lwa-pipe: IMGCAT, STOKES, MJD-MID
            keywords = {"STOKES": "V", "IMGCAT": "snapshot", "MJD-MID": mid.mjd,
                        "DATE-OBS": (mid - 5.0155 / 86400).isot}
            date_obs = keywords["DATE-OBS"]
        else:  # a bare wsclean image: DATE-OBS is the centre of the time step, to 0.1 s; STOKES axis = V
            keywords = {}
            date_obs = mid.isot[:21]
        header = allsky_header(size=96, scale_deg=2.0, date_obs=date_obs, keywords=keywords)
        if not ours:
            header["CRVAL4"] = 4
        noise = 0.8 * (1 + 0.02 * k) * (1 + 0.01 * rng.standard_normal()) * BAD.get(k, 1.0)
        data = synthetic_image(header, [], noise=noise, seed=k)
        path = folder / f"snap-{k:04d}-V-image.fits"
        fits.writeto(path, data, header)
        paths.append(path)
    return paths


def test_per_integration_ms_list(small_sim, tmp_path, digest, flags_of):
    files, _ = small_sim
    times = _ms_times(files)
    snaps = _snapshots(tmp_path, times, ours=True)
    digests = [digest(f) for f in files]
    out = tmp_path / "flagged"
    args = ["lwa-flag", "integrations", *map(str, snaps), "-o", str(out), "--json"]
    for f in files:
        args += ["--ms", str(f)]
    res = run_cli(args)
    assert res.returncode == 0, res.stderr
    assert [digest(f) for f in files] == digests  # inputs untouched
    summary = json.loads(res.stdout)
    bad = summary["flagged"]["bad_frames"]
    assert [b["path"] for b in bad] == [str(snaps[k]) for k in sorted(BAD)]
    assert "low rms" in bad[1]["reason"] and "x the window's quiet level" in bad[1]["reason"]
    for k, f in enumerate(files):
        flags, *_ = flags_of(out / f.name)
        assert flags.all() if k in BAD else not flags.any(), f"integration {k}"
    assert summary["flagged_percent_after"] == pytest.approx(100 * len(BAD) / len(files))
    qa = out / "QA"
    assert (qa / "snapshot_rms.png").read_bytes()[:4] == b"\x89PNG"
    with open(qa / "bad_integrations.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(files) and [int(r["bad"]) for r in rows] == [int(k in BAD) for k in range(len(files))]
    assert (out / "flag-integrations.json").exists()


def test_frames_read_side_by_side_as_one_by_one(tmp_path):
    """read_frames in two processes gives the frames of one process (same order, times, RMS)."""
    from lwa_flag.integrations import read_frames

    snaps = _snapshots(tmp_path, [5.0e9 + 10.0 * k for k in range(8)], ours=True)
    one, two = (read_frames(snaps[::-1], processes=n) for n in (1, 2))
    assert [(f.path, f.mjd, f.rms, f.time_source) for f in one] == [(f.path, f.mjd, f.rms, f.time_source) for f in two]
    assert [f.path for f in two] == list(map(str, snaps))  # sorted by time


def test_concatenated_ms_wsclean_headers(small_sim, tmp_path, flags_of):
    files, _ = small_sim
    times = _ms_times(files)
    cat = concat_ms(files, tmp_path / "cat.ms")
    snaps = _snapshots(tmp_path, times, ours=False)
    res = run_cli(["lwa-flag", "integrations", *map(str, snaps), "--ms", str(cat), "--in-place", "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert {b["time_source"] for b in summary["flagged"]["bad_frames"]} == {"DATE-OBS"}
    flags, _, _, t = flags_of(cat)
    bad_times = [times[k] for k in BAD]
    row_bad = np.isin(t, bad_times)
    assert flags[row_bad].all() and not flags[~row_bad].any()
    assert summary["flagged"]["ms"][0]["times_mjd"] == pytest.approx([x / 86400 for x in bad_times])
    assert (tmp_path / "cat.flag-integrations.json").exists()


def test_core_running_median_edges_and_errors():
    rms = [5.0, 1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 0.4, 1.0, 1.01]
    frames = [Frame(path=f"f{k}", mjd=60664.5 + k * 10 / 86400, rms=r, time_source="MJD-MID")
              for k, r in enumerate(rms)]
    result = find_bad_integrations(frames, settings=SnapshotQA(sigma=5.0, low_ratio=0.5, running_window=11))
    assert [f.path for f in result.bad_frames] == ["f0", "f9"]  # a bad first frame is caught too
    assert result.frames[0].score > 5 and result.frames[9].rms < 0.5 * result.frames[9].running_median
    # too few frames for running statistics (issue 23: the middle of 3 was flagged): nothing flagged
    for n in (2, 3, 5):
        few = find_bad_integrations([Frame(path=f"g{k}", mjd=60664.5 + k * 10 / 86400, rms=r, time_source="t")
                                     for k, r in enumerate([1.0, 5.0, 1.0, 1.0, 0.2][:n])])
        assert not few.bad_frames and few.skipped


@pytest.mark.parametrize(("keywords", "axis_code", "named"),
                         [({"STOKES": "I", "IMGCAT": "snapshot"}, None, "Stokes I"),
                          ({}, -5, "Stokes XX")],  # a bare wsclean XX image: only its STOKES axis says so
                         ids=["keyword-I", "wsclean-axis-XX"])
def test_non_v_snapshot_is_refused(small_sim, tmp_path, digest, keywords, axis_code, named):
    files, _ = small_sim
    header = allsky_header(size=32, scale_deg=6.0, keywords=keywords)
    if axis_code is not None:
        header["CRVAL4"] = axis_code
    path = tmp_path / "i.fits"
    fits.writeto(path, synthetic_image(header, [], noise=1.0), header)
    before = digest(files[0])
    res = run_cli(["lwa-flag", "integrations", str(path), str(path), str(path), "--ms", str(files[0]),
                   "-o", str(tmp_path / "o.ms")])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert named in res.stderr and not (tmp_path / "o.ms").exists()
    assert digest(files[0]) == before


def test_scatter_floor_keeps_a_modest_change_on_stable_data():
    """On very stable frames a 6 % RMS rise (a bright transient) is not an RFI-broken integration,
    unless the scatter floor is switched off; a 3x rise is flagged either way."""
    from lwa_flag.integrations import Frame, find_bad_integrations

    def frames(values):
        return [Frame(path=f"f{i}.fits", mjd=60664.5 + i * 10 / 86400, rms=v, time_source="test")
                for i, v in enumerate(values)]

    stable = [1.0, 1.001, 0.999, 1.0, 1.06, 1.0, 0.999, 1.001, 3.0, 1.0, 1.0]
    default = find_bad_integrations(frames(stable))
    assert [f.bad for f in default.frames] == [i == 8 for i in range(11)]
    strict = find_bad_integrations(frames(stable), settings=SnapshotQA(min_scatter_fraction=0.0))
    assert strict.frames[4].bad and strict.frames[8].bad


def test_too_few_snapshots_pass_through(small_sim, tmp_path, flags_of):
    """Three integrations (a real-size test MS): no running statistics, nothing flagged, a WARNING
    (issue 23: the middle one of three was flagged)."""
    files, _ = small_sim
    times = _ms_times(files)[:3]
    snaps = _snapshots(tmp_path, times, ours=True)  # frame 2 is 3x noisier: would be "bad"
    cat = concat_ms(files[:3], tmp_path / "three.ms")
    res = run_cli(["lwa-flag", "integrations", *map(str, snaps), "--ms", str(cat), "-o", str(tmp_path / "out.ms"),
                   "--json"])
    assert res.returncode == 0, res.stderr
    assert "WARNING" in res.stderr and "only 3 snapshots" in res.stderr
    summary = json.loads(res.stdout)
    assert summary["flagged"]["bad_frames"] == [] and summary["flagged"]["skipped"]
    flags, *_ = flags_of(tmp_path / "out.ms")
    assert not flags.any()
