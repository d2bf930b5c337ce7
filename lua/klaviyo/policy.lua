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
local type, pairs, tostring, next = type, pairs, tostring, next
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

local WINDOWS = { burst = true, steady = true, daily = true }

-- limits = {operation_id = {burst=, steady=, daily=}}: the table of effective limits per
-- overridden operation (a window left out keeps the operation table's), or nil, message.
function _M.check_limits(t)
  if type(t) ~= "table" then return nil, "limits must be a table, got " .. type(t) end
  local out = {}
  for op_id, l in pairs(t) do
    local op = operations[op_id]
    if op == nil then return nil, "limits: unknown operation " .. tostring(op_id) end
    if type(l) ~= "table" then return nil, format("limits.%s must be a table", op_id) end
    local eff = {}
    for w in pairs(WINDOWS) do eff[w] = op.limits and op.limits[w] or nil end
    for k, v in pairs(l) do
      if not WINDOWS[k] then return nil, format("limits.%s: unknown window %s", op_id, tostring(k)) end
      local msg = count(format("limits.%s.%s", op_id, k), v, 0, 1000000)
      if msg then return nil, msg end
      eff[k] = v ~= 0 and v or nil
    end
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
