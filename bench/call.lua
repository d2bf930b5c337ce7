-- bench/call.lua URL API_KEY N MODE: N sequential create_event sends; prints
-- "<requests/s> <failures> <CPU microseconds/request>" (CPU of this process: os.clock).
-- MODE "call": client:call("create_event", params) through the whole Lua layer (parameter
-- checks, body encoding, decoding); MODE "core": the binding's c:request with pre-encoded bytes.
local url, key, n, mode = arg[1], arg[2], tonumber(arg[3]), arg[4] or "call"
local clock = os.clock
local ok_socket, socket = pcall(require, "socket")
local now = ok_socket and socket.gettime or clock  -- wall clock: the run waits on the network

local body = { data = { type = "event", attributes = {
  properties = { item = "Bench", value = 9.99 },
  metric = { data = { type = "metric", attributes = { name = "Bench Call" } } },
  profile = { data = { type = "profile", attributes = { email = "bench@example.com" } } },
} } }

local send
if mode == "call" then
  local klaviyo = require "klaviyo"
  -- the limiter stays on (its cost is part of every call) with limits the sink cannot reach
  local client = assert(klaviyo.new{ base_url = url, api_key = key,
    limits = { create_event = { burst = 1000000, steady = 1000000 } } })
  local params = { body = body }
  send = function() return client:call("create_event", params) end
else
  local core = require "klaviyo.core"
  local c = assert(core.new{ base_url = url, api_key = key, limiter = "off" })
  -- safe = true as client:call marks create_event (it carries a unique_id): the connection is
  -- reused (an unsafe POST gets a fresh one, so a retry can never double-send on a stale one)
  local req = { operation = "create_event", method = "POST", path = "/api/events", safe = true,
                body = assert(core.encode(body)) }
  send = function() return c:request(req) end
end

for _ = 1, math.min(200, n) do send() end  -- warm up: connection, JIT, buffers
local failures = 0
local t0, c0 = now(), clock()
for _ = 1, n do
  local res = send()
  if not res then failures = failures + 1 end
end
local secs, cpu = now() - t0, clock() - c0
print(string.format("%.0f %d %.1f", n / secs, failures, cpu * 1e6 / n))
