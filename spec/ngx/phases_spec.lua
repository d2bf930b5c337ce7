-- In nginx phases without cosockets a send is refused before anything leaves, with an error
-- naming the phase and pointing to ngx.timer.at; from a timer (the remedy) it is sent.
-- The test bed's app tries a create_event in each phase and keeps the outcome (see
-- spec/ngx/lua/ngxapp/phases.lua); init and init_worker try at start-up.
local T = require "ngx.support"
local S, emu = T.S, T.emu

describe("ngx transport phases", function()
  setup(function() T.start() end)
  teardown(function() T.stop() end)

  local acct
  before_each(function()
    emu.faults(nil)
    acct = emu.account()
    local status, doc, raw = T.request("POST", "/configure", T.opts(acct))
    assert(status == 200, tostring(raw))
    assert.is_true(doc.ok)
  end)

  -- The outcome recorded for `phase` (polls: log runs after the answer has gone).
  local function outcome(phase)
    for _ = 1, 100 do
      local status, _, raw = T.request("GET", "/phase/result?name=" .. phase)
      if status == 200 then return (raw:gsub("\n$", "")) end
      emu.sleep(0.02)
    end
    error("no outcome recorded for phase " .. phase)
  end

  local function refused(phase, text)
    assert.matches("^raised: ", text)
    assert.matches("create_event: cannot send from the nginx " .. phase .. " phase", text, 1, true)
    assert.matches(phase .. "_by_lua* has no cosockets", text, 1, true)
    assert.matches("ngx.timer.at(0, function() ... end)", text, 1, true)
  end

  for _, phase in ipairs({ "init", "init_worker" }) do
    it("refuses to send from " .. phase .. "_by_lua", function()
      refused(phase, outcome(phase))
    end)
  end

  for _, phase in ipairs({ "set", "header_filter", "body_filter", "log" }) do
    it("refuses to send from " .. phase .. "_by_lua, sending nothing", function()
      local mark = S.mark()
      local status = T.request("GET", "/phase/" .. phase)
      assert.equal(200, status)
      refused(phase, outcome(phase))
      assert.equal(mark, S.mark())
    end)
  end

  it("a client made in init_by_lua (once, in the master) sends from the workers", function()
    local status, _, raw = T.request("POST", "/configure", T.opts(acct, "oauth"))
    assert.equal(200, status, raw)
    local mark = S.mark()
    local doc
    status, doc, raw = T.request("GET", "/init-client")
    assert.equal(200, status, raw)
    assert.equal("ngx", doc.transport)
    assert.equal(200, doc.status, raw)
    local recs = T.since(mark, "get_profiles")
    assert.equal(1, #recs)
    assert.equal("Bearer ***", S.header(recs[1], "authorization"))
  end)

  it("sends from ngx.timer.at, as the refusal suggests", function()
    local mark = S.mark()
    local status, _, raw = T.request("GET", "/phase/timer")
    assert.equal(200, status)
    assert.equal("scheduled\n", raw)
    assert.equal("sent", outcome("timer"))
    local recs = T.since(mark, "create_event")
    assert.equal(1, #recs)
    assert.equal(202, recs[1].status)
  end)
end)
