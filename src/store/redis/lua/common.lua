#!lua
-- Shared head of every session script (prepended to each one at compile time).
-- The shebang (Redis 7+) makes Redis refuse, on a cluster, any key outside the slot
-- of the declared keys, and refuse the script on a read-only replica or when out of
-- memory before it runs, so a script never half-applies for those reasons.
--
-- Calling convention, the same for every script:
--   KEYS[1] oa     active sessions of the bucket by open_time
--   KEYS[2] oc     closed sessions of the bucket by open_time
--   KEYS[3] exp    active sessions by request_time (expiry sweep)
--   KEYS[4] ret    closed sessions by close_time (retention)
--   KEYS[5] reuse  reuse key -> id of the active session open reuses
--   KEYS[6..]      per-script keys (the session hash, the user index)
--   ARGV[1]        the bucket base "P:{NN}:"
-- Keys a script can only learn from data (the hash of an id found in an index, the
-- user indexes named after a hash's user_id) are built from ARGV[1]. They carry the
-- same {NN} hash tag as KEYS, so they are in the same slot: safe on Redis Cluster.
--
-- A session hash holds: id, user_id, user_name, active ("1"/"0"), open_time,
-- request_time, close_time, address, client, user, data, rk. An absent field is null.
--
-- Expiry is judged by every script at the `now` the service passes, by the same rule
-- as the service's lifecycle module. Scripts that only need to know whether a
-- session is still live get the two cutoffs `now - idle` and `now - lifetime` (''
-- for none; live() below). Scripts that close expired sessions (close, close_user,
-- expire) get the idle timeout and the absolute lifetime instead, to compute the
-- instant each one expired: `expiry.lua` comes between this head and their own file.
-- Every helper here is a closure made on every call of every script, so the head
-- holds only what the hot paths need.

local OA, OC, EXP, RET, REUSE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local BASE = ARGV[1]

local function session_key(id)
  return BASE .. 's:' .. id
end

-- The cutoffs of live() from two script arguments: `now - idle`, and `now - lifetime`
-- or '' (no absolute lifetime, returned as false).
local function cutoffs(idle_arg, life_arg)
  return idle_arg + 0, life_arg ~= '' and life_arg + 0
end

-- Whether an active session is still live: last touched after idle_cut, and opened
-- after life_cut (false: no absolute lifetime). The same as expiry() > now.
local function live(request_time, open_time, idle_cut, life_cut)
  return request_time + 0 > idle_cut and (not life_cut or open_time + 0 > life_cut)
end

-- Drops the reuse entry of rk when it still points at id.
local function release_reuse(rk, id)
  if rk and redis.call('HGET', REUSE, rk) == id then
    redis.call('HDEL', REUSE, rk)
  end
end

-- Closes the active session id whose hash is at key; uid, open_time and rk come from
-- the hash. Same effect as close_session: user and data cleared, close_time and
-- request_time set to `now` (the instant the session ended, as text).
local function close_active(key, id, uid, open_time, rk, now)
  redis.call('HSET', key, 'active', '0', 'close_time', now, 'request_time', now)
  redis.call('HDEL', key, 'user', 'data')
  redis.call('ZREM', BASE .. 'ua:' .. uid, id)
  redis.call('ZADD', BASE .. 'uc:' .. uid, open_time, id)
  redis.call('ZREM', OA, id)
  redis.call('ZADD', OC, open_time, id)
  redis.call('ZREM', EXP, id)
  redis.call('ZADD', RET, now, id)
  release_reuse(rk, id)
end

-- Removes the session hash and every index entry of it. uid may be false (a hash
-- without user_id cannot come from these scripts, but then there is no user index).
local function remove_session(key, id, uid, rk)
  redis.call('DEL', key)
  if uid then
    redis.call('ZREM', BASE .. 'ua:' .. uid, id)
    redis.call('ZREM', BASE .. 'uc:' .. uid, id)
  end
  redis.call('ZREM', OA, id)
  redis.call('ZREM', OC, id)
  redis.call('ZREM', EXP, id)
  redis.call('ZREM', RET, id)
  release_reuse(rk, id)
end

-- Sets (or, without a value, removes) one JSON field of a live session and its
-- request_time; idle_cut and life_cut as for live(). Returns false when the session
-- is gone, 0 when it is closed or has expired (left for the sweep to close at the
-- instant it expired), else the session as a flat HGETALL array.
local function set_json_field(key, id, field, now, idle_cut, life_cut, value)
  local f = redis.call('HMGET', key, 'active', 'rk', 'request_time', 'open_time')
  if not f[1] then
    return false
  end
  if f[1] ~= '1' or not live(f[3], f[4], idle_cut, life_cut) then
    return 0
  end
  if value then
    redis.call('HSET', key, field, value, 'request_time', now)
  else
    redis.call('HDEL', key, field)
    redis.call('HSET', key, 'request_time', now)
  end
  redis.call('ZADD', EXP, now, id)
  -- Like the embedded store: an active session that is touched takes the reuse slot
  -- back when nobody holds it.
  if f[2] then
    redis.call('HSETNX', REUSE, f[2], id)
  end
  return redis.call('HGETALL', key)
end

