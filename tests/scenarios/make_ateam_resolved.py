"""Write ateam_resolved.json: the resolved Cyg A and Cas A of the `ateam_peel` scenario (issue 22).

The truth is built from the de Gasperin et al. (2020, A&A 635, A150) clean-component models (2461
and 1659 components at 57.3 MHz, wsclean format; `$LWA_SHARED_DATA/sky/CygA.txt`, `CasA.txt`),
so it differs from the shipped 3-Gaussian peel model in structure and spectrum as the real sky
does. Components are merged on a grid (flux-weighted positions) into about 60 point components
per source, each with a power law fitted between 50 and 60 MHz, and the totals are scaled
(Cyg A x1.3, Cas A x0.65: the shipped model is then 35 % too faint and 60 % too bright). The
scenario's ionosphere adds offsets of up to ~10'. Rerun to regenerate:

    LWA_SHARED_DATA=/path/to/data .venv/bin/python tests/scenarios/make_ateam_resolved.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from lwa_common.catalogs import read_makesourcedb
from lwa_common.testing import shared_data_dir

HERE = Path(__file__).resolve().parent
SOURCES = {"Cyg A": ("CygA.txt", 1.3), "Cas A": ("CasA.txt", 0.65)}
TARGET_COMPONENTS = 60
F1, F2 = 50e6, 60e6


def _merge(path: Path, scale: float) -> list[dict]:
    comps = read_makesourcedb(path)
    ra = np.array([c.ra_deg for c in comps])
    dec = np.array([c.dec_deg for c in comps])
    s1 = np.array([c.flux_at(F1) for c in comps])
    s2 = np.array([c.flux_at(F2) for c in comps])
    x = (ra - ra.mean()) * np.cos(np.radians(dec.mean()))
    cell = 0.2 / 60  # degrees; grown until about TARGET_COMPONENTS positive cells remain
    while True:
        keys = np.stack([np.floor(x / cell), np.floor((dec - dec.mean()) / cell)], axis=1)
        _, group = np.unique(keys, axis=0, return_inverse=True)
        group = group.ravel()
        t1, t2 = np.bincount(group, s1), np.bincount(group, s2)
        good = (t1 > 0) & (t2 > 0)
        if good.sum() <= TARGET_COMPONENTS:
            break
        cell *= 1.15
    w = np.abs(s2)
    out = []
    for k in np.flatnonzero(good):
        sel = group == k
        alpha = float(np.log(t2[k] / t1[k]) / np.log(F2 / F1))
        flux55 = float(t2[k] * (55e6 / F2) ** alpha) * scale
        out.append({"ra": f"{np.average(ra[sel], weights=w[sel]):.6f}d",
                    "dec": f"{np.average(dec[sel], weights=w[sel]):.6f}d",
                    "I": round(flux55, 3), "freq": 55e6, "index": [round(alpha, 4)]})
    return out


def main() -> None:
    data = shared_data_dir() / "sky"
    model = []
    for name, (file, scale) in SOURCES.items():
        comps = _merge(data / file, scale)
        for k, c in enumerate(comps):
            c["name"] = f"{name.replace(' ', '')}-{k}"
        model.append({"name": name, "components": comps})
        sys.stdout.write(f"{name}: {len(comps)} components, {sum(c['I'] for c in comps):.0f} Jy at 55 MHz\n")
    (HERE / "ateam_resolved.json").write_text(json.dumps(model, indent=1) + "\n")


if __name__ == "__main__":
    main()
