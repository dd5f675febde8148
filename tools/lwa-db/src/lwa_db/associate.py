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
from astropy.coordinates import SkyCoord, search_around_sky

from lwa_common.naming import jname

__all__ = ["Assignment", "associate", "ASSOCIATED_KINDS", "mean_position"]

log = logging.getLogger(__name__)

ASSOCIATED_KINDS = ("target", "transient")


@dataclass
class Assignment:
    """Where each measurement went: `primary[i]` a source key; `ambiguous[i]` the others (with distance)."""

    primary: dict[int, Any]
    distance: dict[int, float]
    ambiguous: dict[int, list[tuple[Any, float]]]
    new_sources: dict[Any, tuple[float, float]]  # key -> (ra, dec) of the seed measurement


def _coords(ra: Sequence[float], dec: Sequence[float]) -> SkyCoord:
    return SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg, frame="icrs")


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
    pos = _coords(ra, dec)
    rmax = float(np.nanmax(radius))
    if sources:
        keys = [s[0] for s in sources]
        cat = _coords([s[1] for s in sources], [s[2] for s in sources])
        idx_m, idx_s, sep, _ = search_around_sky(pos, cat, rmax * u.deg)
        sep_deg = sep.deg
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
        _seed_new(meas, free, pos, radius, beam, rmax, primary, distance, ambiguous, new_sources)
    n_amb = sum(1 for v in ambiguous.values() if v)
    log.info("associated %d measurements: %d with known sources, %d new sources, %d ambiguous", n,
             n - free.size, len(new_sources), n_amb)
    return Assignment(primary, distance, dict(ambiguous), new_sources)


def _seed_new(meas, free, pos, radius, beam, rmax, primary, distance, ambiguous, new_sources) -> None:
    """Unmatched measurements: the strongest seeds a source and takes its neighbours within their radius."""
    sub = pos[free]
    neigh: dict[int, list[tuple[int, float]]] = defaultdict(list)
    if free.size > 1:
        a, b, sep, _ = search_around_sky(sub, sub, rmax * u.deg)
        for i, j, d in zip(a, b, sep.deg):
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
        new_sources[key] = (float(pos[i].ra.deg), float(pos[i].dec.deg))
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
    r, d = np.radians(np.asarray(list(ra), float)), np.radians(np.asarray(list(dec), float))
    x, y, z = (np.cos(d) * np.cos(r)).mean(), (np.cos(d) * np.sin(r)).mean(), np.sin(d).mean()
    return float(np.degrees(np.arctan2(y, x)) % 360.0), float(np.degrees(np.arctan2(z, np.hypot(x, y))))


def new_jname(ra: float, dec: float, taken: set[str]) -> str:
    """J-name of a new source; a letter suffix when one of `taken` has it already."""
    base = jname(SkyCoord(ra * u.deg, dec * u.deg, frame="icrs"))
    name, k = base, 0
    while name in taken:
        name = f"{base}{chr(ord('a') + k % 26)}{'' if k < 26 else k // 26}"
        k += 1
    taken.add(name)
    return name
