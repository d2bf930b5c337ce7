-- The client-side rate limiter in the send path, against the emulator's real limits:
-- get_flows allows 3 per second and 60 per minute per account.
local S = require "retry.support"
local emu = S.emu

local function burst(c, n)
  local throttled = 0
  for _ = 1, n do
    local ok, err = c:call("get_flows", {})
    if not ok then
      assert.equal(429, err.status, tostring(err))
      throttled = throttled + 1
    end
  end
  return throttled
end

describe("rate limiter", function()
  it("keeps a burst under the emulator's limits: no 429 (get_flows, 3/s)", function()
    local c, acct = S.client { retry = { attempts = 1 } }
    assert.equal(0, burst(c, 8))
    local st = c:stats().get_flows
    assert.equal(8, st.requests)
    assert.equal(0, st.throttled)
    assert.is_true(st.waited > 0)          -- it had to wait for the second and third second
    assert.equal(0, S.count_status(acct, "get_flows", 429))
    c:close()
  end)

  it("the control: the same burst with limiter = false draws 429s", function()
    local c, acct = S.client { limiter = false, retry = { attempts = 1 } }
    local throttled = burst(c, 8)
    assert.is_true(throttled > 0)
    assert.equal(throttled, S.count_status(acct, "get_flows", 429))
    assert.equal(0, c:stats().get_flows.waited)
    c:close()
  end)

  -- Up to a minute: the emulator's steady window is 60 s with a random phase.
  it("RateLimit-Remaining lower than the limiter believes makes it wait (shared key)", function()
    local acct = emu.account()
    emu.limits({ get_lists = { burst = 100, steady = 3 } }, acct)
    -- another process used 2 of the 3: the server's RateLimit-Remaining says so
    local other = S.client({ limiter = false }, acct)
    assert(other:call("get_lists", {}))
    assert(other:call("get_lists", {}))
    local c = S.client({ limits = { get_lists = { steady = 3 } }, retry = { attempts = 1 } }, acct)
    assert(c:call("get_lists", {}))         -- answer: Remaining 0 until the minute's end
    local t0 = S.socket.gettime()
    local ok, err = c:call("get_lists", {}) -- waits for the reset instead of drawing a 429
    assert.is_table(ok, tostring(err))
    assert.is_true(c:stats().get_lists.waited > 0 and S.socket.gettime() - t0 > 0)
    assert.equal(0, S.count_status(acct, "get_lists", 429))
    c:close()
    other:close()
  end)
end)
