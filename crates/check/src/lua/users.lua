#!lua flags=no-writes
-- Every member of many small user indexes of one bucket, and the session behind each:
-- one call instead of a ZSCAN and a look per index, as most users have few sessions.
-- KEYS[1] the bucket's oa (names the slot). ARGV[1] the bucket base, ARGV[2] the most
-- members read from one index, ARGV[3..] index keys.
-- Row per index: {'big'} when it has more members (the caller walks it with ZSCAN),
-- else {'ok', then id, type, active, user_id for each member}.
local limit = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local k = ARGV[i]
  local row = {'big'}
  if redis.call('ZCARD', k) <= limit then
    row[1] = 'ok'
    for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
      local key = ARGV[1] .. 's:' .. id
      local t = redis.call('TYPE', key).ok
      local f = {false, false}
      if t == 'hash' then f = redis.call('HMGET', key, 'active', 'user_id') end
      row[#row + 1] = id
      row[#row + 1] = t
      row[#row + 1] = f[1]
      row[#row + 1] = f[2]
    end
  end
  out[#out + 1] = row
end
return out
