-- Expiry instants, for the scripts that close expired sessions (close, close_user,
-- expire); placed between common.lua and their own file.

-- Milliseconds as text for a field, score or reply: an integer, never "1.8e+12".
local function ms(x)
  return string.format('%.0f', x)
end

-- When an active session expires, and why: at request_time + idle, or at
-- open_time + life when that comes first or at the same millisecond (life 0: no
-- absolute lifetime). It is expired from that instant on (now >= the instant).
-- Returns the instant (a number) and 'idle' or 'absolute'.
local function expiry(request_time, open_time, idle, life)
  local at = request_time + idle
  if life > 0 then
    local limit = open_time + life
    if limit <= at then
      return limit, 'absolute'
    end
  end
  return at, 'idle'
end

