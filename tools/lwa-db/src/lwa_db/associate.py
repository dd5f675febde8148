"""The running catalogue: measurements of every run and night associated into sources by position.

TraP-style (Swinbank et al. 2015), with a plain radius in restoring beams instead of the de Ruiter
radius: a measurement joins the existing sources within `radius_beams` x its image's BMAJ; the
nearest is its source (`primary`), every other one is recorded as an `ambiguous` association
(one measurement, many sources), never dropped. Measurements that match nothing seed new sources,
brightest first (targets, being forced positions, before blind candidates); a new source takes the
other unmatched measurements within their radius. A source's J-name is given once, from the position
that created it, and never changes (a clash gets a letter suffix); its position is the mean of its
detections (of all its measurements while it has none).

Solar-system bodies move: their measurements are associated by name (the source's J-name is the
body's name). Flux-check rows and bi-lobe artefacts are not associated.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from scipy.spatial import cKDTree

__all__ = ["Assignment", "associate", "ASSOCIATED_KINDS", "mean_position", "new_jnames"]

log = logging.getLogger(__name__)

ASSOCIATED_KINDS = ("target", "transient")


@dataclass
class Assignment:
    """Where each measurement went: `primary[i]` a source key; `ambiguous[i]` the others (with distance)."""

    primary: dict[int, Any]
    distance: dict[int, float]
    ambiguous: dict[int, list[tuple[Any, float]]]
    new_sources: dict[Any, tuple[float, float]]  # key -> (ra, dec) of the seed measurement


def _unit(ra: Sequence[float], dec: Sequence[float]) -> np.ndarray:
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _pairs(a: np.ndarray, b: np.ndarray, radius_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i in a, j in b) closer than radius_deg, with their separation (deg): a k-d tree on
    unit vectors (chord = 2 sin(theta / 2))."""
    chord = 2.0 * np.sin(np.radians(radius_deg) / 2.0)
    pairs = cKDTree(a).sparse_distance_matrix(cKDTree(b), chord, output_type="ndarray")
    i, j, c = pairs["i"], pairs["j"], pairs["v"]
    return i.astype(int), j.astype(int), np.degrees(2.0 * np.arcsin(np.clip(c / 2.0, 0.0, 1.0)))


def associate(meas: Sequence[dict[str, Any]], sources: Sequence[tuple[Any, float, float]], *,
              radius_beams: float) -> Assignment:
    """Associate `meas` (dicts with ra_deg, dec_deg, beam_deg, snr, kind) with `sources` (key, ra, dec).

    Returns source keys for every measurement: existing keys, or new keys `("new", n)`.
    """
    n = len(meas)
    primary: dict[int, Any] = {}
    distance: dict[int, float] = {}
    ambiguous: dict[int, list[tuple[Any, float]]] = defaultdict(list)
    new_sources: dict[Any, tuple[float, float]] = {}
    if n == 0:
        return Assignment(primary, distance, ambiguous, new_sources)
    ra = np.array([m["ra_deg"] for m in meas], float)
    dec = np.array([m["dec_deg"] for m in meas], float)
    beam = np.array([m["beam_deg"] for m in meas], float)
    radius = radius_beams * beam
    pos = _unit(ra, dec)
    rmax = float(np.nanmax(radius))
    if sources:
        keys = [s[0] for s in sources]
        cat = _unit([s[1] for s in sources], [s[2] for s in sources])
        idx_m, idx_s, sep_deg = _pairs(pos, cat, rmax)
        ok = sep_deg <= radius[idx_m]
        matches: dict[int, list[tuple[float, Any]]] = defaultdict(list)
        for i, j, d in zip(idx_m[ok], idx_s[ok], sep_deg[ok]):
            matches[int(i)].append((float(d), keys[int(j)]))
        for i, cands in matches.items():
            cands.sort(key=lambda c: c[0])
            primary[i] = cands[0][1]
            distance[i] = cands[0][0] / beam[i]
            ambiguous[i] = [(k, d / beam[i]) for d, k in cands[1:]]
    free = np.array([i for i in range(n) if i not in primary], int)
    if free.size:
        _seed_new(meas, free, pos, (ra, dec), radius, beam, rmax, primary, distance, ambiguous, new_sources)
    n_amb = sum(1 for v in ambiguous.values() if v)
    log.info("associated %d measurements: %d with known sources, %d new sources, %d ambiguous", n,
             n - free.size, len(new_sources), n_amb)
    return Assignment(primary, distance, dict(ambiguous), new_sources)


def _seed_new(meas, free, pos, radec, radius, beam, rmax, primary, distance, ambiguous, new_sources) -> None:
    """Unmatched measurements: the strongest seeds a source and takes its neighbours within their radius."""
    sub = pos[free]
    neigh: dict[int, list[tuple[int, float]]] = defaultdict(list)
    if free.size > 1:
        a, b, sep = _pairs(sub, sub, rmax)
        for i, j, d in zip(a, b, sep):
            if i != j:
                neigh[int(i)].append((int(j), float(d)))

    def rank(k: int) -> tuple:
        m = meas[free[k]]
        snr = m.get("snr")
        return (m["kind"] != "target", -(abs(snr) if snr is not None and np.isfinite(snr) else 0.0))

    order = sorted(range(free.size), key=rank)
    owner: dict[int, Any] = {}
    for k in order:
        i = int(free[k])
        if i in primary:
            continue
        key = ("new", len(new_sources))
        new_sources[key] = (float(radec[0][i]), float(radec[1][i]))
        primary[i], distance[i] = key, 0.0
        owner[k] = key
        for j, d in sorted(neigh.get(k, []), key=lambda x: x[1]):
            mj = int(free[j])
            if d > radius[mj]:
                continue
            if mj in primary:
                if primary[mj] != key:
                    ambiguous.setdefault(mj, []).append((key, d / beam[mj]))
                continue
            primary[mj], distance[mj] = key, d / beam[mj]


def mean_position(ra: Iterable[float], dec: Iterable[float]) -> tuple[float, float]:
    """Mean direction (unit vectors; safe across RA = 0)."""
    ra, dec = list(ra), list(dec)
    if len(ra) == 1:
        return float(ra[0]) % 360.0, float(dec[0])
    r, d = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    x, y, z = (np.cos(d) * np.cos(r)).mean(), (np.cos(d) * np.sin(r)).mean(), np.sin(d).mean()
    return float(np.degrees(np.arctan2(y, x)) % 360.0), float(np.degrees(np.arctan2(z, np.hypot(x, y))))


def new_jnames(ra: Sequence[float], dec: Sequence[float], taken: set[str]) -> list[str]:
    """J-names of new sources (lwa_common.naming.jname's truncated IAU form, for arrays); a letter suffix
    when one of `taken` (updated) has the name already."""
    if len(ra) == 0:
        return []
    c = SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg, frame="icrs")
    h, m, s = c.ra.hms
    sign, d, dm, ds = c.dec.signed_dms
    out = []
    for k in range(len(c)):
        base = (f"J{int(h[k]):02d}{int(m[k]):02d}{int(s[k]):02d}{'-' if sign[k] < 0 else '+'}"
                f"{int(d[k]):02d}{int(dm[k]):02d}{int(ds[k]):02d}")
        name, j = base, 0
        while name in taken:
            name = f"{base}{chr(ord('a') + j % 26)}{'' if j < 26 else j // 26}"
            j += 1
        taken.add(name)
        out.append(name)
    return out
