"""Tests for lwa_common.targets: the targets CSV of lwa-cutout."""

from __future__ import annotations

import logging

import pytest

from lwa_common.errors import LwaError
from lwa_common.targets import ConfusingSource, parse_confusing_sources, read_targets

CRAB_RA = 15.0 * (5 + 34 / 60 + 31.94 / 3600)
CRAB_DEC = 22 + 0 / 60 + 52.2 / 3600


def write(tmp_path, text, name="targets.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sexagesimal_and_degrees_agree(tmp_path):
    path = write(
        tmp_path,
        "common_name,ra_current,dec_current\n"
        f"deg,{CRAB_RA:.9f},{CRAB_DEC:.9f}\n"
        "hms,05h34m31.94s,+22d00m52.2s\n"
        "colon,05:34:31.94,+22:00:52.2\n"
        "colon_unsigned,05:34:31.94,22:00:52.2\n"
        "spaces,05 34 31.94,+22 00 52.2\n",
    )
    table = read_targets(path)
    assert table.names == ["deg", "hms", "colon", "colon_unsigned", "spaces"]
    assert not table.skipped
    for target in table:
        assert target.ra_deg == pytest.approx(CRAB_RA, abs=1e-6)
        assert target.dec_deg == pytest.approx(CRAB_DEC, abs=1e-6)
        assert target.coord.ra.deg == pytest.approx(CRAB_RA, abs=1e-6)
        assert target.coord.dec.deg == pytest.approx(CRAB_DEC, abs=1e-6)
        assert target.detection_stokes == "I"
    assert table.coords.shape == (5,)


def test_negative_declinations(tmp_path):
    path = write(tmp_path, "name,ra,dec\na,12:00:00,-00:30:00\nb,12h,-45d30m\nc,180,-45.5\n")
    table = read_targets(path)
    assert [t.dec_deg for t in table] == pytest.approx([-0.5, -45.5, -45.5])
    assert [t.ra_deg for t in table] == pytest.approx([180.0, 180.0, 180.0])


def test_aliases_are_case_insensitive_and_extra_columns_kept_in_order(tmp_path):
    path = write(
        tmp_path,
        "Distance_pc,NAME,RA_deg,Notes,DEC_DEG,Spectral_Type\n"
        "2.6,Sirius,101.287155,bright,-16.716116,A1V\n"
        "1.3,Proxima,217.428953,flare star,-62.679484,M5.5V\n",
    )
    table = read_targets(path)
    assert (table.name_column, table.ra_column, table.dec_column) == ("NAME", "RA_deg", "DEC_DEG")
    assert table.columns == ("Distance_pc", "NAME", "RA_deg", "Notes", "DEC_DEG", "Spectral_Type")
    assert table.extra_columns == ("Distance_pc", "Notes", "Spectral_Type")
    proxima = table.targets[1]
    assert proxima.name == "Proxima" and proxima.line == 3
    assert list(proxima.row) == list(table.columns)
    assert proxima.row["Notes"] == "flare star" and proxima.row["Spectral_Type"] == "M5.5V"
    assert proxima.dec_deg == pytest.approx(-62.679484)


def test_preferred_column_wins_over_alias(tmp_path):
    path = write(tmp_path, "id,common_name,ra,ra_current,dec,dec_current\n7,Crab,1.0,83.633,2.0,22.0145\n")
    (crab,) = read_targets(path)
    assert crab.name == "Crab" and crab.ra_deg == 83.633 and crab.dec_deg == 22.0145
    assert read_targets(path).extra_columns == ("id", "ra", "dec")


def test_malformed_rows_are_skipped_and_reported(tmp_path, caplog):
    path = write(
        tmp_path,
        "# targets for the test\n"
        "common_name,ra_current,dec_current,detection_stokes\n"
        "good1,83.633,22.0145,I\n"
        "\n"
        "bad_dec,83.633,95.0,I\n"
        "bad_ra,25h00m00s,10.0,\n"
        ",10.0,10.0,\n"
        "short,10.0\n"
        "bad_stokes,10.0,10.0,Q\n"
        "good2,10.0,-10.0,both\n",
    )
    with caplog.at_level(logging.WARNING, logger="lwa_common.targets"):
        table = read_targets(path)
    assert table.names == ["good1", "good2"]
    assert [t.line for t in table] == [3, 10]
    assert [s.line for s in table.skipped] == [5, 6, 7, 8, 9]
    reasons = {s.line: s.reason for s in table.skipped}
    assert "Dec" in reasons[5] and "RA" in reasons[6] and "empty" in reasons[7]
    assert "2 cells" in reasons[8] and "'Q'" in reasons[9]
    for line in (5, 6, 7, 8, 9):
        assert f"targets.csv:{line}: skipped row" in caplog.text
    assert table.targets[1].detection_stokes == "both"


def test_detection_stokes_and_confusing_sources(tmp_path):
    path = write(
        tmp_path,
        "common_name,ra_current,dec_current,detection_stokes,confusing_sources\n"
        'Crab,83.633,22.0145,v,"83.63,22.01; 05:35:00,+21:50:00"\n'
        "Jupiter,10.0,5.0,I+V,84.1 21.9; Tau A\n"
        "Plain,10.0,5.0,,\n",
    )
    crab, jupiter, plain = read_targets(path)
    assert crab.detection_stokes == "V" and crab.detect_in("V") and not crab.detect_in("I")
    assert jupiter.detection_stokes == "both" and jupiter.detect_in("I") and jupiter.detect_in("v")
    assert plain.detection_stokes == "I" and plain.confusing_sources == ()
    first, second = crab.confusing_sources
    assert (first.ra_deg, first.dec_deg) == (83.63, 22.01)
    assert second.ra_deg == pytest.approx(83.75) and second.dec_deg == pytest.approx(21 + 50 / 60)
    position, name = jupiter.confusing_sources
    assert position.has_position and position.coord.dec.deg == pytest.approx(21.9)
    assert name == ConfusingSource(label="Tau A") and name.coord is None


def test_parse_confusing_sources():
    parsed = parse_confusing_sources("05 34 31.94 +22 00 52.2;3C 144; ;1.0,2.0")
    assert [p.label for p in parsed] == ["05 34 31.94 +22 00 52.2", "3C 144", "1.0,2.0"]
    assert parsed[0].ra_deg == pytest.approx(CRAB_RA) and parsed[0].dec_deg == pytest.approx(CRAB_DEC)
    assert not parsed[1].has_position
    with pytest.raises(LwaError):
        parse_confusing_sources("1.0,2.0,3.0")


def test_bad_confusing_position_skips_the_row(tmp_path):
    path = write(tmp_path, 'name,ra,dec,confusing_sources\na,1,2,"1.0,99.0"\nb,1,2,\n')
    table = read_targets(path)
    assert table.names == ["b"] and table.skipped[0].line == 2


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("ra_current,dec_current,flux", "name"),
        ("common_name,dec_current", "RA"),
        ("name,ra,declination", "Dec"),
    ],
)
def test_missing_columns_raise(tmp_path, header, missing):
    path = write(tmp_path, f"{header}\nx,1,2\n")
    with pytest.raises(LwaError, match=rf"targets\.csv:1: no {missing} "):
        read_targets(path)


def test_file_level_errors(tmp_path):
    with pytest.raises(LwaError, match="not found"):
        read_targets(tmp_path / "absent.csv")
    with pytest.raises(LwaError, match="empty"):
        read_targets(write(tmp_path, "# only a comment\n\n"))
    with pytest.raises(LwaError, match="duplicate"):
        read_targets(write(tmp_path, "name,ra,dec,RA\nx,1,2,3\n"))


def test_header_only_gives_an_empty_table(tmp_path):
    table = read_targets(write(tmp_path, "\ufeffcommon_name,ra_current,dec_current\n"))
    assert len(table) == 0 and table.name_column == "common_name" and table.skipped == ()
