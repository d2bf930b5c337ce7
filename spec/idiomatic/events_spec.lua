-- klaviyo.events against the emulator: create (unique_id), local refusals (nothing sent),
-- create_many in jobs of <= 1000 events and 5 MB, each/get, and a flow that fires once
-- per event even when the first send is reset by the emulator.
local S = require "idiomatic.support"
local emu = S.emu

local event = require "idiomatic.event_fixture"

describe("events:create", function()
  local t
  before_each(function() t = S.setup() end)

  it("sends the event with a generated unique_id and returns it", function()
    local uid = assert(t.events:create(event{ value = 59.9, value_currency = "EUR",
      time = "2026-11-26T12:00:00+02:00", properties = { items = { { sku = "A1", qty = 2 } } } }))
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", uid)
    local reqs = S.requests(t.acct, "create_event")
    assert.equal(1, #reqs)
    assert.equal(202, reqs[1].status)
    local a = S.body(reqs[1]).data.attributes
    assert.equal(uid, a.unique_id)
    assert.equal("2026-11-26T10:00:00+00:00", a.time)
    assert.equal(59.9, a.value)
    assert.equal("EUR", a.value_currency)
    assert.equal("Placed Order", a.metric.data.attributes.name)
    assert.equal("ann@example.com", a.profile.data.attributes.email)
    assert.equal("A1", a.properties.items[1].sku)
  end)

  it("keeps the caller's unique_id, so a resend is recorded once", function()
    local e = event{ unique_id = "order-1001" }
    assert.equal("order-1001", t.events:create(e))
    assert.equal("order-1001", t.events:create(e))
    local all = S.collect(t.events:each())
    assert.equal(1, #all)
  end)

  it("gives different events different unique_ids, so none is dropped as a duplicate", function()
    local a = assert(t.events:create(event()))
    local b = assert(t.events:create(event()))
    assert.are_not.equal(a, b)
    assert.equal(2, #S.collect(t.events:each()))
  end)

  it("reads a profile by id, phone_number or external_id too", function()
    assert(t.events:create(event{ profile = { phone_number = "+15005550006" } }))
    assert(t.events:create(event{ profile = { external_id = "crm-7", first_name = "Bo" } }))
    assert.equal(2, #S.collect(t.events:each()))
  end)

  describe("refuses locally, sending nothing:", function()
    local function refused(e, pattern, pointer)
      local uid, err = S.nothing_sent(t.acct, function() return t.events:create(e) end)
      assert.is_nil(uid)
      assert.equal("refused", err.kind)
      assert.equal("create_event", err.operation)
      assert.matches(pattern, err.detail)
      if pointer then assert.equal(pointer, err.pointer) end
      assert.matches("refused locally", tostring(err))
      return err
    end

    it("a profile without an identifier, naming the ones that work", function()
      local err = refused(event{ profile = { first_name = "Ann", last_name = "Lee" } },
        "no identifier", "/profile")
      assert.matches("email", err.detail)
      assert.matches("external_id", err.detail)
    end)
    it("no metric name", function()
      refused(event{ metric = "" }, "metric name", "/metric")
      local e = event(); e.metric = nil
      refused(e, "metric name", "/metric")
    end)
    it("a phone number not in E.164", function()
      refused(event{ profile = { phone_number = "(500) 555-0006" } }, "E%.164",
        "/profile/phone_number")
    end)
    it("more than 400 properties", function()
      local p = {}
      for i = 1, 401 do p["p" .. i] = i end
      refused(event{ properties = p }, "401 properties", "/properties")
    end)
    it("a string over 100 KB", function()
      refused(event{ properties = { note = string.rep("x", 100 * 1024 + 1) } }, "limit",
        "/properties/note")
    end)
    it("an array over 4000 items", function()
      local a = {}
      for i = 1, 4001 do a[i] = i end
      refused(event{ properties = { ids = a } }, "4001 items", "/properties/ids")
    end)
    it("more than 10 levels of nesting", function()
      local p = { leaf = true }
      for _ = 1, 10 do p = { p = p } end
      refused(event{ properties = p }, "deeper than 10")
    end)
    it("a body over 5 MB", function()
      local p = {}
      for i = 1, 52 do p["s" .. i] = string.rep("y", 100 * 1024) end
      refused(event{ properties = p }, "5 MB")
    end)
    it("a time before 1990 or more than a year ahead", function()
      refused(event{ time = "1989-12-31T23:59:59Z" }, "1990", "/time")
      refused(event{ time = os.time() + 400 * 86400 }, "year ahead", "/time")
      refused(event{ time = "next tuesday" }, "ISO 8601", "/time")
    end)
    it("a time far outside the calendar (years 0000-9999), without raising", function()
      for _, tm in ipairs({ 1e300, -1e300, 2 ^ 63, { year = 1e300, month = 1, day = 1 } }) do
        local ok, uid, err = pcall(t.events.create, t.events, event{ time = tm })
        assert(ok, uid)
        assert.is_nil(uid)
        assert.equal("refused", err.kind)
        assert.matches("out of range", err.detail)
      end
    end)
    it("cyclic tables", function()
      local p = { cart = {} }
      p.cart.back = p
      refused(event{ properties = p }, "cycle", "/properties/cart/back")
    end)
    it("NaN and infinities", function()
      refused(event{ properties = { x = 0 / 0 } }, "NaN", "/properties/x")
      refused(event{ properties = { x = math.huge } }, "infinity", "/properties/x")
      refused(event{ value = -math.huge }, "finite", "/value")
    end)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() t.events:create("Placed Order") end)
    assert.has_error(function() t.events:create(event{ metrc = "x" }) end,
      "events:create: unknown option 'metrc' (known: backfill, metric, profile, properties, " ..
      "service, time, unique_id, value, value_currency)")
    assert.has_error(function() t.events:create(event{ value = "12" }) end)
    assert.has_error(function() t.events:create(event{ backfill = "yes" }) end)
    assert.has_error(function() t.events.create(event()) end)
    assert.equal(0, #S.requests(t.acct))
  end)

  it("returns the server's error and the unique_id when Klaviyo refuses", function()
    local c = assert(S.klaviyo.new{ base_url = emu.url, api_key = "pk_wrong0000000000000000000000" })
    local ev = S.mod(c, "events")
    local uid, err, sent_uid = ev:create(event())
    assert.is_nil(uid)
    assert.equal(401, err.status)
    assert.matches("^%x+%-", sent_uid)
  end)
end)

describe("events:create_many", function()
  local t
  before_each(function() t = S.setup() end)

  it("sends 2,500 events as three jobs of at most 1000", function()
    local list = {}
    for i = 1, 2500 do
      list[i] = event{ profile = { email = ("c%d@example.com"):format(i % 50) },
        properties = { n = i } }
    end
    local r = assert(t.events:create_many(list))
    assert.equal(3, r.jobs)
    assert.equal(2500, r.events)
    assert.equal(2500, #r.unique_ids)
    local jobs = S.requests(t.acct, "bulk_create_events")
    assert.equal(3, #jobs)
    local counts, seen = {}, {}
    for i, rec in ipairs(jobs) do
      assert.equal(202, rec.status)
      local entries = S.body(rec).data.attributes["events-bulk-create"].data
      counts[i] = #entries
      for _, e in ipairs(entries) do
        local uid = e.attributes.events.data[1].attributes.unique_id
        assert.is_nil(seen[uid])
        seen[uid] = true
      end
    end
    assert.same({ 1000, 1000, 500 }, counts)
    -- The emulator made three jobs of them and recorded every event.
    local status, doc = emu.admin("GET", "jobs?settle=1", nil,
      { ["x-emulator-account"] = t.acct.account_id })
    assert.equal(200, status)
    local totals = {}
    for i, j in ipairs(doc.jobs) do
      assert.equal("complete", j.status)
      totals[i] = j.recorded
    end
    assert.same({ 1000, 1000, 500 }, totals)
  end)

  it("splits by size so no job is over 5 MB", function()
    local list = {}
    for i = 1, 30 do
      list[i] = event{ properties = { a = string.rep("a", 90 * 1024), b = string.rep("b", 90 * 1024),
        n = i } }
    end
    local r = assert(t.events:create_many(list))
    assert.equal(2, r.jobs)
    for _, rec in ipairs(S.requests(t.acct, "bulk_create_events")) do
      assert.equal(202, rec.status)
    end
  end)

  it("refuses a list with a hole (# would stop at it, events lost), nothing sent", function()
    local list = {}
    list[1], list[3] = event(), event()
    local r, err = S.nothing_sent(t.acct, function() return t.events:create_many(list) end)
    assert.is_nil(r)
    assert.equal("refused", err.kind)
    assert.equal("/1", err.pointer)
  end)

  it("refuses the whole list when one event is bad, naming it, nothing sent", function()
    local list = {}
    for i = 1, 1500 do list[i] = event() end
    list[1234] = event{ profile = { first_name = "nobody" } }
    local r, err = S.nothing_sent(t.acct, function() return t.events:create_many(list) end)
    assert.is_nil(r)
    assert.equal("bulk_create_events", err.operation)
    assert.equal("/1233/profile", err.pointer)
  end)

  it("stops at the first failed job and says what was accepted", function()
    local list = {}
    for i = 1, 1500 do list[i] = event{ properties = { n = i } } end
    emu.faults({ { operation = "bulk_create_events", status = 400, count = 1 } })
    local r, err, partial = t.events:create_many(list)
    emu.faults(nil)
    assert.is_nil(r)
    assert.equal(400, err.status)
    assert.equal(0, partial.jobs)
    assert.equal(0, partial.events)
    assert.equal(1500, #partial.unique_ids)
    -- the second job (500 events) was not sent: nothing was recorded at all
    assert.equal(0, #S.collect(t.events:each()))
  end)

  it("records the events of the jobs", function()
    local list = {}
    for i = 1, 5 do list[i] = event{ properties = { n = i } } end
    assert(t.events:create_many(list))
    local n = 0
    for _ = 1, 50 do
      n = #S.collect(t.events:each())
      if n == 5 then break end
      emu.sleep(0.1)
    end
    assert.equal(5, n)
  end)
end)

describe("events:each and events:get", function()
  local t
  before_each(function() t = S.setup() end)

  it("iterates flat events with metric and profile ids, and filters by metric", function()
    assert(t.events:create(event{ properties = { n = 1 } }))
    assert(t.events:create(event{ metric = "Viewed Product", properties = { n = 2 } }))
    local all = S.collect(t.events:each())
    assert.equal(2, #all)
    local e = all[1]
    assert.is_string(e.id)
    assert.is_string(e.metric_id)
    assert.is_string(e.profile_id)
    assert.is_table(e.event_properties)
    assert.is_table(e._raw)
    local placed = S.collect(t.events:each{ metric_id = (function()
      for _, x in ipairs(all) do if x.event_properties.n == 1 then return x.metric_id end end
    end)() })
    assert.equal(1, #placed)
    assert.equal(1, placed[1].event_properties.n)
    local one = assert(t.events:get(e.id))
    assert.equal(e.id, one.id)
    assert.equal(e.metric_id, one.metric_id)
  end)

  it("raises at the caller's line for an empty event id, as for every other id", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, msg = pcall(function() local e = t.events:get(""); return e end)
    assert.is_false(ok)
    assert.matches("events_spec.lua:" .. line .. ":", msg, 1, true)
    assert.matches("event id", msg, 1, true)
  end)

  it("returns nil, err for an unknown event", function()
    local e, err = t.events:get("01NOPE0000000000000000000")
    assert.is_nil(e)
    assert.equal(404, err.status)
  end)
end)

describe("a flow triggered by an event", function()
  local t
  before_each(function() t = S.setup() end)
  after_each(function() emu.faults(nil) end)

  it("fires exactly once even when the first send is reset after processing", function()
    -- The metric exists once one event was recorded; a backfilled one starts no flow.
    assert(t.events:create(event{ metric = "Started Checkout", backfill = true }))
    local metric = assert(t.metrics:find("Started Checkout"))
    local flow = assert(t.flows:create{ name = "Abandoned cart", trigger = { metric = metric.id },
      status = "live" })
    assert.equal("live", flow.status)
    emu.faults({ { operation = "create_event", reset = "after", count = 1 } })
    local uid, err = t.events:create(event{ metric = "Started Checkout",
      profile = { email = "cart@example.com" } })
    assert.is_string(uid, tostring(err))
    local runs = emu.flow_runs(t.acct)
    assert.equal(1, #runs)
    assert.equal(flow.id, runs[1].flow_id)
    -- The emulator processed the event twice (the send whose answer was lost, and the
    -- resend), both with the same unique_id; it was recorded once and fired once.
    local sends = 0
    for _, r in ipairs(S.requests(t.acct, "create_event")) do
      local a = S.body(r).data.attributes
      if a.unique_id == uid then sends = sends + 1 end
    end
    assert.equal(2, sends)
    assert.equal(1, #S.collect(t.events:each{ profile_id = runs[1].profile_id }))
  end)

  it("fires once when every automatic resend is lost too and the caller resends", function()
    assert(t.events:create(event{ metric = "Started Checkout", backfill = true }))
    local metric = assert(t.metrics:find("Started Checkout"))
    local flow = assert(t.flows:create{ name = "Cart", trigger = { metric = metric.id },
      status = "live" })
    -- Every answer is lost for a while: the client gives up with the event's unique_id.
    emu.faults({ { operation = "create_event", reset = "after", count = 5 } })
    local e = event{ metric = "Started Checkout", profile = { email = "lost@example.com" } }
    local uid, err, sent_uid = t.events:create(e)
    emu.faults(nil)
    if not uid then
      assert.equal("transport", err.kind)
      assert.is_string(sent_uid)
      e.unique_id = sent_uid
      assert(t.events:create(e))
    end
    assert.equal(1, #emu.flow_runs(t.acct))
    assert.equal(flow.id, emu.flow_runs(t.acct)[1].flow_id)
    assert.equal(1, #S.collect(t.events:each{ profile_id = emu.flow_runs(t.acct)[1].profile_id }))
  end)
end)
