--[[
  OVRO-LWA flagging strategy for AOFlagger >= 3.1 (lwa-pipe, `lwa-flag rfi`).

  Written for OVRO-LWA subband data: 192 x 23.9 kHz channels per subband between 18 and 82 MHz,
  10.031 s integrations, linear feeds (XX XY YX YY), a sky that is bright everywhere (Galactic
  plane, A-team), and RFI that is mostly narrow-band (terrestrial transmitters, power-line and
  vehicle harmonics) with occasional broadband bursts.

  How it differs from AOFlagger's generic strategy (choices checked on lwa-sim data with injected
  narrow-band, burst and broadband RFI over a bright point-source sky, see tools/lwa-flag/tests):
    * no bandpass normalisation: OVRO-LWA has transmitters that sit in one channel all the time,
      and normalising every channel's RMS would hide exactly those; the 4.6 MHz subband bandpass
      is smooth and the background fit removes it;
    * a wide background fit in time (sigma = 6 integrations, one minute: the sky hardly changes
      between 10 s integrations, while a narrow fit swallows a one-integration broadband burst)
      and a moderate one in frequency (sigma = 4 channels, sky fringes of the longest baselines);
    * SumThreshold base level 1.2 and channel-RMS outliers at 3.5 sigma (times the iteration
      factor): fewer false positives on the bright-sky short baselines than the generic 1.0;
    * it adapts to short inputs: with fewer than `min_timesteps` time steps (e.g. one 10 s
      integration per MS) only frequency-direction detection runs, because time-direction
      SumThreshold and time-step RMS statistics need several samples. Narrow-band RFI is still
      found in a single integration; broadband RFI filling every channel of a single integration
      cannot be (there is no clean reference in that MS).

  Every setting can be changed without editing this file, with a preamble, e.g.
    aoflagger -preamble "lwa_base_threshold = 1.5" -strategy ovro-lwa.lua obs.ms
]]--

aoflagger.require_min_version("3.1")

local function setting(name, default)
  local value = _G["lwa_" .. name]
  if value == nil then return default end
  return value
end

local cfg = {
  base_threshold = setting("base_threshold", 1.2),  -- SumThreshold level; lower flags more
  iterations = setting("iterations", 3),           -- background-fit iterations (>= 1)
  threshold_step = setting("threshold_step", 2.0), -- the level starts at base * step^(iterations-1)
  freq_factor = setting("freq_factor", 1.0),       -- relative level for frequency-direction runs
  channel_sigma = setting("channel_sigma", 3.5),   -- per-baseline channel RMS outliers
  timestep_sigma = setting("timestep_sigma", 4.0), -- time-step RMS outliers (all baselines)
  min_timesteps = setting("min_timesteps", 4),     -- below: frequency-direction detection only
  fit_time = setting("fit_time", { 31, 6.0 }),     -- low-pass kernel size and sigma (time steps)
  fit_freq = setting("fit_freq", { 21, 4.0 }),     -- low-pass kernel size and sigma (channels)
  dilate_time = setting("dilate_time", 0.2),       -- scale-invariant rank operator levels
  dilate_freq = setting("dilate_freq", 0.2),
  flag_polarizations = setting("flag_polarizations", nil), -- nil: every polarisation in the data
}

-- Detect on one polarisation's amplitudes: iterate SumThreshold against a smooth background.
local function detect(amplitude, use_time)
  local observed = amplitude:copy()
  local work = amplitude
  for i = 1, cfg.iterations - 1 do
    local level = cfg.base_threshold * cfg.threshold_step ^ (cfg.iterations - i)
    aoflagger.sumthreshold_masked(work, observed, level, level * cfg.freq_factor, use_time, true)

    local by_channel = work:copy()
    aoflagger.threshold_channel_rms(by_channel, cfg.channel_sigma * cfg.threshold_step ^ (cfg.iterations - i), true)
    work:join_mask(by_channel)
    if use_time then
      aoflagger.threshold_timestep_rms(work, cfg.timestep_sigma)
    end

    -- smooth background of the unflagged samples, then continue on the residual
    work:set_visibilities(observed)
    work:join_mask(observed)
    aoflagger.low_pass_filter(work, cfg.fit_time[1], cfg.fit_freq[1], cfg.fit_time[2], cfg.fit_freq[2])
    local residual = observed - work
    residual:set_mask(work)
    work = residual
    aoflagger.set_progress(i, cfg.iterations)
  end
  aoflagger.sumthreshold_masked(work, observed, cfg.base_threshold, cfg.base_threshold * cfg.freq_factor,
    use_time, true)
  return work
end

function execute(input)
  local n_times = #input:get_times()
  local use_time = n_times >= cfg.min_timesteps
  local before = input:copy()  -- existing flags are kept and excluded from the statistics

  local available = input:get_polarizations()
  local pols = cfg.flag_polarizations or available
  for _, pol in ipairs(pols) do
    local amplitude = input:convert_to_polarization(pol):convert_to_complex("amplitude")
    local result = detect(amplitude, use_time)
    local present = false
    for _, p in ipairs(available) do
      if p == pol then present = true end
    end
    if present then
      if input:is_complex() then
        result = result:convert_to_complex("complex")
      end
      input:set_polarization_data(pol, result)
    else
      input:join_mask(result)
    end
  end

  aoflagger.scale_invariant_rank_operator_masked(input, before, cfg.dilate_time, cfg.dilate_freq)
  if use_time then
    aoflagger.threshold_timestep_rms(input, cfg.timestep_sigma)
  end
  input:join_mask(before)
  input:flag_nans()

  if input:is_complex() and input:has_metadata() then
    aoflagger.collect_statistics(input, before)
  end
end
