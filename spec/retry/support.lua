-- Shared by spec/retry/*_spec.lua: clients for fresh emulator accounts, the emulator's record
-- of one account's requests, and a throwaway redis-server. Not a spec itself.
local emu = require "helpers.emulator"
local klaviyo = require "klaviyo"
local socket = require "socket"
local P = require "helpers.process"
local portfile = require "helpers.portfile"

local M = { emu = emu, klaviyo = klaviyo, socket = socket }

-- A client for `acct` (a new account when nil) with extra options.
function M.client(opts, acct)
  acct = acct or emu.account()
  local o = { base_url = emu.url, api_key = acct.private_key }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(klaviyo.new(o)), acct
end

-- The account's recorded requests of one operation, oldest first.
M.requests = emu.requests

-- How many of them the emulator answered with `status`.
function M.count_status(acct, op, status)
  local n = 0
  for _, r in ipairs(M.requests(acct, op)) do
    if r.status == status then n = n + 1 end
  end
  return n
end

M.free_port = P.free_port

local function redis_cmd(port, ...)
  local sock = socket.tcp()
  sock:settimeout(1)
  if not sock:connect("127.0.0.1", port) then sock:close(); return nil end
  local args = { ... }
  local parts = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n" end
  sock:send(table.concat(parts))
  local line = sock:receive("*l")
  local out = line
  if line and line:sub(1, 1) == "*" then
    out = {}
    for _ = 1, tonumber(line:sub(2)) do
      local len = tonumber(sock:receive("*l"):sub(2))
      out[#out + 1] = sock:receive(len)
      sock:receive("*l")
    end
  end
  sock:close()
  return out
end
M.redis_cmd = redis_cmd

-- Starts redis-server on a free port: port, stop().
function M.redis()
  local port = M.free_port()
  local pidfile = ("/tmp/klaviyo-retry-spec-redis-%d.pid"):format(port)
  assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no " ..
    "--daemonize yes --dir /tmp --logfile '' --pidfile %s"):format(port, pidfile)))
  for _ = 1, 250 do
    if redis_cmd(port, "PING") == "+PONG" then break end
    socket.sleep(0.02)
  end
  assert(redis_cmd(port, "PING") == "+PONG", "redis-server did not come up on " .. port)
  return port, function()
    redis_cmd(port, "SHUTDOWN", "NOSAVE")
    os.remove(pidfile)
  end
end

-- Starts spec/retry/hostile_server.lua (HTTP and a fake Redis on one loopback port) as its
-- own process: port, stop().
function M.hostile()
  local file = os.tmpname()
  os.remove(file)
  local pid = P.spawn(("%s %s %s 600"):format(P.interpreter(),
    P.quote(P.root .. "/spec/retry/hostile_server.lua"), P.quote(file)))
  local port = portfile.wait(file, 5)
  os.remove(file)
  assert(port, "the hostile server did not start")
  return port, function() os.execute("kill " .. pid .. " 2>/dev/null") end
end

-- A base_url of the hostile server that answers in `mode` with `value` (see its header).
function M.hostile_url(port, mode, value)
  local hex = value:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)
  return ("http://127.0.0.1:%d/%s/%s"):format(port, mode, hex)
end

-- The API key clients of the hostile server send (and the specs look for in what comes back).
M.HOSTILE_KEY = "pk_hostile_0123456789abcdef0123456789"

-- klaviyo.new options for a client of the hostile server on `port` answering in `mode` with
-- `value`, with the options of `extra` added.
function M.hostile_opts(port, mode, value, extra)
  local o = { base_url = M.hostile_url(port, mode, value), api_key = M.HOSTILE_KEY }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- A create_event body for `email` with metric `metric`.
function M.event(email, metric, extra)
  local attrs = { properties = { n = 1 },
    metric = { data = { type = "metric", attributes = { name = metric or "Retry Spec" } } },
    profile = { data = { type = "profile", attributes = { email = email } } } }
  for k, v in pairs(extra or {}) do attrs[k] = v end
  return { data = { type = "event", attributes = attrs } }
end

return M
