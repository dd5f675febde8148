"""End-to-end science: skies of tests/scenarios/ through the real chain (bin/demo.sh), scored
against their truth by `lwa-sim score`, goal by goal (issue 15, item 5).

CI runs the subset marked `ci` in tests/scenarios/suite.yaml (it touches every goal); every sky:

    LWA_SCIENCE_ALL=1 .venv/bin/pytest -m science tests/test_science.py -v

Goals that the chain does not meet yet are expected failures (`xfail`, not strict) whose reason
names the goal; when one starts to hold the run reports XPASS. Scores land in
`$LWA_SCIENCE_OUT/<scenario>/score.json` when that variable is set (docs/science.md).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "scenarios"
SUITE = yaml.safe_load((SCENARIOS / "suite.yaml").read_text())
RUN_ALL = os.environ.get("LWA_SCIENCE_ALL", "") not in ("", "0")

# Goals of issue 15 item 5 that do not hold yet with the defaults (measured, docs/science.md):
# goal -> (reason, the scenarios where it fails). A goal failing elsewhere is a regression.
NOT_YET = {
    "transient_false": ("goal transient_false: not re-measured on this sky since the trend and near-sidelobe "
                        "rules of lwa-transient (10 per 10 images before them; 0-0.83 on the five skies measured "
                        "after)", frozenset({"hot_strengths"})),
    "transient_recall": ("goal transient_recall: on loud_bursts 8 of 11 events >= 8 sigma found: the deep V image "
                         "holds the fluence of 60-500 Jy V bursts (RMS 0.26-0.31 Jy/beam against 0.065 in a 10-min V "
                         "image) and the 10 min V - deep V search inherits it: a 12 Jy one-integration burst at 20 "
                         "sigma in its 10-min image comes out at 5.8 sigma (artefact), a 6 Jy one is missed; on gains_rfi "
                         "a 9 Jy I burst (53 sigma in its 10-min image, 1.6 Jy in the deep I) is inside the mask "
                         "of the deep I's sources", frozenset({"loud_bursts", "gains_rfi"})),
    "flag_false": ("goal flag_false: AOFlagger's Stokes I frequency-direction pass flags 2.01 % (quiet_noiono), "
                   "2.98 % (low_elevation) and 2.96 % (ateam_peel, the same without the A-team) of clean data, "
                   "7-8 % of the edge channels; 0-1.7 % on the other skies",
                   frozenset({"quiet_noiono", "low_elevation", "ateam_peel"})),
    "target_v": ("goal target_v: the peak V of the 8 Jy V target of hot_strengths is -6.6 % (fitted -1.7 %); "
                 "within 5 % on the other skies", frozenset({"hot_strengths"})),
    "dewarp_residual": ("goal dewarp_residual: each anchor judged by the screen fitted without it (lwa-dewarp's "
                        "held-out refits) against its true offset: 86 % (19/22) of sources offset >= 1 beam within "
                        "0.2 beam on iono_rfi_hot, 82 % on a second seed, 52 % (14/27) on low_elevation; the misses "
                        "are anchors on the edge of the anchors' hull (extrapolation), 93-100 % inside it",
                        frozenset({"iono_rfi_hot", "low_elevation"})),
    "flux": ("goal flux: next to a 400 Jy source with an RFI emitter (bright_bursts) 65 % of point sources within "
             "5 %, median 3.7 % (measured before the rigid-patch dewarp)", frozenset({"bright_bursts"})),
    "ateam_rms": ("goal ateam_rms: peeled with the shipped model the deep image 3-10 deg from the A-team has "
                  "1.8x (estimated; 2.1x against a run of the control sky) the RMS of the sky without it",
                  frozenset({"ateam_peel"})),
}


def _scenarios():
    for name, entry in SUITE["scenarios"].items():
        marks = [pytest.mark.science, pytest.mark.slow]
        if not (entry.get("ci") or RUN_ALL):
            marks.append(pytest.mark.skip(reason="not in the CI subset (LWA_SCIENCE_ALL=1 runs every sky)"))
        yield pytest.param(name, marks=marks, id=name)


def _env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    cache: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in cache:
            entry = SUITE["scenarios"][name]
            out_root = os.environ.get("LWA_SCIENCE_OUT")
            work = Path(out_root) / name if out_root else tmp_path_factory.mktemp(name)
            cmd = ["bash", str(REPO / "bin" / "demo.sh"), str(work), "--truth", str(SCENARIOS / f"{name}.yaml"),
                   "--seed", str(entry["seed"]), "--start", entry["start"]]
            control = []
            if entry.get("peel_sky"):  # a path in the reference data; the sky without its A-team is the control
                from lwa_common.testing import shared_data_dir

                cmd += ["--peel-sky", str(shared_data_dir() / entry["peel_sky"]), "--control"]
                control = ["--control", str(work / "control")]
            res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=2400, check=False)
            assert res.returncode == 0, res.stderr[-3000:]
            score = subprocess.run(["lwa-sim", "score", str(work / "run"), "--truth", str(work / "sim" / "truth.json"),
                                    "-o", str(work / "score.json"), "--overwrite", *control],
                                   capture_output=True, text=True, env=_env(), timeout=600, check=False)
            assert score.returncode == 0, score.stderr[-3000:]
            (work / "score.txt").write_text(score.stdout)
            logging.getLogger(__name__).info("%s:\n%s", name, score.stdout)
            cache[name] = json.loads((work / "score.json").read_text())
        return cache[name]

    return run


@pytest.mark.parametrize("goal", [
    "psf_sampling", "transient_recall", "transient_false", "flag_recall", "flag_false", "dewarp_engaged",
    "dewarp_residual", "dewarp_no_harm", "flux", "target_v", "ateam_power", "ateam_field", "ateam_rms",
])
@pytest.mark.parametrize("scenario", list(_scenarios()))
def test_goal(scored, scenario, goal, request):
    result = scored(scenario)
    g = result["goals"][goal]
    if g["status"] == "n/a":
        pytest.skip(f"{goal}: nothing to test in this sky ({g['detail']})")
    if goal in NOT_YET and scenario in NOT_YET[goal][1]:
        request.applymarker(pytest.mark.xfail(reason=NOT_YET[goal][0], strict=False))
    assert g["status"] == "pass", f"{goal}: {g['detail']}"
