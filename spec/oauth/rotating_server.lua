-- A loopback OAuth token endpoint that rotates refresh tokens, one request at a time: a
-- refresh with the current refresh token (first rt_0) gets at_N/rt_N and makes rt_N current,
-- the first one only after SLOW seconds; any other gets 400 invalid_grant. Run as a child
-- process:  lua rotating_server.lua <port file> <slow seconds>
-- It serves until POST /quit.
package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local socket = require "socket"
local portfile, slow = arg[1], tonumber(arg[2])

local current, n = "rt_0", 0
require("oauth.loopback").serve(portfile, function(_, body)
  if body:match("refresh_token=([^&]*)") ~= current then
    return 400, '{"error":"invalid_grant","error_description":"revoked"}'
  end
  if n == 0 then socket.sleep(slow) end
  n = n + 1
  current = "rt_" .. n
  return 200, ('{"access_token":"at_%d","refresh_token":"%s","expires_in":3600}'):format(n, current)
end)
