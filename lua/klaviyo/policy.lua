-- klaviyo.policy: what the client tells the core's send loop about each request (rate limits
-- and whether it may be repeated), and the checks of the options that set them. Pure
-- functions, unit-tested without a network.
--
-- Safe to repeat once the request may have reached Klaviyo: GET, PATCH, DELETE (and PUT);
-- create_event and bulk_create_events, because every event gets a `unique_id` before its first
-- send, the same in every attempt (Klaviyo records an event once per unique_id);
-- create_or_update_profile (an upsert); the subscription and suppression jobs (setting the
-- same consent twice changes nothing); and any call made with `{idempotent = true}`.
-- Everything else is repeated only when Klaviyo cannot have acted on it (429, 503, a
-- connection that failed before sending).
local type, pairs, ipairs, tostring, next = type, pairs, ipairs, tostring, next
local format, floor = string.format, math.floor

local operations = require "klaviyo.operations"
local layout = require "klaviyo.event_layout"

local _M = {}

local SAFE_OPERATIONS = {
  create_event = true, bulk_create_events = true, create_or_update_profile = true,
  bulk_subscribe_profiles = true, bulk_unsubscribe_profiles = true,
  bulk_suppress_profiles = true, bulk_unsuppress_profiles = true,
}
_M.SAFE_OPERATIONS = SAFE_OPERATIONS

local SAFE_METHODS = { GET = true, PUT = true, PATCH = true, DELETE = true }

-- Will every event of this call's body carry a unique_id once sent? (klaviyo.event_layout)
_M.unique_ids = layout.unique_ids

-- May this call be repeated after the request may have reached Klaviyo?
function _M.safe(op_id, method, has_unique_ids, idempotent)
  if idempotent then return true end
  if SAFE_METHODS[method] then return true end
  if layout.STAMP[op_id] then return has_unique_ids == true end
  return SAFE_OPERATIONS[op_id] == true
end

local function count(name, v, lo, hi)
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    return format("%s must be an integer in %d..%d, got %s", name, lo, hi, tostring(v))
  end
end

local function seconds(name, v, hi)
  if type(v) ~= "number" or not (v >= 0 and v <= hi) then
    return format("%s must be a number of seconds in 0..%d, got %s", name, hi, tostring(v))
  end
end

local RETRY_KEYS = { attempts = true, max_time = true, base = true, cap = true }

-- retry = {attempts=, max_time=, base=, cap=}: nil | message. `per_call` allows only
-- attempts and max_time (backoff shape is the client's).
function _M.check_retry(r, per_call)
  if type(r) ~= "table" then return "retry must be a table, got " .. type(r) end
  for k, v in pairs(r) do
    if not RETRY_KEYS[k] or (per_call and (k == "base" or k == "cap")) then
      return "unknown retry option " .. tostring(k)
    end
    local msg
    if k == "attempts" then msg = count("retry.attempts", v, 1, 100)
    elseif k == "max_time" then msg = seconds("retry.max_time", v, 86400)
    else msg = seconds("retry." .. k, v, 3600) end
    if msg then return msg end
  end
end

-- Klaviyo's rate-limit windows and their lengths in seconds, in the order every store walks
-- them; a limit is a whole number of sends per window, 0 or absent for no such window.
local WINDOWS = { "burst", "steady", "daily" }
local SECONDS = { burst = 1, steady = 60, daily = 86400 }
_M.WINDOWS, _M.WINDOW_SECONDS = WINDOWS, SECONDS
local LIMIT_MAX = 1000000

-- One operation's limits {burst=, steady=, daily=}: nil, or a message saying what is wrong.
-- The one check of such a table: klaviyo.new's options and both nginx stores call it.
function _M.check_windows(l)
  if type(l) ~= "table" then
    return "expected a table of limits {burst=, steady=, daily=}, got " .. type(l)
  end
  for k, v in pairs(l) do
    if not SECONDS[k] then
      return format("unknown limit %s (burst, steady, daily)", tostring(k))
    end
    if type(v) ~= "number" or v < 0 or v ~= floor(v) then
      return format("limit %s must be a whole number >= 0, got %s", k, tostring(v))
    end
    if v > LIMIT_MAX then return format("limit %s must be at most %d, got %s", k, LIMIT_MAX, tostring(v)) end
  end
end

-- The share of `limit` a store allows with `safety` (0 < safety <= 1), as src/limiter.c
-- computes it, so every store allows the same counts: 0 stays 0 (no window), else at least 1.
function _M.share(limit, safety)
  if limit == 0 then return 0 end
  local n = floor(limit * safety + 1e-9)   -- a whole product stays whole despite binary rounding
  return n < 1 and 1 or n
end

-- limits = {operation_id = {burst=, steady=, daily=}}: the table of effective limits per
-- overridden operation (a window left out keeps the operation table's), or nil, message.
function _M.check_limits(t)
  if type(t) ~= "table" then return nil, "limits must be a table, got " .. type(t) end
  local out = {}
  for op_id, l in pairs(t) do
    local op = operations[op_id]
    if op == nil then return nil, "limits: unknown operation " .. tostring(op_id) end
    local msg = _M.check_windows(l)
    if msg then return nil, format("limits.%s: %s", op_id, msg) end
    local eff = {}
    for _, w in ipairs(WINDOWS) do eff[w] = op.limits and op.limits[w] or nil end
    for k, v in pairs(l) do eff[k] = v ~= 0 and v or nil end
    out[op_id] = eff
  end
  return out
end

-- The limits sent with a request: the override, else the operation table's; nil when none.
function _M.limits_of(overrides, op_id)
  local l = overrides and overrides[op_id]
  if l == nil then
    local op = operations[op_id]
    l = op and op.limits
  end
  if l == nil or next(l) == nil then return nil end
  return l
end

return _M
