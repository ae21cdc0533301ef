-- update_session_user. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now,
-- ARGV[4] the user JSON (absent: null).
return set_json_field(KEYS[6], ARGV[2], 'user', ARGV[3], ARGV[4])
