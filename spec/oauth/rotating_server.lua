-- A loopback OAuth token endpoint that rotates refresh tokens, one request at a time: a
-- refresh with the current refresh token (first rt_0) gets at_N/rt_N and makes rt_N current,
-- the first one only after SLOW seconds; any other gets 400 invalid_grant. GET /count answers
-- how many refreshes it served. Run as a child process:
--   lua rotating_server.lua <port file> <slow seconds>
-- It serves until POST /quit.
package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local socket = require "socket"
local portfile, slow = arg[1], tonumber(arg[2])
local server = require("helpers.portfile").listen(portfile)
server:settimeout(60)

local current, n = "rt_0", 0
while true do
  local sock = server:accept()
  if not sock then break end
  sock:settimeout(5)
  local first, len = nil, 0
  while true do
    local line = sock:receive("*l")
    if not line or line == "" then break end
    first = first or line
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
  end
  local body = len > 0 and sock:receive(len) or ""
  local status, doc = 400, '{"error":"invalid_grant","error_description":"revoked"}'
  if (first or ""):find("^GET /count ") then
    status, doc = 200, tostring(n)
  elseif body:match("refresh_token=([^&]*)") == current then
    if n == 0 then socket.sleep(slow) end
    n = n + 1
    current = "rt_" .. n
    status, doc = 200, ('{"access_token":"at_%d","refresh_token":"%s","expires_in":3600}'):format(n, current)
  end
  sock:send("HTTP/1.1 " .. status .. " X\r\nContent-Type: application/json\r\n" ..
    "Content-Length: " .. #doc .. "\r\nConnection: close\r\n\r\n" .. doc)
  sock:close()
  if (first or ""):find("^POST /quit ") then break end
end
