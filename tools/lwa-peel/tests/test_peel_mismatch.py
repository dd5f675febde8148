"""Peeling with the shipped A-team model a sky whose A-team differs from it (issue 22): Cyg A and
Cas A moved by 3-10', their flux scaled by 0.5-1.5, spectral indices off by ~0.05, and resolved
structure the model lacks; ten 10-80 Jy field sources 4-12 deg from them. Demo size (64 antennas,
8 channels), noiseless, so that what is left is the peel's own error.

Measured with the defaults (one solution per channel), seeds 1 and 2, antennas spread over the
whole array (baselines to 1.6 km): A-team power left 2.4e-5 and 8.7e-6 (whole-band solutions, the
former default: 6.3e-4 and 2.9e-4); field sources changed by a median of 2.7 % and 7.3 %, at most
11 % and 12 %. Even the true A-team model changes them by 3.6 % and 7.7 % (median): the
per-direction antenna gains absorb the field (64 antennas, 2 directions: ~6 % of the degrees of
freedom), which neither DDECal's smoothness constraint nor uv limits cure (lwa-peel README).

With the field catalogue kept fixed in the solve (`--field`; here with 10 % flux errors, 5'
position errors and an assumed spectral index of -0.8 against the true -0.7) on the demo's compact
core (baselines to 314 m): power left 6e-8 and 3e-8, field changes median 0.5 % and 0.3 %, at most
2.5 % and 0.6 % (the same core without the catalogue: 9e-7 and 7e-7; 5.7 % and 3.1 %).
"""

from __future__ import annotations

import copy
import json
import shutil

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from casacore.tables import table

from lwa_common.testing import run_cli

START = "2024-12-20T00:00:00"  # LST ~22 h: Cyg A and Cas A high, Vir A set
C = 299_792_458.0
ATEAM = {"Cyg A": (299.868, 40.734), "Cas A": (350.85, 58.81)}


def _mismatched_ateam(shipped: list[dict], rng: np.random.Generator) -> list[dict]:
    """Cyg A and Cas A of the shipped model, moved, rescaled, and with extra components."""
    out = []
    for src in (s for s in shipped if s["name"] in ATEAM):
        s = copy.deepcopy(src)
        scale = rng.uniform(0.5, 1.5)
        shift, pa = rng.uniform(3, 10) * u.arcmin, rng.uniform(0, 360) * u.deg
        comps = []
        for c in s["components"]:
            pos = SkyCoord(c["ra"], c["dec"]).directional_offset_by(pa, shift)
            base = dict(c, ra=f"{pos.ra.deg}d", dec=f"{pos.dec.deg}d", I=c["I"] * scale * 0.7)
            base["index"] = [c["index"][0] + rng.normal(0, 0.05), *c["index"][1:]]
            comps.append(base)
            for k in range(3):
                p2 = pos.directional_offset_by(rng.uniform(0, 360) * u.deg, rng.uniform(0.5, 2.5) * u.arcmin)
                comps.append(dict(base, name=f"{c['name']}x{k}", ra=f"{p2.ra.deg}d", dec=f"{p2.dec.deg}d",
                                  I=c["I"] * scale * 0.1, **{"major-fwhm": 60.0, "minor-fwhm": 40.0,
                                                              "position-angle": float(rng.uniform(0, 180))}))
        s["components"] = comps
        out.append(s)
    return out


def _field(rng: np.random.Generator) -> list[dict]:
    field = []
    for name, (ra, dec) in ATEAM.items():
        for k in range(5):
            p = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(rng.uniform(0, 360) * u.deg,
                                                                        rng.uniform(4, 12) * u.deg)
            field.append({"name": f"near-{name[:3]}-{k}", "ra": float(p.ra.deg), "dec": float(p.dec.deg),
                          "flux_jy": float(rng.uniform(10, 80)), "spectral_index": -0.7, "ref_freq_mhz": 60.0})
    return field


def _read(ms, column="DATA"):
    with table(str(ms), ack=False) as t:
        return t.getcol(column), t.getcol("ANTENNA1"), t.getcol("ANTENNA2"), t.getcol("UVW")


def _dft(data, ms, uvw, cross, ra_deg, dec_deg) -> float:
    """Stokes I at (ra, dec) of `data` phased there and averaged over the cross-correlations."""
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as t:
        freqs = t.getcell("CHAN_FREQ", 0)
    with table(str(ms / "FIELD"), ack=False) as t:
        ra0, dec0 = t.getcell("PHASE_DIR", 0)[0]
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    l = np.cos(dec) * np.sin(ra - ra0)  # noqa: E741
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    n = np.sqrt(1 - l * l - m * m)
    phase = np.exp(-2j * np.pi * (uvw[:, 0, None] * l + uvw[:, 1, None] * m + uvw[:, 2, None] * (n - 1))
                   * freqs[None, :] / C)
    return float(np.mean((0.5 * (data[..., 0] + data[..., 3]) * phase)[cross]).real)


def _field_positions(skymodel) -> list[SkyCoord]:
    """The field patch's component positions in a DP3 sky model lwa-peel wrote."""
    out = []
    for line in skymodel.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) > 4 and parts[2] == "field" and parts[0]:
            h, m, sec = (float(v) for v in parts[3].split(":"))
            sign = -1 if parts[4].startswith("-") else 1
            d, dm, ds = (float(v) for v in parts[4].lstrip("+-").split(".", 2))
            out.append(SkyCoord((h + m / 60 + sec / 3600) * 15 * u.deg, sign * (d + dm / 60 + ds / 3600) * u.deg))
    return out


def _catalogue(field: list[dict], path, rng: np.random.Generator) -> None:
    """A reference CSV of the field at 73.8 MHz: 10 % flux errors, positions 5' off."""
    lines = ["name,ra,dec,flux"]
    for s in field:
        p = SkyCoord(s["ra"] * u.deg, s["dec"] * u.deg).directional_offset_by(rng.uniform(0, 360) * u.deg,
                                                                             5 * u.arcmin)
        flux = s["flux_jy"] * (73.8 / s["ref_freq_mhz"]) ** s["spectral_index"] * (1 + 0.1 * rng.standard_normal())
        lines.append(f"{s['name']},{p.ra.deg:.5f},{p.dec.deg:.5f},{flux:.3f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "layout", "with_field"), [(1, "spread", False), (2, "spread", False),
                                                            (1, "core", True), (2, "core", True)])
def test_peel_a_mismatched_ateam_with_the_shipped_model(sim_cache, tmp_path, shared_data, seed, layout, with_field):
    shipped_path = shared_data / "sky" / "ateam_sources.json"
    rng = np.random.default_rng(seed)
    truth = tmp_path / "ateam_truth.json"
    truth.write_text(json.dumps(_mismatched_ateam(json.loads(shipped_path.read_text()), rng)))
    field = _field(rng)
    kw = {"n_int": 1, "n_antennas": 64, "n_channels": 8, "start": START, "seed": seed, "layout": layout}
    out_full, _ = sim_cache(f"peel_mismatch_full_{seed}_{layout}",
                            {"sources": field, "ateam": str(truth), "noise": {"sigma_jy": 0}}, **kw)
    out_field, _ = sim_cache(f"peel_mismatch_field_{seed}_{layout}", {"sources": field, "noise": {"sigma_jy": 0}},
                             **kw)
    (full_ms,), (field_ms,) = sorted(out_full.glob("*.ms")), sorted(out_field.glob("*.ms"))
    ms = tmp_path / full_ms.name
    shutil.copytree(full_ms, ms)

    extra = []
    if with_field:
        _catalogue(field, tmp_path / "field.csv", rng)
        extra = ["--field", str(tmp_path / "field.csv")]
    if with_field:  # the same without fitting the field's positions on a first pass (the old default)
        plain = tmp_path / "plain.ms"
        shutil.copytree(full_ms, plain)
        proc = run_cli(["lwa-peel", "sky", str(plain), "--sources", str(shipped_path), "--in-place", "-v", *extra,
                        "--no-field-refine"])
        assert proc.returncode == 0, proc.stderr
        assert "field positions fitted" not in proc.stderr
    proc = run_cli(["lwa-peel", "sky", str(ms), "--sources", str(shipped_path), "--in-place", "--json", "-v", *extra])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["field_sources"] == (len(field) if with_field else 0)
    assert summary["converged"] is True
    assert [p["name"] for p in summary["peeled"]] == ["Cyg A", "Cas A"]
    assert summary["settings"]["channels_per_solution"] == 1
    assert 0 < max(summary["iterations"]) < summary["settings"]["max_iterations"]  # converged
    assert "DDECal converged in" in proc.stderr  # and says so

    peeled, a1, a2, uvw = _read(ms, "CORRECTED_DATA")
    full, field_data = _read(full_ms)[0], _read(field_ms)[0]
    cross = a1 != a2
    ateam = (full - field_data)[cross][..., [0, 3]]
    left = (peeled - field_data)[cross][..., [0, 3]]
    power_left = float(np.sum(np.abs(left) ** 2) / np.sum(np.abs(ateam) ** 2))
    assert power_left < (1e-6 if with_field else 5e-5), power_left  # whole-band solutions: 3e-4 - 6e-4
    if with_field:  # the field's fitted positions and fluxes take out what the catalogue's errors left
        assert "field positions fitted on a pass before the final one: 10 of 10 component(s) moved" in proc.stderr
        before = (_read(plain, "CORRECTED_DATA")[0] - field_data)[cross][..., [0, 3]]
        plain_left = float(np.sum(np.abs(before) ** 2) / np.sum(np.abs(ateam) ** 2))
        assert power_left < 0.8 * plain_left, (power_left, plain_left)  # measured 0.69x and 0.4x
        moved = _field_positions(ms.with_name(ms.name[:-3] + ".peel-sky.skymodel"))
        errors = [min(SkyCoord(s["ra"] * u.deg, s["dec"] * u.deg).separation(p).arcmin for p in moved) for s in field]
        assert np.median(errors) < 1.5, errors  # 5' in the catalogue
    changes = []
    for s in field:
        before = _dft(field_data, ms, uvw, cross, s["ra"], s["dec"])
        if before > 0.5:
            changes.append((_dft(peeled, ms, uvw, cross, s["ra"], s["dec"]) - before) / before)
    changes = np.abs(changes)
    assert len(changes) >= 8
    if with_field:  # the goal is <= 2 % for every source; 2.5 % measured at worst (seed 1)
        assert np.median(changes) < 0.01 and changes.max() < 0.03, changes
    else:
        assert np.median(changes) < 0.1 and changes.max() < 0.2, changes


def _power_left(ms, full_ms, field_ms) -> float:
    """Σ|peeled - field-only|² / Σ|full - field-only|² over the cross-correlations (XX, YY)."""
    peeled, a1, a2, _ = _read(ms, "CORRECTED_DATA")
    full, field_data = _read(full_ms)[0], _read(field_ms)[0]
    cross = a1 != a2
    ateam = (full - field_data)[cross][..., [0, 3]]
    return float(np.sum(np.abs((peeled - field_data)[cross][..., [0, 3]]) ** 2) / np.sum(np.abs(ateam) ** 2))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_model_refinement_takes_out_the_missing_structure(sim_cache, tmp_path, shared_data, seed):
    """Antennas over the whole array (baselines to 1.6 km) see the structure the shipped model lacks;
    the clean components of the first pass's residual, added to each source's model, take it out."""
    shipped_path = shared_data / "sky" / "ateam_sources.json"
    rng = np.random.default_rng(seed)
    truth = tmp_path / "ateam_truth.json"
    truth.write_text(json.dumps(_mismatched_ateam(json.loads(shipped_path.read_text()), rng)))
    field = _field(rng)
    kw = {"n_int": 1, "n_antennas": 64, "n_channels": 8, "start": START, "seed": seed, "layout": "spread"}
    out_full, _ = sim_cache(f"peel_mismatch_full_{seed}_spread",
                            {"sources": field, "ateam": str(truth), "noise": {"sigma_jy": 0}}, **kw)
    out_field, _ = sim_cache(f"peel_mismatch_field_{seed}_spread", {"sources": field, "noise": {"sigma_jy": 0}},
                             **kw)
    (full_ms,), (field_ms,) = sorted(out_full.glob("*.ms")), sorted(out_field.glob("*.ms"))
    _catalogue(field, tmp_path / "field.csv", rng)
    left = {}
    for rounds in (0, 1):
        ms = tmp_path / f"r{rounds}" / full_ms.name
        shutil.copytree(full_ms, ms)
        proc = run_cli(["lwa-peel", "sky", str(ms), "--sources", str(shipped_path), "--in-place", "--json", "-v",
                        "--field", str(tmp_path / "field.csv"), "--model-refine-rounds", str(rounds)])
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["converged"] is True
        n_comps = {p["name"]: p["components"] for p in summary["peeled"]}
        if rounds:
            assert "model refinement: Cyg A gets" in proc.stderr
            assert all(n > 3 for n in n_comps.values()), n_comps  # the shipped 2-3 Gaussians + clean components
            with table(str(ms), ack=False) as t:
                assert not {"LWA_PEEL_PASS1", "LWA_PEEL_REFINE"} & set(t.colnames())  # scratch removed
        left[rounds] = _power_left(ms, full_ms, field_ms)
    assert left[1] < 0.5 * left[0], left


@pytest.mark.slow
def test_model_refined_once_serves_an_ms_forty_minutes_later(sim_cache, tmp_path, shared_data):
    """`lwa-peel refine-model` on one MS writes an intrinsic (beam-divided) model that another MS,
    40 minutes later (the A-team elsewhere in the beam), peels with no refinement round: it leaves
    at most 0.6 x what the shipped model leaves there. The refining MS is not modified."""
    seed = 1
    shipped_path = shared_data / "sky" / "ateam_sources.json"
    rng = np.random.default_rng(seed)
    truth = tmp_path / "ateam_truth.json"
    truth.write_text(json.dumps(_mismatched_ateam(json.loads(shipped_path.read_text()), rng)))
    field = _field(rng)
    _catalogue(field, tmp_path / "field.csv", rng)
    sims = {}
    for label, start in (("early", START), ("late", "2024-12-20T00:40:00")):
        kw = {"n_int": 1, "n_antennas": 64, "n_channels": 8, "start": start, "seed": seed, "layout": "spread"}
        full, _ = sim_cache(f"peel_once_full_{label}", {"sources": field, "ateam": str(truth),
                                                        "noise": {"sigma_jy": 0}}, **kw)
        only_field, _ = sim_cache(f"peel_once_field_{label}", {"sources": field, "noise": {"sigma_jy": 0}}, **kw)
        sims[label] = (sorted(full.glob("*.ms"))[0], sorted(only_field.glob("*.ms"))[0])
    early_ms = sims["early"][0]
    before = _read(early_ms)[0]
    model = tmp_path / "model.json"
    proc = run_cli(["lwa-peel", "refine-model", str(early_ms), "--sources", str(shipped_path), "-o", str(model),
                    "--field", str(tmp_path / "field.csv"), "--model-refine-rounds", "1", "--json", "-v"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"]["Cyg A"] > 0
    refined = {e["name"]: e for e in json.loads(model.read_text())}
    assert refined["Cyg A"]["lwa-refined"]["rounds"] == 1 and "lwa-refined" not in refined["Vir A"]
    assert {c.get("spectral-law") for c in refined["Cyg A"]["components"]} == {None, "linear"}
    with table(str(early_ms), ack=False) as t:
        assert "LWA_PEEL_PASS1" not in t.colnames()
    np.testing.assert_array_equal(_read(early_ms)[0], before)
    left = {}
    for label, sources in (("shipped", shipped_path), ("refined", model)):
        ms = tmp_path / label / sims["late"][0].name
        shutil.copytree(sims["late"][0], ms)
        proc = run_cli(["lwa-peel", "sky", str(ms), "--sources", str(sources), "--in-place", "-v",
                        "--field", str(tmp_path / "field.csv"), "--model-refine-rounds", "0"])
        assert proc.returncode == 0, proc.stderr
        left[label] = _power_left(ms, *sims["late"])
    assert left["refined"] < 0.6 * left["shipped"], left
    again = run_cli(["lwa-peel", "refine-model", str(early_ms), "--sources", str(shipped_path), "-o", str(model)])
    assert again.returncode == 1 and "exists" in again.stderr
