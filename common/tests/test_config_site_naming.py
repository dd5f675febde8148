"""lwa_common: config defaults and overrides, OVRO LST/UTC, names."""

from __future__ import annotations

import astropy.units as u
import click
import numpy as np
import pytest
from astropy.coordinates import EarthLocation, SkyCoord
from astropy.time import Time
from click.testing import CliRunner

from lwa_common import LwaError
from lwa_common.cli import section_option
from lwa_common.config import SCIENCE_CONFIGURATIONS, Config, default_text, load_config, section_with
from lwa_common.naming import format_ms_name, jname, jname_short, parse_ms_name
from lwa_common.site import (
    enu_basis,
    geocentric_m,
    lst_hours,
    lst_to_utc,
    meridian_phase_centre,
    parse_lst_range,
    split_lst_range,
)
from lwa_common.subbands import SUBBAND_LABELS_MHZ, subband_freqs, subband_of_freq


def test_defaults_match_design():
    cfg = load_config()
    assert cfg.hot_baselines.window == 100 and cfg.hot_baselines.sigma_uv == 7.0
    assert cfg.imaging.size == 4096 and cfg.imaging.scale_deg == 0.03125
    assert len(SCIENCE_CONFIGURATIONS) == 7
    n_images = sum(cfg.imaging.intervals_out if c.span == "10min" else 1 for c in SCIENCE_CONFIGURATIONS)
    assert n_images == 17  # 4 deep I + 6 I intervals + 1 deep V + 6 V intervals
    assert cfg.site.lat_deg == pytest.approx(37.24, abs=0.01)


def test_toml_override_and_typo_hint(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[hot_baselines]\nsigma_uv = 6\n[imaging]\nsize = 512\n")
    cfg = load_config(f)
    assert cfg.hot_baselines.sigma_uv == 6.0 and isinstance(cfg.hot_baselines.sigma_uv, float)
    assert cfg.imaging.size == 512 and cfg.hot_baselines.window == 100
    f.write_text("[hot_baselines]\nsigma_vu = 6\n")
    with pytest.raises(LwaError, match="did you mean 'sigma_uv'"):
        load_config(f)
    f.write_text("[imagin]\nsize = 5\n")
    with pytest.raises(LwaError, match="did you mean 'imaging'"):
        load_config(f)
    f.write_text("[imaging]\nsize = 'big'\n")
    with pytest.raises(LwaError, match="must be a number"):
        load_config(f)
    f.write_text("[imaging\n")
    with pytest.raises(LwaError, match="not valid TOML"):
        load_config(f)


def test_lst_round_trip_and_split():
    t = lst_to_utc(10.5, "2024-12-20")
    assert lst_hours(t) == pytest.approx(10.5, abs=1e-6)
    assert t.isot.startswith("2024-12-20")
    hours = split_lst_range("10h-12h", "2024-12-20")
    assert [h.label for h in hours] == ["10h", "11h"]
    dur = (hours[0].utc_end - hours[0].utc_start).to_value(u.s)
    assert dur == pytest.approx(3600 / 1.0027379, abs=0.5)
    assert lst_hours(hours[1].utc_start) == pytest.approx(11.0, abs=1e-5)
    assert parse_lst_range("23h-1h") == (23.0, 25.0)
    assert parse_lst_range("10h30m-11h") == (10.5, 11.0)
    with pytest.raises(LwaError, match="not like"):
        parse_lst_range("ten to eleven")


def test_meridian_phase_centre():
    c = meridian_phase_centre(10.0, 11.0)
    assert c.ra.deg == pytest.approx(157.5) and c.dec.deg == pytest.approx(37.2398)


def test_enu_basis_is_the_geodetic_tangent_frame():
    """Up is astropy's geodetic normal, north and east point along growing latitude and longitude."""
    lon, lat, h = -118.28, 37.24, 1183.0
    here = EarthLocation.from_geodetic(lon * u.deg, lat * u.deg, h * u.m)
    basis = enu_basis(here)
    assert np.allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(basis) == pytest.approx(1.0)  # right-handed: east x north = up

    def offset(dlon=0.0, dlat=0.0, dh=0.0):
        there = EarthLocation.from_geodetic((lon + dlon) * u.deg, (lat + dlat) * u.deg, (h + dh) * u.m)
        return basis @ (geocentric_m(there) - geocentric_m(here))

    assert np.allclose(offset(dh=1000.0), [0.0, 0.0, 1000.0], atol=1e-6)
    east, north = offset(dlon=1e-4), offset(dlat=1e-4)
    assert east[0] > 8.8 and abs(east[1]) < 1e-3 and abs(east[2]) < 1e-3
    assert north[1] > 11.0 and abs(north[0]) < 1e-6 and abs(north[2]) < 1e-3


def test_ms_names_and_jnames():
    t = Time("2024-12-20T10:30:07", scale="utc")
    name = format_ms_name(t, 55)
    assert name == "20241220_103007_55MHz.ms"
    parsed = parse_ms_name("/data/" + name)
    assert parsed.subband_mhz == 55 and abs((parsed.time - t).to_value(u.s)) < 1e-3
    with pytest.raises(LwaError, match="not an OVRO-LWA MS name"):
        parse_ms_name("foo.ms")
    c = SkyCoord("05h53m12.9s", "+31d20m45.9s")
    assert jname(c) == "J055312+312045"
    assert jname_short(c) == "J0553+31"
    assert jname_short(SkyCoord("00h00m59.99s", "-00d30m00s")) == "J0000-00"


def test_subbands():
    assert SUBBAND_LABELS_MHZ[0] == 13 and SUBBAND_LABELS_MHZ[-1] == 82 and len(SUBBAND_LABELS_MHZ) == 16
    f = subband_freqs(55, 192)
    assert len(f) == 192 and f[1] - f[0] == pytest.approx(23926.0)
    assert subband_of_freq(f.mean()) == 55
    assert subband_freqs("73MHz", 4).mean() == pytest.approx(f.mean() + 4 * 192 * 23926.0)


def test_section_with_takes_only_the_given_options(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[calib]\nrefant = "LWA-266"\nsigma_antenna = 4\n')
    cfg = load_config(f)
    assert cfg.calib.refant == "LWA-266" and cfg.calib.sigma_antenna == 4.0  # --config sets calibration values
    # None means "not given": the config value stays; a given option wins
    solve = section_with(cfg.calib, refant=None, sigma_antenna=6.0, min_snr=None)
    assert solve.refant == "LWA-266" and solve.sigma_antenna == 6.0 and solve.min_snr == cfg.calib.min_snr
    # a whole Config the same way
    small = section_with(cfg, imaging=section_with(cfg.imaging, size=256))
    assert small.imaging.size == 256 and small.calib == cfg.calib
    with pytest.raises(TypeError, match="sigma_uvw"):
        section_with(cfg.hot_baselines, sigma_uvw=3.0)


def test_help_defaults_come_from_the_dataclass():
    assert default_text("hot_baselines", "sigma_uv") == f"default: {Config().hot_baselines.sigma_uv:g}, config hot_baselines.sigma_uv"
    assert default_text("calib", "refant") == "default: none, config calib.refant"

    @click.command()
    @section_option("snapshot_qa", "running_window", "--window", "window", help="Window.")
    @section_option("peel", "beam", help="Beam.")
    def cmd(window, beam):
        click.echo(f"{window} {beam}")

    res = CliRunner().invoke(cmd, ["--help"])
    assert f"[default: {Config().snapshot_qa.running_window}, config snapshot_qa.running_window]" in res.output
    assert "--beam / --no-beam" in res.output
    assert CliRunner().invoke(cmd, []).output == "None None\n"  # not given: the section's value is kept
    assert CliRunner().invoke(cmd, ["--window", "7", "--no-beam"]).output == "7 False\n"
