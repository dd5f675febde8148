"""lwa_common: self-describing FITS, provenance without duplicates, the CLI error contract."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click
import numpy as np
import pytest
from astropy.io import fits

from lwa_common import LwaError
from lwa_common.cli import common_options, run_main
from lwa_common.fitsio import image_info, read_image, write_image
from lwa_common.io import atomic_path, check_output
from lwa_common.provenance import read_stamp, stamp_header


def _header():
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"], h["CTYPE3"] = "RA---SIN", "DEC--SIN", "FREQ"
    h["CRVAL3"] = 56.0e6
    return h


def test_write_image_keywords_and_single_stamp(tmp_path):
    path = tmp_path / "a.fits"
    data = np.arange(12, dtype=float).reshape(3, 4)
    kw = {"STOKES": "V", "IMGCAT": "10min", "INTERVAL": "t0002", "ROBUST": 0.0, "TAPER": 30.0,
          "PBCOR": False, "DEWARPED": True, "SUBBAND": "55MHz", "FREQMHZ": 56.0}
    argv = ["lwa-image", "science", "--only", "V-Taper-10min", "x" * 150]
    write_image(path, data, _header(), tool="lwa-common", keywords=kw, argv=argv)
    arr, h = read_image(path)
    assert arr.shape == (3, 4) and h["STOKES"] == "V" and h["DEWARPED"] is True
    stamp = read_stamp(h, "lwa-common")
    assert "cmd: lwa-image science --only V-Taper-10min " + "x" * 150 in stamp  # joined back whole
    # rewrite the product (a rerun): still exactly one stamp of this tool
    write_image(path, arr, h, tool="lwa-common", keywords=kw, argv=argv)
    _, h2 = read_image(path)
    assert read_stamp(h2, "lwa-common")[1:] == stamp[1:]  # same stamp (only the time may differ)
    assert len([c for c in h2["HISTORY"] if "lwa-pipe[lwa-common]" in str(c)]) == len(
        [c for c in h["HISTORY"] if "lwa-pipe[lwa-common]" in str(c)])
    info = image_info(path)
    assert (info.stokes, info.category, info.interval, info.freq_mhz, info.pbcor) == ("V", "10min", "t0002", 56.0, False)


def test_stamp_survives_blanks_at_card_boundaries(tmp_path):
    argv = ["wsclean", *(["-size", "4096", "4096", "-scale", "0.03125"] * 8), "-name", "a b"]
    h = fits.Header()
    stamp_header(h, tool="lwa-image", argv=argv)
    path = tmp_path / "s.fits"
    fits.PrimaryHDU(np.zeros((2, 2)), header=h).writeto(path)
    line = read_stamp(fits.getheader(path), "lwa-image")[1]
    assert line == "cmd: " + " ".join(argv[:-1]) + " 'a b'"


def test_stamp_keeps_other_tools(tmp_path):
    h = fits.Header()
    h.add_history("wsclean did this")
    stamp_header(h, tool="lwa-image", argv=["lwa-image", "science"])
    stamp_header(h, tool="lwa-dewarp", argv=["lwa-dewarp", "apply"])
    stamp_header(h, tool="lwa-image", argv=["lwa-image", "science", "--only", "x"])
    hist = [str(c) for c in h["HISTORY"]]
    assert hist[0] == "wsclean did this"
    assert sum("cmd: lwa-image science --only x" in c for c in hist) == 1
    assert sum("cmd: lwa-image" in c for c in hist) == 1
    assert sum("cmd: lwa-dewarp apply" in c for c in hist) == 1


def test_stamp_appends_or_moves_history_as_a_restamp_would():
    """A first stamp on a header whose HISTORY closes it (wsclean's) is only appended; HISTORY
    followed by other cards is gathered at the end, as the remove-and-re-add of a restamp does."""
    closing = fits.Header([("BMAJ", 0.0), ("HISTORY", "wsclean -size 4096"), ("HISTORY", "-name x")])
    stamp_header(closing, tool="lwa-image", argv=["lwa-image"], extra=["ms: a.ms"])
    keys = list(closing.keys())
    assert keys[:3] == ["BMAJ", "HISTORY", "HISTORY"] and set(keys[3:]) == {"HISTORY"}
    assert [str(c) for c in closing["HISTORY"]][:2] == ["wsclean -size 4096", "-name x"]
    inside = fits.Header([("HISTORY", "old"), ("COMMENT", "after it"), ("BMAJ", 0.0)])
    stamp_header(inside, tool="lwa-image", argv=["lwa-image"])
    assert list(inside.keys())[:3] == ["COMMENT", "BMAJ", "HISTORY"]  # moved behind the other cards
    assert str(inside["HISTORY"][0]) == "old" and read_stamp(inside, "lwa-image")[1] == "cmd: lwa-image"


def test_atomic_path_through_a_scratch_folder(tmp_path):
    """With `scratch`, the temporary is written in the caller's folder: none is made beside the
    product; a failed write keeps the old product and leaves its partial file in the scratch."""
    scratch = tmp_path / ".scratch"
    scratch.mkdir()
    target = tmp_path / "out" / "a.fits"
    with atomic_path(target, scratch=scratch) as tmp:
        assert tmp.parent == scratch
        tmp.write_text("first")
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["a.fits"]
    with pytest.raises(RuntimeError), atomic_path(target, scratch=scratch) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "first" and sorted(p.name for p in target.parent.iterdir()) == ["a.fits"]
    with pytest.raises(LwaError, match="nothing was written"), atomic_path(tmp_path / "b.txt", scratch=scratch):
        pass


def test_big_endian_pixels_pass_through_unchanged(tmp_path):
    """read_image(native=False) keeps the file's byte order, and write_image writes such pixels as
    they are: the same bytes as the native round trip, NaN and the sign of zero included."""
    rng = np.random.default_rng(5)
    data = rng.normal(size=(1, 1, 5, 7)).astype(np.float32)
    data[0, 0, 1, 2], data[0, 0, 3, 4] = np.nan, -0.0
    src = tmp_path / "src.fits"
    fits.PrimaryHDU(data, header=_header()).writeto(src)
    passed, header = read_image(src, native=False)
    assert passed.dtype == np.dtype(">f4")
    native, _ = read_image(src)
    assert native.dtype == np.dtype("float32") and native.dtype.isnative
    write_image(tmp_path / "a.fits", passed, header, tool="t", argv=["t"])
    write_image(tmp_path / "b.fits", native, header, tool="t", argv=["t"])
    a, b = (fits.getdata(tmp_path / n).tobytes() for n in ("a.fits", "b.fits"))
    assert a == b == fits.getdata(src).tobytes()


def test_read_image_errors(tmp_path):
    with pytest.raises(LwaError, match="not found"):
        read_image(tmp_path / "none.fits")
    bad = tmp_path / "bad.fits"
    bad.write_text("not a fits file at all")
    with pytest.raises(LwaError, match="cannot read FITS"):
        read_image(bad)


def test_atomic_path_keeps_old_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(LwaError, match="--overwrite"):
        check_output(target, overwrite=False)


class _Terminated(Exception):
    pass


def _raise(signum, frame):
    raise _Terminated


@pytest.mark.parametrize("moment", ["temporary made", "product swapped in"])
def test_atomic_path_signal_at_a_seam_leaves_no_temporary(tmp_path, monkeypatch, moment):
    """SIGTERM the instant the temporary folder exists, or the instant the product is renamed into
    place (the CI failure: a scancel between mkdtemp and the cleanup left `.NAME.xxxx.tmp`), with a
    second thread alive (a mask on the main thread alone does not hold a signal then)."""
    import tempfile

    import lwa_common.io as io

    def signalled(real):
        def call(*args, **kwargs):
            out = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler at its next instruction
            return out
        return call

    if moment == "temporary made":
        monkeypatch.setattr(tempfile, "mkdtemp", signalled(tempfile.mkdtemp))
    else:
        monkeypatch.setattr(io.os, "replace", signalled(os.replace))
    previous = signal.signal(signal.SIGTERM, _raise)
    done = threading.Event()  # another thread, as BLAS or casacore start: it may receive the signal
    other = threading.Thread(target=done.wait)
    other.start()
    try:
        with pytest.raises(_Terminated), atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("whole")
    finally:
        signal.signal(signal.SIGTERM, previous)
        done.set()
        other.join()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ([] if moment == "temporary made" else ["out.txt"]), left


@click.group()
def _demo():
    pass


@_demo.command()
@click.argument("what")
@common_options
def fail(what, cfg):
    if what == "data":
        raise LwaError("the data are bad")
    click.echo(f"ok {cfg.imaging.size}")


@pytest.mark.parametrize(("args", "code", "text"), [
    (["fail", "data"], 1, "prog: error: the data are bad"),
    (["fail"], 2, "Missing argument"),
    (["fail", "fine"], 0, ""),
])
def test_run_main_exit_codes(args, code, text, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog"])
    with pytest.raises(SystemExit) as exc:
        run_main(_demo, args)
    assert exc.value.code == code
    err = capsys.readouterr().err
    assert text in err
    if code == 1:
        assert len(err.strip().splitlines()) == 1


def test_config_option_is_applied(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[imaging]\nsize = 256\n")
    monkeypatch.setattr("sys.argv", ["prog"])
    with pytest.raises(SystemExit) as exc:
        run_main(_demo, ["fail", "fine", "--config", str(cfg)])
    assert exc.value.code == 0 and "ok 256" in capsys.readouterr().out


def test_sky_mask_matches_astropy_for_sin():
    from astropy.wcs import WCS

    from lwa_common.fitsio import sky_mask
    from lwa_common.testing import allsky_header

    h = allsky_header(size=96, scale_deg=1.5)
    mask = sky_mask(h)
    yy, xx = np.mgrid[0:96, 0:96]
    lon, _ = WCS(h).celestial.wcs_pix2world(xx, yy, 0)
    assert (mask == np.isfinite(lon)).mean() > 0.998  # only pixels grazing the horizon may differ
    assert mask[48, 48] and not mask[0, 0]


@_demo.command()
@click.argument("folder")
@click.option("--fail", is_flag=True)
@common_options
def make(folder, fail, cfg):
    """Create FOLDER/a/b, write into it, warn, and fail on request."""
    import logging

    from lwa_common.io import make_dirs

    (make_dirs(Path(folder) / "a" / "b") / "part.txt").write_text("partial")
    logging.getLogger("demo").warning("a warning before the end")
    if fail:
        raise LwaError("it went wrong")


def test_failed_run_removes_the_folders_it_created_and_holds_warnings(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["prog"])
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(SystemExit) as exc:
        run_main(_demo, ["make", str(existing), "--fail"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["prog: error: it went wrong (last warning: a warning before the end)"]
    assert existing.is_dir() and not list(existing.iterdir())  # only what the run created is gone
    with pytest.raises(SystemExit) as exc:
        run_main(_demo, ["make", str(existing)])
    assert exc.value.code == 0
    assert (existing / "a" / "b" / "part.txt").is_file()
    assert "WARNING demo: a warning before the end" in capsys.readouterr().err  # shown at the end of a success


def test_read_image_refuses_truncated_and_all_nan(tmp_path):
    header = fits.Header({"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN"})
    good = tmp_path / "good.fits"
    fits.writeto(good, np.ones((64, 64), np.float32), header)
    (tmp_path / "cut.fits").write_bytes(good.read_bytes()[:2880 * 2])
    with pytest.raises(LwaError, match="cannot read FITS image"):
        read_image(tmp_path / "cut.fits")
    fits.writeto(tmp_path / "nan.fits", np.full((64, 64), np.nan, np.float32), header)
    with pytest.raises(LwaError, match="no finite pixel"):
        read_image(tmp_path / "nan.fits")
    assert np.isnan(read_image(tmp_path / "nan.fits", require_finite=False)[0]).all()
    with pytest.raises(LwaError, match="is a folder"):
        read_image(tmp_path)
