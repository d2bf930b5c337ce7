-- klaviyo.profiles against the emulator: get by each identifier, the name-only refusal,
-- each, create (409 with the existing id), upsert (null clears), update, merge, lists,
-- segments, import (jobs, wait, errors).
local S = require "idiomatic.support"

describe("profiles", function()
  local t
  before_each(function() t = S.setup() end)

  it("gets a profile by email, phone_number, external_id or id, as a flat table", function()
    local p = assert(t.profiles:create{ email = "ann@example.com", phone_number = "+15005550006",
      external_id = "crm-1", first_name = "Ann", properties = { tier = "gold" } })
    for _, q in ipairs({ { email = "ann@example.com" }, { phone_number = "+15005550006" },
                         { external_id = "crm-1" }, { id = p.id } }) do
      local got = assert(t.profiles:get(q))
      assert.equal(p.id, got.id)
      assert.equal("profile", got.type)
      assert.equal("Ann", got.first_name)
      assert.equal("gold", got.properties.tier)
      assert.is_table(got._raw)
    end
    local reqs = S.requests(t.acct, "get_profiles")
    assert.equal(3, #reqs)
    local query = reqs[1].query:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    assert.matches('equals(email,"ann@example.com")', query, 1, true)
    assert.equal(1, #S.requests(t.acct, "get_profile"))
  end)

  it("answers not_found when no profile matches", function()
    local p, err = t.profiles:get{ email = "nobody@example.com" }
    assert.is_nil(p)
    assert.equal("not_found", err.code)
    local q, err2 = t.profiles:get{ id = "01NOPE0000000000000000000" }
    assert.is_nil(q)
    assert.equal(404, err2.status)
  end)

  it("refuses a lookup by name, saying which identifiers work, nothing sent", function()
    local p, err = S.nothing_sent(t.acct, function()
      return t.profiles:get{ first_name = "Ann", last_name = "Lee" }
    end)
    assert.is_nil(p)
    assert.equal("refused", err.kind)
    assert.matches("id, email, phone_number or external_id", err.detail)
    assert.matches("name", err.detail)
    local _, err2 = S.nothing_sent(t.acct, function()
      return t.profiles:get{ email = "a@b.com", id = "X" }
    end)
    assert.matches("exactly one", err2.detail)
    local _, err3 = S.nothing_sent(t.acct, function()
      return t.profiles:get{ phone_number = "0151 2345" }
    end)
    assert.matches("E%.164", err3.detail)
    assert.has_error(function() t.profiles:get{ emial = "a@b.com" } end)
    assert.has_error(function() t.profiles:get("a@b.com") end)
  end)

  it("refuses a lookup by an email create would refuse (whitespace), nothing sent", function()
    assert(t.profiles:create{ email = "ws@example.com" })
    for _, email in ipairs({ " ws@example.com", "ws@example.com\n", "ws example.com" }) do
      local p, err = S.nothing_sent(t.acct, function() return t.profiles:get{ email = email } end)
      assert.is_nil(p)
      assert.equal("refused", err.kind)
      assert.matches("not a valid address", err.detail)
    end
  end)

  it("asks only for the fields wanted", function()
    assert(t.profiles:create{ email = "f@example.com", first_name = "Fay", last_name = "Fox" })
    local p = assert(t.profiles:get({ email = "f@example.com" }, { fields = { "email", "first_name" } }))
    assert.equal("Fay", p.first_name)
    assert.is_nil(p.last_name)
    local q = S.requests(t.acct, "get_profiles")[1].query
      :gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    assert.matches("fields[profile]=email,first_name", q, 1, true)
  end)

  it("gets the consent state on request", function()
    assert(t.profiles:create{ email = "c@example.com" })
    local p = assert(t.profiles:get({ email = "c@example.com" }, { subscriptions = true }))
    assert.is_table(p.subscriptions)
    assert.is_table(p.subscriptions.email)
  end)

  it("iterates profiles across pages, with a filter", function()
    for i = 1, 12 do assert(t.profiles:create{ email = ("p%02d@example.com"):format(i) }) end
    assert.equal(12, #S.collect(t.profiles:each{ page_size = 5 }))
    assert.equal(3, #S.requests(t.acct, "get_profiles"))
    local one = S.collect(t.profiles:each{ filter = S.klaviyo.filter.equals("email", "p07@example.com") })
    assert.equal(1, #one)
    assert.equal("p07@example.com", one[1].email)
  end)

  it("create answers 409 with the existing profile's id", function()
    local p = assert(t.profiles:create{ email = "dup@example.com" })
    local q, err = t.profiles:create{ email = "dup@example.com", first_name = "Again" }
    assert.is_nil(q)
    assert.equal(409, err.status)
    assert.equal("duplicate_profile", err.code)
    assert.equal(p.id, err.duplicate_profile_id)
  end)

  it("refuses to create a profile without identifier or with a bad phone, nothing sent", function()
    local p, err = S.nothing_sent(t.acct, function() return t.profiles:create{ first_name = "X" } end)
    assert.is_nil(p)
    assert.equal("refused", err.kind)
    local _, err2 = S.nothing_sent(t.acct, function()
      return t.profiles:create{ phone_number = "5550006" }
    end)
    assert.matches("E%.164", err2.detail)
    local cyc = { email = "cyc@example.com", properties = {} }
    cyc.properties.self = cyc.properties
    local _, err3 = S.nothing_sent(t.acct, function() return t.profiles:create(cyc) end)
    assert.matches("cycle", err3.detail)
  end)

  it("upserts: created, then updated, null clears a field, absent leaves it", function()
    local p, created = t.profiles:upsert{ email = "u@example.com", first_name = "Una",
      last_name = "Ull" }
    assert.is_true(created)
    assert.equal("Una", p.first_name)
    local p2, created2 = t.profiles:upsert{ email = "u@example.com", last_name = S.klaviyo.null }
    assert.is_false(created2)
    assert.equal(p.id, p2.id)
    assert.equal("Una", p2.first_name)
    local got = assert(t.profiles:get{ id = p.id })
    assert.is_true(got.last_name == nil or got.last_name == S.klaviyo.json_null)
    local body = S.body(S.requests(t.acct, "create_or_update_profile")[2])
    assert.equal(S.klaviyo.json_null, body.data.attributes.last_name)
    assert.is_nil(body.data.attributes.first_name)
  end)

  it("updates fields by id", function()
    local p = assert(t.profiles:create{ email = "up@example.com", first_name = "Old" })
    local q = assert(t.profiles:update(p.id, { first_name = "New", properties = { vip = true } }))
    assert.equal("New", q.first_name)
    assert.is_true(q.properties.vip)
    assert.has_error(function() t.profiles:update(nil, {}) end)
  end)

  it("merges one profile into another", function()
    local a = assert(t.profiles:create{ email = "keep@example.com" })
    local b = assert(t.profiles:create{ external_id = "crm-9" })
    assert(t.profiles:merge(a.id, b.id))
    local req = S.requests(t.acct, "merge_profiles")[1]
    local body = S.body(req)
    assert.equal(a.id, body.data.id)
    assert.equal(b.id, body.data.relationships.profiles.data[1].id)
    local _, err = S.nothing_sent(t.acct, function() return t.profiles:merge(a.id, a.id) end)
    assert.equal("refused", err.kind)
  end)

  it("lists the lists and segments a profile belongs to", function()
    local p = assert(t.profiles:create{ email = "member@example.com" })
    local l = assert(t.lists:create{ name = "Members" })
    assert(t.lists:add(l.id, { p.id }))
    local lists = assert(t.profiles:lists(p.id))
    assert.equal(1, #lists)
    assert.equal("Members", lists[1].name)
    S.emu.segment{ account = t.acct.account_id, name = "Everyone", profile_ids = { p.id } }
    local segs = assert(t.profiles:segments(p.id))
    assert.equal(1, #segs)
    assert.equal("Everyone", segs[1].name)
  end)
end)

describe("profiles:import", function()
  local t
  before_each(function() t = S.setup() end)

  it("imports in jobs of at most 10,000, waits for them and joins the list", function()
    local rows = {}
    for i = 1, 10005 do rows[i] = { email = ("imp%05d@example.com"):format(i), first_name = "I" } end
    local l = assert(t.lists:create{ name = "Imported" })
    local imp = assert(t.profiles:import(rows, { list = l.id }))
    assert.equal(2, #imp.jobs)
    local reqs = S.requests(t.acct, "bulk_import_profiles")
    assert.equal(2, #reqs)
    assert.equal(10000, #S.body(reqs[1]).data.attributes.profiles.data)
    assert.equal(5, #S.body(reqs[2]).data.attributes.profiles.data)
    local jobs = assert(imp:wait{ timeout = 30, interval = 0.1 })
    for _, j in ipairs(jobs) do assert.equal("complete", j.status) end
    local n = 0
    for p, err in t.lists:members(l.id) do assert(p, tostring(err)); n = n + 1 end
    assert.equal(10005, n)
    assert.same({}, S.collect(imp:errors()))
  end)

  it("refuses an import list with a hole (# would stop at it), nothing sent", function()
    local rows = {}
    rows[1], rows[3] = { email = "r1@example.com" }, { email = "r3@example.com" }
    local imp, err = S.nothing_sent(t.acct, function() return t.profiles:import(rows) end)
    assert.is_nil(imp)
    assert.equal("refused", err.kind)
    assert.equal("/1", err.pointer)
  end)

  it("import:wait raises on a timeout or interval that is no number of seconds", function()
    local imp = assert(t.profiles:import({ { email = "w@example.com" } }))
    local polls = 0
    local function sleep() polls = polls + 1; if polls > 20 then error("polled on and on") end end
    for _, o in ipairs({ { timeout = 0 / 0 }, { timeout = -1 }, { timeout = "30" },
                         { interval = 0 / 0 }, { interval = -1 }, { interval = math.huge },
                         { interval = {} } }) do
      o.sleep = sleep
      assert.has_error(function() imp:wait(o) end,
        "import:wait: " .. (o.timeout and "timeout" or "interval") ..
        " must be a number of seconds (>= 0)")
    end
  end)

  it("reads the import errors of rows Klaviyo could not apply", function()
    assert(t.profiles:create{ email = "a@example.com" })
    assert(t.profiles:create{ external_id = "crm-b" })
    local imp = assert(t.profiles:import({ { email = "ok@example.com" },
      { email = "a@example.com", external_id = "crm-b" } }))
    local jobs = assert(imp:wait{ timeout = 30, interval = 0.1 })
    assert.equal(1, jobs[1].failed_count)
    assert.equal(1, jobs[1].completed_count)
    local errs = S.collect(imp:errors())
    assert.equal(1, #errs)
    assert.equal("duplicate_profile", errs[1].code)
    assert.equal(jobs[1].id, errs[1].job_id)
    assert.is_true(imp:done())
  end)

  it("refuses the whole import when one profile is bad, nothing sent", function()
    local rows = { { email = "ok@example.com" }, { first_name = "no id" } }
    local imp, err = S.nothing_sent(t.acct, function() return t.profiles:import(rows) end)
    assert.is_nil(imp)
    assert.equal("/1", err.pointer)
  end)
end)
