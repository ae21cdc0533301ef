-- store_session_data. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now,
-- ARGV[4] the data JSON (absent: null).
return set_json_field(KEYS[6], ARGV[2], 'data', ARGV[3], ARGV[4])
