#!lua flags=no-writes
-- For each entry of the reuse hash: still there, and the session it points at.
-- KEYS[1] the reuse hash. ARGV[1] the bucket base, ARGV[2..] pairs reuse key, id.
-- Row: {1 when the entry still points at id else 0, type, active, the session's rk}.
local out = {}
for i = 2, #ARGV, 2 do
  local rk, id = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. 's:' .. id
  local present = 0
  if redis.call('HGET', KEYS[1], rk) == id then present = 1 end
  local t = redis.call('TYPE', key).ok
  local f = {false, false}
  if t == 'hash' then f = redis.call('HMGET', key, 'active', 'rk') end
  out[#out + 1] = {present, t, f[1], f[2]}
end
return out
