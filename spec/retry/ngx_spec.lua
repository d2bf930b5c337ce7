-- Retries and the Redis limiter store with the ngx transport, run inside nginx through the
-- test bed's /call location (spec/ngx/support.lua) against the emulator: the same rule as the
-- libcurl transport (core.retry_decide), sleeping with ngx.sleep.
local T = require "ngx.support"
local R = require "retry.support"
local emu = T.emu

local function profile(email)
  return { body = { data = { type = "profile", attributes = { email = email } } } }
end

describe("ngx transport: retries and the Redis store", function()
  local rport, rstop
  setup(function()
    T.start()
    rport, rstop = R.redis()
  end)
  teardown(function()
    T.stop()
    if rstop then rstop() end
  end)
  after_each(function() emu.faults(nil) end)

  it("repeats a 503 inside nginx", function()
    local acct = emu.account()
    emu.faults { { operation = "get_lists", status = 503, count = 1 } }
    local doc, r = T.call1(T.opts(acct, nil, { retry = { base = 0.01 } }), "get_lists", {})
    assert.is_table(doc, T.cjson.encode(r))
    local reqs = R.requests(acct, "get_lists")
    assert.equal(2, #reqs)
    assert.equal(503, reqs[1].status)
  end)

  it("does not repeat create_profile after a timeout inside nginx", function()
    local acct = emu.account()
    emu.faults { { operation = "create_profile", delay_ms = 1500, count = 1 } }
    local doc, r = T.call1(T.opts(acct, nil, { timeout = 0.5 }), "create_profile",
      profile("ngx-slow@example.com"))
    assert.is_nil(doc)
    assert.equal("timeout", r.err.code)
    assert.equal(1, #emu.wait_requests(acct, "create_profile", 1))
    R.socket.sleep(0.5)   -- and no second copy after it
    assert.equal(1, #R.requests(acct, "create_profile"))
  end)

  it("uses the Redis store with the same keys as the libcurl transport", function()
    local acct = emu.account()
    local limiter = { store = "redis", url = "redis://127.0.0.1:" .. rport, prefix = "spec-ngx:" }
    local doc = T.call1(T.opts(acct, nil, { limiter = limiter }), "get_lists", {})
    assert.is_table(doc)
    local c = R.client({ limiter = limiter }, acct)
    assert(c:call("get_lists", {}))
    c:close()
    local keys = R.redis_cmd(rport, "KEYS", "spec-ngx:*")
    local names = {}
    for _, k in ipairs(keys) do
      assert.falsy(k:find(acct.private_key, 1, true))
      names[k:match("{(.-)}")] = true
    end
    local n = 0
    for name in pairs(names) do
      n = n + 1
      assert.matches("/get_lists$", name)
    end
    assert.equal(1, n) -- one key for both transports
  end)

  describe("against a hostile server", function()
    local hport, hstop
    setup(function() hport, hstop = R.hostile() end)
    teardown(function() if hstop then hstop() end end)

    local function opts(mode, value, extra) return R.hostile_opts(hport, mode, value, extra) end

    local function timed(o, op)
      local t0 = R.socket.gettime()
      local doc, r = T.call1(o, op, {})
      return doc, r, R.socket.gettime() - t0
    end

    for _, ra in ipairs({ "1e12", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT" }) do
      it("a 429 with Retry-After " .. ra .. " fails at once as throttled inside nginx", function()
        local doc, r, took = timed(opts("ra", ra, { timeout = 2 }), "get_lists")
        assert.is_nil(doc)
        assert.equal("throttled", r.err.kind)
        assert.equal(429, r.err.status)
        assert.equal(86400, r.err.retry_after)
        assert.matches("[retry after 86400s]", r.err.text, 1, true)
        assert.is_true(took < 5, "took " .. took .. " s")
      end)
    end

    it("a Redis store answering a negative or enormous wait refuses inside nginx, no hang", function()
      for _, wait in ipairs({ "-5", "-5000000", "100000000000000000" }) do
        local limiter = { store = "redis", url = "redis://127.0.0.1:" .. hport, prefix = "w=" .. wait .. ":" }
        local doc, r, took = timed(opts("ra", "1", { limiter = limiter }), "get_lists")
        assert.is_nil(doc)
        assert.equal("refused", r.err.kind)
        assert.matches("impossible wait", r.err.detail)
        assert.is_true(took < 3, "took " .. took .. " s")
      end
    end)

    it("a Redis store's wait of a day fails the call at once as throttled inside nginx", function()
      local limiter = { store = "redis", url = "redis://127.0.0.1:" .. hport, prefix = "w=86400000000:" }
      local doc, r, took = timed(opts("ra", "1", { limiter = limiter }), "get_lists")
      assert.is_nil(doc)
      assert.equal("throttled", r.err.kind)
      assert.equal(86400, r.err.retry_after)
      assert.is_true(took < 3, "took " .. took .. " s")
    end)

    it("redacts the key a server echoes inside nginx", function()
      local doc, r = timed(opts("echo", "!", { retry = { attempts = 1 } }), "get_lists")
      assert.is_nil(doc)
      assert.equal(400, r.err.status)
      assert.is_nil(T.cjson.encode(r.err):find(R.HOSTILE_KEY, 1, true))
    end)
  end)

  it("refuses to send when Redis is unreachable inside nginx", function()
    local acct = emu.account()
    local limiter = { store = "redis", url = "redis://127.0.0.1:" .. R.free_port() }
    local doc, r = T.call1(T.opts(acct, nil, { limiter = limiter }), "get_lists", {})
    assert.is_nil(doc)
    assert.equal("refused", r.err.kind)
    assert.equal(0, #R.requests(acct, "get_lists"))
  end)
end)
