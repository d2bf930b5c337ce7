-- Pure unit specs for klaviyo.validate: the local checks that keep bad data off the network.
local V = require "klaviyo.validate"

-- Each case {value, message pattern, pointer}: check(value, at) refuses it with that message
-- at that pointer.
local function refuses(check, at, cases)
  for _, c in ipairs(cases) do
    local ok, msg, ptr = check(c[1], at)
    assert.is_nil(ok)
    assert.matches(c[2], msg)
    assert.equal(c[3], ptr)
  end
end

describe("validate.is_e164", function()
  it("accepts + and 7..15 digits without a leading zero", function()
    assert.is_true(V.is_e164("+15005550006"))
    assert.is_true(V.is_e164("+4915123456789"))
    assert.is_true(V.is_e164("+6834001"))           -- 7 digits (Niue)
    assert.is_true(V.is_e164("+123456789012345"))   -- 15 digits
  end)
  it("refuses national formats, spaces, leading zeros, too short or too long", function()
    for _, s in ipairs({ "5005550006", "(500) 555-0006", "+1 500 555 0006", "+05005550006",
                         "+123456", "+1234567890123456", "", "+", "+1500555000a" }) do
      assert.is_false(V.is_e164(s), s)
    end
    assert.is_false(V.is_e164(15005550006))
  end)
end)

describe("validate.is_email", function()
  it("accepts ordinary addresses and refuses malformed ones", function()
    assert.is_true(V.is_email("a@b.com"))
    assert.is_true(V.is_email("first.last+tag@sub.example.co.uk"))
    for _, s in ipairs({ "a@b", "ab.com", "a@@b.com", "a b@c.com", "a@b..com", "@b.com", "a@.com" }) do
      assert.is_false(V.is_email(s), s)
    end
  end)
end)

describe("validate.profile_identity", function()
  it("needs at least one identifier and says which work", function()
    local ok, msg = V.profile_identity({ first_name = "Ann" })
    assert.is_nil(ok)
    assert.matches("id, email, phone_number", msg, 1, true)
    assert.matches("external_id", msg, 1, true)
  end)
  it("checks the phone number is E.164 and points at it", function()
    local ok, msg, ptr = V.profile_identity({ phone_number = "555-0006" }, "/profile")
    assert.is_nil(ok)
    assert.matches("E.164", msg, 1, true)
    assert.equal("/profile/phone_number", ptr)
  end)
  it("refuses empty and non-string identifiers", function()
    assert.is_nil(V.profile_identity({ email = "" }))
    assert.is_nil(V.profile_identity({ external_id = 42 }))
    assert.is_nil(V.profile_identity("a@b.com"))
  end)
  it("accepts each identifier alone", function()
    assert.is_true(V.profile_identity({ email = "a@b.com" }))
    assert.is_true(V.profile_identity({ phone_number = "+15005550006" }))
    assert.is_true(V.profile_identity({ external_id = "crm-1" }))
    assert.is_true(V.profile_identity({ id = "01ABC" }))
  end)
end)

describe("validate.lookup", function()
  it("returns the one identifier given", function()
    assert.same({ "email", "a@b.com" }, { V.lookup({ email = "a@b.com" }) })
    assert.same({ "id", "X1" }, { V.lookup({ id = "X1" }) })
  end)
  it("refuses a name-only lookup, listing the identifiers that work", function()
    local k, msg = V.lookup({ first_name = "Ann", last_name = "Lee" })
    assert.is_nil(k)
    assert.matches("exactly one of id, email, phone_number or external_id", msg, 1, true)
    assert.matches("first_name, last_name", msg, 1, true)
    assert.matches("name", msg, 1, true)
  end)
  it("refuses two identifiers or extra keys", function()
    assert.is_nil(V.lookup({ email = "a@b.com", id = "X" }))
    assert.is_nil(V.lookup({ email = "a@b.com", first_name = "Ann" }))
  end)
  it("refuses a phone lookup not in E.164", function()
    local k, msg = V.lookup({ phone_number = "0044 20 1234" })
    assert.is_nil(k)
    assert.matches("E.164", msg, 1, true)
  end)
end)

describe("validate time", function()
  it("parses ISO 8601 forms to epoch seconds in UTC", function()
    assert.equal(0, V.parse_time("1970-01-01T00:00:00Z"))
    assert.equal(1795687200, V.parse_time("2026-11-26T10:00:00Z"))
    assert.equal(1795687200, V.parse_time("2026-11-26T10:00:00+00:00"))
    assert.equal(1795687200, V.parse_time("2026-11-26T12:00:00+02:00"))
    assert.equal(1795687200, V.parse_time("2026-11-26T05:00:00-0500"))
    assert.equal(1795687200, V.parse_time("2026-11-26T10:00"))
    assert.equal(1795651200, V.parse_time("2026-11-26"))
    assert.near(1795687200.25, V.parse_time("2026-11-26T10:00:00.25Z"), 1e-6)
  end)
  it("passes epoch numbers through and reads date tables as UTC", function()
    assert.equal(1795687200, V.parse_time(1795687200))
    assert.equal(1795687200, V.parse_time({ year = 2026, month = 11, day = 26, hour = 10 }))
    assert.equal(951782400, V.parse_time({ year = 2000, month = 2, day = 29 }))
  end)
  it("refuses invalid dates, junk and non-finite numbers", function()
    for _, t in ipairs({ "2026-02-30T00:00:00Z", "2025-02-29", "2026-13-01", "yesterday",
                         "2026-11-26T25:00:00Z", "2026-11-26T10:00:00 CET", true }) do
      assert.is_nil((V.parse_time(t)), tostring(t))
    end
    assert.is_nil((V.parse_time(0 / 0)))
    assert.is_nil((V.parse_time(math.huge)))
  end)
  it("formats epoch seconds as ISO 8601 UTC and round-trips", function()
    assert.equal("2026-11-26T10:00:00+00:00", V.iso(1795687200))
    assert.equal("1970-01-01T00:00:00+00:00", V.iso(0))
    assert.equal("2000-02-29T23:59:59.500+00:00", V.iso(951868799.5))
    for _, t in ipairs({ 631152000, 951782400, 1709251199, 4102444800 }) do
      assert.equal(t, V.parse_time(V.iso(t)))
    end
  end)
  it("keeps event times after 1990 and at most a year ahead", function()
    local now = 1795687200
    assert.equal(now, V.event_time(now, now))
    assert.equal(631152000, V.event_time("1990-01-01T00:00:00Z", now))
    local t, msg = V.event_time("1989-12-31T23:59:59Z", now)
    assert.is_nil(t); assert.matches("1990", msg)
    t, msg = V.event_time(now + 366 * 86400, now)
    assert.is_nil(t); assert.matches("year ahead", msg)
    assert.equal(now + 364 * 86400, V.event_time(now + 364 * 86400, now))
  end)
end)

describe("validate.value", function()
  it("measures the JSON size of a value", function()
    local cjson = require "cjson"
    local samples = { "x", 'a"b\\c\n', 12, 1.5, true, { 1, 2, 3 }, { a = 1, b = { c = "d" } }, {} }
    for _, v in ipairs(samples) do
      local got = V.value(v)
      assert.is_true(got >= #cjson.encode(v), cjson.encode(v))
      assert.is_true(got <= #cjson.encode(v) + 8, cjson.encode(v))
    end
  end)
  it("measures integers to the digit", function()
    for _, n in ipairs({ 0, -0.0, 7, -7, 9, 10, 99, 100, -100, 123456, 2 ^ 31, -2 ^ 40,
                         999999999999999, -999999999999999, 1e14 }) do
      assert.equal(#string.format("%d", n), V.value(n), tostring(n))
    end
    for e = 0, 14 do -- each side of every power of ten the count distinguishes
      for _, n in ipairs({ 10 ^ e - 1, 10 ^ e, 10 ^ e + 1 }) do
        assert.equal(#string.format("%d", n), V.value(n), tostring(n))
        assert.equal(#string.format("%d", -n), V.value(-n), tostring(-n))
      end
    end
  end)
  it("refuses cycles with the path to them", function()
    local t = { a = { b = {} } }
    t.a.b.c = t
    local size, msg, ptr = V.value(t, nil, "/properties")
    assert.is_nil(size)
    assert.matches("cycle", msg)
    assert.equal("/properties/a/b/c", ptr)
  end)
  it("accepts one table reached twice without a cycle", function()
    local shared = { 1 }
    assert.is_number(V.value({ a = shared, b = shared }))
  end)
  it("forgets the tables of a walk that failed part-way (no cycle seen later)", function()
    -- the walks share one set of the tables they are in; a failure leaves it behind
    local inner = { deep = { bad = 0 / 0 } }
    assert.is_nil((V.value({ x = inner })))
    assert.is_nil((V.properties({ x = inner })))
    inner.deep.bad = 1
    assert.is_number(V.value({ y = inner }))
    assert.is_number(V.properties({ y = inner, z = inner }))
  end)
  it("refuses NaN and infinities", function()
    local _, msg, ptr = V.value({ price = 0 / 0 })
    assert.matches("NaN", msg); assert.equal("/price", ptr)
    _, msg, ptr = V.value({ list = { 1, -math.huge } })
    assert.matches("infinity", msg); assert.equal("/list/1", ptr)
  end)
  it("refuses functions, mixed and sparse tables", function()
    assert.is_nil((V.value({ f = print })))
    assert.is_nil((V.value({ 1, 2, x = 3 })))
    assert.is_nil((V.value({ [1] = 1, [3] = 3 })))
  end)
end)

describe("validate.properties (ingestion limits)", function()
  it("allows 400 properties and refuses 401", function()
    local p = {}
    for i = 1, 400 do p["k" .. i] = i end
    assert.is_number(V.properties(p))
    p.k401 = 1
    local size, msg = V.properties(p)
    assert.is_nil(size); assert.matches("401 properties", msg)
  end)
  it("refuses a string over 100 KB and arrays over 4000 items", function()
    assert.is_number(V.properties({ s = string.rep("x", 100 * 1024) }))
    local _, msg, ptr = V.properties({ s = string.rep("x", 100 * 1024 + 1) })
    assert.matches("limit", msg); assert.equal("/properties/s", ptr)
    local a = {}
    for i = 1, 4000 do a[i] = i end
    assert.is_number(V.properties({ a = a }))
    a[4001] = 1
    _, msg = V.properties({ a = a })
    assert.matches("4001 items", msg)
  end)
  it("allows 10 levels of nesting and refuses 11", function()
    local function nest(n) local t = { leaf = 1 } for _ = 2, n do t = { t = t } end return t end
    assert.is_number(V.properties(nest(10)))
    local _, msg = V.properties(nest(11))
    assert.matches("deeper than 10", msg)
  end)
end)

describe("validate.uuid", function()
  it("makes distinct version-4 UUIDs", function()
    local seen = {}
    for _ = 1, 2000 do
      local u = V.uuid()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)
end)

describe("validate.chunk", function()
  it("splits by count", function()
    local items = {}
    for i = 1, 2500 do items[i] = i end
    local c = V.chunk(items, 1000)
    assert.equal(3, #c)
    assert.same({ 1000, 1000, 500 }, { #c[1], #c[2], #c[3] })
    assert.equal(2500, c[3][500])
  end)
  it("splits by bytes and refuses an item bigger than the budget", function()
    local c = V.chunk({ "a", "b", "c", "d" }, 10, 10, { 4, 4, 4, 4 })
    assert.same({ { "a", "b" }, { "c", "d" } }, c)
    local r, msg, i = V.chunk({ "a", "b" }, 10, 10, { 4, 11 })
    assert.is_nil(r); assert.equal(2, i); assert.matches("over", msg)
  end)
end)

describe("validate.refuse", function()
  it("builds a refused error table that prints one line", function()
    local e = V.refuse("create_event", "no identifier", "/profile")
    assert.equal("refused", e.kind)
    assert.equal("create_event", e.operation)
    assert.equal("/profile", e.pointer)
    local line = tostring(e)
    assert.matches("refused locally", line)
    assert.matches("no identifier", line)
    assert.is_nil(line:find("\n"))
  end)
end)

describe("events.build (the checks events:create and tracker:track share)", function()
  local event = require "idiomatic.event_fixture"
  local build = require("klaviyo.events").build

  it("makes the metric part and keeps a service apart", function()
    local a1 = assert(build(event(), "x", "", nil))
    assert.same({ data = { type = "metric", attributes = { name = "Placed Order" } } }, a1.metric)
    local s = assert(build(event{ service = "pos" }, "x", "", nil))
    assert.same({ data = { type = "metric", attributes = { name = "Placed Order",
      service = "pos" } } }, s.metric)
    assert.are_not.equal(a1.metric, s.metric)
    assert.is_nil(assert(build(event(), "x", "", nil)).metric.data.attributes.service)
  end)
end)

describe("validate.properties and event_profile (one pass, the full checks for what fails)", function()
  it("measures properties as the full walk does, with and without a metatable", function()
    local samples = { {}, { a = 1 }, { s = 'x"y', n = -12, f = 1.25, b = false, t = true },
      { items = { { sku = "A", qty = 2 }, { sku = "B" } }, note = "caf\195\169" },
      { nested = { deeper = { 1, 2, { x = "y" } } } } }
    for _, p in ipairs(samples) do
      local full = V.value(p)
      assert.equal(full, V.properties(p))
      -- a metatable (not null) sends the table through the full checks: the same size
      assert.equal(full, V.properties(setmetatable(p, { __index = {} })))
    end
  end)
  it("says the same as before for what it refuses, pointer included", function()
    local cases = {
      { { a = { b = 0 / 0 } }, "NaN", "/properties/a/b" },
      { { a = math.huge }, "infinity", "/properties/a" },
      { { s = string.rep("x", 100 * 1024 + 1) }, "over the 102400%-byte limit", "/properties/s" },
      { { 1, 2 }, "named keys", "/properties" },
      { { a = 1, [2] = 2 }, "named keys", "/properties" },
      { { f = print }, "cannot be sent", "/properties/f" },
    }
    refuses(V.properties, "/properties", cases)
    local many = {}
    for i = 1, 401 do many["k" .. i] = i end
    local size, msg = V.properties(many)
    assert.is_nil(size)
    assert.matches("401 properties", msg)
  end)
  it("gives a profile holding only attributes back as it is, measured", function()
    local p = { email = "ann@example.com", first_name = "Ann", location = { city = "Berlin" } }
    local attrs, size = V.event_profile(p, "")
    assert.equal(p, attrs) -- the caller's table: nothing built
    assert.equal(V.value(p), size)
  end)
  it("copies the attributes of a profile with an id, type or _ fields, and measures them", function()
    local p = { id = "01ABC", email = "ann@example.com", type = "profile", _raw = {}, age = 3 }
    local attrs, size = V.event_profile(p, "")
    assert.are_not.equal(p, attrs)
    assert.same({ email = "ann@example.com", age = 3 }, attrs)
    assert.equal(V.value(attrs), size)
    attrs, size = V.event_profile({ id = "01ABC" })
    assert.same({}, attrs)
    assert.equal(2, size)
    -- a JSON null (cjson's) identifies nothing, and is measured as null among the attributes
    local null = require("cjson").null
    attrs, size = V.event_profile({ external_id = "x", email = null })
    assert.same({ external_id = "x", email = null }, attrs)
    assert.equal(V.value(attrs), size)
  end)
  it("refuses as profile_identity and value do, pointing under the event's profile", function()
    local cases = {
      { "nope", "is required", "/3/profile" },
      { { first_name = "Ann" }, "no identifier", "/3/profile" },
      { { email = "" }, "non%-empty", "/3/profile/email" },
      { { id = 5 }, "non%-empty", "/3/profile/id" },
      { { email = "not an address" }, "not a valid address", "/3/profile/email" },
      { { phone_number = "0170 1234" }, "E.164", "/3/profile/phone_number" },
      { { email = "a@b.co", note = 0 / 0 }, "NaN", "/3/profile/note" },
      { { email = "a@b.co", [1] = "x" }, "mixes", "/3/profile" },
    }
    refuses(V.event_profile, "/3", cases)
  end)
end)

describe("events.check (what tracker:track encodes from)", function()
  local event = require "idiomatic.event_fixture"
  local check = require("klaviyo.events").check

  it("hands back the caller's own tables and a unique_id, building nothing", function()
    local ev = event()
    local metric, props, pattrs, time, uid, size = check(ev, "x", "", nil)
    assert.equal("Placed Order", metric)
    assert.equal(ev.properties, props)
    assert.equal(ev.profile, pattrs)
    assert.is_nil(time)
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", uid)
    assert.is_true(size > V.value(ev.properties) + V.value(ev.profile))
    local _
    _, _, _, time, uid = check(event{ unique_id = "mine",
      time = "2026-11-26T10:00:00Z" }, "x", "", os.time{ year = 2026, month = 11, day = 20 })
    assert.equal("mine", uid)
    assert.equal("2026-11-26T10:00:00+00:00", time)
  end)
  it("leaves properties nil when there are none (the tracker encodes them as {})", function()
    local ev = event()
    ev.properties = nil
    local metric, props = check(ev, "x", "", nil)
    assert.equal("Placed Order", metric)
    assert.is_nil(props)
  end)
  it("reports the profile's identity, then the properties, then the profile's attributes", function()
    local _, msg, ptr = check(event{ profile = { first_name = "A" }, properties = { a = 0 / 0 } },
      "x", "", nil)
    assert.matches("no identifier", msg); assert.equal("/profile", ptr)
    _, msg, ptr = check(event{ profile = { email = "a@b.co", x = 0 / 0 }, properties = { a = 0 / 0 } },
      "x", "/7", nil)
    assert.matches("NaN", msg); assert.equal("/7/properties/a", ptr)
    _, msg, ptr = check(event{ profile = { email = "a@b.co", x = 0 / 0 } }, "x", "/7", nil)
    assert.matches("NaN", msg); assert.equal("/7/profile/x", ptr)
  end)
  it("raises on wrong Lua types at the caller of the function that checks", function()
    local function track(ev) -- as tracker:track calls it (not a tail call)
      local metric = check(ev, "tracker:track", "", nil)
      return metric
    end
    for _, bad in ipairs({ { value = "9" }, { value_currency = 1 }, { backfill = "yes" },
                           { unique_id = 7 }, { bogus = 1 } }) do
      local ok, err = pcall(function()
        local r = track(event(bad)) -- this line is the one blamed
        return r
      end)
      assert.is_false(ok)
      assert.matches("^[^:]*validate_spec%.lua:%d+: tracker:track", err)
    end
  end)
end)
