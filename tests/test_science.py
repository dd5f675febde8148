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
    "dewarp_residual": ("goal dewarp_residual: each anchor judged by the screen fitted without it (lwa-dewarp's "
                        "held-out refits) against its true offset: 83 % (15/18) of isolated sources offset >= 1 beam "
                        "within 0.2 beam on iono_rfi_hot, 58 % (15/26) on low_elevation (65 % with w-stacking), 68 % (15/22) on emitter_iono, "
                        "89 % (49/55) on dense_iono, 94 % (16/17) on real_density_iono (two runs); the anchors' "
                        "measured positions are within 0.02-0.09 beam of the truth: the misses are the screen's "
                        "held-out predictions on the edge of the anchors' hull (extrapolation; 93-100 % inside it). "
                        "At the anchor density of 4096^2 images (100-1000 anchors) 97-100 % (unit test)",
                        frozenset({"iono_rfi_hot", "low_elevation", "emitter_iono", "dense_iono", "real_density_iono"})),
    "transient_false": ("goal transient_false on ateam_peel with the wgridder (the default since the sixth round): two "
                        "Stokes V candidates at -5.07 and 5.14 sigma in 12 images (1.67 per 10); the control run (the "
                        "same sky without the A-team, the same noise, nothing peeled) has the same two at -5.09 and "
                        "5.15 sigma: peaks of this seed's thermal noise, which w-stacking's w-layers smoothed to "
                        "-5.08 and 4.5 sigma. On 8 noise-only skies 0.50 false >= 5 sigma V peaks per 12-image sky "
                        "with the wgridder (a sky fails by chance ~9 % of the time)",
                        frozenset({"ateam_peel"})),
    "flux": ("goal flux on real_density_iono: 85 % of 13 isolated sources within 5 % (two runs; 86 % of 14 with the wgridder); the sky is "
             "confused at the demo's 53' beam (deep I RMS 2.1 Jy/beam against 0.13 thermal) and the scorer's "
             "isolation sees only neighbours >= 20 % of a source's flux, not the confusion of the fainter ones",
             frozenset({"real_density_iono"})),
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

                cmd += ["--peel-sky", str(shared_data_dir() / entry["peel_sky"]), "--control-run"]
                control = ["--control", str(work / "control"), "--control-run", str(work / "control_run")]
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
