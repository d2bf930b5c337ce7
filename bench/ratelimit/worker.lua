-- bench/ratelimit worker: sends create_event through client:call as fast as it can for
-- SECONDS, with the in-process limiter ("local") or the Redis store ("redis"), and writes the
-- wall-clock time of every accepted event to OUT (one per line). Prints one line:
--   accepted <n> throttled <429s received> errors <n> waited <s>
--   lua worker.lua URL KEY SECONDS local|redis REDIS_URL OUT [TAG [SAFETY]]
local klaviyo = require "klaviyo"
local socket = require "socket"

local url, key, seconds, store = arg[1], arg[2], tonumber(arg[3]), arg[4]
local redis_url, out, tag, safety = arg[5], arg[6], arg[7] or "w", tonumber(arg[8])
assert(url and key and seconds and (store == "local" or store == "redis") and out,
  "usage: worker.lua URL KEY SECONDS local|redis REDIS_URL OUT [TAG]")

local limiter = { store = store, safety = safety }
if store == "redis" then limiter.url = redis_url; limiter.prefix = "bench:" end
local c = assert(klaviyo.new { base_url = url, api_key = key, limiter = limiter })
local f = assert(io.open(out, "w"))
local now = socket.gettime
local deadline = now() + seconds
local n, errors = 0, 0
while now() < deadline do
  n = n + 1
  local ok = c:call("create_event", { body = { data = { type = "event", attributes = {
    properties = { n = n },
    metric = { data = { type = "metric", attributes = { name = "Ratelimit Bench" } } },
    profile = { data = { type = "profile", attributes = { email = tag .. "@example.com" } } },
  } } } })
  if ok then f:write(string.format("%.6f\n", now())) else errors = errors + 1 end
end
f:close()
local st = c:stats().create_event or { throttled = 0, waited = 0 }
local accepted = n - errors
print(("accepted %d throttled %d errors %d waited %.1f"):format(accepted, st.throttled, errors, st.waited))
