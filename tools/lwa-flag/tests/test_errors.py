"""Must-fail cases: bad MS -> one stderr line and exit 1, MS untouched; usage errors -> exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from casacore.tables import table

from lwa_common.cli import run_main
from lwa_common.testing import allsky_header, run_cli, synthetic_image
from lwa_flag.cli import cli


def _break(ms, case: str) -> str:
    """Damage a copied MS in one way; return the words the error line must contain."""
    if case == "no-data":
        with table(str(ms), readonly=False, ack=False) as t:
            t.removecols(["DATA"])
        return "neither DATA nor CORRECTED_DATA"
    if case == "circular-pols":
        with table(str(ms / "POLARIZATION"), readonly=False, ack=False) as t:
            t.putcell("CORR_TYPE", 0, np.array([5, 6, 7, 8], dtype=np.int32))
        return "lacks polarisations"
    if case == "empty":  # tiled storage cannot drop rows: deep-copy an empty selection instead
        import shutil

        full = ms.with_name("full.ms")
        ms.rename(full)
        with table(str(full), ack=False) as t, t.query("ANTENNA1 < 0") as sel:
            sel.copy(str(ms), deep=True).close()
        shutil.rmtree(full)
        return "no rows"
    if case == "not-an-ms":
        for item in ms.iterdir():
            if item.name == "table.dat":
                item.unlink()
        return "not a casacore table"
    raise AssertionError(case)


@pytest.fixture
def inputs(tmp_path):
    health = tmp_path / "bad.yml"
    health.write_text("[LWA-005]\n")
    header = allsky_header(size=32, scale_deg=6.0, keywords={"STOKES": "V", "IMGCAT": "snapshot",
                                                              "MJD-MID": 60664.5})
    snap = tmp_path / "v.fits"
    fits.writeto(snap, synthetic_image(header, [], noise=1.0), header)
    return {"health": health, "snap": snap}


def _args(command: str, ms, out, inputs) -> list[str]:
    if command == "antennas":
        return ["antennas", str(ms), str(inputs["health"]), "-o", str(out)]
    if command == "integrations":
        return ["integrations", *[str(inputs["snap"])] * 3, "--ms", str(ms), "-o", str(out)]
    return [command, str(ms), "-o", str(out)]


@pytest.mark.parametrize("case", ["no-data", "circular-pols", "empty", "not-an-ms"])
def test_hot_baselines_bad_ms_subprocess(small_sim, copy_ms, tmp_path, digest, case):
    (ms,) = copy_ms(small_sim[0][0])
    words = _break(ms, case)
    before = digest(ms) if case != "not-an-ms" else None
    res = run_cli(["lwa-flag", *_args("hot-baselines", ms, tmp_path / "out.ms", {})])
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lwa-flag: error:") and words in lines[0]
    assert res.stdout == ""
    assert not (tmp_path / "out.ms").exists() and not (tmp_path / "QA").exists()
    if before is not None:
        assert digest(ms) == before


@pytest.mark.parametrize("command", ["antennas", "rfi", "integrations"])
@pytest.mark.parametrize("case", ["no-data", "circular-pols", "empty", "not-an-ms"])
def test_every_command_refuses_bad_ms(small_sim, copy_ms, tmp_path, digest, inputs, capsys, command, case):
    (ms,) = copy_ms(small_sim[0][0])
    words = _break(ms, case)
    before = digest(ms) if case != "not-an-ms" else None
    with pytest.raises(SystemExit) as exc:
        run_main(cli, _args(command, ms, tmp_path / "out.ms", inputs))
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "out.ms").exists()
    if before is not None:
        assert digest(ms) == before


def test_missing_path_and_usage_errors(small_sim, tmp_path, inputs, capsys):
    ms = small_sim[0][0]
    res = run_cli(["lwa-flag", "rfi", str(tmp_path / "nope.ms"), "-o", str(tmp_path / "o.ms")])
    assert res.returncode == 2 and "does not exist" in res.stderr  # click's path check: a usage error
    res = run_cli(["lwa-flag", "rfi", str(ms)])  # neither -o nor --in-place
    assert res.returncode == 2 and "--in-place" in res.stderr
    for argv in (["hot-baselines", str(ms), "-o", str(tmp_path / "o.ms"), "--in-place"],
                 ["hot-baselines", str(ms), "--in-place", "--window", "2"],
                 ["integrations", str(inputs["snap"]), "-o", str(tmp_path / "o.ms")],  # no --ms
                 ["antennas", str(ms), "--in-place", "--source", "file"],
                 ["antennas", str(ms), str(inputs["health"]), "--in-place", "--ids", "serials"],
                 ["rfi", str(ms), "--in-place", "--threads", "0"]):
        with pytest.raises(SystemExit) as exc:
            run_main(cli, argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # -o pointing at the input itself
        run_main(cli, ["rfi", str(ms), "-o", str(ms)])
    assert exc.value.code == 1 and "--in-place" in capsys.readouterr().err
