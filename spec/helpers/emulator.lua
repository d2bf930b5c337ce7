-- One emulator for the whole busted run, shared by every spec.
-- On first require: with KLAVIYO_EMULATOR_URL set, talk to that emulator;
-- otherwise start one on a free loopback port and stop it when busted ends
-- (busted publishes 'exit' after the last file; the emulator also watches this
-- process and quits if it dies, so a crashed run leaves nothing behind).
-- `.busted` should load this file as a helper (`helper = "helpers.emulator"`)
-- so it is required once, before busted insulates each spec file.
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson.safe"
local P = require "helpers.process"

local M = {}
M.REVISION = "2026-07-15"

local ROOT = P.root
M.root = ROOT
local LAUNCHER = ROOT .. "/emulator/klaviyo-emulator"

local function shell_ok(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1
  return a == true and b == "exit" and c == 0
end

local free_port, my_pid = P.free_port, P.my_pid
M.free_port, M.my_pid = free_port, my_pid

--- Starts a server on `nports` distinct free loopback ports: `command(ports)` gives the
-- shell command for the array of ports; it is tried up to 5 times (a port may be taken in
-- between). Returns its output and the ports of the first try that exits 0; raises "could
-- not start the <what>: <last output>" when none does.
function M.launch(what, nports, command)
  local last
  for _ = 1, 5 do
    local ports, seen, distinct = {}, {}, true
    for i = 1, nports do
      ports[i] = free_port()
      distinct = distinct and not seen[ports[i]]
      seen[ports[i]] = true
    end
    if distinct then
      local f = io.popen(command(ports) .. " 2>&1; echo \"exit=$?\"")
      local out = f:read("*a")
      f:close()
      if out:match("exit=0%s*$") then return out, ports end
      last = out
    end
  end
  error("could not start the " .. what .. ": " .. tostring(last), 2)
end

local started_port
local function stop()
  if started_port then
    shell_ok(LAUNCHER .. " stop --port " .. started_port .. " >/dev/null 2>&1")
    started_port = nil
  end
end
M.stop = stop

local function start()
  local pid = my_pid()
  local out, ports = M.launch("emulator", 1, function(p)
    return LAUNCHER .. " start --port " .. p[1] .. " --watch-pid " .. pid
  end)
  local url = out:match("(http://127%.0%.0%.1:%d+)")
  if not url then
    shell_ok(LAUNCHER .. " stop --port " .. ports[1] .. " >/dev/null 2>&1")
    error("could not start the emulator: no URL in " .. out)
  end
  started_port = ports[1]
  return url
end

do
  local env = os.getenv("KLAVIYO_EMULATOR_URL")
  if env and env ~= "" then
    M.url = env:gsub("/+$", "")
  else
    M.url = start()
    local ok, busted = pcall(require, "busted")
    if ok and type(busted) == "table" and busted.subscribe then
      busted.subscribe({ "exit" }, function() stop(); return nil, true end)
    end
  end
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.escape = escape

--- name -> value table (value may be an array for repeated names) to a query string.
function M.query_string(q)
  if type(q) == "string" then return q end
  local keys = {}
  for k in pairs(q) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = escape(k) .. "=" .. escape(x) end
    else
      parts[#parts + 1] = escape(k) .. "=" .. escape(v)
    end
  end
  return table.concat(parts, "&")
end

--- A raw HTTP request. opts: method, path (or url), query (table or string),
-- headers, body (string, or a table encoded as JSON). No headers are added
-- except Content-Type for a table body. Returns status, headers (lowercase
-- names), decoded JSON body (or nil), raw body.
function M.request(opts)
  local url = opts.url or (M.url .. opts.path)
  if opts.query then
    local qs = M.query_string(opts.query)
    if qs ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. qs end
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local body = opts.body
  if type(body) == "table" then
    body = assert(cjson.encode(body))
    headers["content-type"] = headers["content-type"] or "application/vnd.api+json"
  end
  if body then headers["content-length"] = tostring(#body) end
  local chunks = {}
  local _, status, rheaders = http.request {
    url = url, method = opts.method or "GET", headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  local raw = table.concat(chunks)
  if type(status) ~= "number" then return nil, status, nil, raw end
  local lower = {}
  for k, v in pairs(rheaders or {}) do lower[k:lower()] = v end
  return status, lower, cjson.decode(raw), raw
end

--- A Klaviyo API call as account `acct` (from M.account): private key auth,
-- the revision header and JSON:API content types, overridable through opts
-- (headers with value false are dropped).
function M.api(acct, method, path, opts)
  opts = opts or {}
  local headers = {
    authorization = "Klaviyo-API-Key " .. acct.private_key,
    revision = M.REVISION,
    accept = "application/vnd.api+json",
  }
  if opts.body ~= nil then headers["content-type"] = "application/vnd.api+json" end
  for k, v in pairs(opts.headers or {}) do
    if v == false then headers[k:lower()] = nil else headers[k:lower()] = v end
  end
  return M.request { method = method, path = path, query = opts.query, headers = headers,
                     body = opts.body }
end

--- An admin call under /__emulator/. Returns status, decoded body.
function M.admin(method, path, body, headers)
  local status, _, decoded, raw = M.request {
    method = method, path = "/__emulator/" .. path:gsub("^/+", ""), body = body,
    headers = headers,
  }
  return status, decoded, raw
end

local function must(status, decoded, raw, what)
  if status ~= 200 and status ~= 201 and status ~= 204 then
    error(what .. " failed: " .. tostring(status) .. " " .. tostring(raw), 3)
  end
  return decoded
end

function M.reset() return must(M.admin("POST", "reset"), nil, "reset") end

--- New account: {account_id, private_key, public_key, access_token,
-- refresh_token, client_id, client_secret}. opts.scopes limits its keys.
-- M.mine: the ids of the accounts this process created, so a spec can tell its own traffic
-- from another process's on the shared emulator.
M.mine = {}
function M.account(opts)
  local s, d, raw = M.admin("POST", "accounts", opts and opts.scopes and { scopes = opts.scopes } or {})
  local acct = must(s, d, raw, "account")
  M.mine[acct.account_id] = true
  return acct
end

local function acct_header(acct)
  return acct and { ["x-emulator-account"] = acct.account_id or acct } or nil
end

--- The requests the emulator recorded for `acct` (oldest first), only those of operation `op`
-- when given.
function M.requests(acct, op)
  local s, d, raw = M.admin("GET", "requests", nil, acct_header(acct))
  local all = must(s, d, raw, "requests").requests
  if op == nil then return all end
  local out = {}
  for _, r in ipairs(all) do
    if r.operation == op then out[#out + 1] = r end
  end
  return out
end

function M.flow_runs(acct)
  local s, d, raw = M.admin("GET", "flow-runs", nil, acct_header(acct))
  return must(s, d, raw, "flow-runs").flow_runs
end

function M.stats(acct)
  local s, d, raw = M.admin("GET", "stats", nil, acct_header(acct))
  return must(s, d, raw, "stats")
end

--- Installs fault rules (see emulator/README.md); nil clears them.
function M.faults(rules)
  if rules == nil then return must(M.admin("DELETE", "faults"), nil, "faults") end
  local s, d, raw = M.admin("POST", "faults", { rules = rules })
  return must(s, d, raw, "faults")
end

--- Rate limit overrides: {create_event = {burst=, steady=, daily=} | "off", ["*"] = "off"}.
function M.limits(t, acct)
  local s, d, raw = M.admin("POST", "limits", t, acct_header(acct))
  return must(s, d, raw, "limits")
end

--- Defines a segment: {account=, id?, name, profile_ids = {...}}.
function M.segment(t)
  local s, d, raw = M.admin("POST", "segments", t)
  return must(s, d, raw, "segments")
end

--- Sleep without busy waiting (tests waiting for a job).
M.sleep = socket.sleep

--- The requests of `acct` for operation `op` once there are at least `n` of them, waiting up
-- to `seconds` (default 10) for the emulator to record them: a request the emulator holds
-- back (a fault's delay) is recorded when its delay is over, which a loaded machine makes
-- later. A test that left such a request behind waits for it, so its record never lands in
-- a later test's window. Returns the list (shorter than n if time ran out).
function M.wait_requests(acct, op, n, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  while true do
    local out = M.requests(acct, op)
    if #out >= n or socket.gettime() > deadline then return out end
    socket.sleep(0.05)
  end
end

-- When busted loads this file with dofile (a `.lua` helper path) rather than
-- require, register it so spec files' `require "helpers.emulator"` share it.
package.loaded["helpers.emulator"] = package.loaded["helpers.emulator"] or M
return M
