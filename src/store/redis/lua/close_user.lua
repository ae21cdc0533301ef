-- close_user_sessions. KEYS[6] the user's active index. ARGV[2] now, ARGV[3] idle
-- timeout, ARGV[4] absolute lifetime (ms), ARGV[5] the id to keep ('' keeps none).
-- Closes every active session of the user but the one to keep, as close_session
-- does; one that had expired is closed at the instant it expired, the kept one
-- included. Returns {revoked, closed for idleness, closed for the absolute lifetime}.
local now = ARGV[2] + 0
local idle, life, keep = ARGV[3] + 0, ARGV[4] + 0, ARGV[5]
local revoked, idle_n, abs_n = 0, 0, 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
  local key = session_key(id)
  local f = redis.call('HMGET', key, 'active', 'user_id', 'open_time', 'rk', 'request_time')
  if not f[1] then
    -- The hash is gone: the entry is stale, drop it.
    redis.call('ZREM', KEYS[6], id)
  elseif f[1] == '1' then
    local at, why = expiry(f[5], f[3], idle, life)
    if at <= now then
      close_active(key, id, f[2], f[3], f[4], ms(at))
      if why == 'idle' then idle_n = idle_n + 1 else abs_n = abs_n + 1 end
    elseif id ~= keep then
      close_active(key, id, f[2], f[3], f[4], ARGV[2])
      revoked = revoked + 1
    end
  end
end
return {revoked, idle_n, abs_n}
