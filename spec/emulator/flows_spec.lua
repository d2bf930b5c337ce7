-- Flows against the emulator: create from a definition, read, filter, status changes,
-- delete, the flows a metric triggers, and flows firing (one run per recorded event or
-- list join, none for duplicates, backfill, draft or manual flows).
local emu = require("helpers.emulator")
local S = require("emulator.support")
local api = S.api
local new_account = S.new_account
local create_list = S.create_list
local create_profile = S.create_profile
local null = require("cjson.safe").null

local function delay(tmp, next_id)
  return {temporary_id = tmp, type = "time-delay", data = {unit = "days", value = 1},
    links = {next = next_id or null}}
end

local function definition(trigger, actions, entry)
  return {triggers = {trigger}, actions = actions or {delay("d1")}, entry_action_id = entry or "d1"}
end

local function flow_body(name, def)
  return {data = {type = "flow", attributes = {name = name, definition = def}}}
end

local function create_flow(acct, name, trigger, query)
  local st, _, body, raw = api(acct, "POST", "/api/flows", {body = flow_body(name, definition(trigger)),
    query = query})
  assert(st == 201, raw)
  return body.data.id, body
end

local function set_status(acct, id, status)
  local st, _, body, raw = api(acct, "PATCH", "/api/flows/" .. id, {body = {data = {type = "flow", id = id,
    attributes = {status = status}}}})
  assert(st == 200, raw)
  return body
end

local event = S.event

-- The metric's id (recording one backfilled event creates it without firing anything).
local function metric_id(acct, name)
  event(acct, name, "seed@example.com", {backfill = true, unique_id = "seed"})
  -- get_metrics filters on integration.name and integration.category only: list and pick
  local st, _, body, raw = api(acct, "GET", "/api/metrics")
  assert(st == 200, raw)
  for _, m in ipairs(body.data) do
    if m.attributes.name == name then return m.id end
  end
  error("no metric named " .. name .. ": " .. raw)
end

local function profile_id(acct, email)
  local _, _, body = api(acct, "GET", "/api/profiles",
      {query = {filter = string.format('equals(email,"%s")', email)}})
  return body.data[1].id
end

local function add_to_list(acct, list_id, ids)
  local st, _, _, raw = S.add_to_list(acct, list_id, ids)
  assert(st == 204, raw)
end

-- A live flow named `name` triggered by the metric `metric` (created first): its id.
local function live_metric_flow(acct, metric, name)
  local id = create_flow(acct, name, {type = "metric", id = metric_id(acct, metric)})
  set_status(acct, id, "live")
  return id
end

local function runs_of(acct, flow_id)
  local out = {}
  for _, r in ipairs(emu.flow_runs(acct)) do
    if not flow_id or r.flow_id == flow_id then out[#out + 1] = r end
  end
  return out
end

describe("emulator flows", function()
  local acct
  before_each(function() acct = new_account() end)

  describe("create_flow", function()
    it("creates a draft flow from a metric-triggered definition", function()
      local mid = metric_id(acct, "Placed Order")
      local id, body = create_flow(acct, "Thank you", {type = "metric", id = mid})
      assert.are.equal("flow", body.data.type)
      assert.are.equal("draft", body.data.attributes.status)
      assert.are.equal("Metric", body.data.attributes.trigger_type)
      assert.is_false(body.data.attributes.archived)
      assert.are.equal(emu.url .. "/api/flows/" .. id, body.data.links.self)
      assert.is_nil(body.data.attributes.definition)
    end)

    it("gives actions real ids and rewrites the links between them", function()
      local mid = metric_id(acct, "Started Checkout")
      local def = definition({type = "metric", id = mid},
        {delay("first", "second"), delay("second")}, "first")
      local st, _, body, raw = api(acct, "POST", "/api/flows", {body = flow_body("Two steps", def),
        query = {["additional-fields[flow]"] = "definition"}})
      assert.are.equal(201, st, raw)
      local d = body.data.attributes.definition
      local a1, a2 = d.actions[1], d.actions[2]
      assert.is_nil(a1.temporary_id)
      assert.truthy(a1.id and a2.id and a1.id ~= a2.id)
      assert.are.equal(a1.id, d.entry_action_id)
      assert.are.equal(a2.id, a1.links.next)
      assert.are.same({{type = "metric", id = mid}}, d.triggers)
      local _, _, again = api(acct, "GET", "/api/flows/" .. body.data.id,
          {query = {["additional-fields[flow]"] = "definition"}})
      assert.are.same(d, again.data.attributes.definition)
    end)

    it("accepts list and segment triggers of the account", function()
      local list_id = create_list(acct, "Welcome")
      local _, body = create_flow(acct, "Welcome", {type = "list", id = list_id})
      assert.are.equal("Added to List", body.data.attributes.trigger_type)
      local pid = create_profile(acct, "seg@example.com")
      local seg = emu.segment({account = acct.account_id, name = "VIPs", profile_ids = {pid}})
      _, body = create_flow(acct, "VIP", {type = "segment", id = seg.id})
      assert.are.equal("draft", body.data.attributes.status)
    end)

    it("refuses triggers naming nothing the account has", function()
      local bad = {{type = "metric", id = "NOPE"}, {type = "list", id = "NOPE"},
        {type = "segment", id = "NOPE"}, {type = "metric"}}
      for _, t in ipairs(bad) do
        local st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("x", definition(t))})
        assert.are.equal(400, st)
        assert.are.equal("/data/attributes/definition/triggers/0/id", body.errors[1].source.pointer)
      end
    end)

    it("refuses bad definitions with pointers", function()
      local mid = metric_id(acct, "Viewed")
      local t = {type = "metric", id = mid}
      local cases = {
        {{triggers = {t, t}, actions = {delay("d1")}, entry_action_id = "d1"},
            "/data/attributes/definition/triggers"},
        {{triggers = {{type = "weather"}}, actions = {delay("d1")}, entry_action_id = "d1"},
          "/data/attributes/definition/triggers/0/type"},
        {definition(t, {delay("d1", "ghost")}, "d1"), "/data/attributes/definition/actions/0/links/next"},
        {definition(t, {delay("d1")}, "ghost"), "/data/attributes/definition/entry_action_id"},
        {definition(t, {delay("d1"), delay("d1")}, "d1"),
            "/data/attributes/definition/actions/1/temporary_id"},
        {definition(t, {{temporary_id = "x", type = "teleport"}}, "x"),
            "/data/attributes/definition/actions/0/type"},
      }
      for _, c in ipairs(cases) do
        local st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("x", c[1])})
        assert.are.equal(400, st)
        assert.are.equal(c[2], body.errors[1].source.pointer)
      end
      local st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("", definition(t))})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/name", body.errors[1].source.pointer)
      local _, _, list = api(acct, "GET", "/api/flows")
      assert.are.same({}, list.data)
    end)
  end)

  describe("reading and changing flows", function()
    it("gets a flow, with its actions on include=flow-actions, and 404 for unknown ids", function()
      local mid = metric_id(acct, "Viewed Product")
      local id = create_flow(acct, "Browse abandonment", {type = "metric", id = mid})
      local st, _, body = api(acct, "GET", "/api/flows/" .. id, {query = {include = "flow-actions"}})
      assert.are.equal(200, st)
      assert.are.equal("Browse abandonment", body.data.attributes.name)
      local aid = body.data.relationships["flow-actions"].data[1].id
      assert.are.equal("flow-action", body.included[1].type)
      assert.are.equal(aid, body.included[1].id)
      assert.are.equal("time-delay", body.included[1].attributes.definition.type)
      assert.are.equal(404, (api(acct, "GET", "/api/flows/NOPE")))
    end)

    it("changes status between draft, manual and live, refusing anything else", function()
      local mid = metric_id(acct, "Opened App")
      local id = create_flow(acct, "Status", {type = "metric", id = mid})
      for _, s in ipairs({"live", "manual", "draft", "live"}) do
        assert.are.equal(s, set_status(acct, id, s).data.attributes.status)
        local _, _, body = api(acct, "GET", "/api/flows/" .. id)
        assert.are.equal(s, body.data.attributes.status)
      end
      local st, _, body = api(acct, "PATCH", "/api/flows/" .. id, {body = {data = {type = "flow", id = id,
        attributes = {status = "paused"}}}})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/status", body.errors[1].source.pointer)
      st, _, body = api(acct, "PATCH", "/api/flows/" .. id, {body = {data = {type = "flow", id = "OTHER",
        attributes = {status = "live"}}}})
      assert.are.equal(400, st)
      assert.are.equal("/data/id", body.errors[1].source.pointer)
      assert.are.equal(404, (api(acct, "PATCH", "/api/flows/NOPE",
        {body = {data = {type = "flow", id = "NOPE", attributes = {status = "live"}}}})))
    end)

    it("filters get_flows by status and trigger type, and pages with page[size] up to 50", function()
      local mid = metric_id(acct, "Signed Up")
      local list_id = create_list(acct, "Trigger list")
      local ids = {}
      for i = 1, 6 do ids[i] = create_flow(acct, "F" .. i, {type = "metric", id = mid}) end
      local lid = create_flow(acct, "L", {type = "list", id = list_id})
      set_status(acct, ids[2], "live")
      set_status(acct, ids[5], "live")
      set_status(acct, ids[6], "manual")
      local _, _, body = api(acct, "GET", "/api/flows", {query = {filter = 'equals(status,"live")'}})
      local live = {}
      for _, f in ipairs(body.data) do live[#live + 1] = f.id end
      assert.are.same({ids[2], ids[5]}, live)
      _, _, body = api(acct, "GET", "/api/flows", {query = {filter = 'equals(trigger_type,"Added to List")'}})
      assert.are.equal(1, #body.data)
      assert.are.equal(lid, body.data[1].id)
      _, _, body = api(acct, "GET", "/api/flows", {query = {filter = 'equals(status,"draft")',
          ["page[size]"] = 2}})
      assert.are.equal(2, #body.data)
      assert.truthy(body.links.next)
      local st, _, nxt = emu.request {url = body.links.next, headers = {
        authorization = "Klaviyo-API-Key " .. acct.private_key, revision = emu.REVISION}}
      assert.are.equal(200, st)
      assert.are.equal(2, #nxt.data) -- ids 3, 4, L are drafts; 1 was on page one with 3
      for _, size in ipairs({0, 51}) do
        assert.are.equal(400, (api(acct, "GET", "/api/flows", {query = {["page[size]"] = size}})))
      end
      assert.are.equal(400, (api(acct, "GET", "/api/flows", {query = {filter = 'equals(colour,"red")'}})))
      _, _, body = api(acct, "GET", "/api/flows", {query = {sort = "-name", ["page[size]"] = 1}})
      assert.are.equal("L", body.data[1].attributes.name)
      _, _, body = api(acct, "GET", "/api/flows", {query = {filter = 'starts-with(name,"F")',
        ["fields[flow]"] = "name,status"}})
      assert.are.equal(6, #body.data)
      assert.are.same({name = "F1", status = "draft"}, body.data[1].attributes)
      _, _, body = api(acct, "GET", "/api/flows",
          {query = {filter = "greater-than(created,2999-01-01T00:00:00Z)"}})
      assert.are.same({}, body.data)
      _, _, body = api(acct, "GET", "/api/flows", {query = {filter = string.format('any(id,["%s","%s"])',
          ids[1], lid)}})
      assert.are.equal(2, #body.data)
      assert.are.equal(400, (api(acct, "GET", "/api/flows", {query = {["fields[flow]"] = "colour"}})))
    end)

    it("keeps flows per account", function()
      local mid = metric_id(acct, "Mine")
      local id = create_flow(acct, "Private", {type = "metric", id = mid})
      local other = new_account()
      assert.are.equal(404, (api(other, "GET", "/api/flows/" .. id)))
      local _, _, body = api(other, "GET", "/api/flows")
      assert.are.same({}, body.data)
      local st, _, err = api(other, "POST", "/api/flows", {body = flow_body("Borrowed",
        definition({type = "metric", id = mid}))})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/definition/triggers/0/id", err.errors[1].source.pointer)
    end)

    it("deletes a flow", function()
      local mid = metric_id(acct, "Deleted")
      local id = create_flow(acct, "Doomed", {type = "metric", id = mid})
      assert.are.equal(204, (api(acct, "DELETE", "/api/flows/" .. id)))
      assert.are.equal(404, (api(acct, "GET", "/api/flows/" .. id)))
      assert.are.equal(404, (api(acct, "DELETE", "/api/flows/" .. id)))
    end)

    it("lists the flows a metric triggers, and their ids", function()
      local mid = metric_id(acct, "Ordered")
      local other = metric_id(acct, "Refunded")
      local id = create_flow(acct, "Post purchase", {type = "metric", id = mid})
      create_flow(acct, "Refund", {type = "metric", id = other})
      local st, _, body = api(acct, "GET", "/api/metrics/" .. mid .. "/flow-triggers")
      assert.are.equal(200, st)
      assert.are.equal(1, #body.data)
      assert.are.equal(id, body.data[1].id)
      _, _, body = api(acct, "GET", "/api/metrics/" .. mid .. "/relationships/flow-triggers")
      assert.are.same({{type = "flow", id = id}}, body.data)
      assert.are.equal(404, (api(acct, "GET", "/api/metrics/NOPE/flow-triggers")))
    end)

    it("pages a flow's actions", function()
      local mid = metric_id(acct, "Long")
      local acts = {}
      for i = 1, 5 do acts[i] = delay("a" .. i, i < 5 and ("a" .. (i + 1)) or nil) end
      local st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("Long",
          definition({type = "metric",
        id = mid}, acts, "a1"))})
      assert.are.equal(201, st)
      local id = body.data.id
      local _, _, page = api(acct, "GET", "/api/flows/" .. id .. "/flow-actions",
          {query = {["page[size]"] = 2}})
      assert.are.equal(2, #page.data)
      assert.truthy(page.links.next)
      local _, _, ids = api(acct, "GET", "/api/flows/" .. id .. "/relationships/flow-actions")
      assert.are.equal(5, #ids.data)
      assert.are.equal("flow-action", ids.data[1].type)
    end)
  end)

  describe("flow actions", function()
    it("reads an action by id, with its flow, and 404 for unknown ids", function()
      local mid = metric_id(acct, "Action")
      local id = create_flow(acct, "With action", {type = "metric", id = mid})
      local _, _, ids = api(acct, "GET", "/api/flows/" .. id .. "/relationships/flow-actions")
      local aid = ids.data[1].id
      local st, _, body = api(acct, "GET", "/api/flow-actions/" .. aid, {query = {include = "flow"}})
      assert.are.equal(200, st)
      assert.are.equal("flow-action", body.data.type)
      assert.are.equal(aid, body.data.attributes.definition.id)
      assert.are.equal(id, body.data.relationships.flow.data.id)
      assert.are.equal(id, body.included[1].id)
      _, _, body = api(acct, "GET", "/api/flow-actions/" .. aid .. "/flow")
      assert.are.equal(id, body.data.id)
      assert.are.equal("With action", body.data.attributes.name)
      _, _, body = api(acct, "GET", "/api/flow-actions/" .. aid .. "/relationships/flow")
      assert.are.same({type = "flow", id = id}, body.data)
      assert.are.equal(404, (api(acct, "GET", "/api/flow-actions/NOPE")))
      api(acct, "DELETE", "/api/flows/" .. id)
      assert.are.equal(404, (api(acct, "GET", "/api/flow-actions/" .. aid)))
    end)
  end)

  describe("firing", function()
    it("starts one run per recorded event of a live flow's metric", function()
      local id = live_metric_flow(acct, "Placed Order", "Thanks")
      event(acct, "Placed Order", "buyer@example.com", {unique_id = "order-1"})
      local runs = runs_of(acct, id)
      assert.are.equal(1, #runs)
      assert.are.equal("metric", runs[1].trigger)
      assert.are.equal(profile_id(acct, "buyer@example.com"), runs[1].profile_id)
      assert.truthy(runs[1].event_id)
      event(acct, "Placed Order", "buyer@example.com", {unique_id = "order-2"})
      assert.are.equal(2, #runs_of(acct, id))
    end)

    it("does not fire for a duplicate unique_id nor for an event in the same second", function()
      local id = live_metric_flow(acct, "Placed Order", "Thanks")
      event(acct, "Placed Order", "dup@example.com", {unique_id = "same"})
      event(acct, "Placed Order", "dup@example.com", {unique_id = "same"})
      assert.are.equal(1, #runs_of(acct, id))
      event(acct, "Placed Order", "dup@example.com", {time = "2026-01-02T03:04:05Z"})
      event(acct, "Placed Order", "dup@example.com", {time = "2026-01-02T03:04:05.900Z"})
      assert.are.equal(2, #runs_of(acct, id))
    end)

    it("does not fire for backfilled events", function()
      local id = live_metric_flow(acct, "Placed Order", "Thanks")
      event(acct, "Placed Order", "old@example.com", {unique_id = "history-1", backfill = true})
      assert.are.equal(0, #runs_of(acct, id))
      event(acct, "Placed Order", "old@example.com", {unique_id = "now-1", backfill = false})
      assert.are.equal(1, #runs_of(acct, id))
    end)

    it("starts nothing while draft or manual, and stops when set back to draft", function()
      local mid = metric_id(acct, "Placed Order")
      local id = create_flow(acct, "Thanks", {type = "metric", id = mid})
      event(acct, "Placed Order", "d@example.com", {unique_id = "draft-1"})
      set_status(acct, id, "manual")
      event(acct, "Placed Order", "d@example.com", {unique_id = "manual-1"})
      assert.are.equal(0, #runs_of(acct, id))
      set_status(acct, id, "live")
      event(acct, "Placed Order", "d@example.com", {unique_id = "live-1"})
      assert.are.equal(1, #runs_of(acct, id))
      set_status(acct, id, "draft")
      event(acct, "Placed Order", "d@example.com", {unique_id = "draft-2"})
      assert.are.equal(1, #runs_of(acct, id))
    end)

    it("fires only flows of the event's metric, each once", function()
      local order = metric_id(acct, "Placed Order")
      local view = metric_id(acct, "Viewed Product")
      local a = create_flow(acct, "A", {type = "metric", id = order})
      local b = create_flow(acct, "B", {type = "metric", id = order})
      local c = create_flow(acct, "C", {type = "metric", id = view})
      for _, f in ipairs({a, b, c}) do set_status(acct, f, "live") end
      event(acct, "Placed Order", "m@example.com", {unique_id = "o1"})
      assert.are.equal(1, #runs_of(acct, a))
      assert.are.equal(1, #runs_of(acct, b))
      assert.are.equal(0, #runs_of(acct, c))
    end)

    it("does not fire a deleted flow", function()
      local id = live_metric_flow(acct, "Placed Order", "Thanks")
      api(acct, "DELETE", "/api/flows/" .. id)
      event(acct, "Placed Order", "x@example.com", {unique_id = "gone"})
      assert.are.equal(0, #runs_of(acct, id))
    end)

    it("fires a live list flow when a profile joins the list, once per join", function()
      local list_id = create_list(acct, "Welcome")
      local id = create_flow(acct, "Welcome", {type = "list", id = list_id})
      local draft = create_flow(acct, "Draft welcome", {type = "list", id = list_id})
      set_status(acct, id, "live")
      local p1 = create_profile(acct, "j1@example.com")
      local p2 = create_profile(acct, "j2@example.com")
      add_to_list(acct, list_id, {p1, p2})
      local runs = runs_of(acct, id)
      assert.are.equal(2, #runs)
      assert.are.equal("list", runs[1].trigger)
      assert.are.same({p1, p2}, {runs[1].profile_id, runs[2].profile_id})
      add_to_list(acct, list_id, {p1}) -- already a member: no join
      assert.are.equal(2, #runs_of(acct, id))
      assert.are.equal(0, #runs_of(acct, draft))
      api(acct, "DELETE", "/api/lists/" .. list_id .. "/relationships/profiles",
          {body = {data = {{type = "profile", id = p1}}}})
      add_to_list(acct, list_id, {p1}) -- joins again
      assert.are.equal(3, #runs_of(acct, id))
    end)

    it("fires only for events that pass the trigger filter", function()
      local mid = metric_id(acct, "Placed Order")
      local function cond(field, filter)
        return {type = "metric-property", metric_id = mid, field = field, filter = filter}
      end
      -- (total > 100) AND (category = "shoes" OR category starts with "boot")
      local trigger = {type = "metric", id = mid, trigger_filter = {condition_groups = {
        {conditions = {cond("total", {type = "numeric", operator = "greater-than", value = 100})}},
        {conditions = {cond("category", {type = "string", operator = "equals", value = "shoes"}),
                       cond("category", {type = "string", operator = "starts-with", value = "boot"})}},
      }}}
      local st, _, body, raw = api(acct, "POST", "/api/flows", {body = flow_body("Big shoe orders",
        definition(trigger))})
      assert.are.equal(201, st, raw)
      local id = body.data.id
      set_status(acct, id, "live")
      local function order(uid, total, category)
        event(acct, "Placed Order", "f@example.com", {unique_id = uid,
          properties = {total = total, category = category}})
      end
      order("o1", 50, "shoes")
      order("o2", 150, "hats")
      assert.are.equal(0, #runs_of(acct, id))
      order("o3", 150, "shoes")
      order("o4", 200, "boots")
      assert.are.equal(2, #runs_of(acct, id))
    end)

    it("evaluates each trigger filter operator", function()
      local mid = metric_id(acct, "Filtered")
      local NONE = {} -- the property is absent
      -- {filter, a passing value, a failing value}
      local cases = {
        {{type = "string", operator = "equals", value = "a"}, "a", "b"},
        {{type = "string", operator = "not-equals", value = "a"}, "b", "a"},
        {{type = "string", operator = "contains", value = "ell"}, "hello", "help"},
        {{type = "string", operator = "not-contains", value = "ell"}, "help", "hello"},
        -- an absent property satisfies the negated string operators
        {{type = "string", operator = "not-contains", value = "ell"}, NONE, "hello"},
        {{type = "string", operator = "starts-with", value = "he"}, "hello", "oh"},
        {{type = "string", operator = "not-starts-with", value = "he"}, "oh", "hello"},
        {{type = "string", operator = "ends-with", value = "lo"}, "hello", "help"},
        {{type = "string", operator = "not-ends-with", value = "lo"}, "help", "hello"},
        {{type = "string", operator = "in", value = {"a", "b"}}, "b", "c"},
        {{type = "string", operator = "not-in", value = {"a", "b"}}, "c", "a"},
        {{type = "numeric", operator = "equals", value = 3}, 3, 4},
        {{type = "numeric", operator = "not-equals", value = 3}, 4, 3},
        {{type = "numeric", operator = "greater-than-or-equal", value = 3}, 3, 2},
        {{type = "numeric", operator = "less-than", value = 3}, 2, 3},
        {{type = "numeric", operator = "less-than-or-equal", value = 3}, 3, 4},
        {{type = "numeric", operator = "between", start = 1, ["end"] = 5}, 5, 6},
        {{type = "boolean", operator = "equals", value = false}, false, true},
        {{type = "existence", operator = "is-set"}, "x", NONE},
        {{type = "existence", operator = "not-set"}, NONE, "x"},
        {{type = "list", operator = "contains", value = "red"}, {"red", "blue"}, {"blue"}},
        {{type = "list", operator = "not-contains", value = "red"}, {"blue"}, {"red"}},
        {{type = "list", operator = "length-greater-than", value = 1}, {"a", "b"}, {"a"}},
      }
      for i, c in ipairs(cases) do
        local trigger = {type = "metric", id = mid, trigger_filter = {condition_groups = {{conditions = {
          {type = "metric-property", metric_id = mid, field = "x", filter = c[1]}}}}}}
        local st, _, body, raw = api(acct, "POST", "/api/flows",
          {body = flow_body("F" .. i, definition(trigger))})
        assert.are.equal(201, st, raw)
        local id = body.data.id
        set_status(acct, id, "live")
        local function send(tag, v)
          event(acct, "Filtered", "ops@example.com", {unique_id = i .. tag,
            properties = v == NONE and {} or {x = v}})
        end
        send("fail", c[3])
        assert.are.equal(0, #runs_of(acct, id), c[1].operator .. " let a failing value through")
        send("pass", c[2])
        assert.are.equal(1, #runs_of(acct, id), c[1].operator .. " stopped a passing value")
        set_status(acct, id, "draft")
      end
    end)

    it("fires only for profiles that pass the profile filter", function()
      local list_id = create_list(acct, "Members")
      local def = definition({type = "list", id = list_id})
      def.profile_filter = {condition_groups = {{conditions = {{type = "profile-property",
        property = "properties['vip']", filter = {type = "boolean", operator = "equals", value = true}}}}}}
      local st, _, body, raw = api(acct, "POST", "/api/flows", {body = flow_body("VIP welcome", def)})
      assert.are.equal(201, st, raw)
      set_status(acct, body.data.id, "live")
      local _, _, vip = api(acct, "POST", "/api/profiles", {body = {data = {type = "profile",
        attributes = {email = "vip@example.com", properties = {vip = true}}}}})
      local plain = create_profile(acct, "plain@example.com")
      add_to_list(acct, list_id, {plain, vip.data.id})
      local runs = runs_of(acct, body.data.id)
      assert.are.equal(1, #runs)
      assert.are.equal(vip.data.id, runs[1].profile_id)
      -- standard attributes and location fields by name, on a metric flow too
      local mid = metric_id(acct, "Visited")
      def = definition({type = "metric", id = mid})
      def.profile_filter = {condition_groups = {
        {conditions = {{type = "profile-property", property = "first_name",
          filter = {type = "string", operator = "equals", value = "Ada"}}}},
        {conditions = {{type = "profile-property", property = "location.city",
          filter = {type = "string", operator = "equals", value = "London"}}}}}}
      st, _, body, raw = api(acct, "POST", "/api/flows", {body = flow_body("Ada in London", def)})
      assert.are.equal(201, st, raw)
      set_status(acct, body.data.id, "live")
      for _, p in ipairs({{"ada@example.com", "Ada", "London"}, {"ada2@example.com", "Ada", "Paris"},
                          {"bob@example.com", "Bob", "London"}}) do
        api(acct, "POST", "/api/profiles", {body = {data = {type = "profile",
          attributes = {email = p[1], first_name = p[2], location = {city = p[3]}}}}})
        event(acct, "Visited", p[1], {unique_id = p[1]})
      end
      runs = runs_of(acct, body.data.id)
      assert.are.equal(1, #runs)
      assert.are.equal(profile_id(acct, "ada@example.com"), runs[1].profile_id)
    end)

    it("refuses filters it cannot evaluate with 501, and foreign metrics with 400", function()
      local mid = metric_id(acct, "Placed Order")
      local other = metric_id(acct, "Viewed")
      local dated = {type = "metric", id = mid, trigger_filter = {condition_groups = {{conditions = {
        {type = "metric-property", metric_id = mid, field = "when",
         filter = {type = "date", operator = "before", date = "2026-01-01T00:00:00Z"}}}}}}}
      local st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("Dated", definition(dated))})
      assert.are.equal(501, st)
      assert.are.equal("not_implemented", body.errors[1].code)
      local foreign = {type = "metric", id = mid, trigger_filter = {condition_groups = {{conditions = {
        {type = "metric-property", metric_id = other, field = "x",
         filter = {type = "string", operator = "equals", value = "y"}}}}}}}
      st, _, body = api(acct, "POST", "/api/flows", {body = flow_body("Foreign", definition(foreign))})
      assert.are.equal(400, st)
      local ptr = "/data/attributes/definition/triggers/0/trigger_filter/condition_groups/0/conditions/0"
      assert.are.equal(ptr .. "/metric_id", body.errors[1].source.pointer)
    end)

    it("fires a live list flow for subscriptions with the list, except historical imports", function()
      local list_id = create_list(acct, "Newsletter")
      local id = create_flow(acct, "Welcome", {type = "list", id = list_id})
      set_status(acct, id, "live")
      local function subscribe(email, extra)
        local consent = {consent = "SUBSCRIBED", consented_at = extra and "2020-01-01T00:00:00Z" or nil}
        local attrs = {profiles = {data = {{type = "profile", attributes = {email = email,
          subscriptions = {email = {marketing = consent}}}}}}, historical_import = extra}
        local st, _, _, raw = api(acct, "POST", "/api/profile-subscription-bulk-create-jobs",
          {body = {data = {type = "profile-subscription-bulk-create-job", attributes = attrs,
            relationships = {list = {data = {type = "list", id = list_id}}}}}})
        assert.are.equal(202, st, raw)
      end
      subscribe("new@example.com")
      assert.are.equal(1, #runs_of(acct, id))
      subscribe("imported@example.com", true)
      assert.are.equal(1, #runs_of(acct, id))
      assert.are.equal(profile_id(acct, "new@example.com"), runs_of(acct, id)[1].profile_id)
    end)

    it("fires a live segment flow when a profile enters the segment", function()
      local p1 = create_profile(acct, "s1@example.com")
      local p2 = create_profile(acct, "s2@example.com")
      local seg = emu.segment({account = acct.account_id, name = "Engaged", profile_ids = {p1}})
      local id = create_flow(acct, "Engaged", {type = "segment", id = seg.id})
      set_status(acct, id, "live")
      emu.segment({account = acct.account_id, id = seg.id, name = "Engaged", profile_ids = {p1, p2}})
      local runs = runs_of(acct, id)
      assert.are.equal(1, #runs)
      assert.are.equal(p2, runs[1].profile_id)
      assert.are.equal("segment", runs[1].trigger)
    end)
  end)
end)
