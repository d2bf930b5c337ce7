-- How a loopback server run as a child process tells its spec where it listens: the server
-- binds a free port and writes it to a port file (whole, by a rename); the spec waits for
-- the file. Not a spec itself.
local socket = require "socket"

local M = {}

--- Server side: a LuaSocket server on a free loopback port, published in `portfile`.
-- Returns the server and its port.
function M.listen(portfile)
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local f = assert(io.open(portfile .. ".tmp", "w"))
  f:write(port, "\n")
  f:close()
  assert(os.rename(portfile .. ".tmp", portfile))
  return server, tonumber(port)
end

--- Spec side: the port published in `portfile`, waiting up to `seconds`; nil when none is.
function M.wait(portfile, seconds)
  local deadline = socket.gettime() + seconds
  repeat
    local f = io.open(portfile)
    if f then
      local port = tonumber(f:read("*l"))
      f:close()
      if port then return port end
    end
    socket.sleep(0.01)
  until socket.gettime() >= deadline
  return nil
end

return M
