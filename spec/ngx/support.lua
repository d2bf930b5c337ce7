-- Shared by spec/ngx/*_spec.lua: starts the nginx test bed (spec/ngx/testbed) on free ports
-- in front of the run's emulator, and talks to its app locations. Not a spec itself.
--   local T = require "ngx.support"
--   setup(T.start); teardown(T.stop)
--   local out = T.call(T.opts(acct), {{"get_profiles", {}}})   -- runs inside nginx
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require("cjson.safe").new()
local emu = require "helpers.emulator"
local S = require "client.support"

local M = { emu = emu, S = S, cjson = cjson }

local TESTBED = emu.root .. "/spec/ngx/testbed"

-- Starts the test bed (opts.workers) and fills M.url, M.tls_url; raises when it cannot.
function M.start(opts)
  opts = opts or {}
  local _, ports = emu.launch("nginx test bed", 2, function(p)
    return string.format("%s start --port %d --tls-port %d --emulator %s --workers %d --watch-pid %s",
      TESTBED, p[1], p[2], emu.url, opts.workers or 1, emu.my_pid())
  end)
  M.port, M.url, M.tls_url = ports[1], "http://127.0.0.1:" .. ports[1], "https://127.0.0.1:" .. ports[2]
  return M.url
end

function M.stop()
  if M.port then
    os.execute(TESTBED .. " stop --port " .. M.port .. " >/dev/null 2>&1")
    M.port = nil
  end
end

-- A request to the test bed: status, decoded JSON (or nil), raw body.
function M.request(method, path, body)
  local chunks = {}
  local raw = body and (type(body) == "string" and body or assert(cjson.encode(body)))
  local _, status = http.request {
    url = M.url .. path, method = method,
    headers = raw and { ["content-type"] = "application/json", ["content-length"] = tostring(#raw) } or {},
    source = raw and ltn12.source.string(raw) or nil, sink = ltn12.sink.table(chunks),
  }
  local text = table.concat(chunks)
  return status, cjson.decode(text), text
end

-- Runs client calls inside nginx (location /call, or `location`): {results = {...}} etc.
function M.call(client_opts, calls, location)
  local status, doc, raw = M.request("POST", location or "/call", { client = client_opts, calls = calls })
  assert(status == 200 and doc, "POST /call: " .. tostring(status) .. " " .. tostring(raw))
  return doc
end

-- One call inside nginx: doc (or nil), the result entry ({doc, status, ratelimit, headers}
-- or {err = {...}}).
function M.call1(client_opts, op, params, location)
  local out = M.call(client_opts, { { op, params or {} } }, location)
  assert(out.raised == nil, "raised inside nginx: " .. tostring(out.raised))
  assert(out.new_err == nil, "klaviyo.new failed inside nginx: " .. cjson.encode(out.new_err or {}))
  local r = out.results[1]
  return r.doc, r
end

-- Runs spec/idiomatic/<file>_spec.lua inside nginx (POST /spec, ngxapp.specs), skipping the
-- tests named in `skip` ({[full name] = reason}): the decoded answer, {results =, phase =,
-- worker =} or {error =}; raises only when nginx gives no JSON.
function M.run_spec(file, skip)
  local old = http.TIMEOUT
  http.TIMEOUT = 600   -- the answer comes once the whole file ran
  local ok, status, doc, raw = pcall(M.request, "POST", "/spec", { file = file, skip = skip })
  http.TIMEOUT = old
  assert(ok, status)
  assert(doc, "POST /spec " .. file .. ": " .. tostring(status) .. " " .. tostring(raw))
  return doc
end

-- Client options for account `acct` against the emulator: auth "private" (default),
-- "oauth" or "public"; `extra` options are added.
function M.opts(acct, auth, extra)
  local o = { base_url = emu.url }
  if auth == "oauth" then o.access_token = acct.access_token
  elseif auth == "public" then o.public_key = acct.public_key
  else o.api_key = acct.private_key end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- The emulator's recorded requests of `op` after `mark` (S.mark()).
M.since = S.since

return M
