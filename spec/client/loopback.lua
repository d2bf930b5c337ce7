-- A hostile loopback server (spec/client/loopback_server.lua) started in the background for the
-- specs whose client blocks in libcurl. Not a spec itself (busted runs *_spec.lua only).
local emu = require "helpers.emulator"
local F = require "helpers.files"
local P = require "helpers.process"
local socket = require "socket"

local M = {}

local quote = P.quote

local function slurp(path) return F.read(path) or "" end

-- Starts loopback_server.lua in `mode` (with the document `page` for mode "page"), on the
-- port of `url` when given (a page may need to name its own server) or a free one.
-- Returns a server: .port, .url, :requests() (the raw requests it read, oldest first), :stop().
function M.server(mode, page, url)
  local log = os.tmpname()
  local body_file
  if page then
    body_file = os.tmpname()
    F.write(body_file, page)
  end
  local port = url and tonumber(url:match(":(%d+)$")) or emu.free_port()
  local pid = P.spawn(("%s %s %s %d %s %s"):format(P.interpreter(),
    quote(P.root .. "/spec/client/loopback_server.lua"), mode, port, quote(log),
    body_file and quote(body_file) or ""))
  local deadline = socket.gettime() + 10
  while not slurp(log):find("^ready\n") do
    assert(socket.gettime() < deadline, "the loopback server did not start")
    socket.sleep(0.01)
  end
  local s = { port = port, url = "http://127.0.0.1:" .. port }
  function s.requests()
    local text, out, pos = slurp(log), {}, 1
    while true do
      local n, after = text:match("^request (%d+)\n()", pos)
      if not n then
        pos = text:find("\n", pos, true)
        if not pos then break end
        pos = pos + 1
      else
        out[#out + 1] = text:sub(after, after + n - 1)
        pos = after + n + 1
      end
    end
    return out
  end
  function s.stop()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") pid = nil end
    os.remove(log)
    if body_file then os.remove(body_file) end
  end
  return s
end

return M
