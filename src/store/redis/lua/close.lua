-- close_session. KEYS[6] the session hash. ARGV[2] id, ARGV[3] now, ARGV[4] idle
-- timeout, ARGV[5] absolute lifetime (ms).
-- Returns false when the session is gone, else {reason, HGETALL}: the session (as it
-- was when already closed, reason 'none') and why this call closed it: 'logout', or
-- 'idle' / 'absolute' for a session that had expired, closed at that instant.
local key, id, now = KEYS[6], ARGV[2], ARGV[3]
local f = redis.call('HMGET', key, 'active', 'user_id', 'open_time', 'rk', 'request_time')
if not f[1] then
  return false
end
local why = 'none'
if f[1] == '1' then
  local at, reason = expiry(f[5], f[3], ARGV[4] + 0, ARGV[5] + 0)
  if at <= now + 0 then
    close_active(key, id, f[2], f[3], f[4], ms(at))
    why = reason
  else
    close_active(key, id, f[2], f[3], f[4], now)
    why = 'logout'
  end
end
return {why, redis.call('HGETALL', key)}
