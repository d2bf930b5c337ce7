-- The token stores when their medium fails: a store that could not keep the tokens says so
-- (set answers nil, err) and still holds the tokens it had.
local oauth = require "klaviyo.oauth"
local P = require "helpers.process"

describe("klaviyo.oauth file store", function()
  local dir, path
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. P.quote(dir)))
    path = dir .. "/tokens.json"
  end)
  after_each(function() os.execute("rm -rf " .. P.quote(dir)) end)

  -- store_set_child.lua writing `access` to the store, under a file size limit of `kib` KiB
  -- (none when nil): what it printed.
  local function child_set(access, kib)
    local limit = kib and ("trap '' XFSZ; ulimit -f " .. kib .. "; ") or ""
    return P.sh(("%s%s %s %s %s %s %s 2>&1"):format(limit, P.interpreter(),
      P.quote(P.root .. "/spec/oauth/store_set_child.lua"), P.quote(P.root), P.quote(P.build_dir()),
      P.quote(path), P.quote(access)))
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
end)

describe("klaviyo.oauth redis store inside nginx", function()
  local http = require "socket.http"
  local R = require "retry.support"
  local nginx = require "helpers.nginx"
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
    local n = nginx.start(([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /set { content_by_lua_block {
      local s = require("klaviyo.oauth").stores.redis { port = %d, key = "ro" }
      local ok, err = s:set { access_token = "at_new", refresh_token = "rt_new" }
      ngx.say(tostring(ok), " ", tostring(err))
    } }
  }
]]):format(port), { workers = 1 })
    local body = http.request(n.url .. "/set")
    n.remove()
    stop()
    assert.matches("^nil .*READONLY", body or "")
  end)
end)
