-- Hostile answers, files and callbacks met by the tracker: whatever they are, nothing
-- accepted is lost, nothing is acknowledged that was not accepted, and delivery goes on.
local S = require "tracker.support"
local tracker = require "klaviyo.tracker"

local emu = S.emu

local function ev(seq, extra) return S.event("h", seq, extra) end

describe("tracker against hostile answers", function()
  local acct, flow, client, path
  before_each(function()
    emu.faults(nil)
    acct, flow, client, path = S.fixture("hostile")
  end)
  after_each(function()
    emu.faults(nil)
    S.cleanup(path)
  end)

  it("settles concurrent jobs after a batch that rejected an event, then failed", function()
    -- [1, 2] answered 413, then 1 alone 413 (rejected), then 2 alone 503: the batch stays,
    -- with a rejection on record; the next pass sends it beside another job and both are
    -- accepted whole
    emu.faults { { operation = "bulk_create_events", status = 413, count = 2 },
                 { operation = "bulk_create_events", status = 503, count = 1 } }
    local t = assert(tracker.new(client, { spool = path, auto = false, batch = 2,
      concurrency = 2, backoff_base = 0.01, backoff_cap = 0.02 }))
    assert(t:track(ev(1)))
    assert(t:track(ev(2)))
    local ok, err, what = t:deliver(true)
    assert.is_nil(ok)
    assert.are.equal("retry", what, tostring(err))
    assert.are.equal(1, t:stats().rejected)
    assert(t:track(ev(3)))
    assert(t:track(ev(4)))
    require("socket").sleep(0.05)
    ok, err = t:deliver(true)
    local st = t:stats()
    assert.is_true(ok, tostring(err))
    assert.are.equal(0, st.delivery_errors, st.last_error)
    assert.are.equal(0, st.pending)
    assert.is_true(t:close())
    assert.are.same({ held = 4, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [2] = true, [3] = true, [4] = true }, { [1] = true }))
  end)
end)
