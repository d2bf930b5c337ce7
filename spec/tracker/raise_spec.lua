-- An error raised at any step of a delivery (the spool's reads, fsync, ack and compaction,
-- the client's call and batch, an error value whose tostring raises, a rejection) leaves the
-- tracker ready: not busy, the error counted in stats, the events kept and delivered by the
-- next attempt, each exactly once at the emulator. `track` answers its unique_id even when
-- the delivery it starts raises.
local S = require "tracker.support"
local tracker = require "klaviyo.tracker"

local function ev(seq, extra) return S.event("r", seq, extra) end

-- Makes obj[name] raise once (the first call, or the first after `skip` calls), then behave
-- as before. Returns a function telling how many times it raised.
local function raise_once(obj, name, skip, value)
  local real = obj[name]
  local calls, raised = 0, 0
  obj[name] = function(...)
    calls = calls + 1
    if raised == 0 and calls > (skip or 0) then
      raised = 1
      error(value or ("injected failure in " .. name), 0)
    end
    return real(...)
  end
  return function() return raised end
end

-- An error value whose tostring raises, as an answer of the client.
local function unprintable(status)
  return setmetatable({ kind = "http", status = status },
    { __tostring = function() error("tostring of this error raises") end })
end

-- Each step: how to arm it on a tracker, the options it needs, whether a rejected event is
-- among those tracked (the rejection's own steps), whether the events are acknowledged
-- before it, and whether the error reaches the pass (an error value whose tostring raises is
-- shown without raising).
local STEPS = {
  { name = "the spool's fsync before a batch",
    arm = function(t) return raise_once(t.spool, "sync_now") end },
  { name = "the spool's batch read",
    arm = function(t) return raise_once(t.spool, "read_body") end },
  { name = "the client's call",
    arm = function(t) return raise_once(t.client, "call") end },
  { name = "the client's batch (concurrency 2)", opts = { concurrency = 2, batch = 1 },
    arm = function(t) return raise_once(t.client, "batch") end },
  { name = "an error value whose tostring raises, from the client",
    arm = function(t)
      local real, n = t.client.call, 0
      t.client.call = function(...)
        n = n + 1
        if n == 1 then return nil, unprintable(503) end
        return real(...)
      end
      return function() return n >= 1 and 1 or 0 end
    end, raises = false },
  { name = "an error value that raises itself", -- error(table) with a raising __tostring
    arm = function(t) return raise_once(t.client, "call", 0, unprintable(nil)) end },
  { name = "the spool's ack",
    arm = function(t) return raise_once(t.spool, "ack") end },
  { name = "the spool's compaction", opts = { compact_bytes = 1 }, acked = true,
    arm = function(t) return raise_once(t.spool, "compact") end },
  { name = "reading a batch's records to split it around a rejected event", bad = true,
    arm = function(t) return raise_once(t.spool, "read") end },
  { name = "reporting a rejected event", bad = true,
    arm = function(t) return raise_once(t, "reject") end },
}

describe("tracker delivery that raises", function()
  local path
  after_each(function() S.cleanup(path) end)

  for _, step in ipairs(STEPS) do
    it("survives an error raised in " .. step.name, function()
      local acct, flow, client
      acct, flow, client, path = S.fixture("raise")
      local opts = { spool = path, auto = false, backoff_base = 0.01, backoff_cap = 0.02 }
      for k, v in pairs(step.opts or {}) do opts[k] = v end
      local t = assert(tracker.new(client, opts))
      local raised = step.arm(t)
      local expected = {}
      for i = 1, 3 do
        local bad = step.bad and i == 2
        -- a metric name over 128 characters passes the local checks; the server refuses it
        assert(t:track(ev(i, bad and { metric = string.rep("m", 200) } or nil)))
        if not bad then expected[i] = true end
      end
      local ok, err = t:deliver(true)
      assert.are.equal(1, raised())
      assert.is_false(t.delivering) -- not busy
      local st = t:stats()
      if step.raises ~= false then
        assert.is_nil(ok)
        assert.are.equal("delivery", err.kind)
        assert.are.equal(1, st.delivery_errors)
        assert.matches("delivery raised: ", st.last_error, 1, true)
      end
      -- kept unless acknowledged before the raise (compaction follows the acks)
      if step.acked then assert.are.equal(0, st.pending) else assert.is_true(st.pending > 0) end
      -- the next attempt delivers everything, once
      assert.is_true(t:flush(10))
      st = t:stats()
      assert.are.equal(0, st.pending)
      assert.are.equal(step.bad and 1 or 0, st.rejected)
      t:close()
      assert.are.same({ held = step.bad and 2 or 3, missing = 0, extra = 0, twice = 0,
                        runs_bad = 0 }, S.check_exact(acct, flow, expected))
    end)
  end

  it("answers track with the unique_id when the delivery it starts raises", function()
    local acct, flow, client
    acct, flow, client, path = S.fixture("raise")
    local t = assert(tracker.new(client, { spool = path, batch = 1,
      backoff_base = 0.01, backoff_cap = 0.02 }))
    local raised = raise_once(t.client, "call")
    local uid, err = t:track(ev(1))
    assert.is_string(uid, tostring(err))
    assert.are.equal(1, raised())
    assert.is_false(t.delivering)
    assert.are.equal(1, t:stats().delivery_errors)
    assert.is_true(t:flush(10))
    t:close()
    assert.are.same({ held = 1, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true }))
  end)

  it("is not stopped by an infinite or NaN Retry-After", function()
    local acct, flow, client
    acct, flow, client, path = S.fixture("raise")
    local t = assert(tracker.new(client, { spool = path, auto = false,
      backoff_base = 0.01, backoff_cap = 0.02 }))
    local real, n = t.client.call, 0
    t.client.call = function(...)
      n = n + 1
      local ra = ({ math.huge, 0 / 0, -5 })[n]
      if ra then
        return nil, setmetatable({ kind = "http", status = 429, retry_after = ra },
          { __tostring = function() return "429" end })
      end
      return real(...)
    end
    assert(t:track(ev(1)))
    for _ = 1, 3 do
      assert.is_nil((t:deliver(true)))
      assert.is_true(t:stats().retry_in < 2)
    end
    assert.is_true(t:flush(10))
    t:close()
    assert.are.same({ held = 1, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true }))
  end)
end)
