"""Every default of the pipeline, held once, in frozen dataclasses.

A TOML file may override any value; its tables mirror the dataclass fields::

    [hot_baselines]
    sigma_uv = 6.5

    [imaging]
    size = 1024

Unknown tables or keys are errors with a "did you mean" hint, so a typo never silently falls
back to a default. `load_config(None)` gives the defaults.

One way from config to code: a core function takes its section (`cfg.hot_baselines`, a frozen
dataclass); a CLI builds it with `section_with(cfg.hot_baselines, sigma_uv=sigma_uv, ...)`, where
an option the user did not give is None (so `--config` and the defaults stay in force), and shows
the default in `--help` from the dataclass (`default_text`, `lwa_common.cli.section_option`).
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lwa_common.errors import LwaError

S = TypeVar("S")

__all__ = [
    "Config",
    "Site",
    "Observation",
    "HotBaselines",
    "Rfi",
    "SnapshotQA",
    "ImageConfiguration",
    "Imaging",
    "PrimaryBeam",
    "Dewarp",
    "Cutout",
    "Transient",
    "Stack",
    "FluxScale",
    "Peel",
    "Report",
    "Cluster",
    "Database",
    "Calibration",
    "SCIENCE_CONFIGURATIONS",
    "load_config",
    "config_to_dict",
    "section_with",
    "default_text",
]


@dataclass(frozen=True)
class Site:
    """OVRO-LWA location (WGS84)."""

    name: str = "OVRO-LWA"
    lat_deg: float = 37.2398
    lon_deg: float = -118.2817
    height_m: float = 1222.0


@dataclass(frozen=True)
class Observation:
    """The shape of OVRO-LWA data: subbands, channels, integration time."""

    subbands_mhz: tuple[int, ...] = (13, 18, 23, 27, 32, 36, 41, 46, 50, 55, 59, 64, 69, 73, 78, 82)
    skip_subbands_mhz: tuple[int, ...] = (13,)
    n_channels: int = 192
    channel_width_hz: float = 23926.0
    integration_s: float = 10.031


@dataclass(frozen=True)
class HotBaselines:
    """Two-pass hot-baseline flagging (amplitude vs uv distance; cross-pol antenna heatmap)."""

    window: int = 100
    sigma_uv: float = 7.0
    sigma_heatmap: float = 5.0
    antenna_fraction: float = 0.25
    min_uv_lambda: float = 4.0
    dead_fraction: float = 0.1
    # processes reading the MS side by side (lwa_common.parallel); 0 = one per CPU of the job
    processes: int = 0


@dataclass(frozen=True)
class Rfi:
    """`lwa-flag rfi`'s array-spectrum pass (after AOFlagger): unpolarised narrow-band RFI."""

    # a (time, channel) cell is flagged on every baseline when the median |I| over the baselines
    # exceeds that integration's median spectrum by more than spectrum_sigma robust sigmas (1.4826
    # MAD of all cells) and by more than spectrum_min_excess of it; spectrum_sigma 0 turns the pass off
    spectrum_sigma: float = 6.0
    spectrum_min_excess: float = 0.1


@dataclass(frozen=True)
class SnapshotQA:
    """Pilot snapshots and bad-integration detection."""

    # The science grid. Half the pixels over the same field (2048 at 3.75') serve the QA as well
    # (real size, 48 channels: frame RMS within 0.2 %, the same bursts kept) and cost 35 % less CPU
    # with the wgridder (the default gridder: 6.6 against 10.2 CPU s per integration), but 25 % more
    # with w-stacking (20.0 against 15.9, the same 37 w-layers).
    size: int = 4096
    scale_arcmin: float = 1.875
    sigma: float = 5.0
    low_ratio: float = 0.5
    running_window: int = 11
    # The frame-to-frame scatter of snapshot RMS is taken as at least this fraction of the median
    # RMS: on very stable data a tiny scatter would flag any change, bright transients included.
    min_scatter_fraction: float = 0.05
    # Fewer snapshots than this: no statistics, nothing flagged (a WARNING says so).
    min_frames: int = 6
    # A frame is "low" against this quantile of its window (the quiet level: a running median is
    # lifted by a transient lasting half the window, which would make the next quiet frame "low").
    low_quantile: float = 0.25
    # A high-RMS frame whose difference from its neighbours' median image peaks above this many
    # times that difference's robust RMS holds a compact sky source (a transient), not bad data:
    # noise-like damage (RFI, glitches) peaks near 5.
    compact_peak_ratio: float = 12.0
    # QA movies of the snapshots (lwa-image movie): frames per second, the snapshots subsampled
    # evenly to at most movie_max_frames, each block-averaged to at most movie_max_size_px a side.
    movie_fps: float = 10.0
    movie_max_frames: int = 150
    movie_max_size_px: int = 1024
    # processes reading the snapshots side by side (lwa-flag integrations); 0 = one per CPU of the job
    processes: int = 0


@dataclass(frozen=True)
class ImageConfiguration:
    """One of the science imaging configurations."""

    name: str
    stokes: str
    span: str  # "deep" (whole MS) or "10min" (intervals-out)
    robust: float
    taper: bool
    niter: int
    multiscale: bool


SCIENCE_CONFIGURATIONS: tuple[ImageConfiguration, ...] = (
    ImageConfiguration("I-Deep-Taper-Robust-0.75", "I", "deep", -0.75, True, 500_000, True),
    ImageConfiguration("I-Deep-Taper-Robust-0", "I", "deep", 0.0, True, 500_000, True),
    ImageConfiguration("I-Deep-NoTaper-Robust-0.75", "I", "deep", -0.75, False, 150_000, True),
    ImageConfiguration("I-Deep-NoTaper-Robust-0", "I", "deep", 0.0, False, 150_000, True),
    ImageConfiguration("I-Taper-10min", "I", "10min", 0.0, True, 50_000, True),
    ImageConfiguration("V-Taper-Deep", "V", "deep", 0.0, True, 0, False),
    ImageConfiguration("V-Taper-10min", "V", "10min", 0.0, True, 0, False),
)


@dataclass(frozen=True)
class Imaging:
    """wsclean parameters shared by the science configurations."""

    size: int = 4096
    scale_deg: float = 0.03125
    horizon_mask_deg: float = 10.0
    # science images: the pixels below horizon_mask_deg (wsclean's horizon mask: never cleaned, beyond
    # the horizon not on the sky) are NaN, as in the primary-beam corrected images
    blank_below_horizon: bool = True
    # CLEAN works only above this elevation (the cleaned configurations' -horizon-mask; never below
    # horizon_mask_deg, 0: that one): near the horizon the response is not the central PSF CLEAN
    # subtracts, and with the wgridder the multiscale CLEAN diverged at 13 deg elevation on
    # pol_vbursts with a 10 deg mask, converged with 12 or 15 deg (docs/performance.md)
    clean_horizon_deg: float = 15.0
    multiscale_scale_bias: float = 0.8
    auto_threshold: float = 0.5
    auto_mask: float = 3.0
    # CLEAN's auto-mask and auto-threshold against a local RMS map (-local-rms) or the image's global
    # RMS (false): in wsclean 3.1 -local-rms forces the slow multiscale sub-minor loop (the fast one
    # crashes with it), 3-4x the deconvolution CPU. false kept every scenario goal on five skies, but
    # the fast loop's CLEAN changes with wsclean's thread count (-j 1 vs 2: 0.83 of the image's MAD,
    # 0.06 with -local-rms) and, past the demo's 2 % iteration cap, diverged on pol_vbursts' tapered
    # deep I at 16-18 deg elevation (with -local-rms it converges): docs/performance.md
    local_rms: bool = True
    taper_inner_tukey_lambda: float = 30.0
    intervals_out: int = 6
    mgain: float = 0.8
    threads: int = 0  # 0: let wsclean decide
    # "wgridder" (-use-wgridder: matches a direct Fourier sum of Stokes I to 0.05 % out to 70 deg
    # from the phase centre, ~0.5 GB at 4096^2, 2x faster) or "wstack" (wsclean's w-stacking: a
    # ~10 GB w-layer stack at 4096^2, above the 8 GB job; 1 % low at 60 deg and 1.6 % at 70 deg from
    # the phase centre, so sources below 30 deg elevation read 2.9 % low (median, up to 8 %) on
    # south_flare, which fails the flux goal with it and passes with the wgridder: docs/science.md).
    # The wgridder needs clean_horizon_deg = 15 (its multiscale CLEAN diverged at 13 deg elevation)
    gridder: str = "wgridder"
    slurm_mem_fraction: float = 0.8  # in a Slurm job: wsclean -abs-mem = this x the job's --mem
    # Configurations imaged at once (their CLEAN minor loops are single-threaded): 0 = one per
    # cores_per_configuration CPUs of the job (7 on a 32-core node, 1 on a laptop); wsclean's
    # threads are shared out among them
    parallel_configurations: int = 0
    cores_per_configuration: int = 4
    configurations: tuple[ImageConfiguration, ...] = SCIENCE_CONFIGURATIONS


@dataclass(frozen=True)
class PrimaryBeam:
    """Primary-beam correction."""

    beam_file: str = ""  # empty: the analytic dipole beam shipped with lwa_common
    min_elevation_deg: float = 10.0
    min_response: float = 0.05


@dataclass(frozen=True)
class Dewarp:
    """Ionospheric dewarping against a reference catalogue (VLSSr)."""

    # Every radius is in beams of the image's own header (geometric-mean FWHM of BMAJ, BMIN), so
    # the same values hold on any grid and at any resolution.
    snr: float = 5.0
    match_radius_beams: float = 3.0  # ionospheric offsets of up to ~2.5 beams are matched
    # further passes: each catalogue source within this many beams of where the last screen puts it
    # (larger offsets than the first radius, and the first pass's guesses checked); 0: one pass
    rematch_radius_beams: float = 1.0
    min_anchors: int = 6
    reference_freq_mhz: float = 73.8
    spectral_index: float = -0.8
    flux_ratio_max: float = 5.0  # measured / catalogue flux on an image without PB correction (beam ≈ 0.2 at 20°)
    # ... on a PB-corrected image (PBCOR = T, what run_hour.sh fits): the tight test rejects the wrong
    # matches that a beam-blind factor 5 lets through on a confused sky (real_density_iono)
    flux_ratio_max_pbcor: float = 2.0
    smoothing: float = 1.0
    max_size_beams: float = 1.5  # compact: fitted FWHM major axis <= this many restoring beams (BMAJ)
    max_grid_px: int = 512  # screen grid side; bigger images get an integer coarsening factor
    clip_sigma: float = 4.0  # anchors further than this many robust sigmas (leave-one-out) are outliers
    clip_floor_beams: float = 0.5  # ... but never when they agree within this many beams
    position_floor_beams: float = 0.02  # added in quadrature to the fitted position errors (CLEAN, sidelobes)
    # the screen is kept only when its leave-one-out residual beats the identity's (the raw
    # offsets) on the anchors: RMS after <= cv_gain x RMS before; else the images stay undewarped
    cv_gain: float = 0.9
    max_degree: int = 3  # the screen's polynomial term (what extrapolates): degree 1..3, by leave-one-out
    # offsets modelled as local (dRA cos Dec, dDec) ("radec", lwa-sim's and fits_warp's convention,
    # singular at the celestial pole) or as shifts in the zenithal equidistant plane ("plane")
    offset_frame: str = "radec"
    background_box_beams: float = 8.0  # extraction: local background/RMS boxes
    fit_box_beams: float = 1.2  # extraction: half-side of the Gaussian-fit box around each peak
    interp_order: int = 3  # apply: 3 cubic spline, 1 bilinear
    freq_scaling: bool = True  # apply: scale offsets by (f_screen / f_image)^2
    # apply: compact peaks above rigid_snr robust sigmas are shifted by their own offset within
    # rigid_radius_beams (BMAJ), tapered into the smooth screen over rigid_taper_beams, so the
    # screen's stretch does not change their shape or integrated flux (0: smooth resampling only)
    rigid_snr: float = 5.0
    rigid_radius_beams: float = 2.0
    rigid_taper_beams: float = 1.0


@dataclass(frozen=True)
class Cutout:
    """Target photometry."""

    size_deg: float = 2.0
    min_elevation_deg: float = 30.0
    ionospheric_pad_arcsec_at_85mhz: float = 120.0
    detection_sigma: float = 5.0
    annulus_inner_beams: float = 3.0
    annulus_outer_beams: float = 6.0
    mask_radius_beams: float = 1.0


@dataclass(frozen=True)
class Transient:
    """Blind transient search."""

    v_sigma: float = 5.0
    i_sigma: float = 7.0
    rms_box_px: int = 32
    v_mask_high_sigma: float = 500.0
    v_mask_low_sigma: float = 100.0
    i_mask_high_sigma: float = 100.0
    i_mask_low_sigma: float = 30.0
    v_ateam_radius_deg: tuple[float, float] = (3.0, 5.0)
    i_ateam_radius_deg: tuple[float, float] = (10.0, 15.0)
    bilobe_radius_beams: float = 2.0  # bi-lobe partner search radius, restoring beams (BMAJ of the image)
    bilobe_ratio: tuple[float, float] = (0.5, 2.0)  # a shifted steady source: comparable lobes; a dirty PSF sidelobe reaches 0.3
    bilobe_sigma: tuple[float, float] = (3.0, 4.0)
    catalog_match_beams: float = 0.5  # catalogue cross-match radius, restoring beams
    max_cutouts: int = 5
    warn_candidates: int = 10
    robust: float = 0.0  # ROBUST of the images searched (the R0 configurations)
    rms_smooth_boxes: int = 3  # local RMS: median over this many x this many neighbouring boxes
    steady_ratio: float = 2.0  # I: a deep-I source this many times brighter in 10 min is not masked (0: off)
    ateam_major_jy: float = 5000.0  # TTCal A-team file: sources this bright get the larger radius
    # An A-team cap masks only around a source the deep I holds at >= i_mask_high_sigma within this
    # many beams of its position: peeled to the noise, set, or not in the sky, its sidelobes are not
    # there to mask, and a cap of 10-15 degrees would hide real transients.
    ateam_present_beams: float = 3.0
    mask_beams: tuple[float, float] = (2.0, 1.0)  # mask radii (beams) above the high / low *_mask_sigma
    # Stokes V: each 10 min V image is searched minus the deep V image (steady V sources and their
    # dirty sidelobes cancel); a candidate within what a brighter V source's dirty beam puts there
    # (its sidelobe envelope measured in the image x margin, capped) is a sidelobe (artefact)
    v_difference: bool = True
    # (cap of the same-image rule, fixed fraction for the deep-V sources in 10 min − deep V)
    v_sidelobe_fraction: tuple[float, float] = (0.5, 0.01)
    v_sidelobe_margin: float = 2.0  # same image: margin × the source's sidelobe envelope measured there
    # mirror test (README "sidelobe"): a candidate is a sidelobe of a brighter V source of the same
    # image when its twin through the source (a dirty beam is point-symmetric; in a dewarped image
    # the twin is moved by the dewarp screen's second difference) holds at least 1/margin of it,
    # same sign (the extreme within v_sidelobe_mirror_beams of the mirrored point); one whose twin
    # does not stays a sidelobe only below margin x the noise tail (5.6 sigma) within the envelope.
    # false: the envelope alone decides (a fainter burst in a brighter one's interval is marked)
    v_sidelobe_mirror: bool = True
    v_sidelobe_mirror_beams: float = 0.5
    # the twin is trusted up to this many beams from the source; beyond, the envelope decides (an
    # all-sky beam is less point-symmetric far out: true sidelobes' twins held 0.9-1.1 of them within
    # 18 beams, 0.73-0.85 at 31-36 beams on loud_bursts)
    v_sidelobe_mirror_reach_beams: float = 40.0
    v_source_sigma: float = 10.0  # V sources whose sidelobes are tested: |S/N| >= this in deep V
    v_source_mask_beams: float = 1.5  # 10 min − deep V: disks around those sources (main lobe residual)
    # the deep V is the reference of the 10 min V differences unless its noise exceeds this many times
    # what the 10 min V images reach combined (1/sqrt(sum 1/rms^2)): bright bursts of the hour fill
    # it; each 10 min V is then searched minus the noise-weighted mean of the others
    v_deep_noise_ratio: float = 3.0
    # 10 min − deep (V and I): a candidate that the other intervals' differences at its place
    # predict (Theil–Sen line over the intervals) to at least this fraction of its own value is a
    # steady or slowly drifting imaging difference, not a transient (0: off)
    trend_fraction: float = 0.5


@dataclass(frozen=True)
class Stack:
    """Wideband stacking."""

    bands_mhz: tuple[tuple[str, float, float], ...] = (
        ("Red", 18.0, 41.0),
        ("Green", 41.0, 64.0),
        ("Blue", 64.0, 85.0),
    )
    stretch_percentiles: tuple[float, float] = (0.5, 99.8)
    # Thermal noise of an image (lwa-stack noise / wideband weights): the standard deviation of the
    # central box covering this fraction of each axis (all-sky images are noisiest and most distorted
    # towards the horizon) after clipping at this many mad_std about the median.
    noise_inner_fraction: float = 0.5
    noise_clip_sigma: float = 3.0


@dataclass(frozen=True)
class FluxScale:
    """Flux-scale check against Scaife & Heald 2012 / Perley & Butler 2017."""

    min_elevation_deg: float = 20.0
    skymodel: str = ""  # Scaife & Heald 2012 makesourcedb file (lwa-cutout flux-check --skymodel)
    calibrators: tuple[str, ...] = ("3C48", "3C147", "3C196", "3C286", "3C295", "3C380", "3C123")
    ratio_range: tuple[float, float] = (0.5, 2.0)  # measured/model outside this range: a WARNING (scale broken)


@dataclass(frozen=True)
class Peel:
    """Direction-dependent peeling with DP3."""

    min_elevation_deg: float = 0.0
    uv_min_lambda: float = 5.0
    # DDECal's damped update needs ~14 iterations from 30 deg gain errors; 5 (TTCal's count)
    # leaves faint field sources biased by tens of per cent (measured in lwa-peel's tests).
    max_iterations: int = 50
    tolerance: float = 1e-4
    step_size: float = 0.5  # DDECal's own 0.2 needs ~3x more iterations for the same residual
    # sky: one solution per source and channel: the A-team power left falls 20-30x against one over
    # the whole band (0), because the model's spectrum and structure are off (measured in lwa-peel's
    # test_peel_mismatch.py); field sources near the A-team change less at worst (12 % vs 30-110 %)
    channels_per_solution: int = 1
    # rfi: unset (None) = the rule: from one channel per solution (the gains absorb the ragged
    # spectra), grown until the gains absorb at most rfi_max_absorption of the sky; an integer is
    # taken as it is (0 = the whole band), as `lwa-peel rfi --channels-per-solution` is
    rfi_channels_per_solution: int | None = None
    # rfi: the emitter's model is alone in the solve, so its gains also absorb ~2/((N_ant - 1) x
    # channels per solution) of the unmodelled sky (3 % per channel at 64 antennas: the demo's fluxes
    # came out 3.5 % low and the emitter's residue 4.7x the noise); the rule's solutions span as many
    # channels as keep that below this fraction (1 channel at 352 antennas is 0.6 %: 2 channels)
    rfi_max_absorption: float = 0.005
    # DDECal's smoothness constraint: per-channel solutions smoothed along frequency by a Gaussian
    # kernel of this FWHM (MHz), so the gains follow the model's spectral error without the
    # freedom to absorb field sources; 0 = off (sky only)
    smoothness_mhz: float = 0.0
    mode: str = "diagonal"
    beam: bool = True  # multiply the sky model by the Stokes I beam at each source's az/el
    # sky with a field catalogue (--field): its sources are subtracted before the solve and added
    # back after it (fixed, unit gains), so the A-team gains cannot absorb them; sources fainter
    # than field_min_jy (apparent, band centre) or within field_exclude_deg of a peeled source are left out
    field_min_jy: float = 5.0
    field_exclude_deg: float = 1.0
    # the catalogue's positions are off by the ionosphere: with field_refine the peel runs twice and
    # moves each field source >= field_refine_min_jy (apparent) to where the first pass's output puts
    # it (within field_refine_max_arcmin); at demo size the A-team power left falls ~6x (lwa_peel.refine)
    field_refine: bool = True
    field_refine_max_arcmin: float = 20.0
    field_refine_min_jy: float = 5.0
    # the peeled sources' models refined from the data (lwa_peel.selfcal): after a pass, each
    # source's residual (its gains applied inverted) is imaged with wsclean around it and the clean
    # components within model_refine_radius_arcmin (or one resolution element) are added to its
    # patch; this many such passes before the final one (0 = the shipped model as it is). The
    # shipped A-team model lacks the structure the 1.6 km baselines see: at real size (ateam_peel
    # sky, one integration) the power left is 2.1e-5 / 1.1e-5 / 6.0e-6 with 0 / 1 / 2 rounds (goal
    # 1e-5), at 186 / 198 / 349 CPU s per 192-channel MS (lwa-peel README)
    model_refine_rounds: int = 2
    model_refine_radius_arcmin: float = 20.0
    model_refine_clean_iterations: int = 2000
    model_refine_channels: int = 4  # wsclean output channels the components' spectra are fitted on
    # where the model is refined: once per subband-hour (run_hour.sh runs `lwa-peel refine-model` on
    # model_refine_ms of the hour's MS spread over it, the model is stored intrinsic, and every
    # per-MS peel uses it with no refinement round: 349 -> 205 CPU s per 192-channel MS plus 295
    # once, lwa-peel README), or false: in every MS's own peel
    model_refine_once: bool = True
    model_refine_ms: int = 1
    field_reference_freq_mhz: float = 73.8  # catalogue fluxes without their own frequency (VLSSr)
    field_spectral_index: float = -0.8  # catalogue sources without their own spectral index


@dataclass(frozen=True)
class Report:
    """Run report and its optional e-mail (the SMTP password only ever comes from LWA_SMTP_PASSWORD)."""

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    email_from: str = ""
    # QA scores of the weblog (lwa_stack.qa documents each formula)
    qa_flag_fraction: tuple[float, float, float] = (0.05, 0.2, 0.5)  # flagged fraction scoring 0.9, 0.66, 0.33
    qa_interval_flagged_max: float = 0.5  # an interval flagged more than this is a red item
    qa_beam_ratio_max: float = 1.5  # BMAJ this many times off its expectation is a red item
    qa_min_pixels_per_beam: float = 3.0  # BMAJ below this many pixels: the PSF is undersampled (red)
    qa_dewarp_max_beam: float = 0.2  # cross-validated dewarp residual (beams) scoring 0.9
    qa_false_per_image: float = 0.1  # transient candidates (not artefact, not known) expected per image searched


@dataclass(frozen=True)
class Cluster:
    """Data locality on the cluster (bin/run_hour.sh --slurm).

    `nodes`: "SUBBAND=NODE" entries (e.g. "55=lwacalim05"; "55=partition:NAME" pins to a partition
    instead): both jobs of a subband (Setup, Peel, Image) run there, so its working data never
    leaves the node's local disk; `run_hour.sh --remap SUBBAND=NODE` overrides one entry.
    `local_workdir`: node-local folder for the working MS copies, unpacked tars and the hour's
    concatenated MS ("" = under the run's --workdir); products and logs stay in --workdir.
    """

    nodes: tuple[str, ...] = ()
    local_workdir: str = ""
    # Slurm request per job type, "JOB=CPUS:MEMORY@TIME" (JOB: setup, refine, peel, image, aggregate; TIME
    # optional, a Slurm time limit), sized from the peaks and times measured at real size with margin
    # (docs/performance.md: the image job's extrapolated 7,700 s per subband-hour); run_hour.sh
    # --cpus/--mem/--time override every job. peel_tasks: Peel array tasks (one MS each) running at
    # once. account: the Slurm account of every job ("": the user's default; --account overrides).
    jobs: tuple[str, ...] = ("setup=2:4G@2:00:00", "refine=2:8G@1:00:00", "peel=2:8G@0:30:00",
                             "image=32:96G@12:00:00", "aggregate=4:16G@4:00:00")
    peel_tasks: int = 16
    account: str = ""


@dataclass(frozen=True)
class Database:
    """The products database (lwa-db): backend, association and variability defaults."""

    url: str = "sqlite:///lwa-products.sqlite"  # --db / $LWA_DB_URL override it; postgresql+psycopg://...
    busy_timeout_s: float = 120.0  # SQLite: wait this long for another process's write lock
    association_radius_beams: float = 1.0  # TraP-style: a measurement joins sources within this many BMAJ
    limit_sigma: float = 5.0  # upper limit = this many x the image RMS where a source is not detected
    eta_min: float = 3.0  # lwa-db variables: weighted reduced chi^2 threshold (Swinbank et al. 2015)
    v_min: float = 0.2  # lwa-db variables: modulation index threshold
    min_points: int = 3  # variability needs at least this many flux points


@dataclass(frozen=True)
class Calibration:
    """Bandpass + XY-phase solve and the delay check (lwa-calib)."""

    refant: str = ""  # antenna name or index; empty: the antenna with the most unflagged data
    min_snr: float = 3.0  # CASA minsnr of the bandpass / polcal solves
    uvrange: str = ""  # CASA uvrange selection, e.g. ">10lambda"; empty: all baselines
    min_elevation_deg: float = 10.0  # sources below are left out of the model
    source_names: tuple[str, ...] = ()  # only these sources of the sources file (empty: all)
    xy_mode: str = "auto"  # auto: solve the XY phase when the model has U or V flux; solve; skip
    sigma_antenna: float = 5.0  # robust z-score flagging an antenna's bandpass level
    sigma_channel: float = 5.0  # robust z-score flagging a channel of an antenna's bandpass
    channel_window: int = 5  # running-median window (channels) of the channel flagging
    channel_quorum: float = 0.5  # a channel flagged for more than this fraction of antennas: for all
    max_flagged_fraction: float = 0.5  # more of the solutions flagged than this: a WARNING (calibration suspect)
    delay_threshold_ns: float = 5.0  # delay check: antennas off the reference by more (median removed)
    delay_min_snr: float = 3.0  # delay check: CASA minsnr of the gaincal K solve


@dataclass(frozen=True)
class Config:
    site: Site = field(default_factory=Site)
    observation: Observation = field(default_factory=Observation)
    hot_baselines: HotBaselines = field(default_factory=HotBaselines)
    rfi: Rfi = field(default_factory=Rfi)
    snapshot_qa: SnapshotQA = field(default_factory=SnapshotQA)
    imaging: Imaging = field(default_factory=Imaging)
    primary_beam: PrimaryBeam = field(default_factory=PrimaryBeam)
    dewarp: Dewarp = field(default_factory=Dewarp)
    cutout: Cutout = field(default_factory=Cutout)
    transient: Transient = field(default_factory=Transient)
    stack: Stack = field(default_factory=Stack)
    flux_scale: FluxScale = field(default_factory=FluxScale)
    peel: Peel = field(default_factory=Peel)
    report: Report = field(default_factory=Report)
    cluster: Cluster = field(default_factory=Cluster)
    database: Database = field(default_factory=Database)
    calib: Calibration = field(default_factory=Calibration)


def _unknown(key: str, known: list[str], where: str) -> LwaError:
    hint = difflib.get_close_matches(key, known, n=1)
    typo = f" (typo? did you mean '{hint[0]}')" if hint else ""
    return LwaError(f"config: unknown key '{where}{key}'{typo}; known: {', '.join(sorted(known))}")


def _numbers(value: list, n: int, where: str) -> tuple[float, ...]:
    """A fixed-length tuple of floats (a pair of thresholds, radii...): TOML `[3, 1]` is `(3.0, 1.0)`."""
    if len(value) != n or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise LwaError(f"config: '{where}' must be {n} numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise LwaError(f"config: '{where}' must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LwaError(f"config: '{where}' must be a number, got {value!r}")
        return type(default)(value) if isinstance(default, float) or float(value).is_integer() else value
    if isinstance(default, tuple):
        if not isinstance(value, list):
            raise LwaError(f"config: '{where}' must be a list, got {value!r}")
        if default and all(isinstance(v, float) for v in default):
            return _numbers(value, len(default), where)
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if isinstance(default, str) and not isinstance(value, str):
        raise LwaError(f"config: '{where}' must be a string, got {value!r}")
    return value


def _optional(value: Any, kind: str, where: str) -> Any:
    """A value for a field that is unset (None) by default, `kind` its annotation ("int | None"):
    TOML has no null, so a value given is one of the type (an integer for `int | None`)."""
    if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
        raise LwaError(f"config: '{where}' must be an integer, got {value!r}")
    return value


def _apply(obj: Any, overrides: dict[str, Any], where: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)]
    kinds = {f.name: str(f.type) for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise _unknown(key, names, where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise LwaError(f"config: '{where}{key}' must be a table")
            changes[key] = _apply(current, value, f"{where}{key}.")
        elif key == "configurations":
            changes[key] = tuple(ImageConfiguration(**c) for c in value)
        elif current is None:
            changes[key] = _optional(value, kinds[key], f"{where}{key}")
        else:
            changes[key] = _coerce(value, current, f"{where}{key}")
    return dataclasses.replace(obj, **changes)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file at `path` (if any), then `overrides` (same nesting)."""
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise LwaError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as err:
            raise LwaError(f"config file {path} is not valid TOML: {err}") from None
        config = _apply(config, data, "")
    if overrides:
        config = _apply(config, overrides, "")
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict, for logging the resolved values."""
    return dataclasses.asdict(config)


def section_with(section: S, **given: Any) -> S:
    """`section` (a config dataclass) with the options the user gave; None means "not given".

    The one way a CLI combines `--config` (already in `section`) and its own options::

        settings = section_with(cfg.hot_baselines, sigma_uv=sigma_uv, window=window)

    A name that is not a field of the section is an error (a bug in the caller, not user input).
    """
    names = {f.name for f in dataclasses.fields(section)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"{type(section).__name__} has no field {', '.join(unknown)}")
    return dataclasses.replace(section, **{k: v for k, v in given.items() if v is not None})


def default_text(section: str, key: str) -> str:
    """`default: 7.0, config hot_baselines.sigma_uv`: an option's default, read from `Config()`.

    For help texts, so no default is ever retyped (`lwa_common.cli.section_option` uses it).
    """
    value = getattr(getattr(Config(), section), key)
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, tuple):
        shown = ", ".join(str(v) for v in value) or "none"
    elif value == "":
        shown = "none"
    else:
        shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"default: {shown}, config {section}.{key}"
