-- bench/batch worker: client:batch of N create_event calls at CONCURRENCY against URL (the
-- emulator's --sink), repeated for about SECONDS; prints "<requests/s> <failed>". The time
-- includes building the request list and reading the results, as a caller would.
--   lua batch.lua URL KEY SECONDS CONCURRENCY [N per batch, default 2000]
local klaviyo = require "klaviyo"
local socket = require "socket"

local url, key, seconds = arg[1], arg[2], tonumber(arg[3])
local conc, n = tonumber(arg[4]), tonumber(arg[5] or 2000)
-- the limiter stays on (its cost is part of the figure) with limits no sink run can reach
local c = assert(klaviyo.new { base_url = url, api_key = key,
  limits = { create_event = { burst = 1000000, steady = 1000000 } } })
local sent, failed = 0, 0
local t0 = socket.gettime()
local round = 0
while socket.gettime() - t0 < seconds do
  round = round + 1
  local reqs = {}
  for i = 1, n do
    reqs[i] = { "create_event", { body = { data = { type = "event", attributes = {
      properties = { order_id = round .. "-" .. i, items = { "a", "b" }, total = 12.5 },
      metric = { data = { type = "metric", attributes = { name = "Placed Order" } } },
      profile = { data = { type = "profile",
                           attributes = { email = "user" .. (i % 1000) .. "@example.com" } } },
    } } } } }
  end
  local out = c:batch(reqs, { concurrency = conc })
  for i = 1, n do
    if out[i][1] == nil then failed = failed + 1 end
  end
  sent = sent + n
end
local dt = socket.gettime() - t0
print(("%.0f %d"):format(sent / dt, failed))
