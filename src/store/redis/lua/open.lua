-- open_session. KEYS[6] the new session's hash, KEYS[7] the user's active index.
-- ARGV[2] new id, ARGV[3] "1" to reuse, ARGV[4] now, ARGV[5] user_id, ARGV[6] reuse key,
-- ARGV[7] and ARGV[8] the idle and lifetime cutoffs (see live()), ARGV[9] the most
-- active sessions a user may have (0: no cap), ARGV[10] 'close_oldest' or 'refuse',
-- ARGV[11..] field/value pairs of the optional fields that are not null.
-- Returns {1, fields} for a reused session (HMGET of the session fields, by
-- position), {0, evicted} for a new one (the caller
-- has every field already; evicted: how many of the user's sessions it closed to
-- stay within the cap), {3, HGETALL} when this very call ran before, {2} when the new
-- id is taken (the caller draws another), {4} when the cap refuses the open.
local id, now, rk = ARGV[2], ARGV[4], ARGV[6]
local idle_cut, life_cut = cutoffs(ARGV[7], ARGV[8])

if ARGV[3] == '1' then
  local rid = redis.call('HGET', REUSE, rk)
  if rid then
    -- One read serves the check and the answer (the hot path of open): the session's
    -- fields in a fixed order, which the service decodes by position (SESSION_FIELDS
    -- in codec.rs); an absent field comes back as nil.
    local key = session_key(rid)
    local f = redis.call('HMGET', key, 'id', 'user_id', 'user_name', 'active', 'open_time',
      'request_time', 'close_time', 'address', 'client', 'user', 'data')
    -- An expired session is never reused: the new one takes its reuse slot, and the
    -- sweep closes it at the instant it expired.
    if f[4] == '1' and live(f[6], f[5], idle_cut, life_cut) then
      redis.call('HSET', key, 'request_time', now)
      redis.call('ZADD', EXP, now, rid)
      f[6] = now
      return {1, f}
    end
  end
end

local taken = redis.call('HMGET', KEYS[6], 'user_id', 'open_time')
if taken[1] then
  -- Ids carry 114 random bits: an existing hash of this user opened at this very
  -- millisecond is this call's own earlier run (the cluster client sends a script
  -- again when the connection broke after sending). Answer as that run did, instead
  -- of opening a second session.
  if taken[1] == ARGV[5] and taken[2] == now then
    return {3, redis.call('HGETALL', KEYS[6])}
  end
  return {2}
end

-- The per-user cap: count the user's live sessions (expired ones do not count); at
-- the cap, refuse, or close the least recently used (oldest request_time, then id).
local evicted = 0
local cap = ARGV[9] + 0
if cap > 0 then
  local sessions = {}
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
    local f = redis.call('HMGET', session_key(sid), 'active', 'request_time', 'open_time')
    if f[1] == '1' and live(f[2], f[3], idle_cut, life_cut) then
      sessions[#sessions + 1] = {f[2] + 0, sid}
    end
  end
  if #sessions >= cap then
    if ARGV[10] == 'refuse' then
      return {4}
    end
    table.sort(sessions, function(a, b)
      if a[1] ~= b[1] then
        return a[1] < b[1]
      end
      return a[2] < b[2]
    end)
    evicted = #sessions - cap + 1
    for i = 1, evicted do
      local sid = sessions[i][2]
      local key = session_key(sid)
      local g = redis.call('HMGET', key, 'user_id', 'open_time', 'rk')
      close_active(key, sid, g[1], g[2], g[3], now)
    end
  end
end

redis.call('HSET', KEYS[6], 'id', id, 'user_id', ARGV[5], 'active', '1',
  'open_time', now, 'request_time', now, 'rk', rk, unpack(ARGV, 11))
redis.call('ZADD', KEYS[7], now, id)
redis.call('ZADD', OA, now, id)
redis.call('ZADD', EXP, now, id)
redis.call('HSET', REUSE, rk, id)
return {0, evicted}
