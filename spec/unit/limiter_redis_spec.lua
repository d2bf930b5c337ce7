-- The Redis-side limiter script run from Lua: EVALSHA/EVAL over a socket, and the nginx store
-- (klaviyo.limiter.redis, lua-resty-redis) inside an nginx this spec starts. A redis-server of
-- its own on a free port of 18700-18799 is started here and shut down after. The exhaustive
-- checks (many processes, exact waits, failures) are in spec/c/test_limiter_redis.c; this
-- spec shows the module is the single source and the nginx store runs it.
local socket = require "socket"

local root = require("helpers.process").root

-- A minimal RESP client: enough for EVAL and a few admin commands.
local function read_reply(sock)
  local line = assert(sock:receive("*l"))
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    return assert(sock:receive(n + 2)):sub(1, n)
  end
  if kind == "*" then
    local t = {}
    for i = 1, tonumber(rest) do t[i] = read_reply(sock) end
    return t
  end
  error("unexpected reply: " .. line)
end

local function command(sock, ...)
  local args = { ... }
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  assert(sock:send(table.concat(out)))
  return read_reply(sock)
end

local function free_port()
  local base = (os.time() + math.floor(socket.gettime() * 1000)) % 100
  for i = 0, 99 do
    local port = 18700 + (base + i) % 100
    local s = socket.bind("127.0.0.1", port)
    if s then
      s:close()
      return port
    end
  end
  error("no free port in 18700-18799")
end

local function connect(port)
  local sock = socket.tcp()
  sock:settimeout(2)
  local ok = sock:connect("127.0.0.1", port)
  if ok then return sock end
  sock:close()
end

describe("klaviyo.limiter.redis_script", function()
  local script = require "klaviyo.limiter.redis_script"

  it("is a string module holding the script", function()
    assert.is_string(script)
    assert.truthy(script:find("redis.call('TIME')", 1, true))
    assert.truthy(script:find("cmd == 'acquire'", 1, true))
  end)

  it("is byte for byte the text the C store embeds (build/gen/redis_script.h)", function()
    local f = assert(io.open(root .. "/build/gen/redis_script.h", "rb"),
      "build/gen/redis_script.h is missing: `make build` generates it")
    local text = f:read("*a")
    f:close()
    local bytes = {}
    for n in text:match("{(.*)}"):gmatch("%d+") do bytes[#bytes + 1] = string.char(tonumber(n)) end
    assert.equal(0, bytes[#bytes]:byte())
    bytes[#bytes] = nil
    assert.equal(script, table.concat(bytes))
  end)

  describe("run by redis-server", function()
    local port, sock, sha
    local n = 0
    local function key()
      n = n + 1
      local k = ("spec-%d-%d"):format(os.time(), n)
      return "klaviyo:limit:{" .. k .. "}:log", "klaviyo:limit:{" .. k .. "}:meta"
    end
    local function run(k1, k2, ...)
      local r, err = command(sock, "EVALSHA", sha, 2, k1, k2, ...)
      if not r and err:find("^NOSCRIPT") then
        r, err = command(sock, "EVAL", script, 2, k1, k2, ...)
      end
      return r, err
    end

    setup(function()
      port = free_port()
      assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no " ..
        "--daemonize yes --dir /tmp --logfile '' --pidfile /tmp/klaviyo-redis-spec-%d.pid")
        :format(port, port)))
      for _ = 1, 250 do
        sock = connect(port)
        if sock and command(sock, "PING") == "PONG" then break end
        if sock then sock:close() end
        sock = nil
        socket.sleep(0.02)
      end
      assert(sock, "redis-server did not come up on " .. port)
      sha = assert(command(sock, "SCRIPT", "LOAD", script))
    end)

    teardown(function()
      if sock then
        sock:send("*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        sock:close()
      end
      os.remove(("/tmp/klaviyo-redis-spec-%d.pid"):format(port or 0))
    end)

    it("answers go, go, then the exact wait (2 per second)", function()
      local k1, k2 = key()
      local a = assert(run(k1, k2, "acquire", 1, 1000000, 2))
      local b = assert(run(k1, k2, "acquire", 1, 1000000, 2))
      local c = assert(run(k1, k2, "acquire", 1, 1000000, 2))
      assert.same({ 1, 0 }, { a[1], a[2] })
      assert.same({ 1, 0 }, { b[1], b[2] })
      assert.equal(0, c[1])
      assert.equal(a[3] + 1000000 - c[3], c[2])
      assert.equal(2, command(sock, "LLEN", k1))
    end)

    it("holds every window it is given, the tightest deciding", function()
      local k1, k2 = key()
      local args = { "acquire", 2, 1000000, 5, 60000000, 1 }
      local a = assert(run(k1, k2, (table.unpack or unpack)(args)))
      local b = assert(run(k1, k2, (table.unpack or unpack)(args)))
      assert.equal(1, a[1])
      assert.equal(0, b[1])
      assert.equal(a[3] + 60000000 - b[3], b[2])
    end)

    it("shares a Retry-After block and never shortens it", function()
      local k1, k2 = key()
      local b = assert(run(k1, k2, "block", 3000000))
      assert.equal(3000000, b[2])
      local short = assert(run(k1, k2, "block", 1000))
      assert.equal(b[3] + 3000000 - short[3], short[2])
      local a = assert(run(k1, k2, "acquire", 1, 1000000, 100))
      assert.equal(0, a[1])
      assert.equal(b[3] + 3000000 - a[3], a[2])
    end)

    it("caps the sends by RateLimit-Remaining until the reset", function()
      local k1, k2 = key()
      local o = assert(run(k1, k2, "observe", 60000000, 100, 1, 30000000))
      assert.same({ 1, 1 }, { o[1], o[2] })
      assert.equal(1, assert(run(k1, k2, "acquire", 1, 60000000, 100))[1])
      local w = assert(run(k1, k2, "acquire", 1, 60000000, 100))
      assert.equal(0, w[1])
      assert.equal(o[3] + 30000000 - w[3], w[2])
      local again = assert(run(k1, k2, "observe", 60000000, 100, 50, 30000000))
      assert.same({ 0, 0 }, { again[1], again[2] })   -- never raises
    end)

    it("counts only the sends inside the observed window, at most its limit", function()
      local k1, k2 = key()
      -- a 60 s window too, so the log keeps the sends that leave the 100 ms one
      local args = { "acquire", 2, 100000, 10, 60000000, 100 }
      local unpack = table.unpack or unpack
      for _ = 1, 3 do assert.equal(1, assert(run(k1, k2, unpack(args)))[1]) end
      socket.sleep(0.15)   -- those 3 leave the 100 ms window
      for _ = 1, 2 do assert.equal(1, assert(run(k1, k2, unpack(args)))[1]) end
      assert.equal(5, command(sock, "LLEN", k1))
      local o = assert(run(k1, k2, "observe", 100000, 10, 9, 50000))
      assert.same({ 0, 8 }, { o[1], o[2] })           -- 10 - 2 in the window: 9 is no news
      local k3, k4 = key()
      for _ = 1, 5 do assert.equal(1, assert(run(k3, k4, "acquire", 1, 60000000, 10))[1]) end
      o = assert(run(k3, k4, "observe", 60000000, 3, 1, 50000))
      assert.same({ 0, 0 }, { o[1], o[2] })           -- a lowered limit: nothing left
    end)

    it("falls back to EVAL after SCRIPT FLUSH", function()
      local k1, k2 = key()
      assert.equal("OK", command(sock, "SCRIPT", "FLUSH"))
      local _, err = command(sock, "EVALSHA", sha, 2, k1, k2, "acquire", 0)
      assert.truthy(err and err:find("^NOSCRIPT"))
      assert.equal(1, assert(run(k1, k2, "acquire", 0))[1])
      assert.same({ 1 }, command(sock, "SCRIPT", "EXISTS", sha))
    end)

    describe("through klaviyo.limiter.redis inside nginx (lua-resty-redis, cosockets)", function()
      local http = require "socket.http"
      local ltn12 = require "ltn12"
      local cjson = require("cjson.safe").new()
      local store_mod = require "klaviyo.limiter.redis"
      local ngx_server, nport

      -- inside nginx's http block: /acquire (a store per worker and URL) and /run
      local NGX = [[
  lua_socket_log_errors off;
  server {
    listen 127.0.0.1:@PORT@;
    location /acquire {
      content_by_lua_block {
        -- one store per worker and URL, as an application would keep it
        local cache = package.loaded["spec.redis_stores"] or {}
        package.loaded["spec.redis_stores"] = cache
        local url = "redis://127.0.0.1:" .. ngx.var.arg_port
        cache[url] = cache[url] or require("klaviyo.limiter.redis").new { url = url, timeout = 0.5 }
        local wait, now = cache[url]:acquire(ngx.var.arg_key, { burst = tonumber(ngx.var.arg_burst) })
        if not wait then
          ngx.status = 503
          ngx.say(now)
          return
        end
        ngx.say(wait, " ", string.format("%.0f", now))
      }
    }
    location /run {
      content_by_lua_block {
        local cjson = require "cjson.safe"
        ngx.req.read_body()
        local input = cjson.decode(ngx.req.get_body_data())
        local port = REDIS_PORT
        local H = { port = port }
        function H.store(suffix, opts)
          opts = opts or {}
          opts.url = opts.url or ("redis://127.0.0.1:" .. port .. (suffix or ""))
          return require("klaviyo.limiter.redis").new(opts)
        end
        function H.cmd(...)
          local red = require("nginx.redis"):new()
          assert(red:connect("127.0.0.1", port))
          local r, e = red[select(1, ...)](red, select(2, ...))
          red:close()
          return r, e
        end
        local fn = assert(loadstring(input.code))
        local res = (function(...) return { n = select("#", ...), ... } end)(
          pcall(fn, H, unpack(input.args)))
        local ok = res[1]
        local out = ok and { ok = true, r = {}, n = res.n - 1 } or { ok = false, err = tostring(res[2]) }
        for i = 1, ok and res.n - 1 or 0 do
          -- numbers as text: Redis times in us need more digits than cjson writes
          local v = res[i + 1]
          out.r[i] = v == nil and cjson.null or type(v) == "number" and { num = ("%.17g"):format(v) } or v
        end
        ngx.say(cjson.encode(out))
      }
    }
  }
]]

      local function name(k) return "klaviyo:limit:{" .. k .. "}:log" end
      local function fresh(tag)
        n = n + 1
        return ("ngx-%s-%d-%d"):format(tag, os.time(), n)
      end

      local function get(path)
        local body, code = http.request(("http://127.0.0.1:%d%s"):format(nport, path))
        return body, code
      end

      -- Runs `code` in an nginx worker as function(H, ...) with H.port (this spec's Redis),
      -- H.store(url_suffix, opts) and H.cmd(...) (a command on its own connection to that
      -- Redis); answers what it returns.
      local function inside(code, ...)
        local chunks = {}
        local raw = assert(cjson.encode({ code = code, args = { ... } }))
        local _, status = http.request {
          url = ("http://127.0.0.1:%d/run"):format(nport), method = "POST",
          headers = { ["content-length"] = tostring(#raw) },
          source = ltn12.source.string(raw), sink = ltn12.sink.table(chunks) }
        local doc = cjson.decode(table.concat(chunks))
        assert(status == 200 and doc, "POST /run: " .. tostring(status) .. " " .. table.concat(chunks))
        assert(doc.ok, doc.err)
        local out = {}
        for i = 1, doc.n do
          local v = doc.r[i]
          if type(v) == "table" and v.num then v = tonumber(v.num) end
          out[i] = v ~= cjson.null and v or nil
        end
        return (table.unpack or unpack)(out, 1, doc.n)
      end

      setup(function()
        local conf = (NGX:gsub("REDIS_PORT", port))
        ngx_server = require("helpers.nginx").start(conf, { workers = 2 })
        nport = ngx_server.port
      end)

      teardown(function()
        if ngx_server then ngx_server.remove() end
      end)

      it("answers go, go, then the exact wait, on the C store's keys", function()
        local k, none = fresh("basic"), fresh("none")
        local w1, t1, w2, w3, t3, n1, n2, n3 = inside([[
          local H, k, none = ...
          local st = H.store()
          local w1, t1 = st:acquire(k, { burst = 2 })
          local w2 = st:acquire(k, { burst = 2 })
          local w3, t3 = st:acquire(k, { burst = 2 })
          return w1, t1, w2, w3, t3, st:acquire(none, {}), st:acquire(none, {}), st:acquire(none, {})
        ]], k, none)
        assert.same({ 0, 0 }, { w1, w2 })
        assert.is_true(math.abs(w3 * 1e6 - (t1 + 1000000 - t3)) < 0.5)
        assert.equal(2, command(sock, "LLEN", name(k)))
        assert.same({ 0, 0, 0 }, { n1, n2, n3 })
        assert.equal(0, command(sock, "EXISTS", name(none)))
      end)

      it("applies the safety factor as the C limiter does", function()
        -- 90 * 0.7 is 62.999... in binary: still 63, as limiter.c rounds
        local go = inside([[
          local H, k = ...
          local st, go = H.store(nil, { safety = 0.7 }), 0
          for _ = 1, 70 do if st:acquire(k, { burst = 90 }) == 0 then go = go + 1 end end
          return go
        ]], fresh("safety"))
        assert.equal(63, go)
      end)

      it("blocks, observes, and falls back to EVAL after SCRIPT FLUSH", function()
        local k, k2 = fresh("feedback"), fresh("observe")
        local blocked_ok, w, now, left, a1, flushed, a2, a3 = inside([[
          local H, k, k2 = ...
          local st = H.store()
          local b = st:block(k, 2.5)
          local w, now = st:acquire(k, { burst = 100 })
          local l = { burst = 100, steady = 100 }
          local left = st:observe(k2, l, 2, 30)
          local a1 = st:acquire(k2, l)
          local flushed = H.cmd("script", "FLUSH")
          return b, w, now, left, a1, flushed, st:acquire(k2, l), st:acquire(k2, l)
        ]], k, k2)
        assert.is_true(blocked_ok)
        local blocked = tonumber(command(sock, "HGET", "klaviyo:limit:{" .. k .. "}:meta", "blocked"))
        assert.is_true(math.abs(w * 1e6 - (blocked - now)) < 0.5 and w > 0 and w <= 2.5)
        assert.equal(2, left)
        assert.equal(0, a1)
        assert.equal("OK", flushed)
        assert.equal(0, a2)
        assert.is_true(a3 > 0)
      end)

      it("reconnects once when Redis dropped the pooled connection", function()
        local w1, killed, w2, err = inside([[
          local H, k = ...
          local st = H.store()
          local w1 = st:acquire(k, { burst = 10 })
          local killed = 0   -- the pooled connections, whose last command ran the script
          for id in H.cmd("client", "LIST"):gmatch("id=(%d+)[^\n]*cmd=evalsha") do
            killed = killed + H.cmd("client", "KILL", "ID", id)
          end
          return w1, killed, st:acquire(k, { burst = 10 })
        ]], fresh("drop"))
        assert.equal(0, w1)
        assert.is_true(killed >= 1)
        assert.equal(0, w2, err)
      end)

      it("selects the database of the URL", function()
        local k = fresh("db")
        assert.equal(0, inside([[
          local H, k = ...
          return (H.store("/3"):acquire(k, { burst = 10 }))
        ]], k))
        assert.equal(0, command(sock, "EXISTS", name(k)))
        assert.equal("OK", command(sock, "SELECT", 3))
        assert.equal(1, command(sock, "LLEN", name(k)))
        assert.equal("OK", command(sock, "SELECT", 0))
      end)

      it("says so when Redis is unreachable, silent, or refuses AUTH; never a go", function()
        local closed = free_port()
        local silent = assert(socket.bind("127.0.0.1", 0))
        local _, sport = silent:getsockname()
        local w1, e1, w2, e2, w3, e3 = inside([[
          local H, closed, sport = ...
          local function ask(url, opts)
            opts = opts or {}
            opts.url = url
            return H.store(nil, opts):acquire("k", { burst = 10 })
          end
          local w1, e1 = ask("redis://127.0.0.1:" .. closed)
          local w2, e2 = ask("redis://127.0.0.1:" .. sport, { timeout = 0.2 })
          -- this server has no password: AUTH is refused
          local w3, e3 = ask("redis://:hunter2@127.0.0.1:" .. H.port)
          return w1, e1, w2, e2, w3, e3
        ]], closed, tonumber(sport))
        silent:close()
        assert.is_nil(w1)
        assert.truthy(e1:find("unreachable at 127.0.0.1:" .. closed, 1, true), e1)
        assert.truthy(e1:find("not sending", 1, true))
        assert.is_nil(w2)
        assert.truthy(e2:find("did not answer", 1, true), e2)
        assert.is_nil(w3)
        assert.truthy(e3:find("refused AUTH", 1, true), e3)
        assert.falsy(e3:find("hunter2", 1, true))
      end)

      it("refuses bad keys and limits as programmer errors", function()
        local raised = { inside([[
          local H = ...
          local st = H.store()
          local out = {}
          for _, a in ipairs({ { "", { burst = 1 } }, { "k", { burst = 1.5 } }, { "k", "350/s" } }) do
            out[#out + 1] = not pcall(st.acquire, st, a[1], a[2])
          end
          return unpack(out)
        ]]) }
        assert.same({ true, true, true }, raised)
      end)

      it("answers go, go, then the exact wait, over pooled connections", function()
        n = n + 1
        local k = ("ngx-%d-%d"):format(os.time(), n)
        local before = tonumber(command(sock, "INFO", "stats"):match("total_connections_received:(%d+)"))
        local answers = {}
        for i = 1, 3 do
          local body, code = get(("/acquire?port=%d&key=%s&burst=2"):format(port, k))
          assert.equal(200, code, body)
          local w, t = body:match("^(%S+) (%d+)")
          answers[i] = { tonumber(w), tonumber(t) }
        end
        assert.same({ 0, 0 }, { answers[1][1], answers[2][1] })
        assert.is_true(math.abs(answers[3][1] * 1e6 - (answers[1][2] + 1000000 - answers[3][2])) < 0.5)
        for _ = 1, 20 do get(("/acquire?port=%d&key=%s-more&burst=100"):format(port, k)) end
        local after = tonumber(command(sock, "INFO", "stats"):match("total_connections_received:(%d+)"))
        -- 23 calls from 2 workers: each worker's connection goes back to its pool
        assert.is_true(after - before <= 2, ("%d new connections"):format(after - before))
      end)

      it("says so when Redis is unreachable", function()
        local body, code = get(("/acquire?port=%d&key=k&burst=2"):format(free_port()))
        assert.equal(503, code)
        assert.truthy(body:find("unreachable at 127.0.0.1:", 1, true), body)
      end)

      it("refuses bad urls and options as programmer errors, and needs nginx", function()
        for _, bad in ipairs { "http://h", "redis://", "redis://h:0", "redis://h:x",
          "redis://h/abc", "redis://pw@h", "redis://h?db=1", "redis://:p%zz@h", "redis://h 1",
          "rediss://h:0" } do
          assert.has_error(function() store_mod.new { url = bad } end)
        end
        assert.has_error(function() store_mod.new { safety = 1.5 } end)
        assert.has_error(function() store_mod.new { timeout = -1 } end)
        assert.has_error(function() store_mod.new { url = "redis://h" } end,
          'klaviyo.limiter.redis.new: needs nginx cosockets; elsewhere use ' ..
          'klaviyo.new{limiter = {store = "redis"}}, the C store')
        local u = assert(store_mod.parse_url("redis://us%40r:p%40ss@[::1]:6380/2"))
        assert.same({ user = "us@r", password = "p@ss", host = "::1", port = 6380, db = 2 }, u)
        assert.same({ password = "x", host = "h", port = 6379, db = 0 },
          store_mod.parse_url("redis://:x@h"))
        assert.same({ host = "h", port = 6380, db = 1, tls = true }, store_mod.parse_url("rediss://h:6380/1"))
      end)
    end)

    it("refuses bad arguments with a clear error", function()
      local k1, k2 = key()
      local r, err = run(k1, k2, "acquire", 1, 1000000, 0)
      assert.is_nil(r)
      assert.truthy(err:find("klaviyo limiter: limit must be an integer >= 1", 1, true))
    end)
  end)
end)
