"""The numbers behind real_density_iono.yaml: how many dewarp anchors the real sky gives the demo.

Source counts at 73.8 MHz: the 4C catalogue (178 MHz, Dec −7° to +80°, taken as complete above
3 Jy; `$LWA_SHARED_DATA/sky/4c.dat`) scaled with α = −0.8 for the bright end, joined by a power
law to the VLSSr total (92,964 sources over 9.3 sr above ~0.5 Jy, Lane et al. 2014) below it.
The anchor cut is 5σ (lwa-dewarp's `snr`) of the deep I image's RMS, thermal (measured on a demo
run: 0.13 Jy/beam on dense_iono's Deep-Taper-Robust-0) and with the confusion noise of those
counts in the demo's beam (σ_c² = Ω ∫₀^{qσ} S² n(S) dS, q = 5, solved by iteration), each seen
through the lwa_common dipole beam (apparent = intrinsic × beam(el)) over the sky above 25° and
30° elevation. No library computes confusion noise from a count table, hence this script.

    LWA_SHARED_DATA=/path/to/data .venv/bin/python tests/scenarios/real_density_counts.py
"""

from __future__ import annotations

import numpy as np

from lwa_common.beam import BeamModel, default_beam_path
from lwa_common.testing import shared_data_dir

VLSSR_PER_DEG2, VLSSR_LIMIT_JY = 92964 / (9.3 * (180 / np.pi) ** 2), 0.5
FREQ_MHZ, REF_MHZ, ALPHA = 57.03, 73.8, -0.8
THERMAL_RMS_JY = 0.13                     # deep I, Taper Robust 0, demo size (dense_iono run)
BEAM_DEG2 = 1.1331 * 55.5 * 50.4 / 3600   # its restoring beam, 55.5' x 50.4'
SNR, Q = 5.0, 5.0


def fourc_counts() -> tuple[np.ndarray, float]:
    """4C fluxes scaled to 73.8 MHz (sorted) and the 4C's area in deg²."""
    fluxes = []
    for line in open(shared_data_dir() / "sky" / "4c.dat"):
        try:
            fluxes.append(float(line.split()[6]))
        except (IndexError, ValueError):
            continue
    area = 2 * np.pi * (np.sin(np.radians(80)) - np.sin(np.radians(-7))) * (180 / np.pi) ** 2
    return np.sort(np.array(fluxes)) * (REF_MHZ / 178.0) ** ALPHA, area


def counts_model():
    """N(>S) per deg² at 73.8 MHz: the 4C above its 3 Jy (178 MHz) limit, a power law to VLSSr below."""
    s4, area = fourc_counts()
    s_join = 3.0 * (REF_MHZ / 178.0) ** ALPHA
    n_join = float((s4 >= s_join).sum()) / area
    slope = np.log(VLSSR_PER_DEG2 / n_join) / np.log(s_join / VLSSR_LIMIT_JY)

    def n_above(s):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        bright = (len(s4) - np.searchsorted(s4, s, side="left")) / area
        return np.where(s >= s_join, bright, n_join * (s / s_join) ** -slope)

    return n_above, slope


def confusion_rms(n_above) -> float:
    """σ_c (Jy/beam, apparent at zenith, at FREQ_MHZ) of the counts in the demo's beam, cut at Q σ."""
    k = (FREQ_MHZ / REF_MHZ) ** ALPHA
    grid = np.logspace(-3, 3.5, 4000)
    n_diff = -np.gradient(n_above(grid), grid)
    sigma = 1.0
    for _ in range(100):
        m = grid < Q * sigma / k
        sigma = k * float(np.sqrt(BEAM_DEG2 * np.trapezoid(grid[m] ** 2 * n_diff[m], grid[m])))
    return sigma


def anchors_above(n_above, cut_apparent_jy: float, min_el: float) -> float:
    """Sources above `cut_apparent_jy` (apparent, FREQ_MHZ) over the sky above `min_el` degrees."""
    beam = BeamModel.from_h5(default_beam_path())
    el = np.linspace(min_el, 90.0, 400)
    response = beam.stokes_i(FREQ_MHZ * 1e6, 0.0, el)
    intrinsic = cut_apparent_jy / response / (FREQ_MHZ / REF_MHZ) ** ALPHA
    ring = 2 * np.pi * np.cos(np.radians(el)) * np.radians(el[1] - el[0]) * (180 / np.pi) ** 2
    return float(np.sum(n_above(intrinsic) * ring))


def main() -> None:
    n_above, slope = counts_model()
    print(f"N(>S) at {REF_MHZ} MHz: VLSSr {VLSSR_PER_DEG2:.2f}/deg² above {VLSSR_LIMIT_JY} Jy, "
          f"faint slope {slope:.2f}; " + ", ".join(f">{s} Jy {n_above(s)[0]:.4f}" for s in (2, 5, 10, 20, 50)))
    sigma_c = confusion_rms(n_above)
    print(f"confusion σ (q={Q:g}) in a {BEAM_DEG2:.2f} deg² beam: {sigma_c:.2f} Jy/beam apparent at zenith")
    for label, rms in (("thermal", THERMAL_RMS_JY), ("thermal+confusion", float(np.hypot(THERMAL_RMS_JY, sigma_c)))):
        cut = SNR * rms
        print(f"{label}: {SNR:g}σ = {cut:.2f} Jy apparent: {anchors_above(n_above, cut, 25):.0f} sources "
              f"above 25° elevation, {anchors_above(n_above, cut, 30):.0f} above 30°")
    area25 = 2 * np.pi * (1 - np.sin(np.radians(25))) * (180 / np.pi) ** 2
    print(f"sources ≥ 5 Jy (73.8 MHz) above 25°: {n_above(5.0)[0] * area25:.0f} (random_sources count)")


if __name__ == "__main__":
    main()
