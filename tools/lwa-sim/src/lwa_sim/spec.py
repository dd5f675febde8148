"""The truth spec: what `lwa-sim observe` puts into the sky and the instrument.

A YAML or JSON mapping; every section is optional::

    sources:                       # point (no major_arcsec) or Gaussian sources
      - {name: src1, ra: "05h30m00s", dec: 40.0, flux_jy: 50, ref_freq_mhz: 60,
         spectral_index: -0.7, v_frac: 0.2, major_arcsec: 0, minor_arcsec: 0, pa_deg: 0,
         offset_arcmin: [0.5, -0.3]}           # ionospheric offset (RA*cos Dec, Dec), arcmin
    random_sources: {count: 30, flux_jy: [5, 50], min_elevation_deg: 30, seed: 1}
                                   # + flux_slope: 1.85 for N(>S) ∝ S^-1.85 (else log-uniform)
    ateam: ateam.json              # a TTCal sources.json (relative: beside the spec file)
    transients:
      - {name: burst, ra: 83.6, dec: 35.0, flux_jy: 30, stokes: V, intervals: [2]}
    ionosphere: {amplitude_arcmin: 4, scale_deg: 40, seed: 3}   # smooth offset field
    rfi:
      - {channels: [3], integrations: [5, 6], amplitude_jy: 5000}
      - {az_deg: 120, el_deg: 2, flux_jy: 2000, channels: all}      # fixed emitter
    hot_baselines: {pairs: [[3, 17], [5, 40, 80]], amplitude_jy: 300}  # antenna indices [, own Jy]
    dead_antennas: [11]
    gains: {amplitude_rms: 0.05, phase_rms_deg: 20, xy_phase_deg: 30, seed: 5}
    noise: {sefd_jy: 6000}         # or {sigma_jy: 1.0}; 0 for noiseless
    beam: true                     # attenuate by the lwa_common dipole beam (default true)

Fluxes are intrinsic (before the primary beam) at `ref_freq_mhz` with S ∝ ν^spectral_index.
Transient `intervals` count from 0 in `n_intervals` (default 6) equal parts of the observation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import astropy.units as u
import yaml
from astropy.coordinates import Angle

from lwa_common import LwaError

__all__ = [
    "Source",
    "Transient",
    "RfiBurst",
    "RfiEmitter",
    "Gains",
    "TruthSpec",
    "load_spec",
    "parse_spec",
]


def _angle(value: Any, unit: u.Unit, where: str) -> float:
    try:
        if isinstance(value, (int, float)):
            return float(value)
        return float(Angle(str(value), unit=unit).deg)
    except (ValueError, u.UnitsError):
        raise LwaError(f"spec: {where}: cannot read angle {value!r}") from None


@dataclass(frozen=True)
class Source:
    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    ref_freq_mhz: float = 60.0
    spectral_index: float = -0.7
    v_frac: float = 0.0
    major_arcsec: float = 0.0
    minor_arcsec: float = 0.0
    pa_deg: float = 0.0
    offset_arcmin: tuple[float, float] = (0.0, 0.0)
    kind: str = "field"  # field / random / ateam / transient

    def flux_at(self, freq_hz: Any) -> Any:
        return self.flux_jy * (freq_hz / (self.ref_freq_mhz * 1e6)) ** self.spectral_index


@dataclass(frozen=True)
class Transient:
    source: Source
    stokes: str
    intervals: tuple[int, ...]


@dataclass(frozen=True)
class RfiBurst:
    channels: tuple[int, ...] | None  # None: all channels
    integrations: tuple[int, ...] | None
    amplitude_jy: float


@dataclass(frozen=True)
class RfiEmitter:
    az_deg: float
    el_deg: float
    flux_jy: float
    channels: tuple[int, ...] | None
    integrations: tuple[int, ...] | None


@dataclass(frozen=True)
class Gains:
    amplitude_rms: float = 0.0
    phase_rms_deg: float = 0.0
    xy_phase_deg: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class TruthSpec:
    sources: tuple[Source, ...] = ()
    random_sources: dict[str, Any] | None = None
    ateam: str | bool = False
    transients: tuple[Transient, ...] = ()
    ionosphere: dict[str, Any] | None = None
    rfi_bursts: tuple[RfiBurst, ...] = ()
    rfi_emitters: tuple[RfiEmitter, ...] = ()
    hot_pairs: tuple[tuple[int, int], ...] = ()
    hot_amplitude_jy: float = 300.0  # the default amplitude of a hot pair
    hot_amplitudes: tuple[float, ...] = ()  # per pair (same order as hot_pairs)
    dead_antennas: tuple[int, ...] = ()
    gains: Gains | None = None
    sefd_jy: float | None = None
    sigma_jy: float | None = None
    beam: bool = True
    n_intervals: int = 6
    raw: dict[str, Any] = field(default_factory=dict)

    def hot_pair_amplitudes(self) -> list[tuple[tuple[int, int], float]]:
        """Each hot pair with its amplitude (its own, else `hot_amplitude_jy`)."""
        amps = list(self.hot_amplitudes) + [self.hot_amplitude_jy] * (len(self.hot_pairs) - len(self.hot_amplitudes))
        return list(zip(self.hot_pairs, amps))


_SOURCE_KEYS = {
    "name", "ra", "dec", "flux_jy", "ref_freq_mhz", "spectral_index", "v_frac", "major_arcsec",
    "minor_arcsec", "pa_deg", "offset_arcmin",
}
_TOP_KEYS = {
    "sources", "random_sources", "ateam", "transients", "ionosphere", "rfi", "hot_baselines",
    "dead_antennas", "gains", "noise", "beam", "n_intervals",
}


def _check_keys(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise LwaError(f"spec: {where} must be a mapping, got {entry!r}")
    unknown = set(entry) - allowed
    if unknown:
        raise LwaError(f"spec: {where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}")


def _source(entry: dict[str, Any], where: str, *, kind: str = "field", extra: set[str] = frozenset()) -> Source:
    _check_keys(entry, _SOURCE_KEYS | set(extra), where)
    for key in ("ra", "dec", "flux_jy"):
        if key not in entry:
            raise LwaError(f"spec: {where}: missing '{key}'")
    offset = entry.get("offset_arcmin", (0.0, 0.0))
    if len(offset) != 2:
        raise LwaError(f"spec: {where}: offset_arcmin must be [dra, ddec]")
    return Source(
        name=str(entry.get("name", where)),
        ra_deg=_angle(entry["ra"], u.hourangle, where),
        dec_deg=_angle(entry["dec"], u.deg, where),
        flux_jy=float(entry["flux_jy"]),
        ref_freq_mhz=float(entry.get("ref_freq_mhz", 60.0)),
        spectral_index=float(entry.get("spectral_index", -0.7)),
        v_frac=float(entry.get("v_frac", 0.0)),
        major_arcsec=float(entry.get("major_arcsec", 0.0)),
        minor_arcsec=float(entry.get("minor_arcsec", entry.get("major_arcsec", 0.0))),
        pa_deg=float(entry.get("pa_deg", 0.0)),
        offset_arcmin=(float(offset[0]), float(offset[1])),
        kind=kind,
    )


def _int_list(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None or value == "all":
        return None
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise LwaError(f"spec: {where} must be a list of integers or 'all'") from None


def _check_flux_slope(slope: Any) -> None:
    """`random_sources.flux_slope`, the integral source-count slope γ of N(>S) ∝ S^-γ: a positive number."""
    if slope is None:
        return
    try:
        ok = float(slope) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LwaError(f"spec: random_sources.flux_slope must be a positive number (N(>S) ∝ S^-slope), got {slope!r}")


def parse_spec(data: dict[str, Any]) -> TruthSpec:
    """The truth spec of `data` (the YAML's mapping); LwaError naming what is wrong."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LwaError(f"spec: the top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return _parse_spec(data)
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # a value of the wrong type or shape
        detail = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise LwaError(f"spec: a value has the wrong type or shape ({detail})") from None


def _parse_spec(data: dict[str, Any]) -> TruthSpec:
    _check_keys(data, _TOP_KEYS, "top level")
    sources = tuple(_source(e, f"sources[{i}]") for i, e in enumerate(data.get("sources", []) or []))
    transients = []
    for i, e in enumerate(data.get("transients", []) or []):
        where = f"transients[{i}]"
        src = _source(e, where, kind="transient", extra={"stokes", "intervals"})
        stokes = str(e.get("stokes", "I")).upper()
        if stokes not in ("I", "V"):
            raise LwaError(f"spec: {where}: stokes must be I or V")
        intervals = _int_list(e.get("intervals", [0]), f"{where}.intervals") or ()
        transients.append(Transient(src, stokes, intervals))
    bursts, emitters = [], []
    for i, e in enumerate(data.get("rfi", []) or []):
        where = f"rfi[{i}]"
        if "az_deg" in e:
            _check_keys(e, {"az_deg", "el_deg", "flux_jy", "channels", "integrations"}, where)
            emitters.append(RfiEmitter(float(e["az_deg"]), float(e.get("el_deg", 1.0)), float(e["flux_jy"]),
                                       _int_list(e.get("channels"), where), _int_list(e.get("integrations"), where)))
        else:
            _check_keys(e, {"channels", "integrations", "amplitude_jy"}, where)
            bursts.append(RfiBurst(_int_list(e.get("channels"), where), _int_list(e.get("integrations"), where),
                                   float(e.get("amplitude_jy", 1000.0))))
    hot = data.get("hot_baselines") or {}
    _check_keys(hot, {"pairs", "amplitude_jy"}, "hot_baselines")
    hot_default = float(hot.get("amplitude_jy", 300.0))
    pairs, hot_amps = [], []
    for i, pair in enumerate(hot.get("pairs", []) or []):
        try:
            if not 2 <= len(pair) <= 3:
                raise ValueError
            pairs.append((int(pair[0]), int(pair[1])))
            hot_amps.append(float(pair[2]) if len(pair) == 3 else hot_default)
        except (TypeError, ValueError):
            raise LwaError(f"spec: hot_baselines.pairs[{i}] must be [ant1, ant2] or [ant1, ant2, amplitude_jy], "
                           f"got {pair!r}") from None
    gains = data.get("gains")
    if gains is not None:
        _check_keys(gains, {"amplitude_rms", "phase_rms_deg", "xy_phase_deg", "seed"}, "gains")
        gains = Gains(**{k: (int(v) if k == "seed" else float(v)) for k, v in gains.items()})
    noise = data.get("noise", {"sefd_jy": 6000.0}) or {}
    _check_keys(noise, {"sefd_jy", "sigma_jy"}, "noise")
    rnd = data.get("random_sources")
    if rnd is not None:
        _check_keys(rnd, {"count", "flux_jy", "min_elevation_deg", "seed", "spectral_index", "flux_slope"},
                    "random_sources")
        _check_flux_slope(rnd.get("flux_slope"))
    iono = data.get("ionosphere")
    if iono is not None:
        _check_keys(iono, {"amplitude_arcmin", "scale_deg", "seed"}, "ionosphere")
    return TruthSpec(
        sources=sources,
        random_sources=rnd,
        ateam=data.get("ateam", False),
        transients=tuple(transients),
        ionosphere=iono,
        rfi_bursts=tuple(bursts),
        rfi_emitters=tuple(emitters),
        hot_pairs=tuple(pairs),
        hot_amplitude_jy=hot_default,
        hot_amplitudes=tuple(hot_amps),
        dead_antennas=tuple(int(a) for a in data.get("dead_antennas", []) or []),
        gains=gains,
        sefd_jy=float(noise["sefd_jy"]) if "sefd_jy" in noise else None,
        sigma_jy=float(noise["sigma_jy"]) if "sigma_jy" in noise else None,
        beam=bool(data.get("beam", True)),
        n_intervals=int(data.get("n_intervals", 6)),
        raw=data,
    )


def load_spec(path: str | Path) -> TruthSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise LwaError(f"cannot read truth spec {path}: {err.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise LwaError(f"truth spec {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                       f"{str(err).splitlines()[0]}") from None
    spec = parse_spec(data)
    if isinstance(spec.ateam, str) and not Path(spec.ateam).is_absolute():  # beside the spec, as written
        spec = replace(spec, ateam=str(path.parent / spec.ateam))
    return spec
