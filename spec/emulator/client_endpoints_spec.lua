-- Client endpoints against the emulator: public key (company_id) authentication,
-- create_client_event, create_client_profile and create_client_subscription.
local emu = require("helpers.emulator")
local S = require("emulator.support")
local api = S.api
local new_account = S.new_account
local create_list = S.create_list
local members = S.members
local null = require("cjson.safe").null

-- A browser-side call: company_id in the query, no Authorization header.
local function client(acct, path, body, query)
  local q = {company_id = acct.public_key}
  for k, v in pairs(query or {}) do q[k] = v end
  return emu.request {method = "POST", path = path, query = q, body = body,
    headers = {revision = emu.REVISION, accept = "application/vnd.api+json"}}
end

-- The id of the metric called `name` (get_metrics filters on integration.* only: list, pick).
local function metric_named(acct, name)
  local st, _, body, raw = api(acct, "GET", "/api/metrics")
  assert(st == 200, raw)
  for _, m in ipairs(body.data) do
    if m.attributes.name == name then return m.id end
  end
  error("no metric named " .. name)
end

local function event_body(metric, email, extra)
  local attrs = {properties = {item = "socks"}, metric = {data = {type = "metric",
      attributes = {name = metric}}},
    profile = {data = {type = "profile", attributes = {email = email}}}}
  for k, v in pairs(extra or {}) do attrs[k] = v end
  return {data = {type = "event", attributes = attrs}}
end

local function profile_by_email(acct, email, extra)
  local q = {filter = string.format('equals(email,"%s")', email)}
  for k, v in pairs(extra or {}) do q[k] = v end
  local _, _, body = api(acct, "GET", "/api/profiles", {query = q})
  return body.data[1]
end

local function subscription(list_id, attrs, custom_source)
  return {data = {type = "subscription", attributes = {custom_source = custom_source,
    profile = {data = {type = "profile", attributes = attrs}}},
    relationships = {list = {data = {type = "list", id = list_id}}}}}
end

describe("emulator client endpoints", function()
  local acct
  before_each(function() acct = new_account() end)

  describe("authentication", function()
    it("needs the account's public key as company_id and refuses a private key", function()
      local st, _, body = emu.request {method = "POST", path = "/client/events",
        body = event_body("Viewed", "a@example.com"), headers = {revision = emu.REVISION}}
      assert.are.equal(401, st)
      assert.are.equal("not_authenticated", body.errors[1].code)
      st = emu.request {method = "POST", path = "/client/events", query = {company_id = "XXXXXX"},
        body = event_body("Viewed", "a@example.com"), headers = {revision = emu.REVISION}}
      assert.are.equal(401, st)
      st = emu.request {method = "POST", path = "/client/events", query = {company_id = acct.public_key},
        body = event_body("Viewed", "a@example.com"),
        headers = {revision = emu.REVISION, authorization = "Klaviyo-API-Key " .. acct.private_key}}
      assert.are.equal(401, st)
    end)
  end)

  describe("create_client_event", function()
    it("records the event like create_event and answers 202 with no body", function()
      local st, _, body, raw = client(acct, "/client/events", event_body("Viewed Product", "c@example.com"))
      assert.are.equal(202, st, raw)
      assert.is_nil(body)
      local p = profile_by_email(acct, "c@example.com")
      assert.truthy(p)
      local _, _, events = api(acct, "GET", "/api/events",
          {query = {filter = string.format('equals(profile_id,"%s")', p.id)}})
      assert.are.equal(1, #events.data)
      assert.are.equal("socks", events.data[1].attributes.event_properties.item)
    end)

    it("validates like create_event", function()
      local st, _, body = client(acct, "/client/events", event_body("", "c@example.com"))
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/metric/data/attributes/name", body.errors[1].source.pointer)
      st = client(acct, "/client/events", event_body("Viewed", "not-an-email"))
      assert.are.equal(400, st)
    end)

    it("fires a live flow of its metric, once per unique_id", function()
      client(acct, "/client/events", event_body("Added to Cart", "seed@example.com", {backfill = true}))
      local mid = metric_named(acct, "Added to Cart")
      local st, _, flow, raw = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
        name = "Cart", definition = {triggers = {{type = "metric", id = mid}}, entry_action_id = "d",
        actions = {{temporary_id = "d", type = "time-delay", data = {unit = "days", value = 1},
            links = {next = null}}}}}}}})
      assert.are.equal(201, st, raw)
      api(acct, "PATCH", "/api/flows/" .. flow.data.id, {body = {data = {type = "flow", id = flow.data.id,
        attributes = {status = "live"}}}})
      client(acct, "/client/events", event_body("Added to Cart", "cart@example.com", {unique_id = "c1"}))
      client(acct, "/client/events", event_body("Added to Cart", "cart@example.com", {unique_id = "c1"}))
      local runs = emu.flow_runs(acct)
      assert.are.equal(1, #runs)
      assert.are.equal(flow.data.id, runs[1].flow_id)
    end)
  end)

  describe("bulk_create_client_events", function()
    local function bulk(email, events, backfill)
      local data = {}
      for i, e in ipairs(events) do
        data[i] = {type = "event", attributes = {properties = {n = i}, unique_id = e.uid,
          metric = {data = {type = "metric", attributes = {name = e.metric}}}, backfill = e.backfill}}
      end
      return client(acct, "/client/event-bulk-create", {data = {type = "event-bulk-create", attributes = {
        backfill = backfill, profile = {data = {type = "profile", attributes = {email = email}}},
        events = {data = data}}}})
    end
    local function events_of(email)
      local p = profile_by_email(acct, email)
      if not p then return {} end
      local _, _, body = api(acct, "GET", "/api/events",
        {query = {filter = string.format('equals(profile_id,"%s")', p.id)}})
      return body.data
    end

    it("records every event for the profile, deduplicating by unique_id", function()
      local st, _, body = bulk("bulk@example.com", {{metric = "Viewed", uid = "v1"},
        {metric = "Viewed", uid = "v2"}, {metric = "Viewed", uid = "v1"}, {metric = "Clicked", uid = "c1"}})
      assert.are.equal(202, st)
      assert.is_nil(body)
      assert.are.equal(3, #events_of("bulk@example.com"))
    end)

    it("rejects the whole request when one event is invalid, and more than 1000 events", function()
      local st, _, body = bulk("half@example.com", {{metric = "Viewed", uid = "a"}, {metric = "", uid = "b"}})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/events/data/1/attributes/metric/data/attributes/name",
        body.errors[1].source.pointer)
      assert.are.same({}, events_of("half@example.com"))
      local many = {}
      for i = 1, 1001 do many[i] = {metric = "Viewed", uid = "m" .. i} end
      st, _, body = bulk("many@example.com", many)
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/events/data", body.errors[1].source.pointer)
      many[1001] = nil
      assert.are.equal(202, (bulk("many@example.com", many)))
    end)

    it("fires live flows except for backfilled events", function()
      bulk("seed@example.com", {{metric = "Bulk Metric", uid = "seed", backfill = true}})
      local mid = metric_named(acct, "Bulk Metric")
      local _, _, flow = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
        name = "Bulk", definition = {triggers = {{type = "metric", id = mid}}, entry_action_id = "d",
        actions = {{temporary_id = "d", type = "time-delay", data = {value = 1}, links = {next = null}}}}}}}})
      api(acct, "PATCH", "/api/flows/" .. flow.data.id, {body = {data = {type = "flow", id = flow.data.id,
        attributes = {status = "live"}}}})
      bulk("f@example.com", {{metric = "Bulk Metric", uid = "1"}, {metric = "Bulk Metric", uid = "2"}})
      bulk("f@example.com", {{metric = "Bulk Metric", uid = "3"}}, true)
      assert.are.equal(2, #emu.flow_runs(acct))
    end)
  end)

  describe("create_client_back_in_stock_subscription", function()
    it("subscribes with the public key and checks channels like the server endpoint", function()
      local function bis(channels, attrs)
        local variant = {data = {type = "catalog-variant", id = "$custom:::$default:::SKU-9"}}
        return client(acct, "/client/back-in-stock-subscriptions", {data = {
          type = "back-in-stock-subscription", relationships = {variant = variant},
          attributes = {channels = channels, profile = {data = {type = "profile", attributes = attrs}}}}})
      end
      local st, _, body = bis({"EMAIL", "SMS"}, {email = "bis@example.com", phone_number = "+15005550013"})
      assert.are.equal(202, st)
      assert.is_nil(body)
      assert.truthy(profile_by_email(acct, "bis@example.com"))
      st, _, body = bis({"SMS"}, {email = "nophone@example.com"})
      assert.are.equal(400, st)
      assert.truthy(body.errors[1].detail:find("E.164", 1, true))
    end)
  end)

  describe("create_client_profile", function()
    local function profile_body(attrs, id)
      return {data = {type = "profile", id = id, attributes = attrs}}
    end

    it("creates a profile and updates it later, answering 202", function()
      local st, _, body = client(acct, "/client/profiles",
        profile_body({email = "cp@example.com", first_name = "Ada", properties = {plan = "free"}}))
      assert.are.equal(202, st)
      assert.is_nil(body)
      local p = profile_by_email(acct, "cp@example.com")
      assert.are.equal("Ada", p.attributes.first_name)
      assert.are.equal("free", p.attributes.properties.plan)
      assert.are.equal(202, (client(acct, "/client/profiles", profile_body({email = "cp@example.com",
        last_name = "Lovelace", properties = {plan = "pro"}}))))
      p = profile_by_email(acct, "cp@example.com")
      assert.are.equal("Ada", p.attributes.first_name)
      assert.are.equal("Lovelace", p.attributes.last_name)
      assert.are.equal("pro", p.attributes.properties.plan)
    end)

    it("never changes an existing profile's identifiers", function()
      client(acct, "/client/profiles", profile_body({email = "keep@example.com"}))
      local id = profile_by_email(acct, "keep@example.com").id
      assert.are.equal(202, (client(acct, "/client/profiles", profile_body({email = "new@example.com",
        first_name = "Changed"}, id))))
      local p = profile_by_email(acct, "keep@example.com")
      assert.are.equal(id, p.id)
      assert.are.equal("Changed", p.attributes.first_name)
      assert.is_nil(profile_by_email(acct, "new@example.com"))
    end)

    it("refuses a profile without identifiers or with a bad one", function()
      local st, _, body = client(acct, "/client/profiles", profile_body({first_name = "Nobody"}))
      assert.are.equal(400, st)
      assert.are.equal("invalid", body.errors[1].code)
      st, _, body = client(acct, "/client/profiles", profile_body({phone_number = "555-1234"}))
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/phone_number", body.errors[1].source.pointer)
      st = client(acct, "/client/profiles", profile_body({email = "x@example.com", shoe_size = 9}))
      assert.are.equal(400, st)
    end)
  end)

  describe("create_client_subscription", function()
    it("subscribes email marketing, joins the list and fires its live flow", function()
      local list_id = create_list(acct, "Footer form")
      local st, _, flow = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
        name = "Welcome", definition = {triggers = {{type = "list", id = list_id}}, entry_action_id = "d",
        actions = {{temporary_id = "d", type = "time-delay", data = {unit = "days", value = 1},
            links = {next = null}}}}}}}})
      assert.are.equal(201, st)
      api(acct, "PATCH", "/api/flows/" .. flow.data.id, {body = {data = {type = "flow", id = flow.data.id,
        attributes = {status = "live"}}}})
      local body
      st, _, body = client(acct, "/client/subscriptions", subscription(list_id,
          {email = "form@example.com"}, "Footer"))
      assert.are.equal(202, st)
      assert.is_nil(body)
      local p = profile_by_email(acct, "form@example.com", {["additional-fields[profile]"] = "subscriptions"})
      assert.are.equal("SUBSCRIBED", p.attributes.subscriptions.email.marketing.consent)
      assert.are.equal("NEVER_SUBSCRIBED", p.attributes.subscriptions.sms.marketing.consent)
      assert.are.same({p.id}, members(acct, list_id))
      local runs = emu.flow_runs(acct)
      assert.are.equal(1, #runs)
      assert.are.equal("list", runs[1].trigger)
      assert.are.equal(p.id, runs[1].profile_id)
    end)

    it("subscribes only the channels of a subscriptions object", function()
      local list_id = create_list(acct, "SMS")
      local st = client(acct, "/client/subscriptions", subscription(list_id, {email = "sms@example.com",
        phone_number = "+15005550009", subscriptions = {sms = {marketing = {consent = "SUBSCRIBED"}}}}))
      assert.are.equal(202, st)
      local p = profile_by_email(acct, "sms@example.com", {["additional-fields[profile]"] = "subscriptions"})
      assert.are.equal("+15005550009", p.attributes.phone_number)
      assert.are.equal("SUBSCRIBED", p.attributes.subscriptions.sms.marketing.consent)
      assert.are.equal("NEVER_SUBSCRIBED", p.attributes.subscriptions.email.marketing.consent)
    end)

    it("refuses a missing or unknown list, no identifier, and a non-E.164 phone", function()
      local list_id = create_list(acct, "Form")
      local no_list = subscription(list_id, {email = "x@example.com"})
      no_list.data.relationships = nil
      local st, _, body = client(acct, "/client/subscriptions", no_list)
      assert.are.equal(400, st)
      assert.are.equal("/data/relationships/list/data/id", body.errors[1].source.pointer)
      assert.are.equal(400, (client(acct, "/client/subscriptions", subscription("NOPE",
          {email = "x@example.com"}))))
      st = client(acct, "/client/subscriptions", subscription(list_id, {first_name = "Anon"}))
      assert.are.equal(400, st)
      st, _, body = client(acct, "/client/subscriptions", subscription(list_id, {phone_number = "0123"}))
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profile/data/attributes/phone_number", body.errors[1].source.pointer)
      assert.are.same({}, members(acct, list_id))
    end)

    it("leaves consent alone on a double opt-in list until confirmed", function()
      local list_id = create_list(acct, "Double", "double_opt_in")
      assert.are.equal(202, (client(acct, "/client/subscriptions", subscription(list_id,
          {email = "d@example.com"}))))
      local p = profile_by_email(acct, "d@example.com", {["additional-fields[profile]"] = "subscriptions"})
      assert.are.equal("NEVER_SUBSCRIBED", p.attributes.subscriptions.email.marketing.consent)
      assert.are.same({}, members(acct, list_id))
    end)
  end)
end)
