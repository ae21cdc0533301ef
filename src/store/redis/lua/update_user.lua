-- update_session_user. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now,
-- ARGV[4] idle timeout, ARGV[5] absolute lifetime (ms), ARGV[6] the user JSON
-- (absent: null).
return set_json_field(KEYS[6], ARGV[2], 'user', ARGV[3], tonumber(ARGV[4]),
  tonumber(ARGV[5]), ARGV[6])
