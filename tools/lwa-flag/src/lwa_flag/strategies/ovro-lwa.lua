--[[
  OVRO-LWA flagging strategy for AOFlagger >= 3.1 (lwa-pipe, `lwa-flag rfi`).

  Written for OVRO-LWA subband data: 192 (archive: 48) channels per subband between 18 and 82 MHz,
  10.031 s integrations, linear feeds (XX XY YX YY), a sky that is bright everywhere (Galactic
  plane, A-team) and bright transients that we exist to find, and RFI that is mostly narrow-band
  (terrestrial transmitters, power-line and vehicle harmonics) with occasional broadband bursts.

  The rule: no sky signal may trip the flagger. A compact sky source -- steady, or a transient that
  appears or disappears between integrations -- adds a coherent fringe S(l,m) exp(-2 pi i (ul+vm))
  to XX = I + Q, YY = I - Q, XY = U + iV, YX = U - iV. Its Stokes I and V are large and change
  from one integration to the next (a burst lifts |XY| tenfold), so time-direction detection on
  XX/YY/XY/YX flags a burst's on/off edges, and the bright sky's fringes flag 10-100 lambda
  baselines and the band edges (measured: 8-18 % of RFI-free data flagged by the strategy this
  replaces). So:
    * time AND frequency detection (SumThreshold) runs on Stokes Q and U only, where a calibrated
      sky of unpolarised and circularly polarised sources has (almost) no signal: RFI, which is
      polarised and independent between the feeds, stands out against the noise there;
    * no detection on Stokes I by default. On one baseline the sky's Stokes I spectrum is a sum
      of fringes whose beats swing its amplitude by factors of ten across the subband wherever
      the baseline is longer than c / (2 pi channel width) (83 m at 8 channels, 500 m at 48), with
      the extremes at the band edges; SumThreshold, whose levels follow each baseline's own
      amplitude, took those for RFI (measured: 1.2-3.0 % of RFI-free demo skies flagged, 5-8 % of
      the edge channels). Unpolarised narrow-band RFI (a steady
      emitter in XX and YY alike) is found by `lwa-flag rfi` after this strategy, from the median
      spectrum over all baselines (lwa_flag/spectrum.py), where the beats average out.
      `lwa_freq_polarizations = { "I" }` brings the per-baseline frequency pass back;
    * no background fit: Q and U hold noise, and a fit through bright RFI bends the background
      around it and flags its neighbours (measured: 5-16 % collateral); SumThreshold's levels are
      relative to each baseline's own noise estimate;
    * the scale-invariant rank operator then widens the flags a little in time and frequency.
  What cannot be told from a sky source by any flagger is not flagged: an unpolarised broadband
  burst filling every channel of an integration (it looks exactly like a transient), or an
  unpolarised emitter in every channel all the time (a steady source). Such data are for the
  imaging QA (`lwa-flag integrations`) and peeling (`lwa-peel rfi`).
  Leakage of Stokes I into Q and U (primary-beam differences between the feeds, uncalibrated
  X/Y gains) is real-sky structure that this strategy would see: flag calibrated data.
  With fewer than `min_timesteps` time steps only frequency-direction detection runs (on Q and U).

  Every setting can be changed without editing this file, with a preamble, e.g.
    aoflagger -preamble "lwa_base_threshold = 2.0" -strategy ovro-lwa.lua obs.ms
]]--

aoflagger.require_min_version("3.1")

local function setting(name, default)
  local value = _G["lwa_" .. name]
  if value == nil then return default end
  return value
end

local cfg = {
  base_threshold = setting("base_threshold", 1.6),     -- SumThreshold level on Q and U; lower flags more
  sky_threshold = setting("sky_threshold", 1.5),       -- frequency-direction level on Stokes I
  freq_factor = setting("freq_factor", 1.0),           -- relative level of the frequency direction (Q, U)
  iterations = setting("iterations", 1),               -- frequency passes, the first at base * step^(n-1)
  threshold_step = setting("threshold_step", 2.0),
  min_timesteps = setting("min_timesteps", 10),        -- below: frequency-direction detection only
  dilate_time = setting("dilate_time", 0.2),           -- scale-invariant rank operator levels
  dilate_freq = setting("dilate_freq", 0.2),
  time_polarizations = setting("time_polarizations", { "Q", "U" }),  -- time + frequency detection
  freq_polarizations = setting("freq_polarizations", {}),  -- frequency-only detection (e.g. { "I" }); off: see header
}

-- SumThreshold on one polarisation's amplitudes, along frequency and (with enough time steps)
-- along time, from a high level down to `level`. Returns the data carrying the mask.
-- The samples flagged so far (existing flags, earlier passes) are left out of the noise level
-- (AOFlagger estimates it from the unmasked samples of its input), but the detection itself is
-- plain SumThreshold: AOFlagger 3.1's `sumthreshold_masked` adds a masked sample that sits at the
-- right end of its first window to the running sum and never takes it out, so one strong short
-- burst, once flagged, flagged its channel at every later time (measured: 3000 Jy in two channels
-- for one integration took 25 % of an RFI-free 8-channel hour; a 300 Jy burst 2 % of clean data).
local function detect(input, pol, level, freq_level, use_time)
  local observed = input:convert_to_polarization(pol):convert_to_complex("amplitude")
  for i = cfg.iterations, 1, -1 do
    local step = cfg.threshold_step ^ (i - 1)
    local work = observed:copy()
    aoflagger.sumthreshold(work, level * step, freq_level * step, use_time, true)
    observed:join_mask(work)
  end
  return observed
end

function execute(input)
  local use_time = #input:get_times() >= cfg.min_timesteps
  local before = input:copy()  -- existing flags are kept and excluded from the statistics
  for _, pol in ipairs(cfg.time_polarizations) do
    input:join_mask(detect(input, pol, cfg.base_threshold, cfg.base_threshold * cfg.freq_factor, use_time))
  end
  for _, pol in ipairs(cfg.freq_polarizations) do
    input:join_mask(detect(input, pol, cfg.sky_threshold, cfg.sky_threshold, false))
  end
  aoflagger.scale_invariant_rank_operator_masked(input, before, cfg.dilate_time, cfg.dilate_freq)
  input:join_mask(before)
  input:flag_nans()

  if input:is_complex() and input:has_metadata() then
    aoflagger.collect_statistics(input, before)
  end
end
