-- A loopback OAuth token endpoint that answers what the spec tells it: every request is
-- answered with the status and body in ANSWER_FILE (first line the status, the rest the body),
-- read anew for each request, and its body is appended to LOG_FILE, one line a request.
-- Run as a child process:  lua token_server.lua <port file> <answer file> <log file>
-- It serves until POST /quit.
package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, answer_file, log_file = arg[1], arg[2], arg[3]

require("oauth.loopback").serve(portfile, function(_, body)
  local log = io.open(log_file, "ab")
  log:write(body, "\n")
  log:close()
  local f = io.open(answer_file, "rb")
  local answer = f and f:read("*a") or ""
  if f then f:close() end
  local status, doc = answer:match("^(%d+)\n(.*)$")
  return status or 500, doc or ""
end)
