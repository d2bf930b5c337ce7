-- The body check inside nginx: client:call through the ngx transport refuses a body Klaviyo
-- would refuse before the limiter and the network, as the curl transport does
-- (spec/client/bodies_spec.lua covers every operation).
local T = require "ngx.support"
local S, emu = T.S, T.emu

describe("request bodies through the ngx transport", function()
  setup(function() T.start() end)
  teardown(function() T.stop() end)

  local function no_identifier()
    local body = S.event_body("ngx-body@example.com", "Checked")
    body.data.attributes.profile.data.attributes = { first_name = "Ann" }
    return body
  end

  it("refuses a profile without an identifier, nothing sent", function()
    local acct = emu.account()
    local mark = S.mark()
    local doc, r = T.call1(T.opts(acct), "create_event", { body = no_identifier() })
    assert.is_nil(doc)
    assert.equal("refused", r.err.kind)
    assert.equal("/data/attributes/profile/data/attributes", r.err.pointer)
    assert.same({}, S.since(mark))
  end)

  it("sends it with validate = false, and the emulator refuses it", function()
    local acct = emu.account()
    local mark = S.mark()
    local doc, r = T.call1(T.opts(acct, nil, { validate = false }), "create_event",
      { body = no_identifier() })
    assert.is_nil(doc)
    assert.equal(400, r.err.status)
    assert.equal(1, #S.since(mark))
  end)
end)
