"""lwa-transient on synthetic wsclean-like images (lwa_common.testing): recovery, false alarms,
masks, bi-lobe rule, selection, products and the CLI contract."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from lwa_common.config import Transient, section_with
from lwa_common.errors import LwaError
from lwa_common.naming import jname_short
from lwa_common.testing import allsky_header, run_cli, synthetic_image
from lwa_transient import (
    CSV_COLUMNS,
    BilobeRule,
    Peak,
    SearchOptions,
    bilobe_partner,
    cap_mask,
    local_background_rms,
    read_candidates,
    search_images,
    trend_prediction,
    twin_centre,
)
from lwa_transient.select import collect_paths, select_images

KW = {"TAPER": 30.0, "ROBUST": 0.0, "PBCOR": False, "DEWARPED": True, "SUBBAND": "55MHz", "FREQMHZ": 56.0,
      "NINTERVL": 6}
SCALE, BEAM = 0.125, 0.375  # 7.5'/px, beam FWHM 3 px; the 2-beam bi-lobe radius is 6 px
FAST = SearchOptions(products=False)
V_ONLY = SearchOptions(products=False, stokes=("V",))


def header(stokes, cat="10min", interval="t0001", *, size=256, scale=SCALE, ra=151.0, dec=37.24, **kw):
    keywords = {**KW, "STOKES": stokes, "IMGCAT": cat, "INTERVAL": "deep" if cat == "deep" else interval, **kw}
    return allsky_header(size=size, scale_deg=scale, bmaj_deg=3 * scale, ra_deg=ra, dec_deg=dec,
                         keywords=keywords)


def wcs_of(h):
    return WCS(h).celestial


def correlated_noise(shape, beam_px, seed):
    """Unit-RMS noise correlated over the beam, like a dirty image's."""
    white = np.random.default_rng(seed).standard_normal(shape)
    smooth = ndimage.gaussian_filter(white, beam_px / 2.3548 / math.sqrt(2), mode="wrap")
    return (smooth / smooth.std()).astype(np.float32)


def image(h, sources=(), *, noise=1.0, seed=0):
    data = synthetic_image(h, list(sources), noise=0.0)
    beam_px = h["BMAJ"] / abs(h["CDELT2"])
    return data + noise * correlated_noise(data.shape[-2:], beam_px, seed)[None, None]


def write(path, h, data):
    fits.writeto(path, np.asarray(data, dtype=np.float32), h)
    return path


def positions(h, n, seed, *, margin=24, min_sep=16, avoid=()):
    """n random sky positions (ra, dec) well inside the image and apart from each other and `avoid`."""
    rng = np.random.default_rng(seed)
    w = wcs_of(h)
    size = h["NAXIS1"]
    taken = [tuple(w.all_world2pix([[ra, dec]], 0)[0]) for ra, dec in avoid]
    out = []
    while len(out) < n:
        x, y = rng.uniform(margin, size - margin, 2)
        if all(math.hypot(x - a, y - b) >= min_sep for a, b in taken):
            ra, dec = w.all_pix2world([[x, y]], 0)[0]
            if np.isfinite(ra):
                taken.append((x, y))
                out.append((float(ra), float(dec)))
    return out


def sep_deg(ra1, dec1, ra2, dec2):
    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).deg


def nearest(cands, ra, dec, **where):
    pool = [c for c in cands if all(getattr(c, k) == v for k, v in where.items())]
    if not pool:
        return None, math.inf
    seps = [sep_deg(c.ra, c.dec, ra, dec) for c in pool]
    i = int(np.argmin(seps))
    return pool[i], seps[i]


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- local RMS


def test_local_rms_recovers_noise_offset_and_ignores_horizon():
    h = header("V", size=256, scale=0.5)  # all-sky: NaN beyond the horizon
    data = image(h, noise=2.5, seed=3)[0, 0] + 4.0
    bg, rms = local_background_rms(data, box=32)
    sky = np.isfinite(data)
    assert (~sky).sum() > 5000
    assert np.median(rms[sky]) == pytest.approx(2.5, rel=0.03)
    assert np.median(bg[sky]) == pytest.approx(4.0, abs=0.1)
    assert np.isfinite(rms[sky]).all() and (rms[sky] > 0).all()
    # a gradient in the noise level is followed
    ramp = np.random.default_rng(1).standard_normal((256, 256)) * np.linspace(1, 3, 256)[None, :]
    _, rms = local_background_rms(ramp.astype(np.float32), box=32)
    assert np.median(rms[:, 16:48]) == pytest.approx(1.25, rel=0.1)
    assert np.median(rms[:, -48:-16]) == pytest.approx(2.75, rel=0.1)


def test_local_rms_block_statistic_matches_astropy_mad_std():
    from astropy.stats import mad_std

    from lwa_transient.rms import block_statistics

    data = np.random.default_rng(5).standard_normal((96, 64)).astype(np.float32) * 3
    data[:10, :7] = np.nan
    _, rms, count = block_statistics(data, box=32)
    assert rms.shape == (3, 2) and count[0, 0] == 32 * 32 - 70
    assert rms[0, 0] == pytest.approx(mad_std(data[:32, :32], ignore_nan=True), rel=1e-5)
    assert rms[2, 1] == pytest.approx(mad_std(data[64:, 32:]), rel=1e-5)


def test_nan_only_image_gives_nan_maps():
    bg, rms = local_background_rms(np.full((64, 64), np.nan, dtype=np.float32))
    assert np.isnan(bg).all() and np.isnan(rms).all()


# --------------------------------------------------------------------------- A-team caps


@pytest.mark.parametrize(("centre", "source", "radius"), [
    ((151.0, 37.24), (171.0, 47.24), 15.0),
    ((151.0, 37.24), (251.0, 37.24), 30.0),  # cap crossing the horizon
    ((151.0, 37.24), (151.0, -62.76), 15.0),  # source below the horizon, cap reaching into view
    ((300.0, 40.0), (299.868, 40.734), 5.0),
])
def test_cap_mask_matches_astropy_separation(centre, source, radius):
    h = header("I", size=128, scale=1.0, ra=centre[0], dec=centre[1])
    w = wcs_of(h)
    yy, xx = np.mgrid[0:128, 0:128]
    ra, dec = w.all_pix2world(xx, yy, 0)
    good = np.isfinite(ra)
    sep = np.full(ra.shape, np.inf)
    sep[good] = sep_deg(ra[good], dec[good], *source)
    mask = cap_mask(w, (128, 128), source[0], source[1], radius)
    assert (mask == (sep <= radius)).all()
    assert mask.sum() > 0


# --------------------------------------------------------------------------- recovery and false alarms


def _transient_set(tmp_path, seed, *, n=8, v_snr=8.0, i_snr=11.0):
    """deep I/V + 10 min I/V; n V bursts (alternating sign) and n I transients in t0001."""
    folder = tmp_path / f"seed{seed}"
    folder.mkdir()
    deep_noise, ten_noise = 0.4, 1.0
    sigma_diff = math.hypot(deep_noise, ten_noise)
    hv = header("V")
    spots = positions(hv, 2 * n, seed)
    bursts = [(ra, dec, v_snr * ten_noise * (1 if k % 2 == 0 else -1)) for k, (ra, dec) in enumerate(spots[:n])]
    flashes = [(ra, dec, i_snr * sigma_diff) for ra, dec in spots[n:]]
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=deep_noise, seed=seed * 10 + 1))
    write(folder / "deepV.fits", header("V", "deep"), image(header("V", "deep"), noise=deep_noise, seed=seed * 10 + 2))
    write(folder / "tV.fits", hv, image(hv, bursts, noise=ten_noise, seed=seed * 10 + 3))
    hi = header("I")
    write(folder / "tI.fits", hi, image(hi, flashes, noise=ten_noise, seed=seed * 10 + 4))
    return folder, bursts, flashes


def test_injected_bursts_and_transients_are_recovered(tmp_path):
    found_v = found_i = total = flagged = 0
    offsets = []
    for seed in range(1, 6):
        folder, bursts, flashes = _transient_set(tmp_path, seed)
        res = search_images([folder], output=tmp_path / f"out{seed}", options=FAST)
        for ra, dec, peak in bursts:
            c, sep = nearest(res.candidates, ra, dec, stokes="V", interval="t0001")
            if c is not None and sep < 2 * SCALE and c.sign == np.sign(peak):
                found_v += 1
                flagged += c.bilobe
                offsets.append(sep / SCALE)
                assert abs(c.peak_jy - peak) < 3.0  # 3 noise units
        for ra, dec, _ in flashes:
            c, sep = nearest(res.candidates, ra, dec, stokes="I", interval="t0001")
            found_i += c is not None and sep < 2 * SCALE and c.sign == 1
        total += len(bursts)
        assert not [c for c in res.candidates if c.interval == "deep"]  # nothing injected there
    assert found_v / total >= 0.95, (found_v, total)
    assert found_i / total >= 0.95, (found_i, total)
    assert np.median(offsets) < 0.35  # pixels
    assert flagged / max(found_v, 1) <= 0.1  # single PSFs rarely look bi-lobed


def test_transient_free_images_give_at_most_one_false_candidate_per_ten(tmp_path):
    n_v = n_i = 0
    v_images = i_images = 0
    for seed in range(10):
        folder = tmp_path / f"n{seed}"
        folder.mkdir()
        scale = SCALE if seed % 2 else 0.5  # half of them all-sky with a NaN horizon
        for stokes, cat, noise, k in (("I", "deep", 0.4, 1), ("V", "deep", 0.4, 2), ("I", "10min", 1.0, 3),
                                      ("V", "10min", 1.0, 4)):
            h = header(stokes, cat, scale=scale)
            write(folder / f"{stokes}{cat}.fits", h, image(h, noise=noise, seed=100 + 10 * seed + k))
        res = search_images([folder], output=tmp_path / f"o{seed}", options=FAST)
        n_v += sum(c.stokes == "V" for c in res.candidates)
        n_i += sum(c.stokes == "I" for c in res.candidates)
        v_images += 2
        i_images += 1
    assert n_v <= v_images / 10, n_v
    assert n_i <= max(1, i_images / 10), n_i


# --------------------------------------------------------------------------- masks


def _bright_field(tmp_path, *, deep_sigma=0.4):
    """Deep-I sources at 2000, 600, 150, 60 σ; their leakage in V and shifted/brighter copies in I."""
    hd = header("I", "deep")
    w = wcs_of(hd)
    spots = positions(hd, 6, 7, margin=40, min_sep=40)
    snrs = (2000.0, 600.0, 150.0, 60.0)
    bright = [(ra, dec, s * deep_sigma) for (ra, dec), s in zip(spots[:4], snrs, strict=False)]
    shift = 0.25 * BEAM  # a quarter beam of ionospheric shift between the deep and the 10 min image

    def moved(ra, dec, d_px):
        x, y = w.all_world2pix([[ra, dec]], 0)[0]
        return tuple(w.all_pix2world([[x + d_px, y]], 0)[0])

    leak_v = [  # leakage and PSF artefacts that would exceed 5σ in V without the masks
        (*bright[0][:2], 0.012 * bright[0][2]), (*moved(*bright[0][:2], 4.0), -0.009 * bright[0][2]),
        (*moved(*bright[1][:2], 1.5), -0.03 * bright[1][2]),
        (*moved(*bright[2][:2], 0.9), 0.12 * bright[2][2]),
    ]
    burst = (*spots[4], 9.0)
    flash = (*spots[5], 12.0)
    ten_i = [(*moved(ra, dec, shift / SCALE), 1.04 * f) for ra, dec, f in bright] + [flash]
    folder = tmp_path / "bright"
    folder.mkdir()
    write(folder / "deepI.fits", hd, image(hd, bright, noise=deep_sigma, seed=71))
    write(folder / "deepV.fits", header("V", "deep"), image(header("V", "deep"), noise=deep_sigma, seed=72))
    write(folder / "tV.fits", header("V"), image(header("V"), leak_v + [burst], noise=1.0, seed=73))
    write(folder / "tI.fits", header("I"), image(header("I"), ten_i, noise=1.0, seed=74))
    return folder, bright, burst, flash


def test_bright_sources_are_masked_and_never_reported(tmp_path):
    folder, bright, burst, flash = _bright_field(tmp_path)
    res = search_images([folder], output=tmp_path / "out", options=FAST)
    beam = BEAM
    v_radius = (2 * beam, 2 * beam, 1 * beam, 0.0)  # > 500σ: 2 beams, > 100σ: 1 beam, else none
    i_radius = (2 * beam, 2 * beam, 2 * beam, 1 * beam)  # > 100σ: 2 beams, > 30σ: 1 beam
    for (ra, dec, _), rv, ri in zip(bright, v_radius, i_radius, strict=True):
        for c in res.candidates:
            sep = sep_deg(c.ra, c.dec, ra, dec)
            assert not (c.stokes == "V" and sep <= rv), (c, sep)
            assert not (c.stokes == "I" and sep <= ri), (c, sep)
    assert nearest(res.candidates, burst[0], burst[1], stokes="V")[1] < 2 * SCALE
    assert nearest(res.candidates, flash[0], flash[1], stokes="I")[1] < 2 * SCALE
    # without the masks the same images do give candidates on the bright sources
    off = Transient(v_mask_high_sigma=1e9, v_mask_low_sigma=1e9, i_mask_high_sigma=1e9, i_mask_low_sigma=1e9)
    res = search_images([folder], output=tmp_path / "nomask", settings=off, options=FAST)
    near = [c for c in res.candidates if min(sep_deg(c.ra, c.dec, ra, dec) for ra, dec, _ in bright) <= 2 * beam]
    assert {c.stokes for c in near} == {"V", "I"}


def test_a_transient_bright_in_the_deep_image_is_not_masked_for_its_own_interval(tmp_path):
    """A flash at 300σ of the 10 min image lands at 125σ in the deep image (diluted 6×, noise 2.5×
    lower) and would be masked to 2 beams: it is no steady source, so its own interval keeps it."""
    hd, hi = header("I", "deep"), header("I")
    ra, dec = positions(hd, 1, 9)[0]
    steady = positions(hd, 1, 10, avoid=[(ra, dec)])[0]
    write(tmp_path / "deepI.fits", hd, image(hd, [(ra, dec, 300 / 6), (*steady, 40.0)], noise=0.4, seed=1))
    write(tmp_path / "tI.fits", hi, image(hi, [(ra, dec, 300.0), (*steady, 40.0)], noise=1.0, seed=2))
    res = search_images([tmp_path], output=tmp_path / "o", options=FAST)
    c, sep = nearest(res.candidates, ra, dec, stokes="I")
    assert sep < 2 * SCALE and c.snr > 150
    assert nearest(res.candidates, *steady, stokes="I")[1] > 2 * BEAM
    res = search_images([tmp_path], output=tmp_path / "o2", settings=Transient(steady_ratio=0), options=FAST)
    assert nearest(res.candidates, ra, dec, stokes="I")[1] > 2 * BEAM  # masked as a deep-I source


@pytest.mark.parametrize(("name", "ra", "dec", "v_radius", "i_radius"), [
    ("Cyg A", 299.868153, 40.733916, 5.0, 15.0),
    ("Vir A", 187.705931, 12.391123, 3.0, 10.0),
])
def test_ateam_zones(tmp_path, name, ra, dec, v_radius, i_radius):
    scale = 0.25  # a 64° field
    kw = {"scale": scale, "ra": ra + 1.0, "dec": dec + 1.0}
    hv, hi, hd = header("V", **kw), header("I", **kw), header("I", "deep", **kw)
    w = wcs_of(hv)
    x0, y0 = w.all_world2pix([[ra, dec]], 0)[0]

    def at(dist_deg, angle_deg):
        # walk along a pixel direction until the sky distance is reached
        for r in np.arange(0.5, 200, 0.05):
            x = x0 + r * math.cos(math.radians(angle_deg))
            y = y0 + r * math.sin(math.radians(angle_deg))
            p = w.all_pix2world([[x, y]], 0)[0]
            if sep_deg(p[0], p[1], ra, dec) >= dist_deg:
                return float(p[0]), float(p[1])
        raise AssertionError("not in the field")

    v_in, v_out = at(v_radius - 1.0, 30), at(v_radius + 1.5, 200)
    i_in, i_out = at(i_radius - 1.5, 120), at(i_radius + 2.0, 300)
    # without the A-team in the deep I (peeled, set, not in the sky) there is nothing to mask
    write(tmp_path / "deepI.fits", hd, image(hd, noise=0.4, seed=1))
    write(tmp_path / "tV.fits", hv, image(hv, [(*v_in, 10.0), (*v_out, 10.0)], noise=1.0, seed=2))
    write(tmp_path / "tI.fits", hi, image(hi, [(*i_in, 14.0), (*i_out, 14.0)], noise=1.0, seed=3))
    res = search_images([tmp_path], output=tmp_path / "o0", options=FAST)
    assert nearest(res.candidates, *v_in, stokes="V")[1] < 2 * scale, name
    assert nearest(res.candidates, *i_in, stokes="I")[1] < 2 * scale, name
    # the A-team in the deep I (2000 sigma, a third of a beam off its position: an ionospheric shift): capped
    (tmp_path / "deepI.fits").unlink()
    write(tmp_path / "deepI.fits", hd, image(hd, [(ra + 0.3, dec, 800.0)], noise=0.4, seed=1))
    res = search_images([tmp_path], output=tmp_path / "o", options=FAST)
    assert nearest(res.candidates, *v_in, stokes="V")[1] > 1.0, name
    assert nearest(res.candidates, *v_out, stokes="V")[1] < 2 * scale, name
    assert nearest(res.candidates, *i_in, stokes="I")[1] > 1.0, name
    assert nearest(res.candidates, *i_out, stokes="I")[1] < 2 * scale, name
    res = search_images([tmp_path], output=tmp_path / "o2", options=SearchOptions(products=False, ateam=()))
    assert nearest(res.candidates, *v_in, stokes="V")[1] < 2 * scale
    assert nearest(res.candidates, *i_in, stokes="I")[1] < 2 * scale


def test_ateam_from_ttcal_file_matches_the_builtin_positions(shared_data):
    from lwa_transient import ATEAM_J2000
    from lwa_transient.masks import ateam_from_ttcal

    got = {s.name: s for s in ateam_from_ttcal(shared_data / "sky" / "ateam_sources.json", freq_hz=55e6)}
    assert set(got) == {"Cyg A", "Cas A", "Vir A"}
    assert got["Cyg A"].major and got["Cas A"].major and not got["Vir A"].major
    for ref in ATEAM_J2000:
        if ref.name in got:
            assert sep_deg(got[ref.name].ra_deg, got[ref.name].dec_deg, ref.ra_deg, ref.dec_deg) < 3 / 60
            assert got[ref.name].major == ref.major


# --------------------------------------------------------------------------- bi-lobe rule


def _pair(amp_c, amp_p, sep_px, *, size=64):
    yy, xx = np.mgrid[0:size, 0:size]
    s = 3 / 2.3548
    g = lambda x0, y0: np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * s * s))  # noqa: E731
    res = amp_c * g(30, 30) + amp_p * g(30 + sep_px, 30)
    peak = Peak(y=30, x=30, y_sub=30.0, x_sub=30.0, value=float(res[30, 30]), snr=float(res[30, 30]),
                rms=1.0, sign=int(np.sign(amp_c)), npix=9)
    return res.astype(np.float32), np.ones_like(res, dtype=np.float32), peak


# the rule these cases test (wider ratios than `[transient]`'s bilobe_ratio, to reach both ends)
RULE = BilobeRule(radius_beams=2.0, ratio_min=0.2, ratio_max=5.0, partner_sigma=3.0, candidate_sigma=4.0)


@pytest.mark.parametrize(("amp_c", "amp_p", "sep_px", "rule", "expected"), [  # beam 3 px: 2 beams = 6 px
    (12.0, -8.0, 3.5, RULE, True),  # comparable opposite-sign lobe within 2 beams
    (-12.0, 8.0, 3.5, RULE, True),  # the same for a negative V candidate
    (12.0, -8.0, 8.0, RULE, False),  # 2.7 beams away: beyond 2 (its flank inside does not count)
    (12.0, -8.0, 8.0, replace(RULE, radius_beams=3.0), True),
    (30.0, -4.0, 3.5, RULE, False),  # ratio 7.5 > 5: a weak dip near a bright source
    (6.0, -40.0, 3.5, RULE, False),  # ratio 0.13 < 0.2: the candidate is the other's sidelobe
    (6.0, -40.0, 3.5, replace(RULE, ratio_min=0.1), True),
    (3.6, -3.4, 3.5, RULE, False),  # candidate below 4σ: not tested
    (12.0, -2.5, 3.5, RULE, False),  # partner below 3σ
    (12.0, 8.0, 3.5, RULE, False),  # same sign: no partner
])
def test_bilobe_rule(amp_c, amp_p, sep_px, rule, expected):
    res, rms, peak = _pair(amp_c, amp_p, sep_px)
    partner = bilobe_partner(res, rms, peak, rule=rule, beam_px=3.0)
    assert (partner is not None) == expected
    if partner is not None:
        assert np.sign(partner.snr) == -peak.sign
        assert partner.sep_px == pytest.approx(sep_px, abs=1.0)
        assert rule.ratio_min <= partner.ratio <= rule.ratio_max


def test_bilobe_pairs_are_flagged_kept_or_dropped(tmp_path):
    hv = header("V")
    (ra1, dec1), (ra2, dec2) = positions(hv, 2, 11, min_sep=30)
    w = wcs_of(hv)
    x, y = w.all_world2pix([[ra1, dec1]], 0)[0]
    pra, pdec = w.all_pix2world([[x + 2.7, y]], 0)[0]  # 20' away
    write(tmp_path / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    write(tmp_path / "tV.fits", hv, image(hv, [(ra1, dec1, 14.0), (pra, pdec, -10.0), (ra2, dec2, 14.0)],
                                          noise=1.0, seed=5))
    res = search_images([tmp_path], output=tmp_path / "o", options=FAST)
    pos, _ = nearest(res.candidates, ra1, dec1)
    neg, _ = nearest(res.candidates, pra, pdec)
    lone, _ = nearest(res.candidates, ra2, dec2)
    assert pos.bilobe and pos.klass == "artefact" and pos.sign == 1
    assert neg.bilobe and neg.klass == "artefact" and neg.sign == -1
    assert not lone.bilobe and lone.klass == "candidate"
    assert pos.partner_sep_arcmin == pytest.approx(20, abs=8)
    res = search_images([tmp_path], output=tmp_path / "o2", options=SearchOptions(products=False, drop_bilobe=True))
    assert nearest(res.candidates, ra1, dec1)[1] > 1.0 and nearest(res.candidates, pra, pdec)[1] > 1.0
    assert nearest(res.candidates, ra2, dec2)[1] < 2 * SCALE
    assert not any(c.bilobe for c in res.candidates)
    res = search_images([tmp_path], output=tmp_path / "o3", options=SearchOptions(products=False, bilobe=False))
    assert {c.klass for c in res.candidates} == {"candidate"}
    assert nearest(res.candidates, ra1, dec1)[1] < 2 * SCALE and nearest(res.candidates, pra, pdec)[1] < 2 * SCALE


# --------------------------------------------------------------------------- selection


def test_selection_by_header_prefers_dewarped(tmp_path, caplog):
    noise = image(header("I", "deep"), noise=1.0, seed=1)
    write(tmp_path / "a.fits", header("I", "deep"), noise)
    write(tmp_path / "b.fits", header("I", "deep", DEWARPED=False), noise)
    write(tmp_path / "c.fits", header("I", "deep", PBCOR=True), noise)
    write(tmp_path / "d.fits", header("I", "deep", TAPER=0.0), noise)
    write(tmp_path / "e.fits", header("I", "deep", ROBUST=-0.75), noise)
    write(tmp_path / "f.fits", header("V", "10min", "t0003", DEWARPED=False), noise)
    write(tmp_path / "g.fits", header("I", "snapshot"), noise)
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        groups = select_images(collect_paths([tmp_path]))
    g = groups["55MHz"]
    assert g.deep_i.path.name == "a.fits"
    assert g.deep_v is None and not g.ten_i
    assert list(g.ten_v) == ["t0003"] and g.ten_v["t0003"].path.name == "f.fits"
    assert "no dewarped image for V t0003" in caplog.text
    assert select_images(collect_paths([tmp_path]), robust=-0.75)["55MHz"].deep_i.path.name == "e.fits"
    write(tmp_path / "h.fits", header("I", "deep"), noise)
    with pytest.raises(LwaError, match="several images"):
        select_images(collect_paths([tmp_path]))


def stack_header(stokes, interval, *, role="transient", taper=30.0, robust=0.0, **kw):
    """The header lwa-stack gives a wideband stack of the Green band (lwa_stack.stack._write_stack)."""
    cat = "deep" if interval == "deep" else "10min"
    keywords = {"IMGCAT": "stack", "STKCAT": cat, "STKROLE": role, "BAND": "Green", "BANDLO": 41.0, "BANDHI": 64.0,
                "SUBBAND": "Green", "SUBBANDS": "41MHz,46MHz,50MHz,55MHz,59MHz", "NSUBBAND": 5, "STKRMS": 0.4,
                "NREGRID": 0, "FREQMHZ": 50.2, "NINTERVL": 1 if cat == "deep" else 6, "TAPER": taper,
                "ROBUST": robust, **kw}
    h = header(stokes, cat, interval, **keywords)
    h["INTERVAL"] = interval
    return h


def test_wideband_stacks_are_selected_and_searched(tmp_path):
    """lwa-stack's IMGCAT = stack images: deep by INTERVAL = deep, else 10 min, grouped by the band name."""
    folder = tmp_path / "wb"
    folder.mkdir()
    hv = stack_header("V", "t0002")
    burst = (*positions(hv, 1, 5)[0], -9.0)
    for name, h, sources, noise in (
            ("Wideband_Green_I_deep_Taper_Robust-0.fits", stack_header("I", "deep"), [], 0.4),
            ("Wideband_Green_V_deep_Taper_Robust-0.fits", stack_header("V", "deep"), [], 0.4),
            ("Wideband_Green_I_10min_Taper_Robust-0_t0002.fits", stack_header("I", "t0002"), [], 1.0),
            ("Wideband_Green_V_10min_Taper_Robust-0_t0002.fits", hv, [burst], 1.0),
            # the science family and a PB-corrected stack are not for the search
            ("Wideband_Green_I_deep_NoTaper_Robust-0.75.fits",
             stack_header("I", "deep", role="science", taper=0.0, robust=-0.75), [], 0.4),
            ("pb.fits", stack_header("V", "t0003", PBCOR=True), [], 1.0)):
        write(folder / name, h, image(h, sources, noise=noise, seed=len(name)))
    # a per-subband image next to the stacks forms its own group
    write(folder / "55MHz-V.fits", header("V", "10min", "t0004"), image(header("V"), noise=1.0, seed=9))
    groups = select_images(collect_paths([folder]))
    assert sorted(groups) == ["55MHz", "Green"]
    g = groups["Green"]
    assert g.deep_i.path.name == "Wideband_Green_I_deep_Taper_Robust-0.fits"
    assert g.deep_v.path.name == "Wideband_Green_V_deep_Taper_Robust-0.fits"
    assert list(g.ten_i) == ["t0002"] and list(g.ten_v) == ["t0002"]
    assert g.ten_v["t0002"].path.name == "Wideband_Green_V_10min_Taper_Robust-0_t0002.fits"
    assert list(groups["55MHz"].ten_v) == ["t0004"] and groups["55MHz"].deep_i is None
    # a stack without INTERVAL is no deep stack and has no 10 min slot: not selectable alone
    bare = tmp_path / "bare"
    bare.mkdir()
    h = stack_header("V", "deep")
    h["INTERVAL"] = ""
    write(bare / "x.fits", h, image(h, noise=1.0, seed=3))
    with pytest.raises(LwaError, match="stack image without INTERVAL"):
        select_images(collect_paths([bare]))

    res = search_images([folder], output=tmp_path / "out", settings=Transient(max_cutouts=1))
    green = [c for c in res.candidates if c.subband == "Green"]
    c, sep = nearest(green, burst[0], burst[1], stokes="V")
    assert sep < 2 * SCALE and c.interval == "t0002" and c.sign == -1
    assert c.peak_jy == pytest.approx(burst[2], abs=3.0) and c.freq_mhz == pytest.approx(50.2)
    assert not [c for c in green if c.interval == "deep"]  # nothing injected in the deep stacks
    assert "Green_V_t0002" in c.cutout
    with fits.open(c.cutout) as hdul:
        # the searched image: 10 min V stack minus the deep V stack
        assert hdul[0].header["IMGCAT"] == "diff" and hdul[0].header["CANDNAME"] == c.jname


def test_config_sets_every_search_default(tmp_path):
    """The [transient] table holds the tool's defaults (TOML lists become float pairs); options win."""
    from lwa_common.config import load_config

    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text("[transient]\nrobust = -0.75\nrms_smooth_boxes = 5\nsteady_ratio = 0\n"
                        "ateam_major_jy = 100\nmask_beams = [3, 1]\n")
    p = load_config(cfg_file).transient
    assert (p.robust, p.rms_smooth_boxes, p.steady_ratio, p.ateam_major_jy) == (-0.75, 5, 0.0, 100.0)
    assert p.mask_beams == (3.0, 1.0) and all(isinstance(v, float) for v in p.mask_beams)
    assert section_with(p, robust=0.0).robust == 0.0
    assert Transient() == load_config(None).transient
    cfg_file.write_text("[transient]\nmask_beams = [3, 2, 1]\n")
    with pytest.raises(LwaError, match="transient.mask_beams"):
        load_config(cfg_file)
    # the CLI takes --robust from the config: R0 images are then not searched; the option wins
    _cli_set(tmp_path / "in")
    cfg_file.write_text("[transient]\nrobust = -0.75\n")
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--config",
                   str(cfg_file), "--no-products"])
    assert res.returncode == 1 and "ROBUST=-0.75" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--config",
                   str(cfg_file), "--robust", "0", "--no-products"])
    assert res.returncode == 0, res.stderr


def test_images_on_another_grid_are_reprojected(tmp_path, caplog):
    hd = header("I", "deep")
    hv = header("V", ra=151.4, dec=37.5)  # another phase centre, same shape
    ra, dec = positions(hv, 1, 3, margin=60)[0]
    write(tmp_path / "deepI.fits", hd, image(hd, noise=0.4, seed=1))
    write(tmp_path / "tV.fits", hv, image(hv, [(ra, dec, 12.0)], noise=1.0, seed=2))
    with caplog.at_level(logging.WARNING):
        res = search_images([tmp_path], output=tmp_path / "o", options=FAST)
    assert "reprojecting" in caplog.text
    c, sep = nearest(res.candidates, ra, dec, stokes="V")
    assert sep < 0.5 * SCALE, sep


# --------------------------------------------------------------------------- products, catalogue


def test_cutouts_pngs_catalogue_and_limits(tmp_path, caplog):
    hv, hi = header("V"), header("I")
    spots = positions(hv, 14, 21)
    bursts = [(ra, dec, 30.0 - 1.5 * k) for k, (ra, dec) in enumerate(spots[:12])]
    flash = (*spots[12], 15.0)
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    write(folder / "tV.fits", hv, image(hv, bursts, noise=1.0, seed=2))
    write(folder / "tI.fits", hi, image(hi, [flash], noise=1.0, seed=3))
    catalog = tmp_path / "cat.csv"
    ra0, dec0 = bursts[0][:2]
    catalog.write_text(f"name,ra,dec,flux\nPSR_X,{ra0 + 1 / 60 / math.cos(math.radians(dec0)):.6f},{dec0:.6f},1\n"
                       f"FAR,{bursts[1][0]:.6f},{bursts[1][1] + 0.8 * BEAM:.6f},1\n")  # 0.8 beam: beyond 0.5
    with caplog.at_level(logging.WARNING):
        res = search_images([folder], output=tmp_path / "out", catalog=catalog)
    assert "12 candidates (more than 10)" in caplog.text
    v = [c for c in res.candidates if c.stokes == "V"]
    assert len(v) == 12
    top = nearest(res.candidates, ra0, dec0)[0]
    assert top.catalog_match == "PSR_X" and top.klass == "known"
    assert top.catalog_sep_arcmin == pytest.approx(1.0, abs=1.0)
    assert nearest(res.candidates, *bursts[1][:2])[0].catalog_match == ""
    with_cut = [c for c in v if c.cutout]
    assert len(with_cut) == 5
    assert sorted(abs(c.snr) for c in with_cut) == sorted(abs(c.snr) for c in v)[-5:]
    c = top
    assert c.png.endswith(".png") and (tmp_path / "out" / jname_short(SkyCoord(c.ra, c.dec, unit="deg"))).is_dir()
    with fits.open(c.cutout) as hdul:
        h, data = hdul[0].header, hdul[0].data
    assert data.shape == (16, 16)  # 2° at 7.5'/px
    assert h["STOKES"] == "V" and h["IMGCAT"] == "10min" and h["INTERVAL"] == "t0001"
    assert h["SUBBAND"] == "55MHz" and h["CANDNAME"] == c.jname and h["BMAJ"] == pytest.approx(BEAM)
    assert any("lwa-pipe[lwa-transient]" in str(card) for card in h["HISTORY"])
    y, x = np.unravel_index(np.nanargmax(data), data.shape)
    assert abs(y - 7.5) <= 1.5 and abs(x - 7.5) <= 1.5
    assert np.nanmax(data) == pytest.approx(c.peak_jy, abs=1.0)
    fi = [c for c in res.candidates if c.stokes == "I"]
    assert len(fi) == 1 and fi[0].cutout
    with fits.open(fi[0].cutout) as hdul:
        assert hdul[0].header["IMGCAT"] == "diff" and hdul[0].header["STOKES"] == "I"
    rows = read_candidates(res.csv)
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 13
    assert rows[0]["jname"].startswith("J") and rows[0]["bilobe"] in ("True", "False")


# --------------------------------------------------------------------------- CLI


def _cli_set(folder, *, shape_i=256, nan=False):
    folder.mkdir(parents=True, exist_ok=True)
    hv = header("V")
    burst = positions(hv, 1, 4)[0]
    paths = []
    for name, h, sources in (("deepI", header("I", "deep", size=shape_i), []), ("deepV", header("V", "deep"), []),
                             ("tV", hv, [(*burst, 12.0)]), ("tI", header("I"), [])):
        data = image(h, sources, noise=1.0, seed=len(paths))
        if nan:
            data[:] = np.nan
        paths.append(write(folder / f"{name}.fits", h, data))
    return paths, burst


def test_cli_search_writes_csv_and_products(tmp_path):
    paths, burst = _cli_set(tmp_path / "in")
    before = [md5(p) for p in paths]
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json"])
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["n_candidates"] >= 1 and summary["csv"].endswith("candidates.csv")
    rows = read_candidates(tmp_path / "out" / "candidates.csv")
    best = max(rows, key=lambda r: abs(float(r["snr"])))
    assert best["stokes"] == "V" and best["interval"] == "t0001"
    assert sep_deg(float(best["ra"]), float(best["dec"]), *burst) < 2 * SCALE
    assert best["cutout"] and best["png"] and best["cutout"] in summary["outputs"]
    assert [md5(p) for p in paths] == before  # inputs untouched
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert res.returncode == 1 and "--overwrite" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(["lwa-transient", "search", *map(str, paths), "-o", str(tmp_path / "out"), "--overwrite",
                   "--stokes", "I"])
    assert res.returncode == 0 and res.stdout.splitlines()[0].endswith("candidates.csv")
    assert all(r["stokes"] == "I" for r in read_candidates(tmp_path / "out" / "candidates.csv"))


def test_cli_config_file_sets_the_thresholds(tmp_path):
    _cli_set(tmp_path / "in")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[transient]\nv_sigma = 40.0\n")
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--config",
                   str(cfg), "--no-products"])
    assert res.returncode == 0, res.stderr
    assert read_candidates(tmp_path / "o" / "candidates.csv") == []
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--config",
                   str(cfg), "--v-sigma", "5", "--no-products"])
    assert len(read_candidates(tmp_path / "o2" / "candidates.csv")) >= 1  # the option wins


def test_cli_nan_only_images_give_empty_csv_and_exit_0(tmp_path):
    _cli_set(tmp_path / "in", nan=True)
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert res.returncode == 0, res.stderr
    assert "no finite non-zero pixel" in res.stderr
    text = (tmp_path / "out" / "candidates.csv").read_text()
    assert text.strip() == ",".join(CSV_COLUMNS)


def test_cli_shape_mismatch_fails_with_one_line(tmp_path):
    _cli_set(tmp_path / "in", shape_i=128)
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "shapes differ" in lines[0] and "128x128" in lines[0]
    assert not (tmp_path / "out" / "candidates.csv").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--bilobe-ratio", "5", "1"], "--bilobe-ratio"),
    (["--v-mask-sigma", "100", "500"], "2-beam threshold first"),
    (["--robust", "-0.75"], "no usable image"),
])
def test_cli_bad_values_fail_with_one_line(tmp_path, args, message):
    _cli_set(tmp_path / "in")
    res = run_cli(["lwa-transient", "search", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *args])
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


def test_cli_usage_errors_exit_2(tmp_path):
    res = run_cli(["lwa-transient", "search", str(tmp_path / "missing.fits"), "-o", str(tmp_path / "o")])
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_cli(["lwa-transient", "search", str(tmp_path)])
    assert res.returncode == 2 and "--output" in res.stderr
    res = run_cli(["lwa-transient", "search", str(tmp_path), "-o", str(tmp_path / "o"), "--stokes", "Q"])
    assert res.returncode == 2


def test_cli_help_has_example():
    res = run_cli(["lwa-transient", "search", "--help"])
    assert res.returncode == 0
    assert "Example:" in res.stdout and "lwa-transient search images/55MHz/" in res.stdout


def _dirty(h, sources, *, sidelobe=0.25):
    """A dirty-image stand-in: each (ra, dec, peak) source with the restoring Gaussian plus a ring
    of ± sidelobes (6-fold: point-symmetric, as every dirty beam is) 3 beams out, `sidelobe` of
    its peak."""
    w = wcs_of(h)
    ny, nx = h["NAXIS2"], h["NAXIS1"]
    beam_px = h["BMAJ"] / abs(h["CDELT2"])
    yy, xx = np.mgrid[0:ny, 0:nx]
    out = synthetic_image(h, list(sources), noise=0.0)[0, 0].astype(float)
    for ra, dec, peak in sources:
        x, y = w.all_world2pix([[ra, dec]], 0)[0]
        r, phi = np.hypot(xx - x, yy - y), np.arctan2(yy - y, xx - x)
        out += peak * sidelobe * np.exp(-0.5 * ((r - 3 * beam_px) / (0.5 * beam_px)) ** 2) * np.cos(6 * phi)
    return out[None, None]


@pytest.mark.parametrize("seed", [5, 6])
def test_v_difference_removes_dirty_sidelobes_of_steady_v_sources(tmp_path, seed):
    """Three bright steady V sources with 25 % dirty sidelobes: searched directly, their sidelobes
    are tens of false candidates; as 10 min − deep V (default), none is left that is not marked,
    and a burst of one interval (also one 4 beams from a V source) is found in its interval only."""
    h0 = header("V", "deep")
    spots = positions(h0, 5, seed, min_sep=30)
    steady = [(ra, dec, float(s)) for (ra, dec), s in zip(spots[:3], (400.0, -300.0, 250.0), strict=True)]
    w = wcs_of(h0)
    x, y = w.all_world2pix([[steady[0][0], steady[0][1]]], 0)[0]
    near = tuple(w.all_pix2world([[x + 12, y]], 0)[0])  # 4 beams from the 400σ source
    bursts = {"t0002": (*spots[3], 12.0), "t0003": (*near, -10.0)}
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    n = 4
    tens = {}
    for k in range(1, n + 1):
        tag = f"t{k:04d}"
        burst = [bursts[tag]] if tag in bursts else []
        tens[tag] = _dirty(header("V", interval=tag), steady + burst) + image(header("V"), noise=1.0, seed=10 * seed + k)
    deep = sum(tens.values()) / n  # the deep image is the mean of the intervals (bursts diluted)
    write(folder / "deepV.fits", header("V", "deep"), deep)
    for tag, data in tens.items():
        write(folder / f"tV_{tag}.fits", header("V", interval=tag), data)
    res = search_images([folder], output=tmp_path / "out", options=V_ONLY)
    real = [c for c in res.candidates if c.klass != "artefact"]
    for tag, (ra, dec, _) in bursts.items():
        c, sep = nearest(real, ra, dec, interval=tag)
        assert sep < BEAM, (tag, real)
    steady_found = [c for c in real if c.interval == "deep" and min(sep_deg(c.ra, c.dec, ra, dec) for ra, dec, _ in steady) < BEAM]
    false = [c for c in real if c not in steady_found
             and min(sep_deg(c.ra, c.dec, b[0], b[1]) for b in bursts.values()) > BEAM]
    assert not false, [(c.interval, c.snr, c.reason) for c in false]
    direct = search_images([folder], output=tmp_path / "direct", options=V_ONLY,
                           settings=Transient(v_difference=False, v_sidelobe_fraction=(0.0, 0.0)))
    assert len([c for c in direct.candidates if c.klass != "artefact"]) > 10  # what the rules remove


@pytest.mark.parametrize("seed", [7, 8])
def test_a_deep_v_filled_by_a_bright_burst_is_replaced_by_the_other_intervals(tmp_path, seed):
    """One interval of six holds a bright V burst whose far sidelobes fill its image (20× the noise
    of the others): the deep V holds them diluted (its noise ~7× what the 10 min images reach
    combined), and an 8σ burst of a quiet interval drowns in 10 min − deep V. Searched minus the
    noise-weighted mean of the other 10 min V images (the default), it is found, and neither it
    nor the bright burst leaves an echo in the other intervals; with the deep V as the
    reference (`v_deep_noise_ratio` out of reach) it is not found."""
    n = 6
    h0 = header("V", "deep")
    bright, weak = positions(h0, 2, seed, min_sep=30)
    beam_px = h0["BMAJ"] / abs(h0["CDELT2"])
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    tens = {}
    for k in range(1, n + 1):
        tag = f"t{k:04d}"
        h = header("V", interval=tag)
        tens[tag] = image(h, [(*weak, 8.0)] if k == 4 else [], noise=1.0, seed=10 * seed + k)
    sidelobes = 20.0 * correlated_noise((h0["NAXIS2"], h0["NAXIS1"]), beam_px, seed + 100)[None, None]
    tens["t0002"] = tens["t0002"] + image(h0, [(*bright, 600.0)], noise=0.0) + sidelobes
    write(folder / "deepV.fits", h0, sum(tens.values()) / n)
    for tag, data in tens.items():
        write(folder / f"tV_{tag}.fits", header("V", interval=tag), data)
    params = Transient()
    res = search_images([folder], output=tmp_path / "out", settings=params, options=V_ONLY)
    real = [c for c in res.candidates if c.klass != "artefact" and c.interval != "deep"]
    c, sep = nearest(real, *weak, interval="t0004")
    assert sep < BEAM and c.sign == 1 and c.snr > 5
    assert nearest(real, *bright, interval="t0002")[1] < BEAM
    others = [c for c in real if c.interval not in ("t0002", "t0004")]
    assert not [c for c in others if min(sep_deg(c.ra, c.dec, *b) for b in (bright, weak)) < BEAM]  # no echo
    assert len(others) <= 1, [(c.interval, c.snr) for c in others]  # noise: the goal's 1 per 10 images
    old = search_images([folder], output=tmp_path / "deep", settings=replace(params, v_deep_noise_ratio=1e6), options=V_ONLY)
    assert nearest([c for c in old.candidates if c.klass != "artefact"], *weak, interval="t0004")[1] > BEAM


@pytest.mark.parametrize(("values", "at", "expected"), [
    ([-0.2] * 5, 0, -0.2),  # a burst of one interval: the others hold its diluted share, opposite sign
    ([1.0, -0.5, -0.5, -0.5, -0.5], 0, -0.5),  # a burst straddling this and the next interval
    ([-0.5, -0.5, 1.0, -0.5, -0.5], 2, -0.5),
    ([0.9, 1.0, 0.85, 0.95, 0.9], 3, 0.9),  # the same residual in every difference
    ([1.32, 0.55, -0.03, -0.53, -1.0], 1, 1.0),  # a sidelobe drifting over the place
])
def test_trend_prediction(values, at, expected):
    others = [i for i in range(6) if i != at]
    guess, scatter = trend_prediction(others, values, at)
    assert guess == pytest.approx(expected, abs=0.1)
    assert scatter < 0.1
    assert trend_prediction([0, 1], [1.0, 3.0], 5) == (2.0, 0.0)  # two points: their median
    assert math.isnan(trend_prediction([0, 1], [math.nan, math.nan], 2)[0])


def test_trend_prediction_of_a_long_event_is_a_step_not_a_line():
    """An event in the first 3 of 6 intervals: from its first one, the other differences (+1 +1 −1
    −1 −1 of its value) tilt the line up to +0.75 of it there, but far from the points (median
    0.83): a step, which the trend rule keeps."""
    guess, scatter = trend_prediction([1, 2, 3, 4, 5], [1.0, 1.0, -1.0, -1.0, -1.0], 0)
    assert guess == pytest.approx(0.75, abs=0.05)
    assert scatter == pytest.approx(0.83, abs=0.05)


def test_trend_rule_marks_what_every_difference_shares_and_keeps_bursts(tmp_path):
    """10 min − deep images: a residual at the same place in every interval (six 7σ spots that the
    10 min images share and the deep image lacks: its own PSF/weighting differs from the 10 min
    ones around a bright source) and a
    sidelobe drifting over a place (+10σ → −10σ over the hour) are `trend` artefacts; a 10σ burst of
    one interval and a 12σ burst straddling two intervals stay candidates. With the rule off the
    shared residuals are candidates (the rule is what removes them)."""
    n = 6
    h0 = header("V", "deep")
    spots = positions(h0, 9, 11, min_sep=20)
    shared, drift, single, straddle = spots[:6], spots[6], spots[7], spots[8]
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    tens = {}
    for k in range(n):
        tag = f"t{k + 1:04d}"
        src = [(*drift, 10.0 * (1 - 2 * k / (n - 1)))] + [(*s, 7.0) for s in shared]
        src += [(*single, 10.0)] if k == 1 else []
        src += [(*straddle, 12.0)] if k in (3, 4) else []
        tens[tag] = image(header("V", interval=tag), src, noise=1.0, seed=100 + k)
    deep = sum(tens.values()) / n - image(h0, [(*s, 7.0) for s in shared], noise=0.0)  # without them
    write(folder / "deepV.fits", h0, deep)
    for tag, data in tens.items():
        write(folder / f"tV_{tag}.fits", header("V", interval=tag), data)
    params = Transient()
    res = search_images([folder], output=tmp_path / "out", settings=params, options=V_ONLY)
    real = [c for c in res.candidates if c.klass != "artefact" and c.interval != "deep"]
    # the straddling burst's share of the deep image (−4σ in the other intervals) may reach 5σ with
    # the noise: its echoes are not this rule's (a step in time, not a level or a drift)
    echoes = [c for c in real if c.sign < 0 and sep_deg(c.ra, c.dec, *straddle) < BEAM]
    assert {(c.interval, c.sign) for c in real if c not in echoes} == {("t0002", 1), ("t0004", 1), ("t0005", 1)}
    assert nearest(real, *single, interval="t0002")[1] < BEAM
    assert all(nearest(real, *straddle, interval=tag)[1] < BEAM for tag in ("t0004", "t0005"))
    trend = [c for c in res.candidates if c.reason == "trend"]
    assert len(trend) >= 2 * len(shared)
    assert all(min(sep_deg(c.ra, c.dec, *s) for s in [*shared, drift]) < BEAM for c in trend)
    assert len([c for c in trend if sep_deg(c.ra, c.dec, *drift) < BEAM]) >= 2
    off = search_images([folder], output=tmp_path / "off", settings=replace(params, trend_fraction=0.0), options=V_ONLY)
    left = [c for c in off.candidates if c.klass != "artefact" and c.interval != "deep"
            and min(sep_deg(c.ra, c.dec, *s) for s in shared) < BEAM]
    assert len(left) >= 2 * len(shared)


def test_first_negative_sidelobe_of_a_bright_burst_is_marked(tmp_path):
    """A 40σ V burst whose dirty PSF has a −25 % lobe 1.4 beams out (the first negative sidelobe of
    a small array) in one 10 min image: the lobe is a `sidelobe` artefact (opposite sign, within
    the bi-lobe radius, at most `v_sidelobe_fraction[0]` of the burst), the burst a candidate. With
    that radius at 1 beam (the near rule off) the lobe is a candidate: the rule is what marks it."""
    n = 4
    h0 = header("V", "deep")
    burst = positions(h0, 1, 3, margin=60)[0]
    w = wcs_of(h0)
    bx, by = w.all_world2pix([burst], 0)[0]
    beam_px = h0["BMAJ"] / abs(h0["CDELT2"])
    yy, xx = np.mgrid[0:h0["NAXIS2"], 0:h0["NAXIS1"]]
    lobe_px = 1.4 * beam_px / math.sqrt(2)  # one lobe, as the six-fold dirty PSF's are: no ring to measure
    lobe = -0.25 * 40.0 * np.exp(-0.5 * (np.hypot(xx - bx - lobe_px, yy - by - lobe_px) / (beam_px / 2.3548)) ** 2)
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    tens = {}
    for k in range(1, n + 1):
        tag = f"t{k:04d}"
        tens[tag] = image(header("V", interval=tag), noise=1.0, seed=200 + k)
    tens["t0002"] = tens["t0002"] + image(header("V", interval="t0002"), [(*burst, 40.0)], noise=0.0) + lobe[None, None]
    write(folder / "deepV.fits", h0, sum(tens.values()) / n)
    for tag, data in tens.items():
        write(folder / f"tV_{tag}.fits", header("V", interval=tag), data)
    params = Transient()
    res = search_images([folder], output=tmp_path / "out", settings=params, options=V_ONLY)
    ten = [c for c in res.candidates if c.interval == "t0002"]
    found, sep = nearest([c for c in ten if c.klass != "artefact"], *burst)
    assert sep < BEAM / 2 and found.sign == 1
    lobes = [c for c in ten if c.sign == -1 and sep_deg(c.ra, c.dec, *burst) < 2 * BEAM]
    assert lobes and all(c.reason == "sidelobe" for c in lobes), lobes
    off = search_images([folder], output=tmp_path / "off", settings=replace(params, bilobe_radius_beams=1.0), options=V_ONLY)
    lobes = [c for c in off.candidates if c.interval == "t0002" and c.sign == -1
             and sep_deg(c.ra, c.dec, *burst) < 2 * BEAM]
    assert lobes and any(c.klass != "artefact" for c in lobes), lobes


def _dirty_beam(n, *, n_ant=48, radius_lambda=90.0, seed=0):
    """The dirty beam of `n_ant` antennas scattered over a disk of `radius_lambda` wavelengths,
    on a (2n+1)² grid of `SCALE` pixels centred on pixel (n, n): the mean over the baselines of
    cos 2π(u l + v m), real and point-symmetric like every dirty beam (main lobe ~3 px, sidelobes
    of ~5 % rms with crests of 15–35 %, as on a small array)."""
    rng = np.random.default_rng(seed)
    r, phi = radius_lambda * np.sqrt(rng.uniform(0, 1, n_ant)), rng.uniform(0, 2 * np.pi, n_ant)
    i, j = np.triu_indices(n_ant, 1)
    u, v = (r * np.cos(phi))[i] - (r * np.cos(phi))[j], (r * np.sin(phi))[i] - (r * np.sin(phi))[j]
    lm = (np.arange(2 * n + 1) - n) * math.radians(SCALE)
    phase_u, phase_v = np.exp(2j * np.pi * np.outer(u, lm)), np.exp(2j * np.pi * np.outer(v, lm))
    return (phase_v.T @ phase_u).real / u.size  # [m, l]: sum over baselines of exp(2πi(u l + v m))


def _dirty_image(beam, shape, sources):
    """Point sources (x, y, peak) at pixels convolved with `beam` (`_dirty_beam` of half-size >= shape)."""
    n = beam.shape[0] // 2
    out = np.zeros(shape)
    for x, y, peak in sources:
        out += peak * beam[n - y:n - y + shape[0], n - x:n - x + shape[1]]
    return out[None, None]


def _two_bursts(tmp_path, *, faint_at, bright=150.0, faint=22.0):
    """Four 10 min V images (noise 1) and their mean as the deep V; t0002 holds a `bright` burst at
    the centre of a 256² image, dirty (`_dirty_beam`), plus a `faint` one at `faint_at` (pixel
    offset from the bright one; None: none). Returns (folder, bright pixel, beam)."""
    h0 = header("V", "deep")
    ny, nx = h0["NAXIS2"], h0["NAXIS1"]
    beam = _dirty_beam(max(ny, nx))
    centre = (nx // 2, ny // 2)
    bursts = [(*centre, bright)]
    if faint_at is not None:
        bursts.append((centre[0] + faint_at[0], centre[1] + faint_at[1], faint))
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "deepI.fits", header("I", "deep"), image(header("I", "deep"), noise=0.4, seed=1))
    tens = {f"t{k:04d}": image(header("V", interval=f"t{k:04d}"), noise=1.0, seed=300 + k) for k in range(1, 5)}
    tens["t0002"] = tens["t0002"] + _dirty_image(beam, (ny, nx), bursts)
    write(folder / "deepV.fits", h0, sum(tens.values()) / len(tens))
    for tag, data in tens.items():
        write(folder / f"tV_{tag}.fits", header("V", interval=tag), data)
    return folder, centre, beam


def _quiet_offset(beam, *, lo_px, hi_px, level):
    """A pixel offset lo_px..hi_px from the beam centre where |beam| < `level` and the beam's
    crests at that distance (99.5th percentile of |beam|) reach at least 5 × `level`: a place an
    envelope rule cannot tell from a sidelobe."""
    n = beam.shape[0] // 2
    yy, xx = np.mgrid[-n:n + 1, -n:n + 1]
    r = np.hypot(xx, yy)
    ring = (r >= lo_px) & (r < hi_px)
    assert np.percentile(np.abs(beam[ring]), 99.5) >= 5 * level
    ys, xs = np.nonzero(ring & (np.abs(beam) < level))
    return int(xs[0] - n), int(ys[0] - n)


def test_a_fainter_burst_in_the_interval_of_a_brighter_one_is_not_its_sidelobe(tmp_path):
    """Issue 15 (`loud_bursts`: a 40 Jy V burst in the 10 min interval of a 60 Jy one was marked
    `sidelobe`): a burst of 0.15 of a brighter one of the same interval, 9–11 beams from it, on a
    spot where the bright burst's dirty beam is below 1 % but within twice the sidelobe crests
    measured at that distance (~10 %). With the mirror test (`v_sidelobe_mirror`, the default: the
    beam is point-symmetric, a sidelobe has a twin of about its value through the source) it has
    no twin and stays a candidate; the envelope alone (the former rule) marks it `sidelobe`."""
    h0 = header("V", "deep")
    beam_px = h0["BMAJ"] / abs(h0["CDELT2"])
    offset = _quiet_offset(_dirty_beam(max(h0["NAXIS1"], h0["NAXIS2"])), lo_px=9 * beam_px, hi_px=11 * beam_px,
                           level=0.01)
    folder, bright, _ = _two_bursts(tmp_path, faint_at=offset)
    faint = wcs_of(h0).all_pix2world([[bright[0] + offset[0], bright[1] + offset[1]]], 0)[0]
    params = Transient(v_sidelobe_mirror=True)
    res = search_images([folder], output=tmp_path / "out", settings=params, options=V_ONLY)
    found, sep = nearest([c for c in res.candidates if c.klass != "artefact"], *faint, interval="t0002")
    assert sep < BEAM / 2 and found.sign == 1, found
    old = search_images([folder], output=tmp_path / "old", settings=replace(params, v_sidelobe_mirror=False), options=V_ONLY)
    marked, sep = nearest(old.candidates, *faint, interval="t0002")
    assert sep < BEAM / 2 and marked.reason == "sidelobe", marked


def test_the_sidelobes_of_a_bright_burst_are_still_marked(tmp_path):
    """The same dirty burst alone in its interval: its sidelobe crests (5–35σ) are detected and,
    with the mirror test, every one is an artefact — their twins through the burst hold them; the
    burst itself is a candidate."""
    folder, bright, _ = _two_bursts(tmp_path, faint_at=None)
    h0 = header("V", "deep")
    centre = wcs_of(h0).all_pix2world([bright], 0)[0]
    params = Transient(v_sidelobe_mirror=True)
    res = search_images([folder], output=tmp_path / "out", settings=params, options=V_ONLY)
    ten = [c for c in res.candidates if c.interval == "t0002"]
    found, sep = nearest([c for c in ten if c.klass != "artefact"], *centre)
    assert sep < BEAM / 2 and found.snr > 30
    lobes = [c for c in ten if sep_deg(c.ra, c.dec, *centre) > 1.5 * BEAM]
    assert len(lobes) >= 10 and "sidelobe" in {c.reason for c in lobes}
    assert all(c.klass == "artefact" for c in lobes), [(c.snr, sep_deg(c.ra, c.dec, *centre) / BEAM) for c in lobes
                                                      if c.klass != "artefact"]


def test_twin_centre_follows_the_dewarp_screen():
    """In a dewarped image a sidelobe's twin moves by the screen's second difference
    2 d(s) − d(p) − d(2s − p): none for a uniform or linear screen (a shift of the whole image),
    that much for a curved one; no screen or a NaN offset leaves the source as the centre."""
    ny, nx = 64, 80
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    source, point = (40.0, 30.0), (52.0, 18.0)
    linear = np.stack([0.1 * xx + 2.0, -0.05 * yy + 1.0])
    assert twin_centre(source, point, linear) == pytest.approx(source)
    curved = np.stack([0.01 * (xx - 40.0) ** 2, np.zeros_like(yy)])
    mirror = (2 * source[0] - point[0], 2 * source[1] - point[1])
    second = 2 * curved[0, 30, 40] - curved[0, 18, 52] - curved[0, int(mirror[1]), int(mirror[0])]
    cx, cy = twin_centre(source, point, curved)
    assert (2 * cx - point[0], 2 * cy - point[1]) == pytest.approx((mirror[0] + second, mirror[1]))
    assert twin_centre(source, point, None) == source
    curved[0, 30, 40] = np.nan
    assert twin_centre(source, point, curved) == source
