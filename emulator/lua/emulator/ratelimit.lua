-- Klaviyo's rate limits: per account and operation, fixed windows (burst 1 s,
-- steady 60 s, daily 86400 s where the spec gives one) whose phase is random
-- per account, so a client cannot know where a window starts. A request over
-- any window is refused (and not counted); the caller answers 429.
local floor, random, pairs = math.floor, math.random, pairs

local M = {}

local WINDOWS = { { "burst", 1, "burst_w" }, { "steady", 60, "steady_w" }, { "daily", 86400, "daily_w" } }

-- Overrides set through the admin API: global (all accounts) and per account.
-- Value per operation id (or "*"): false = off, or {burst=, steady=, daily=}.
local global_overrides = {}

function M.reset() global_overrides = {} end

local function valid_limits(t)
  if t == "off" or t == false then return false end
  if type(t) ~= "table" then return nil end
  local out = {}
  for _, w in pairs(WINDOWS) do
    local v = t[w[1]]
    if v ~= nil then
      if type(v) ~= "number" or v < 0 or v ~= floor(v) then return nil end
      out[w[1]] = v
    end
  end
  return out
end

--- Applies overrides `{op_id = {burst=,steady=,daily=} | "off" | "default"}`
-- (op_id may be "*") globally or for one account. Returns true or nil, err.
function M.override(spec, acct, ops)
  if type(spec) ~= "table" then return nil, "limits must be an object" end
  local target
  if acct then
    acct.limit_overrides = acct.limit_overrides or {}
    target = acct.limit_overrides
  else
    target = global_overrides
  end
  local staged = {}
  for op_id, v in pairs(spec) do
    if op_id ~= "account" then
      if op_id ~= "*" and not ops[op_id] then return nil, "unknown operation " .. tostring(op_id) end
      if v == "default" then
        staged[op_id] = "default"
      else
        local lim = valid_limits(v)
        if lim == nil then
          return nil, "limits for " .. op_id ..
            " must be \"off\", \"default\" or {burst, steady, daily} non-negative integers"
        end
        staged[op_id] = lim
      end
    end
  end
  for op_id, v in pairs(staged) do
    if v == "default" then target[op_id] = nil else target[op_id] = v end
  end
  if acct then acct.rl = {} end
  return true
end

-- The limits in force for (acct, op): false when switched off.
local function limits_for(acct, op_id, op)
  local o = acct.limit_overrides
  if o then
    local v = o[op_id]
    if v == nil then v = o["*"] end
    if v ~= nil then return v end
  end
  local v = global_overrides[op_id]
  if v == nil then v = global_overrides["*"] end
  if v ~= nil then return v end
  return op.limits or false
end
M.limits_for = limits_for

local function phases(acct)
  local p = acct.rl_phase
  if not p then
    p = { burst = random(), steady = random() * 60, daily = random() * 86400 }
    acct.rl_phase = p
  end
  return p
end

--- Counts one request. Returns ok, retry_after (seconds, when refused),
-- limit, remaining, reset (steady window: for the RateLimit-* headers; nil when
-- the operation has no limits in force).
function M.check(acct, op_id, op, now)
  local lim = limits_for(acct, op_id, op)
  if not lim then return true end
  local rl = acct.rl
  if not rl then rl = {}; acct.rl = rl end
  local c = rl[op_id]
  if not c then c = {}; rl[op_id] = c end
  local ph = phases(acct)
  local retry
  -- First pass: which windows are full (nothing is counted if any is).
  for i = 1, 3 do
    local w = WINDOWS[i]
    local name, len, wkey = w[1], w[2], w[3]
    local max = lim[name]
    if max then
      local idx = floor((now - ph[name]) / len)
      if c[wkey] ~= idx then c[wkey] = idx; c[name] = 0 end
      if c[name] >= max then
        local ends = ph[name] + (idx + 1) * len
        local wait = floor(ends - now)
        if not retry or wait > retry then retry = wait end
      end
    end
  end
  if retry then return false, retry end
  for i = 1, 3 do
    local name = WINDOWS[i][1]
    if lim[name] then c[name] = c[name] + 1 end
  end
  local steady = lim.steady
  if steady then
    local ends = ph.steady + (c.steady_w + 1) * 60
    local reset = ends - now
    reset = reset == floor(reset) and reset or floor(reset) + 1
    return true, nil, steady, steady - c.steady, reset
  end
  local burst = lim.burst
  if burst then
    return true, nil, burst, burst - c.burst, 1
  end
  return true
end

return M
