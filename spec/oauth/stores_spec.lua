-- The token stores when their medium fails: a store that could not keep the tokens says so
-- (set answers nil, err) and still holds the tokens it had.
local oauth = require "klaviyo.oauth"
local P = require "helpers.process"
local http = require "socket.http"
local nginx = require "helpers.nginx"

-- Starts a one-worker nginx with `conf`, GETs each of `...` in turn, and removes it: its
-- error log and the bodies.
local function in_nginx(conf, ...)
  local n = nginx.start(conf, { workers = 1 })
  local bodies = {}
  for i, path in ipairs({ ... }) do bodies[i] = http.request(n.url .. path) end
  local log = n.log()
  n.remove()
  return log, (table.unpack or unpack)(bodies)
end

describe("klaviyo.oauth file store", function()
  local dir, path
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. P.quote(dir)))
    path = dir .. "/tokens.json"
  end)
  after_each(function() os.execute("rm -rf " .. P.quote(dir)) end)

  -- store_child.lua running `op` ("set" with `access`, or "get") on the store, under `limit`
  -- (a shell ulimit, none when nil) and through `wrapper` (a command, none when nil): what it
  -- printed.
  local function child(limit, op, access, wrapper)
    return P.sh(("%s%s%s %s %s %s %s %s %s 2>&1"):format(limit and (limit .. "; ") or "",
      wrapper and (wrapper .. " ") or "", P.interpreter(),
      P.quote(P.root .. "/spec/oauth/store_child.lua"), P.quote(P.root), P.quote(P.build_dir()),
      P.quote(path), op, P.quote(access or "")))
  end
  local function child_set(access, kib)
    return child(kib and ("trap '' XFSZ; ulimit -f " .. kib), "set", access)
  end

  it("a write that fails (file size limit) answers nil, err and keeps the old file", function()
    local s = oauth.stores.file(path, { access_token = "at_old", refresh_token = "rt_old", expires_at = 1 })
    assert.equal("ok\n", child_set("at_child"))   -- the child itself writes without a limit
    assert.equal("at_child", s:get().access_token)
    local out = child_set("at_" .. string.rep("x", 4000), 1)
    assert.matches("^failed: ", out)
    local t = s:get()
    assert.is_table(t, "the store's file was replaced by a truncated one")
    assert.equal("at_child", t.access_token)
    local left = P.sh("ls -A " .. P.quote(dir))
    assert.equal("tokens.json\n", (left:gsub("tokens%.json%.lock\n", "")), "no temporary file left")
  end)

  -- What makes a rename durable is an fsync of the directory after it (strace shows the calls).
  it("a write reaches the disk: the file's and then the directory's fsync", function()
    oauth.stores.file(path, { access_token = "at_old", refresh_token = "rt_old", expires_at = 1 })
    local trace = dir .. "/strace.out"
    assert.equal("ok\n", child(nil, "set", "at_new", ("strace -f -qq -o %s -e trace=openat,rename,fsync")
      :format(P.quote(trace))))
    local f = assert(io.open(trace))
    local text = f:read("*a")
    f:close()
    local renamed = text:find('rename%("[^"]*", "' .. path:gsub("%p", "%%%0") .. '"%) = 0')
    assert.truthy(renamed, text)
    local after = text:sub(renamed)
    local fd = after:match('openat%([^,]*, "' .. dir:gsub("%p", "%%%0") .. '/?", [^)]*%) = (%d+)')
    assert.truthy(fd, "no open of the directory after the rename:\n" .. after)
    assert.truthy(after:find("fsync%(" .. fd .. "%)%s*= 0"), after)
  end)

  -- A store inside an nginx worker forks the whole worker for each command it runs: set and
  -- lock run none (strace follows every process the child makes).
  it("set and lock start no process and run no command", function()
    oauth.stores.file(path, { access_token = "at_old", refresh_token = "rt_old", expires_at = 1 })
    assert(os.execute("ln -s tokens.json " .. P.quote(dir .. "/link.json")))
    path = dir .. "/link.json"   -- through a symlink: resolved too
    local trace = dir .. "/strace.out"
    assert.equal("ok\n", child(nil, "set_lock", "at_new",
      ("strace -f -qq -o %s -e trace=fork,vfork,clone,clone3,execve"):format(P.quote(trace))))
    local f = assert(io.open(trace))
    local text = f:read("*a")
    f:close()
    local calls = {}
    for line in text:gmatch("[^\n]+") do calls[#calls + 1] = line:match("^%d+%s+(%w+)%(") end
    -- the one execve is strace starting the interpreter itself
    assert.same({ "execve" }, calls, text)
    assert.equal("at_new", oauth.stores.file(dir .. "/tokens.json"):get().access_token)
  end)

  it("a path holding a NUL byte is refused at new, not cut short", function()
    assert.has_error(function() oauth.stores.file(path .. "\0x") end,
      "klaviyo.oauth: file store needs a path (without NUL bytes)")
  end)

  it("a lock that cannot be taken (PATH.lock is a directory) fails the call at once", function()
    local store = oauth.stores.file(path, { access_token = "at_0", refresh_token = "rt_0", expires_at = 0 })
    assert(os.execute("mkdir " .. P.quote(path .. ".lock")))
    local c = assert(require("klaviyo").new { base_url = "http://127.0.0.1:9", limiter = false,
      oauth = { client_id = "cid", client_secret = "cs_lock_0123456789", tokens = store, lock_timeout = 2 } })
    local t0 = require("socket").gettime()
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.is_true(require("socket").gettime() - t0 < 1, tostring(err))
    assert.matches("lock failed: .*Is a directory", tostring(err))
    c:close()
  end)

  it("reads a bounded amount: a path that never ends (/dev/zero) is no tokens, not a raise", function()
    assert(os.execute("ln -s /dev/zero " .. P.quote(path)))
    assert.equal("nil\n", child("ulimit -v 400000", "get"))
  end)

  -- A deployment that links each release's tokens file to one shared file.
  it("through a symlink: writes reach the link's target and share its lock", function()
    assert(os.execute("mkdir -p " .. P.quote(dir .. "/shared")))
    local real = dir .. "/shared/tokens.json"
    oauth.stores.file(real, { access_token = "at_old", refresh_token = "rt_old", expires_at = 1 })
    assert(os.execute("ln -s shared/tokens.json " .. P.quote(path)))
    local via_link, direct = oauth.stores.file(path), oauth.stores.file(real)
    assert(via_link:set { access_token = "at_new", refresh_token = "rt_new", expires_at = 1 })
    assert.equal("link", P.sh("test -L " .. P.quote(path) .. " && echo link"):match("%a+"))
    assert.equal("rt_new", direct:get().refresh_token)
    assert.is_true(via_link:lock(5))
    assert.is_false(direct:lock(5))
    via_link:unlock()
  end)
end)

describe("klaviyo.oauth redis store inside nginx", function()
  local R = require "retry.support"
  local socket = require "socket"

  -- A Redis that answers writes with an error reply, as a replica does after a failover:
  -- a redis-server replicating a master that is not there. Its port and stop().
  local function read_only_redis()
    local port = R.free_port()
    local pidfile = ("/tmp/klaviyo-oauth-spec-redis-%d.pid"):format(port)
    assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no " ..
      "--replicaof 127.0.0.1 %d --daemonize yes --dir /tmp --logfile '' --pidfile %s")
      :format(port, R.free_port(), pidfile)))
    for _ = 1, 250 do
      if R.redis_cmd(port, "PING") == "+PONG" then break end
      socket.sleep(0.02)
    end
    return port, function()
      R.redis_cmd(port, "SHUTDOWN", "NOSAVE")
      os.remove(pidfile)
    end
  end

  it("a write the server refuses (READONLY) answers nil, err, not true", function()
    local port, stop = read_only_redis()
    local _, body = in_nginx(([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /set { content_by_lua_block {
      local s = require("klaviyo.oauth").stores.redis { port = %d, key = "ro" }
      local ok, err = s:set { access_token = "at_new", refresh_token = "rt_new" }
      ngx.say(tostring(ok), " ", tostring(err))
    } }
  }
]]):format(port), "/set")
    stop()
    assert.matches("^nil .*READONLY", body or "")
  end)

  -- A lock the server refuses (here an ACL that leaves out the lock's key) is the store's
  -- failure, said at once: not a wait of lock_timeout blaming another refresh.
  it("a lock Redis refuses fails the call at once, naming Redis's error", function()
    local port, stop = R.redis()
    local log, made, acl, body = in_nginx(([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /make { content_by_lua_block {
      local store = require("klaviyo.oauth").stores.redis { port = %d, key = "acl",
        initial = { access_token = "at_0", refresh_token = "rt_0", expires_at = 0 } }
      package.loaded.acl_client = assert(require("klaviyo").new { base_url = "http://127.0.0.1:9",
        limiter = false, oauth = { client_id = "cid", client_secret = "cs_acl_0123456789",
                                   tokens = store, lock_timeout = 3 } })
      ngx.say("made")
    } }
    location = /call { content_by_lua_block {
      local t0 = ngx.now()
      local ok, err = package.loaded.acl_client:call("get_profiles", {})
      ngx.update_time()
      ngx.say(string.format("%%.1f %%s", ngx.now() - t0, tostring(err)))
    } }
    location = /acl { content_by_lua_block {
      local red = require("nginx.redis"):new()
      assert(red:connect("127.0.0.1", %d))
      ngx.say(tostring(red:acl("setuser", "default", "resetkeys", "~klaviyo:oauth:*")))
    } }
  }
]]):format(port, port), "/make", "/acl", "/call")
    stop()
    assert.equal("made\n", made, log:sub(-2000))
    assert.equal("OK\n", acl)
    local took, text = (body or ""):match("^(%S+) (.*)$")
    assert.is_true(tonumber(took) < 1, tostring(body))
    assert.matches("NOPERM", text or "")
  end)
end)

describe("klaviyo.oauth manager when a refresh outlasts the store's lock", function()

  -- Two light threads of one worker share a shared-dict store whose lock lapses after 1 s;
  -- the first refresh takes 2 s, so the second thread takes the lapsed lock and refreshes
  -- with the refresh token the first is rotating away: it gets invalid_grant.
  it("an invalid_grant for a refresh token already replaced does not mark the store revoked", function()
    local port, stop = require("oauth.loopback").start("rotating_server.lua", 2)
    local log, body = in_nginx(([[
  lua_shared_dict oauth 1m;
  server {
    listen 127.0.0.1:@PORT@;
    location = /race { content_by_lua_block {
      local oauth = require "klaviyo.oauth"
      local cjson = require "cjson"
      local function one(delay)
        ngx.sleep(delay)
        local store = oauth.stores.shdict("oauth", "race", { access_token = "at_0",
          refresh_token = "rt_0", expires_at = 0 })
        local m = oauth.manager({ client_id = "cid", client_secret = "cs_race_0123456789",
          tokens = store, lock_timeout = 1 }, "http://127.0.0.1:%d")
        local tok, err = m:token()
        return tostring(tok) .. " " .. tostring(err and err.kind)
      end
      local a = ngx.thread.spawn(one, 0)
      local b = ngx.thread.spawn(one, 0.1)
      local _, ra = ngx.thread.wait(a)
      local _, rb = ngx.thread.wait(b)
      ngx.say(cjson.encode { a = ra, b = rb, store = cjson.decode(ngx.shared.oauth:get("oauth:race")) })
    } }
  }
]]):format(port), "/race")
    stop()
    local r = require("cjson.safe").decode(body or "")
    assert.is_table(r, tostring(body) .. log:sub(-2000))
    assert.equal("at_1 nil", r.a)
    assert.is_nil(r.store.revoked, body)
    assert.equal("rt_1", r.store.refresh_token, body)
    assert.equal("at_1 nil", r.b, body)   -- the second uses the first one's tokens
  end)
end)

describe("klaviyo.oauth shared-dict store inside nginx", function()
  it("unlock frees only its own lock, and hostile content reads as no tokens", function()
    local log, body = in_nginx([[
  lua_shared_dict oauth 1m;
  server {
    listen 127.0.0.1:@PORT@;
    location = /store { content_by_lua_block {
      local stores = require("klaviyo.oauth").stores
      local a, b, c = stores.shdict("oauth", "k"), stores.shdict("oauth", "k"), stores.shdict("oauth", "k")
      local r = {}
      r[1] = tostring(a:lock(0.1))
      ngx.sleep(0.3)
      r[2] = tostring(b:lock(10))   -- a's lock lapsed
      a:unlock()                    -- must not free b's
      r[3] = tostring(c:lock(10))
      b:unlock()
      r[4] = tostring(c:lock(10))
      for _, v in ipairs({ "{\"access_token\":", "\0\255", "[]" }) do
        ngx.shared.oauth:set("oauth:k", v)
        local ok, t = pcall(a.get, a)
        r[#r + 1] = ok and type(t) or "raised"
      end
      ngx.say(table.concat(r, " "))
    } }
  }
]], "/store")
    assert.equal("true true false true nil nil table\n", body, log:sub(-2000))
  end)
end)

describe("klaviyo.oauth manager when its refresh raises", function()
  -- A client's call from the log phase (no cosockets) raises inside the refresh, while the
  -- store's lock is held; the worker's later calls must not wait for that lock.
  it("the store's lock is released, the raise goes on to the caller", function()
    local log, first, body = in_nginx([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /log { content_by_lua_block { ngx.say("logged") }
      log_by_lua_block {
        local oauth, klaviyo = require "klaviyo.oauth", require "klaviyo"
        local store = oauth.stores.memory { access_token = "at_0", refresh_token = "rt_0", expires_at = 0 }
        package.loaded.raise_store = store
        local c = assert(klaviyo.new { base_url = "http://127.0.0.1:9", limiter = false,
          oauth = { client_id = "cid", client_secret = "cs_raise_0123456789", tokens = store,
                    lock_timeout = 1 } })
        local ok, err = pcall(c.call, c, "get_profiles", {})
        package.loaded.raise_result = tostring(ok) .. " " .. tostring(err):sub(1, 60)
      } }
    location = /after { content_by_lua_block {
      local store = package.loaded.raise_store
      ngx.say(package.loaded.raise_result, "|", tostring(store:lock(1)))
    } }
  }
]], "/log", "/after")
    assert.equal("logged\n", first)
    assert.matches("^false klaviyo: oauth_refresh: cannot send from the nginx log phase", body or "")
    assert.equal("|true\n", (body or ""):sub(-6), body)   -- the lock was free again
    assert.is_nil(log:find("cs_raise_0123456789", 1, true))
  end)
end)
