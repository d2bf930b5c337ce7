-- klaviyo.flows against the emulator: create (metric/list trigger, status), each with
-- status/trigger filters, get with actions, set_status, delete, triggered_by; flows fire
-- only when live.
local S = require "idiomatic.support"

-- A metric exists once an event of it was recorded (a backfilled one starts no flow).
local function metric(t, name)
  assert(t.events:create{ metric = name, backfill = true, profile = { email = "seed@example.com" } })
  return assert(t.metrics:find(name))
end

local DELAY_THEN_EMAIL = {
  { temporary_id = "wait", type = "time-delay", links = { next = "mail" },
    data = { unit = "hours", value = 1, secondary_value = 0, timezone = "profile",
             delay_until_weekdays = { "monday" } } },
  { temporary_id = "mail", type = "send-email", links = { next = S.klaviyo.null },
    data = { message = { from_email = "shop@example.com", from_label = "Shop",
      reply_to_email = "shop@example.com", cc_email = S.klaviyo.null, bcc_email = S.klaviyo.null,
      subject_line = "You left something", preview_text = "", template_id = S.klaviyo.null,
      smart_sending_enabled = true, transactional = false, add_tracking_params = false,
      custom_tracking_params = S.klaviyo.null, additional_filters = S.klaviyo.null,
      name = "Cart email" }, status = "draft" } },
}

describe("flows", function()
  local t
  before_each(function() t = S.setup() end)

  it("creates a metric-triggered flow as a draft, then switches it live", function()
    local m = metric(t, "Started Checkout")
    local f = assert(t.flows:create{ name = "Abandoned cart", trigger = { metric = m.id } })
    assert.equal("draft", f.status)
    assert.equal("Abandoned cart", f.name)
    local def = S.body(S.requests(t.acct, "create_flow")[1]).data.attributes.definition
    assert.same({ { type = "metric", id = m.id } }, def.triggers)
    assert.same({}, def.actions)
    local live = assert(t.flows:set_status(f.id, "live"))
    assert.equal("live", live.status)
    assert.has_error(function() t.flows:set_status(f.id, "on") end)
  end)

  it("fires only when live: draft and manual flows start no run", function()
    local m = metric(t, "Placed Order")
    local f = assert(t.flows:create{ name = "Thanks", trigger = { metric = m.id } })
    local function order(n)
      assert(t.events:create{ metric = "Placed Order", profile = { email = "o@example.com" },
        properties = { n = n } })
    end
    order(1)
    assert(t.flows:set_status(f.id, "manual"))
    order(2)
    assert.equal(0, #S.emu.flow_runs(t.acct))
    assert(t.flows:set_status(f.id, "live"))
    order(3)
    assert.equal(1, #S.emu.flow_runs(t.acct))
  end)

  it("creates with actions and status live in one call, and reads actions back", function()
    local m = metric(t, "Started Checkout")
    local f = assert(t.flows:create{ name = "Cart", trigger = { metric = m.id },
      actions = DELAY_THEN_EMAIL, entry_action_id = "wait", status = "live" })
    assert.equal("live", f.status)
    local full = assert(t.flows:get(f.id, { actions = true }))
    assert.equal(2, #full.actions)
    assert.equal("flow-action", full.actions[1].type)
    local with_msgs = assert(t.flows:get(f.id, { messages = true }))
    local by_type = {}
    for _, a in ipairs(with_msgs.actions) do by_type[a.definition.type] = a end
    assert.same({}, by_type["time-delay"].messages)
    local mail = by_type["send-email"].messages
    assert.equal(1, #mail)
    assert.equal("email", mail[1].channel)
    assert.equal("You left something", mail[1].definition.subject_line)
    local again = assert(t.flows:get(f.id, { messages = true }))
    for _, a in ipairs(again.actions) do
      if a.definition.type == "send-email" then assert.equal(mail[1].id, a.messages[1].id) end
    end
    local plain = assert(t.flows:get(f.id))
    assert.is_nil(plain.actions)
    local with_def = assert(t.flows:get(f.id, { definition = true }))
    assert.equal(m.id, with_def.definition.triggers[1].id)
    assert.equal("Cart", plain.name)
  end)

  it("iterates with status and trigger filters", function()
    local m = metric(t, "Viewed Product")
    local l = assert(t.lists:create{ name = "Welcome" })
    assert(t.flows:create{ name = "Browse", trigger = { metric = m.id }, status = "live" })
    assert(t.flows:create{ name = "Browse draft", trigger = { metric = m.id } })
    assert(t.flows:create{ name = "Welcome", trigger = { list = l.id }, status = "live" })
    local function names(q)
      local out = {}
      for f, err in t.flows:each(q) do assert(f, tostring(err)); out[#out + 1] = f.name end
      table.sort(out)
      return out
    end
    assert.same({ "Browse", "Browse draft", "Welcome" }, names())
    assert.same({ "Browse", "Welcome" }, names{ status = "live" })
    assert.same({ "Browse", "Browse draft" }, names{ trigger = "metric" })
    assert.same({ "Welcome" }, names{ trigger = "list", status = "live" })
    assert.has_error(function() t.flows:each{ status = "paused" } end)
  end)

  it("finds the flows a metric, a list or a segment triggers", function()
    local m = metric(t, "Started Checkout")
    local l = assert(t.lists:create{ name = "VIP" })
    local fm = assert(t.flows:create{ name = "M", trigger = { metric = m.id } })
    local fl = assert(t.flows:create{ name = "L", trigger = { list = l.id } })
    local by_m = assert(t.flows:triggered_by{ metric = m.id })
    assert.equal(1, #by_m); assert.equal(fm.id, by_m[1].id)
    local by_l = assert(t.flows:triggered_by{ list = l.id })
    assert.equal(1, #by_l); assert.equal(fl.id, by_l[1].id)
    local p = assert(t.profiles:create{ email = "seg@example.com" })
    local seg = S.emu.segment{ account = t.acct.account_id, name = "Everyone", profile_ids = { p.id } }
    local seg_id = seg.id or (seg.data and seg.data.id)
    local fs = assert(t.flows:create{ name = "S", trigger = { segment = seg_id } })
    local by_s = assert(t.flows:triggered_by{ segment = seg_id })
    assert.equal(1, #by_s); assert.equal(fs.id, by_s[1].id)
    assert.same(by_m[1].id, assert(t.metrics:flows(m.id))[1].id)
    assert.has_error(function() t.flows:triggered_by{ metric = m.id, list = l.id } end)
    assert.has_error(function() t.flows:triggered_by{} end)
  end)

  it("deletes a flow", function()
    local m = metric(t, "Started Checkout")
    local f = assert(t.flows:create{ name = "Gone", trigger = { metric = m.id } })
    assert.is_true(t.flows:delete(f.id))
    local g, err = t.flows:get(f.id)
    assert.is_nil(g)
    assert.equal(404, err.status)
  end)

  it("refuses a nameless flow locally and passes the server's 400 for a bad trigger", function()
    local f, err = S.nothing_sent(t.acct, function()
      return t.flows:create{ name = "", trigger = { metric = "M" } }
    end)
    assert.is_nil(f)
    assert.equal("refused", err.kind)
    local g, err2 = t.flows:create{ name = "Bad", trigger = { metric = "01NOSUCHMETRIC000000000000" } }
    assert.is_nil(g)
    assert.equal(400, err2.status)
    assert.has_error(function() t.flows:create{ name = "x", trigger = { metric = "a", list = "b" } } end)
    assert.has_error(function() t.flows:create{ name = "x" } end)
  end)
end)
