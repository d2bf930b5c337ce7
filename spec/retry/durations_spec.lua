-- Durations from outside (Retry-After in seconds or as a date, a 429's "available in N
-- seconds", the Redis store's waits) are checked and capped before anything sleeps on them,
-- a wait longer than the call may last fails it at once with kind "throttled", retry
-- max_time bounds the whole call, and a key the server echoes never reaches the error.
-- Every server here is hostile on purpose: spec/retry/hostile_server.lua, started by this
-- spec (spec/retry/ngx_spec.lua runs the same cases inside nginx).
local S = require "retry.support"
local socket, klaviyo = S.socket, S.klaviyo
local errors = require "klaviyo.errors"

local DAY = 86400

-- Runs fn() and returns its results and the seconds it took.
local function timed(fn)
  local t0 = socket.gettime()
  local r = { fn() }
  return r, socket.gettime() - t0
end

-- get_lists on c fails as throttled for a day (the capped wait) within `limit` seconds.
local function throttled_for_a_day(c, limit)
  local r, took = timed(function() return c:call("get_lists", {}) end)
  assert.is_nil(r[1])
  assert.equal("throttled", r[2].kind)
  assert.equal(DAY, r[2].retry_after)
  assert.is_true(took < limit, "took " .. took .. " s")
  c:close()
end

describe("durations from outside", function()
  local port, stop
  setup(function() port, stop = S.hostile() end)
  teardown(function() if stop then stop() end end)

  local function client(mode, value, opts)
    return assert(klaviyo.new(S.hostile_opts(port, mode, value, opts)))
  end

  for _, ra in ipairs({ "1e12", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT", "99999999999999999999999999" }) do
    it("a 429 with Retry-After " .. ra .. " fails at once as throttled, and so does the next call", function()
      local c = client("ra", ra, { timeout = 2 })
      local r, took = timed(function() return c:call("get_lists", {}) end)
      assert.is_nil(r[1])
      local err = r[2]
      assert.equal("throttled", err.kind)
      assert.equal(429, err.status)
      assert.equal(DAY, err.retry_after)
      assert.matches("[retry after 86400s]", tostring(err), 1, true)
      assert.is_true(took < 5, "took " .. took .. " s")
      -- the operation is blocked for the capped wait: the next call does not sleep on it
      r, took = timed(function() return c:call("get_lists", {}) end)
      assert.is_nil(r[1])
      err = r[2]
      assert.equal("throttled", err.kind)
      assert.is_nil(err.status)
      assert.is_true(err.retry_after > DAY - 60 and err.retry_after <= DAY)
      assert.is_string(tostring(err))
      assert.is_true(took < 5, "took " .. took .. " s")
      c:close()
    end)
  end

  it("a call with timeout = 2 facing Retry-After 1e12 returns within a couple of seconds", function()
    throttled_for_a_day(client("ra", "1e12", { timeout = 2, retry = { attempts = 10, max_time = 3600 } }), 5)
  end)

  -- get_lists, tried once, against a server answering 429 in `mode` with `value`: its error
  local function a_429(mode, value)
    local c = client(mode, value, { retry = { attempts = 1 } })
    local ok, err = c:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(429, err.status)
    assert.is_string(tostring(err))
    c:close()
    return err
  end

  for _, case in ipairs({ { "-5", nil }, { "NaN", nil }, { "nan", nil }, { "inf", nil },
                          { "Wed, 21 Oct 2015 07:28:00 GMT", 0 }, { "3", 3 } }) do
    it("Retry-After " .. case[1] .. " reads as " .. tostring(case[2]), function()
      local err = a_429("ra", case[1])
      assert.equal("http", err.kind)
      assert.equal(case[2], err.retry_after)
    end)
  end

  for _, case in ipairs({ { "1e12", DAY }, { "1e999", DAY }, { "-5", nil }, { "nan", nil } }) do
    it("a 429's detail 'Expected available in " .. case[1] .. " seconds' reads as " ..
       tostring(case[2]), function()
      local err = a_429("detail", "Request was throttled. Expected available in " .. case[1] .. " seconds.")
      assert.equal(case[2], err.retry_after)
    end)
  end

  it("retry max_time bounds the whole call, the attempts themselves included", function()
    -- each answer takes 2 s; a retry starts at ~2 s, inside max_time = 3, and its attempt
    -- may only last what is left of the 3 s
    local c = client("slow", "2", { timeout = 30, retry = { max_time = 3, base = 0.05, cap = 0.05 } })
    local r, took = timed(function() return c:call("get_lists", {}) end)
    assert.is_nil(r[1])
    assert.is_true(took < 3.6, "took " .. took .. " s")
    assert.is_true(took > 2.5, "took " .. took .. " s")
    c:close()
  end)

  describe("a Redis store answering an impossible wait", function()
    -- the fake Redis reads the wait to answer (us) from the store's prefix
    local function redis_client(wait, opts)
      local o = { limiter = { store = "redis", url = "redis://127.0.0.1:" .. port,
                              prefix = "w=" .. wait .. ":" } }
      for k, v in pairs(opts or {}) do o[k] = v end
      return client("ra", "1", o)
    end

    for _, wait in ipairs({ "-5", "-5000000", "0", "100000000000000000", "9223372036854775807" }) do
      it(wait .. " us: the C store says limiter_unavailable, nothing sent, no hang", function()
        local c = redis_client(wait)
        local r, took = timed(function() return c:call("get_lists", {}) end)
        assert.is_nil(r[1])
        assert.equal("refused", r[2].kind)
        assert.equal("limiter_unavailable", r[2].code)
        assert.matches("impossible wait", r[2].detail)
        assert.is_true(took < 3, "took " .. took .. " s")
        c:close()
      end)

    end

    it("a day's wait (possible) fails the call at once as throttled", function()
      throttled_for_a_day(redis_client(tostring(DAY * 1000000)), 3)
    end)
  end)

  describe("secrets in server text", function()
    local KEY = S.HOSTILE_KEY
    local function no_key(v, where)
      if type(v) == "string" then
        assert.is_nil(v:find(KEY, 1, true), where .. " holds the key: " .. v)
      elseif type(v) == "table" then
        for k, x in pairs(v) do no_key(k, where); no_key(x, where .. "." .. tostring(k)) end
      end
    end

    it("are redacted from every field of the error and its tostring", function()
      local c = client("echo", "!", { retry = { attempts = 1 } })
      local ok, err = c:call("get_lists", {})
      c:close()
      assert.is_nil(ok)
      assert.equal(400, err.status)
      assert.matches("[redacted]", err.detail, 1, true)
      no_key(err, "err")
      no_key(tostring(err), "tostring(err)")
      no_key(errors.wrap(err).message, "message")
    end)
  end)
end)
