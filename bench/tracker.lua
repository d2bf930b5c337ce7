-- bench/tracker.lua MODE URL API_KEY ARG: one measurement for bench/tracker, printed as one
-- line of "name=value" pairs.
--   track N SPOOL        N events: first track only (delivery off: what the spool accepts),
--                        then flush (delivery), then the same N again with delivery inside
--                        track as plain Lua runs it (end to end). Prints accepted/s,
--                        delivered/s, end_to_end/s, peak_rss_kib (VmHWM of this process),
--                        accepted_cpu (events per CPU second of this process while tracking:
--                        the wall-clock figure on an otherwise idle core; the machine is shared).
--   rss N SPOOL          N events with the default options; peak_rss_kib, end_to_end/s.
--   single N             N events:create calls one at a time (the same events); events/s.
--   limited SECONDS SPOOL   the tracker for SECONDS under the emulator's real limits, fed as
--                        fast as back-pressure allows; events delivered, bulk jobs, 429s.
--   limited_single SECONDS  events:create one at a time for SECONDS, waiting out 429s.
local mode, url, key, a1, a2 = arg[1], arg[2], arg[3], arg[4], arg[5]
local socket = require "socket"
local klaviyo = require "klaviyo"
local tracker = require "klaviyo.tracker"
local now, sleep = socket.gettime, socket.sleep

-- Rate limits switched off at the emulator: switch off the client's own limiter too, where
-- it has one (it would hold bulk jobs to 150 a minute). Under real limits: the defaults.
local client
if mode ~= "limited" and mode ~= "limited_single" then
  local ok, c = pcall(klaviyo.new, { api_key = key, base_url = url, limiter = false })
  if ok then client = c end
end
client = client or assert(klaviyo.new { api_key = key, base_url = url })

local function event(i)
  return { metric = "Bench Tracker", profile = { email = "b" .. (i % 5000) .. "@example.com" },
           properties = { seq = i, sku = "SKU-" .. (i % 97), price = 12.5, qty = 2 } }
end

local function peak_rss()
  local f = io.open("/proc/self/status", "rb")
  if not f then return -1 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or -1
end

local function fresh(path)
  for _, s in ipairs({ "", ".tmp", ".lock" }) do os.remove(path .. s) end
end

if mode == "track" then
  local n, path = tonumber(a1), a2
  fresh(path)
  -- the whole run goes to the spool before the first delivery: room for all of it
  local t = assert(tracker.new(client, { spool = path, auto = false,
    max_spool_bytes = 4 * 1024 * 1024 * 1024 }))
  local t0, c0 = now(), os.clock()
  for i = 1, n do assert(t:track(event(i))) end
  local t1, c1 = now(), os.clock()
  assert(t:flush(600))
  local t2 = now()
  assert(t:close())
  fresh(path)
  t = assert(tracker.new(client, { spool = path }))
  local t3 = now()
  for i = n + 1, 2 * n do assert(t:track(event(i))) end
  assert(t:close(600))
  local t4 = now()
  local st = t:stats()
  fresh(path)
  print(string.format("accepted=%.0f delivered=%.0f end_to_end=%.0f peak_rss_kib=%d batches=%d " ..
    "accepted_cpu=%.0f", n / (t1 - t0), n / (t2 - t1), n / (t4 - t3), peak_rss(), st.batches,
    n / (c1 - c0)))
elseif mode == "rss" then
  -- N events with the default options (delivery inside track): this process's peak RSS
  local n, path = tonumber(a1), a2
  fresh(path)
  local t = assert(tracker.new(client, { spool = path }))
  local t0 = now()
  for i = 1, n do assert(t:track(event(i))) end
  assert(t:close(600))
  local st = t:stats()
  fresh(path)
  print(string.format("peak_rss_kib=%d end_to_end=%.0f delivered=%d batches=%d", peak_rss(),
    n / (now() - t0), st.delivered, st.batches))
elseif mode == "single" then
  local n = tonumber(a1)
  local events = require("klaviyo.events").new(client)
  local t0 = now()
  local bad = 0
  for i = 1, n do
    if not events:create(event(i)) then bad = bad + 1 end
  end
  print(string.format("events_per_s=%.0f failures=%d", n / (now() - t0), bad))
elseif mode == "limited" then
  local secs, path = tonumber(a1), a2
  fresh(path)
  -- Limits count in fixed 60 s windows of unknown phase: a run of SECONDS touches one more
  -- window than it spans whole ones. A cheap read tells where the current window ends.
  local _, res = assert(client:call("get_metrics", {}))
  local reset = res.ratelimit and tonumber(res.ratelimit.reset) or 60
  -- what the limits allow in the run: in each minute window it touches, 150 jobs, or 10 a
  -- second (the burst limit) when the run holds only a part of the window
  local windows, allowed_jobs, left, seg = 0, 0, secs, math.min(reset, secs)
  while left > 0 do
    windows = windows + 1
    allowed_jobs = allowed_jobs + math.min(150, 10 * math.ceil(seg))
    left = left - seg
    seg = math.min(60, left)
  end
  local t = assert(tracker.new(client, { spool = path, max_spool_bytes = 16 * 1024 * 1024 }))
  local t0 = now()
  local i, full = 0, 0
  while now() - t0 < secs do
    i = i + 1
    local ok, err = t:track(event(i))
    if not ok then
      assert(err.kind == "spool_full", tostring(err))
      i, full = i - 1, full + 1
      sleep(0.01)
    end
  end
  local st = t:stats()
  t:close(0)
  fresh(path)
  print(string.format("delivered=%d batches=%d requests=%d failures=%d tracked=%d spool_full=%d " ..
    "windows=%d allowed=%d", st.delivered, st.batches, st.requests, st.failures, st.tracked, full,
    windows, allowed_jobs * 1000))
elseif mode == "limited_single" then
  local secs = tonumber(a1)
  local events = require("klaviyo.events").new(client)
  local t0 = now()
  local ok_n, throttled, i = 0, 0, 0
  while now() - t0 < secs do
    i = i + 1
    local uid, err = events:create(event(i))
    if uid then
      ok_n = ok_n + 1
    elseif err.status == 429 then
      throttled = throttled + 1
      -- Retry-After rounds down: 0 means "within the second"; wait a little, not spin
      local wait = math.max(tonumber(err.retry_after) or 1, 0.05)
      local left = secs - (now() - t0)
      if left > 0 then sleep(math.min(wait, left)) end
    else
      error(tostring(err))
    end
  end
  print(string.format("delivered=%d throttled=%d", ok_n, throttled))
else
  error("unknown mode " .. tostring(mode))
end
