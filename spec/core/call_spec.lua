-- A request's steps for a driver written in Lua (src/lua_call.c over src/call.c): a call
-- object per request (c:begin); the core says what to do next (ask the driver's limiter
-- store, wait, send, tell the store, stop) and reads what the driver brings back. The driver
-- here is the spec itself: answers go to call:answer as a transport would give them, so
-- nothing goes on the network.
local core = require "klaviyo.core"

local GET = { operation = "get_accounts", method = "GET", path = "/api/accounts/" }
local POST = { operation = "create_event", method = "POST", path = "/api/events/", body = "{}" }

local function with(t, extra)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("klaviyo.core request steps (c:begin, call:next)", function()
  local c
  before_each(function()
    c = assert(core.new { base_url = "http://127.0.0.1:9", api_key = "pk_call_spec",
                          retry_base = 0.001, retry_cap = 0.001 })
  end)
  after_each(function() c:close() end)

  -- A call of `req` begun (`account`: the limiter store's key, or false where the driver holds
  -- no store) whose first step must be `first`.
  local function begun(req, account, first)
    local call = assert(c:begin(req, account))
    assert.equal(first, (call:next()))
    return call
  end

  it("begins with the built request and asks for a send, then is done on a 200", function()
    local call, b = c:begin(GET, false)
    assert(call, b)
    assert.equal("GET", b.method)
    assert.matches("/api/accounts/$", b.url)
    assert.equal("send", (call:next()))
    local res = assert(call:answer(200, { ["Content-Type"] = "application/json" }, "{}"))
    assert.equal(200, res.status)
    assert.equal("done", (call:next()))
    assert.equal(1, call:info().attempts)
  end)

  it("repeats a 503 after a wait it names, and counts the retry", function()
    local call = begun(GET, false, "send")
    local _, err = call:answer(503, {}, "")
    assert.equal("http", err.kind)
    local step, wait = call:next()
    assert.equal("wait", step)
    assert.is_true(wait >= 0 and wait <= 0.001)
    assert.equal("send", (call:next()))
    assert(call:answer(200, {}, "{}"))
    assert.equal("done", (call:next()))
    local info = call:info()
    assert.equal(2, info.attempts)
    assert.equal(1, info.retries)
  end)

  it("fails a 429 whose Retry-After outlasts the call as throttled", function()
    local call = begun(with(GET, { retry_max_time = 5 }), false, "send")
    call:answer(429, { ["Retry-After"] = "100" }, "")
    local step, kind, own = call:next()
    assert.equal("fail", step)
    assert.equal("throttled", kind)
    assert.is_false(own)
    assert.equal(1, call:info().throttled)
  end)

  it("stops a POST that may have been carried out (transport failure after sending)", function()
    local call = begun(POST, false, "send")
    call:failed { code = "timeout", detail = "timed out waiting for the response", sent = true }
    local step, kind = call:next()
    assert.equal("fail", step)
    assert.equal("transport", kind)
    assert.matches("not safe to repeat", call:info().stopped)
  end)

  it("repeats a failure before anything was sent, even for a POST", function()
    local call = begun(POST, false, "send")
    call:failed { code = "connect_failed", detail = "could not connect", sent = false }
    assert.equal("wait", (call:next()))
    assert.equal("send", (call:next()))
  end)

  it("does not repeat a TLS failure", function()
    local call = begun(GET, false, "send")
    call:failed { code = "tls_failed", detail = "certificate", sent = false }
    assert.equal("fail", (call:next()))
    assert.equal("failure is not transient", call:info().stopped)
  end)

  it("keeps two calls of one client apart (requests overlap in a worker)", function()
    local one = assert(c:begin(GET, false))
    local two = assert(c:begin(with(GET, { retry_max_time = 5 }), false))
    assert.equal("send", (one:next()))
    assert.equal("send", (two:next()))
    two:answer(429, { ["Retry-After"] = "100" }, "")
    one:answer(503, {}, "")
    assert.equal("wait", (one:next()))
    local step, kind = two:next()
    assert.same({ "fail", "throttled" }, { step, kind })
    assert.equal(1, one:info().attempts)
    assert.equal(1, two:info().throttled)
    assert.equal(0, one:info().throttled)
  end)

  describe("with the driver's limiter store", function()
    local LIMITED = with(GET, { limits = { burst = 3, steady = 60 } })

    it("asks the store with the key and limits, then sends when it says go", function()
      local call = assert(c:begin(LIMITED, "acct"))
      local step, key, limits = call:next()
      assert.equal("limit", step)
      assert.equal("acct/get_accounts", key)
      assert.same({ burst = 3, steady = 60, daily = 0 }, limits)
      call:limited(0)
      assert.equal("send", (call:next()))
    end)

    it("waits what the store asks, then asks it again", function()
      local call = begun(LIMITED, "acct", "limit")
      call:limited(0.25)
      local step, wait = call:next()
      assert.equal("wait", step)
      assert.equal(0.25, wait)
      assert.equal("limit", (call:next()))
      assert.equal(0.25, call:info().waited)
    end)

    it("fails at once, nothing sent, when the store's wait outlasts the call", function()
      local call = begun(with(LIMITED, { retry_max_time = 1 }), "acct", "limit")
      call:limited(30)
      local step, kind, own, code, _, detail, retry_after = call:next()
      assert.equal("fail", step)
      assert.equal("throttled", kind)
      assert.is_true(own)
      assert.equal("throttled", code)
      assert.matches("nothing sent", detail)
      assert.equal(30, retry_after)
    end)

    it("refuses, nothing sent, when the store cannot answer", function()
      local call = begun(LIMITED, "acct", "limit")
      call:limited(nil, "dict full")
      local step, kind, own, code, _, detail = call:next()
      assert.same({ "fail", "refused", true, "limiter_unavailable" }, { step, kind, own, code })
      assert.matches("dict full", detail)
    end)

    it("tells the store what a 429 and the RateLimit headers said", function()
      local call = begun(LIMITED, "acct", "limit")
      call:limited(0)
      assert.equal("send", (call:next()))
      call:answer(429, { ["Retry-After"] = "2", ["RateLimit-Limit"] = "3", ["RateLimit-Remaining"] = "0",
                      ["RateLimit-Reset"] = "7" }, "")
      local step, key, block, limits, remaining, reset = call:next()
      assert.equal("feed", step)
      assert.equal("acct/get_accounts", key)
      assert.equal(2, block)
      assert.equal(3, limits.burst)
      assert.equal(0, remaining)
      assert.equal(7, reset)
      assert.equal("wait", (call:next()))   -- the retry's wait, at least the Retry-After
    end)

    it("never asks a store when the driver holds none", function()
      begun(LIMITED, false, "send")
    end)
  end)
end)
