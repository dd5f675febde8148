"""Bad input, every subcommand: one clear line, a non-zero exit, inputs untouched, nothing left behind.

The matrix crosses each subcommand that reads a Measurement Set, an image or a text file with the
faults users meet (a missing path, an empty file, a truncated or corrupt FITS, a FITS without WCS,
an all-NaN image, a wrong shape, an MS without its data storage or rows, malformed CSV / TOML /
JSON / YAML / coordinates, a folder where a file is expected, an unwritable output, an existing
output). For each case the tool runs as a real process and must:

* exit 1 with exactly one stderr line `prog: error: ...`, or exit 2 for a usage error;
* print no Python traceback;
* leave every input byte-identical and leave nothing behind (no output, no temp or side files).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.testing import allsky_header, synthetic_image

SPEC = {"noise": {"sigma_jy": 1.0},
        "sources": [{"name": "a", "ra": "10h30m00s", "dec": "+40d00m00s", "flux_jy": 50}]}


# ---- the good inputs the faults are made from -----------------------------------------------------
@pytest.fixture(scope="module")
def good(sim_cache, tmp_path_factory):
    data, _ = sim_cache("bad_inputs", SPEC, start="2024-12-20T12:00:00", n_int=2, n_channels=2, n_antennas=12)
    ms = sorted(data.glob("*.ms"))[0]
    root = tmp_path_factory.mktemp("good")
    header = allsky_header(size=64, scale_deg=3.0, keywords={"STOKES": "I", "IMGCAT": "deep", "INTERVAL": "deep"})
    image = root / "good-image.fits"
    fits.writeto(image, synthetic_image(header, [(157.5, 40.0, 50.0)], noise=1.0), header)
    return {"ms": ms, "fits": image, "bp": _unit_bandpass(ms, root)}


def _unit_bandpass(ms: Path, root: Path) -> Path:
    """A valid CASA bandpass table of unit gains for `ms` (so `lwa-calib apply` fails on the MS fault)."""
    from casacore.tables import table

    from lwa_calib.caltables import gains_to_tables

    with table(str(ms / "ANTENNA"), ack=False) as t:
        n_ant = t.nrows()
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        n_chan = int(t.getcell("NUM_CHAN", 0))
    bp, _ = gains_to_tables(gains=np.ones((n_ant, 2, n_chan)), template_ms=ms, bp_table=root / "unit.B",
                            xy_table=root / "unit.Xf")
    return bp


# ---- faults: each makes a bad path inside `where` from the good inputs ---------------------------
def _ms_missing(where, good):
    return where / "missing.ms"


def _ms_empty_dir(where, good):
    (where / "empty.ms").mkdir()
    return where / "empty.ms"


def _ms_is_a_file(where, good):
    (where / "file.ms").write_text("not a measurement set\n")
    return where / "file.ms"


def _ms_copy(where, good, name):
    dst = where / name
    shutil.copytree(good["ms"], dst, symlinks=True)
    return dst


def _ms_no_storage(where, good):
    """The MS's table.dat is intact but the storage files of its columns (DATA, FLAG, ...) are gone."""
    ms = _ms_copy(where, good, "nostorage.ms")
    for f in ms.glob("table.f*"):
        f.unlink()
    return ms


def _ms_corrupt_table(where, good):
    ms = _ms_copy(where, good, "corrupt.ms")
    (ms / "table.dat").write_bytes(b"\0garbage" * 64)
    return ms


def _ms_no_rows(where, good):
    from casacore.tables import table

    # the simulator's storage managers cannot remove rows: deep-copy an empty selection (subtables too)
    ms = where / "norows.ms"
    with table(str(good["ms"]), ack=False) as t:
        empty = t.query("FALSE")
        empty.copy(str(ms), deep=True).close()
        empty.close()
    return ms


def _ms_missing_subtable(where, good):
    ms = _ms_copy(where, good, "nospw.ms")
    shutil.rmtree(ms / "SPECTRAL_WINDOW")
    return ms


MS_FAULTS = {"missing": _ms_missing, "empty-dir": _ms_empty_dir, "a-file": _ms_is_a_file,
             "no-storage": _ms_no_storage, "corrupt-table": _ms_corrupt_table, "no-rows": _ms_no_rows,
             "no-spw-table": _ms_missing_subtable}


def _fits_missing(where, good):
    return where / "missing.fits"


def _fits_empty(where, good):
    (where / "empty.fits").write_bytes(b"")
    return where / "empty.fits"


def _fits_text(where, good):
    (where / "text.fits").write_text("SIMPLE = nonsense\n")
    return where / "text.fits"


def _fits_truncated(where, good):
    (where / "truncated.fits").write_bytes(good["fits"].read_bytes()[:2880 * 2])
    return where / "truncated.fits"


def _fits_no_wcs(where, good):
    fits.writeto(where / "nowcs.fits", np.ones((64, 64), np.float32))
    return where / "nowcs.fits"


def _fits_all_nan(where, good):
    header = fits.getheader(good["fits"])
    fits.writeto(where / "nan.fits", np.full((1, 1, 64, 64), np.nan, np.float32), header)
    return where / "nan.fits"


def _fits_wrong_shape(where, good):
    fits.writeto(where / "line.fits", np.ones(64, np.float32))
    return where / "line.fits"


def _fits_directory(where, good):
    (where / "dir.fits").mkdir()
    return where / "dir.fits"


FITS_FAULTS = {"missing": _fits_missing, "empty": _fits_empty, "text": _fits_text, "truncated": _fits_truncated,
               "no-wcs": _fits_no_wcs, "all-nan": _fits_all_nan, "wrong-shape": _fits_wrong_shape,
               "directory": _fits_directory}

# ---- commands: {ms} / {fits} is the faulty input, {out} an output inside the output area ----------
MS_COMMANDS = [
    "lwa-calib apply {ms} --bp-table {good_bp} -o {out}",
    "lwa-calib solve {ms} --sources {good_json} -o {out}",
    "lwa-calib delay-check {ms} --reference {delay_ref} -o {out}",
    "lwa-flag antennas {ms} {good_health} -o {out}/flagged.ms",
    "lwa-flag rfi {ms} -o {out}/flagged.ms",
    "lwa-flag hot-baselines {ms} -o {out}/flagged.ms",
    "lwa-flag integrations {good_fits} --ms {ms} -o {out}/flagged.ms",
    "lwa-image concat {ms} -o {out}/hour.ms",
    "lwa-image rephase {ms} -o {out}/rephased.ms --lst-hour 10",
    "lwa-image snapshots {ms} -o {out}",
    "lwa-image science {ms} -o {out}",
    "lwa-peel sky {ms} --sources {good_json} -o {out}/peeled.ms",
    "lwa-peel refine-model {ms} --sources {good_json} -o {out}/model.json",
]
FITS_COMMANDS = [
    "lwa-image pbcor {fits} -o {out}",
    "lwa-image movie {fits} -o {out}",
    "lwa-dewarp fit {fits} --catalog {good_catalog} -o {out}/screen.fits",
    "lwa-dewarp apply {fits} --screen {fits} -o {out}",
    "lwa-cutout targets {good_targets} --images {fits} -o {out}",
    "lwa-cutout solar-system --images {fits} -o {out}",
    "lwa-cutout flux-check --images {fits} -o {out}",
    "lwa-transient search {fits} -o {out}",
    "lwa-stack noise {fits} -o {out}/noise.csv",
    "lwa-stack wideband {fits} -o {out}",
    "lwa-stack color {fits} -o {out}",
    "lwa-flag integrations {fits} --ms {good_ms} -o {out}/flagged.ms",
]

# text inputs: (command with {text}, name of the file, bad contents)
SIM_TEXT = "lwa-sim observe {text} -o {out} --n-int 1 --system-cfg {system_cfg}"
TEXT_CASES = {
    "targets-empty": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv", ""),
    "targets-header-only": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv",
                            "common_name,ra_current,dec_current\n"),
    "targets-bad-ra": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv",
                       "common_name,ra_current,dec_current\nx,25h99m,+40d\n"),
    "targets-words": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv",
                      "common_name,ra_current,dec_current\nx,abc,def\n"),
    "targets-no-columns": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv", "a;b;c\n1;2;3\n"),
    "targets-binary": ("lwa-cutout targets {text} --images {good_fits} -o {out}", "t.csv", "\0\1\2\3" * 50),
    "catalog-empty": ("lwa-dewarp fit {good_fits} --catalog {text} -o {out}/s.fits", "c.csv", ""),
    "catalog-garbage": ("lwa-dewarp fit {good_fits} --catalog {text} -o {out}/s.fits", "c.txt", "hello world\n"),
    "catalog-bad-numbers": ("lwa-dewarp fit {good_fits} --catalog {text} -o {out}/s.fits", "c.csv",
                            "ra,dec,flux\nx,y,z\n"),
    "catalog-binary": ("lwa-dewarp fit {good_fits} --catalog {text} -o {out}/s.fits", "c.dat", "\0\1\2" * 90),
    "config-malformed": ("lwa-common lst-range 10h-11h --date 2024-12-20 --config {text}", "c.toml", "[imaging\n"),
    "config-unknown-key": ("lwa-common lst-range 10h-11h --date 2024-12-20 --config {text}", "c.toml",
                           "[imaging]\nno_such_key = 1\n"),
    "config-wrong-type": ("lwa-common lst-range 10h-11h --date 2024-12-20 --config {text}", "c.toml",
                          "[imaging]\nsize = \"big\"\n"),
    "config-unknown-section": ("lwa-common lst-range 10h-11h --date 2024-12-20 --config {text}", "c.toml",
                               "[nothing]\na = 1\n"),
    "state-malformed": ("lwa-common state {text} a=b", "s.json", "{bad"),
    "state-a-list": ("lwa-common state {text} a=b", "s.json", "[1, 2]"),
    "state-binary": ("lwa-common state {text} a=b", "s.json", "\0\1\2"),
    "health-garbage": ("lwa-flag antennas {good_ms} {text} -o {out}/f.ms", "h.yml", "::: not yaml [\n"),
    "health-binary": ("lwa-flag antennas {good_ms} {text} -o {out}/f.ms", "h.csv", "\0\1\2" * 30),
    "health-empty": ("lwa-flag antennas {good_ms} {text} -o {out}/f.ms", "h.csv", ""),
    "spec-malformed": (SIM_TEXT, "s.yaml", "sources: [\n"),
    "spec-unknown-key": (SIM_TEXT, "s.yaml", "galaxies: 3\n"),
    "spec-bad-coordinate": (SIM_TEXT, "s.yaml", "sources:\n  - {name: a, ra: 25h99m, dec: +40d, flux_jy: 1}\n"),
    "spec-a-list": (SIM_TEXT, "s.yaml", "- 1\n- 2\n"),
    "peel-sources-garbage": ("lwa-peel sky {good_ms} --sources {text} -o {out}/p.ms", "s.json", "{no"),
    "peel-sources-empty-list": ("lwa-peel sky {good_ms} --sources {text} -o {out}/p.ms", "s.json", "[]"),
    "peel-model-sources-garbage": ("lwa-peel refine-model {good_ms} --sources {text} -o {out}/m.json", "s.json",
                                   "{no"),
    "peel-model-sources-empty-list": ("lwa-peel refine-model {good_ms} --sources {text} -o {out}/m.json", "s.json",
                                      "[]"),
    "skymodel-garbage": ("lwa-cutout flux-check --images {good_fits} --skymodel {text} -o {out}", "m.skymodel",
                         "garbage\n"),
}
ARG_CASES = {
    "lst-range-hours": "lwa-common lst-range 25h-26h --date 2024-12-20",
    "lst-range-words": "lwa-common lst-range abc --date 2024-12-20",
    "lst-range-date": "lwa-common lst-range 10h-11h --date 2024-13-45",
    "rephase-centre": "lwa-image rephase {good_ms} -o {out}/r.ms --centre 'abc def'",
    "pbcor-interval": "lwa-image pbcor {good_fits} -o {out} --interval tomorrow",
    "transient-stokes": "lwa-transient search {good_fits} -o {out} --stokes Q",
    "sim-n-int": "lwa-sim observe -o {out} --n-int 0 --system-cfg {system_cfg}",
    "audit-range": "lwa-common audit --data {data} --subbands 55 --range x --date 2024-12-20 --workdir {out}/w "
                   "-o {out}/plan.json",
    "audit-subbands": "lwa-common audit --data {data} --subbands nine --range 10h-11h --date 2024-12-20 "
                      "--workdir {out}/w -o {out}/plan.json",
}
# outputs that cannot be written (root ignores permissions, /proc does not), and existing outputs
OUTPUT_COMMANDS = [
    "lwa-image pbcor {good_fits} -o {out}",
    "lwa-transient search {good_fits} -o {out}",
    "lwa-stack noise {good_fits} -o {out}/noise.csv",
    "lwa-stack wideband {good_fits} -o {out}",
    "lwa-cutout targets {good_targets} --images {good_fits} -o {out}",
    "lwa-dewarp fit {good_fits} --catalog {good_catalog} -o {out}/screen.fits",
    "lwa-flag rfi {good_ms} -o {out}/flagged.ms",
    "lwa-image rephase {good_ms} -o {out}/rephased.ms --lst-hour 10",
    "lwa-image snapshots {good_ms} -o {out}",
    "lwa-sim observe -o {out} --n-int 1 --system-cfg {system_cfg}",
    "lwa-common audit --data {data} --subbands 55 --range 10h-11h --date 2024-12-20 --workdir {out} "
    "-o {out}/plan.json",
]
EXISTING_OUTPUT_COMMANDS = [
    "lwa-stack noise {good_fits} -o {existing_file}",
    "lwa-dewarp fit {good_fits} --catalog {good_catalog} -o {existing_file}",
    "lwa-flag rfi {good_ms} -o {existing_ms}",
    "lwa-image rephase {good_ms} -o {existing_ms} --lst-hour 10",
    "lwa-image concat {good_ms} -o {existing_ms}",
]


# ---- the runner ---------------------------------------------------------------------------------
def _tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[rel] = "dir"
    return out


@pytest.fixture
def area(tmp_path, good, system_cfg):
    """inputs/ (what the command reads; must stay byte-identical) and out/ (must stay empty)."""
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    values = {"inputs": inputs, "out": out / "product"}
    values["good_ms"] = _ms_copy(inputs, good, "good.ms")
    values["good_fits"] = inputs / "good-image.fits"
    shutil.copy(good["fits"], values["good_fits"])
    (inputs / "targets.csv").write_text("common_name,ra_current,dec_current\nstar,157.5,40.0\n")
    values["good_targets"] = inputs / "targets.csv"
    (inputs / "catalog.csv").write_text("name,ra,dec,flux\nA,157.5,40.0,50\n")
    values["good_catalog"] = inputs / "catalog.csv"
    (inputs / "health.csv").write_text("antenna\nLWA-001\n")
    values["good_health"] = inputs / "health.csv"
    (inputs / "sources.json").write_text('[{"name": "CygA", "ra": "19h59m28.3s", "dec": "+40d44m02s", '
                                         '"I": 16000, "freq": 55e6, "index": [-0.8]}]')
    values["good_json"] = inputs / "sources.json"
    values["system_cfg"] = system_cfg
    values["delay_ref"] = next((system_cfg.parent / "delay_caltable_20250202").rglob("*.delay"))
    values["good_bp"] = inputs / "unit.B"
    shutil.copytree(good["bp"], values["good_bp"])
    # an archive the audit finds: the MS under its observatory name (the copy above is named good.ms)
    values["data"] = inputs / "data"
    _ms_copy(values["data"], good, good["ms"].name)
    return values


def _run_case(command: str, values: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    inputs, out_area = tmp_path / "inputs", tmp_path / "out"
    argv = [part.format(**{k: str(v) for k, v in values.items()}) for part in shlex.split(command)]
    before_inputs, before_out = _tree_digest(inputs), _tree_digest(out_area)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    prog = argv[0]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode in (1, 2), f"exit {res.returncode} on bad input\n{res.stderr[-2000:]}"
    if res.returncode == 1:
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), res.stderr[-2000:]
    assert _tree_digest(inputs) == before_inputs, "an input was modified or something was written beside it"
    assert _tree_digest(out_area) == before_out, f"left behind: {sorted(set(_tree_digest(out_area)) - set(before_out))}"
    assert not list(Path.cwd().glob("casa*.log")), "casa log left in the working folder"
    return res


@pytest.mark.slow
@pytest.mark.parametrize("fault", MS_FAULTS)
@pytest.mark.parametrize("command", MS_COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_bad_ms(command, fault, area, good, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    area["ms"] = MS_FAULTS[fault](area["inputs"], good)
    area["fits"] = area["good_fits"]
    _run_case(command, area, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fault", FITS_FAULTS)
@pytest.mark.parametrize("command", FITS_COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_bad_fits(command, fault, area, good, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    area["fits"] = FITS_FAULTS[fault](area["inputs"], good)
    _run_case(command, area, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", TEXT_CASES)
def test_bad_text(case, area, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command, name, content = TEXT_CASES[case]
    path = area["inputs"] / name
    path.write_text(content)
    area["text"] = path
    _run_case(command, area, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ARG_CASES)
def test_bad_arguments(case, area, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _run_case(ARG_CASES[case], area, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", OUTPUT_COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
@pytest.mark.parametrize("where", ["proc", "file-as-folder"])
def test_unwritable_output(command, where, area, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if where == "proc":
        area["out"] = Path("/proc/version/lwa-out")  # not writable, even by root
    else:
        blocker = area["inputs"] / "a-file"
        blocker.write_text("x")
        area["out"] = blocker / "lwa-out"
    _run_case(command, area, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", EXISTING_OUTPUT_COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_existing_output_needs_overwrite(command, area, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing_file = area["inputs"] / "existing.out"
    existing_file.write_text("keep me\n")
    existing_ms = area["inputs"] / "existing.ms"
    existing_ms.mkdir()
    (existing_ms / "keep").write_text("keep me\n")
    area["existing_file"], area["existing_ms"] = existing_file, existing_ms
    _run_case(command, area, tmp_path)


# ---- every command that needs a primary beam model, when the model is missing or unreadable -------
BEAM_COMMANDS = [
    "lwa-image pbcor {good_fits} -o {out} {beam_option} {beam_value}",
    "lwa-peel sky {good_ms} --sources {good_json} -o {out}/peeled.ms --beam {beam_option} {beam_value}",
    "lwa-calib solve {good_ms} --sources {good_json} -o {out} {beam_option} {beam_value}",
]
BEAM_FAULTS = {  # name: (where the beam file is named, its contents; None: no such file)
    "config-missing": ("config", None),
    "config-text": ("config", b"not an HDF5 file\n"),
    "config-empty": ("config", b""),
    "config-wrong-layout": ("config", "h5"),
    "option-truncated": ("option", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),  # an HDF5 signature, then nothing
    "option-missing": ("option", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", BEAM_FAULTS)
@pytest.mark.parametrize("command", BEAM_COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_missing_beam_model(command, fault, area, tmp_path, monkeypatch):
    """A missing, empty or foreign beam file: one line naming it (exit 1), or a usage error when an option
    names a file that is not there (exit 2); never a traceback, a silent fallback to the default beam, or
    output. lwa-calib solve takes its beam from the config only."""
    monkeypatch.chdir(tmp_path)
    how, content = BEAM_FAULTS[fault]
    if how == "option" and "lwa-calib" in command:
        pytest.skip("lwa-calib solve has no beam option (config primary_beam.beam_file)")
    beam = area["inputs"] / "beam.h5"
    if content == "h5":
        import h5py

        with h5py.File(beam, "w") as f:
            f.create_dataset("something_else", data=np.zeros(3))
    elif content is not None:
        beam.write_bytes(content)
    if how == "config":
        config = area["inputs"] / "beam.toml"
        config.write_text(f'[primary_beam]\nbeam_file = "{beam}"\n')
        area["beam_option"], area["beam_value"] = "--config", config
    else:
        area["beam_option"], area["beam_value"] = "--beam-file", beam
    res = _run_case(command, area, tmp_path)
    if fault == "option-missing":
        assert res.returncode == 2 and "beam.h5" in res.stderr, res.stderr
    else:
        assert res.returncode == 1 and "beam" in res.stderr.lower() and "beam.h5" in res.stderr, res.stderr
