"""The site's RFI list lwa-sim writes for broadband emitters, read by lwa-peel rfi (bin/demo.sh peels
a spec's `channels: all` emitters with it): the direction lwa-peel computes from the list is the
az/el the emitter was simulated at, and peeling with it removes the emitter from the data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from casacore.tables import table

from lwa_common.catalogs import read_ttcal_sources
from lwa_common.ms import ms_info
from lwa_common.testing import run_cli
from lwa_peel.model import rfi_azel

pytestmark = pytest.mark.slow

SPEC = """\
rfi:
  - {az_deg: 200, el_deg: 3, flux_jy: 1500, channels: all}
  - {az_deg: 80, el_deg: 1.5, flux_jy: 800, channels: all}
  - {az_deg: 120, el_deg: 2, flux_jy: 3000, channels: [1, 5]}
noise: {sigma_jy: 0.05}
"""


def _cross(ms, column):
    with table(str(ms), ack=False) as t:
        keep = t.getcol("ANTENNA1") != t.getcol("ANTENNA2")
        return t.getcol(column)[keep]


def test_broadband_emitters_listed_and_peeled(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "sim"
    res = run_cli(["lwa-sim", "observe", str(spec), "-o", str(out), "--start", "2024-12-20T12:00:00",
                   "--n-int", "1", "--n-channels", "8", "--n-antennas", "64", "--layout", "core"])
    assert res.returncode == 0, res.stderr
    (ms,) = sorted(out.glob("*.ms"))
    entries = json.loads((out / "rfi_sources.json").read_text())
    assert len(entries) == 2  # the narrow-band emitter is left to the flaggers
    centre = ms_info(ms).array_centre
    for source, (az, el) in zip(read_ttcal_sources(out / "rfi_sources.json"), [(200, 3), (80, 1.5)]):
        got_az, got_el, _ = rfi_azel(source, centre)
        assert got_az == pytest.approx(az, abs=0.05) and got_el == pytest.approx(el, abs=0.05)

    # Only the broadband emitters in the sky: peeling with the list leaves < 1 % of their power.
    spec.write_text("\n".join(line for line in SPEC.splitlines() if "[1, 5]" not in line) + "\n")
    res = run_cli(["lwa-sim", "observe", str(spec), "-o", str(out), "--start", "2024-12-20T12:00:00",
                   "--n-int", "1", "--n-channels", "8", "--n-antennas", "64", "--layout", "core", "--overwrite"])
    assert res.returncode == 0, res.stderr
    peeled = tmp_path / "peeled.ms"
    res = run_cli(["lwa-peel", "rfi", str(ms), "--sources", str(out / "rfi_sources.json"), "-o", str(peeled)])
    assert res.returncode == 0, res.stderr
    before, after = _cross(ms, "DATA"), _cross(peeled, "CORRECTED_DATA")
    pols = [0, 3]
    left = np.sum(np.abs(after[..., pols]) ** 2) / np.sum(np.abs(before[..., pols]) ** 2)
    assert left < 0.01, f"{left:.3g} of the emitters' power left"
