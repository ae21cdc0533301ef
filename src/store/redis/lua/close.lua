-- close_session. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now.
-- Returns false when the session is gone, else the session (unchanged when it was
-- already closed) as a flat HGETALL array.
local key, id = KEYS[6], ARGV[2]
local f = redis.call('HMGET', key, 'active', 'user_id', 'open_time', 'rk')
if not f[1] then
  return false
end
if f[1] == '1' then
  close_active(key, id, f[2], f[3], f[4], ARGV[3])
end
return redis.call('HGETALL', key)
