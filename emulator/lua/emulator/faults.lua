-- Fault injection for tests of client resilience: per operation (or "*"), an
-- error status (with Klaviyo's error document or a raw body of any type), a
-- delay, a connection reset before or after processing, or a truncated body;
-- for the next `count` matching requests and/or with a probability. Rules are
-- checked in order; the first that fires wins.
local random, type, pairs, ipairs, floor = math.random, type, pairs, ipairs, math.floor

local M = { active = false }

local rules = {}

function M.reset()
  rules = {}
  M.active = false
end

local KNOWN = { operation = true, status = true, delay_ms = true, reset = true, truncate = true,
                retry_after = true, count = true, probability = true, body = true,
                content_type = true }

--- Validates and installs rules (replacing the current ones). Returns true or nil, err.
function M.set(list, ops)
  if type(list) ~= "table" then return nil, "rules must be an array" end
  local out = {}
  for i, r in ipairs(list) do
    if type(r) ~= "table" then return nil, "rule " .. i .. " must be an object" end
    for k in pairs(r) do
      if not KNOWN[k] then return nil, "rule " .. i .. ": unknown field " .. tostring(k) end
    end
    local op = r.operation or "*"
    if type(op) ~= "string" or (op ~= "*" and not ops[op]) then
      return nil, "rule " .. i .. ": unknown operation " .. tostring(op)
    end
    if r.status ~= nil and (type(r.status) ~= "number" or r.status < 100 or r.status > 599) then
      return nil, "rule " .. i .. ": status must be 100-599"
    end
    if r.delay_ms ~= nil and (type(r.delay_ms) ~= "number" or r.delay_ms < 0 or r.delay_ms > 60000) then
      return nil, "rule " .. i .. ": delay_ms must be 0-60000"
    end
    if r.reset ~= nil and r.reset ~= "before" and r.reset ~= "after" then
      return nil, "rule " .. i .. ": reset must be \"before\" or \"after\""
    end
    if r.truncate ~= nil and type(r.truncate) ~= "boolean" then
      return nil, "rule " .. i .. ": truncate must be a boolean"
    end
    if r.retry_after ~= nil and (type(r.retry_after) ~= "number" or r.retry_after < 0) then
      return nil, "rule " .. i .. ": retry_after must be a non-negative number"
    end
    if r.count ~= nil and (type(r.count) ~= "number" or r.count < 1 or r.count ~= floor(r.count)) then
      return nil, "rule " .. i .. ": count must be a positive integer"
    end
    local p = r.probability
    if p ~= nil and (type(p) ~= "number" or p < 0 or p > 1) then
      return nil, "rule " .. i .. ": probability must be between 0 and 1"
    end
    if r.body ~= nil and (type(r.body) ~= "string" or not r.status) then
      return nil, "rule " .. i .. ": body must be a string and needs a status"
    end
    if r.content_type ~= nil and (type(r.content_type) ~= "string" or r.body == nil) then
      return nil, "rule " .. i .. ": content_type must be a string and goes with body"
    end
    if not (r.status or r.delay_ms or r.reset or r.truncate) then
      return nil, "rule " .. i .. ": needs status, delay_ms, reset or truncate"
    end
    out[#out + 1] = {
      operation = op, status = r.status, delay_ms = r.delay_ms, reset = r.reset,
      truncate = r.truncate, retry_after = r.retry_after, remaining = r.count,
      probability = r.probability, fired = 0, body = r.body,
      -- a raw body that is not JSON is an edge page (Cloudflare answers HTML)
      content_type = r.content_type or (r.body and (r.body:match("^%s*[%[{]") and
        "application/vnd.api+json" or "text/html; charset=UTF-8")),
    }
  end
  rules = out
  M.active = #out > 0
  return true
end

--- The rule that fires for this request of `op_id`, or nil. Consumes one of
-- its count. Rules whose count is spent are dropped.
function M.pick(op_id)
  for i, r in ipairs(rules) do
    if r.operation == "*" or r.operation == op_id then
      if not r.probability or random() < r.probability then
        r.fired = r.fired + 1
        if r.remaining then
          r.remaining = r.remaining - 1
          if r.remaining <= 0 then
            table.remove(rules, i)
            M.active = #rules > 0
          end
        end
        return r
      end
    end
  end
  return nil
end

--- Current rules (for GET /__emulator/faults).
function M.list()
  local out = {}
  for i, r in ipairs(rules) do
    out[i] = { operation = r.operation, status = r.status, delay_ms = r.delay_ms, reset = r.reset,
               truncate = r.truncate, retry_after = r.retry_after, count = r.remaining,
               probability = r.probability, fired = r.fired, body = r.body,
               content_type = r.body and r.content_type or nil }
  end
  return out
end

return M
