-- Shared by the specs that need a process of their own: a hostile loopback server
-- (spec/client/loopback_server.lua) started in the background, and a Lua child with an
-- environment of its choosing. Not a spec itself (busted runs *_spec.lua only).
local emu = require "helpers.emulator"
local socket = require "socket"

local M = {}

M.root = emu.root

-- The interpreter running this spec, for child processes, and its C module directory.
function M.interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local lua = arg and arg[i] or "lua"
  if lua:match("busted$") then lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+")) end
  return lua
end

function M.build_dir()
  return M.root .. "/build/" .. (jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+")))
end

local function sh(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return out
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.quote = quote

-- Starts loopback_server.lua in `mode` (with the document `page` for mode "page"), on the
-- port of `url` when given (a page may need to name its own server) or a free one.
-- Returns a server: .port, .url, :requests() (the raw requests it read, oldest first), :stop().
function M.server(mode, page, url)
  local log = os.tmpname()
  local body_file
  if page then
    body_file = os.tmpname()
    local f = assert(io.open(body_file, "wb"))
    f:write(page)
    f:close()
  end
  local port = url and tonumber(url:match(":(%d+)$")) or emu.free_port()
  local pid = tonumber(sh(("%s %s %s %d %s %s >/dev/null 2>&1 & echo $!"):format(
    M.interpreter(), quote(M.root .. "/spec/client/loopback_server.lua"), mode, port, quote(log),
    body_file and quote(body_file) or "")):match("%d+"))
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

-- Runs `script` (a path under spec/) in a child interpreter with `env` (name -> value; false
-- unsets it) and the arguments ROOT BUILD_DIR followed by `args`. Returns its output.
function M.child(script, env, args)
  local parts, set = { "env" }, {}
  for k, v in pairs(env) do   -- env takes its -u options before the assignments
    if v == false then parts[#parts + 1] = "-u " .. k else set[#set + 1] = k .. "=" .. quote(v) end
  end
  for _, a in ipairs(set) do parts[#parts + 1] = a end
  parts[#parts + 1] = M.interpreter()
  parts[#parts + 1] = quote(M.root .. "/spec/" .. script)
  parts[#parts + 1] = quote(M.root)
  parts[#parts + 1] = quote(M.build_dir())
  for _, a in ipairs(args) do parts[#parts + 1] = quote(a) end
  return sh(table.concat(parts, " ") .. " 2>&1")
end

return M
