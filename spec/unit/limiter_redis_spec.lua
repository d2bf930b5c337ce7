-- The Redis-side limiter script run from Lua, as an nginx (cosocket) or plain-Lua caller
-- would run it: require the module, send EVALSHA/EVAL over a socket. A redis-server of its
-- own on a free port of 18700-18799 is started here and shut down after. The exhaustive
-- checks (many processes, exact waits, failures) are in spec/c/test_limiter_redis.c; this
-- spec shows the module is the single source and works from every Lua.
local socket = require "socket"

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/unit/") or ".")

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

    it("falls back to EVAL after SCRIPT FLUSH", function()
      local k1, k2 = key()
      assert.equal("OK", command(sock, "SCRIPT", "FLUSH"))
      local _, err = command(sock, "EVALSHA", sha, 2, k1, k2, "acquire", 0)
      assert.truthy(err and err:find("^NOSCRIPT"))
      assert.equal(1, assert(run(k1, k2, "acquire", 0))[1])
      assert.same({ 1 }, command(sock, "SCRIPT", "EXISTS", sha))
    end)

    it("refuses bad arguments with a clear error", function()
      local k1, k2 = key()
      local r, err = run(k1, k2, "acquire", 1, 1000000, 0)
      assert.is_nil(r)
      assert.truthy(err:find("klaviyo limiter: limit must be an integer >= 1", 1, true))
    end)
  end)
end)
