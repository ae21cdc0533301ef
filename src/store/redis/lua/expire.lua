-- One batch of the expiry sweep over a bucket. ARGV[2] cutoff, ARGV[3] now,
-- ARGV[4] limit. Closes up to limit active sessions whose request_time < cutoff and
-- returns how many it closed. Atomic, so concurrent sweeps never close one twice.
local now = ARGV[3]
local ids = redis.call('ZRANGE', EXP, '-inf', '(' .. ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[4])
local closed = 0
for _, id in ipairs(ids) do
  local key = session_key(id)
  local f = redis.call('HMGET', key, 'active', 'user_id', 'open_time', 'rk')
  if f[1] == '1' then
    close_active(key, id, f[2], f[3], f[4], now)
    closed = closed + 1
  else
    -- The hash is gone or closed: the entry is stale, drop it.
    redis.call('ZREM', EXP, id)
  end
end
return closed
