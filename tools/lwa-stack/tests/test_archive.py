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
        "samples/exo/TargetA/55MHz/hour10/TargetA_photometry.csv",
    ]
    assert (root / "samples/exo/TargetA/55MHz/hour10/TargetA_cutout.fits").exists()
    assert (root / "samples/exo/TargetA/55MHz/hour10/TargetA_cutout.png").exists()
    assert (root / "samples/exo/TargetB/55MHz/hour10/TargetB_photometry.csv").exists()  # the run's subband
    merged = pd.read_csv(root / "samples/exo/TargetA/TargetA_photometry.csv")
    assert merged["run"].tolist() == ["hour10"] and merged["Target"].tolist() == ["TargetA"]
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


# ---- several nights, concurrent archiving (real processes) ------------------------------------------

_INTERVALS = ("deep", "10min-01", "10min-02")


def _fits(path, *, date_obs: str, subband: str, value: float) -> None:
    import numpy as np
    from astropy.io import fits

    path.parent.mkdir(parents=True, exist_ok=True)
    hdr = fits.Header({"DATE-OBS": date_obs, "SUBBAND": subband, "BUNIT": "Jy/beam"})
    fits.PrimaryHDU(np.full((4, 5), value, dtype=np.float32), header=hdr).writeto(path)


def _night(rundir, *, date: str, subband: str, detect: bool = True):
    """One run folder as the driver's aggregation leaves it: images, photometry, bodies, candidates."""
    sb = rundir / subband
    stamp = date.replace("-", "")
    _fits(sb / "images" / f"{subband}-I-Deep-image.fits", date_obs=f"{date}T10:00:00", subband=subband, value=1.0)
    folder = sb / "photometry" / "TargetA"
    folder.mkdir(parents=True)
    rows = [{"target": "TargetA", "subband": subband, "interval": iv, "date_obs": f"{date}T10:{10 * i:02d}:00",
             "flux_jy": 1.5 + i, "detected": detect and i == 0} for i, iv in enumerate(_INTERVALS)]
    pd.DataFrame(rows).to_csv(folder / "TargetA_photometry.csv", index=False)
    for i, iv in enumerate(_INTERVALS):
        _fits(folder / f"TargetA_{subband}_{iv}_{stamp}T10{10 * i:02d}.fits", date_obs=f"{date}T10:{10 * i:02d}:00",
              subband=subband, value=float(i))
    saturn = sb / "solar" / "Saturn"
    saturn.mkdir(parents=True)
    pd.DataFrame({"target": ["Saturn"], "subband": [subband], "interval": ["deep"], "detected": [False]}).to_csv(
        saturn / "Saturn_photometry.csv", index=False)
    tr = sb / "transients"
    (tr / "J1000+45").mkdir(parents=True)
    pd.DataFrame({"jname": [f"J100012+451000_{stamp}"], "stokes": ["V"]}).to_csv(tr / "candidates.csv", index=False)
    (tr / "J1000+45" / f"J100012+451000_{stamp}_V.png").write_bytes(f"png {date} {subband}".encode())
    return rundir


def _archive_cmd(rundir, root, run_name, *extra):
    return ["lwa-stack", "archive", str(rundir), "--archive-root", str(root), "--sample", "stars",
            "--run-name", run_name, *extra]


def _sha256_check(root):
    for sums in sorted((root / "manifests").glob("*.sha256")):
        check = subprocess.run(["sha256sum", "--quiet", "-c", str(sums.relative_to(root))], cwd=root,
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def _mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_three_nights_accumulate(tmp_path):
    root = tmp_path / "archive"
    dates = ("2024-12-20", "2024-12-21", "2024-12-22")
    runs = {}
    for date in dates:
        # the same folder name every night, as a reused work folder gives; the run name carries the date
        rundir = _night(tmp_path / date / "10h", date=date, subband="55MHz")
        runs[date] = (rundir, f"run-{date}-10h")
        res = run_cli(_archive_cmd(rundir, root, runs[date][1]))
        assert res.returncode == 0, res.stderr
    for date, (_, run_name) in runs.items():
        stamp = date.replace("-", "")
        assert (root / "manifests" / f"{run_name}.json").is_file()
        night = root / "samples" / "stars" / "TargetA" / "55MHz" / run_name
        assert sorted(p.name for p in night.iterdir()) == sorted(
            ["TargetA_photometry.csv"] + [f"TargetA_55MHz_{iv}_{stamp}T10{10 * i:02d}.fits"
                                          for i, iv in enumerate(_INTERVALS)])
        assert (root / "detections" / "target" / "TargetA" / run_name / "TargetA_photometry.csv").is_file()
        assert (root / "detections" / "transient" / run_name / "55MHz" / "transients" / "J1000+45"
                / f"J100012+451000_{stamp}_V.png").is_file()
    # one merged table: one row per night and interval, the run named
    merged = pd.read_csv(root / "samples" / "stars" / "TargetA" / "TargetA_photometry.csv")
    assert len(merged) == 3 * len(_INTERVALS)
    assert sorted(set(zip(merged["run"], merged["interval"]))) == sorted(
        (run_name, iv) for _, run_name in runs.values() for iv in _INTERVALS)
    assert merged["date_obs"].is_monotonic_increasing
    dets = pd.read_csv(root / "detections" / "detections.csv")
    assert sorted(dets.loc[dets["kind"] == "target", "run"]) == sorted(r for _, r in runs.values())
    assert (dets["kind"] == "transient").sum() == 3
    assert not (root / "samples" / "stars" / "Saturn").exists()  # a body, even undetected, is no sample target
    _sha256_check(root)

    # re-archiving a night is a no-op: no file of the archive is rewritten
    before = _mtimes(root)
    rundir, run_name = runs[dates[0]]
    assert run_cli(_archive_cmd(rundir, root, run_name)).returncode == 0
    assert _mtimes(root) == before

    # another night under a name already archived is refused, even with --overwrite
    other = _night(tmp_path / "2024-12-23" / "10h", date="2024-12-23", subband="55MHz")
    for extra in ((), ("--overwrite",)):
        res = run_cli(_archive_cmd(other, root, run_name, *extra))
        assert res.returncode == 1 and "another observation" in res.stderr, res.stderr
    assert _mtimes(root) == before

    # --overwrite replaces the same run's changed file only; the other nights' rows stay
    rundir, run_name = runs[dates[1]]
    table = rundir / "55MHz" / "photometry" / "TargetA" / "TargetA_photometry.csv"
    df = pd.read_csv(table)
    df.loc[0, "flux_jy"] = 99.0
    df.to_csv(table, index=False)
    res = run_cli(_archive_cmd(rundir, root, run_name))
    assert res.returncode == 1 and "--overwrite" in res.stderr
    assert run_cli(_archive_cmd(rundir, root, run_name, "--overwrite")).returncode == 0
    merged = pd.read_csv(root / "samples" / "stars" / "TargetA" / "TargetA_photometry.csv")
    assert len(merged) == 3 * len(_INTERVALS)
    assert merged.loc[merged["flux_jy"] == 99.0, "run"].tolist() == [run_name]
    changed = {p for p, t in _mtimes(root).items() if before.get(p) != t}
    others = [runs[d][1] for d in (dates[0], dates[2])]
    assert not [p for p in changed if any(o in p.parts for o in others)]
    _sha256_check(root)


def test_concurrent_archives_lose_nothing(tmp_path):
    """16 subbands of one night archived into one root at the same time, each by its own process."""
    root = tmp_path / "archive"
    subbands = [f"{mhz}MHz" for mhz in (18, 23, 27, 32, 36, 41, 46, 50, 55, 59, 64, 69, 73, 78, 82, 87)]
    procs = []
    for sb in subbands:
        rundir = _night(tmp_path / sb / "10h", date="2024-12-20", subband=sb)
        procs.append(subprocess.Popen(_archive_cmd(rundir, root, f"night-10h-{sb}"), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert sorted(p.stem for p in (root / "manifests").glob("*.json")) == sorted(f"night-10h-{sb}" for sb in subbands)
    merged = pd.read_csv(root / "samples" / "stars" / "TargetA" / "TargetA_photometry.csv")
    assert len(merged) == len(subbands) * len(_INTERVALS)
    assert sorted(set(merged["subband"])) == sorted(subbands)
    dets = pd.read_csv(root / "detections" / "detections.csv")
    assert sorted(dets.loc[dets["kind"] == "target", "run"]) == sorted(f"night-10h-{sb}" for sb in subbands)
    assert (dets["kind"] == "transient").sum() == len(subbands)
    assert not [p for p in root.rglob(".*")]  # no temporary left behind
    _sha256_check(root)
