"""Antenna-health flagging: file formats, name/correlator mapping, the MNC path, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_flag import read_health_file, resolve_antennas


@pytest.mark.parametrize("name, text, names, corrs", [
    ("a.csv", "antname\nLWA-005\nLWA123B\n", ["LWA-005", "LWA-123"], []),
    ("b.csv", "name,healthy\nLWA-005,true\nLWA-006,false\nLWA-007,no\n", ["LWA-006", "LWA-007"], []),
    ("c.csv", "corr_num,bad\n12,1\n13,0\n40,yes\n", [], [12, 40]),
    ("d.csv", "LWA-001, LWA-002\n17\n", ["LWA-001", "LWA-002"], [17]),
    ("e.yml", "- LWA-010A\n- 65\n- LWA-010B\n", ["LWA-010"], [65]),
    ("f.yaml", "mjd: 60664.5\nbadants: [LWA-200, 201A]\ncorr_nums: [3]\n", ["LWA-200", "LWA-201"], [3]),
    ("g.json", '{"bad_correlator_numbers": [1, 2, 3]}', [], [1, 2, 3]),
    ("h.json", '[60664.51, ["LWA-005B", "LWA-099A"]]', ["LWA-005", "LWA-099"], []),
    ("i.yml", "", [], []),
])
def test_health_file_formats(tmp_path, name, text, names, corrs):
    path = tmp_path / name
    path.write_text(text)
    health = read_health_file(path)
    assert list(health.names) == names and list(health.corr_nums) == corrs


@pytest.mark.parametrize("name, text, message", [
    ("a.csv", "station,x\nfoo,1\n", "no antenna column"),
    ("b.yml", "{something: [1, 2]}", "no list of bad antennas"),
    ("c.yml", "[LWA-1, banana]", "'banana' is neither"),
    ("d.yml", "a: [b\n", "not valid YAML"),
    ("e.csv", "name,bad\nLWA-001,maybe\n", "true/false"),
])
def test_health_file_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LwaError, match=message):
        read_health_file(path)


def test_ids_option(tmp_path):
    path = tmp_path / "n.yml"
    path.write_text("[5, 17]\n")
    assert read_health_file(path, ids="names").names == ("LWA-005", "LWA-017")
    assert read_health_file(path).corr_nums == (5, 17)
    path.write_text("[LWA-005]\n")
    with pytest.raises(LwaError, match="not a correlator number"):
        read_health_file(path, ids="correlators")


def test_resolve_names_and_correlators(small_sim, system_cfg, tmp_path):
    files, truth = small_sim
    ants = truth["antennas"]
    ms = files[0]
    absent = next(c for c in range(352) if c not in {a["corr_num"] for a in ants})
    path = tmp_path / "h.yml"
    path.write_text(json.dumps({"badants": [ants[2]["name"], "LWA-999"],
                                "corr_nums": [ants[5]["corr_num"], absent]}))
    health = read_health_file(path)
    found, missing = resolve_antennas(health, ms, system_cfg=system_cfg)
    assert found == {2: ants[2]["name"], 5: ants[5]["name"]}
    assert "LWA-999" in missing and any(m.startswith(f"corr {absent} (LWA-") for m in missing)
    with pytest.raises(LwaError, match="--system-cfg"):
        resolve_antennas(health, ms)  # a 16-antenna MS is not in correlator order


def test_cli_flags_listed_antennas(small_sim, tmp_path, digest, flags_of):
    files, truth = small_sim
    ms = files[0]
    before = digest(ms)
    bad = [truth["antennas"][i]["name"] for i in (1, 9)]
    health = tmp_path / "badants.csv"
    health.write_text("antname\n" + "\n".join(n.replace("-", "") + "A" for n in bad) + "\n")
    out = tmp_path / "out.ms"
    res = run_cli(["lwa-flag", "antennas", str(ms), str(health), "-o", str(out), "--json"])
    assert res.returncode == 0, res.stderr
    assert digest(ms) == before
    summary = json.loads(res.stdout)
    assert [a["antenna"] for a in summary["flagged"]["antennas"]] == [1, 9]
    flags, a1, a2, _ = flags_of(out)
    involved = np.isin(a1, [1, 9]) | np.isin(a2, [1, 9])
    assert flags[involved].all() and not flags[~involved].any()
    assert summary["flagged_percent_after"] == pytest.approx(100 * involved.mean(), rel=1e-6)
    assert summary["flagged"]["rows_flagged"] == int(involved.sum())
    assert (tmp_path / "out.flag-antennas.json").exists()


def test_older_correlator_antenna_names(small_sim, copy_ms, tmp_path, flags_of):
    """An MS from an older correlator names its antennas ANT001 ...: a health file in those names
    flags them (issue 16); LWA station names are not confused with ANT numbers."""
    from casacore.tables import table

    (ms,) = copy_ms(small_sim[0][0])
    with table(str(ms / "ANTENNA"), readonly=False, ack=False) as t:
        t.putcol("NAME", [f"ANT{i + 1:03d}" for i in range(t.nrows())])
    health = tmp_path / "badants.yml"
    health.write_text("- ANT003\n- ant-12\n- LWA-003\n")
    res = run_cli(["lwa-flag", "antennas", str(ms), str(health), "--in-place", "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert [a["name"] for a in summary["flagged"]["antennas"]] == ["ANT003", "ANT012"]
    assert summary["flagged"]["not_in_ms"] == ["LWA-003"]
    flags, a1, a2, _ = flags_of(ms)
    involved = np.isin(a1, [2, 11]) | np.isin(a2, [2, 11])
    assert flags[involved].all() and not flags[~involved].any()


def test_mnc_api_when_importable(small_sim, copy_ms, tmp_path, flags_of):
    """The MNC path: a stand-in `mnc` package with the real API's signature and return shape
    (anthealth.get_badants(method, time=mjd) -> (mjd, ['LWA-xxxA', ...]))."""
    files, truth = small_sim
    (ms,) = copy_ms(files[0])
    name = truth["antennas"][4]["name"]
    pkg = tmp_path / "fake" / "mnc"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "anthealth.py").write_text(
        "def get_badants(method, time=None):\n"
        f"    assert method == 'selfcorr' and 60664 < time < 60665\n"
        f"    return (time - 0.01, ['{name}B', 'LWA-999A'])\n")
    env = {"PYTHONPATH": str(tmp_path / "fake") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = run_cli(["lwa-flag", "antennas", str(ms), "--in-place", "--json"], env=env)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["flagged"]["source"].startswith("mnc:anthealth.get_badants('selfcorr'")
    assert summary["flagged"]["antennas"] == [{"antenna": 4, "name": name}]
    flags, a1, a2, _ = flags_of(ms)
    assert flags[(a1 == 4) | (a2 == 4)].all() and not flags[(a1 != 4) & (a2 != 4)].any()
    # neither a file nor mnc: one clear line, exit 1
    res = run_cli(["lwa-flag", "antennas", str(ms), "--in-place", "--overwrite"])
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "mnc package is not importable" in res.stderr
