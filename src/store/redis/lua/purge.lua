-- One batch of retention over a bucket. ARGV[2] cutoff, ARGV[3] limit. Deletes up to
-- limit closed sessions whose close_time < cutoff, with every index entry, and returns
-- how many it deleted.
local ids = redis.call('ZRANGE', RET, '-inf', '(' .. ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local deleted = 0
for _, id in ipairs(ids) do
  local key = session_key(id)
  local f = redis.call('HMGET', key, 'active', 'user_id', 'rk')
  if f[1] == '0' then
    remove_session(key, id, f[2], f[3])
    deleted = deleted + 1
  else
    -- The hash is gone (or active again, which these scripts never do): stale entry.
    redis.call('ZREM', RET, id)
  end
end
return deleted
