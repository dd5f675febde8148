"""CLI contract: help examples, usage errors (exit 2), data errors (exit 1, one stderr line)."""

from __future__ import annotations

import hashlib

import pytest

from lwa_common.testing import run_cli


@pytest.mark.parametrize("command", ["targets", "solar-system", "flux-check"])
def test_help_has_an_example(command):
    res = run_cli(["lwa-cutout", command, "--help"])
    assert res.returncode == 0
    assert "Example:" in res.stdout and f"lwa-cutout {command}" in res.stdout


def _one_line(res, text):
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert text in lines[0], lines[0]


def test_targets_data_errors(allsky, tmp_path):
    img = allsky("images/deep.fits", [])
    digest = hashlib.md5(img.read_bytes()).hexdigest()
    no_ra = tmp_path / "no_ra.csv"
    no_ra.write_text("name,dec\nX,40\n")
    _one_line(run_cli(["lwa-cutout", "targets", str(no_ra), "--images", str(img.parent), "-o", str(tmp_path / "o")]),
              "no RA")
    good = tmp_path / "good.csv"
    good.write_text("name,ra,dec\nX,150,40\n")
    (tmp_path / "empty").mkdir()
    _one_line(run_cli(["lwa-cutout", "targets", str(good), "--images", str(tmp_path / "empty"), "-o",
                       str(tmp_path / "o")]), "no usable images")
    toml = tmp_path / "bad.toml"
    toml.write_text("[cutout]\nsize_degs = 3\n")
    _one_line(run_cli(["lwa-cutout", "targets", str(good), "--images", str(img.parent), "-o", str(tmp_path / "o"),
                       "--config", str(toml)]), "size_deg")
    assert hashlib.md5(img.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.csv"))


def test_targets_usage_errors(allsky, tmp_path):
    img = allsky("images/deep.fits", [])
    good = tmp_path / "good.csv"
    good.write_text("name,ra,dec\nX,150,40\n")
    assert run_cli(["lwa-cutout", "targets", str(good), "-o", str(tmp_path / "o")]).returncode == 2  # no --images
    res = run_cli(["lwa-cutout", "targets", str(tmp_path / "missing.csv"), "--images", str(img.parent), "-o",
                   str(tmp_path / "o")])
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_cli(["lwa-cutout", "targets", str(good), "--images", str(img.parent)])
    assert res.returncode == 2 and "--output" in res.stderr
    res = run_cli(["lwa-cutout", "targets", str(good), "--images", str(img.parent), "-o", str(tmp_path / "o"),
                   "--annulus-beams", "6", "3"])
    assert res.returncode == 2 and "annulus" in res.stderr


def test_config_file_changes_a_default(allsky, tmp_path):
    """cfg.cutout.min_elevation_deg from --config skips a target that the default keeps."""
    img = allsky("images/deep.fits", [(151.0, 37.24, 2.0)])
    good = tmp_path / "good.csv"
    good.write_text("name,ra,dec\nZenith,151.0,37.24\n")
    toml = tmp_path / "c.toml"
    toml.write_text("[cutout]\nmin_elevation_deg = 89.9\n")
    res = run_cli(["lwa-cutout", "targets", str(good), "--images", str(img.parent), "-o", str(tmp_path / "o"),
                   "--config", str(toml), "--no-png"])
    assert res.returncode == 0 and res.stdout == "" and "(< 89.9 deg)" in res.stderr
    res = run_cli(["lwa-cutout", "targets", str(good), "--images", str(img.parent), "-o", str(tmp_path / "o"),
                   "--config", str(toml), "--min-elevation-deg", "30", "--no-png"])
    assert res.returncode == 0 and res.stdout.strip().endswith("Zenith_photometry.csv")


def test_output_folder_inside_the_image_folder(allsky, tmp_path):
    """Cutouts written next to the images are never taken for images on a rerun."""
    from lwa_cutout import PhotometrySettings, run_targets

    img = allsky("images/deep.fits", [(151.0, 37.24, 2.0)])
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("name,ra,dec\nZenith,151.0,37.24\n")
    for out in (img.parent / "phot", img.parent):
        for _ in range(2):
            run = run_targets([csv_path], images=[img.parent], output_dir=out, overwrite=True,
                              settings=PhotometrySettings(png=False))
            (result,) = run.results
            assert {r["I_image"] for r in result.rows if r["I_image"]} == {str(img)}
            assert result.rows[0]["I_fit_flux_jy"] == pytest.approx(2.0, rel=0.03)
