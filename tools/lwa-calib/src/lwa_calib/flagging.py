"""Flag outliers in bandpass solutions (robust z-scores on amplitude) and interpolate over them.

Our own small algorithm (numpy) in the spirit of the OVRO-LWA calibration pipeline's bandpass
flagging, reduced to robust statistics that need no tuning per subband:

1. **antennas** — per antenna and pol, the median amplitude over unflagged channels; a robust
   z-score across antennas (median, 1.4826 MAD) above `sigma_antenna` flags the antenna-pol;
2. **channels** — amplitudes normalised by that median, minus a running median along frequency
   (`window` channels, so a smooth bandpass leaves no residual); a robust z-score of the residual
   (one scale per pol over all antennas and channels, floored at `min_scale` so noiseless
   solutions are not over-flagged) above `sigma_channel` flags the solution. Repeated (at most
   `n_iter` times) with the flagged channels interpolated before the running median, so that one
   bad channel does not pull its neighbours' reference away and get them flagged too;
3. **quorum** — a channel flagged for more than `channel_quorum` of the live antennas is flagged
   for all of them (RFI);
4. **interpolation** — every flagged channel of a live antenna-pol is refilled by linear
   interpolation in frequency of amplitude and (unwrapped) phase from its unflagged channels
   (the band edges take the nearest value) and unflagged. Dead antenna-pols stay flagged.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.stats import mad_std
from scipy.ndimage import median_filter

__all__ = ["FlagResult", "robust_z", "flag_solutions", "interpolate_flagged"]

log = logging.getLogger(__name__)


@dataclass
class FlagResult:
    """Flags after each step and the interpolated solutions ([ant, chan, pol] arrays)."""

    values: np.ndarray  # solutions after interpolation
    flags: np.ndarray  # final flags (dead antenna-pols only, after interpolation)
    outlier_flags: np.ndarray  # every flagged solution before interpolation (input + new)
    antenna_flags: np.ndarray  # [ant, pol] flagged as whole antenna-pols
    channel_flags: np.ndarray  # [chan] flagged for every antenna by the quorum
    interpolated: np.ndarray  # solutions refilled by interpolation

    @property
    def flagged_fraction(self) -> float:
        return float(self.outlier_flags.mean()) if self.outlier_flags.size else 0.0


def robust_z(values: np.ndarray, *, mask: np.ndarray | None = None, min_scale: float = 0.0) -> np.ndarray:
    """(x - median) / mad_std (1.4826 MAD) over the unmasked values (mask True = ignore); NaN-free."""
    values = np.asarray(values, dtype=float)
    good = np.isfinite(values) if mask is None else (~mask & np.isfinite(values))
    if good.sum() < 2:
        return np.zeros_like(values)
    med = np.median(values[good])
    scale = max(float(mad_std(values[good])), min_scale)
    if scale <= 0:
        return np.zeros_like(values)
    return np.where(np.isfinite(values), (values - med) / scale, 0.0)


def _median_good(amp: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Median over channels of the unflagged amplitudes, [ant, pol]; NaN where all are flagged."""
    masked = np.where(flags, np.nan, amp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(masked, axis=1)


def flag_solutions(
    values: np.ndarray, flags: np.ndarray, *, sigma_antenna: float = 5.0, sigma_channel: float = 5.0,
    window: int = 5, channel_quorum: float = 0.5, min_scale: float = 1e-3, n_iter: int = 4,
) -> FlagResult:
    """Flag outlier antennas / channels of `values[ant, chan, pol]` and interpolate over them."""
    values = np.asarray(values)
    flags = np.asarray(flags, dtype=bool).copy()
    n_ant, n_chan, n_pol = values.shape
    amp = np.abs(values).astype(float)
    flags |= ~np.isfinite(amp) | (amp == 0)
    level = _median_good(amp, flags)  # [ant, pol]
    dead = ~np.isfinite(level) | (level <= 0)

    # 1. whole antenna-pols whose level is an outlier among the antennas
    antenna_flags = dead.copy()
    for p in range(n_pol):
        z = robust_z(np.log(np.where(dead[:, p], np.nan, level[:, p])), mask=dead[:, p])
        antenna_flags[:, p] |= np.abs(z) > sigma_antenna
    flags |= antenna_flags[:, None, :]

    # 2. channels deviating from a running median of the normalised amplitude; iterated so that
    #    a bad channel does not drag the running median of its neighbours
    with np.errstate(all="ignore"):
        norm = amp / np.where(antenna_flags, np.nan, level)[:, None, :]
    base = flags.copy()
    size = max(1, min(int(window), n_chan if n_chan % 2 else n_chan - 1))
    for _ in range(n_iter):
        filled = np.where(flags, np.nan, norm)
        for a in range(n_ant):
            for p in range(n_pol):
                row = filled[a, :, p]
                good = np.isfinite(row)
                if 2 <= good.sum() < n_chan:
                    filled[a, :, p] = np.interp(np.arange(n_chan), np.flatnonzero(good), row[good])
        smooth = median_filter(np.nan_to_num(filled, nan=1.0), size=(1, size, 1), mode="nearest")
        resid = norm - smooth
        new = base.copy()
        for p in range(n_pol):
            z = robust_z(resid[:, :, p], mask=flags[:, :, p], min_scale=min_scale)
            new[:, :, p] |= (np.abs(z) > sigma_channel) & ~antenna_flags[:, p][:, None]
        if np.array_equal(new, flags):
            break
        flags = new

    # 3. channels flagged for most live antennas are flagged for all
    live = ~antenna_flags
    n_live = live.sum(axis=(0, 1))
    frac = (flags & live[:, None, :]).sum(axis=(0, 2)) / max(int(n_live.sum()), 1)
    channel_flags = frac > channel_quorum
    flags[:, channel_flags, :] = True
    outlier_flags = flags.copy()

    # 4. interpolate flagged channels of live antenna-pols
    new_values, new_flags, interpolated = interpolate_flagged(values, flags, antenna_flags=antenna_flags)
    log.info(
        "solution flags: %d antenna-pols, %d channels for all antennas, %.1f %% of solutions flagged, "
        "%d interpolated", int(antenna_flags.sum()), int(channel_flags.sum()), 100 * outlier_flags.mean(),
        int(interpolated.sum()),
    )
    return FlagResult(values=new_values, flags=new_flags, outlier_flags=outlier_flags,
                      antenna_flags=antenna_flags, channel_flags=channel_flags, interpolated=interpolated)


def interpolate_flagged(
    values: np.ndarray, flags: np.ndarray, *, antenna_flags: np.ndarray | None = None, min_good: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refill flagged channels by linear interpolation of amplitude and unwrapped phase.

    Returns (values, flags, interpolated mask). Antenna-pols in `antenna_flags`, or with fewer than
    `min_good` unflagged channels, stay flagged. Real-valued inputs are interpolated directly.
    """
    values = np.array(values, copy=True)
    flags = np.array(flags, dtype=bool, copy=True)
    n_ant, n_chan, n_pol = values.shape
    interpolated = np.zeros_like(flags)
    x = np.arange(n_chan)
    for a in range(n_ant):
        for p in range(n_pol):
            if antenna_flags is not None and antenna_flags[a, p]:
                flags[a, :, p] = True
                continue
            bad = flags[a, :, p]
            good = ~bad
            if not bad.any() or good.sum() < min_good:
                continue
            xg = x[good]
            if np.iscomplexobj(values):
                amp = np.interp(x[bad], xg, np.abs(values[a, good, p]))
                phase = np.interp(x[bad], xg, np.unwrap(np.angle(values[a, good, p])))
                values[a, bad, p] = amp * np.exp(1j * phase)
            else:
                values[a, bad, p] = np.interp(x[bad], xg, values[a, good, p])
            interpolated[a, bad, p] = True
            flags[a, bad, p] = False
    return values, flags, interpolated
