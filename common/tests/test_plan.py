"""lwa-common audit/state: the driver's pre-flight check and run state."""

from __future__ import annotations

import json

from lwa_common.testing import run_cli


def test_audit_lists_every_problem_and_exits_1(tmp_path, sim_cache):
    data, _ = sim_cache("audit", {"beam": False}, n_int=2, n_antennas=8, n_channels=2,
                        start="2024-12-20T11:56:00")
    res = run_cli(["lwa-common", "audit", "--data", str(data), "--subbands", "55,73", "--range", "10h-11h",
                   "--date", "2024-12-20", "--workdir", str(tmp_path / "w"), "--bp-table",
                   str(tmp_path / "nope.B"), "--file", str(tmp_path / "targets.csv"), "--tool",
                   "no-such-tool-xyz", "-o", str(tmp_path / "plan.json")])
    assert res.returncode == 1
    err = res.stderr
    assert "73MHz LST 10h" in err and "no MS between" in err
    assert "nope.B" in err and "targets.csv" in err and "no-such-tool-xyz" in err
    assert "55MHz" not in err.split("no MS between")[0].splitlines()[-1]
    assert err.strip().splitlines()[-1].startswith("lwa-common: error: pre-flight audit found 4 problem(s)")
    assert not (tmp_path / "plan.json").exists()


def test_audit_writes_plan(tmp_path, sim_cache):
    data, truth = sim_cache("audit", {"beam": False}, n_int=2, n_antennas=8, n_channels=2,
                            start="2024-12-20T11:56:00")
    res = run_cli(["lwa-common", "audit", "--data", str(data), "--subbands", "55", "--range", "10h-11h",
                   "--date", "2024-12-20", "--workdir", str(tmp_path / "w"), "--tool", "wsclean",
                   "-o", str(tmp_path / "plan.json")])
    assert res.returncode == 0, res.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [h["label"] for h in plan["hours"]] == ["10h"]
    files = [p.rsplit("/", 1)[-1] for p in plan["ms"]["55MHz"]["10h"]]
    assert files == truth["observation"]["subbands"][0]["files"]


def test_state_updates_nested_keys(tmp_path):
    f = tmp_path / "state.json"
    assert run_cli(["lwa-common", "state", str(f), "subbands.55MHz.image=done", "label=10h"]).returncode == 0
    assert run_cli(["lwa-common", "state", str(f), "subbands.55MHz.job=17"]).returncode == 0
    state = json.loads(f.read_text())
    assert state["subbands"]["55MHz"] == {"image": "done", "job": "17"} and state["label"] == "10h"
    res = run_cli(["lwa-common", "state", str(f), "oops"])
    assert res.returncode == 1 and "not KEY=VALUE" in res.stderr


def test_audit_leaves_out_an_unreadable_ms_and_names_it(tmp_path, sim_cache):
    """One MS whose data storage is gone: it is left out of the plan with a warning, the rest planned;
    a subband-hour none of whose MS reads stays planned (it fails on its own, the night goes on)."""
    import shutil

    data, truth = sim_cache("audit", {"beam": False}, n_int=2, n_antennas=8, n_channels=2,
                            start="2024-12-20T11:56:00")
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    names = truth["observation"]["subbands"][0]["files"]
    broken = copy / names[0]
    for f in broken.glob("table.f*"):  # every column's storage: no row of DATA reads
        f.unlink()
    args = ["lwa-common", "audit", "--data", str(copy), "--subbands", "55", "--range", "10h-11h", "--date",
            "2024-12-20", "--workdir", str(tmp_path / "w"), "-o", str(tmp_path / "plan.json")]
    res = run_cli(args)
    assert res.returncode == 0, res.stderr
    assert names[0] in res.stderr and "warning" in res.stderr.lower()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in plan["ms"]["55MHz"]["10h"]] == names[1:]
    assert list(plan["unusable"]) == [str(broken)]

    for name in names[1:]:
        for f in (copy / name).glob("table.f*"):
            f.unlink()
    res = run_cli(args[:-1] + [str(tmp_path / "plan2.json")])
    assert res.returncode == 0 and "55MHz LST 10h: none of its 2 MS is readable" in res.stderr
    plan = json.loads((tmp_path / "plan2.json").read_text())
    assert len(plan["ms"]["55MHz"]["10h"]) == 2 and plan["unusable"] == {}
