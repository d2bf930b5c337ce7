-- Shared by spec/hostile/*_spec.lua: starts the hostile server (spec/hostile/server.lua) as a
-- child process, names the case it plays, counts what it received, runs a case through the
-- libcurl transport, and checks a result against the case's expectation. Not a spec itself.
local socket = require "socket"
local cjson = require("cjson.safe").new()
local P = require "helpers.process"
local portfile = require "helpers.portfile"

local M = { catalogue = require("hostile.catalogue").cases }

M.root = P.root
-- The interpreter running this file (the server and isolated cases run on the same one).
M.interpreter = P.interpreter

-- One HTTP/1.0 request to the server's admin paths: status, body.
local function admin(method, path, body)
  local sock = socket.tcp()
  sock:settimeout(30)
  assert(sock:connect("127.0.0.1", M.port))
  body = body or ""
  sock:send(method .. " " .. path .. " HTTP/1.0\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  local all = sock:receive("*a") or ""
  sock:close()
  local status = tonumber(all:match("^HTTP/1%.%d (%d+)"))
  return status, all:match("\r\n\r\n(.*)$")
end

-- Starts the server; sets M.port and M.url.
function M.start()
  local file = os.tmpname()
  os.remove(file)
  M.portfile = file
  assert(os.execute(string.format("%s %s/spec/hostile/server.lua %s %s %s >%s.log 2>&1 &",
    M.interpreter(), M.root, file, P.my_pid(), M.root, file)))
  M.port = portfile.wait(file, 30)   -- the server makes its gzip bombs first
  if not M.port then
    local f = io.open(file .. ".log")
    error("the hostile server did not start: " .. (f and f:read("*a") or "no log"))
  end
  M.url = "http://127.0.0.1:" .. M.port
  return M.url
end

function M.stop()
  if M.port then
    pcall(admin, "POST", "/__hostile/quit")
    os.remove(M.portfile)
    os.remove(M.portfile .. ".log")
    M.port = nil
  end
end

-- Tells the server which case to play (and resets its count).
function M.play(case)
  local status, body = admin("POST", "/__hostile/case", case.name)
  assert(status == 200, tostring(body))
end

-- The requests the server received since the case was named.
function M.count()
  local _, body = admin("GET", "/__hostile/count")
  return tonumber(body:match("^(%d+)"))
end

local function subst(v, url)
  if type(v) == "string" then return (v:gsub("http://127%.0%.0%.1:@PORT@", url)) end
  return v
end

-- klaviyo.new's options for a case against the server at `url`.
function M.client_opts(case, url)
  local o = { base_url = url, api_key = "pk_hostile0123456789abcdef", timeout = 2,
              retry = { attempts = 1 } }
  for k, v in pairs(case.opts or {}) do o[k] = subst(v, url) end
  return o
end

-- The operation and parameters a case calls.
function M.call_of(case)
  local call = case.call or { "get_profiles", {} }
  return call[1], call[2]
end

local FIELDS = { "kind", "status", "code", "sent", "retry_after", "detail", "parameter", "operation" }

-- An error as plain fields; `text` is tostring(err), `text_raised` what it raised.
function M.plain(err)
  if type(err) ~= "table" then return { text = tostring(err) } end
  local out = {}
  for _, k in ipairs(FIELDS) do
    local v = err[k]
    -- JSON has no infinity or NaN: those travel as text
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then v = tostring(v) end
    out[k] = v
  end
  local ok, text = pcall(tostring, err)
  if ok then out.text = text else out.text_raised = tostring(text) end
  return out
end

-- Runs a case through the libcurl transport in this process:
-- {ok = true} | {err = plain} | {raised = msg}, with elapsed (seconds).
function M.run_curl(case, url)
  local klaviyo = require "klaviyo"
  local res = {}
  local t0 = socket.gettime()
  local ok, e = pcall(function()
    local c, err = klaviyo.new(M.client_opts(case, url))
    if not c then res.err = M.plain(err); return end
    local op, params = M.call_of(case)
    if case.pages then
      for doc, perr in c:pages(op, params) do
        if not doc then res.err = M.plain(perr); break end
      end
    else
      local doc, cerr = c:call(op, params)
      if case.twice then doc, cerr = c:call(op, params) end
      if not doc then res.err = M.plain(cerr) end
    end
    c:close()
  end)
  res.elapsed = socket.gettime() - t0
  if not ok then res.raised = tostring(e)
  elseif not res.err then res.ok = true end
  return res
end

-- Runs a case through the libcurl transport in a child process (spec/hostile/run_one.lua),
-- killed after `limit` seconds: a hang or a crash becomes a failed result, not a lost run.
function M.run_curl_isolated(case, url, limit)
  local cmd = string.format("timeout -s KILL %d %s %s/spec/hostile/run_one.lua %q %s %s 2>&1",
    limit, M.interpreter(), M.root, case.name, url, M.root)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  local res = cjson.decode(out:match("RESULT (.*)$") or "")
  if type(res) ~= "table" then
    return { died = "the child process died or hung: " .. out:sub(1, 300) }
  end
  return res
end

local function show(v) return cjson.encode(v) or tostring(v) end

-- Whether `res` meets the case's expectation for `transport` ("curl" or "ngx"): true, or
-- false and what differs.
function M.check(case, res, transport)
  local want = case[transport] or case.expect
  if res.died then return false, res.died end
  local err = res.err
  if err and err.text_raised then return false, "tostring(err) raised: " .. err.text_raised end
  if case.within and res.elapsed and res.elapsed >= case.within then
    return false, string.format("took %.2f s (limit %g s): %s", res.elapsed, case.within, show(res))
  end
  if want == "ok" or want.ok then
    if not res.ok then return false, "expected success, got " .. show(res) end
  elseif want.raise then
    if not (res.raised and res.raised:find(want.raise, 1, true)) then
      return false, "expected a raise naming " .. want.raise .. ", got " .. show(res)
    end
  else
    if not err then return false, "expected an error " .. show(want) .. ", got " .. show(res) end
    for k, v in pairs(want) do
      if k ~= "why" and k ~= "error" and err[k] ~= v then
        return false, "expected " .. show(want) .. ", got " .. show(res)
      end
    end
  end
  return true
end

return M
