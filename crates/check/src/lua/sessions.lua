#!lua flags=no-writes
-- For each session id: the hash and its membership of every index it could be in.
-- KEYS: oa, oc, exp, ret of the bucket. ARGV[1] the bucket base, ARGV[2..] ids.
-- Row: {type} when not a hash, else {type, id, active, user_id, open_time,
-- request_time, close_time, score in ua, uc, oa, oc, exp, ret}.
local base = ARGV[1]
local function score(key, id)
  local r = redis.pcall('ZSCORE', key, id)
  if type(r) == 'table' then return false end
  return r
end
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = base .. 's:' .. id
  local t = redis.call('TYPE', key).ok
  if t ~= 'hash' then
    out[#out + 1] = {t}
  else
    local f = redis.call('HMGET', key, 'id', 'active', 'user_id', 'open_time',
      'request_time', 'close_time')
    local ua, uc = false, false
    if f[3] then
      ua = score(base .. 'ua:' .. f[3], id)
      uc = score(base .. 'uc:' .. f[3], id)
    end
    out[#out + 1] = {t, f[1], f[2], f[3], f[4], f[5], f[6], ua, uc,
      score(KEYS[1], id), score(KEYS[2], id), score(KEYS[3], id), score(KEYS[4], id)}
  end
end
return out
