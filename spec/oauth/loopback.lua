-- Shared by spec/oauth/*: the loopback servers that stand in for a token endpoint, run as
-- child processes (token_server.lua, rotating_server.lua, echo_server.lua): starting and
-- stopping one, and the request reading the servers share. Not a spec itself.
local socket = require "socket"

local M = {}

--- Server side: one request from `sock`: its head's lines and its body (by Content-Length).
function M.read_request(sock)
  local lines, len = {}, 0
  while true do
    local line = sock:receive("*l")
    if not line or line == "" then break end
    lines[#lines + 1] = line
    len = tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")) or len
  end
  return lines, len > 0 and sock:receive(len) or ""
end

--- Server side: listens on a free loopback port published in `portfile` and answers every
-- request with answer(head_lines, body) -> status, JSON text, extra header lines (or nil), one
-- connection a request; serves until POST /quit or a minute with no request.
function M.serve(portfile, answer)
  local server = require("helpers.portfile").listen(portfile)
  server:settimeout(60)
  while true do
    local sock = server:accept()
    if not sock then break end
    sock:settimeout(5)
    local lines, body = M.read_request(sock)
    local status, doc, extra = answer(lines, body)
    sock:send("HTTP/1.1 " .. status .. " X\r\nContent-Type: application/json\r\n" .. (extra or "") ..
      "Content-Length: " .. #doc .. "\r\nConnection: close\r\n\r\n" .. doc)
    sock:close()
    if (lines[1] or ""):find("^POST /quit ") then break end
  end
end

--- Spec side: starts spec/oauth/`script` with its port file and `...` as arguments; its port
-- and stop() (POST /quit, which every one of them serves).
function M.start(script, ...)
  local P = require "helpers.process"
  local portfile = os.tmpname()
  os.remove(portfile)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = P.quote(a) end
  assert(os.execute(("%s %s %s %s >/dev/null 2>&1 &"):format(P.interpreter(),
    P.quote(P.root .. "/spec/oauth/" .. script), P.quote(portfile), table.concat(args, " "))))
  local port = require("helpers.portfile").wait(portfile, 5)
  assert(port, script .. " did not start")
  return port, function()
    local s = socket.tcp()
    if s:connect("127.0.0.1", port) then
      s:send("POST /quit HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
      s:receive("*a")
    end
    s:close()
    os.remove(portfile)
  end
end

return M
