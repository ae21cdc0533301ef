#!lua flags=no-writes
-- For each member of a sorted-set index: still there, and the session behind it.
-- KEYS[1] the index. ARGV[1] the bucket base, ARGV[2..] ids.
-- Row: {1 when still a member else 0, type of the session key, active, user_id}.
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. 's:' .. id
  local present = 0
  if redis.call('ZSCORE', KEYS[1], id) then present = 1 end
  local t = redis.call('TYPE', key).ok
  local f = {false, false}
  if t == 'hash' then f = redis.call('HMGET', key, 'active', 'user_id') end
  out[#out + 1] = {present, t, f[1], f[2]}
end
return out
