-- probe.lua HOST PORT PATH INTERVAL_MS SECONDS [FILE]: sends GET PATH over one keepalive
-- connection every INTERVAL_MS for SECONDS and prints "samples p50_ms p99_ms max_ms failures"
-- (FILE: also appends every sample, in ms, one a line, for pooling rounds). It paces
-- itself (never more than one request in flight), so it measures how long the location
-- takes to answer, not how fast a flood can go.
local socket = require "socket"

local host, port, path = arg[1], tonumber(arg[2]), arg[3]
local interval, seconds, file = tonumber(arg[4]) / 1000, tonumber(arg[5]), arg[6]
assert(host and port and path and interval and seconds,
  "usage: probe.lua HOST PORT PATH INTERVAL_MS SECONDS")

local sock
local function connect()
  sock = assert(socket.tcp())
  sock:settimeout(10)
  assert(sock:connect(host, port))
  sock:setoption("tcp-nodelay", true)
end

-- One request; returns true when a 200 with its whole body came back.
local function once()
  if not sock then connect() end
  local ok = sock:send("GET " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n")
  if not ok then sock:close(); sock = nil; return false end
  local line = sock:receive("*l")
  if not line then sock:close(); sock = nil; return false end
  local status = tonumber(line:match("^HTTP/1%.%d (%d+)"))
  local len, chunked
  while true do
    local h = sock:receive("*l")
    if not h then sock:close(); sock = nil; return false end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k and k:lower() == "content-length" then len = tonumber(v) end
    if k and k:lower() == "transfer-encoding" and v:lower():find("chunked") then chunked = true end
  end
  if chunked then
    while true do
      local size = tonumber(assert(sock:receive("*l")):match("^(%x+)"), 16)
      if size == 0 then sock:receive("*l"); break end
      sock:receive(size + 2)
    end
  elseif len and len > 0 then
    sock:receive(len)
  end
  return status == 200
end

local times, failures = {}, 0
local stop = socket.gettime() + seconds
local next_at = socket.gettime()
while socket.gettime() < stop do
  local t0 = socket.gettime()
  if once() then times[#times + 1] = (socket.gettime() - t0) * 1000 else failures = failures + 1 end
  next_at = next_at + interval
  local pause = next_at - socket.gettime()
  if pause > 0 then socket.sleep(pause) else next_at = socket.gettime() end
end
if file then
  local f = assert(io.open(file, "a"))
  for _, t in ipairs(times) do f:write(string.format("%.4f\n", t)) end
  f:close()
end
table.sort(times)
local function pct(p)
  if #times == 0 then return 0 / 0 end
  return times[math.max(1, math.ceil(#times * p))]
end
print(string.format("%d %.2f %.2f %.2f %d", #times, pct(0.5), pct(0.99), times[#times] or 0 / 0, failures))
