-- A loopback OAuth token endpoint that answers what the spec tells it: every request is
-- answered with the status and body in ANSWER_FILE (first line the status, the rest the body),
-- read anew for each request, and its body is appended to LOG_FILE, one line a request.
-- Run as a child process:  lua token_server.lua <port file> <answer file> <log file>
-- It serves until POST /quit.
package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, answer_file, log_file = arg[1], arg[2], arg[3]
local server = require("helpers.portfile").listen(portfile)
server:settimeout(60)

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

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
  local quit = (first or ""):find("^POST /quit ") ~= nil
  local log = io.open(log_file, "ab")
  log:write(tostring(body), "\n")
  log:close()
  local answer = slurp(answer_file)
  local status, doc = answer:match("^(%d+)\n(.*)$")
  sock:send("HTTP/1.1 " .. (status or "500") .. " X\r\nContent-Type: application/json\r\n" ..
    "Content-Length: " .. #(doc or "") .. "\r\nConnection: close\r\n\r\n" .. (doc or ""))
  sock:close()
  if quit then break end
end
