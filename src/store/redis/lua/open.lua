-- open_session. KEYS[6] the new session's hash, KEYS[7] the user's active index.
-- ARGV[2] new id, ARGV[3] "1" to reuse, ARGV[4] now, ARGV[5] user_id, ARGV[6] reuse key,
-- ARGV[7..] field/value pairs of the optional fields that are not null.
-- Returns {1, HGETALL} for a reused session, {0} for a new one (the caller has every
-- field already), {3, HGETALL} when this very call ran before, {2} when the new id is
-- taken (the caller draws another).
local id, now, rk = ARGV[2], ARGV[4], ARGV[6]

if ARGV[3] == '1' then
  local rid = redis.call('HGET', REUSE, rk)
  if rid then
    local key = session_key(rid)
    if redis.call('HGET', key, 'active') == '1' then
      redis.call('HSET', key, 'request_time', now)
      redis.call('ZADD', EXP, now, rid)
      return {1, redis.call('HGETALL', key)}
    end
  end
end

local taken = redis.call('HMGET', KEYS[6], 'user_id', 'open_time')
if taken[1] then
  -- Ids are 120 random bits: an existing hash of this user opened at this very
  -- millisecond is this call's own earlier run (the cluster client sends a script
  -- again when the connection broke after sending). Answer as that run did, instead
  -- of opening a second session.
  if taken[1] == ARGV[5] and taken[2] == now then
    return {3, redis.call('HGETALL', KEYS[6])}
  end
  return {2}
end
redis.call('HSET', KEYS[6], 'id', id, 'user_id', ARGV[5], 'active', '1',
  'open_time', now, 'request_time', now, 'rk', rk, unpack(ARGV, 7))
redis.call('ZADD', KEYS[7], now, id)
redis.call('ZADD', OA, now, id)
redis.call('ZADD', EXP, now, id)
redis.call('HSET', REUSE, rk, id)
return {0}
