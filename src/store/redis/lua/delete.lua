-- delete_session. KEYS[6] the session hash. ARGV[2] id.
-- Returns false when the session is gone, else what was deleted as a flat HGETALL array.
local key, id = KEYS[6], ARGV[2]
local all = redis.call('HGETALL', key)
if #all == 0 then
  return false
end
local uid, rk = false, false
for i = 1, #all, 2 do
  if all[i] == 'user_id' then
    uid = all[i + 1]
  elseif all[i] == 'rk' then
    rk = all[i + 1]
  end
end
remove_session(key, id, uid, rk)
return all
