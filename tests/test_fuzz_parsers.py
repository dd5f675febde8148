"""Property-based fuzzing of every text parser users feed: targets CSV, reference catalogues, the TOML
config, antenna-health files, simulation specs.

Whatever the text, a parser either returns a value or raises `LwaError` (which every CLI turns into
one `prog: error: ...` line): never another exception, which would reach the user as a traceback or
an "unexpected" error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwa_common.catalogs import read_reference_catalog
from lwa_common.config import load_config
from lwa_common.errors import LwaError
from lwa_common.targets import read_targets
from lwa_flag.antennas import read_health_file
from lwa_sim.spec import parse_spec

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text that looks like the real formats, so the parsers get past their first line
_cells = st.one_of(st.text(max_size=12), st.sampled_from(
    ["10h30m00s", "+40d00m00s", "25h99m", "abc", "157.5", "-91", "nan", "1e400", "", "12:30:00", "LWA-001",
     "ANT001", "3C286", "I", "V", "both", "0", "-"]))
_csv = st.lists(st.lists(_cells, min_size=1, max_size=6), min_size=0, max_size=6).map(
    lambda rows: "\n".join(",".join(r) for r in rows))
_headers = st.sampled_from(["common_name,ra_current,dec_current,detection_stokes", "name,ra,dec,flux",
                            "antenna", "Name, Type, Ra, Dec, I, ReferenceFrequency='55e6', SpectralIndex",
                            "", "ra;dec"])
_csv_like = st.tuples(_headers, _csv).map(lambda t: t[0] + "\n" + t[1])
_any_text = st.one_of(st.text(max_size=300), _csv_like, st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")))


def _write(text: str, suffix: str) -> Path:
    f = Path(tempfile.mkdtemp()) / f"input{suffix}"
    f.write_text(text, encoding="utf-8", errors="surrogateescape")
    return f


def _only_lwa_errors(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except LwaError:
        pass


@FUZZ
@given(_any_text)
def test_targets_csv(text):
    _only_lwa_errors(read_targets, _write(text, ".csv"))


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".skymodel", ".json", ".dat"])
@FUZZ
@given(text=_any_text)
def test_reference_catalogues(suffix, text):
    _only_lwa_errors(read_reference_catalog, _write(text, suffix))


_toml_values = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8), st.booleans(),
                         st.lists(st.integers(), max_size=3))
_toml = st.one_of(
    st.text(max_size=200),
    st.tuples(st.sampled_from(["imaging", "transient", "dewarp", "flag", "peel", "nothing", "stack", "report"]),
              st.sampled_from(["size", "scale_deg", "v_sigma", "no_such_key", "bands_mhz", "nodes", "url"]),
              _toml_values).map(lambda t: f"[{t[0]}]\n{t[1]} = {t[2]!r}\n".replace("'", '"')),
)


@FUZZ
@given(_toml)
def test_toml_config(text):
    _only_lwa_errors(load_config, _write(text, ".toml"))


@pytest.mark.parametrize("suffix", [".csv", ".yml", ".txt"])
@FUZZ
@given(text=_any_text)
def test_health_files(suffix, text):
    _only_lwa_errors(read_health_file, _write(text, suffix))


_spec_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 500), st.floats(allow_nan=False, width=32), _cells),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(
        st.sampled_from(["name", "ra", "dec", "flux_jy", "v_frac", "stokes", "intervals", "sigma_jy", "baselines",
                         "amplitude_jy", "channels", "integrations"]), children, max_size=4)),
    max_leaves=12)
_specs = st.dictionaries(st.sampled_from(["noise", "sources", "transients", "rfi", "hot_baselines", "ionosphere",
                                          "dead_antennas", "n_intervals", "galaxies"]), _spec_values, max_size=4)


@FUZZ
@given(_specs)
def test_simulation_specs(spec):
    _only_lwa_errors(parse_spec, spec)


@FUZZ
@given(st.text(max_size=200))
def test_simulation_spec_yaml_text(text):
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # the CLI reports a YAML error itself
    _only_lwa_errors(parse_spec, data)
