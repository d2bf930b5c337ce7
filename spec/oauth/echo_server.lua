-- A loopback OAuth endpoint that gives back what it was sent: every request is answered
-- 401 {"error": "invalid_client", "error_description": <the request's head and body, and the
-- secret named on the command line>} and a header echoing it. Run as a child process:
--   lua echo_server.lua <port file> <secret>
-- It serves until POST /quit.
local cjson = require "cjson"

package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, secret = arg[1], arg[2]

require("oauth.loopback").serve(portfile, function(lines, body)
  local text = table.concat(lines, "\n") .. "\n" .. tostring(body) .. "\nsecret=" .. secret
  local doc = cjson.encode { error = "invalid_client", error_description = text }
  local auth = ""
  for _, l in ipairs(lines) do auth = l:match("^[Aa]uthorization:%s*(.*)$") or auth end
  return 401, doc, "X-Echo: " .. auth .. " " .. secret .. "\r\n"
end)
