-- One batch of the expiry sweep over a bucket. ARGV[2] now, ARGV[3] idle timeout,
-- ARGV[4] absolute lifetime (ms, 0 = none), ARGV[5] limit.
-- Closes, each at the instant it expired, up to limit active sessions that have
-- expired by now: idle ones first (from exp, by request_time), then ones past the
-- absolute lifetime (from oa, by open_time). Returns {closed for idleness, closed for
-- the absolute lifetime, 1 when it stopped at the limit (more may be due) else 0}.
-- Atomic, so concurrent sweeps never close one twice.
local now = ARGV[2] + 0
local idle, life, limit = ARGV[3] + 0, ARGV[4] + 0, ARGV[5] + 0
local idle_n, abs_n, seen = 0, 0, 0

-- Closes the sessions of ids (read from index, where the hash field `scored` is the
-- score) that have expired; repairs the entries that do not belong there.
local function sweep(ids, index, scored)
  seen = seen + #ids
  for _, id in ipairs(ids) do
    local key = session_key(id)
    local f = redis.call('HMGET', key, 'active', 'user_id', 'open_time', 'rk', 'request_time')
    if f[1] == '1' then
      local at, why = expiry(f[5], f[3], idle, life)
      if at <= now then
        close_active(key, id, f[2], f[3], f[4], ms(at))
        if why == 'idle' then idle_n = idle_n + 1 else abs_n = abs_n + 1 end
      else
        -- The score disagrees with the hash: set it right, so the entry is not due
        -- again and again.
        redis.call('ZADD', index, f[scored], id)
      end
    else
      -- The hash is gone or closed: the entry is stale, drop it.
      redis.call('ZREM', index, id)
    end
  end
end

sweep(redis.call('ZRANGE', EXP, '-inf', ms(now - idle), 'BYSCORE', 'LIMIT', 0, limit), EXP, 5)
if life > 0 and seen < limit then
  sweep(redis.call('ZRANGE', OA, '-inf', ms(now - life), 'BYSCORE', 'LIMIT', 0, limit - seen),
    OA, 3)
end
local more = 0
if seen >= limit then
  more = 1
end
return {idle_n, abs_n, more}
