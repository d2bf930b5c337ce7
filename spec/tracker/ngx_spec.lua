-- The tracker inside nginx (LuaJIT in the worker, whatever interpreter runs busted): one
-- spool per worker (`%w`), one ngx.timer.every flusher per worker, /track only appends;
-- every event reaches the emulator once, and a stopping worker closes its tracker (lock
-- released, events left in the spool for the next worker with the same id).
local S = require "tracker.support"
local socket = require "socket"
local http = require "socket.http"

local NGINX = os.getenv("NGINX") or "/usr/sbin/nginx"

local function sh(cmd)
  local f = assert(io.popen(cmd))
  local out = f:read("*a")
  f:close()
  return out
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
%s
worker_processes 2;
daemon on;
master_process on;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/spec/?.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  init_worker_by_lua_block { require("tracker.ngx_app").init_worker(%q, %q, %q) }
  server {
    listen 127.0.0.1:%d;
    location = /track { content_by_lua_block { require("tracker.ngx_app").track() } }
  }
}
]]

describe("tracker in OpenResty", function()
  it("spools per worker, delivers from each worker's timer, and closes on worker exit", function()
    if not exists(NGINX) or not exists("/usr/lib/nginx/modules/ngx_http_lua_module.so") then
      error("nginx with the Lua module is required (apt-get install libnginx-mod-http-lua)")
    end
    local acct, flow = S.account()
    local prefix = os.tmpname()
    os.remove(prefix)
    assert(os.execute("mkdir -p " .. prefix .. "/tmp " .. prefix .. "/spool"))
    local root = sh("cd " .. S.root .. " && pwd"):gsub("%s+$", "")
    local port = free_port()
    local user = sh("id -u"):match("^0%s") and ("user " .. sh("id -un"):gsub("%s+$", "") .. ";") or ""
    local conf = string.format(CONF, user, prefix, prefix, prefix, prefix, prefix, prefix, prefix,
      root, root, root, root, S.emu.url, acct.private_key, prefix .. "/spool", port)
    local f = assert(io.open(prefix .. "/nginx.conf", "wb"))
    f:write(conf)
    f:close()
    local out = sh(string.format("%s -p %s -c %s/nginx.conf 2>&1; echo exit=$?", NGINX, prefix, prefix))
    assert.matches("exit=0", out)
    local function stop()
      local pid = sh("cat " .. prefix .. "/nginx.pid 2>/dev/null"):match("%d+")
      if pid then sh("kill -QUIT " .. pid) end
      for _ = 1, 100 do
        if not exists(prefix .. "/nginx.pid") then break end
        socket.sleep(0.05)
      end
    end
    local ok, err = pcall(function()
      local url = "http://127.0.0.1:" .. port .. "/track?seq="
      local up
      for _ = 1, 100 do
        up = http.request(url .. "0")
        if up then break end
        socket.sleep(0.05)
      end
      assert(up, "nginx did not answer: " .. sh("cat " .. prefix .. "/error.log"))
      local expected, workers = { [0] = true }, {}
      for i = 1, 300 do
        local body, status = http.request(url .. i)
        assert(status == 200, tostring(body) .. sh("tail -5 " .. prefix .. "/error.log"))
        workers[body:match("%d+")] = true
        expected[i] = true
      end
      -- the timers deliver on their own: wait until the emulator holds all of them
      local r
      for _ = 1, 200 do
        r = S.check_exact(acct, flow, expected)
        if r.held >= 301 then break end
        socket.sleep(0.1)
      end
      assert.are.same({ held = 301, missing = 0, extra = 0, twice = 0, runs_bad = 0 }, r)
      for w in pairs(workers) do
        assert.is_true(exists(prefix .. "/spool/events." .. w .. ".spool"))
        assert.is_true(exists(prefix .. "/spool/events." .. w .. ".spool.lock"))
      end
      stop()
      for w in pairs(workers) do
        assert.is_false(exists(prefix .. "/spool/events." .. w .. ".spool.lock"))
      end
      assert.are_not.matches("%[error%]", sh("cat " .. prefix .. "/error.log"))
    end)
    stop()
    sh("rm -rf " .. prefix)
    assert(ok, err)
  end)
end)
