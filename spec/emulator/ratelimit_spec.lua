-- Rate limits: fixed windows per account and operation (unit tests drive the
-- window arithmetic with a chosen clock; the rest goes through the emulator).
local emu = require "helpers.emulator"

describe("ratelimit windows (unit)", function()
  local ratelimit = require "emulator.ratelimit"
  local OP = { limits = { burst = 2, steady = 3 } }
  local function account(phase)
    return { rl_phase = phase or { burst = 0.5, steady = 10, daily = 0 } }
  end
  before_each(function() ratelimit.reset() end)

  it("allows burst requests per 1 s window aligned to the account's phase", function()
    local a = account()
    assert.is_true((ratelimit.check(a, "op", OP, 100.6)))
    assert.is_true((ratelimit.check(a, "op", OP, 101.4)))
    local ok, retry = ratelimit.check(a, "op", OP, 101.45)
    assert.is_false(ok)
    assert.are.equal(0, retry) -- the window ends at 101.5: "available in 0 seconds"
    -- the next burst window opens at 101.5 (the phase), not at 102
    assert.is_true((ratelimit.check(a, "op", OP, 101.5)))
  end)

  it("refuses over the steady window until its end, with Retry-After in whole seconds", function()
    local a = account()
    -- steady windows: [70, 130), [130, 190) for phase 10
    assert.is_true((ratelimit.check(a, "op", OP, 71)))
    assert.is_true((ratelimit.check(a, "op", OP, 80)))
    assert.is_true((ratelimit.check(a, "op", OP, 90)))
    local ok, retry = ratelimit.check(a, "op", OP, 100.2)
    assert.is_false(ok)
    assert.are.equal(29, retry)
    assert.is_true((ratelimit.check(a, "op", OP, 130)))
  end)

  it("reports limit, remaining and seconds to the steady window's end", function()
    local a = account()
    local ok, _, limit, remaining, reset = ratelimit.check(a, "op", OP, 71.5)
    assert.is_true(ok)
    assert.are.equal(3, limit)
    assert.are.equal(2, remaining)
    assert.are.equal(59, reset) -- ceil(130 - 71.5)
  end)

  it("does not count refused requests", function()
    local a = account()
    ratelimit.check(a, "op", OP, 100.6)
    ratelimit.check(a, "op", OP, 100.7)
    assert.is_false((ratelimit.check(a, "op", OP, 100.8)))
    assert.is_false((ratelimit.check(a, "op", OP, 100.9)))
    assert.is_true((ratelimit.check(a, "op", OP, 101.6)))
    -- 3 counted in the steady window: the 4th is refused
    assert.is_false((ratelimit.check(a, "op", OP, 102.6)))
  end)

  it("counts daily windows where the operation has one", function()
    local a = account()
    local op = { limits = { burst = 10, steady = 100, daily = 2 } }
    assert.is_true((ratelimit.check(a, "d", op, 1000)))
    assert.is_true((ratelimit.check(a, "d", op, 2000)))
    local ok, retry = ratelimit.check(a, "d", op, 3000)
    assert.is_false(ok)
    assert.are.equal(86400 - 3000, retry)
    assert.is_true((ratelimit.check(a, "d", op, 86400)))
  end)

  it("keeps operations and accounts apart", function()
    local a, b = account(), account()
    local one = { limits = { burst = 1, steady = 10 } }
    assert.is_true((ratelimit.check(a, "x", one, 100.6)))
    assert.is_false((ratelimit.check(a, "x", one, 100.7)))
    assert.is_true((ratelimit.check(a, "y", one, 100.7)))
    assert.is_true((ratelimit.check(b, "x", one, 100.7)))
  end)

  it("gives each account its own random phase", function()
    local seen = {}
    for i = 1, 5 do
      local a = {}
      ratelimit.check(a, "x", OP, 1000)
      seen[i] = a.rl_phase.steady
      assert.is_true(a.rl_phase.steady >= 0 and a.rl_phase.steady < 60)
      assert.is_true(a.rl_phase.burst >= 0 and a.rl_phase.burst < 1)
    end
    local distinct = {}
    for _, v in ipairs(seen) do distinct[v] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n > 1)
  end)

  it("applies overrides: off, new numbers, default; and refuses bad ones", function()
    local ops = { x = OP }
    local a = account()
    assert.is_true(ratelimit.override({ x = "off" }, a, ops))
    for _ = 1, 10 do assert.is_true((ratelimit.check(a, "x", OP, 100.6))) end
    assert.is_true(ratelimit.override({ x = { burst = 1 } }, a, ops))
    assert.is_true((ratelimit.check(a, "x", OP, 100.6)))
    assert.is_false((ratelimit.check(a, "x", OP, 100.7)))
    assert.is_true(ratelimit.override({ x = "default" }, a, ops))
    assert.are.equal(OP.limits, ratelimit.limits_for(a, "x", OP))
    assert.is_nil((ratelimit.override({ nope = "off" }, a, ops)))
    assert.is_nil((ratelimit.override({ x = { burst = -1 } }, a, ops)))
    assert.is_nil((ratelimit.override({ x = "sometimes" }, a, ops)))
  end)
end)

describe("rate limits over HTTP", function()
  local acct
  local function event()
    return { data = { type = "event", attributes = {
      properties = {}, metric = { data = { type = "metric", attributes = { name = "RL" } } },
      profile = { data = { type = "profile", attributes = { email = "rl@example.com" } } },
    } } }
  end
  before_each(function()
    emu.reset()
    acct = emu.account()
  end)
  -- global overrides would outlive this file on a shared emulator
  after_each(function() emu.reset() end)

  it("puts RateLimit-* headers with the spec's steady limit on answers", function()
    local st, h = emu.api(acct, "GET", "/api/profiles")
    assert.are.equal(200, st)
    assert.are.equal("750", h["ratelimit-limit"])
    local r1 = tonumber(h["ratelimit-remaining"])
    local reset1 = tonumber(h["ratelimit-reset"])
    assert.is_true(reset1 >= 1 and reset1 <= 60)
    local _, h2 = emu.api(acct, "GET", "/api/profiles")
    local r2 = tonumber(h2["ratelimit-remaining"])
    -- one fewer left, unless the steady window rolled over in between
    assert.is_true(r2 == r1 - 1 or tonumber(h2["ratelimit-reset"]) > reset1)
    local _, he = emu.api(acct, "POST", "/api/events", { body = event() })
    assert.are.equal("3500", he["ratelimit-limit"])
    -- error answers after the check carry them too
    local _, h404 = emu.api(acct, "GET", "/api/profiles/NOPE")
    assert.is_string(h404["ratelimit-limit"])
  end)

  it("answers 429 throttled with Retry-After and no RateLimit-* headers when over", function()
    emu.limits({ create_event = { daily = 2 } }, acct)
    assert.are.equal(202, (emu.api(acct, "POST", "/api/events", { body = event() })))
    assert.are.equal(202, (emu.api(acct, "POST", "/api/events", { body = event() })))
    local st, h, body = emu.api(acct, "POST", "/api/events", { body = event() })
    assert.are.equal(429, st)
    local e = body.errors[1]
    assert.are.equal("throttled", e.code)
    local n = tonumber(h["retry-after"])
    assert.is_number(n)
    assert.are.equal(("Request was throttled. Expected available in %d seconds."):format(n), e.detail)
    assert.is_nil(h["ratelimit-limit"])
    assert.is_nil(h["ratelimit-remaining"])
    assert.is_nil(h["ratelimit-reset"])
  end)

  it("counts per account and per operation", function()
    local other = emu.account()
    emu.limits({ get_metrics = { daily = 1 } }, acct)
    assert.are.equal(200, (emu.api(acct, "GET", "/api/metrics")))
    assert.are.equal(429, (emu.api(acct, "GET", "/api/metrics")))
    assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
    assert.are.equal(200, (emu.api(other, "GET", "/api/metrics")))
  end)

  it("global overrides apply to every account; \"*\":\"off\" switches limits off", function()
    emu.limits { get_metrics = { daily = 1 } }
    local other = emu.account()
    emu.api(other, "GET", "/api/metrics")
    assert.are.equal(429, (emu.api(other, "GET", "/api/metrics")))
    emu.limits { ["*"] = "off", get_metrics = "default" }
    emu.reset()
    local a = emu.account()
    emu.limits { ["*"] = "off" }
    local st, h = emu.api(a, "GET", "/api/metrics")
    assert.are.equal(200, st)
    assert.is_nil(h["ratelimit-limit"])
    local s, body = emu.admin("POST", "limits", { get_metrics = { burst = "many" } })
    assert.are.equal(400, s)
    assert.is_string(body.error)
  end)
end)
