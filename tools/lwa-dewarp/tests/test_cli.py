"""The `lwa-dewarp` command line: end to end as a user runs it (subprocess of the installed script),
and the must-fail cases through the same `main` error handling in-process (fast)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.testing import run_cli

RADIUS = "3.4"  # beams


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def files(tmp_path, warped_sky, write_csv):
    image = tmp_path / "55MHz-I-Deep-Taper-Robust-0-image.fits"
    fits.PrimaryHDU(warped_sky.image, warped_sky.header).writeto(image)
    pbcor = tmp_path / "55MHz-I-Deep-Taper-Robust-0-image-pbcorr.fits"
    h = warped_sky.header.copy()
    h["PBCOR"] = True
    fits.PrimaryHDU(warped_sky.image * 1.5, h).writeto(pbcor)
    catalog = tmp_path / "catalog.csv"
    write_csv(catalog, warped_sky.catalog)
    return image, pbcor, catalog


def _one_line(result: tuple[int, str, str], returncode: int, text: str) -> None:
    code, _, err = result
    assert code == returncode, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "error:" in lines[0], err


def test_help_has_examples(run_inprocess):
    for cmd in ("fit", "apply"):
        code, out, _ = run_inprocess([cmd, "--help"])
        assert code == 0 and "Example:" in out and f"lwa-dewarp {cmd}" in out


def test_fit_then_apply_end_to_end(tmp_path, files, warped_sky, run_inprocess):
    image, pbcor, catalog = files
    before = {p: _md5(p) for p in (image, pbcor, catalog)}
    screen = tmp_path / "screen.fits"
    args = ["lwa-dewarp", "fit", str(image), "--catalog", str(catalog), "-o", str(screen),
            "--match-radius-beams", RADIUS, "--json"]
    res = run_cli(args)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["status"] == "ok" and summary["n_anchors"] == 30 and summary["screen"] == str(screen)
    assert summary["median_offset_before_beams"] > 1 and summary["median_offset_after_cv_beams"] < 0.1
    qa = tmp_path / "screen_qa"
    assert {p.name for p in qa.iterdir()} == {"anchors.csv", "detections.csv", "summary.json", "offsets.png",
                                              "screen.png", "residuals.png"}
    assert json.loads((qa / "summary.json").read_text())["n_anchors"] == 30
    h = fits.getheader(screen)
    assert h["IMGCAT"] == "screen" and h["NANCHOR"] == 30 and h["LWAVER"]
    # a rerun needs --overwrite, and then does not duplicate the provenance stamp
    _one_line(run_inprocess(args[1:]), 1, "--overwrite")
    assert run_cli([*args, "--overwrite"]).returncode == 0
    stamp = [c for c in fits.getheader(screen)["HISTORY"] if "lwa-pipe[lwa-dewarp]" in str(c) and "cmd:" in str(c)]
    assert len(stamp) == 1

    out = tmp_path / "dewarped"
    res = run_cli(["lwa-dewarp", "apply", str(image), str(pbcor), "--screen", str(screen), "-o", str(out)])
    assert res.returncode == 0, res.stderr
    written = res.stdout.split()
    assert [p.split("/")[-1] for p in written] == ["55MHz-I-Deep-Taper-Robust-0-image_dewarped.fits",
                                                  "55MHz-I-Deep-Taper-Robust-0-image-pbcorr_dewarped.fits"]
    for path, scale in zip(written, (1.0, 1.5), strict=True):
        with fits.open(path) as hdul:
            h, data = hdul[0].header, hdul[0].data
        assert h["DEWARPED"] is True and h["DWSCREEN"] == "screen.fits" and h["STOKES"] == "I"
        assert h.get("PBCOR", False) is (scale == 1.5)
        assert any("screen:" in str(c) for c in h["HISTORY"])
        assert data.shape == warped_sky.image.shape
        # the brightest source is back at its true pixel with its flux
        k = int(np.argmax(warped_sky.peaks))
        xt, yt = warped_sky.true_xy[k]
        from lwa_common.testing import fit_point_source

        f = fit_point_source(data[0, 0], float(xt), float(yt))
        assert abs(f["x"] - xt) < 0.3 and abs(f["y"] - yt) < 0.3
        assert f["peak"] == pytest.approx(scale * warped_sky.peaks[k], rel=0.03)
    assert {p: _md5(p) for p in before} == before  # inputs untouched
    # rerun refuses, writes nothing; dewarping a dewarped image is refused
    _one_line(run_inprocess(["apply", image, "--screen", screen, "-o", out]), 1, "output exists")
    _one_line(run_inprocess(["apply", written[0], "--screen", screen, "-o", tmp_path / "again"]), 1,
              "already dewarped")
    assert not (tmp_path / "again").exists()
    # next to the input when -o is not given; --json record
    code, stdout, err = run_inprocess(["apply", image, "--screen", screen, "--order", "1", "--json"])
    assert code == 0, err
    rec = json.loads(stdout)["images"][0]
    assert rec["output"] == str(tmp_path / "55MHz-I-Deep-Taper-Robust-0-image_dewarped.fits")
    assert rec["same_grid"] and rec["offset_scale"] == 1.0 and rec["nan_fraction_out"] >= rec["nan_fraction_in"]


def test_fit_with_too_few_anchors_warns_and_exits_0(tmp_path, files, warped_sky, write_csv, run_inprocess):
    image, _, _ = files
    few = tmp_path / "few.csv"
    write_csv(few, warped_sky.catalog[:4])
    screen = tmp_path / "s.fits"
    res = run_cli(["lwa-dewarp", "fit", str(image), "--catalog", str(few), "-o", str(screen),
                   "--match-radius-beams", RADIUS, "--json"])
    assert res.returncode == 0, res.stderr
    assert "only 4 anchors" in res.stderr and "WARNING" in res.stderr
    summary = json.loads(res.stdout)
    assert summary["status"] == "too_few_anchors" and summary["screen"] is None and summary["n_anchors"] == 4
    assert not screen.exists() and (tmp_path / "s_qa" / "summary.json").exists()
    # without --json: nothing on stdout (no screen path), still exit 0
    code, out, _ = run_inprocess(["fit", image, "--catalog", few, "-o", screen, "--overwrite", "--min-anchors", "5",
                                  "--match-radius-beams", RADIUS])
    assert code == 0 and out == ""


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.csv", "catalogue not found"),
    (lambda d: (d / "bad.csv").write_text("hello world\nno catalogue here\n") and d / "bad.csv",
     "cannot tell the format"),
    (lambda d: (d / "bad2.csv").write_text("name,ra,dec,flux\na,1,100,3\n") and d / "bad2.csv", "Dec"),
])
def test_fit_bad_catalogue_is_one_line_exit_1(tmp_path, files, make, message, run_inprocess):
    image, _, _ = files
    _one_line(run_inprocess(["fit", image, "--catalog", make(tmp_path), "-o", tmp_path / "s.fits"]), 1, message)
    assert not (tmp_path / "s.fits").exists() and not (tmp_path / "s_qa").exists()


def test_fit_refuses_stokes_v_and_apply_refuses_a_non_screen(tmp_path, files, warped_sky, run_inprocess):
    image, _, catalog = files
    v = tmp_path / "v.fits"
    h = warped_sky.header.copy()
    h["STOKES"] = "V"
    fits.PrimaryHDU(warped_sky.image, h).writeto(v)
    _one_line(run_inprocess(["fit", v, "--catalog", catalog, "-o", tmp_path / "s.fits"]), 1, "Stokes V")
    _one_line(run_inprocess(["apply", image, "--screen", image]), 1, "not an lwa-dewarp screen")
    # the catalogue error of a real subprocess run is one line too
    res = run_cli(["lwa-dewarp", "fit", str(image), "--catalog", str(tmp_path / "none.csv"), "-o",
                   str(tmp_path / "s.fits")])
    _one_line((res.returncode, res.stdout, res.stderr), 1, "catalogue not found")


def test_usage_errors_exit_2(tmp_path, files, run_inprocess):
    image, _, catalog = files
    code, _, err = run_inprocess(["fit", image, "-o", tmp_path / "s.fits"])
    assert code == 2 and "--catalog" in err
    code, _, err = run_inprocess(["apply", image, "--screen", image, "--order", "2"])
    assert code == 2 and "--order" in err
    code, _, err = run_inprocess(["apply", tmp_path / "nope.fits", "--screen", image])
    assert code == 2 and "does not exist" in err
    res = run_cli(["lwa-dewarp", "apply", str(image)])
    assert res.returncode == 2 and "--screen" in res.stderr


def test_readme_documents_every_option():
    """The README's command reference stays in step with the click declarations."""
    from pathlib import Path

    from lwa_dewarp.cli import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, command in cli.commands.items():
        assert f"lwa-dewarp {name}" in readme
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--verbose", "--log-file", "--config"):
                    assert f"`{opt}" in readme or f"{opt} " in readme or f"/ {opt}" in readme, (name, opt)


def test_config_file_sets_the_defaults(tmp_path, files, run_inprocess):
    """[dewarp] values of --config are the defaults; an option on the command line wins."""
    image, _, catalog = files
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f"[dewarp]\nmin_anchors = 40\nmatch_radius_beams = {RADIUS}\n")
    code, out, err = run_inprocess(["fit", image, "--catalog", catalog, "-o", tmp_path / "a.fits", "--config", cfg,
                                    "--json", "--no-plots"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "too_few_anchors" and summary["min_anchors"] == 40 and summary["n_anchors"] == 30
    code, out, err = run_inprocess(["fit", image, "--catalog", catalog, "-o", tmp_path / "b.fits", "--config", cfg,
                                    "--min-anchors", "6", "--json", "--no-plots"])
    assert code == 0 and json.loads(out)["status"] == "ok", err
    assert not list((tmp_path / "b_qa").glob("*.png"))
    cfg.write_text("[dewarp]\nmin_anchor = 4\n")
    _one_line(run_inprocess(["fit", image, "--catalog", catalog, "-o", tmp_path / "c.fits", "--config", cfg]), 1,
              "did you mean 'min_anchors'")
