-- An nginx of a spec's own: OpenResty's Lua module on LuaJIT with this checkout's lua/, spec/
-- and build/luajit on its paths, in a fresh temporary prefix, daemonized, listening on a free
-- loopback port. The spec gives what goes inside `http { }` (@PREFIX@, @ROOT@ and @PORT@ in
-- it are filled in) and how many workers. Not a spec itself.
--   local n = require("helpers.nginx").start(HTTP, { workers = 2 })
--   ... n.url, n.prefix, n.log() ...
--   n.remove()
local F = require "helpers.files"
local P = require "helpers.process"
local socket = require "socket"
local unpack = table.unpack or unpack

local M = { NGINX = os.getenv("NGINX") or "/usr/sbin/nginx" }
local MODULES = "/usr/lib/nginx/modules/"

local FRAME = [[
load_module @MODULES@ndk_http_module.so;
load_module @MODULES@ngx_http_lua_module.so;
@USER@
worker_processes @WORKERS@;
daemon on;
master_process on;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path @PREFIX@/tmp;
  proxy_temp_path @PREFIX@/tmp;
  fastcgi_temp_path @PREFIX@/tmp;
  uwsgi_temp_path @PREFIX@/tmp;
  scgi_temp_path @PREFIX@/tmp;
  lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@ROOT@/spec/?.lua;;";
  lua_package_cpath "@ROOT@/build/luajit/?.so;;";
@HTTP@
}
]]

--- Starts nginx with `http` inside its http block, opts.workers (1) worker processes and
-- the directories opts.dirs made in its prefix first; raises with nginx's output when it
-- does not start or listen. Returns {prefix, port, url, log() (error.log so far),
-- stop() (quits and waits for it), remove() (stops it and removes the prefix)}.
function M.start(http, opts)
  opts = opts or {}
  if not F.exists(M.NGINX) or not F.exists(MODULES .. "ngx_http_lua_module.so") then
    error("nginx with the Lua module is required (apt-get install libnginx-mod-http-lua)", 2)
  end
  local prefix = F.tmpdir()
  for _, d in ipairs({ "tmp", unpack(opts.dirs or {}) }) do
    assert(os.execute("mkdir -p " .. P.quote(prefix .. "/" .. d)))
  end
  local port = P.free_port()
  -- as root, nginx's workers would run as nobody, who cannot read the checkout
  local user = P.sh("id -u"):match("^0%s") and ("user " .. P.sh("id -un"):gsub("%s+$", "") .. ";") or ""
  local vars = { MODULES = MODULES, USER = user, WORKERS = tostring(opts.workers or 1),
                 PREFIX = prefix, ROOT = P.absolute_root(), PORT = tostring(port) }
  vars.HTTP = http:gsub("@(%u+)@", vars)
  F.write(prefix .. "/nginx.conf", (FRAME:gsub("@(%u+)@", vars)))
  local n = { prefix = prefix, port = port, url = "http://127.0.0.1:" .. port }
  function n.log() return F.read(prefix .. "/error.log") or "" end
  function n.stop()
    local pid = (F.read(prefix .. "/nginx.pid") or ""):match("%d+")
    if pid then os.execute("kill -QUIT " .. pid .. " 2>/dev/null") end
    local deadline = socket.gettime() + 5
    while F.exists(prefix .. "/nginx.pid") and socket.gettime() < deadline do socket.sleep(0.05) end
  end
  function n.remove()
    n.stop()
    os.execute("rm -rf " .. P.quote(prefix))
  end
  local out = P.sh(("%s -p %s -c %s -e %s 2>&1; echo exit=$?"):format(M.NGINX, P.quote(prefix),
    P.quote(prefix .. "/nginx.conf"), P.quote(prefix .. "/error.log")))
  if not out:find("exit=0", 1, true) then
    n.remove()
    error("nginx did not start: " .. out, 2)
  end
  local ok, err = pcall(P.wait_port, port, 10, n.log)
  if not ok then
    n.remove()
    error(err, 2)
  end
  return n
end

return M
