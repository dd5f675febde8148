"""The observatory's archive as it is stored: names, tars, hour folders, strays, a broken tar.

`<root>/<XXMHz>/<YYYY-MM-DD>/<HH>/YYYYMMDD_HHMMSS_XXMHz[_averaged].ms[.tar]`, read by find_ms, the
audit, `lwa-common unpack` and the driver's Setup stage; the archive is never written. The Slurm job
graph (a --dry-run) pins each subband's jobs to its node.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from astropy.io import fits

from lwa_common.config import Config
from lwa_common.datatree import find_ms, local_copies
from lwa_common.errors import LwaError
from lwa_common.naming import parse_ms_name
from lwa_common.plan import job_resources

REPO = Path(__file__).resolve().parents[1]
RUN_HOUR = REPO / "bin" / "run_hour.sh"
START = "2024-12-20T11:56:00"  # LST ~10h01m at OVRO


def _env() -> dict[str, str]:
    venv_bin = str(Path(os.sys.executable).parent)
    return {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "MPLBACKEND": "Agg"}


def _tar(ms: Path, tar: Path, *, arcname: str | None) -> None:
    with tarfile.open(tar, "w") as tf:
        if arcname is None:  # the MS's files at the top of the tar
            for p in sorted(ms.iterdir()):
                tf.add(p, arcname=p.name)
        else:
            tf.add(ms, arcname=arcname)


@pytest.fixture(scope="module")
def archive(sim_cache, tmp_path_factory):
    """55 MHz in hour folders (averaged, plain, tarred, a corrupt tar, strays), 73 MHz deeper and flat."""
    spec = {"noise": {"sigma_jy": 1.0}, "sources": [
        {"name": "bright", "ra": "10h05m00s", "dec": "+52d00m00s", "flux_jy": 300, "spectral_index": -0.8}]}
    data, _ = sim_cache("archive_tree", spec, start=START, n_int=6, subbands=(55, 73), n_channels=4, n_antennas=40)
    root = tmp_path_factory.mktemp("archive")
    hour55 = root / "55MHz" / "2024-12-20" / "11"
    hour55.mkdir(parents=True)
    ms55 = sorted(data.glob("*_55MHz.ms"))
    stem = [p.name.removesuffix(".ms") for p in ms55]
    shutil.copytree(ms55[0], hour55 / f"{stem[0]}_averaged.ms")
    _tar(ms55[1], hour55 / f"{stem[1]}_averaged.ms.tar", arcname=f"{stem[1]}_averaged.ms")
    shutil.copytree(ms55[2], hour55 / f"{stem[2]}.ms")
    (hour55 / f"{stem[3]}_averaged.ms.tar").write_bytes(b"\x00not a tar at all" * 64)
    _tar(ms55[4], hour55 / f"{stem[4]}_averaged.ms.tar", arcname=None)  # the MS's files at the top
    shutil.copytree(ms55[5], hour55 / f"{stem[5]}_averaged.ms")
    (hour55 / "README.txt").write_text("stray file\n")
    (hour55 / "20241220_115600_55MHz.log").write_text("stray log\n")
    old = root / "55MHz" / "2024-06-01" / "03"  # another night: pruned by date
    old.mkdir(parents=True)
    shutil.copytree(ms55[0], old / "20240601_030000_55MHz_averaged.ms")
    deep = root / "73MHz" / "2024-12-20" / "11" / "spill"
    deep.mkdir(parents=True)
    for i, ms in enumerate(sorted(data.glob("*_73MHz.ms"))):
        if i % 2:
            _tar(ms, deep / f"{ms.name.removesuffix('.ms')}_averaged.ms.tar", arcname=None)
        else:
            shutil.copytree(ms, root / "73MHz" / f"{ms.name.removesuffix('.ms')}_averaged.ms")  # flat
    return root, stem


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_find_ms_reads_every_form(archive):
    root, stem = archive
    found = find_ms(root, 55, dates=["2024-12-20"])
    assert [p.name for p in found] == [f"{stem[0]}_averaged.ms", f"{stem[1]}_averaged.ms.tar", f"{stem[2]}.ms",
                                       f"{stem[3]}_averaged.ms.tar", f"{stem[4]}_averaged.ms.tar",
                                       f"{stem[5]}_averaged.ms"]
    assert [parse_ms_name(p.name).subband_mhz for p in found] == [55] * 6
    assert parse_ms_name(found[1].name).tarred and parse_ms_name(found[0].name).averaged
    assert len(find_ms(root, 55)) == 7  # without a date filter the June night is found too
    assert len(find_ms(root / "73MHz", 73)) == 6  # flat and three levels deep, tars with the MS at the top
    assert find_ms(root, 82) == []


def test_unpack_into_work_never_into_the_archive(archive, tmp_path):
    root, stem = archive
    before = _snapshot(root)
    usable, failed = local_copies(find_ms(root, 55, dates=["2024-12-20"]), tmp_path / "work")
    assert [p.name for p in usable] == [f"{stem[0]}_averaged.ms", f"{stem[1]}_averaged.ms", f"{stem[2]}.ms",
                                        f"{stem[4]}_averaged.ms", f"{stem[5]}_averaged.ms"]
    assert usable[1].parent == tmp_path / "work" and (usable[1] / "table.dat").is_file()
    assert [(f.name, "unreadable tar" in why) for f, why in failed] == [(f"{stem[3]}_averaged.ms.tar", True)]
    assert not [p for p in (tmp_path / "work").iterdir() if p.name.startswith(".")]  # nothing half-unpacked
    assert _snapshot(root) == before


def _driver(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RUN_HOUR), *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout, check=False)


def test_driver_on_the_archive_tree_pins_subbands_to_nodes(archive, tmp_path):
    root, stem = archive
    before = _snapshot(root)
    local = tmp_path / "nvme"
    config = tmp_path / "cluster.toml"
    config.write_text(f'[cluster]\nnodes = ["55=lwacalim05", "73=lwacalim07", "82=lwacalim09"]\n'
                      f'local_workdir = "{local}"\n')
    work = tmp_path / "run"
    args = ["--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55,73", "--data", str(root),
            "--workdir", str(work), "--config", str(config)]
    res = _driver([*args, "--slurm", "--dry-run", "--remap", "73MHz=lwacalim08", "--peel-sky", str(config)])
    assert res.returncode == 0, res.stderr[-2000:]
    graph = [line.split("\t") for line in (work / "jobs" / "graph.tsv").read_text().splitlines()]
    names = [g[0] for g in graph]
    assert names == ["setup-10h-55MHz", "refine-10h-55MHz", "peel-10h-55MHz", "image-10h-55MHz",
                     "setup-10h-73MHz", "refine-10h-73MHz", "peel-10h-73MHz", "image-10h-73MHz", "aggregate-10h"]
    for name, _, options in graph:
        sb = name.split("-")[-1]
        want = {"55MHz": "--nodelist=lwacalim05", "73MHz": "--nodelist=lwacalim08"}.get(sb)
        nodes = [o for o in options.split() if o.startswith(("--nodelist", "--partition"))]
        assert nodes == ([want] if want else []), (name, options)
    assert json.loads((work / "state.json").read_text())["mode"] == "slurm-dry-run"
    assert "nothing submitted" in res.stderr  # the graph is printed too, each job with its resources
    assert all(f"  {name}\t" in res.stderr for name in names)
    ids = {g[0]: g[1] for g in graph}
    options = dict((g[0], g[2]) for g in graph)
    assert f"--dependency=afterok:{ids['setup-10h-55MHz']}" in options["refine-10h-55MHz"]
    assert f"--dependency=afterok:{ids['refine-10h-55MHz']}" in options["peel-10h-55MHz"]
    # a remap of a subband not run is refused before anything
    bad = _driver([*args, "--slurm", "--dry-run", "--remap", "64=lwacalim01"])
    assert bad.returncode == 1 and "--remap 64=lwacalim01" in bad.stderr

    # the Setup stage as its job runs it: tars unpacked onto the local disk, the broken one reported
    res = _driver([*args, "--stage", "setup", "10h", "55MHz"])
    assert res.returncode == 0, res.stderr[-2000:]
    ms = sorted(p.name for p in (local / "10h" / "55MHz" / "ms").iterdir())
    assert ms == [f"{stem[0]}_averaged.ms", f"{stem[1]}_averaged.ms", f"{stem[2]}.ms", f"{stem[4]}_averaged.ms",
                  f"{stem[5]}_averaged.ms"]
    assert f"{stem[3]}_averaged.ms.tar" in res.stderr and "unreadable tar" in res.stderr
    assert not (work / "10h" / "55MHz" / "ms").exists()  # working data only on the local disk
    assert (work / "10h" / "55MHz" / "logs" / "unpack.log").is_file()
    assert _snapshot(root) == before  # the archive was only read


@pytest.mark.slow
def test_local_run_on_the_archive_tree(archive, tmp_path):
    """The whole chain, locally, on the archive as stored: images from the five usable MS."""
    root, _ = archive
    before = _snapshot(root)
    config = tmp_path / "quick.toml"
    config.write_text("[imaging]\nintervals_out = 3\n")
    work = tmp_path / "run"
    res = _driver(["--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55", "--data", str(root / "55MHz"),
                   "--workdir", str(work), "--local-workdir", str(tmp_path / "nvme"), "--config", str(config),
                   "--image-size", "192", "--image-scale-deg", "0.6", "--niter-scale", "0.002"], timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    images = sorted((work / "10h" / "55MHz" / "images").glob("55MHz-*-image.fits"))
    assert len(images) == 4 + 1 + 3 + 3, images
    assert fits.getheader(images[0])["DATE-OBS"].startswith("2024-12-20T11:5")
    assert (tmp_path / "nvme" / "10h" / "55MHz" / "55MHz-10h.ms").is_dir()  # the hour's MS on the local disk
    assert "unreadable tar" in (work / "10h" / "55MHz" / "logs" / "unpack.log").read_text()
    assert _snapshot(root) == before


def _graph_options(work: Path) -> dict[str, list[str]]:
    rows = [line.split("\t") for line in (work / "jobs" / "graph.tsv").read_text().splitlines()]
    return {name: options.split() for name, _, options in rows}


def test_slurm_job_graph_carries_each_job_types_resources(archive, tmp_path):
    """Every job asks for its type's CPUs, memory and time limit (config cluster.jobs) under the config's
    account; --cpus/--mem/--time/--account override all."""
    root, _ = archive
    peel = tmp_path / "peel.json"
    peel.write_text("[]")
    base = ["--range", "10h-11h", "--date", "2024-12-20", "--subbands", "55", "--data", str(root), "--slurm",
            "--dry-run", "--peel-sky", str(peel)]
    res = _driver([*base, "--workdir", str(tmp_path / "default")])
    assert res.returncode == 0, res.stderr[-2000:]
    want = job_resources(Config().cluster.jobs)
    graph = _graph_options(tmp_path / "default")
    # the sky peel's model refined once per subband-hour: a Refine job between Setup and the Peel array
    assert sorted(graph) == ["aggregate-10h", "image-10h-55MHz", "peel-10h-55MHz", "refine-10h-55MHz",
                             "setup-10h-55MHz"]
    ids = {row.split("\t")[0]: row.split("\t")[1]
           for row in (tmp_path / "default" / "jobs" / "graph.tsv").read_text().splitlines()}
    assert f"--dependency=afterok:{ids['setup-10h-55MHz']}" in graph["refine-10h-55MHz"]
    assert f"--dependency=afterok:{ids['refine-10h-55MHz']}" in graph["peel-10h-55MHz"]
    for name, options in graph.items():
        job = want[name.split("-")[0]]
        assert f"--cpus-per-task={job['cpus']}" in options and f"--mem={job['mem']}" in options, (name, options)
        assert f"--time={job['time']}" in options and not [o for o in options if o.startswith("--account")]
    array = [o for o in graph["peel-10h-55MHz"] if o.startswith("--array=")]
    assert array == [f"--array=0-5%{Config().cluster.peel_tasks}"]  # 6 MS (one an unreadable tar)
    # a site's own sizes from its config, and the command line over both
    config = tmp_path / "jobs.toml"
    config.write_text('[cluster]\njobs = ["image=16:48G@6:00:00", "peel=1:6G"]\npeel_tasks = 8\naccount = "lwa"\n')
    res = _driver([*base, "--workdir", str(tmp_path / "site"), "--config", str(config)])
    assert res.returncode == 0, res.stderr[-2000:]
    graph = _graph_options(tmp_path / "site")
    assert {"--cpus-per-task=16", "--mem=48G", "--time=6:00:00", "--account=lwa"} <= set(graph["image-10h-55MHz"])
    assert {"--cpus-per-task=1", "--mem=6G", "--array=0-5%8", "--account=lwa"} <= set(graph["peel-10h-55MHz"])
    assert not [o for o in graph["peel-10h-55MHz"] if o.startswith("--time")]  # no limit given for it
    res = _driver([*base, "--workdir", str(tmp_path / "cli"), "--config", str(config), "--mem", "5G",
                   "--time", "1-00:00:00", "--account", "other"])
    assert res.returncode == 0, res.stderr[-2000:]
    for options in _graph_options(tmp_path / "cli").values():
        assert "--mem=5G" in options and not [o for o in options if o.startswith("--mem=") and o != "--mem=5G"]
        assert "--time=1-00:00:00" in options and "--account=other" in options
    config.write_text('[peel]\nmodel_refine_once = false\n')  # each MS refines its own model: no Refine job
    res = _driver([*base, "--workdir", str(tmp_path / "per-ms"), "--config", str(config)])
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(_graph_options(tmp_path / "per-ms")) == ["aggregate-10h", "image-10h-55MHz", "peel-10h-55MHz",
                                                           "setup-10h-55MHz"]
    config.write_text('[cluster]\njobs = ["imaging=16:48G"]\n')
    bad = _driver([*base, "--workdir", str(tmp_path / "bad"), "--config", str(config)])
    assert bad.returncode == 1 and "cluster.jobs entry 'imaging=16:48G'" in bad.stderr


@pytest.mark.parametrize("entry", ["image=0:8G", "image=4", "image=4:lots", "sky=4:8G", "image=4:8G@soon"])
def test_job_resources_refuses_bad_entries(entry):
    with pytest.raises(LwaError, match="JOB=CPUS:MEMORY"):
        job_resources([entry])
