-- bench/emulator-bulk.lua URL API_KEY JOBS [WORKER_PID] [FIRST_JOB]: posts JOBS pre-built bulk_create_events
-- bodies of 1000 events (the tracker's shape: one profile entry per event, the bench's
-- properties, a time, a unique_id each) one after another over one keep-alive connection, then
-- settles the jobs (GET /__emulator/jobs?settle=1, as a read would) and checks every event was
-- recorded. Prints events/s (wall, bodies built beforehand) and the nginx worker's CPU time per
-- event (utime + stime from /proc: what the emulator itself spent, less noisy than wall time on
-- a shared machine), as one line of name=value pairs. FIRST_JOB (default 1) numbers the events
-- on from an earlier run against the same emulator, so none is a duplicate.
local socket = require "socket"
local cjson = require "cjson"

local url, key, jobs, wpid = arg[1], arg[2], tonumber(arg[3] or "20"), arg[4]
local first_job = tonumber(arg[5] or "1")
if wpid == "" then wpid = nil end
local host, port = url:match("^http://([^:/]+):(%d+)")
local PER = 1000

-- Bodies as bench/tracker sends them (bench/tracker.lua event(i) through the tracker's spool
-- records): profile beside the event, metric by name, an ISO time with milliseconds that moves
-- on every 100 events (a tracker taking ~100,000 events/s stamps about 100 per millisecond).
local function body(first)
  local parts = {}
  for i = first, first + PER - 1 do
    parts[#parts + 1] = string.format(
      '{"type":"event-bulk-create","attributes":{"profile":{"data":{"attributes":' ..
      '{"email":"b%d@example.com"},"type":"profile"}},"events":{"data":[{"type":"event",' ..
      '"attributes":{"properties":{"price":12.5,"seq":%d,"sku":"SKU-%d","qty":2},' ..
      '"time":"2026-11-26T15:09:%02d.%03d+00:00","metric":{"data":{"attributes":' ..
      '{"name":"Bench Tracker"},"type":"metric"}},"unique_id":"%08x-9a33-4e9b-af1d-%012x"}}]}}}',
      i % 5000, i, i % 97, math.floor(i / 100000) % 60, math.floor(i / 100) % 1000, i, i)
  end
  return '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":[' ..
    table.concat(parts, ",") .. ']}}}}'
end

local bodies = {}
for j = 1, jobs do bodies[j] = body((first_job + j - 2) * PER + 1) end

local conn = assert(socket.tcp())
assert(conn:connect(host, tonumber(port)))
conn:setoption("tcp-nodelay", true)

-- One HTTP/1.1 exchange on the kept-alive connection; returns status, body.
local function exchange(method, path, headers, payload)
  local req = { method .. " " .. path .. " HTTP/1.1", "Host: " .. host .. ":" .. port }
  for k, v in pairs(headers) do req[#req + 1] = k .. ": " .. v end
  req[#req + 1] = "Content-Length: " .. (payload and #payload or 0)
  assert(conn:send(table.concat(req, "\r\n") .. "\r\n\r\n" .. (payload or "")))
  local status = tonumber(assert(conn:receive("*l")):match("^HTTP/1%.1 (%d+)"))
  local len = 0
  while true do
    local line = assert(conn:receive("*l"))
    if line == "" then break end
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  return status, len > 0 and assert(conn:receive(len)) or ""
end

local function worker_cpu()
  local f = wpid and io.open("/proc/" .. wpid .. "/stat", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  -- fields after the command (which may hold spaces): state is field 3, utime 14, stime 15
  local rest = s:match("%) (.*)$")
  local fields = {}
  for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
  -- clock ticks (USER_HZ 100): user (the Lua work) and system (mostly reading the bodies)
  return tonumber(fields[12]) / 100, tonumber(fields[13]) / 100
end

local H = { Authorization = "Klaviyo-API-Key " .. key, revision = "2026-07-15",
            ["Content-Type"] = "application/vnd.api+json", Accept = "application/vnd.api+json" }
local u0, s0 = worker_cpu()
local t0 = socket.gettime()
for j = 1, jobs do
  local st, b = exchange("POST", "/api/event-bulk-create-jobs", H, bodies[j])
  if st ~= 202 then error("job " .. j .. ": " .. st .. " " .. b) end
end
local st, b = exchange("GET", "/__emulator/jobs?settle=1",
  { ["X-Emulator-Account"] = os.getenv("EMU_ACCOUNT") or "" })
local t1 = socket.gettime()
local u1, s1 = worker_cpu()
assert(st == 200, b)
local recorded = 0
local all = cjson.decode(b).jobs
for k = #all - jobs + 1, #all do recorded = recorded + all[k].recorded end
assert(recorded == jobs * PER, "recorded " .. recorded .. " of " .. jobs * PER)
local n = jobs * PER
local function per_event(from, to) return from and string.format("%.2f", (to - from) * 1e6 / n) or "?" end
print(string.format("events=%d events_per_s=%.0f worker_cpu_us_per_event=%s (user %s, system %s)",
  n, n / (t1 - t0), per_event(u0 and u0 + s0, u1 and u1 + s1), per_event(u0, u1), per_event(s0, s1)))
