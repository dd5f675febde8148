"""Simulate an OVRO-LWA observation: one MS per integration per subband, plus its truth.

Visibilities come from a direct Fourier sum over the sky model (vectorised numpy, one
integration at a time), so every pixel of the truth is exact. pyuvdata writes the MS.

Conventions (checked by imaging with wsclean in the tests): we build MS-convention visibilities,
V = sum S exp(-2 pi i (u l + v m + w (n - 1))), linear feeds XX = I + Q, YY = I - Q, XY = U + iV,
YX = U - iV, antenna gains applied as g_i g_j^*; pyuvdata's data array holds the complex
conjugate (it conjugates on write), so we store conj(V).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import astropy.units as u
import h5py
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time

from lwa_common import LwaError
from lwa_common.config import Site
from lwa_common.io import atomic_path, make_dirs
from lwa_common.naming import format_ms_name, subband_label
from lwa_common.site import enu_basis, geocentric_m, ovro_location
from lwa_common.sky import direction_cosines, gaussian_visibility
from lwa_common.subbands import CHANNEL_WIDTH_HZ, subband_freqs
from lwa_sim.array import Array, load_array
from lwa_sim.spec import Source, TruthSpec

# How far away the site's RFI list puts an emitter simulated at an az/el (far enough for no parallax
# across the array).
RFI_SURVEY_DISTANCE_M = 50_000.0

__all__ = ["ObserveSettings", "observe", "apparent_sources"]

log = logging.getLogger(__name__)

C_M_S = 299_792_458.0


@dataclass(frozen=True)
class ObserveSettings:
    start: Time
    n_integrations: int
    subbands_mhz: tuple[int, ...]
    n_channels: int
    n_antennas: int | None
    system_cfg: Path
    integration_s: float = 10.031
    seed: int = 0
    site: Site = Site()
    layout: str = "spread"  # antenna subset (lwa_sim.array.load_array); the CLI's default is "core"


def _random_fluxes(rng: np.random.Generator, lo: float, hi: float, slope: float | None, count: int) -> np.ndarray:
    """`count` fluxes in [lo, hi]: log-uniform, or with `slope` a power law N(>S) ∝ S^-slope.

    Real source counts are a power law (at 74 MHz γ ≈ 1.35 below ~6 Jy, ≈ 1.85 above: VLSSr, 4C);
    log-uniform (γ = 0) overweights bright sources. Inverse-CDF draw of the truncated power law
    (numpy has no truncated Pareto); one uniform draw per source either way, so a spec without
    `flux_slope` gets the same fluxes and positions as before.
    """
    if slope is None:
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size=count))
    u, g = rng.uniform(size=count), float(slope)
    return lo * (1.0 - u * (1.0 - (lo / hi) ** g)) ** (-1.0 / g)


def _random_sources(cfg: dict, mid: Time, site: Site) -> list[Source]:
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    count = int(cfg.get("count", 20))
    lo, hi = cfg.get("flux_jy", [5.0, 50.0])
    min_el = float(cfg.get("min_elevation_deg", 30.0))
    loc = ovro_location(site)
    out: list[Source] = []
    frame = AltAz(obstime=mid, location=loc)
    while len(out) < count:
        # uniform on the cap above min_el
        z = rng.uniform(np.sin(np.radians(min_el)), 1.0, size=count)
        az = rng.uniform(0, 360, size=count)
        coords = SkyCoord(alt=np.degrees(np.arcsin(z)) * u.deg, az=az * u.deg, frame=frame).icrs
        flux = _random_fluxes(rng, float(lo), float(hi), cfg.get("flux_slope"), count)
        for c, s in zip(coords, flux):
            if len(out) < count:
                out.append(Source(f"rnd{len(out):03d}", float(c.ra.deg), float(c.dec.deg), float(s),
                                  ref_freq_mhz=73.8, spectral_index=float(cfg.get("spectral_index", -0.8)),
                                  kind="random"))
    return out


def _ateam_sources(ateam: str | bool) -> list[Source]:
    from lwa_common.catalogs import read_ttcal_sources

    if ateam is True:
        raise LwaError("spec: 'ateam: true' needs a path to a TTCal sources.json (e.g. ateam_sources.json)")
    out = []
    for src in read_ttcal_sources(ateam):
        for comp in src.components or [src]:
            ref = 60e6
            s60 = float(comp.flux_at(ref))
            # local power-law slope at 60 MHz from the log-polynomial
            s70 = float(comp.flux_at(70e6))
            alpha = float(np.log(s70 / s60) / np.log(70 / 60))
            out.append(Source(f"{src.name}:{comp.name}" if comp is not src else src.name,
                              comp.ra_deg, comp.dec_deg, s60, ref_freq_mhz=60.0, spectral_index=alpha,
                              major_arcsec=comp.major_arcsec or 0.0, minor_arcsec=comp.minor_arcsec or 0.0,
                              pa_deg=comp.pa_deg or 0.0, kind="ateam"))
    return out


def _iono_offsets(cfg: dict | None, sources: list[Source], mid: Time, site: Site) -> list[Source]:
    """Add a smooth ionospheric offset field (a few random long-wavelength modes over the sky)."""
    if not cfg:
        return sources
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    amp = float(cfg.get("amplitude_arcmin", 3.0))
    scale = np.radians(float(cfg.get("scale_deg", 40.0)))
    n_modes = 4
    k = rng.normal(size=(2, n_modes, 2)) / scale
    phase = rng.uniform(0, 2 * np.pi, size=(2, n_modes))
    zen_icrs = SkyCoord(alt=90 * u.deg, az=0 * u.deg, frame=AltAz(obstime=mid, location=ovro_location(site))).icrs
    zen = SkyCoord(zen_icrs.ra, zen_icrs.dec, frame="icrs")  # plain ICRS, comparable with the sources
    out = []
    for s in sources:
        c = SkyCoord(s.ra_deg * u.deg, s.dec_deg * u.deg)
        off = zen.spherical_offsets_to(c)
        x, y = off[0].rad, off[1].rad
        d = [np.sum(np.sin(k[j, :, 0] * x + k[j, :, 1] * y + phase[j])) / np.sqrt(n_modes) * amp for j in (0, 1)]
        out.append(replace(s, offset_arcmin=(s.offset_arcmin[0] + d[0], s.offset_arcmin[1] + d[1])))
    return out


def apparent_sources(spec: TruthSpec, mid: Time, site: Site) -> list[Source]:
    """Every sky source of the spec (field, random, A-team, transient), with ionospheric offsets."""
    sources = list(spec.sources)
    if spec.random_sources:
        sources += _random_sources(spec.random_sources, mid, site)
    if spec.ateam:
        sources += _ateam_sources(spec.ateam)
    sources += [t.source for t in spec.transients]
    return _iono_offsets(spec.ionosphere, sources, mid, site)


def _offset_position(s: Source) -> tuple[float, float]:
    """Where the ionosphere puts a source: (RA, Dec) degrees shifted by its offset (arcmin east,
    north). An offset that carries it over a pole brings it down the other side (RA + 180 deg)."""
    dra, ddec = s.offset_arcmin
    dec = s.dec_deg + ddec / 60.0
    ra = s.ra_deg + dra / 60.0 / max(np.cos(np.radians(s.dec_deg)), 1e-6)
    if abs(dec) > 90.0:
        dec, ra = math.copysign(180.0, dec) - dec, ra + 180.0
    return ra % 360.0, dec


def _true_gains(spec: TruthSpec, n_ant: int, freqs: np.ndarray) -> np.ndarray:
    """Complex gains [ant, pol(X, Y), chan]: smooth bandpass + XY phase on Y."""
    g = np.ones((n_ant, 2, len(freqs)), dtype=np.complex128)
    if spec.gains is None:
        return g
    rng = np.random.default_rng(spec.gains.seed)
    x = (freqs - freqs.mean()) / max(np.ptp(freqs), 1.0)
    for a in range(n_ant):
        for p in range(2):
            amp = 1 + spec.gains.amplitude_rms * rng.normal() + 0.5 * spec.gains.amplitude_rms * rng.normal() * x
            ph = np.radians(spec.gains.phase_rms_deg) * (rng.normal() + rng.normal() * x)
            g[a, p] = amp * np.exp(1j * ph)
    g[:, 1, :] *= np.exp(1j * np.radians(spec.gains.xy_phase_deg))
    return g


def _beam_model(spec: TruthSpec):
    if not spec.beam:
        return None
    from lwa_common.beam import BeamModel, default_beam_path

    return BeamModel.from_h5(default_beam_path())


def _new_uvdata(telescope, freqs: np.ndarray, chan_width: float, tmid: Time, dt: float, n_ant: int):
    """A metadata-only one-integration UVData (all baselines and autos), phased to zenith at `tmid`.

    Phased without data (phasing an all-zero data array costs seconds at real size); the data,
    flags and weights are set by the caller.
    """
    from pyuvdata import UVData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.new(
            freq_array=freqs, polarization_array=["xx", "xy", "yx", "yy"],
            times=np.array([tmid.jd]), telescope=telescope, integration_time=dt,
            channel_width=chan_width, vis_units="Jy",
            antpairs=[(i, j) for i in range(n_ant) for j in range(i, n_ant)],
        )
        uvd.phase_to_time(tmid)
    return uvd


def _source_amplitudes(sources: list[Source], horizontal: SkyCoord, freqs: np.ndarray, beam, interval: int,
                       transients: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the sources above the horizon and their beam-weighted I and V [source, channel]."""
    el, az = horizontal.alt.deg, horizontal.az.deg
    keep, amp_i, amp_v = [], [], []
    for idx, s in enumerate(sources):
        flux = s.flux_at(freqs)
        if s.name in transients:
            tr = transients[s.name]
            if interval not in tr.intervals:
                continue
            i_flux = flux if tr.stokes == "I" else np.zeros_like(flux)
            v_flux = flux if tr.stokes == "V" else flux * s.v_frac
        else:
            i_flux, v_flux = flux, flux * s.v_frac
        if el[idx] <= 0:
            continue
        b = beam.stokes_i(freqs, az[idx], el[idx]) if beam is not None else np.ones_like(freqs)
        keep.append(idx)
        amp_i.append(i_flux * b)
        amp_v.append(v_flux * b)
    shape = (len(keep), len(freqs))
    return np.array(keep, dtype=int), np.array(amp_i, float).reshape(shape), np.array(amp_v, float).reshape(shape)


def _add_point_sources(vis: np.ndarray, uvw: np.ndarray, freqs: np.ndarray, lmn: np.ndarray,
                       amp_i: np.ndarray, amp_v: np.ndarray, chunk_rows: int = 4096) -> None:
    """vis[row, chan, pol] += sum over sources of the fringe x (I, iV, -iV, I) (a direct Fourier sum).

    The fringe exp(-2 pi i phi f / c) (phi = u l + v m + w (n - 1) in metres) is stepped from channel
    to channel by one complex multiply on a uniform frequency grid, and the sum over sources is one
    matrix product per channel, so no exponential is evaluated per channel and source.
    """
    if len(lmn) == 0:
        return
    df = np.diff(freqs)
    uniform = len(freqs) < 2 or np.allclose(df, df[0], rtol=1e-9, atol=1e-3)
    amps = np.stack([amp_i, 1j * amp_v], axis=-1).astype(np.complex128)  # [source, chan, (I, iV)]
    for r0 in range(0, len(uvw), chunk_rows):
        rows = slice(r0, r0 + chunk_rows)
        phi = uvw[rows] @ np.array([lmn[:, 0], lmn[:, 1], lmn[:, 2] - 1.0])  # [row, source] metres
        step = np.exp(-2j * np.pi * phi * (df[0] / C_M_S)) if uniform and len(freqs) > 1 else None
        fringe = np.exp(-2j * np.pi * phi * (freqs[0] / C_M_S))
        iv = np.empty((len(freqs), len(phi), 2), dtype=np.complex128)  # [chan, row, (I, iV)]
        for c in range(len(freqs)):
            if c > 0 and step is not None:
                fringe *= step
            elif c > 0:
                fringe = np.exp(-2j * np.pi * phi * (freqs[c] / C_M_S))
            np.matmul(fringe, amps[:, c, :], out=iv[c])
        i_part, v_part = iv[:, :, 0].T, iv[:, :, 1].T  # [row, chan]
        vis[rows, :, 0] += i_part
        vis[rows, :, 3] += i_part
        vis[rows, :, 1] += v_part
        vis[rows, :, 2] -= v_part


def _add_extended_source(vis: np.ndarray, uvw_l: tuple, lmn: np.ndarray, amp_i: np.ndarray, amp_v: np.ndarray,
                         s: Source) -> None:
    """A Gaussian source: the fringe times its visibility envelope, channel by channel (exact)."""
    u_l, v_l, w_l = uvw_l
    l, m, n = lmn
    fringe = np.exp(-2j * np.pi * (u_l * l + v_l * m + w_l * (n - 1))) * gaussian_visibility(
        u_l, v_l, major_arcsec=s.major_arcsec, minor_arcsec=s.minor_arcsec, pa_deg=s.pa_deg)
    vis[:, :, 0] += fringe * amp_i
    vis[:, :, 3] += fringe * amp_i
    vis[:, :, 1] += fringe * (1j * amp_v)
    vis[:, :, 2] += fringe * (-1j * amp_v)


def _add_rfi_emitters(vis: np.ndarray, spec: TruthSpec, k: int, frame: AltAz, uvw_l: tuple, ra0: float,
                      dec0: float, n_chan: int) -> None:
    for e in spec.rfi_emitters:
        if e.integrations is not None and k not in e.integrations:
            continue
        u_l, v_l, w_l = uvw_l
        c = SkyCoord(alt=e.el_deg * u.deg, az=e.az_deg * u.deg, frame=frame).icrs
        l, m, n = direction_cosines(c.ra.rad, c.dec.rad, ra0, dec0)
        fringe = np.exp(-2j * np.pi * (u_l * l + v_l * m + w_l * (n - 1)))
        chans = np.zeros(n_chan, bool)
        chans[list(e.channels) if e.channels is not None else slice(None)] = True
        for p in (0, 3):
            vis[:, chans, p] += e.flux_jy * fringe[:, chans]


def _corrupt(vis: np.ndarray, *, spec: TruthSpec, k: int, a1: np.ndarray, a2: np.ndarray, gains: np.ndarray,
             sigma: float, auto_level: np.ndarray, hot_phase: dict, hot_amp: dict, rng: np.random.Generator) -> None:
    """Gains, thermal noise, autocorrelations, RFI bursts, hot baselines and dead antennas, in place."""
    for p, (pa, pb) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):  # g_i g_j^*: pol index p = 2*pa + pb
        if spec.gains is not None:
            vis[:, :, p] *= gains[a1, pa, :] * np.conj(gains[a2, pb, :])
    cross = a1 != a2
    # thermal noise on every row (the autocorrelations are overwritten below): real then imaginary
    # parts drawn as two full arrays, the random stream of earlier versions (same skies per seed)
    vis += sigma * rng.standard_normal(vis.shape)
    vis += (1j * sigma) * rng.standard_normal(vis.shape)
    autos = ~cross
    vis[autos, :, 0] = vis[autos, :, 3] = auto_level[None, :]
    vis[autos, :, 1] = vis[autos, :, 2] = 0.0
    for burst in spec.rfi_bursts:
        if burst.integrations is not None and k not in burst.integrations:
            continue
        chans = list(burst.channels) if burst.channels is not None else slice(None)
        sub = vis[cross]
        shape = sub[:, chans].shape
        sub[:, chans] += burst.amplitude_jy * (1 + rng.standard_normal(shape)) * np.exp(2j * np.pi * rng.random(shape))
        vis[cross] = sub
    for pair, ph in hot_phase.items():
        sel = ((a1 == pair[0]) & (a2 == pair[1])) | ((a1 == pair[1]) & (a2 == pair[0]))
        vis[sel] += hot_amp[pair] * np.exp(1j * ph)[None, None, :]
    for dead in spec.dead_antennas:
        sel = ((a1 == dead) | (a2 == dead)) & cross
        vis[sel] = 0.01 * sigma * (rng.standard_normal(vis[sel].shape) + 1j * rng.standard_normal(vis[sel].shape))


def _simulate_integration(uvd, *, k: int, n_int: int, spec: TruthSpec, sources: list[Source], positions: np.ndarray,
                          horizontal: SkyCoord, frame: AltAz, freqs: np.ndarray, beam, chan_width: float,
                          dt: float, sigma: float, gains: np.ndarray, hot_phase: dict, hot_amp: dict,
                          rng: np.random.Generator) -> np.ndarray:
    """The visibilities of integration `k` [row, channel, pol] (MS convention, complex64)."""
    interval = min(k * spec.n_intervals // n_int, spec.n_intervals - 1)
    transients = {t.source.name: t for t in spec.transients}
    cat = next(iter(uvd.phase_center_catalog.values()))
    ra0, dec0 = cat["cat_lon"], cat["cat_lat"]
    uvw = uvd.uvw_array  # metres, (nbl, 3)
    vis = np.zeros((uvd.Nblts, len(freqs), 4), dtype=np.complex64)
    keep, amp_i, amp_v = _source_amplitudes(sources, horizontal, freqs, beam, interval, transients)
    lmn = np.array(direction_cosines(np.radians(positions[keep, 0]), np.radians(positions[keep, 1]),
                                     ra0, dec0)).T.reshape(-1, 3)
    extended = np.array([sources[i].major_arcsec > 0 for i in keep], dtype=bool)
    _add_point_sources(vis, uvw, freqs, lmn[~extended], amp_i[~extended], amp_v[~extended])
    scale = freqs[None, :] / C_M_S  # wavelengths per metre
    uvw_l = tuple(uvw[:, i, None] * scale for i in range(3)) if extended.any() or spec.rfi_emitters else ()
    for j in np.flatnonzero(extended):
        _add_extended_source(vis, uvw_l, lmn[j], amp_i[j], amp_v[j], sources[keep[j]])
    _add_rfi_emitters(vis, spec, k, frame, uvw_l, ra0, dec0, len(freqs))
    auto_level = amp_i.sum(axis=0) + 3 * sigma * np.sqrt(2 * chan_width * dt)
    _corrupt(vis, spec=spec, k=k, a1=uvd.ant_1_array, a2=uvd.ant_2_array, gains=gains, sigma=sigma,
             auto_level=auto_level, hot_phase=hot_phase, hot_amp=hot_amp, rng=rng)
    return vis


def _check_antennas(spec: TruthSpec, n_antennas: int) -> None:
    """Fail before work on a dead or hot-baseline antenna index outside the simulated array."""
    for a in spec.dead_antennas + tuple(x for p in spec.hot_pairs for x in p):
        if not 0 <= a < n_antennas:
            raise LwaError(f"spec: antenna index {a} outside 0..{n_antennas - 1}")


def _telescope(array, loc: EarthLocation):
    """The pyuvdata `Telescope` of the simulated array (alt-az dipoles, X and Y feeds)."""
    from pyuvdata import Telescope

    return Telescope.new(
        name="OVRO-LWA", instrument="OVRO-LWA", location=loc,
        antenna_positions=array.ecef_rel_m, antenna_names=list(array.names),
        antenna_numbers=np.arange(array.n), mount_type="alt-az",
        feed_array=[["x", "y"]] * array.n, feed_angle=[[np.pi / 2, 0.0]] * array.n,
    )


def _noise_sigma(spec: TruthSpec, chan_width: float, dt: float) -> float:
    """The visibility noise (Jy): the spec's `sigma_jy`, else its SEFD (6000 Jy when not given)
    over sqrt(2 Δν Δt)."""
    if spec.sigma_jy is not None:
        return spec.sigma_jy
    sefd = spec.sefd_jy if spec.sefd_jy is not None else 6000.0
    return sefd / np.sqrt(2 * chan_width * dt)


def _write_ms(uvd, vis: np.ndarray, path: Path) -> None:
    """`vis` (MS convention) into `uvd` and written atomically as the MS `path` (nothing flagged)."""
    uvd.data_array = np.conj(vis, out=vis)  # pyuvdata conjugates on write
    uvd.flag_array = np.zeros(vis.shape, dtype=bool)
    uvd.nsample_array = np.ones(vis.shape, dtype=np.float32)
    with atomic_path(path, directory=True) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.write_ms(str(tmp), clobber=True)


def observe(spec: TruthSpec, settings: ObserveSettings, outdir: Path) -> dict:
    """Write the observation into `outdir` and return the truth (also written as truth.json)."""
    if settings.n_integrations < 1:
        raise LwaError("--n-int must be at least 1")
    freqs_by_subband = {sb: subband_freqs(sb, settings.n_channels) for sb in settings.subbands_mhz}
    make_dirs(outdir)
    site = settings.site
    loc = ovro_location(site)
    array = load_array(settings.system_cfg, n_antennas=settings.n_antennas, location=loc, layout=settings.layout)
    _check_antennas(spec, array.n)
    dt = settings.integration_s
    n_int = settings.n_integrations
    starts = [settings.start + (k * dt) * u.s for k in range(n_int)]
    mid_obs = settings.start + (n_int * dt / 2) * u.s
    sources = apparent_sources(spec, mid_obs, site)
    beam = _beam_model(spec)
    rng = np.random.default_rng(settings.seed)
    positions = np.array([_offset_position(s) for s in sources]).reshape(-1, 2)  # apparent (ra, dec) deg
    horizontal: dict[int, SkyCoord] = {}  # integration -> AltAz of every source, shared by subbands

    telescope = _telescope(array, loc)
    truth_subbands = []
    for sb in settings.subbands_mhz:
        freqs = freqs_by_subband[sb]
        chan_width = CHANNEL_WIDTH_HZ * 192 / settings.n_channels
        gains = _true_gains(spec, array.n, freqs)
        sigma = _noise_sigma(spec, chan_width, dt)
        files = []
        hot_phase = {pair: rng.uniform(0, 2 * np.pi, size=4) for pair in spec.hot_pairs}
        hot_amp = dict(spec.hot_pair_amplitudes())
        for k, t0 in enumerate(starts):
            t_sim, cpu_sim = time.perf_counter(), time.process_time()
            tmid = t0 + (dt / 2) * u.s
            uvd = _new_uvdata(telescope, freqs, chan_width, tmid, dt, array.n)
            frame = AltAz(obstime=tmid, location=loc)
            if k not in horizontal:
                horizontal[k] = SkyCoord(positions[:, 0] * u.deg, positions[:, 1] * u.deg).transform_to(frame)
            vis = _simulate_integration(
                uvd, k=k, n_int=n_int, spec=spec, sources=sources, positions=positions, horizontal=horizontal[k],
                frame=frame, freqs=freqs, beam=beam, chan_width=chan_width, dt=dt, sigma=sigma, gains=gains,
                hot_phase=hot_phase, hot_amp=hot_amp, rng=rng)
            t_vis, cpu_vis = time.perf_counter(), time.process_time()
            name = format_ms_name(t0, sb)
            _write_ms(uvd, vis, outdir / name)
            files.append(name)
            log.info("%s: %d rows x %d channels, %d sources: simulated in %.1f s (CPU %.1f s, %.2g visibilities "
                     "per CPU second), written in %.1f s (CPU %.1f s)", name, uvd.Nblts, len(freqs), len(sources),
                     t_vis - t_sim, cpu_vis - cpu_sim, vis.size / max(cpu_vis - cpu_sim, 1e-9),
                     time.perf_counter() - t_vis, time.process_time() - cpu_vis)
        truth_subbands.append({
            "subband": subband_label(sb), "freqs_hz": freqs.tolist(), "channel_width_hz": chan_width,
            "noise_sigma_jy": float(sigma), "files": files,
        })
        if spec.gains is not None:
            _write_gains(outdir / f"true_gains_{subband_label(sb)}.h5", gains, freqs, array)
    if any(e.channels is None for e in spec.rfi_emitters):
        _write_rfi_sources(outdir / "rfi_sources.json", spec, ovro_location(settings.site),
                           np.concatenate(list(freqs_by_subband.values())))
    truth = _truth(spec, settings, array, sources, starts, mid_obs, beam, truth_subbands)
    with atomic_path(outdir / "truth.json") as tmp:
        tmp.write_text(json.dumps(truth, indent=1))
    _write_catalog(outdir / "catalog.csv", sources)
    log.info("wrote %d integrations x %d subbands to %s", n_int, len(settings.subbands_mhz), outdir)
    return truth


def _write_rfi_sources(path: Path, spec: TruthSpec, centre: EarthLocation, freqs: np.ndarray) -> None:
    """The site's list of broadband emitters (those on every channel), as a TTCal RFI sources.json
    (`lwa-peel rfi --sources`): each emitter placed RFI_SURVEY_DISTANCE_M away along its az/el from the
    array centre (ITRF, so `lwa-peel`'s direction is the simulated one), with its flat spectrum.
    Narrow-band emitters are left to the flaggers, as a site's RFI survey would."""
    to_itrf = enu_basis(centre).T
    here = geocentric_m(centre)
    entries = []
    for i, e in enumerate(x for x in spec.rfi_emitters if x.channels is None):
        az, el = np.radians(e.az_deg), np.radians(e.el_deg)
        d = to_itrf @ np.array([np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)])
        there = EarthLocation.from_geocentric(*(here + RFI_SURVEY_DISTANCE_M * d), unit=u.m).to_geodetic("WGS84")
        entries.append({"name": f"emitter-{i}", "sys": "WGS84", "lat": float(there.lat.deg),
                        "long": float(there.lon.deg), "el": float(there.height.to_value(u.m)),
                        "rfi-frequencies": [float(f) for f in (freqs.min(), freqs.max())],
                        "rfi-I": [float(e.flux_jy)] * 2})
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(entries, indent=1))


def _write_gains(path: Path, gains: np.ndarray, freqs: np.ndarray, array: Array) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f["gains"] = gains
        f["freq_hz"] = freqs
        f["antenna_names"] = np.array(array.names, dtype="S")
        f.attrs["layout"] = "gains[antenna, pol (X, Y), channel]; visibility_ij = g_i g_j^* model_ij"


def _write_catalog(path: Path, sources: list[Source]) -> None:
    """True (unshifted) positions and 73.8 MHz fluxes: a VLSSr-like reference catalogue."""
    lines = ["name,ra,dec,flux,major_arcsec,minor_arcsec,kind"]
    for s in sources:
        if s.kind == "transient":
            continue
        lines.append(f"{s.name},{s.ra_deg:.6f},{s.dec_deg:.6f},{s.flux_at(73.8e6):.4f},"
                     f"{s.major_arcsec:.1f},{s.minor_arcsec:.1f},{s.kind}")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _truth(spec, settings, array, sources, starts, mid_obs, beam, subbands) -> dict:
    loc = ovro_location(settings.site)
    frame = AltAz(obstime=mid_obs, location=loc)
    out_sources = []
    transients = {t.source.name: t for t in spec.transients}
    for s in sources:
        ra, dec = _offset_position(s)
        c = SkyCoord(s.ra_deg * u.deg, s.dec_deg * u.deg).transform_to(frame)
        entry = asdict(s)
        entry.update({
            "apparent_ra_deg": ra, "apparent_dec_deg": dec,
            "el_deg_mid": float(c.alt.deg), "az_deg_mid": float(c.az.deg),
            "flux_by_subband": {},
        })
        for sb in subbands:
            f = np.mean(sb["freqs_hz"])
            b = float(beam.stokes_i(np.array([f]), c.az.deg, c.alt.deg)[0]) if beam is not None and c.alt.deg > 0 else (
                1.0 if beam is None else 0.0)
            entry["flux_by_subband"][sb["subband"]] = {
                "freq_hz": f, "intrinsic_jy": float(s.flux_at(f)), "beam_mid": b,
                "apparent_jy": float(s.flux_at(f)) * b,
            }
        if s.name in transients:
            t = transients[s.name]
            entry["transient"] = {"stokes": t.stokes, "intervals": list(t.intervals)}
        out_sources.append(entry)
    dt = settings.integration_s
    n = len(starts)
    intervals = []
    for j in range(spec.n_intervals):
        ks = [k for k in range(n) if min(k * spec.n_intervals // n, spec.n_intervals - 1) == j]
        if ks:
            intervals.append({"index": j, "start": starts[ks[0]].isot, "end": (starts[ks[-1]] + dt * u.s).isot,
                              "integrations": [ks[0], ks[-1]]})
    return {
        "software": "lwa-sim",
        "observation": {
            "start": settings.start.isot, "end": (starts[-1] + dt * u.s).isot, "mid": mid_obs.isot,
            "n_integrations": n, "integration_s": dt, "n_channels": settings.n_channels,
            "subbands": subbands, "intervals": intervals, "seed": settings.seed,
            "layout": settings.layout,
        },
        "antennas": [{"index": i, "name": nm, "corr_num": cn} for i, (nm, cn) in enumerate(zip(array.names, array.corr_nums))],
        "sources": out_sources,
        "rfi": {"bursts": [asdict(b) for b in spec.rfi_bursts], "emitters": [asdict(e) for e in spec.rfi_emitters]},
        "hot_baselines": [{"ant1": a, "ant2": b, "names": [array.names[a], array.names[b]], "amplitude_jy": amp}
                          for (a, b), amp in spec.hot_pair_amplitudes()],
        "hot_amplitude_jy": spec.hot_amplitude_jy,
        "dead_antennas": [{"index": a, "name": array.names[a]} for a in spec.dead_antennas],
        "gains": asdict(spec.gains) if spec.gains else None,
        "beam": "lwa_common analytic dipole" if beam is not None else None,
        "spec": spec.raw,
    }
