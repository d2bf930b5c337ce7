-- A DNS server for spec/net/ngx_spec.lua's nginx, run as its own process:
--   lua dns_server.lua PORTFILE WATCHED_PID
-- It binds a free loopback UDP port, writes it to PORTFILE, and until the watched process is
-- gone answers a query for a name under .test with the A record 127.0.0.1; any other query
-- gets no answer at all, as from a resolver that is down. Not a spec itself.
local socket = require "socket"

local portfile, watch = arg[1], arg[2]
local udp = assert(socket.udp())
assert(udp:setsockname("127.0.0.1", 0))
local _, port = udp:getsockname()
local f = assert(io.open(portfile .. ".tmp", "w"))
f:write(port, "\n")
f:close()
assert(os.rename(portfile .. ".tmp", portfile))

local function alive()
  local r = os.execute("kill -0 " .. watch .. " 2>/dev/null")
  return r == true or r == 0
end

-- The query's name (dotted, lowercase) and the offset just past its question; nil if malformed.
local function question(q)
  local labels, i = {}, 13
  while true do
    local n = q:byte(i)
    if not n then return nil end
    if n == 0 then break end
    labels[#labels + 1] = q:sub(i + 1, i + n)
    i = i + n + 1
  end
  return table.concat(labels, "."):lower(), i + 5   -- the zero byte, QTYPE, QCLASS
end

udp:settimeout(0.5)
while alive() do
  local q, ip, from = udp:receivefrom()
  if q and #q > 12 then
    local name, stop = question(q)
    if name and name:match("%.test$") then
      udp:sendto(q:sub(1, 2) .. "\129\128\0\1\0\1\0\0\0\0" .. q:sub(13, stop - 1) ..
        "\192\12\0\1\0\1\0\0\0\60\0\4\127\0\0\1", ip, from)
    end
  end
end
