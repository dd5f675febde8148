"""Calibrator sky model: A-team sources (TTCal sources.json), beam-weighted, predicted into MODEL_DATA.

The model visibilities are computed by a direct Fourier transform (DFT) in numpy and written with
python-casacore ``putcol``, rather than with CASA ``ft`` of a component list, because

* the apparent flux of an A-team source changes through a calibrator hour as it moves through the
  primary beam; ``ft`` takes one flux per component for the whole MS, the DFT weights every
  integration by the beam at its own time (`lwa_common.beam`, Stokes I response);
* the sign and polarisation conventions are then explicit and the same as the rest of lwa-pipe
  (lwa-sim's MS, checked against wsclean; the tests compare this DFT with it to 1e-6). With the
  ``UVW`` column as written to the MS the exponent is positive (ARCHITECTURE.md writes the
  negative sign with pyuvdata's uvw, the opposite of the MS column)::

      V_pq = sum_k S_k exp(+2 pi i (u l_k + v m_k + w (n_k - 1)))   (u, v, w = MS UVW / lambda)
      XX = I + Q,  XY = U + i V,  YX = U - i V,  YY = I - Q

  (Q and U are taken as given, in the frame of the dipoles: no parallactic-angle rotation — the
  A-team is unpolarised at these frequencies; V needs none);
* Gaussian components (Cyg A, Cas A) are exact (their visibility taper is analytic), no gridding.

A DFT costs rows x channels x components complex exponentials: a few seconds for a full
352-antenna, 192-channel integration with the 8 A-team components; `bench/bench_calib.py` finds it
faster than ``ft`` on small data.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from lwa_common.beam import BeamModel, load_beam, radec_to_azel
from lwa_common.catalogs import CatalogSource, RfiSource, read_ttcal_sources
from lwa_common.config import Site
from lwa_common.errors import LwaError
from lwa_common.ms import open_table
from lwa_common.sky import direction_cosines, gaussian_visibility

__all__ = [
    "Component",
    "components_from_ttcal",
    "load_components",
    "predict_visibilities",
    "write_model_data",
    "apparent_fluxes",
    "add_data_column",
]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0
# casacore Stokes enumeration of the correlations we can predict
_CORR = {5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}


@dataclass(frozen=True)
class Component:
    """One point or Gaussian component of a calibrator (ICRS degrees, FWHM arcsec)."""

    source: str
    name: str
    ra_deg: float
    dec_deg: float
    spectrum: CatalogSource  # gives flux_at(freq, stokes=)
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0

    def stokes_at(self, freq_hz: np.ndarray) -> dict[str, np.ndarray]:
        return {k: np.asarray(self.spectrum.flux_at(freq_hz, stokes=k), dtype=float) for k in "IQUV"}


def components_from_ttcal(sources: Sequence[CatalogSource | RfiSource]) -> list[Component]:
    """Flatten TTCal sources into components; RFI and ephemeris sources (no position) are skipped."""
    out: list[Component] = []
    for src in sources:
        if isinstance(src, RfiSource):
            log.info("sky model: skipping RFI source '%s'", src.name)
            continue
        for comp in src.components or (src,):
            if not comp.has_position:
                log.info("sky model: skipping '%s' (no fixed position)", src.name)
                continue
            out.append(Component(
                source=src.name, name=comp.name, ra_deg=comp.ra_deg, dec_deg=comp.dec_deg, spectrum=comp,
                major_arcsec=comp.major_arcsec, minor_arcsec=comp.minor_arcsec, pa_deg=comp.pa_deg,
            ))
    return out


def load_components(path: str | Path, *, names: Sequence[str] | None = None) -> list[Component]:
    """Components of a TTCal sources.json, optionally only the sources in `names`."""
    sources = read_ttcal_sources(path)
    if names:
        wanted = {n.lower().replace(" ", "") for n in names}
        sources = [s for s in sources if s.name.lower().replace(" ", "") in wanted]
        if not sources:
            raise LwaError(f"{path}: none of the sources {list(names)} is in the file")
    comps = components_from_ttcal(sources)
    if not comps:
        raise LwaError(f"{path}: no sky source with a position")
    return comps


def _stokes_to_corr(corr_types: Sequence[int], s: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Correlation products from Stokes (each an array over channels)."""
    i, q, u, v = s["I"], s["Q"], s["U"], s["V"]
    table = {
        9: i + q, 10: u + 1j * v, 11: u - 1j * v, 12: i - q,
        5: i + v, 6: q + 1j * u, 7: q - 1j * u, 8: i - v,
    }
    out = []
    for c in corr_types:
        if c not in table:
            raise LwaError(f"cannot predict correlation type {c} (supported: {sorted(_CORR)})")
        out.append(np.asarray(table[c], dtype=np.complex128))
    return out


def apparent_fluxes(
    components: Sequence[Component], *, time: Time, freqs_hz: np.ndarray, beam: BeamModel | None,
    min_elevation_deg: float = 0.0, site: Site | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(beam gain [comp, chan], azimuth [comp], elevation [comp]) at `time`; 0 below the limit."""
    ra = np.array([c.ra_deg for c in components])
    dec = np.array([c.dec_deg for c in components])
    az, el = radec_to_azel(ra, dec, time=time, site=site)
    az, el = np.atleast_1d(az), np.atleast_1d(el)
    if beam is None:
        gain = np.ones((len(components), len(freqs_hz)))
    else:
        gain = np.array([beam.stokes_i(freqs_hz, a, e) for a, e in zip(az, el)]).reshape(len(components), -1)
    gain[el <= min_elevation_deg] = 0.0
    return gain, az, el


def predict_visibilities(
    *, uvw_m: np.ndarray, freqs_hz: np.ndarray, phase_dir_rad: tuple[float, float],
    components: Sequence[Component], beam_gain: np.ndarray, corr_types: Sequence[int],
) -> np.ndarray:
    """Model visibilities [row, chan, corr] of `components` for one phase centre and one time.

    `beam_gain[comp, chan]` multiplies every component's Stokes spectrum (1 = no beam).
    """
    uvw_m = np.asarray(uvw_m, dtype=float)
    freqs_hz = np.asarray(freqs_hz, dtype=float)
    out = np.zeros((uvw_m.shape[0], freqs_hz.size, len(corr_types)), dtype=np.complex128)
    scale = freqs_hz[None, :] / C_M_S
    u_l, v_l, w_l = (uvw_m[:, k, None] * scale for k in range(3))
    ra0, dec0 = phase_dir_rad
    for comp, gain in zip(components, beam_gain):
        if not np.any(gain > 0):
            continue
        l, m, n = direction_cosines(math.radians(comp.ra_deg), math.radians(comp.dec_deg), ra0, dec0)
        fringe = np.exp(2j * math.pi * (u_l * l + v_l * m + w_l * (n - 1.0))) * gaussian_visibility(
            u_l, v_l, major_arcsec=comp.major_arcsec, minor_arcsec=comp.minor_arcsec, pa_deg=comp.pa_deg)
        stokes = {k: v * gain for k, v in comp.stokes_at(freqs_hz).items()}
        for k, spec in enumerate(_stokes_to_corr(corr_types, stokes)):
            out[:, :, k] += fringe * spec[None, :]
    return out


def add_data_column(t, name: str, *, like: str = "DATA") -> None:
    """Add a complex visibility column `name` shaped like `like`, with its own data manager."""
    from casacore.tables import makecoldesc, maketabdesc

    desc = makecoldesc(name, t.getcoldesc(like))
    dminfo = t.getdminfo(like)
    dminfo["NAME"] = f"{name.lower()}_dm"
    t.addcols(maketabdesc(desc), dminfo)


def write_model_data(
    ms: str | Path, *, components: Sequence[Component], beam: BeamModel | None | str = "default",
    min_elevation_deg: float = 0.0, chunk_rows: int = 100_000, site: Site | None = None,
) -> dict[str, float]:
    """Fill MODEL_DATA of `ms` with the (beam-weighted) components; returns apparent fluxes (Jy).

    `beam="default"` is the lwa_common beam (analytic dipole unless configured); None: no beam.
    One DFT per (time, field); rows are processed in time order, `chunk_rows` at a time.
    Returns the mean apparent Stokes I at the mid channel per source (for the log and the QA page).
    """
    if isinstance(beam, str):
        beam = load_beam()
    ms = Path(ms)
    with open_table(ms / "SPECTRAL_WINDOW") as sw:
        chan_freqs = [np.asarray(sw.getcell("CHAN_FREQ", r), dtype=float) for r in range(sw.nrows())]
    with open_table(ms / "DATA_DESCRIPTION") as dd:
        dd_spw = dd.getcol("SPECTRAL_WINDOW_ID")
        dd_pol = dd.getcol("POLARIZATION_ID")
    with open_table(ms / "POLARIZATION") as pt:
        corr_types = [list(pt.getcell("CORR_TYPE", r)) for r in range(pt.nrows())]
    with open_table(ms / "FIELD") as ft:
        phase_dirs = [np.asarray(ft.getcell("PHASE_DIR", r)).reshape(-1, 2)[0] for r in range(ft.nrows())]

    flux_sum: dict[str, float] = {c.source: 0.0 for c in components}
    n_steps = 0
    t = open_table(ms, readonly=False)
    try:
        if "MODEL_DATA" not in t.colnames():
            add_data_column(t, "MODEL_DATA")
        nrows = t.nrows()
        for start in range(0, nrows, chunk_rows):
            nr = min(chunk_rows, nrows - start)
            times = t.getcol("TIME", start, nr)
            fields = t.getcol("FIELD_ID", start, nr)
            ddids = t.getcol("DATA_DESC_ID", start, nr)
            uvw = t.getcol("UVW", start, nr)
            shape = t.getcell("DATA", start).shape if len(set(ddids.tolist())) == 1 else None
            model = np.zeros((nr, *shape), dtype=np.complex64) if shape else None
            keys = np.stack([times, fields, ddids], axis=1)
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
            per_row: dict[int, np.ndarray] = {}
            for k, (tt, fid, did) in enumerate(uniq):
                sel = np.flatnonzero(inverse.reshape(-1) == k)
                freqs = chan_freqs[dd_spw[int(did)]]
                corr = corr_types[dd_pol[int(did)]]
                when = Time(tt / 86400.0, format="mjd", scale="utc")
                gain, _, _ = apparent_fluxes(components, time=when, freqs_hz=freqs, beam=beam,
                                             min_elevation_deg=min_elevation_deg, site=site)
                mid = freqs.size // 2
                n_steps += 1
                for comp, g in zip(components, gain):
                    flux_sum[comp.source] += float(comp.stokes_at(freqs[mid:mid + 1])["I"][0] * g[mid])
                vis = predict_visibilities(uvw_m=uvw[sel], freqs_hz=freqs, phase_dir_rad=tuple(phase_dirs[int(fid)]),
                                           components=components, beam_gain=gain, corr_types=corr)
                if model is not None:
                    model[sel] = vis
                else:
                    for r, row in zip(sel, vis):
                        per_row[int(r)] = row.astype(np.complex64)
            if model is not None:
                t.putcol("MODEL_DATA", model, start, nr)
            else:
                for r, row in per_row.items():
                    t.putcell("MODEL_DATA", start + r, row)
    finally:
        t.close()
    summary = {name: total / max(n_steps, 1) for name, total in flux_sum.items()}
    log.info("MODEL_DATA of %s: apparent Stokes I (mid channel, mean over time) %s", ms,
             ", ".join(f"{k} {v:.1f} Jy" for k, v in summary.items()))
    return summary
