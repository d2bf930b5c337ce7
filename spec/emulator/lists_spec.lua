-- Lists against the emulator: CRUD, filters, membership limits, member pagination,
-- list-triggered flows and the rule that list membership never changes consent.
local emu = require("helpers.emulator")
local S = require("emulator.support")
local api = S.api
local new_account = S.new_account
local create_list = S.create_list
local create_profile = S.create_profile
local members_body = S.members_body
local add = S.add_to_list
local member_ids = S.member_ids
local null = require("cjson.safe").null

-- A minimal valid flow definition (one delay action) triggered by `trigger`.
local function definition(trigger)
  return {triggers = {trigger}, entry_action_id = "d1", actions = {
    {temporary_id = "d1", type = "time-delay", data = {unit = "days", value = 1}, links = {next = null}}}}
end

local function profiles(acct, n, tag)
  local ids = {}
  for i = 1, n do ids[i] = create_profile(acct, string.format("%s-%d@example.com", tag or "p", i)) end
  return ids
end

-- Follows links.next from `path` collecting every resource id; fails on a repeated id.
local function walk(acct, path, query)
  local ids, seen, pages = {}, {}, 0
  local st, _, body, raw = api(acct, "GET", path, {query = query})
  while true do
    assert.are.equal(200, st, raw)
    pages = pages + 1
    for _, r in ipairs(body.data) do
      assert.is_nil(seen[r.id], "id repeated across pages: " .. r.id)
      seen[r.id] = true
      ids[#ids + 1] = r.id
    end
    local nxt = body.links and body.links.next
    if not nxt then break end
    st, _, body, raw = emu.request {url = nxt, headers = {
      authorization = "Klaviyo-API-Key " .. acct.private_key, revision = emu.REVISION}}
  end
  return ids, pages
end

describe("emulator lists", function()
  local acct
  before_each(function() acct = new_account() end)

  describe("create_list / get_list", function()
    it("creates a list readable by id with its attributes", function()
      local id, created = create_list(acct, "Newsletter")
      assert.are.equal("list", created.data.type)
      assert.are.equal("Newsletter", created.data.attributes.name)
      assert.are.equal("single_opt_in", created.data.attributes.opt_in_process)
      assert.truthy(created.data.attributes.created:match("^%d%d%d%d%-%d%d%-%d%dT"))
      assert.are.equal(emu.url .. "/api/lists/" .. id, created.data.links.self)
      local st, _, body = api(acct, "GET", "/api/lists/" .. id)
      assert.are.equal(200, st)
      assert.are.equal(id, body.data.id)
      assert.are.equal("Newsletter", body.data.attributes.name)
    end)

    it("keeps the opt-in process asked for", function()
      local id = create_list(acct, "VIP", "double_opt_in")
      local _, _, body = api(acct, "GET", "/api/lists/" .. id)
      assert.are.equal("double_opt_in", body.data.attributes.opt_in_process)
    end)

    it("refuses a missing or empty name with a pointer", function()
      for _, attrs in ipairs({{}, {name = ""}, {name = 5}}) do
        local st, _, body = api(acct, "POST", "/api/lists", {body = {data = {type = "list",
            attributes = attrs}}})
        assert.are.equal(400, st)
        assert.are.equal("invalid", body.errors[1].code)
        assert.are.equal("/data/attributes/name", body.errors[1].source.pointer)
      end
    end)

    it("refuses an unknown opt_in_process", function()
      local st, _, body = api(acct, "POST", "/api/lists", {body = {data = {type = "list",
        attributes = {name = "x", opt_in_process = "triple"}}}})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/opt_in_process", body.errors[1].source.pointer)
    end)

    it("answers 404 for an unknown list", function()
      local st, _, body = api(acct, "GET", "/api/lists/NOPE")
      assert.are.equal(404, st)
      assert.are.equal("not_found", body.errors[1].code)
    end)

    it("counts members with additional-fields[list]=profile_count", function()
      local id = create_list(acct, "Counted")
      assert.are.equal(204, (add(acct, id, profiles(acct, 3, "cnt"))))
      local _, _, body = api(acct, "GET", "/api/lists/" .. id,
          {query = {["additional-fields[list]"] = "profile_count"}})
      assert.are.equal(3, body.data.attributes.profile_count)
      local _, _, plain = api(acct, "GET", "/api/lists/" .. id)
      assert.is_nil(plain.data.attributes.profile_count)
    end)

    it("applies fields[list] and refuses unknown fields", function()
      local id = create_list(acct, "Sparse")
      local _, _, body = api(acct, "GET", "/api/lists/" .. id, {query = {["fields[list]"] = "name"}})
      assert.are.same({name = "Sparse"}, body.data.attributes)
      local st = api(acct, "GET", "/api/lists/" .. id, {query = {["fields[list]"] = "colour"}})
      assert.are.equal(400, st)
    end)

    it("only sees the account's own lists", function()
      local id = create_list(acct, "Mine")
      local other = new_account()
      assert.are.equal(404, (api(other, "GET", "/api/lists/" .. id)))
    end)
  end)

  describe("get_lists", function()
    it("filters by name equals and id any, and refuses other filters", function()
      local a = create_list(acct, "Alpha")
      local b = create_list(acct, "Beta")
      create_list(acct, "Gamma")
      local _, _, body = api(acct, "GET", "/api/lists", {query = {filter = 'equals(name,"Beta")'}})
      assert.are.equal(1, #body.data)
      assert.are.equal(b, body.data[1].id)
      local any = string.format('any(id,["%s","%s"])', a, b)
      _, _, body = api(acct, "GET", "/api/lists", {query = {filter = any}})
      assert.are.equal(2, #body.data)
      _, _, body = api(acct, "GET", "/api/lists",
          {query = {filter = "greater-than(created,2000-01-01T00:00:00Z)"}})
      assert.are.equal(3, #body.data)
      _, _, body = api(acct, "GET", "/api/lists",
          {query = {filter = "greater-than(updated,2999-01-01T00:00:00Z)"}})
      assert.are.same({}, body.data)
      local st, _, err = api(acct, "GET", "/api/lists", {query = {filter = 'contains(name,"a")'}})
      assert.are.equal(400, st)
      assert.are.equal("filter", err.errors[1].source.parameter)
    end)

    it("paginates with page[size] up to 10 and links.next, sorted as asked", function()
      for i = 1, 13 do create_list(acct, string.format("L%02d", i)) end
      local ids, pages = walk(acct, "/api/lists", {["page[size]"] = 5})
      assert.are.equal(13, #ids)
      assert.are.equal(3, pages)
      local _, _, body = api(acct, "GET", "/api/lists")
      assert.are.equal(10, #body.data) -- default page size
      for _, size in ipairs({0, 11, "x"}) do
        local st, _, err = api(acct, "GET", "/api/lists", {query = {["page[size]"] = size}})
        assert.are.equal(400, st)
        assert.are.equal("page[size]", err.errors[1].source.parameter)
      end
      _, _, body = api(acct, "GET", "/api/lists", {query = {sort = "-name", ["page[size]"] = 2}})
      assert.are.equal("L13", body.data[1].attributes.name)
      assert.are.equal("L12", body.data[2].attributes.name)
      assert.are.equal(400, (api(acct, "GET", "/api/lists", {query = {sort = "colour"}})))
    end)

    it("includes the flows a list triggers with include=flow-triggers", function()
      local id = create_list(acct, "Welcome")
      local st, _, flow, raw = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
        name = "Welcome series", definition = definition({type = "list", id = id})}}}})
      assert.are.equal(201, st, raw)
      local _, _, body = api(acct, "GET", "/api/lists", {query = {include = "flow-triggers"}})
      assert.are.equal(flow.data.id, body.data[1].relationships["flow-triggers"].data[1].id)
      assert.are.equal("flow", body.included[1].type)
      assert.are.equal(flow.data.id, body.included[1].id)
      assert.are.equal(400, (api(acct, "GET", "/api/lists", {query = {include = "profiles"}})))
    end)
  end)

  describe("update_list / delete_list", function()
    it("renames a list", function()
      local id = create_list(acct, "Old")
      local st, _, body = api(acct, "PATCH", "/api/lists/" .. id, {body = {data = {type = "list", id = id,
        attributes = {name = "New"}}}})
      assert.are.equal(200, st)
      assert.are.equal("New", body.data.attributes.name)
      local _, _, again = api(acct, "GET", "/api/lists/" .. id)
      assert.are.equal("New", again.data.attributes.name)
    end)

    it("refuses a body id that is not the path id, and unknown lists", function()
      local id = create_list(acct, "Old")
      local st, _, body = api(acct, "PATCH", "/api/lists/" .. id,
        {body = {data = {type = "list", id = "OTHER", attributes = {name = "New"}}}})
      assert.are.equal(400, st)
      assert.are.equal("/data/id", body.errors[1].source.pointer)
      st = api(acct, "PATCH", "/api/lists/NOPE", {body = {data = {type = "list", id = "NOPE",
        attributes = {name = "New"}}}})
      assert.are.equal(404, st)
    end)

    it("deletes a list", function()
      local id = create_list(acct, "Doomed")
      assert.are.equal(204, (api(acct, "DELETE", "/api/lists/" .. id)))
      assert.are.equal(404, (api(acct, "GET", "/api/lists/" .. id)))
      assert.are.equal(404, (api(acct, "DELETE", "/api/lists/" .. id)))
    end)
  end)

  describe("membership", function()
    it("adds profiles in join order, once each", function()
      local id = create_list(acct, "Members")
      local p = profiles(acct, 3, "m")
      assert.are.equal(204, (add(acct, id, {p[2], p[1]})))
      assert.are.equal(204, (add(acct, id, {p[1], p[3], p[3]})))
      assert.are.same({p[2], p[1], p[3]}, (member_ids(acct, id)))
    end)

    it("removes profiles", function()
      local id = create_list(acct, "Members")
      local p = profiles(acct, 3, "r")
      add(acct, id, p)
      local st = api(acct, "DELETE", "/api/lists/" .. id .. "/relationships/profiles",
          {body = members_body({p[2]})})
      assert.are.equal(204, st)
      assert.are.same({p[1], p[3]}, (member_ids(acct, id)))
    end)

    it("rejects the whole request when one profile id is unknown, naming it", function()
      local id = create_list(acct, "Members")
      local p = profiles(acct, 1, "u")
      local st, _, body = add(acct, id, {p[1], "01UNKNOWNPROFILE0000000000"})
      assert.are.equal(400, st)
      assert.are.equal("/data/1/id", body.errors[1].source.pointer)
      assert.are.same({}, (member_ids(acct, id)))
    end)

    it("accepts 1000 profiles per call and refuses 1001", function()
      local id = create_list(acct, "Big")
      local p = profiles(acct, 1000, "big")
      assert.are.equal(204, (add(acct, id, p)))
      local _, _, body = api(acct, "GET", "/api/lists/" .. id,
          {query = {["additional-fields[list]"] = "profile_count"}})
      assert.are.equal(1000, body.data.attributes.profile_count)
      p[1001] = p[1]
      local st, _, err = add(acct, id, p)
      assert.are.equal(400, st)
      assert.are.equal("/data", err.errors[1].source.pointer)
      st = api(acct, "DELETE", "/api/lists/" .. id .. "/relationships/profiles", {body = members_body(p)})
      assert.are.equal(400, st)
    end)

    it("answers 404 for membership changes on an unknown list", function()
      local p = profiles(acct, 1, "nl")
      assert.are.equal(404, (add(acct, "NOPE", p)))
      assert.are.equal(404, (api(acct, "GET", "/api/lists/NOPE/profiles")))
    end)

    it("moves a merged profile's memberships to the destination", function()
      local a = create_list(acct, "A")
      local b = create_list(acct, "B")
      local p = profiles(acct, 2, "merge")
      add(acct, a, {p[1]})
      add(acct, b, {p[1], p[2]})
      local st, _, _, raw = api(acct, "POST", "/api/profile-merge", {body = {data = {type = "profile-merge",
        id = p[2], relationships = {profiles = {data = {{type = "profile", id = p[1]}}}}}}})
      assert.is_true(st == 201 or st == 202, raw)
      assert.are.same({p[2]}, (member_ids(acct, a)))
      assert.are.same({p[2]}, (member_ids(acct, b)))
    end)

    it("shows members as get_profile does, with last_event_date and subscriptions", function()
      local id = create_list(acct, "Shown")
      local p = profiles(acct, 1, "shown")
      add(acct, id, p)
      local st, _, _, raw = api(acct, "POST", "/api/events", {body = {data = {type = "event", attributes = {
        properties = {}, time = "2026-03-04T05:06:07Z",
        metric = {data = {type = "metric", attributes = {name = "Seen"}}},
        profile = {data = {type = "profile", id = p[1], attributes = {}}}}}}})
      assert.are.equal(202, st, raw)
      local _, _, body = api(acct, "GET", "/api/lists/" .. id .. "/profiles",
        {query = {["additional-fields[profile]"] = "subscriptions"}})
      local a = body.data[1].attributes
      assert.are.equal("2026-03-04T05:06:07+00:00", a.last_event_date)
      assert.are.equal("NEVER_SUBSCRIBED", a.subscriptions.email.marketing.consent)
      assert.are.equal(emu.url .. "/api/profiles/" .. p[1], body.data[1].links.self)
    end)

    it("lists the lists a profile belongs to", function()
      local a = create_list(acct, "A")
      local b = create_list(acct, "B")
      create_list(acct, "C")
      local p = profiles(acct, 1, "belongs")
      add(acct, a, p)
      add(acct, b, p)
      local st, _, body = api(acct, "GET", "/api/profiles/" .. p[1] .. "/lists")
      assert.are.equal(200, st)
      local names = {}
      for i, l in ipairs(body.data) do names[i] = l.attributes.name end
      table.sort(names)
      assert.are.same({"A", "B"}, names)
      _, _, body = api(acct, "GET", "/api/profiles/" .. p[1] .. "/relationships/lists")
      assert.are.equal(2, #body.data)
      assert.are.equal("list", body.data[1].type)
      assert.are.equal(404, (api(acct, "GET", "/api/profiles/NOPE/lists")))
    end)

    it("does not change consent", function()
      local id = create_list(acct, "Members")
      local p = profiles(acct, 1, "consent")
      add(acct, id, p)
      local st, _, body = api(acct, "GET", "/api/profiles/" .. p[1],
        {query = {["additional-fields[profile]"] = "subscriptions"}})
      assert.are.equal(200, st)
      local m = body.data.attributes.subscriptions.email.marketing
      assert.are.equal("NEVER_SUBSCRIBED", m.consent)
      assert.is_false(m.can_receive_email_marketing)
    end)
  end)

  describe("members", function()
    -- one account for the block: the outer before_each makes a fresh one per test
    local macct, list_id, ids
    setup(function()
      macct = new_account()
      list_id = create_list(macct, "Huge")
      ids = profiles(macct, 2500, "huge")
      for i = 1, 2500, 1000 do
        local chunk = {}
        for j = i, math.min(i + 999, 2500) do chunk[#chunk + 1] = ids[j] end
        assert.are.equal(204, (add(macct, list_id, chunk)))
      end
    end)

    it("pages 2,500 members with page[size]=100 in join order", function()
      local got, pages = walk(macct, "/api/lists/" .. list_id .. "/profiles", {["page[size]"] = 100})
      assert.are.equal(25, pages)
      assert.are.same(ids, got)
    end)

    it("uses 20 per page by default and refuses sizes outside 1..100", function()
      local _, body = member_ids(macct, list_id)
      assert.are.equal(20, #body.data)
      assert.truthy(body.links.next:find("page%%5Bcursor%%5D=") or body.links.next:find("page%[cursor%]="))
      for _, size in ipairs({0, 101}) do
        local st, _, err = api(macct, "GET", "/api/lists/" .. list_id .. "/profiles",
            {query = {["page[size]"] = size}})
        assert.are.equal(400, st)
        assert.are.equal("page[size]", err.errors[1].source.parameter)
      end
      local got, pages = walk(macct, "/api/lists/" .. list_id .. "/relationships/profiles",
          {["page[size]"] = 50})
      assert.are.equal(50, pages)
      assert.are.same(ids, got)
    end)

    it("returns profile attributes with joined_group_at, honouring fields[profile]", function()
      local st, _, body = api(macct, "GET", "/api/lists/" .. list_id .. "/profiles",
          {query = {["page[size]"] = 1}})
      assert.are.equal(200, st)
      local r = body.data[1]
      assert.are.equal("profile", r.type)
      assert.are.equal(ids[1], r.id)
      assert.are.equal("huge-1@example.com", r.attributes.email)
      assert.truthy(r.attributes.joined_group_at:match("^%d%d%d%d%-"))
      _, _, body = api(macct, "GET", "/api/lists/" .. list_id .. "/profiles",
        {query = {["page[size]"] = 1, ["fields[profile]"] = "email"}})
      local keys = {}
      for k in pairs(body.data[1].attributes) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({"email", "joined_group_at"}, keys)
    end)

    it("filters members by email and reverses with sort=-joined_group_at", function()
      local _, _, body = api(macct, "GET", "/api/lists/" .. list_id .. "/profiles",
        {query = {filter = 'equals(email,"huge-7@example.com")'}})
      assert.are.equal(1, #body.data)
      assert.are.equal(ids[7], body.data[1].id)
      local got = member_ids(macct, list_id, {sort = "-joined_group_at", ["page[size]"] = 100})
      assert.are.equal(ids[2500], got[1])
      local st = api(macct, "GET", "/api/lists/" .. list_id .. "/profiles",
          {query = {filter = 'equals(first_name,"x")'}})
      assert.are.equal(400, st)
    end)
  end)

  describe("flow triggers", function()
    it("lists the flows a list triggers, and their ids", function()
      local id = create_list(acct, "Trigger")
      local _, _, flow = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
        name = "On join", definition = definition({type = "list", id = id})}}}})
      local st, _, body = api(acct, "GET", "/api/lists/" .. id .. "/flow-triggers")
      assert.are.equal(200, st)
      assert.are.equal(1, #body.data)
      assert.are.equal(flow.data.id, body.data[1].id)
      assert.are.equal("Added to List", body.data[1].attributes.trigger_type)
      _, _, body = api(acct, "GET", "/api/lists/" .. id .. "/relationships/flow-triggers")
      assert.are.same({{type = "flow", id = flow.data.id}}, body.data)
      local other = create_list(acct, "Other")
      _, _, body = api(acct, "GET", "/api/lists/" .. other .. "/relationships/flow-triggers")
      assert.are.same({}, body.data)
    end)
  end)
end)
