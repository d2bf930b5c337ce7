-- Shared by spec/client/*_spec.lua: a fresh emulator account per test and short ways to read
-- what the emulator received. Not a spec itself (busted runs *_spec.lua only).
local emu = require "helpers.emulator"
local klaviyo = require "klaviyo"

local M = { emu = emu, klaviyo = klaviyo }

-- A new account (all scopes unless opts.scopes) and a client for it. `auth` picks the key:
-- "private" (default), "oauth" or "public"; extra options go to klaviyo.new.
function M.client(auth, opts, acct)
  acct = acct or emu.account(opts and opts.scopes and { scopes = opts.scopes } or nil)
  local o = { base_url = emu.url }
  if auth == "oauth" then
    o.access_token = acct.access_token
  elseif auth == "public" then
    o.public_key = acct.public_key
  else
    o.api_key = acct.private_key
  end
  for k, v in pairs(opts or {}) do if k ~= "scopes" then o[k] = v end end
  local c = assert(klaviyo.new(o))
  return c, acct
end

-- The newest `n` recorded requests (all accounts), oldest first.
function M.recent(n)
  local status, _, doc, raw = emu.request { path = "/__emulator/requests", query = { limit = n } }
  assert(status == 200, "GET /__emulator/requests: " .. tostring(status) .. " " .. tostring(raw))
  return doc.requests
end

-- The newest recorded request, or nil.
function M.last() return M.recent(1)[1] end

-- A marker of how much the emulator has received: the newest record's sequence number.
-- Equal before and after an action means nothing reached the emulator.
-- Only this process's traffic counts (requests of the accounts it created, and requests that
-- named no account): other processes may share the emulator.
local function ours(r) return r.account == nil or emu.mine[r.account] end

function M.mark()
  local top = 0
  for _, r in ipairs(M.recent(200)) do
    if r.seq and r.seq > top and ours(r) then top = r.seq end
  end
  return top
end

-- The requests recorded after `mark`, oldest first (records without a sequence number, e.g.
-- a connection the emulator dropped on purpose, count when they come after the mark); only
-- those of operation `op` when given.
function M.since(mark, op)
  local recs = M.recent(200)
  local start = 1
  for i, r in ipairs(recs) do
    if r.seq and r.seq <= mark then start = i + 1 end
  end
  local out = {}
  for i = start, #recs do
    if ours(recs[i]) and (op == nil or recs[i].operation == op) then out[#out + 1] = recs[i] end
  end
  return out
end

-- Whether the emulator's fault rules can answer a raw `body` (probed once on an operation it
-- does not emulate, answering 501, so the probe never reaches the contract check).
local fault_body
function M.fault_body_supported()
  if fault_body == nil then
    local probe = "<html>probe</html>"
    emu.faults { { operation = "get_web_feeds", status = 501, body = probe, count = 1 } }
    local c = M.client()
    c:call("get_web_feeds", {})
    c:close()
    emu.faults(nil)
    fault_body = M.last().response_body == probe
  end
  return fault_body
end

-- Percent-decodes a query component.
function M.unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Raw query string -> list of {name, value} (both decoded), in order.
function M.query_pairs(raw)
  local out = {}
  for part in (raw or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    out[#out + 1] = { M.unescape(k), M.unescape(v) }
  end
  return out
end

-- The decoded value of query parameter `name` in a raw query string.
function M.query_value(raw, name)
  for _, p in ipairs(M.query_pairs(raw)) do
    if p[1] == name then return p[2] end
  end
  return nil
end

-- A header of a recorded request, by case-insensitive name.
function M.header(rec, name)
  name = name:lower()
  for k, v in pairs(rec.headers or rec.request_headers or {}) do
    if k:lower() == name then return v end
  end
  return nil
end

-- A create_event body for `email` and metric `metric`.
function M.event_body(email, metric, extra)
  local attrs = {
    metric = { data = { type = "metric", attributes = { name = metric or "Placed Order" } } },
    profile = { data = { type = "profile", attributes = { email = email } } },
    properties = { source = "spec" },
  }
  for k, v in pairs(extra or {}) do attrs[k] = v end
  return { data = { type = "event", attributes = attrs } }
end

function M.profile_body(attrs)
  return { data = { type = "profile", attributes = attrs } }
end

return M
