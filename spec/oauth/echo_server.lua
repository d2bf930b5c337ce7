-- A loopback OAuth endpoint that gives back what it was sent: every request is answered
-- 401 {"error": "invalid_client", "error_description": <the request's head and body, and the
-- secret named on the command line>} and a header echoing it. Run as a child process:
--   lua echo_server.lua <port file> <secret>
-- It serves until POST /quit.
local cjson = require "cjson"

package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, secret = arg[1], arg[2]
local server = require("helpers.portfile").listen(portfile)
server:settimeout(60)

while true do
  local sock = server:accept()
  if not sock then break end
  sock:settimeout(5)
  local lines, len = {}, 0
  while true do
    local line = sock:receive("*l")
    if not line or line == "" then break end
    lines[#lines + 1] = line
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
  end
  local body = len > 0 and sock:receive(len) or ""
  local quit = (lines[1] or ""):find("^POST /quit ") ~= nil
  local text = table.concat(lines, "\n") .. "\n" .. tostring(body) .. "\nsecret=" .. secret
  local doc = cjson.encode { error = "invalid_client", error_description = text }
  local auth = ""
  for _, l in ipairs(lines) do auth = l:match("^[Aa]uthorization:%s*(.*)$") or auth end
  sock:send("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nX-Echo: " .. auth ..
    " " .. secret .. "\r\nContent-Length: " .. #doc .. "\r\nConnection: close\r\n\r\n" .. doc)
  sock:close()
  if quit then break end
end
