-- store_session_data. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now,
-- ARGV[4] and ARGV[5] the idle and lifetime cutoffs (see live()), ARGV[6] the data
-- JSON (absent: null).
local idle_cut, life_cut = cutoffs(ARGV[4], ARGV[5])
return set_json_field(KEYS[6], ARGV[2], 'data', ARGV[3], idle_cut, life_cut, ARGV[6])
