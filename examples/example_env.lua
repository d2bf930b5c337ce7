-- Shared by the examples (not an example itself): connects to Klaviyo or the emulator.
--
-- KLAVIYO_BASE_URL (or KLAVIYO_EMULATOR_URL) and KLAVIYO_API_KEY choose where to go. Without
-- a key, a loopback base URL is taken to be the emulator and a fresh account is asked of its
-- admin API, so `lua examples/<name>.lua` works against `make emulator` with no setup.
local klaviyo = require "klaviyo"

local M = { klaviyo = klaviyo }

local base_url = (os.getenv("KLAVIYO_BASE_URL") or os.getenv("KLAVIYO_EMULATOR_URL")
  or "https://a.klaviyo.com"):gsub("/+$", "")
M.base_url = base_url
M.is_emulator = base_url:match("^http://127%.") ~= nil or base_url:match("^http://localhost") ~= nil
-- The admin API needs LuaSocket; without it an emulator is used like Klaviyo (no flow runs).
M.has_admin = M.is_emulator and (pcall(require, "socket.http"))

--- Prints one line.
function M.say(fmt, ...) io.write(fmt:format(...), "\n") end

--- value, or print "FAILED what: err" and exit 1.
function M.check(what, value, err, ...)
  if value == nil or value == false then
    M.say("FAILED %s: %s", what, tostring(err))
    os.exit(1)
  end
  return value, err, ...
end

-- The emulator's admin API (loopback only, no Klaviyo auth).
function M.admin(method, path, body)
  if not M.has_admin then
    return nil, M.is_emulator and "LuaSocket (socket.http) is not installed" or "not an emulator"
  end
  local http, ltn12 = require "socket.http", require "ltn12"
  local cjson = require("cjson").new()
  local chunks, headers, source = {}, { ["x-emulator-account"] = M.account_id }, nil
  if body then
    body = cjson.encode(body)
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#body)
    source = ltn12.source.string(body)
  end
  local _, status = http.request { url = base_url .. "/__emulator/" .. path, method = method,
    headers = headers, source = source, sink = ltn12.sink.table(chunks) }
  local raw = table.concat(chunks)
  if status ~= 200 and status ~= 201 then
    return nil, ("admin %s %s: %s %s"):format(method, path, tostring(status), raw)
  end
  return raw ~= "" and cjson.decode(raw) or true
end

--- The flow runs the emulator recorded for this account (nil when not on the emulator).
function M.flow_runs()
  if not M.has_admin then return nil end
  local doc = M.check("admin GET flow-runs", M.admin("GET", "flow-runs"))
  return doc.flow_runs
end

--- A client with a private key (and the module objects on it), after `connect`.
function M.connect(opts)
  local api_key = os.getenv("KLAVIYO_API_KEY")
  if api_key == "" then api_key = nil end
  if not api_key then
    if not M.has_admin then
      M.say("Set KLAVIYO_API_KEY (and KLAVIYO_BASE_URL to use the emulator).")
      os.exit(1)
    end
    local acct = M.check("admin POST accounts", M.admin("POST", "accounts", {}))
    api_key, M.account_id, M.public_key = acct.private_key, acct.account_id, acct.public_key
    -- Examples send bursts (thousands of rows); the emulator's limits match Klaviyo's, and
    -- the client does not pace requests by itself yet, so lift them on this fresh account.
    if opts and opts.no_limits then M.check("admin POST limits", M.admin("POST", "limits",
      { ["*"] = "off" })) end
    M.say("emulator account %s at %s", M.account_id, base_url)
  end
  M.public_key = M.public_key or os.getenv("KLAVIYO_PUBLIC_KEY")
  local client = M.check("klaviyo.new", klaviyo.new { api_key = api_key, base_url = base_url })
  M.client = client
  -- The idiomatic modules: the client's fields once wired, else bound by hand.
  local names = { events = "events", profiles = "profiles", consent = "subscriptions",
    lists = "lists", segments = "segments", flows = "flows", metrics = "metrics" }
  for field, mod in pairs(names) do
    local ok, v = pcall(function() return client[field] end)
    M[field] = (ok and type(v) == "table") and v or require("klaviyo." .. mod).new(client)
  end
  return client
end

return M
