"""OVRO-LWA subband frequencies.

The correlator's channel k (23.926 kHz wide) has centre k x 23.926 kHz; subband n spans channels
560 + 192 n ... 560 + 192 n + 191 (13.40 MHz + n x 4.594 MHz). A subband is labelled by its start
frequency rounded to whole MHz (13, 18, 23, ... 82 MHz), as in the MS file names.
"""

from __future__ import annotations

import numpy as np

from lwa_common.errors import LwaError

__all__ = ["CHANNEL_WIDTH_HZ", "SUBBAND_LABELS_MHZ", "subband_index", "subband_freqs", "subband_of_freq"]

CHANNEL_WIDTH_HZ = 23926.0
_FIRST_CHANNEL = 560
_CHANNELS_PER_SUBBAND = 192
SUBBAND_LABELS_MHZ = tuple(
    int(round((_FIRST_CHANNEL + _CHANNELS_PER_SUBBAND * n) * CHANNEL_WIDTH_HZ / 1e6)) for n in range(16)
)


def subband_index(label_mhz: int | float | str) -> int:
    mhz = int(str(label_mhz).removesuffix("MHz"))
    if mhz not in SUBBAND_LABELS_MHZ:
        raise LwaError(f"no OVRO-LWA subband '{label_mhz}'; subbands are {list(SUBBAND_LABELS_MHZ)} MHz")
    return SUBBAND_LABELS_MHZ.index(mhz)


def subband_freqs(label_mhz: int | float | str, n_channels: int = 192) -> np.ndarray:
    """Centre frequencies (Hz) of `n_channels` equal channels spanning the subband.

    `n_channels` must divide 192: the channels are averages of 192 / n_channels correlator channels.
    """
    if n_channels < 1 or _CHANNELS_PER_SUBBAND % n_channels:
        raise LwaError(f"n_channels={n_channels} must divide {_CHANNELS_PER_SUBBAND}")
    n = subband_index(label_mhz)
    fine = (_FIRST_CHANNEL + _CHANNELS_PER_SUBBAND * n + np.arange(_CHANNELS_PER_SUBBAND)) * CHANNEL_WIDTH_HZ
    return fine.reshape(n_channels, -1).mean(axis=1)


def subband_of_freq(freq_hz: float) -> int:
    """Label (MHz) of the subband containing `freq_hz`."""
    k = int(round(freq_hz / CHANNEL_WIDTH_HZ)) - _FIRST_CHANNEL
    n = k // _CHANNELS_PER_SUBBAND
    if not 0 <= n < 16:
        raise LwaError(f"{freq_hz / 1e6:.3f} MHz lies outside the OVRO-LWA band")
    return SUBBAND_LABELS_MHZ[n]
