-- Events with real state: create_event (validation, ingestion limits, profile
-- upsert, metric on first use, deduplication, backfill), get_events,
-- get_event, and bulk_create_events as an asynchronous job.
local emu = require "helpers.emulator"

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%S+00:00", t) end

local function event(opts)
  opts = opts or {}
  local attrs = {
    properties = opts.properties or { item = "book" },
    metric = { data = { type = "metric", attributes = { name = opts.metric or "Placed Order" } } },
    profile = { data = { type = "profile", id = opts.profile_id,
                         attributes = opts.profile or { email = "ev@example.com" } } },
    unique_id = opts.unique_id, time = opts.time, value = opts.value, backfill = opts.backfill,
  }
  return { data = { type = "event", attributes = attrs } }
end

describe("events", function()
  local acct
  local function post(opts)
    return emu.api(acct, "POST", "/api/events", { body = event(opts) })
  end
  local function events(query)
    local st, _, body = emu.api(acct, "GET", "/api/events", { query = query })
    assert.are.equal(200, st)
    return body.data, body
  end
  local function profiles()
    local _, _, body = emu.api(acct, "GET", "/api/profiles")
    return body.data
  end

  before_each(function()
    emu.reset()
    acct = emu.account()
  end)

  describe("create_event", function()
    it("answers 202 with no body and records the event", function()
      local st, _, body, raw = post { properties = { item = "book", price = 9.5 }, value = 9.5 }
      assert.are.equal(202, st)
      assert.is_nil(body)
      assert.are.equal("", raw)
      local list = events()
      assert.are.equal(1, #list)
      local e = list[1]
      assert.are.equal("event", e.type)
      assert.are.equal("book", e.attributes.event_properties.item)
      assert.is_number(e.attributes.timestamp)
      assert.are.equal(iso(e.attributes.timestamp), e.attributes.datetime)
      assert.is_string(e.relationships.metric.data.id)
    end)

    it("upserts the profile by identifier and updates its attributes", function()
      post { profile = { email = "ev@example.com", first_name = "Ev" } }
      post { profile = { email = "ev@example.com", last_name = "Ents" }, unique_id = "2" }
      local ps = profiles()
      assert.are.equal(1, #ps)
      assert.are.equal("Ev", ps[1].attributes.first_name)
      assert.are.equal("Ents", ps[1].attributes.last_name)
      assert.is_string(ps[1].attributes.last_event_date)
      -- by id
      assert.are.equal(202, (post { profile_id = ps[1].id, profile = {}, unique_id = "3" }))
      assert.are.equal(3, #events())
      assert.are.equal(1, #profiles())
      -- an unknown id is refused
      local st, _, body = post { profile_id = "01NOPE0000000000000000000", profile = {} }
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profile/data/id", body.errors[1].source.pointer)
    end)

    it("creates the metric on first use only", function()
      post { unique_id = "a" }
      post { unique_id = "b" }
      post { metric = "Viewed Product" }
      local _, _, body = emu.api(acct, "GET", "/api/metrics")
      local names = {}
      for _, m in ipairs(body.data) do names[#names + 1] = m.attributes.name end
      table.sort(names)
      assert.are.same({ "Placed Order", "Viewed Product" }, names)
    end)

    it("deduplicates on unique_id per profile and metric", function()
      assert.are.equal(202, (post { unique_id = "order-1" }))
      assert.are.equal(202, (post { unique_id = "order-1", time = iso(os.time() - 100) }))
      assert.are.equal(1, #events())
      -- same unique_id, other metric or other profile: recorded
      post { unique_id = "order-1", metric = "Refunded" }
      post { unique_id = "order-1", profile = { email = "other@example.com" } }
      assert.are.equal(3, #events())
    end)

    it("without unique_id, deduplicates on the time truncated to the second", function()
      local t = os.time() - 3600
      post { time = iso(t) }
      post { time = iso(t):gsub("%+00:00$", ".250+00:00") }
      assert.are.equal(1, #events())
      post { time = iso(t + 1) }
      assert.are.equal(2, #events())
    end)

    it("keeps a unique_id that spells a time apart from an event of that second", function()
      -- the duplicate keys of both kinds share one table per profile and metric
      local t = os.time() - 7200
      post { time = iso(t) }
      post { time = iso(t), unique_id = tostring(t) }
      assert.are.equal(2, #events())
      post { time = iso(t + 5), unique_id = tostring(t) }
      assert.are.equal(2, #events())
    end)

    it("records backfilled events", function()
      assert.are.equal(202, (post { backfill = true, time = iso(os.time() - 86400) }))
      assert.are.equal(1, #events())
    end)

    local function refused(opts, pointer, status)
      local st, _, body = post(opts)
      assert.are.equal(status or 400, st)
      assert.are.equal("invalid", body.errors[1].code)
      if pointer then assert.are.equal(pointer, body.errors[1].source.pointer) end
    end

    it("validates identifiers and the metric name", function()
      refused({ profile = {} }, "/data/attributes/profile/data/attributes")
      refused({ profile = { first_name = "No identifier" } }, "/data/attributes/profile/data/attributes")
      local no_attrs = event()
      no_attrs.data.attributes.profile.data.attributes = nil
      local st0, _, b0 = emu.api(acct, "POST", "/api/events", { body = no_attrs })
      assert.are.equal(400, st0)
      assert.are.equal("/data/attributes/profile/data/attributes", b0.errors[1].source.pointer)
      refused({ profile = { email = "nope" } }, "/data/attributes/profile/data/attributes/email")
      refused({ profile = { phone_number = "5005550006" } },
        "/data/attributes/profile/data/attributes/phone_number")
      refused({ metric = "" }, "/data/attributes/metric/data/attributes/name")
      refused({ metric = ("m"):rep(129) }, "/data/attributes/metric/data/attributes/name")
      local b = event()
      b.data.attributes.properties = nil
      local st = emu.api(acct, "POST", "/api/events", { body = b })
      assert.are.equal(400, st)
      assert.are.equal(0, #events())
    end)

    it("enforces Klaviyo's ingestion limits", function()
      local many = {}
      for i = 1, 401 do many["p" .. i] = i end
      refused({ properties = many }, "/data/attributes/properties")
      many.p401 = nil
      assert.are.equal(202, (post { properties = many, unique_id = "400 is fine" }))

      refused({ properties = { s = ("x"):rep(100 * 1024 + 1) } }, "/data/attributes/properties/s")
      local arr = {}
      for i = 1, 4001 do arr[i] = i end
      refused({ properties = { a = arr } }, "/data/attributes/properties/a")
      local deep = { leaf = 1 }
      for _ = 1, 10 do deep = { d = deep } end
      refused({ properties = deep })
      refused({ time = "1989-12-31T23:59:59+00:00" }, "/data/attributes/time")
      refused({ time = iso(os.time() + 2 * 365 * 86400) }, "/data/attributes/time")
      refused({ time = "yesterday" }, "/data/attributes/time")
      refused({ value = "ten" }, "/data/attributes/value")
      assert.are.equal(1, #events())
    end)

    it("refuses payloads over 5 MB", function()
      local props = {}
      for i = 1, 60 do props["k" .. i] = ("y"):rep(90 * 1024) end
      local st, _, body = post { properties = props }
      assert.are.equal(413, st)
      assert.are.equal("request_too_large", body.errors[1].code)
    end)
  end)

  describe("get_events and get_event", function()
    it("filters on metric_id, profile_id and datetime, and sorts", function()
      local now = os.time()
      post { time = iso(now - 300), profile = { email = "a@example.com" } }
      post { time = iso(now - 200), profile = { email = "b@example.com" } }
      post { time = iso(now - 100), profile = { email = "a@example.com" }, metric = "Other" }
      local all = events({ sort = "datetime" })
      assert.are.equal(3, #all)
      local metric_id = all[1].relationships.metric.data.id
      local profile_id = all[1].relationships.profile.data.id
      assert.are.equal(2, #events { filter = ('equals(metric_id,"%s")'):format(metric_id) })
      assert.are.equal(2, #events { filter = ('equals(profile_id,"%s")'):format(profile_id) })
      local since = os.date("!%Y-%m-%dT%H:%M:%SZ", now - 200)
      local recent = events { filter = ("greater-or-equal(datetime,%s)"):format(since) }
      assert.are.equal(2, #recent)
      local both = events { filter = ('and(equals(profile_id,"%s"),less-than(datetime,%s))')
        :format(profile_id, os.date("!%Y-%m-%dT%H:%M:%SZ", now - 150)) }
      assert.are.equal(1, #both)
      local desc = events { sort = "-datetime" }
      assert.is_true(desc[1].attributes.timestamp > desc[3].attributes.timestamp)
      for _, f in ipairs { 'equals(email,"a@example.com")', "greater-or-equal(datetime,yesterday)" } do
        local st, _, body = emu.api(acct, "GET", "/api/events", { query = { filter = f } })
        assert.are.equal(400, st)
        assert.are.equal("invalid", body.errors[1].code)
      end
    end)

    it("keeps time order (then creation) across reads when events arrive between them", function()
      -- the order is kept per account and merged with what arrives after a read
      local now = os.time()
      local function times(sort)
        local out = {}
        for _, e in ipairs(events { sort = sort }) do
          out[#out + 1] = string.format("%d", e.attributes.event_properties.n)
        end
        return table.concat(out, ",")
      end
      post { time = iso(now - 50), unique_id = "a", properties = { n = 1 } }
      post { time = iso(now - 300), unique_id = "b", properties = { n = 2 } }
      assert.are.equal("2,1", times("datetime"))
      assert.are.equal("1,2", times("-datetime"))
      post { time = iso(now - 100), unique_id = "c", properties = { n = 3 } }
      post { time = iso(now - 400), unique_id = "d", properties = { n = 4 } }
      post { time = iso(now - 100), unique_id = "e", properties = { n = 5 } }
      post { time = iso(now - 10), unique_id = "f", properties = { n = 6 } }
      assert.are.equal("4,2,3,5,1,6", times("datetime"))
      assert.are.equal("6,1,5,3,2,4", times("-datetime"))
      assert.are.equal("4,2,3,5,1,6", times(nil))
    end)

    it("paginates with page[size] up to 1000", function()
      for i = 1, 5 do post { unique_id = "u" .. i } end
      local page, body = events { ["page[size]"] = 2 }
      assert.are.equal(2, #page)
      assert.is_string(body.links.next)
      assert.are.equal(400, (emu.api(acct, "GET", "/api/events", { query = { ["page[size]"] = 1001 } })))
    end)

    it("reads one event, with includes, and 404 for an unknown one", function()
      post {}
      local id = events()[1].id
      local st, _, body = emu.api(acct, "GET", "/api/events/" .. id,
        { query = { include = "metric,profile" } })
      assert.are.equal(200, st)
      assert.are.equal(id, body.data.id)
      local types = {}
      for _, r in ipairs(body.included) do types[r.type] = r end
      assert.are.equal("Placed Order", types.metric.attributes.name)
      assert.are.equal("ev@example.com", types.profile.attributes.email)
      local st2, _, body2 = emu.api(acct, "GET", "/api/events",
        { query = { ["fields[event]"] = "datetime" } })
      assert.are.equal(200, st2)
      assert.is_nil(body2.data[1].attributes.event_properties)
      assert.is_string(body2.data[1].attributes.datetime)
      assert.are.equal(404, (emu.api(acct, "GET", "/api/events/01NOPE0000000000000000000")))
    end)
  end)

  describe("bulk_create_events", function()
    local function bulk(entries)
      return emu.api(acct, "POST", "/api/event-bulk-create-jobs", { body = { data = {
        type = "event-bulk-create-job",
        attributes = { ["events-bulk-create"] = { data = entries } } } } })
    end
    local function entry(email, n, start)
      local evs = {}
      for i = 1, n do
        evs[i] = { type = "event", attributes = {
          properties = { i = i }, unique_id = email .. "-" .. (start or 0) + i,
          metric = { data = { type = "metric", attributes = { name = "Bulk" } } } } }
      end
      return { type = "event-bulk-create", attributes = {
        profile = { data = { type = "profile", attributes = { email = email } } },
        events = { data = evs } } }
    end

    it("accepts up to 1000 events as a job that completes", function()
      local st, _, body = bulk { entry("b1@example.com", 600), entry("b2@example.com", 400) }
      assert.are.equal(202, st)
      assert.is_nil(body)
      local s, jobs = emu.admin("GET", "jobs?account=" .. acct.account_id)
      assert.are.equal(200, s)
      assert.are.equal(1, #jobs.jobs)
      assert.are.equal(1000, jobs.jobs[1].total)
      -- settles on read: get_events sees everything
      local _, all = events { ["page[size]"] = 1000 }
      assert.are.equal(1000, #all.data)
      _, jobs = emu.admin("GET", "jobs?account=" .. acct.account_id)
      assert.are.equal("complete", jobs.jobs[1].status)
      assert.are.equal(1000, jobs.jobs[1].recorded)
      assert.are.equal(2, #profiles())
    end)

    it("completes on its own shortly after, without a read", function()
      bulk { entry("late@example.com", 3) }
      local status
      for _ = 1, 100 do
        local _, jobs = emu.admin("GET", "jobs?account=" .. acct.account_id)
        status = jobs.jobs[1].status
        if status == "complete" then break end
        emu.sleep(0.02)
      end
      assert.are.equal("complete", status)
    end)

    it("refuses more than 1000 events and invalid entries, recording nothing", function()
      local st, _, body = bulk { entry("x@example.com", 1001) }
      assert.are.equal(400, st)
      assert.are.equal("invalid", body.errors[1].code)
      local bad = entry("y@example.com", 2)
      bad.attributes.events.data[2].attributes.metric = nil
      st, _, body = bulk { entry("z@example.com", 1), bad }
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/events-bulk-create/data/1/attributes/events/data/1"
        .. "/attributes/metric/data/attributes/name", body.errors[1].source.pointer)
      assert.are.equal(0, #events())
      local _, jobs = emu.admin("GET", "jobs?account=" .. acct.account_id)
      assert.are.equal(0, #jobs.jobs)
    end)

    -- Bodies as text, in the shape the tracker writes them.
    local function raw_entry(i, opts)
      opts = opts or {}
      local props = opts.props or string.format('{"price":12.5,"seq":%d,"sku":"SKU-%d","qty":2,' ..
        '"tags":["a","b"],"nested":{"x":{"y":[1,{}]}},"none":null,"yes":true}', i, i % 7)
      local ev = string.format('{"type":"event","attributes":{"properties":%s,' ..
        '"time":"2026-11-26T15:09:38.062+00:00","metric":{"data":{"attributes":{"name":"%s"},' ..
        '"type":"metric"}},"unique_id":"u-%d"%s}}', props, opts.metric or "Bench", i, opts.extra or "")
      return string.format('{"type":"event-bulk-create","attributes":{"profile":{"data":{"attributes":' ..
        '%s,"type":"profile"}},"events":{"data":[%s]}}}',
        opts.profile or string.format('{"email":"b%d@example.com"}', i % 5), ev)
    end
    local function raw_body(entries)
      return '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":[' ..
        table.concat(entries, ",") .. ']}}}}'
    end
    local function post_raw(raw)
      return emu.api(acct, "POST", "/api/event-bulk-create-jobs", { body = raw })
    end

    it("takes a tracker's body and records every event", function()
      local entries = {}
      for i = 1, 300 do entries[i] = raw_entry(i) end
      assert.are.equal(202, (post_raw(raw_body(entries))))
      local _, all = events { ["page[size]"] = 1000 }
      assert.are.equal(300, #all.data)
      for _, ev in ipairs(all.data) do
        assert.are.equal(12.5, ev.attributes.event_properties.price)
        assert.are.same({ x = { y = { 1, {} } } }, ev.attributes.event_properties.nested)
      end
      assert.are.equal(5, #profiles())
    end)

    it("takes any member order, whitespace, several events per entry and the optional attributes",
      function()
      local ev1 = '{ "attributes" : { "unique_id" : "x1" , "value" : 9.99 , "value_currency" : "EUR" ,' ..
        ' "backfill" : false , "metric" : { "data" : { "type" : "metric" , "attributes" : { "name" :' ..
        ' "Placed Order" } } } , "properties" : { } } , "type" : "event" }'
      local ev2 = '{"type":"event","attributes":{"properties":{"a":1},"metric":{"data":{"attributes":' ..
        '{"name":"Placed Order"},"type":"metric"}},"time":"2026-01-02T03:04:05Z"}}'
      local e = '{ "attributes" : { "events" : { "data" : [ ' .. ev1 .. ' , ' .. ev2 .. ' ] } ,' ..
        ' "profile" : { "data" : { "attributes" : { "phone_number" : "+15005550006", "first_name":' ..
        ' "Ann", "location": {"city": "Oslo"}, "properties": {"vip": true} } , "type" : "profile" } } } ,' ..
        ' "type" : "event-bulk-create" }'
      local raw = '\n{ "data" : { "attributes" : { "events-bulk-create" : { "data" : [ ' .. e ..
        ' ] } } , "type" : "event-bulk-create-job" } }\n'
      assert.are.equal(202, (post_raw(raw)))
      assert.are.equal(2, #events())
      local ps = profiles()
      assert.are.equal(1, #ps)
      assert.are.equal("+15005550006", ps[1].attributes.phone_number)
      assert.are.equal("Oslo", ps[1].attributes.location.city)
    end)

    it("refuses an event or profile that validation refuses, recording nothing", function()
      local cases = {
        { props = '[1,2]' },                        -- properties not an object
        { metric = "" },                            -- empty metric name
        { profile = '{}' },                         -- no identifier
        { profile = '{"email":"not an email"}' },   -- bad email
        { profile = '{"nickname":"x"}' },           -- not a profile attribute
        { extra = ',"value":"12"' },                -- value not a number
      }
      for _, opts in ipairs(cases) do
        local raw = raw_body({ raw_entry(1), raw_entry(2, opts) })
        local st, _, body = post_raw(raw)
        assert.are.equal(400, st, raw)
        assert.are.equal("invalid", body.errors[1].code)
        assert.truthy(body.errors[1].source.pointer:find("^/data/attributes/events%-bulk%-create/data/1/"),
          body.errors[1].source.pointer)
      end
      assert.are.equal(0, #events())
      local _, jobs = emu.admin("GET", "jobs?account=" .. acct.account_id)
      assert.are.equal(0, #jobs.jobs)
    end)

    it("reads numbers as JSON allows them, exponents included", function()
      assert.are.equal(202, (post_raw(raw_body({ raw_entry(1, { props = '{"n":1e5,"m":-2.5E-1}' }) }))))
      local evs = events()
      assert.are.equal(1, #evs)
      assert.are.equal(100000, evs[1].attributes.event_properties.n)
      assert.are.equal(-0.25, evs[1].attributes.event_properties.m)
    end)
  end)
end)
