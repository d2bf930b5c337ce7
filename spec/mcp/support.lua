-- Shared by spec/mcp/*_spec.lua (not a spec itself): the MCP server (spec/mcp/server.lua) as a
-- child process spoken to over two FIFOs with raw JSON-RPC lines.
local emulator = require "helpers.emulator"
local cjson = require("cjson").new()
local assert = require "luassert"

local M = {}

local LUA = (jit and "luajit") or ("lua" .. _VERSION:match("%d+%.%d+"))

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Starts a server; returns {send(line), recv() -> decoded reply, pid, close()}.
function M.start(acct, extra)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir) .. " && mkfifo " .. q(dir .. "/in") .. " " .. q(dir .. "/out")))
  local cmd = string.format(
    "(exec env KLAVIYO_API_KEY=%s LUA_PATH=%s LUA_CPATH=%s %s spec/mcp/server.lua --base-url %s %s" ..
    " < %s > %s 2> %s) & echo $! > %s",
    q(acct.private_key), q(package.path), q(package.cpath), LUA, q(emulator.url), extra or "",
    q(dir .. "/in"), q(dir .. "/out"), q(dir .. "/err"), q(dir .. "/pid"))
  assert(os.execute(cmd))
  local input = assert(io.open(dir .. "/in", "w"))
  local output = assert(io.open(dir .. "/out", "r"))
  local s = { dir = dir }
  s.pid = tonumber(slurp(dir .. "/pid"))
  function s.write(bytes) input:write(bytes) end
  function s.send(line)
    input:write(line, "\n")
    input:flush()
  end
  function s.recv()
    local line = output:read("*l")
    assert(line, "the server closed its output; stderr: " .. tostring(slurp(dir .. "/err")))
    return cjson.decode(line), line
  end
  function s.ask(msg)
    s.send(cjson.encode(msg))
    return s.recv()
  end
  function s.ping(id)
    local r = s.ask({ jsonrpc = "2.0", id = id, method = "ping" })
    assert.equal(id, r.id)
    assert.same({}, r.result)
  end
  function s.peak_kb()
    local st = slurp("/proc/" .. s.pid .. "/status") or ""
    return tonumber(st:match("VmHWM:%s*(%d+)"))
  end
  function s.close()
    input:close()
    assert.is_nil(output:read("*l"), "output after the end of input")
    output:close()
    local err = slurp(dir .. "/err")
    os.execute("rm -rf " .. q(dir))
    return err
  end
  return s
end

function M.call(s, id, name, args)
  return s.ask({ jsonrpc = "2.0", id = id, method = "tools/call",
                 params = { name = name, arguments = args } })
end

return M
