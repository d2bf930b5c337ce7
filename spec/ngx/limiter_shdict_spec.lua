-- klaviyo.limiter.shdict with a fake shared dict and a fake clock (pure unit: no nginx).
-- The exact check is the one of spec/c/test_limiter.c: sorted send times t, for every window
-- (W, N): t[i + N] - t[i] >= W for all i, i.e. no half-open interval of length W holds more
-- than N sends; and the full limit is reached (N sends inside the first window).
local shdict = require "klaviyo.limiter.shdict"
local operations = require "klaviyo.operations"

local US = 1000000

-- A fake clock in integer microseconds, read in seconds as ngx.now() would be.
local function fake_clock()
  local c = { us = 1700000000 * US }
  function c.now() return c.us / US end
  function c.advance(seconds) c.us = c.us + math.floor(seconds * US + 0.5) end
  return c
end

-- A fake lua_shared_dict: the operations the limiter uses, with exptime on the fake clock
-- and an optional capacity (number of live entries) past which safe_* fail "no memory".
local function fake_dict(clock, capacity)
  local d, items = {}, {}
  local function live(k)
    local it = items[k]
    if it and it.exp and clock.us >= it.exp then items[k] = nil; return nil end
    return it
  end
  local function count()
    local n = 0
    for k in pairs(items) do if live(k) then n = n + 1 end end
    return n
  end
  local function put(k, v, ttl)
    items[k] = { v = v, exp = (ttl and ttl > 0) and clock.us + math.floor(ttl * US) or nil }
  end
  function d.get(_, k) local it = live(k); return it and it.v end
  function d.add(_, k, v, ttl)
    if live(k) then return false, "exists" end
    put(k, v, ttl); return true
  end
  function d.safe_add(_, k, v, ttl)
    if live(k) then return false, "exists" end
    if capacity and count() >= capacity then return false, "no memory" end
    put(k, v, ttl); return true
  end
  function d.set(_, k, v, ttl) put(k, v, ttl); return true end
  function d.safe_set(_, k, v, ttl)
    if not live(k) and capacity and count() >= capacity then return false, "no memory" end
    put(k, v, ttl); return true
  end
  function d.delete(_, k) items[k] = nil; return true end
  function d.incr(_, k, by, init)
    local it = live(k)
    if not it then put(k, init + by); return init + by end
    it.v = it.v + by
    return it.v
  end
  d.items = items
  return d
end

-- No interval [a, a + W) of `times` (sorted, us) holds more than n sends.
local function check_intervals(times, w_us, n, what)
  for i = 1, #times - n do
    if times[i + n] - times[i] < w_us then
      error(string.format("%s: sends %d and %d are %d us apart, window %d us holds %d > %d",
        what, i, i + n, times[i + n] - times[i], w_us, n + 1, n), 2)
    end
  end
end

-- Number of sends in [from, from + w).
local function count_in(times, from, w_us)
  local n = 0
  for _, t in ipairs(times) do if t >= from and t < from + w_us then n = n + 1 end end
  return n
end

-- Several limiters (workers) on one dict ask as fast as they may, in turns, for `seconds`
-- of fake time; jitter > 0 adds random extra delays. Returns the sorted send times.
local function run(limits, opts)
  local clock = fake_clock()
  local dict = fake_dict(clock)
  local workers = {}
  for i = 1, opts.workers or 1 do
    workers[i] = shdict.new(dict, { clock = clock.now, owner = "w" .. i, safety = opts.safety })
  end
  local times, stop = {}, clock.us + opts.seconds * US
  local rnd = opts.seed and math.random
  if opts.seed then math.randomseed(opts.seed) end
  while clock.us < stop do
    local soonest = math.huge
    for _, w in ipairs(workers) do
      local wait = assert(w:acquire("acct/op", limits))
      if wait == 0 then
        times[#times + 1] = clock.us
        soonest = 0
      elseif wait < soonest then
        soonest = wait
      end
    end
    if soonest > 0 then clock.advance(soonest) end
    if rnd and rnd() < 0.3 then clock.advance(rnd() * 0.01) end
  end
  return times
end

describe("klaviyo.limiter.shdict", function()
  -- Every distinct tier of the operation table.
  local tiers, seen = {}, {}
  for _, op in pairs(operations) do
    local l = op.limits
    if l then
      local k = string.format("%s/%s/%s", tostring(l.burst), tostring(l.steady), tostring(l.daily))
      if not seen[k] then seen[k] = true; tiers[#tiers + 1] = l end
    end
  end
  table.sort(tiers, function(a, b) return (a.steady or 0) < (b.steady or 0) end)

  for _, l in ipairs(tiers) do
    local name = string.format("burst %s steady %s daily %s", tostring(l.burst), tostring(l.steady),
      tostring(l.daily))
    it("never puts more than the limit in any interval, and reaches it: " .. name, function()
      -- Long enough for three steady windows (daily tiers: their daily limit and a bit).
      local seconds = l.daily and 1.5 * 86400 or 185
      for _, workers in ipairs({ 1, 4 }) do
        local times = run(l, { seconds = seconds, workers = workers, seed = workers })
        local t0 = times[1]
        for _, w in ipairs({ { "burst", 1 }, { "steady", 60 }, { "daily", 86400 } }) do
          local n = l[w[1]]
          if n then
            check_intervals(times, w[2] * US, n, name .. " " .. w[1])
            if not (w[1] == "steady" and l.daily and l.daily < n) and
               not (w[1] == "burst" and l.steady < n) then
              -- the full limit is reached inside the first window
              assert.equal(n, count_in(times, t0, w[2] * US), name .. " " .. w[1] .. " reached")
            end
          end
        end
      end
    end)
  end

  it("applies the safety factor (floor, at least 1)", function()
    local times = run({ burst = 10, steady = 100 }, { seconds = 130, safety = 0.5 })
    check_intervals(times, US, 5, "burst")
    check_intervals(times, 60 * US, 50, "steady")
    assert.equal(50, count_in(times, times[1], 60 * US))
    times = run({ burst = 350, steady = 3500 }, { seconds = 70, safety = 0.95 })
    check_intervals(times, 60 * US, 3325, "steady 3500 x 0.95")
    assert.equal(3325, count_in(times, times[1], 60 * US))
    times = run({ burst = 1, steady = 2 }, { seconds = 10, safety = 0.1 })
    check_intervals(times, 60 * US, 1, "steady")
    assert.equal(1, #times)
  end)

  it("answers the exact wait, and nothing is recorded while waiting", function()
    local clock = fake_clock()
    local lim = shdict.new(fake_dict(clock), { clock = clock.now })
    local l = { burst = 2, steady = 10 }
    assert.equal(0, lim:acquire("k", l))
    clock.advance(0.25)
    assert.equal(0, lim:acquire("k", l))
    local wait = lim:acquire("k", l)
    assert.near(0.75, wait, 1e-9)
    clock.advance(0.75 - 0.000001)
    assert.near(0.000001, lim:acquire("k", l), 1e-9)
    clock.advance(0.000001)
    assert.equal(0, lim:acquire("k", l))
  end)

  it("says locked while another worker holds the key, and recovers when its lock expires", function()
    local clock = fake_clock()
    local dict = fake_dict(clock)
    local lim = shdict.new(dict, { clock = clock.now, lock_ttl = 0.5 })
    assert.is_true(dict:add("k#lock", "someone", 0.5))
    local ok, err = lim:acquire("k", { burst = 5 })
    assert.is_nil(ok)
    assert.equal("locked", err)
    clock.advance(0.5)
    assert.equal(0, lim:acquire("k", { burst = 5 }))
    assert.is_nil(dict:get("k#lock"))
  end)

  -- a stalls past its lock_ttl right after dict operation `method` (safe_add: its record is
  -- written, safe_set: its record and the head are), and b asks meanwhile.
  local function stall_after(method)
    local clock = fake_clock()
    local dict = fake_dict(clock)
    local a = shdict.new(dict, { clock = clock.now, owner = function() return "a" end, lock_ttl = 0.5 })
    local b = shdict.new(dict, { clock = clock.now, owner = "b", lock_ttl = 0.5 })
    local l = { burst = 1, steady = 10 }
    local real, fired, b_got = dict[method], false, nil
    dict[method] = function(d, k, v, ttl)
      local r1, r2 = real(d, k, v, ttl)
      if not fired then
        fired = true
        clock.advance(0.6)
        b_got = { b:acquire("k", l) }
      end
      return r1, r2
    end
    local got, err = a:acquire("k", l)
    dict[method] = real
    return clock, b, l, b_got, got, err
  end

  it("a holder that lost its lock inside does not send, and its record still counts", function()
    for _, method in ipairs({ "safe_add", "safe_set" }) do
      local clock, b, l, b_got, got, err = stall_after(method)
      assert.is_nil(got)
      assert.equal("locked", err)
      if method == "safe_set" then
        -- b saw a's record and head: it has to wait, it did not send.
        assert.is_true(b_got[1] > 0)
      else
        -- b found a's record number taken: it did not send either.
        assert.same({ nil, "locked" }, b_got)
      end
      -- a's record counts as a send: the next go comes one burst window after it.
      local wait = assert(b:acquire("k", l))
      assert.near(0.4, wait, 1e-9)
      clock.advance(wait)
      assert.equal(0, b:acquire("k", l))
    end
  end)

  it("a 429's Retry-After blocks the key; a shorter block does not shorten it", function()
    local clock = fake_clock()
    local lim = shdict.new(fake_dict(clock), { clock = clock.now })
    assert.is_true(lim:block("acct/create_event", 3))
    assert.is_true(lim:block("acct/create_event", 1))
    assert.near(3, lim:acquire("acct/create_event", { burst = 10 }), 1e-9)
    assert.near(3, lim:acquire("acct/create_event"), 1e-9)   -- no windows: still blocked
    clock.advance(3)
    assert.equal(0, lim:acquire("acct/create_event", { burst = 10 }))
    assert.equal(0, lim:acquire("other", { burst = 10 }))
  end)

  it("caps a block or a reset longer than a day, refuses NaN, and never answers a longer wait", function()
    local clock = fake_clock()
    local dict = fake_dict(clock)
    local lim = shdict.new(dict, { clock = clock.now })
    for _, huge in ipairs({ 1e12, math.huge }) do
      assert.is_true(lim:block("acct/a", huge))
      assert.equal(86400, lim:acquire("acct/a", { burst = 10 }))
      assert.is_false(lim:observe("acct/b", { steady = 10 }, 0, huge) == nil)
      assert.is_true(lim:acquire("acct/b", { steady = 10 }) <= 86400)
    end
    assert.has_error(function() lim:block("acct/a", 0 / 0) end,
      "klaviyo.limiter.shdict: block: seconds must be a number >= 0")
    assert.has_error(function() lim:observe("acct/a", {}, 0, 0 / 0) end,
      "klaviyo.limiter.shdict: observe: remaining and reset must be numbers >= 0")
    -- damaged data in the dict (a block a thousand years away): an error, not a sleep
    dict:set("acct/c#blocked", clock.us + 1e9 * US)
    local wait, err = lim:acquire("acct/c", { burst = 10 })
    assert.is_nil(wait)
    assert.matches("damaged", err)
  end)

  it("takes the server's RateLimit-Remaining as a cap when it is lower, never raising", function()
    local clock = fake_clock()
    local lim = shdict.new(fake_dict(clock), { clock = clock.now })
    local l = { burst = 100, steady = 10 }
    for _ = 1, 3 do assert.equal(0, lim:acquire("k", l)) end
    assert.is_false(lim:observe("k", l, 7, 30))    -- it already believes 7 are left
    assert.is_false(lim:observe("k", l, 9, 30))    -- never raises
    assert.is_false(lim:observe("k", l, 1, 0))     -- no reset: nothing to cap until
    assert.is_true(lim:observe("k", l, 2, 30))     -- someone else sent 5: 2 more until +30 s
    assert.is_false(lim:observe("k", l, 2, 30))    -- the cap already says so
    assert.equal(0, lim:acquire("k", l))
    assert.is_false(lim:observe("k", l, 1, 30))    -- one left, as the cap says
    assert.is_true(lim:observe("k", l, 0, 40))     -- lower still: none until +40 s
    assert.near(40, lim:acquire("k", l), 1e-9)     -- capped, though the window has room
    assert.is_false(lim:observe("k", l, 0, 50))    -- not lower: the cap stays as it is
    clock.advance(40)
    assert.equal(0, lim:acquire("k", l))           -- the cap is over; the window rules again
    -- with no windows at all, a server's figure is the only limit
    assert.is_true(lim:observe("free", nil, 1, 5))
    assert.equal(0, lim:acquire("free", nil))
    assert.near(5, lim:acquire("free", nil), 1e-9)
  end)

  it("counts the steady window's sends exactly when comparing with the server", function()
    local clock = fake_clock()
    local lim = shdict.new(fake_dict(clock), { clock = clock.now })
    local l = { burst = 100, steady = 10 }
    for _ = 1, 4 do assert.equal(0, lim:acquire("k", l)); clock.advance(10) end
    -- sends at 0, 10, 20, 30; now 40: all four in (now - 60, now], 6 left
    assert.is_false(lim:observe("k", l, 6, 20))
    clock.advance(20.5)                            -- now 60.5: the send at 0 has left
    assert.is_false(lim:observe("k", l, 7, 20))
    assert.is_true(lim:observe("k", l, 6, 20))
  end)

  it("moves past a record whose writer died before moving the head", function()
    local clock = fake_clock()
    local dict = fake_dict(clock)
    local lim = shdict.new(dict, { clock = clock.now })
    local l = { burst = 1, steady = 100 }
    -- what a worker that died between writing its record and the head leaves behind
    assert.is_true(dict:safe_add("k#1", clock.us, 61))
    assert.is_true(dict:add("k#lock", "dead", 1))
    clock.advance(1)                               -- its lock expires
    local ok, err = lim:acquire("k", l)
    assert.is_nil(ok)
    assert.equal("locked", err)
    assert.equal(0, lim:acquire("k", l))           -- its record (1 s old) is the newest now
    assert.equal(2, dict:get("k#head"))
  end)

  it("refuses to send blind when the dict is full", function()
    local clock = fake_clock()
    local dict = fake_dict(clock, 3)
    local lim = shdict.new(dict, { clock = clock.now })
    assert.equal(0, lim:acquire("k", { burst = 100 }))   -- lock + record + head
    local ok, err = lim:acquire("k", { burst = 100 })
    assert.is_nil(ok)
    assert.matches("cannot record a send %(no memory%): make the lua_shared_dict larger", err)
    assert.is_nil(dict:get("k#lock"))
  end)

  it("forgets sends one window after they stop mattering", function()
    local clock = fake_clock()
    local dict = fake_dict(clock)
    local lim = shdict.new(dict, { clock = clock.now })
    for _ = 1, 3 do assert.equal(0, lim:acquire("k", { burst = 3, steady = 5 })) end
    clock.advance(62)
    local live = 0
    for k in pairs(dict.items) do if dict:get(k) ~= nil then live = live + 1 end end
    assert.equal(0, live)
    assert.equal(0, lim:acquire("k", { burst = 3, steady = 5 }))
  end)

  it("raises on bad arguments", function()
    local clock = fake_clock()
    assert.has_error(function() shdict.new(nil, { clock = clock.now }) end,
      "klaviyo.limiter.shdict: expected a shared dict, got nil")
    assert.has_error(function() shdict.new(fake_dict(clock), {}) end,
      "klaviyo.limiter.shdict: option clock must be a function returning seconds")
    assert.has_error(function() shdict.new(fake_dict(clock), { clock = clock.now, safety = 2 }) end,
      "klaviyo.limiter.shdict: option safety must be a number in (0, 1]")
    local lim = shdict.new(fake_dict(clock), { clock = clock.now })
    assert.has_error(function() lim:acquire("", {}) end,
      "klaviyo.limiter.shdict: acquire: key must be a non-empty string")
    assert.has_error(function() lim:acquire("k", { burst = 1.5 }) end,
      "klaviyo.limiter.shdict: limit burst must be a whole number >= 0, got 1.5")
    assert.has_error(function() shdict.check_limits({ bursts = 3 }) end,
      "klaviyo.limiter.shdict: unknown limit bursts (burst, steady, daily)")
    assert.is_true(shdict.check_limits({ burst = 3, steady = 0 }))
  end)
end)
