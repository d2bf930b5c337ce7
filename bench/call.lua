-- bench/call.lua URL API_KEY N BLOCKS [VARIANTS [STAT]]: sequential create_event sends from one
-- process, the client's variants and the plain C libcurl loop (bench_anchor, anchor.h's request) taking
-- turns in blocks of N requests, so that the machine's load falls on both alike. Each block
-- pairs one variant with an anchor run next to it (which goes first alternates), and gives
-- the ratio of their rates. Prints one line per variant:
--   <variant> <median ratio> <min> <max> <anchor req/s> <variant req/s>
--   <anchor CPU us/req> <variant CPU us/req>
-- (rates and CPU time over all its blocks; CPU of this process, os.clock).
-- VARIANTS, a comma-separated list of the names below, limits the run to those (default: all).
-- STAT "times" reports, instead of the median of the block ratios, the ratio of the median
-- block times (anchor over variant), and in place of min and max the ratios of their 10th and
-- 90th percentiles: with blocks of one request over a slow network, the ratio of the median
-- latencies, which a busy machine's stalls (a few requests on either side) do not move.
-- Variants:
--   call   client:call("create_event", params) through the whole Lua layer (parameter checks,
--          body encoding, decoding, stats), the limiter on with limits the sink cannot reach;
--   table  the binding as client:call uses it: c:request and a request table, the table body
--          encoded and stamped with a unique_id by the core, the limiter on;
--   core   c:request with pre-encoded bytes, no limiter;
--   floor_table, floor   bench_floor (floor_lua.c): the table body encoded and stamped by the
--          core's encoder and sent by kl_send from a request fixed in C, the answer a fresh
--          {status, body} table or the status as an integer: what no binding of a table body
--          can do without.
local url, key, n, blocks = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local by_times = arg[6] == "times"
local wanted
if arg[5] and arg[5] ~= "all" then
  wanted = {}
  for name in arg[5]:gmatch("[^,]+") do wanted[name] = true end
end
local clock = os.clock
local now = require("socket").gettime  -- wall clock: the run waits on the network
local anchor = require "bench_anchor"
local klaviyo = require "klaviyo"
local core = require "klaviyo.core"
local floor = require "bench_floor"

local body = { data = { type = "event", attributes = {
  properties = { item = "Bench", value = 9.99 },
  metric = { data = { type = "metric", attributes = { name = "Bench Call" } } },
  profile = { data = { type = "profile", attributes = { email = "bench@example.com" } } },
} } }

local limits = { burst = 1000000, steady = 1000000 }
local variants = {}

do
  local client = assert(klaviyo.new{ base_url = url, api_key = key, limits = { create_event = limits } })
  local params = { body = body }
  variants[#variants + 1] = { name = "call",
                              send = function() return client:call("create_event", params) end }
end
do
  local c = assert(core.new{ base_url = url, api_key = key })
  local req = { operation = "create_event", method = "POST", path = "/api/events", auth = "private",
                body = body, unique_ids = true, safe = true, limits = limits }
  variants[#variants + 1] = { name = "table", send = function() return c:request(req) end }
end
do
  local c = assert(core.new{ base_url = url, api_key = key, limiter = "off" })
  -- safe = true as client:call marks create_event (it carries a unique_id): the connection is
  -- reused (an unsafe POST gets a fresh one, so a retry can never double-send on a stale one)
  local req = { operation = "create_event", method = "POST", path = "/api/events", safe = true,
                body = assert(core.encode(body)) }
  variants[#variants + 1] = { name = "core", send = function() return c:request(req) end }
end

assert(floor.open(url, key))
variants[#variants + 1] = { name = "floor_table", send = function() return floor.send_table(body) end }
variants[#variants + 1] = { name = "floor", send = function() return floor.send(body) end }

assert(anchor.open(url .. "/api/events", key), "bench_anchor: libcurl out of memory")

if wanted then
  local kept = {}
  for _, v in ipairs(variants) do
    if wanted[v.name] then kept[#kept + 1] = v; wanted[v.name] = nil end
  end
  local unknown = next(wanted)
  if unknown then error("bench/call.lua: unknown variant " .. unknown) end
  variants = kept
end

-- n requests of one side (the anchor, or a variant v): wall seconds and CPU seconds
local function run(v)
  local t0, c0 = now(), clock()
  if v == nil then
    local bad = anchor.run(n)
    if bad ~= 0 then error(("anchor: %d failed requests"):format(bad)) end
  else
    local send = v.send
    for _ = 1, n do
      if not send() then error(v.name .. ": a request failed") end
    end
  end
  return now() - t0, clock() - c0
end

-- warm up: connections, JIT, buffers (no more than ten blocks' worth each)
local warm = math.min(300, 10 * n)
if anchor.run(warm) ~= 0 then error("anchor: failed requests while warming up") end
for _, v in ipairs(variants) do
  for _ = 1, warm do
    if not v.send() then error(v.name .. ": a request failed while warming up") end
  end
end

for _, v in ipairs(variants) do
  v.ratios, v.atimes, v.vtimes, v.wall, v.cpu, v.awall, v.acpu = {}, {}, {}, 0, 0, 0, 0
end
for b = 1, blocks do
  for _, v in ipairs(variants) do
    local aw, ac, vw, vc
    if b % 2 == 1 then
      aw, ac = run(nil); vw, vc = run(v)
    else
      vw, vc = run(v); aw, ac = run(nil)
    end
    v.ratios[b], v.atimes[b], v.vtimes[b] = aw / vw, aw, vw
    v.wall, v.cpu, v.awall, v.acpu = v.wall + vw, v.cpu + vc, v.awall + aw, v.acpu + ac
  end
end

-- the p-quantile of a sorted list (p = 0.5: the median)
local function quantile(t, p)
  local x = p * (#t - 1) + 1
  local i = math.floor(x)
  return i >= #t and t[#t] or t[i] + (t[i + 1] - t[i]) * (x - i)
end

local total = n * blocks
for _, v in ipairs(variants) do
  local mid, lo, hi
  if by_times then
    local a, t = v.atimes, v.vtimes
    table.sort(a)
    table.sort(t)
    mid, lo, hi = quantile(a, 0.5) / quantile(t, 0.5), quantile(a, 0.1) / quantile(t, 0.1),
      quantile(a, 0.9) / quantile(t, 0.9)
  else
    local r = v.ratios
    table.sort(r)
    mid, lo, hi = quantile(r, 0.5), r[1], r[blocks]
  end
  print(("%s %.3f %.3f %.3f %.0f %.0f %.1f %.1f"):format(v.name, mid, lo, hi,
    total / v.awall, total / v.wall, v.acpu * 1e6 / total, v.cpu * 1e6 / total))
end
