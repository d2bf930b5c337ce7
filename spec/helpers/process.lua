-- Child processes for specs: the interpreter running busted (children run on the same one)
-- and its build directory, shell quoting, a command's output, this process's pid, a command
-- started in the background, a free loopback port and waiting for one to listen, and a Lua
-- script of spec/ run as a child with an environment of its choosing. Not a spec itself.
local socket = require "socket"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/helpers"
local M = { root = here .. "/../.." }

local function interp_name() return jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+")) end

--- The interpreter running this spec: the first word of the command line (arg[-n]), or the
-- name of this Lua's version where busted was started as a command of its own (or there is
-- no command line, as in nginx).
function M.interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  local lua = arg and arg[i]
  if not lua or lua:match("busted$") then lua = interp_name() end
  return lua
end

--- The directory of klaviyo/core.so built for this interpreter.
function M.build_dir()
  return M.root .. "/build/" .. interp_name()
end

function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs `cmd` in the shell: its standard output.
function M.sh(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return out
end

--- The checkout's root as an absolute path (for programs that run elsewhere, as nginx).
function M.absolute_root()
  return (M.sh("cd " .. M.quote(M.root) .. " && pwd"):gsub("%s+$", ""))
end

--- The pid of the process running busted (what a launched server watches, to quit with it).
function M.my_pid()
  local f = io.popen("echo $PPID")
  local pid = f:read("*l")
  f:close()
  return pid
end

--- A loopback port nothing listens on (now).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Starts `cmd` in the background, its output discarded: its pid.
function M.spawn(cmd)
  return assert(tonumber(M.sh(cmd .. " >/dev/null 2>&1 & echo $!"):match("%d+")), "no pid: " .. cmd)
end

--- Waits up to `seconds` (10) until something accepts connections on loopback `port`;
-- raises naming the port, and `why()` when given, when nothing does.
function M.wait_port(port, seconds, why)
  local deadline = socket.gettime() + (seconds or 10)
  while true do
    local s = socket.connect("127.0.0.1", port)
    if s then s:close() return end
    if socket.gettime() >= deadline then
      error("nothing listens on port " .. port .. (why and (": " .. why()) or ""), 2)
    end
    socket.sleep(0.02)
  end
end

--- Runs `script` (a path under spec/) in a child interpreter with `env` (name -> value; false
-- unsets it) and the arguments ROOT BUILD_DIR followed by `args`. Returns its output.
function M.child(script, env, args)
  local parts, set = { "env" }, {}
  for k, v in pairs(env) do   -- env takes its -u options before the assignments
    if v == false then parts[#parts + 1] = "-u " .. k else set[#set + 1] = k .. "=" .. M.quote(v) end
  end
  for _, a in ipairs(set) do parts[#parts + 1] = a end
  parts[#parts + 1] = M.interpreter()
  parts[#parts + 1] = M.quote(M.root .. "/spec/" .. script)
  parts[#parts + 1] = M.quote(M.root)
  parts[#parts + 1] = M.quote(M.build_dir())
  for _, a in ipairs(args) do parts[#parts + 1] = M.quote(a) end
  return M.sh(table.concat(parts, " ") .. " 2>&1")
end

return M
