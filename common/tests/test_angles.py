"""Property-based test of the angle parser (lwa_common.catalogs.angles, astropy `Angle`)."""

from __future__ import annotations

import pytest
from astropy.coordinates import Angle
from hypothesis import given, settings
from hypothesis import strategies as st

from lwa_common.catalogs import parse_dec_deg, parse_ra_deg
from lwa_common.errors import LwaError

# --------------------------------------------------------------------------- property: the angle parser

@settings(max_examples=300, deadline=None)
@given(ra=st.floats(0, 359.9999, allow_nan=False), dec=st.floats(-90, 90, allow_nan=False),
                  style=st.sampled_from(["hms", "colon", "space", "deg", "dotted"]))
def test_angle_parser_round_trips(ra, dec, style):
    """Every spelling the field uses reads back the angle it was written from (to 1 mas)."""
    ra_a, dec_a = Angle(ra, "deg"), Angle(dec, "deg")
    if style == "hms":
        texts = (ra_a.to_string("hourangle", sep="hms", precision=6), dec_a.to_string("deg", sep="dms", precision=6,
                                                                                      alwayssign=True))
    elif style == "colon":
        texts = (ra_a.to_string("hourangle", sep=":", precision=6), dec_a.to_string("deg", sep=":", precision=6))
    elif style == "space":
        texts = (ra_a.to_string("hourangle", sep=" ", precision=6), dec_a.to_string("deg", sep=" ", precision=6))
    elif style == "deg":
        texts = (f"{ra:.9f}deg", f"{dec:.9f}")
    else:  # makesourcedb: RA hh:mm:ss, Dec dd.mm.ss.sss
        texts = (ra_a.to_string("hourangle", sep=":", precision=6),
                 dec_a.to_string("deg", sep=".", precision=6, alwayssign=True))
    got_ra, got_dec = parse_ra_deg(texts[0]), parse_dec_deg(texts[1])
    assert min(abs(got_ra - ra), 360 - abs(got_ra - ra)) < 3e-7
    assert got_dec == pytest.approx(dec, abs=3e-7)


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(60, 99), seconds=st.integers(0, 59))
def test_sixty_minutes_or_more_is_an_error(minutes, seconds):
    with pytest.raises(LwaError):
        parse_dec_deg(f"+10:{minutes:02d}:{seconds:02d}")
