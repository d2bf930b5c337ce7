-- klaviyo.stats: per-operation counters behind client:stats(). Each finished call adds what
-- the send loop reported (attempts, retries, 429s received, seconds waited for the rate
-- limiter and between attempts) and, when it failed, its status (or "transport:<code>" /
-- "refused:<code>" when there was no HTTP answer).
local pairs, tostring = pairs, tostring

local _M = {}

function _M.new() return {} end

-- The counters of an operation's first call.
local function new_entry(st, op_id)
  local e = { requests = 0, attempts = 0, retries = 0, throttled = 0, waited = 0, backoff = 0,
              errors = {} }
  st[op_id] = e
  return e
end

-- info: {attempts, retries, throttled, waited, backoff} (c:info() or a batch entry's .info),
-- or {plain = true, attempts = 1, ...} for a request sent once with no wait; err: the final
-- error or nil.
function _M.add(st, op_id, info, err)
  local e = st[op_id] or new_entry(st, op_id)
  e.requests = e.requests + 1
  if info and info.plain then   -- sent once, nothing waited (the common case): one attempt
    e.attempts = e.attempts + 1
  elseif info then
    e.attempts = e.attempts + (info.attempts or 0)
    e.retries = e.retries + (info.retries or 0)
    e.throttled = e.throttled + (info.throttled or 0)
    e.waited = e.waited + (info.waited or 0)
    e.backoff = e.backoff + (info.backoff or 0)
  end
  if err then
    local key = err.status or ((err.kind or "error") .. ":" .. tostring(err.code))
    e.errors[key] = (e.errors[key] or 0) + 1
  end
end

-- A deep copy, so callers can keep or change it.
function _M.snapshot(st)
  local out = {}
  for op, e in pairs(st) do
    local c = {}
    for k, v in pairs(e) do c[k] = v end
    c.errors = {}
    for k, v in pairs(e.errors) do c.errors[k] = v end
    out[op] = c
  end
  return out
end

return _M
