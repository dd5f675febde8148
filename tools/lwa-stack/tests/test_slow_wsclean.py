"""Stack real wsclean images of two simulated subbands (lwa-sim 55 + 73 MHz)."""

from __future__ import annotations

import logging
import subprocess

import numpy as np
import pytest
from astropy.io import fits

from lwa_common.config import load_config
from lwa_common.fitsio import read_image, write_image
from lwa_stack.noise import measure_image
from lwa_stack.stack import bands_from_config, wideband

log = logging.getLogger(__name__)

SPEC = {"beam": False, "noise": {"sigma_jy": 4.0},
        "sources": [{"name": "A", "ra": 151.0, "dec": 45.0, "flux_jy": 120, "spectral_index": -1.0}]}


def _image(ms_list, name, freq_mhz, subband, tmp_path):
    """wsclean dirty I+V (tapered, Briggs 0), then the keywords lwa-image would write."""
    cmd = ["wsclean", "-quiet", "-size", "256", "256", "-scale", "0.5", "-pol", "I,V", "-niter", "0", "-weight",
           "briggs", "0", "-taper-inner-tukey", "30", "-no-update-model-required", "-name", str(tmp_path / name),
           *map(str, ms_list)]
    log.info("running %s", " ".join(cmd))
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    out = {}
    for stokes in ("I", "V"):
        raw = tmp_path / f"{name}-{stokes}-image.fits"
        data, header = read_image(raw)
        path = tmp_path / "run" / subband / f"{subband}-{stokes}-Taper-Deep-image.fits"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, data, header, tool="lwa-image", keywords={
            "STOKES": stokes, "IMGCAT": "deep", "INTERVAL": "deep", "NINTERVL": 1, "ROBUST": 0.0, "TAPER": 30.0,
            "PBCOR": False, "DEWARPED": False, "SUBBAND": subband, "FREQMHZ": freq_mhz})
        out[stokes] = path
    return out


@pytest.mark.slow
def test_stack_two_real_wsclean_subbands(sim_cache, tmp_path):
    out, truth = sim_cache("stack_55_73", SPEC, n_int=1, n_antennas=48, n_channels=2, subbands=(55, 73))
    images = {}
    for sb in truth["observation"]["subbands"]:
        label = sb["subband"]
        freq = float(np.mean(sb["freqs_hz"])) / 1e6
        images[label] = _image([out / f for f in sb["files"]], label, freq, label, tmp_path)
    assert sorted(images) == ["55MHz", "73MHz"]
    cfg = load_config(overrides={"stack": {"bands_mhz": [["All", 18.0, 85.0]]}})
    results = {r.path.name: r for r in wideband([tmp_path / "run"], outdir=tmp_path / "wb",
                                                bands=bands_from_config(cfg.stack.bands_mhz))}
    assert sorted(results) == ["Wideband_All_I_deep_Taper_Robust-0.fits", "Wideband_All_V_deep_Taper_Robust-0.fits"]

    src = truth["sources"][0]
    ra, dec = src["apparent_ra_deg"], src["apparent_dec_deg"]
    i_stack = results["Wideband_All_I_deep_Taper_Robust-0.fits"]

    def peak(path):
        from astropy.wcs import WCS

        data, header = read_image(path)
        plane = data[0, 0]
        x, y = WCS(header).celestial.all_world2pix([[ra, dec]], 0)[0]
        xi, yi = int(round(float(x))), int(round(float(y)))
        return float(np.nanmax(plane[yi - 1: yi + 2, xi - 1: xi + 2]))

    per_sb = {c.info.subband: (peak(c.path), w) for c, w in i_stack.used}
    for label, (flux, _) in per_sb.items():
        expected = src["flux_by_subband"][label]["apparent_jy"]
        assert flux == pytest.approx(expected, rel=0.08), label
    weighted = sum(f * w for f, w in per_sb.values()) / sum(w for _, w in per_sb.values())
    log.info("I peaks per subband %s; stack %.3f vs weighted mean %.3f", per_sb, peak(i_stack.path), weighted)
    assert peak(i_stack.path) == pytest.approx(weighted, rel=0.03)

    v_stack = results["Wideband_All_V_deep_Taper_Robust-0.fits"]
    rms_in = [measure_image(images[label]["V"]).rms_jy for label in ("55MHz", "73MHz")]
    rms_out = measure_image(v_stack.path).rms_jy
    log.info("V rms in %s, stack %.4f, expected %.4f", rms_in, rms_out, v_stack.expected_rms_jy)
    assert rms_out < min(rms_in)
    assert rms_out == pytest.approx(v_stack.expected_rms_jy, rel=0.15)
    h = fits.getheader(v_stack.path)
    assert h["SUBBANDS"] == "55MHz,73MHz" and 57 < h["FREQMHZ"] < 75.5

