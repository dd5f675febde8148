"""Channels per RFI-peel solution: grown until the emitter's gains can absorb at most the configured
fraction (~2 / ((N - 1) x channels)) of the unmodelled sky, in equal blocks; explicit values kept."""

from __future__ import annotations

import pytest

from lwa_common.config import load_config, section_with
from lwa_common.errors import LwaError
from lwa_peel.steps import applied_settings, rfi_solution_channels


@pytest.mark.parametrize(("n_channels", "n_antennas", "configured", "expected"), [
    (8, 64, 1, 0),       # demo size: 3.2 % per channel -> the whole band (0)
    (48, 352, 1, 2),     # real size: 0.57 % per channel -> 2 channels
    (192, 352, 1, 2),
    (192, 64, 1, 8),     # 7 needed -> 27 blocks of 8 (equal blocks, none shorter)
    (192, 352, 4, 4),    # a configured width above the need stays
    (8, 64, 0, 0),       # whole band stays whole band
])
def test_rfi_solution_channels(n_channels, n_antennas, configured, expected):
    got = rfi_solution_channels(n_channels, n_antennas, configured, 0.005)
    assert got == expected
    width = n_channels if got == 0 else got
    assert 2 / ((n_antennas - 1) * width) <= 0.005 or width == n_channels


def test_explicit_channels_per_solution_is_kept():
    cfg = load_config(None)
    assert applied_settings(cfg.peel, kind="rfi")["rfi_max_absorption"] == cfg.peel.rfi_max_absorption
    given = applied_settings(section_with(cfg.peel, rfi_channels_per_solution=1), kind="rfi")
    assert given["rfi_max_absorption"] == 0.0
    assert rfi_solution_channels(8, 64, given["channels_per_solution"], given["rfi_max_absorption"]) == 1


def test_rfi_channels_per_solution_in_a_config_file(tmp_path):
    """Unset is the rule; an integer in the TOML is taken as it is, as the option's; else one line."""
    path = tmp_path / "peel.toml"
    path.write_text("[peel]\nrfi_channels_per_solution = 4\n")
    given = applied_settings(load_config(path).peel, kind="rfi")
    assert given["channels_per_solution"] == 4 and given["rfi_max_absorption"] == 0.0
    path.write_text("[peel]\nrfi_channels_per_solution = 2.5\n")
    with pytest.raises(LwaError, match="rfi_channels_per_solution"):
        load_config(path)
