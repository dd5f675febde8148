"""archive: three tiers, verified sha256 manifests, sources kept, idempotent rerun, --move."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pandas as pd
import pytest

from lwa_common.errors import LwaError
from lwa_common.testing import run_cli
from lwa_stack.archive import archive_run, verify_manifest


@pytest.fixture
def run(synth):
    run = synth.run
    synth.make(55, stokes="V")
    det = run / "55MHz" / "detections"
    det.mkdir(parents=True)
    pd.DataFrame({"Target": ["TargetA"], "Detection": [True], "subband": ["55MHz"]}).to_csv(
        det / "TargetA_photometry.csv", index=False)
    synth.make(55, folder=det.parent.parent, name="detections/TargetA_cutout.fits", noise=0.1, size=40)
    (det / "TargetA_cutout.png").write_bytes(b"\x89PNG not really")
    pd.DataFrame({"Target": ["TargetB"], "Detection": [False]}).to_csv(det / "TargetB_photometry.csv", index=False)
    (det / "SolarSystem").mkdir()
    pd.DataFrame({"Target": ["Moon"], "Detection": [True]}).to_csv(det / "SolarSystem" / "Moon_photometry.csv",
                                                                   index=False)
    tr = run / "55MHz" / "transients"
    (tr / "J1000+45").mkdir(parents=True)
    pd.DataFrame({"jname": ["J100012+451000"], "stokes": ["V"]}).to_csv(tr / "candidates.csv", index=False)
    (tr / "J1000+45" / "J100012+451000_V.png").write_bytes(b"png")
    (run / "fake.ms").mkdir()
    (run / "fake.ms" / "table.dat").write_bytes(b"visibilities")
    return run


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_archive_tiers_checksums_and_source_kept(run, tmp_path):
    before = _tree(run)
    root = tmp_path / "archive"
    manifest = archive_run(run, root=root, sample="exo", run_name="hour10")
    assert _tree(run) == before  # source untouched
    assert verify_manifest(root / "manifests" / "hour10.json") == []
    files = {f["source"]: f for f in manifest["files"]}
    assert "fake.ms/table.dat" not in files  # MS excluded by default
    phot = files["55MHz/detections/TargetA_photometry.csv"]
    assert sorted(phot["copies"]) == [
        "detections/target/TargetA/hour10/TargetA_photometry.csv",
        "runs/hour10/55MHz/detections/TargetA_photometry.csv",
        "samples/exo/TargetA/55MHz/TargetA_photometry.csv",
    ]
    assert (root / "samples/exo/TargetA/55MHz/TargetA_cutout.fits").exists()
    assert (root / "samples/exo/TargetA/55MHz/TargetA_cutout.png").exists()
    assert (root / "samples/exo/TargetB/55MHz/TargetB_photometry.csv").exists()  # the run's subband
    assert not (root / "detections/target/TargetB").exists()  # not detected
    assert not (root / "samples/exo/Moon").exists()  # solar-system bodies are not sample targets
    assert (root / "detections/solar_system/Moon/hour10/Moon_photometry.csv").exists()
    assert (root / "detections/transient/hour10/55MHz/transients/J1000+45/J100012+451000_V.png").exists()
    for entry in manifest["files"]:
        assert entry["sha256"] == before[entry["source"]]
        for copy in entry["copies"]:
            assert hashlib.sha256((root / copy).read_bytes()).hexdigest() == entry["sha256"]
    check = subprocess.run(["sha256sum", "--quiet", "-c", "manifests/hour10.sha256"], cwd=root, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rerun_is_idempotent_and_changes_need_overwrite(run, tmp_path):
    root = tmp_path / "archive"
    first = archive_run(run, root=root, sample="exo")
    copy = root / first["files"][0]["copies"][0]
    mtime = copy.stat().st_mtime_ns
    second = archive_run(run, root=root, sample="exo")
    assert copy.stat().st_mtime_ns == mtime  # not copied again
    assert [f["sha256"] for f in first["files"]] == [f["sha256"] for f in second["files"]]
    target = run / "55MHz" / "detections" / "TargetA_photometry.csv"
    target.write_text(target.read_text() + "\n")
    with pytest.raises(LwaError, match="differ from the run's"):
        archive_run(run, root=root, sample="exo")
    archive_run(run, root=root, sample="exo", overwrite=True)
    assert verify_manifest(root / "manifests" / f"{run.name}.json") == []
    # a corrupted archive copy is detected
    (root / "runs" / run.name / "55MHz" / "transients" / "candidates.csv").write_text("tampered")
    assert verify_manifest(root / "manifests" / f"{run.name}.json") == [f"runs/{run.name}/55MHz/transients/candidates.csv"]


def test_move_deletes_sources_only_after_verification(run, tmp_path):
    root = tmp_path / "archive"
    res = run_cli(["lwa-stack", "archive", str(run), "--archive-root", str(root), "--sample", "exo", "--move",
                   "--json"])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["files"] >= 8
    remaining = [p for p in run.rglob("*") if p.is_file()]
    assert [p.relative_to(run).as_posix() for p in remaining] == ["fake.ms/table.dat"]  # not archived, kept
    assert verify_manifest(out["outputs"][0]) == []


def test_archive_refuses_root_inside_run_and_bad_sample(run, tmp_path):
    with pytest.raises(LwaError, match="inside the archive root"):
        archive_run(run, root=run.parent, sample="exo")
    res = run_cli(["lwa-stack", "archive", str(run), "--archive-root", str(tmp_path / "a"), "--sample", "a/b"])
    assert res.returncode == 2
