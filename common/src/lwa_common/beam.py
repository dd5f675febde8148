"""Primary beam of the OVRO-LWA dipoles: HDF5 beam files, Stokes I response, beams on image grids.

Beam file layout (the private OVRO-LWA file ``OVRO-LWA_MROsoil_updatedheight.h5`` and the analytic
default shipped here share it)::

    freq_Hz                       (F,)        frequencies [Hz]
    theta_pts                     (T,)        zenith angle, 0 (zenith) .. 90 (horizon)
    phi_pts                       (P,)        azimuth, 0 .. 360, from North through East
    X_pol_Efields/etheta, /ephi   (F, T, P)   complex far-field components of the X dipole
    Y_pol_Efields/etheta, /ephi   (F, T, P)   same for the Y dipole

Angles may be stored in degrees or radians: a ``units`` attribute ("deg"/"rad") wins, otherwise
radians are assumed when every theta is <= pi and every phi <= 2 pi (a degree grid that small makes
no sense). Files written here use degrees. ``phi`` is read as the astronomical azimuth, as the
OVRO-LWA reader code does with the private file. The Stokes I response is
``|X_etheta|^2 + |X_ephi|^2 + |Y_etheta|^2 + |Y_ephi|^2``, normalised to 1 at the zenith at every
frequency, and interpolated linearly in frequency, theta and (periodic) phi; it is 0 below the
horizon.

The analytic default comes from the empirical LWA1 dipole fit (LWA Memo 178; coefficients as
shipped by LSL in ``lwa1-dipole-emp.npz``): per principal plane a power pattern
``p(za) = (1 - (2 za/pi)^alpha) cos(za)^beta + gamma (2 za/pi) cos(za)^delta`` whose four
parameters are polynomials in frequency. ``p`` is a *power* pattern (LSL and TTCal apply it to flux
densities directly; at 10 deg elevation it gives ~0.07, like sin(el)^1.6), so the field amplitudes
are ``sqrt(p)``. The X dipole points east, so its E-plane is the az = 90 deg cut; the Y dipole
points north. With phi the azimuth::

    X: etheta = sqrt(pE_X) sin(phi),   ephi = sqrt(pH_X) cos(phi)
    Y: etheta = sqrt(pE_Y) cos(phi),   ephi = -sqrt(pH_Y) sin(phi)

so one dipole's power is ``pE cos^2(psi) + pH sin^2(psi)`` with psi the azimuth from its own axis,
which is exact for a short dipole over a ground plane. The fit arrays are indexed
``[cut, parameter, coefficient]``; the first cut is the X dipole's E-plane for *both* arrays (LSL
applies ``fit[0]`` along the same direction for X and Y), so ``fitY[1]`` is the Y E-plane and
``fitY[0]`` its H-plane. The numbers agree: ``fitX[0] ~ fitY[1]`` and ``fitX[1] ~ fitY[0]``.

The polynomials were fitted to LWA1 data between about 20 and 80 MHz. They stay smooth and give a
sane pattern (finite, >= 0, 1 at zenith, falling to 0 at the horizon, with an E-plane bump of at most
0.3 % within 2 deg of zenith) between 10 and 86 MHz, and run away outside (at 5 MHz or 92 MHz the
"pattern" exceeds 1 by orders of magnitude). The frequency used to evaluate them is therefore
clamped into `FIT_FREQ_RANGE_HZ`: the 10-20 and 80-86 MHz parts are a smooth extrapolation of
the fit, and the beam is frozen beyond that.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning

from lwa_common.altaz import icrs_to_altaz
from lwa_common.config import Site
from lwa_common.errors import LwaError
from lwa_common.io import atomic_path, user_cache_dir

__all__ = [
    "FIT_FREQ_RANGE_HZ",
    "SHIPPED_GRID",
    "BeamModel",
    "load_beam",
    "default_beam_path",
    "find_dipole_fit",
    "write_analytic_beam_h5",
    "analytic_stokes_i",
    "radec_to_azel",
    "beam_for_image",
    "apparent_flux",
]

log = logging.getLogger(__name__)

FIT_FREQ_RANGE_HZ: tuple[float, float] = (10e6, 86e6)
"""Frequencies at which the empirical dipole fit is evaluated are clamped into this range."""

SHIPPED_GRID: dict[str, Any] = {
    "freqs_hz": np.arange(10e6, 90.01e6, 2e6),
    "dtheta_deg": 1.0,
    "dphi_deg": 5.0,
}
"""Grid of the shipped default beam file (kept < 3 MB: gzip, complex64)."""

DEFAULT_BEAM_NAME = "dipole_beam.h5"
FIT_ENV = "LWA_DIPOLE_FIT"
_FIT_NAME = "lwa1-dipole-emp.npz"
_E_DATASETS = (
    "X_pol_Efields/etheta",
    "X_pol_Efields/ephi",
    "Y_pol_Efields/etheta",
    "Y_pol_Efields/ephi",
)
_AXIS_DATASETS = ("freq_Hz", "theta_pts", "phi_pts")


# --------------------------------------------------------------------------------------------------
# analytic dipole (empirical LWA1 fit)


def find_dipole_fit(fit_path: str | Path | None = None) -> Path:
    """Locate ``lwa1-dipole-emp.npz``: `fit_path`, else $LWA_DIPOLE_FIT, else an installed LSL."""
    candidates: list[Path] = []
    if fit_path is not None:
        candidates.append(Path(fit_path))
    elif os.environ.get(FIT_ENV):
        candidates.append(Path(os.environ[FIT_ENV]))
    else:
        spec = importlib.util.find_spec("lsl")
        if spec is not None and spec.origin:
            root = Path(spec.origin).parent / "data"
            candidates += [root / "antenna" / _FIT_NAME, root / _FIT_NAME]
    for path in candidates:
        if path.is_file():
            return path
    where = ", ".join(str(p) for p in candidates) or "nowhere"
    raise LwaError(
        f"empirical dipole fit {_FIT_NAME} not found (looked: {where}); "
        f"set {FIT_ENV} to its path (it ships with LSL)"
    )


def _load_fit(fit_path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    path = find_dipole_fit(fit_path)
    try:
        with np.load(path) as npz:
            fit_x = np.asarray(npz["fitX"], dtype=float)
            fit_y = np.asarray(npz["fitY"], dtype=float)
    except (OSError, ValueError, KeyError) as err:
        raise LwaError(f"cannot read dipole fit {path}: {err}") from None
    if fit_x.shape[:2] != (2, 4) or fit_y.shape != fit_x.shape:
        raise LwaError(
            f"dipole fit {path}: fitX/fitY must be shaped (2, 4, n), got {fit_x.shape}/{fit_y.shape}"
        )
    return fit_x, fit_y


def _plane_power(coeffs: np.ndarray, freq_hz: np.ndarray, za_rad: np.ndarray) -> np.ndarray:
    """Power pattern of one principal cut, p(za) >= 0; za is clipped into [0, pi/2]."""
    alpha, beta, gamma, delta = (np.polyval(coeffs[i], freq_hz) for i in range(4))
    x = np.clip(2.0 * za_rad / np.pi, 0.0, 1.0)
    cz = np.clip(np.cos(np.clip(za_rad, 0.0, np.pi / 2)), 0.0, 1.0)
    p = (1.0 - x**alpha) * cz**beta + gamma * x * cz**delta
    return np.clip(p, 0.0, None)


def _dipole_fields(
    fit_x: np.ndarray, fit_y: np.ndarray, freq_hz: Any, za_rad: Any, az_rad: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_etheta, X_ephi, Y_etheta, Y_ephi), real, broadcast over the three inputs."""
    freq = np.clip(np.asarray(freq_hz, dtype=float), *FIT_FREQ_RANGE_HZ)
    za = np.asarray(za_rad, dtype=float)
    sin_az, cos_az = np.sin(az_rad), np.cos(az_rad)
    pe_x, ph_x = _plane_power(fit_x[0], freq, za), _plane_power(fit_x[1], freq, za)
    pe_y, ph_y = _plane_power(fit_y[1], freq, za), _plane_power(fit_y[0], freq, za)
    return (
        np.sqrt(pe_x) * sin_az,
        np.sqrt(ph_x) * cos_az,
        np.sqrt(pe_y) * cos_az,
        -np.sqrt(ph_y) * sin_az,
    )


def analytic_stokes_i(
    freq_hz: Any, az_deg: Any, el_deg: Any, *, fit_path: str | Path | None = None
) -> np.ndarray:
    """Closed-form Stokes I of the analytic dipole pair (1 at zenith, 0 below the horizon)."""
    fit_x, fit_y = _load_fit(fit_path)
    freq, az, el = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (freq_hz, az_deg, el_deg)))
    za = np.radians(90.0 - np.clip(el, 0.0, 90.0))
    fields = _dipole_fields(fit_x, fit_y, freq, za, np.radians(az))
    power = sum(f**2 for f in fields) / 2.0  # each dipole gives 1 at zenith
    return np.where(el >= 0.0, power, 0.0)


def _regular_grid(step: float, span: float, what: str) -> np.ndarray:
    n = int(round(span / step)) if step > 0 else 0
    if n < 2 or abs(n * step - span) > 1e-6 * span:
        raise LwaError(f"{what} must divide {span:g} deg into at least 2 steps, got {step!r}")
    return np.linspace(0.0, span, n + 1)


def write_analytic_beam_h5(
    path: str | Path,
    *,
    freqs_hz: Any = SHIPPED_GRID["freqs_hz"],
    dtheta_deg: float = 1.0,
    dphi_deg: float = 2.0,
    fit_path: str | Path | None = None,
) -> Path:
    """Write the analytic dipole beam in the OVRO-LWA h5 layout (degrees, complex64), atomically.

    theta runs 0..90 deg and phi 0..360 deg inclusive (the 360 column repeats 0, so readers that do
    not wrap phi still cover the full circle).
    """
    freqs = np.atleast_1d(np.asarray(freqs_hz, dtype=float))
    if freqs.ndim != 1 or freqs.size < 1 or not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
        raise LwaError("freqs_hz must be a 1-D list of positive frequencies in Hz")
    if np.any(np.diff(freqs) <= 0):
        raise LwaError("freqs_hz must be strictly increasing")
    theta = _regular_grid(float(dtheta_deg), 90.0, "dtheta_deg")
    phi = _regular_grid(float(dphi_deg), 360.0, "dphi_deg")
    fit_x, fit_y = _load_fit(fit_path)
    fields = _dipole_fields(
        fit_x,
        fit_y,
        freqs[:, None, None],
        np.radians(theta)[None, :, None],
        np.radians(phi)[None, None, :],
    )
    import h5py  # lwa-common[ms]

    path = Path(path)
    lo, hi = FIT_FREQ_RANGE_HZ
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as hf:
        hf.attrs["title"] = "Analytic OVRO-LWA dipole beam (empirical LWA1 dipole fit)"
        hf.attrs["model"] = (
            "power p(za)=(1-(2za/pi)^a)cos(za)^b+g(2za/pi)cos(za)^d per principal plane, "
            "fields sqrt(p); X dipole east, Y north"
        )
        hf.attrs["source"] = "LWA Memo 178 empirical fit; coefficients from LSL lwa1-dipole-emp.npz"
        hf.attrs["fit_freq_clamp_hz"] = np.array([lo, hi])
        hf.attrs["conventions"] = "theta: zenith angle [deg]; phi: azimuth from North through East [deg]"
        hf.attrs["generator"] = "lwa_common.beam.write_analytic_beam_h5"
        hf.create_dataset("freq_Hz", data=freqs).attrs["units"] = "Hz"
        hf.create_dataset("theta_pts", data=theta).attrs["units"] = "deg"
        hf.create_dataset("phi_pts", data=phi).attrs["units"] = "deg"
        for name, field in zip(_E_DATASETS, fields, strict=True):
            hf.create_dataset(
                name,
                data=field.astype(np.complex64),
                compression="gzip",
                compression_opts=9,
                shuffle=True,
                chunks=(1, theta.size, phi.size),
            )
    log.info(
        "wrote analytic beam %s: %d freqs %.1f-%.1f MHz, dtheta %g deg, dphi %g deg",
        path,
        freqs.size,
        freqs[0] / 1e6,
        freqs[-1] / 1e6,
        dtheta_deg,
        dphi_deg,
    )
    return path


def _packaged_beam_path() -> Path:
    return Path(__file__).resolve().parent / "data" / DEFAULT_BEAM_NAME


def default_beam_path() -> Path:
    """The shipped analytic beam file; regenerated into the user cache when the package lacks it."""
    packaged = _packaged_beam_path()
    if packaged.is_file():
        return packaged
    cached = user_cache_dir() / DEFAULT_BEAM_NAME
    if cached.is_file():
        return cached
    log.warning("default beam %s missing from the package; regenerating it in %s", packaged, cached)
    return write_analytic_beam_h5(
        cached,
        freqs_hz=SHIPPED_GRID["freqs_hz"],
        dtheta_deg=SHIPPED_GRID["dtheta_deg"],
        dphi_deg=SHIPPED_GRID["dphi_deg"],
    )


# --------------------------------------------------------------------------------------------------
# gridded beam model


def _frac_index(values: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper neighbours and weight of `values` on an increasing `grid` (clamped at the ends)."""
    n = grid.size
    if n == 1:
        zeros = np.zeros(values.shape, dtype=np.intp)
        return zeros, zeros, np.zeros(values.shape)
    pos = _grid_position(values, grid)
    i0 = np.minimum(pos.astype(np.intp), n - 2)
    return i0, i0 + 1, pos - i0


def _grid_position(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fractional index of `values` on an increasing `grid`, clipped to [0, n - 1]."""
    step = (grid[-1] - grid[0]) / (grid.size - 1)
    if np.allclose(np.diff(grid), step, rtol=1e-9, atol=0.0):  # regular grid: no search needed
        return np.clip((values - grid[0]) / step, 0.0, grid.size - 1.0)
    return np.interp(values, grid, np.arange(grid.size, dtype=float))


def _angles_in_degrees(values: np.ndarray, units: str | None, rad_max: float, name: str) -> np.ndarray:
    if units:
        unit = units.strip().lower()
        if unit.startswith("deg"):
            return values
        if unit.startswith("rad"):
            return np.degrees(values)
        raise LwaError(f"{name} has units '{units}'; expected 'deg' or 'rad'")
    if np.nanmax(np.abs(values)) <= rad_max * (1.0 + 1e-6):
        log.debug("%s: no units attribute and all values <= %.4f, reading them as radians", name, rad_max)
        return np.degrees(values)
    return values


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return _text(value.flat[0]) if value.size else None
    return str(value)


@dataclass(frozen=True, eq=False)
class BeamModel:
    """Stokes I primary beam on a (freq, theta, phi) grid, normalised to 1 at the zenith.

    Build it with `BeamModel.from_h5` (or `load_beam`). ``stokes`` is float32 shaped
    (freqs, thetas, phis); ``phi_deg`` lies in [0, 360) and is treated as periodic.
    """

    freqs_hz: np.ndarray
    theta_deg: np.ndarray
    phi_deg: np.ndarray
    stokes: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        shape = (self.freqs_hz.size, self.theta_deg.size, self.phi_deg.size)
        if self.stokes.shape != shape:
            raise LwaError(f"beam grid is shaped {self.stokes.shape}, axes give {shape}")
        for name in ("freqs_hz", "theta_deg", "phi_deg"):
            if np.any(np.diff(getattr(self, name)) <= 0):
                raise LwaError(f"beam axis {name} must be strictly increasing")
        if self.phi_deg.size and (self.phi_deg[0] < 0 or self.phi_deg[-1] >= 360):
            raise LwaError("beam phi axis must lie in [0, 360) deg")

    @classmethod
    def from_h5(cls, path: str | Path) -> BeamModel:
        """Read an OVRO-LWA layout beam file and form the normalised Stokes I grid."""
        import h5py  # lwa-common[ms]

        path = Path(path)
        if not path.is_file():
            raise LwaError(f"beam file not found: {path}")
        try:
            hf = h5py.File(path, "r")
        except OSError as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LwaError(f"beam file {path} is not a readable HDF5 file ({first})") from None
        with hf:
            missing = [name for name in _AXIS_DATASETS + _E_DATASETS if name not in hf]
            if missing:
                raise LwaError(
                    f"beam file {path} lacks dataset(s) {', '.join(missing)}; expected the OVRO-LWA layout "
                    "(freq_Hz, theta_pts, phi_pts, {X,Y}_pol_Efields/{etheta,ephi})"
                )
            try:
                freqs = np.asarray(hf["freq_Hz"][()], dtype=float).ravel()
                theta = np.asarray(hf["theta_pts"][()], dtype=float).ravel()
                phi = np.asarray(hf["phi_pts"][()], dtype=float).ravel()
                theta_units = _text(hf["theta_pts"].attrs.get("units"))
                phi_units = _text(hf["phi_pts"].attrs.get("units"))
                shape = (freqs.size, theta.size, phi.size)
                power = np.zeros(shape, dtype=np.float64)
                for name in _E_DATASETS:
                    if hf[name].shape != shape:
                        raise LwaError(
                            f"beam file {path}: {name} is shaped {hf[name].shape}, expected [freq, theta, phi] {shape}"
                        )
                    power += np.abs(hf[name][()]) ** 2
            except (OSError, TypeError, ValueError) as err:
                raise LwaError(f"cannot read beam file {path}: {err}") from None
        return cls._from_power(freqs, theta, phi, power, theta_units, phi_units, source=str(path))

    @classmethod
    def _from_power(
        cls,
        freqs: np.ndarray,
        theta: np.ndarray,
        phi: np.ndarray,
        power: np.ndarray,
        theta_units: str | None,
        phi_units: str | None,
        *,
        source: str,
    ) -> BeamModel:
        if min(freqs.size, theta.size, phi.size) == 0:
            raise LwaError(f"beam file {source} has an empty axis")
        if not (np.all(np.isfinite(freqs)) and np.all(np.isfinite(theta)) and np.all(np.isfinite(phi))):
            raise LwaError(f"beam file {source} has non-finite axis values")
        if not np.all(np.isfinite(power)):
            raise LwaError(f"beam file {source} has non-finite E-field values")
        theta = _angles_in_degrees(theta, theta_units, np.pi, "theta_pts")
        phi = _angles_in_degrees(phi, phi_units, 2 * np.pi, "phi_pts")
        if np.nanmax(freqs) < 1e4:  # a LWA beam in Hz cannot stop below 10 kHz: it was written in MHz
            log.warning("beam file %s: freq_Hz values look like MHz; converting", source)
            freqs = freqs * 1e6

        f_order = np.argsort(freqs, kind="stable")
        t_order = np.argsort(theta, kind="stable")
        freqs, theta = freqs[f_order], theta[t_order]
        power = power[f_order][:, t_order]
        if np.any(np.diff(freqs) == 0) or np.any(np.diff(theta) == 0):
            raise LwaError(f"beam file {source} has repeated frequencies or theta values")
        phi_mod = np.mod(phi, 360.0)
        phi_mod = np.where(np.isclose(phi_mod, 360.0), 0.0, phi_mod)
        phi_unique, first = np.unique(phi_mod, return_index=True)  # drops the 360 == 0 duplicate
        power = power[:, :, first]

        zen = int(np.argmin(np.abs(theta)))
        if abs(theta[zen]) > 0.5:
            raise LwaError(f"beam file {source} has no zenith row (smallest theta {theta[zen]:.2f} deg)")
        zenith = power[:, zen, :].mean(axis=1)
        if np.any(zenith <= 0):
            bad = freqs[np.argmax(zenith <= 0)] / 1e6
            raise LwaError(f"beam file {source} has zero response at the zenith at {bad:.3f} MHz")
        stokes = (power / zenith[:, None, None]).astype(np.float32)
        log.debug(
            "beam %s: %d freqs %.2f-%.2f MHz, theta %d pts to %.1f deg, phi %d pts",
            source,
            freqs.size,
            freqs[0] / 1e6,
            freqs[-1] / 1e6,
            theta.size,
            theta[-1],
            phi_unique.size,
        )
        return cls(freqs_hz=freqs, theta_deg=theta, phi_deg=phi_unique, stokes=stokes, source=source)

    def _slice(self, freq_hz: float) -> np.ndarray:
        """(theta, phi) Stokes I at one frequency (linear in frequency, clamped to the grid)."""
        i0, i1, w = _frac_index(np.asarray([float(freq_hz)]), self.freqs_hz)
        return (1.0 - w[0]) * self.stokes[i0[0]] + w[0] * self.stokes[i1[0]]

    def stokes_i(self, freq_hz: Any, az_deg: Any, el_deg: Any) -> np.ndarray:
        """Stokes I response (zenith = 1) at azimuth/elevation in degrees; arrays broadcast.

        0 below the horizon (el < 0); NaN where an input is NaN. Frequencies outside the grid take
        the nearest end of it.
        """
        freq, az, el = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (freq_hz, az_deg, el_deg)))
        good = np.isfinite(freq) & np.isfinite(az) & np.isfinite(el)
        freq, az, el = (np.where(good, a, 0.0) for a in (freq, az, el))
        lo, hi = self.freqs_hz[0], self.freqs_hz[-1]
        if np.any(good & ((freq < lo * (1 - 1e-9)) | (freq > hi * (1 + 1e-9)))):
            log.debug(
                "beam %s: frequencies outside %.2f-%.2f MHz take the edge value",
                self.source,
                lo / 1e6,
                hi / 1e6,
            )

        theta = 90.0 - np.clip(el, -90.0, 90.0)
        t0, t1, wt = _frac_index(theta, self.theta_deg)
        p0, p1, wp = self._phi_index(az)
        n_phi = self.phi_deg.size
        if np.ndim(freq_hz) == 0 and np.isfinite(freq_hz):  # one frequency: interpolate one plane
            flat = np.ascontiguousarray(self._slice(float(freq_hz))).ravel()
            value = _bilinear(flat, 0, n_phi, t0, t1, wt, p0, p1, wp)
        else:
            f0, f1, wf = _frac_index(freq, self.freqs_hz)
            flat = self.stokes.ravel()
            plane = self.theta_deg.size * n_phi
            value = (1.0 - wf) * _bilinear(flat, f0 * plane, n_phi, t0, t1, wt, p0, p1, wp)
            value += wf * _bilinear(flat, f1 * plane, n_phi, t0, t1, wt, p0, p1, wp)
        value = np.where(el >= 0.0, value, 0.0)
        return np.where(good, value, np.nan)

    def _phi_index(self, az_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phi = self.phi_deg
        n = phi.size
        if n == 1:
            zeros = np.zeros(az_deg.shape, dtype=np.intp)
            return zeros, zeros, np.zeros(az_deg.shape)
        az = np.mod(az_deg, 360.0)
        az = np.where(az < phi[0], az + 360.0, az)
        pos = _grid_position(az, np.append(phi, phi[0] + 360.0))
        i0 = np.minimum(pos.astype(np.intp), n - 1)
        return i0, (i0 + 1) % n, pos - i0


def _bilinear(
    flat: np.ndarray,
    base: Any,
    n_phi: int,
    t0: np.ndarray,
    t1: np.ndarray,
    wt: np.ndarray,
    p0: np.ndarray,
    p1: np.ndarray,
    wp: np.ndarray,
) -> np.ndarray:
    """Bilinear interpolation in (theta, phi) of the planes starting at flat offset `base`."""
    row0, row1 = base + t0 * n_phi, base + t1 * n_phi
    lower = (1.0 - wp) * flat[row0 + p0] + wp * flat[row0 + p1]
    upper = (1.0 - wp) * flat[row1 + p0] + wp * flat[row1 + p1]
    return (1.0 - wt) * lower + wt * upper


def load_beam(path: str | Path | None = None) -> BeamModel:
    """The beam in `path`, or the shipped analytic dipole beam when `path` is None or empty.

    A file is read once per process while it is unchanged (same size and modification time), so
    that every image's beam in a run is the same object (and `beam_for_image`'s cache holds).
    """
    path = Path(default_beam_path() if path is None or str(path) == "" else path)
    try:
        st = path.stat()
    except OSError:
        return BeamModel.from_h5(path)  # its own "not found" error
    return _load_beam_file(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_beam_file(path: str, size: int, mtime_ns: int) -> BeamModel:
    return BeamModel.from_h5(path)


# --------------------------------------------------------------------------------------------------
# sky -> horizon coordinates and image-plane beams


def _unit_vectors(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def _icrs_to_enu(time: Time, site: Site | None) -> np.ndarray:
    """3x3 rotation taking ICRS unit vectors to local (east, north, up) at `time`.

    Fitted (Kabsch) to the exact ICRS -> az/el (`lwa_common.altaz.icrs_to_altaz`: astropy's AltAz
    astrometry through erfa, without astropy's IERS parse) of 96 directions spread over the
    sphere, so it carries precession, nutation, polar motion and the apparent sidereal time.
    What a rotation cannot hold is the direction-dependent part of annual aberration (<= 20.5
    arcsec); refraction is not modelled (AltAz pressure 0).
    """
    n = 96
    k = np.arange(n) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * k / n))
    lon = np.degrees(np.mod(k * np.pi * (3.0 - np.sqrt(5.0)), 2 * np.pi))
    az, alt = (np.radians(a) for a in icrs_to_altaz(lon, lat, time=time, location=site))
    enu = np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=-1)
    src = _unit_vectors(lon, lat)
    u_, _, vt = np.linalg.svd(src.T @ enu)
    d = np.sign(np.linalg.det(vt.T @ u_.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u_.T


def _as_time(time: Any) -> Time:
    if isinstance(time, Time):
        return time
    try:
        return Time(time, scale="utc")
    except (ValueError, TypeError) as err:
        raise LwaError(f"cannot read time {time!r}: {err}") from None


def radec_to_azel(
    ra_deg: Any, dec_deg: Any, *, time: Any, site: Site | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (N through E) and elevation in degrees of ICRS/J2000 directions, vectorised.

    One astropy transform builds a rotation matrix for `time`; every direction then costs a
    matrix product. Agrees with a per-point astropy AltAz transform to ~20 arcsec (the part of
    annual aberration a rotation cannot hold; no refraction) - ample for a beam.
    """
    rot = _icrs_to_enu(_as_time(time), site)
    vec = _unit_vectors(np.asarray(ra_deg, dtype=float), np.asarray(dec_deg, dtype=float))
    return _enu_to_azel(vec @ rot.T)


def _enu_to_azel(enu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    east, north, up = enu[..., 0], enu[..., 1], enu[..., 2]
    az = np.mod(np.degrees(np.arctan2(east, north)), 360.0)
    el = np.degrees(np.arcsin(np.clip(up, -1.0, 1.0)))
    return az, el


def _header_freq_hz(header: fits.Header) -> float | None:
    """The image frequency by the one header rule of `lwa_common.images` (FREQMHZ, else the FREQ axis)."""
    from lwa_common.images import info_from_header

    freq = info_from_header("header", header).freq_mhz
    return freq * 1e6 if math.isfinite(freq) else None


def _header_time(header: fits.Header) -> Time | None:
    """The middle of the data by the one header rule of `lwa_common.images` (MJD-MID, DATE-OBS..DATE-END)."""
    from lwa_common.images import info_from_header

    mid = info_from_header("header", header).mjd_mid
    return Time(mid, format="mjd", scale="utc") if mid is not None else None


def beam_for_image(
    header_or_wcs: fits.Header | WCS,
    *,
    freq_hz: float | None = None,
    time: Any = None,
    beam: BeamModel | None = None,
    min_elevation_deg: float = 10.0,
    min_response: float = 0.05,
    site: Site | None = None,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Stokes I beam (zenith = 1) on an image's pixel grid, float32 shaped (ny, nx), read-only.

    `header_or_wcs` is a wsclean-style FITS header (any number of axes; the celestial ones are
    used) or an astropy WCS (then `shape` or the WCS's pixel shape gives the size). `freq_hz` and
    `time` default to the header's FREQMHZ / FREQ axis and MJD-MID / middle of DATE-OBS..DATE-END.
    `beam` defaults to the shipped analytic dipole beam. Pixels off the sky, below
    `min_elevation_deg` or with a response below `min_response` are NaN.

    The beam is evaluated exactly on a coarse grid of pixels and interpolated (bilinear) where the
    grid shows that this is good to `_PIXEL_BEAM_TOL` (relative); cells where it is not (near the
    horizon of an all-sky image, across the elevation and response cuts) are evaluated per pixel.
    The last few beams are kept (keyed by grid, shape, frequency, time, beam and cuts), so the
    Stokes I and V images of one interval share one evaluation; the array returned is that cached
    one, hence read-only.
    """
    header, full = _image_wcs(header_or_wcs)
    shape = _image_shape(header, full, shape)
    if freq_hz is None:
        freq_hz = _header_freq_hz(header) if header is not None else None
        if freq_hz is None:
            raise LwaError("image frequency unknown: pass freq_hz or a header with a FREQ axis or FREQMHZ")
    time = _image_time(header, full, time)
    beam = beam if beam is not None else load_beam()
    wcs = full.celestial
    key = (wcs.to_header_string(relax=True), shape, float(freq_hz), round(time.utc.mjd * 86400.0, 3), beam,
           float(min_elevation_deg), float(min_response), site)
    out = _PIXEL_BEAMS.get(key)
    if out is None:
        cuts = _Cuts(min_elevation_deg, min_response)
        out = _interpolated_beam(_PixelBeam(wcs, _icrs_to_enu(time, site), beam, float(freq_hz)), shape, cuts)
        out.flags.writeable = False
        _PIXEL_BEAMS[key] = out
        while len(_PIXEL_BEAMS) > _PIXEL_BEAM_CACHE:
            _PIXEL_BEAMS.pop(next(iter(_PIXEL_BEAMS)))
        log.info(
            "beam on %dx%d image at %.3f MHz, %s: ~%.1f %% of pixels valid (el >= %g deg, response >= %g)",
            shape[0], shape[1], freq_hz / 1e6, time.isot, 100.0 * np.isfinite(out[::7, ::7]).mean(),
            min_elevation_deg, min_response,
        )
    return out


_PIXEL_BEAM_TOL = 3e-4
"""Largest relative error of the interpolated image-plane beam, estimated per cell from the second
differences of the exact beam on the coarse grid (tests check < 1e-3 against the exact beam)."""
_PIXEL_BEAM_STEP = 16  # coarse grid step [pixels]
_PIXEL_BEAM_CACHE = 3  # image-plane beams kept (a 4096^2 beam is 64 MB)
_PIXEL_BEAMS: dict[tuple, np.ndarray] = {}
_EL_MARGIN_DEG = 0.25  # interpolation only where every node is this far from the elevation cut
_RESPONSE_MARGIN = 0.02  # ... and this far (relative) from the response cut


def _image_wcs(header_or_wcs: fits.Header | WCS) -> tuple[fits.Header | None, WCS]:
    """(header or None, full WCS) of an image given by header or WCS; LwaError when unusable."""
    header = header_or_wcs if isinstance(header_or_wcs, fits.Header) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        if header is not None:
            try:
                full = WCS(header)
            except (ValueError, KeyError, MemoryError) as err:
                first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                raise LwaError(f"image header has no usable WCS: {first.strip()}") from None
        elif isinstance(header_or_wcs, WCS):
            full = header_or_wcs
        else:
            raise LwaError(f"beam_for_image needs a FITS header or a WCS, got {type(header_or_wcs).__name__}")
    if not full.has_celestial:
        raise LwaError("image WCS has no celestial axes")
    return header, full


def _image_shape(header: fits.Header | None, full: WCS, shape: tuple[int, int] | None) -> tuple[int, int]:
    if shape is None:
        if header is not None:
            shape = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
        elif full.celestial.pixel_shape is not None:
            nx, ny = full.celestial.pixel_shape
            shape = (int(ny), int(nx))
    if shape is None or min(shape) <= 0:
        raise LwaError("image size unknown: pass shape=(ny, nx) or a header with NAXIS1/NAXIS2")
    return int(shape[0]), int(shape[1])


def _image_time(header: fits.Header | None, full: WCS, time: Any) -> Time:
    if time is None:
        if header is not None:
            time = _header_time(header)
        elif full.wcs.dateobs:
            time = full.wcs.dateobs
        if time is None:
            raise LwaError("image time unknown: pass time or a header with MJD-MID or DATE-OBS")
    return _as_time(time)


@dataclass(frozen=True)
class _Cuts:
    min_elevation_deg: float
    min_response: float

    def mask(self, response: np.ndarray, el: np.ndarray) -> np.ndarray:
        """The response with NaN off the sky, below the elevation cut or the response cut."""
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(response) | (el < self.min_elevation_deg) | (response < self.min_response)
        return np.where(bad, np.nan, response).astype(np.float32)

    def node_states(self, response: np.ndarray, el: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(surely kept, surely cut) per grid node, with margins that cover a cell's interior."""
        with np.errstate(invalid="ignore"):
            keep = (el >= self.min_elevation_deg + _EL_MARGIN_DEG) & (
                response >= self.min_response * (1 + _RESPONSE_MARGIN))
            cut = (el < self.min_elevation_deg - _EL_MARGIN_DEG) | (
                response < self.min_response * (1 - _RESPONSE_MARGIN))
        if self.min_elevation_deg > _EL_MARGIN_DEG:
            cut |= ~np.isfinite(el)  # off the sky: below any cut worth the name
        return keep & np.isfinite(response), cut


class _PixelBeam:
    """The exact beam at pixel positions: pixel -> ICRS (the image WCS) -> az/el -> Stokes I.

    For a plain SIN image (wsclean's projection) a pixel's direction is an orthogonal transform of
    its direction cosines (l, m, sqrt(1 - l^2 - m^2)), with (l, m) affine in the pixel: that
    transform is fitted once to the WCS (and used only when it reproduces it to 1e-9 rad);
    any other projection goes through `WCS.all_pix2world` per pixel.
    """

    def __init__(self, wcs: WCS, rot: np.ndarray, beam: BeamModel, freq_hz: float) -> None:
        self.wcs, self.rot, self.beam, self.freq_hz = wcs, rot, beam, freq_hz
        self.affine = _sin_affine(wcs)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.affine is None:
            ra, dec = self.wcs.all_pix2world(x, y, 0)
            enu = _unit_vectors(ra, dec) @ self.rot.T
            az, el = _enu_to_azel(enu)
        else:
            lm0, lm_pix, orth = self.affine
            l_ = lm0[0] + lm_pix[0, 0] * x + lm_pix[0, 1] * y
            m_ = lm0[1] + lm_pix[1, 0] * x + lm_pix[1, 1] * y
            with np.errstate(invalid="ignore"):
                n_ = np.sqrt(1.0 - l_ * l_ - m_ * m_)  # NaN off the sky, as the WCS gives it
            mat = self.rot @ orth
            east, north, up = (mat[i, 0] * l_ + mat[i, 1] * m_ + mat[i, 2] * n_ for i in range(3))
            az = np.mod(np.degrees(np.arctan2(east, north)), 360.0)
            el = np.degrees(np.arcsin(np.clip(up, -1.0, 1.0)))
        return self.beam.stokes_i(self.freq_hz, az, el), el


def _sin_affine(wcs: WCS) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(l0, dl/dpix, Q) with ICRS vector = Q (l, m, n) for a plain SIN WCS, else None."""
    w = wcs.wcs
    if (not all(str(c).endswith("-SIN") for c in w.ctype) or w.get_pv() or wcs.sip is not None
            or wcs.cpdis1 is not None or wcs.cpdis2 is not None or wcs.det2im1 is not None
            or wcs.det2im2 is not None):
        return None
    lin = np.radians(np.asarray(w.get_cdelt(), float)[:, None] * np.asarray(w.get_pc(), float))
    lm0 = -lin @ (np.asarray(w.crpix, float) - 1.0)  # pixel (0, 0), 0-based
    ax = np.linspace(0.2, 0.8, 7) * np.asarray(wcs.pixel_shape or (2 * w.crpix[0], 2 * w.crpix[1]))[:, None]
    xs, ys = (a.ravel() for a in np.meshgrid(ax[0], ax[1]))
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    good = np.isfinite(ra) & np.isfinite(dec)
    if good.sum() < 8:
        return None
    lm = lm0[:, None] + lin @ np.vstack([xs[good], ys[good]])
    src = np.vstack([lm, np.sqrt(np.clip(1.0 - (lm**2).sum(axis=0), 0.0, None))]).T
    dst = _unit_vectors(ra[good], dec[good])
    u_, _, vt = np.linalg.svd(src.T @ dst)
    orth = (u_ @ vt).T  # orthogonal (a reflection too: RA grows to the left)
    if np.max(np.abs(src @ orth.T - dst)) > 1e-9:
        return None
    return lm0, lin, orth


def _interpolated_beam(exact: _PixelBeam, shape: tuple[int, int], cuts: _Cuts) -> np.ndarray:
    """The masked beam on every pixel: bilinear from a coarse grid where good, else refined."""
    ny, nx = shape
    step = _PIXEL_BEAM_STEP
    if min(ny, nx) < 2 * step:
        return _exact_beam(exact, shape, cuts)
    cy, cx = -(-ny // step), -(-nx // step)  # the last cells may reach beyond the image
    out = _beam_regions(exact, cuts, np.zeros(1, np.intp), np.zeros(1, np.intp), (cy * step, cx * step), step)
    return np.ascontiguousarray(out[0, :ny, :nx])


def _beam_regions(exact: _PixelBeam, cuts: _Cuts, y0: np.ndarray, x0: np.ndarray, size: tuple[int, int],
                  step: int) -> np.ndarray:
    """The masked beam on n equal regions (n, h, w) whose corners are (y0, x0), from node grids of
    `step` pixels: cells whose corners are all surely kept and smooth are interpolated, cells whose
    corners are all surely cut are NaN, the others are refined (a step 4 times finer, down to
    single pixels)."""
    h, w = size
    if step < 4:
        yy = (y0[:, None, None] + np.arange(h)[None, :, None]).astype(float)
        xx = (x0[:, None, None] + np.arange(w)[None, None, :]).astype(float)
        return cuts.mask(*exact(*np.broadcast_arrays(xx, yy)))
    gy = (y0[:, None, None] + np.arange(0, h + 1, step)[None, :, None]).astype(float)
    gx = (x0[:, None, None] + np.arange(0, w + 1, step)[None, None, :]).astype(float)
    response, el = exact(*np.broadcast_arrays(gx, gy))
    keep, cut = cuts.node_states(response, el)
    keep &= _smooth_nodes(response, el)
    out = _bilinear_upsample(np.where(keep, response, 0.0).astype(np.float32), step)
    cells = out.reshape(len(y0), h // step, step, w // step, step)
    all_corners = lambda a: a[:, :-1, :-1] & a[:, 1:, :-1] & a[:, :-1, 1:] & a[:, 1:, 1:]  # noqa: E731
    masked = all_corners(cut)
    refine = ~all_corners(keep) & ~masked
    k, jy, jx = np.nonzero(masked)
    cells[k, jy, :, jx, :] = np.nan
    k, jy, jx = np.nonzero(refine)
    if k.size:
        cells[k, jy, :, jx, :] = _beam_regions(exact, cuts, y0[k] + jy * step, x0[k] + jx * step, (step, step),
                                               step // 4)
    return out


def _exact_beam(exact: _PixelBeam, shape: tuple[int, int], cuts: _Cuts) -> np.ndarray:
    """The masked beam evaluated at every pixel (the reference the interpolation is tested against)."""
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]].astype(float)
    return cuts.mask(*exact(xx, yy))


def _smooth_nodes(response: np.ndarray, el: np.ndarray) -> np.ndarray:
    """Nodes of (n, gy, gx) grids around which bilinear interpolation is good to `_PIXEL_BEAM_TOL`
    (relative) in the response and to a fifth of the elevation margin: the error of bilinear
    interpolation over a cell is about an eighth of the second differences along either axis
    (a border node takes the second difference of its inner neighbour)."""
    def curvature(a: np.ndarray) -> np.ndarray:
        d2y = np.abs(a[:, 2:, :] - 2 * a[:, 1:-1, :] + a[:, :-2, :])
        d2x = np.abs(a[:, :, 2:] - 2 * a[:, :, 1:-1] + a[:, :, :-2])
        d2y = np.pad(d2y, ((0, 0), (1, 1), (0, 0)), mode="edge")
        d2x = np.pad(d2x, ((0, 0), (0, 0), (1, 1)), mode="edge")
        return (d2y + d2x) / 8.0

    with np.errstate(invalid="ignore"):
        ok = (curvature(response) <= _PIXEL_BEAM_TOL * np.abs(response)) & (curvature(el) <= _EL_MARGIN_DEG / 5)
    return ok & np.isfinite(response) & np.isfinite(el)


def _bilinear_upsample(nodes: np.ndarray, step: int) -> np.ndarray:
    """Bilinear interpolation of node grids (n, cy + 1, cx + 1) onto (n, cy * step, cx * step) pixels."""
    n, cy, cx = nodes.shape[0], nodes.shape[1] - 1, nodes.shape[2] - 1
    w = np.arange(step, dtype=np.float32) / step
    rows = nodes[..., :-1, None] + w * (nodes[..., 1:, None] - nodes[..., :-1, None])
    rows = rows.reshape(n, cy + 1, cx * step)  # along x, at every node row
    out = np.empty((n, cy, step, cx * step), dtype=np.float32)
    np.multiply(w[:, None], (rows[:, 1:] - rows[:, :-1])[:, :, None, :], out=out)
    out += rows[:, :-1, None, :]
    return out.reshape(n, cy * step, cx * step)


def apparent_flux(
    flux_jy: Any, *, freq_hz: Any, az_deg: Any, el_deg: Any, beam: BeamModel | None = None
) -> np.ndarray:
    """Flux density as the array sees it: `flux_jy` times the Stokes I beam (0 below the horizon)."""
    beam = beam if beam is not None else load_beam()
    return np.asarray(flux_jy, dtype=float) * beam.stokes_i(freq_hz, az_deg, el_deg)
