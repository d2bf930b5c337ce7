-- Installed-rock check, run by `make rock-check` from a directory outside the source tree with
-- LUA_PATH/LUA_CPATH pointing only at a LuaRocks tree (plus the system's directories, for
-- lua-cjson and LuaSocket). Usage: <lua> check.lua TREE
-- Requires klaviyo from TREE, creates a client and sends one event to the emulator at
-- KLAVIYO_EMULATOR_URL (or one it starts on a free loopback port with LAUNCHER), and checks
-- that the Redis limiter store is there, or clearly absent (KLAVIYO_ROCK_HIREDIS=0). Prints
-- `N passed, N failed` and exits non-zero on any failure.
local tree = assert(arg[1], "usage: check.lua TREE [LAUNCHER]")
local launcher = arg[2]
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local passed, failed = 0, 0
local function check(name, ok, detail)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. (detail and (": " .. tostring(detail)) or ""))
  end
end

local function under_tree(path)
  return type(path) == "string" and path:sub(1, #tree) == tree
end

local function sh_ok(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and b == "exit" and c == 0
end

local url, started = os.getenv("KLAVIYO_EMULATOR_URL"), nil
if (url == nil or url == "") and launcher then
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  local p = io.popen(launcher .. " start --port " .. port .. " 2>&1")
  local out = p:read("*a")
  p:close()
  url = out:match("(http://127%.0%.0%.1:%d+)")
  if url then started = port end
end

local function admin(method, path, body)
  local chunks, src = {}, nil
  local headers = {}
  if body then
    body = cjson.encode(body)
    src = ltn12.source.string(body)
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#body)
  end
  local _, status = http.request { url = url .. "/__emulator/" .. path, method = method,
    headers = headers, source = src, sink = ltn12.sink.table(chunks) }
  return status, cjson.decode(table.concat(chunks) ~= "" and table.concat(chunks) or "null")
end

local ok, klaviyo = pcall(require, "klaviyo")
check("require klaviyo", ok, klaviyo)
if ok then
  check("klaviyo comes from the rock tree", under_tree(debug.getinfo(klaviyo.new, "S").source:sub(2)),
    debug.getinfo(klaviyo.new, "S").source)
  local core = require "klaviyo.core"
  local cpath = package.searchpath and package.searchpath("klaviyo.core", package.cpath)
  if not cpath then -- Lua 5.1 / LuaJIT: walk package.cpath by hand
    for pat in package.cpath:gmatch("[^;]+") do
      local f = pat:gsub("%?", "klaviyo/core")
      local h = io.open(f, "rb")
      if h then h:close() cpath = f break end
    end
  end
  check("klaviyo.core comes from the rock tree", under_tree(cpath), cpath)
  check("klaviyo.core has a version", type(core._VERSION) == "string", core._VERSION)
  check("url of an emulator", url ~= nil, "set KLAVIYO_EMULATOR_URL")
  if url then
    local status, acct = admin("POST", "accounts", {})
    check("emulator account", status == 201 or status == 200, status)
    local client, err = klaviyo.new { api_key = acct.private_key, base_url = url }
    check("klaviyo.new", client ~= nil, err)
    if client then
      local res, cerr = client:call("create_event", { body = { data = { type = "event", attributes = {
        metric = { data = { type = "metric", attributes = { name = "Rock Check" } } },
        profile = { data = { type = "profile", attributes = { email = "rock@example.com" } } },
        properties = { interpreter = _VERSION, jit = (jit and jit.version) or klaviyo.null },
      } } } })
      check("client:call create_event", res == true, cerr)
      client:close()
    end
    -- KLAVIYO_ROCK_HIREDIS=0: the rock was built without hiredis and must say so; otherwise
    -- it has the Redis store (an unreachable Redis is retried later, not refused).
    local no_store = "this build has no Redis store: built without hiredis"
    local rc, rerr = klaviyo.new { api_key = acct.private_key, base_url = url,
                                   limiter = { store = "redis", url = "redis://127.0.0.1:1" } }
    if os.getenv("KLAVIYO_ROCK_HIREDIS") == "0" then
      check("no Redis store, said clearly", rc == nil and rerr and rerr.detail == no_store, rerr)
    else
      check("a Redis store", rc ~= nil, rerr)
    end
    if rc then rc:close() end
  end
end
-- The `klaviyo` command the rock installs into TREE/bin runs on this interpreter's tree and
-- describes an operation from the installed operation table.
local cmd = tree .. "/bin/klaviyo"
local f = io.open(cmd, "r")
check("bin/klaviyo installed", f ~= nil, cmd)
if f then
  f:close()
  local p = io.popen(cmd .. " describe create_event 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  check("klaviyo describe create_event",
    out:find("POST /api/events", 1, true) and out:find("exit=0", 1, true), out)
end
if started then sh_ok(launcher .. " stop --port " .. started .. " >/dev/null 2>&1") end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
