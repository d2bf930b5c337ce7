-- bench/batch/batch.lua URL API_KEY N BLOCKS CONCURRENCY: client:batch of N create_event calls
-- at CONCURRENCY against URL (the emulator's --sink), and the plain C loop on libcurl's multi
-- interface (bench_anchor_multi: anchor.h's request, the same bytes, N requests with as many in
-- flight), taking turns in BLOCKS blocks in one process (which goes first alternates), so that
-- the machine's load falls on both alike.  Each block gives the ratio of the two rates.  The
-- client's time includes building the request list and reading the results, as a caller's
-- would.  Prints: <median ratio> <min> <max> <anchor req/s> <client:batch req/s>
-- <anchor CPU us/req> <client:batch CPU us/req> (rates and CPU time over all blocks; CPU of
-- this process, os.clock, which the machine's load disturbs less than the wall clock).
local url, key = arg[1], arg[2]
local n, blocks, conc = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local now = require("socket").gettime  -- wall clock: the run waits on the network
local clock = os.clock
local klaviyo = require "klaviyo"
local anchor = require "bench_anchor_multi"

-- the limiter stays on (its cost is part of the figure) with limits no sink run can reach
local client = assert(klaviyo.new { base_url = url, api_key = key,
  limits = { create_event = { burst = 1000000, steady = 1000000 } } })
anchor.open(url .. "/api/events", key)

local opts = { concurrency = conc }
local function batch(count)
  local reqs = {}
  for i = 1, count do
    reqs[i] = { "create_event", { body = { data = { type = "event", attributes = {
      properties = { item = "Bench", value = 9.99 },
      metric = { data = { type = "metric", attributes = { name = "Bench Call" } } },
      profile = { data = { type = "profile", attributes = { email = "bench@example.com" } } },
    } } } } }
  end
  local out = client:batch(reqs, opts)
  for i = 1, count do
    if out[i][1] == nil then error(("client:batch: request %d failed"):format(i)) end
  end
end

-- n requests of one side: wall seconds and CPU seconds
local function run(side)
  local t0, c0 = now(), clock()
  if side == "anchor" then
    local bad = anchor.run(n, conc)
    if bad ~= 0 then error(("anchor: %d failed requests"):format(bad)) end
  else
    batch(n)
  end
  return now() - t0, clock() - c0
end

-- warm up: JIT, buffers
batch(math.min(n, 500))
anchor.run(math.min(n, 500), conc)

local ratios, awall, bwall, acpu, bcpu = {}, 0, 0, 0, 0
for b = 1, blocks do
  local aw, ac, bw, bc
  if b % 2 == 1 then
    aw, ac = run("anchor"); bw, bc = run("batch")
  else
    bw, bc = run("batch"); aw, ac = run("anchor")
  end
  ratios[b] = aw / bw
  awall, bwall, acpu, bcpu = awall + aw, bwall + bw, acpu + ac, bcpu + bc
end
table.sort(ratios)
local mid = (blocks + 1) / 2
local median = blocks % 2 == 1 and ratios[mid] or (ratios[blocks / 2] + ratios[blocks / 2 + 1]) / 2
local total = n * blocks
print(("%.3f %.3f %.3f %.0f %.0f %.1f %.1f"):format(median, ratios[1], ratios[blocks],
  total / awall, total / bwall, acpu * 1e6 / total, bcpu * 1e6 / total))
